//! What the process knows of the database's health, so that a request needing it fails at once
//! while it is known unreachable, instead of each one waiting out the pool's timeout.
//!
//! Two sources feed it. Real work reports its outcome: a connection that cannot be had, or that
//! broke under a query, marks the database down; any success marks it up. And a probe thread of
//! its own asks the database every [`PROBE_INTERVAL_UP`] (every [`PROBE_INTERVAL_DOWN`] while it is
//! down, so recovery is seen within that): a probe that has not answered after [`PROBE_PATIENCE`]
//! counts as down too, which is how a frozen server (accepting connections, answering nothing)
//! is told apart from a slow one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

pub const PROBE_INTERVAL_UP: Duration = Duration::from_millis(1000);
pub const PROBE_INTERVAL_DOWN: Duration = Duration::from_millis(200);
/// A probe still waiting for its answer after this long means the database does not answer.
pub const PROBE_PATIENCE: Duration = Duration::from_millis(1500);

/// Shared by every clone of a [`super::Db`]; cheap to clone.
#[derive(Clone)]
pub struct DbHealth {
    inner: Arc<Inner>,
}

struct Inner {
    /// "database" or "replica", for the log.
    server: &'static str,
    up: AtomicBool,
    /// When the database went down and why, while it is down.
    outage: Mutex<Option<(Instant, String)>>,
    /// Milliseconds since the epoch at which the running probe began; 0 when none runs.
    probe_started_ms: AtomicU64,
    /// Milliseconds since the epoch at which work last succeeded on the database.
    last_answer_ms: AtomicU64,
    /// Bumped each time the database goes down: pooled connections from before are suspect.
    generation: AtomicU64,
    outages: AtomicU64,
}

/// What `/readyz` and the metrics show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthState {
    Up,
    Down { reason: String, for_ms: u64 },
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

impl DbHealth {
    /// Starts up: the caller has just reached the database, or will find out soon.
    pub fn new() -> DbHealth {
        Self::of("database")
    }

    /// The health of a read replica: while it is down, its reads go to the primary.
    pub fn of_replica() -> DbHealth {
        Self::of("replica")
    }

    fn of(server: &'static str) -> DbHealth {
        DbHealth {
            inner: Arc::new(Inner {
                server,
                up: AtomicBool::new(true),
                outage: Mutex::new(None),
                probe_started_ms: AtomicU64::new(0),
                last_answer_ms: AtomicU64::new(0),
                generation: AtomicU64::new(0),
                outages: AtomicU64::new(0),
            }),
        }
    }

    /// Why the database is unusable right now, or `None` when requests may try it.
    pub fn unavailable(&self) -> Option<String> {
        let started = self.inner.probe_started_ms.load(Ordering::Acquire);
        if started != 0 && now_ms().saturating_sub(started) > PROBE_PATIENCE.as_millis() as u64 {
            return Some(format!("the database has not answered a probe for {} ms", now_ms() - started));
        }
        if self.inner.up.load(Ordering::Acquire) {
            return None;
        }
        let outage = self.inner.outage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(outage.as_ref().map_or_else(|| "the database is unreachable".to_owned(), |(_, reason)| reason.clone()))
    }

    pub fn state(&self) -> HealthState {
        match self.unavailable() {
            None => HealthState::Up,
            Some(reason) => {
                let outage = self.inner.outage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let for_ms = outage.as_ref().map_or(0, |(since, _)| since.elapsed().as_millis() as u64);
                HealthState::Down { reason, for_ms }
            }
        }
    }

    /// The database failed real work or a probe.
    pub fn report_down(&self, reason: impl Into<String>) {
        let reason = reason.into();
        let mut outage = self.inner.outage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.inner.up.swap(false, Ordering::AcqRel) {
            self.inner.generation.fetch_add(1, Ordering::AcqRel);
            self.inner.outages.fetch_add(1, Ordering::Relaxed);
            match self.inner.server {
                "replica" => log::warn!("replica unavailable: {reason}; reading from the primary until it is back"),
                server => log::error!("{server} unavailable: {reason}; answering 503 until it is back"),
            }
            *outage = Some((Instant::now(), reason));
        } else if let Some((_, last)) = outage.as_mut() {
            *last = reason;
        }
    }

