//! The dispatcher: hands due work of the outbox to its handlers, with retries.
//!
//! Each unit of work is one `(event, handler)` row of `event_deliveries`. A worker claims due
//! rows with `FOR NO KEY UPDATE SKIP LOCKED` and keeps them locked, in one transaction, while
//! the handler runs (one row per transaction when handling sends e-mail, see [`batch_size`]); then it marks the row completed, or schedules a retry (exponential backoff
//! with jitter), or marks it dead after the last attempt. Because the lock lives in the
//! transaction, a process that dies mid-work simply loses it: PostgreSQL rolls back and the row
//! is due again for whoever comes next. Several agora processes therefore share the work, and
//! each row completes once.
//!
//! Workers wake as soon as new work commits: a trigger NOTIFYs `agora_outbox`, a listener
//! thread LISTENs on a connection of its own and rings a doorbell. They also wake when the next
//! retry falls due, and poll every `AGORA_OUTBOX_POLL_MS` in case a notification was missed.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Jsonb, Text, Timestamptz};
use rand::Rng;

use super::DeliveryStatus;
use crate::background::{BackgroundTasks, StopSignal};
use crate::config::{Config, OutboxSettings};
use crate::db::Db;
use crate::error::{AppError, CauseChain};
use crate::events::DomainEvent;
use crate::kernel::{Module, roles};

pub const CHANNEL: &str = "agora_outbox";

/// What a handler made of one event.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Try again later; the handler's own writes (e.g. an attempt count) are kept.
    Retry(String),
}

/// Where in its retries a delivery is.
#[derive(Clone, Copy, Debug)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: i32,
    /// No retry follows if this attempt fails.
    pub is_last: bool,
}

/// The stored event a handler receives.
#[derive(Clone, Debug)]
pub struct EventRecord {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub event: DomainEvent,
}

/// A consumer of events. `handle` runs inside the delivery's transaction, in a savepoint: on a
/// database error everything it wrote is undone and the delivery is retried; with
/// [`Outcome::Retry`] its writes are kept.
pub trait Handler: Send + Sync {
    fn name(&self) -> &'static str;
    /// The module the handler belongs to: handling runs as its role.
    fn module(&self) -> Module;
    /// Whether handling reaches outside the database (sends an e-mail): see [`batch_size`].
    fn has_external_effects(&self) -> bool;
    fn handle(&self, conn: &mut PgConnection, record: &EventRecord, attempt: Attempt) -> QueryResult<Outcome>;
}

/// Wakes sleeping workers: rung by the LISTEN thread and by retries from the admin pages.
#[derive(Clone, Default)]
pub struct Doorbell {
    inner: Arc<(Mutex<u64>, Condvar)>,
}

