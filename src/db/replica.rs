//! A PostgreSQL streaming replica for reads that may be a little behind (`AGORA_REPLICA_URL`).
//!
//! A monitor thread asks the primary how far its WAL has gone and the replica how far it has
//! replayed, several times a second. From that it knows the replica's lag and the last
//! position it is known to have replayed. A read goes to the replica only when the replica is
//! reachable, still replaying (not promoted), no more than `AGORA_REPLICA_MAX_LAG_MS` behind,
//! and known to have replayed the position the reader must see (its own last write, or the
//! last catalog change): see [`super::Db::read`]. Every other read, and every write, goes to
//! the primary.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};

use super::Db;

/// A position in the primary's write-ahead log (`pg_lsn` as a byte offset).
pub type Lsn = u64;

/// How often the monitor compares the primary's and the replica's positions.
pub const MONITOR_INTERVAL: Duration = Duration::from_millis(100);

pub static READS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    prometheus::IntCounterVec::new(
        prometheus::Opts::new("agora_db_reads_total", "Replica-eligible reads, by the server that answered them"),
        &["server"],
    )
    .expect("valid metric")
});
pub static FALLBACKS: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    prometheus::IntCounter::new(
        "agora_db_replica_fallbacks_total",
        "Reads that failed on the replica and were retried on the primary",
    )
    .expect("valid metric")
});

/// Reads answered by the replica and by the primary, and reads that failed on the replica and
/// were retried on the primary, since this process started.
pub fn read_counts() -> (u64, u64, u64) {
    let served = |server: &str| READS.with_label_values(&[server]).get();
    (served("replica"), served("primary"), FALLBACKS.get())
}

#[derive(Clone, Debug)]
pub struct ReplicaSettings {
    pub url: String,
    /// A replica further behind than this is skipped.
    pub max_lag: Duration,
}

/// The replica, as the monitor last saw it.
pub struct Replica {
    pub(super) db: Db,
    max_lag: Duration,
    usable: AtomicBool,
    /// The primary's position the replica is known to have replayed.
    replayed: AtomicU64,
    lag_ms: AtomicU64,
    /// Why it is skipped, while it is.
    skipped_because: Mutex<Option<String>>,
}

/// What `/readyz`, the metrics and the architecture page show.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ReplicaStatus {
    /// `in_use`, or `skipped` (reads go to the primary).
    pub state: &'static str,
    /// Why it is skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How far behind the primary it was at the last look, in milliseconds.
    pub lag_ms: u64,
    pub max_lag_ms: u64,
}

impl Replica {
    pub(super) fn start(db: Db, settings: &ReplicaSettings, primary_url: String) -> Arc<Replica> {
        let replica = Arc::new(Replica {
            db,
            max_lag: settings.max_lag,
            usable: AtomicBool::new(false),
            replayed: AtomicU64::new(0),
            lag_ms: AtomicU64::new(0),
            skipped_because: Mutex::new(Some("not checked yet".to_owned())),
        });
        let weak = Arc::downgrade(&replica);
        let replica_url = settings.url.clone();
        let spawned = std::thread::Builder::new()
            .name("replica-monitor".into())
            .spawn(move || monitor(&weak, &primary_url, &replica_url));
        if let Err(error) = spawned {
            log::error!("cannot start the replica monitor: {error}");
        }
        replica
    }

    /// Whether a read that must see everything up to `after` may go to the replica.
    pub fn serves(&self, after: Lsn) -> bool {
        self.usable.load(Ordering::Acquire)
            && self.db.health().unavailable().is_none()
            && self.replayed.load(Ordering::Acquire) >= after
    }

    pub fn status(&self) -> ReplicaStatus {
        let reason = match self.db.health().unavailable() {
            Some(down) => Some(down),
            None => self.skipped_because.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone(),
        };
        ReplicaStatus {
            state: if reason.is_none() { "in_use" } else { "skipped" },
            reason,
            lag_ms: self.lag_ms.load(Ordering::Relaxed),
            max_lag_ms: self.max_lag.as_millis() as u64,
        }
    }

    fn skip(&self, reason: String) {
        let mut because = self.skipped_because.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.usable.swap(false, Ordering::AcqRel) {
            log::warn!("replica skipped, reads go to the primary: {reason}");
        }
        *because = Some(reason);
    }

    fn use_again(&self) {
        let mut because = self.skipped_because.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !self.usable.swap(true, Ordering::AcqRel) {
            log::info!("replica in use for reads");
        }
        *because = None;
    }

    /// A read failed on the replica: skip it until the monitor sees it well again.
    pub(super) fn failed(&self, reason: String) {
        FALLBACKS.inc();
        self.skip(format!("a read failed on it: {reason}"));
    }
}