    /// The database answered.
    pub fn report_up(&self) {
        self.inner.last_answer_ms.store(now_ms(), Ordering::Relaxed);
        if self.inner.up.load(Ordering::Acquire) {
            return;
        }
        let mut outage = self.inner.outage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !self.inner.up.swap(true, Ordering::AcqRel) {
            let lasted = outage.take().map_or(Duration::ZERO, |(since, _)| since.elapsed());
            log::warn!("{} available again after {} ms", self.inner.server, lasted.as_millis());
        }
    }

    /// Counts up each time the database goes down.
    /// Whether work succeeded on the database within `window` and nothing says it is down since:
    /// then it answers, without asking it again (and without waiting behind that work for a
    /// connection of the pool).
    pub fn answered_within(&self, window: Duration) -> bool {
        self.unavailable().is_none()
            && now_ms().saturating_sub(self.inner.last_answer_ms.load(Ordering::Relaxed)) <= window.as_millis() as u64
    }

    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    pub fn outages(&self) -> u64 {
        self.inner.outages.load(Ordering::Relaxed)
    }

    /// Starts the probe thread; it ends by itself once every handle to this health is gone.
    pub fn start_probe(&self, database_url: String) {
        let weak = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new().name("db-probe".into()).spawn(move || probe(weak, &database_url));
        if let Err(error) = spawned {
            log::error!("cannot start the database probe: {error}");
        }
    }
}

impl Default for DbHealth {
    fn default() -> Self {
        Self::new()
    }
}

fn probe(weak: Weak<Inner>, database_url: &str) {
    let mut conn: Option<PgConnection> = None;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let interval =
            if (DbHealth { inner }).unavailable().is_some() { PROBE_INTERVAL_DOWN } else { PROBE_INTERVAL_UP };
        // No handle is held while sleeping: a pool dropped meanwhile ends the probe unprobed.
        std::thread::sleep(interval);
        let Some(inner) = weak.upgrade() else { return };
        let health = DbHealth { inner };
        health.inner.probe_started_ms.store(now_ms().max(1), Ordering::Release);
        let answered = match conn.as_mut() {
            Some(open) => open.batch_execute("SELECT 1").map_err(|error| error.to_string()),
            None => PgConnection::establish(database_url)
                .map_err(|error| error.to_string())
                .and_then(|mut fresh| {
                    fresh.batch_execute("SELECT 1").map(|()| fresh).map_err(|error| error.to_string())
                })
                .map(|fresh| conn = Some(fresh)),
        };
        health.inner.probe_started_ms.store(0, Ordering::Release);
        match answered {
            Ok(()) => health.report_up(),
            Err(error) => {
                conn = None;
                health.report_down(format!("probe: {}", error.trim()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_until_reported_up_and_each_outage_starts_a_generation() {
        let health = DbHealth::new();
        assert_eq!(health.unavailable(), None);
        health.report_down("connection refused");
        health.report_down("still refused");
        assert_eq!(health.unavailable().as_deref(), Some("still refused"));
        assert_eq!(health.generation(), 1);
        health.report_up();
        assert_eq!(health.state(), HealthState::Up);
        health.report_down("again");
        assert_eq!(health.generation(), 2);
        assert_eq!(health.outages(), 2);
    }

    #[test]
    fn a_probe_without_an_answer_means_down() {
        let health = DbHealth::new();
        health.inner.probe_started_ms.store(now_ms() - 2_000, Ordering::Release);
        assert!(health.unavailable().unwrap().contains("has not answered a probe"));
    }
}