impl Doorbell {
    pub fn ring(&self) {
        let (rings, bell) = &*self.inner;
        *rings.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) += 1;
        bell.notify_all();
    }

    fn rings(&self) -> u64 {
        *self.inner.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sleeps until a ring after `seen`, `timeout`, or a stop (checked a few times a second).
    fn wait(&self, seen: u64, timeout: Duration, stop: &StopSignal) {
        let deadline = std::time::Instant::now() + timeout;
        let (rings, bell) = &*self.inner;
        let mut current = rings.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while *current == seen && !stop.is_stopped() {
            let now = std::time::Instant::now();
            if now >= deadline {
                return;
            }
            let slice = (deadline - now).min(Duration::from_millis(200));
            current = bell.wait_timeout(current, slice).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
    }
}

/// Starts the listener and the workers. Every handler `config` subscribes must be given.
pub fn start(tasks: &mut BackgroundTasks, db: &Db, config: &Config, handlers: Vec<Arc<dyn Handler>>) {
    let handlers: Arc<HashMap<&'static str, Arc<dyn Handler>>> =
        Arc::new(handlers.into_iter().map(|handler| (handler.name(), handler)).collect());
    for subscription in super::subscriptions(config) {
        // Its deliveries are retried (and end dead) unless a process running the handler takes
        // them: a handler not written yet, such as the broker relay, does not stop the process.
        if !handlers.contains_key(subscription.handler) {
            log::error!("no handler registered for {}: its deliveries cannot complete here", subscription.handler);
        }
    }
    let doorbell = Doorbell::default();
    {
        let (url, mut doorbell) = (config.database_url.clone(), doorbell.clone());
        tasks.spawn("outbox-listener", move |stop| {
            crate::db::listen::listen(&url, CHANNEL, Duration::from_millis(25), &stop, &mut doorbell)
        });
    }
    for _ in 0..config.outbox.workers {
        let (db, settings, handlers, doorbell) =
            (db.clone(), config.outbox.clone(), handlers.clone(), doorbell.clone());
        tasks.spawn("outbox-worker", move |stop| work(&db, &settings, &handlers, &doorbell, &stop));
    }
}

/// Rings the doorbell for every notification, and on (re)connecting: anything committed while
/// nobody listened is picked up by that ring.
impl crate::db::listen::Subscriber for Doorbell {
    fn connected(&mut self, _conn: &mut PgConnection) {
        self.ring();
    }

    fn notified(&mut self, _conn: &mut PgConnection, _payloads: Vec<String>) {
        self.ring();
    }
}

fn work(
    db: &Db,
    settings: &OutboxSettings,
    handlers: &HashMap<&'static str, Arc<dyn Handler>>,
    doorbell: &Doorbell,
    stop: &StopSignal,
) {
    let batch = batch_size(handlers);
    while !stop.is_stopped() {
        let seen = doorbell.rings();
        match db.run_blocking(Module::Outbox.op("dispatch"), |conn| process_batch(conn, settings, handlers, batch)) {
            Ok(0) => {}
            Ok(_) => continue,
            Err(error) => log::warn!("outbox worker: {}", CauseChain(&error)),
        }
        let next_due = db
            .run_blocking(Module::Outbox.op("next_due"), next_due_in)
            .unwrap_or(None)
            .map_or(settings.poll_interval, |due| due.min(settings.poll_interval));
        doorbell.wait(seen, next_due, stop);
    }
}

#[derive(Debug, QueryableByName)]
struct Claimed {
    #[diesel(sql_type = BigInt)]
    event_id: i64,
    #[diesel(sql_type = Text)]
    handler: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Jsonb)]
    payload: serde_json::Value,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

/// How many deliveries one transaction takes on. Work with effects outside the database (an
/// e-mail handed to an SMTP server) is committed one delivery at a time, so that a crash can
/// repeat at most the one in flight; work confined to the database is all-or-nothing anyway and
/// is committed in batches, which saves a commit (a WAL flush) per delivery.
pub fn batch_size(handlers: &HashMap<&'static str, Arc<dyn Handler>>) -> i64 {
    if handlers.values().any(|handler| handler.has_external_effects()) { 1 } else { 32 }
}

/// Claims up to `batch` due deliveries with their events (one query) and runs their handlers,
/// each in a savepoint; returns how many there were.
pub fn process_batch(
    conn: &mut PgConnection,
    settings: &OutboxSettings,
    handlers: &HashMap<&'static str, Arc<dyn Handler>>,
    batch: i64,
) -> Result<usize, AppError> {
    conn.transaction(|conn| {
        // 'pending' is spelled out rather than bound, so that every plan of this statement can
        // use the partial index on pending deliveries.
        let claimed: Vec<Claimed> = diesel::sql_query(
            "SELECT d.event_id, d.handler, d.attempts, e.event_type, e.payload, e.created_at
               FROM event_deliveries d
               JOIN events e ON e.id = d.event_id
              WHERE d.status = 'pending' AND d.next_attempt_at <= now()
              ORDER BY d.next_attempt_at, d.event_id
              LIMIT $1
                FOR NO KEY UPDATE OF d SKIP LOCKED",
        )
        .bind::<BigInt, _>(batch)
        .load(conn)?;
        // Handlers run first, module by module, so that the batch switches to a handler's role
        // once rather than once per delivery; then their outcomes are recorded as the outbox.
        let mut outcomes: Vec<Option<(Attempt, Outcome)>> = claimed.iter().map(|_| None).collect();
        let modules: BTreeSet<Module> = handlers.values().map(|handler| handler.module()).collect();
        for module in modules {
            let mut handling = roles::enter(conn, module)?;
            for (delivery, outcome) in claimed.iter().zip(outcomes.iter_mut()) {
                if handlers.get(delivery.handler.as_str()).is_some_and(|handler| handler.module() == module) {
                    *outcome = Some(run_handler(&mut handling, settings, handlers, delivery));
                }
            }
        }
        for (delivery, outcome) in claimed.iter().zip(outcomes) {
            // A delivery for a handler this process does not run gets its retry here.
            let outcome = outcome.unwrap_or_else(|| run_handler(conn, settings, handlers, delivery));
            record_outcome(conn, settings, delivery, outcome)?;
        }
        Ok(claimed.len())
    })
}