/// The primary's position at several recent moments: the lag is the time since the last moment
/// whose position the replica has replayed.
#[derive(Default)]
struct Positions {
    seen: VecDeque<(Lsn, Instant)>,
    caught_up_at: Option<Instant>,
}

impl Positions {
    const KEPT: usize = 1_000;

    fn lag(&mut self, primary: Lsn, replica: Lsn, now: Instant) -> Duration {
        self.seen.push_back((primary, now));
        while let Some(&(position, at)) = self.seen.front() {
            if position > replica {
                break;
            }
            self.caught_up_at = Some(at);
            self.seen.pop_front();
        }
        if self.seen.len() > Self::KEPT {
            self.seen.pop_front();
        }
        let since = self.caught_up_at.or_else(|| self.seen.front().map(|&(_, at)| at)).unwrap_or(now);
        now.saturating_duration_since(since)
    }
}

#[derive(QueryableByName)]
struct PrimaryPosition {
    #[diesel(sql_type = BigInt)]
    position: i64,
}

#[derive(QueryableByName)]
struct ReplayPosition {
    #[diesel(sql_type = Bool)]
    in_recovery: bool,
    #[diesel(sql_type = BigInt)]
    replayed: i64,
}

/// The primary's current write position. Read after a commit, it is at or past that commit.
pub fn current_position(conn: &mut PgConnection) -> QueryResult<Lsn> {
    diesel::sql_query("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint AS position")
        .get_result::<PrimaryPosition>(conn)
        .map(|row| row.position as Lsn)
}

fn replay_position(conn: &mut PgConnection) -> QueryResult<ReplayPosition> {
    diesel::sql_query(
        "SELECT pg_is_in_recovery() AS in_recovery, \
         (coalesce(pg_last_wal_replay_lsn(), '0/0'::pg_lsn) - '0/0'::pg_lsn)::bigint AS replayed",
    )
    .get_result(conn)
}

fn connect<'a>(url: &str, conn: &'a mut Option<PgConnection>) -> Result<&'a mut PgConnection, String> {
    if conn.is_none() {
        let url = super::with_connection_options(url, Duration::from_secs(2));
        *conn = Some(PgConnection::establish(&url).map_err(|error| error.to_string())?);
    }
    Ok(conn.as_mut().expect("just connected"))
}

fn monitor(weak: &Weak<Replica>, primary_url: &str, replica_url: &str) {
    let (mut primary, mut replica) = (None, None);
    let mut positions = Positions::default();
    loop {
        let Some(state) = weak.upgrade() else { return };
        // The primary first: if the replica has replayed this far, it was caught up at this moment.
        let observed = connect(primary_url, &mut primary)
            .and_then(|conn| current_position(conn).map_err(|error| error.to_string()))
            .map_err(|error| {
                primary = None;
                format!("its lag is unknown: the primary does not answer ({})", error.trim())
            })
            .and_then(|primary_position| {
                let replay = connect(replica_url, &mut replica)
                    .and_then(|conn| replay_position(conn).map_err(|error| error.to_string()))
                    .map_err(|error| {
                        replica = None;
                        format!("unreachable: {}", error.trim())
                    })?;
                Ok((primary_position, replay))
            });
        match observed {
            Err(reason) => state.skip(reason),
            Ok((_, replay)) if !replay.in_recovery => {
                state.skip("it is not replaying: promoted to a primary of its own".to_owned());
            }
            Ok((primary_position, replay)) => {
                let replayed = replay.replayed as Lsn;
                let lag = positions.lag(primary_position, replayed, Instant::now());
                state.lag_ms.store(lag.as_millis() as u64, Ordering::Relaxed);
                state.replayed.fetch_max(replayed, Ordering::AcqRel);
                if lag > state.max_lag {
                    state.skip(format!(
                        "lagging {} ms behind the primary (more than {} ms)",
                        lag.as_millis(),
                        state.max_lag.as_millis()
                    ));
                } else {
                    state.use_again();
                }
            }
        }
        drop(state);
        std::thread::sleep(MONITOR_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_time_since_the_replica_last_had_all_the_primary_had() {
        let mut positions = Positions::default();
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(positions.lag(100, 100, at(0)), Duration::ZERO);
        // The primary moves on; the replica stays at 100.
        assert_eq!(positions.lag(200, 100, at(100)), Duration::from_millis(100));
        assert_eq!(positions.lag(300, 100, at(200)), Duration::from_millis(200));
        // It replays up to 200: it had everything of the moment at 100 ms.
        assert_eq!(positions.lag(300, 200, at(300)), Duration::from_millis(200));
        // An idle primary: caught up again, no lag.
        assert_eq!(positions.lag(300, 300, at(400)), Duration::ZERO);
    }
}