fn run_handler(
    conn: &mut PgConnection,
    settings: &OutboxSettings,
    handlers: &HashMap<&'static str, Arc<dyn Handler>>,
    delivery: &Claimed,
) -> (Attempt, Outcome) {
    let attempt = Attempt { number: delivery.attempts + 1, is_last: delivery.attempts + 1 >= settings.max_attempts };
    let outcome = match (
        handlers.get(delivery.handler.as_str()),
        DomainEvent::from_stored(&delivery.event_type, &delivery.payload),
    ) {
        (None, _) => Outcome::Retry(format!("no handler called {} runs in this process", delivery.handler)),
        (_, Err(error)) => Outcome::Retry(format!("unreadable {} payload: {error}", delivery.event_type)),
        (Some(handler), Ok(event)) => {
            let record = EventRecord { id: delivery.event_id, created_at: delivery.created_at, event };
            match conn.transaction(|conn| handler.handle(conn, &record, attempt)) {
                Ok(outcome) => outcome,
                Err(error) => Outcome::Retry(format!("database error: {error}")),
            }
        }
    };
    (attempt, outcome)
}

fn record_outcome(
    conn: &mut PgConnection,
    settings: &OutboxSettings,
    delivery: &Claimed,
    (attempt, outcome): (Attempt, Outcome),
) -> QueryResult<()> {
    use crate::schema::event_deliveries as d;
    let row = d::table.find((delivery.event_id, &delivery.handler));
    match outcome {
        Outcome::Done => {
            diesel::update(row)
                .set((
                    d::status.eq(DeliveryStatus::Completed),
                    d::attempts.eq(attempt.number),
                    d::completed_at.eq(diesel::dsl::now),
                    d::last_error.eq(None::<String>),
                ))
                .execute(conn)?;
        }
        Outcome::Retry(error) if attempt.is_last => {
            log::error!(
                "{} gave up on event {} after {} attempts: {error}",
                delivery.handler,
                delivery.event_id,
                attempt.number
            );
            diesel::update(row)
                .set((
                    d::status.eq(DeliveryStatus::Dead),
                    d::attempts.eq(attempt.number),
                    d::last_error.eq(truncate(&error)),
                ))
                .execute(conn)?;
        }
        Outcome::Retry(error) => {
            let delay = backoff(settings, attempt.number);
            log::warn!(
                "{} failed on event {} (attempt {}), retrying in {delay:?}: {error}",
                delivery.handler,
                delivery.event_id,
                attempt.number
            );
            let next = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
            diesel::update(row)
                .set((d::attempts.eq(attempt.number), d::last_error.eq(truncate(&error)), d::next_attempt_at.eq(next)))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// How long until the next pending delivery falls due (zero if one is due now).
fn next_due_in(conn: &mut PgConnection) -> QueryResult<Option<Duration>> {
    use crate::schema::event_deliveries as d;
    let next: Option<DateTime<Utc>> = d::table
        .filter(d::status.eq(DeliveryStatus::Pending))
        .select(diesel::dsl::min(d::next_attempt_at))
        .first(conn)?;
    Ok(next.map(|next| (next - Utc::now()).to_std().unwrap_or(Duration::ZERO)))
}

/// Exponential backoff with jitter: base * 2^(attempt-1), capped, then scaled by 50..100 % so
/// that work failing together does not retry together.
pub fn backoff(settings: &OutboxSettings, attempt: i32) -> Duration {
    let exponent = attempt.clamp(1, 30) as u32 - 1;
    let delay = settings.backoff_base.saturating_mul(2u32.saturating_pow(exponent)).min(settings.backoff_max);
    delay.mul_f64(rand::rng().random_range(0.5..=1.0))
}

fn truncate(error: &str) -> String {
    error.chars().take(2000).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OutboxSettings {
        OutboxSettings {
            workers: 1,
            max_attempts: 10,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            poll_interval: Duration::from_secs(5),
            run_in_server: true,
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_stays_under_the_cap() {
        for _ in 0..100 {
            let first = backoff(&settings(), 1);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1), "{first:?}");
            let fourth = backoff(&settings(), 4);
            assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8), "{fourth:?}");
            assert!(backoff(&settings(), 30) <= Duration::from_secs(60));
        }
    }
}
