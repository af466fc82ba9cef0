//! The dispatcher: hands due work of the outbox to its handlers, with retries.
//!
//! Each unit of work is one `(event, handler)` row of `event_deliveries`. Every handler has
//! `AGORA_OUTBOX_WORKERS` workers of its own; a worker claims due rows of its handler with
//! `FOR NO KEY UPDATE SKIP LOCKED` and keeps them locked, in one transaction, while the handler
//! runs (one row per transaction when handling sends e-mail, see [`Handler::batch_size`]); then
//! it marks each row completed, or schedules a retry (exponential backoff with jitter), or marks
//! it dead after the last attempt. Because the lock lives in the transaction, a process that dies
//! mid-work simply loses it: PostgreSQL rolls back and the row is due again for whoever comes
//! next. Several agora processes therefore share the work, and each row completes once.
//!
//! Handlers in [`super::ORDERED_HANDLERS`] take the events of one aggregate one after another
//! (see the ordered claim below), and a handler that is not ready (its broker unreachable) is
//! left alone: its deliveries wait, spending no attempt.
//!
//! Workers wake as soon as new work commits: a trigger NOTIFYs `agora_outbox`, a listener
//! thread LISTENs on a connection of its own and rings a doorbell. They also wake when the next
//! retry falls due, when a handler becomes ready, and poll every `AGORA_OUTBOX_POLL_MS` in case a
//! notification was missed.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Jsonb, Text, Timestamptz};
use rand::Rng;

use super::DeliveryStatus;
use crate::background::{BackgroundTasks, Doorbell, StopSignal};
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
    /// `events.payload` as stored, for handlers that pass the event on rather than act on it:
    /// an event stored by an older version reads into `event` with defaults filled in, and this
    /// keeps what was actually published.
    pub payload: serde_json::Value,
}

/// A consumer of events. `handle` runs inside the delivery's transaction, in a savepoint: on a
/// database error everything it wrote is undone and the delivery is retried; with
/// [`Outcome::Retry`] its writes are kept.
pub trait Handler: Send + Sync {
    fn name(&self) -> &'static str;
    /// The module the handler belongs to: handling runs as its role.
    fn module(&self) -> Module;
    /// Whether handling reaches outside the database (sends an e-mail): see [`Self::batch_size`].
    fn has_external_effects(&self) -> bool;

    /// How many of its deliveries one transaction takes on. Work with effects outside the
    /// database (an e-mail handed to an SMTP server) is committed one delivery at a time, so that
    /// a crash can repeat at most the one in flight; work confined to the database is
    /// all-or-nothing anyway and is committed in batches, which saves a commit (a WAL flush) per
    /// delivery.
    fn batch_size(&self) -> i64 {
        if self.has_external_effects() { 1 } else { 32 }
    }

    /// How long a worker waits, once woken, before it claims: events committed meanwhile join
    /// the batch, which then costs one transaction for several. None by default.
    fn linger(&self) -> Duration {
        Duration::ZERO
    }

    /// How many workers of its own it has in each process, given `AGORA_OUTBOX_WORKERS`.
    fn workers(&self, configured: usize) -> usize {
        configured
    }

    /// Whether it can work now. While it cannot (its broker is unreachable, say), its deliveries
    /// are not claimed: they wait, and spend no attempt.
    fn is_ready(&self) -> bool {
        true
    }

    /// Gives it its workers' doorbell, to ring when it becomes ready again, so that what waited
    /// is taken up at once rather than at the next poll.
    fn ring_when_ready(&self, _doorbell: Doorbell) {}

    fn handle(&self, conn: &mut PgConnection, record: &EventRecord, attempt: Attempt) -> QueryResult<Outcome>;

    /// Handles the deliveries one transaction claimed, returning an outcome for each, in order.
    /// By default one after another, each in a savepoint of its own; a handler may do better
    /// with the whole batch at once (the relay publishes them all, then awaits the confirms).
    fn handle_batch(&self, conn: &mut PgConnection, work: &[(EventRecord, Attempt)]) -> Vec<Outcome> {
        work.iter()
            .map(|(record, attempt)| match conn.transaction(|conn| self.handle(conn, record, *attempt)) {
                Ok(outcome) => outcome,
                Err(error) => Outcome::Retry(format!("database error: {error}")),
            })
            .collect()
    }
}

/// The doorbells of every handler, rung together: a notification does not say whose work it is.
struct Doorbells(Vec<Doorbell>);

/// Rings for every notification, and on (re)connecting: anything committed while nobody
/// listened is picked up by that ring.
impl crate::db::listen::Subscriber for Doorbells {
    fn connected(&mut self, _conn: &mut PgConnection) {
        self.0.iter().for_each(Doorbell::ring);
    }

    fn notified(&mut self, _conn: &mut PgConnection, _payloads: Vec<String>) {
        self.0.iter().for_each(Doorbell::ring);
    }
}

/// Starts the listener and the workers. Every handler `config` subscribes must be given.
pub fn start(tasks: &mut BackgroundTasks, db: &Db, config: &Config, mut handlers: Vec<Arc<dyn Handler>>) {
    for subscription in super::subscriptions(config) {
        assert!(
            handlers.iter().any(|handler| handler.name() == subscription.handler),
            "no handler registered for {}",
            subscription.handler
        );
    }
    handlers.sort_by_key(|handler| handler.name());
    let doorbells: Vec<Doorbell> = handlers.iter().map(|_| Doorbell::default()).collect();
    for (handler, doorbell) in handlers.iter().zip(&doorbells) {
        handler.ring_when_ready(doorbell.clone());
    }
    for (handler, doorbell) in handlers.into_iter().zip(doorbells.iter().cloned()) {
        for _ in 0..handler.workers(config.outbox.workers) {
            let (db, settings, handler, doorbell) =
                (db.clone(), config.outbox.clone(), handler.clone(), doorbell.clone());
            tasks.spawn("outbox-worker", move |stop| work(&db, &settings, handler.as_ref(), &doorbell, &stop));
        }
    }
    let url = config.direct_database_url.clone();
    let mut doorbells = Doorbells(doorbells);
    tasks.spawn("outbox-listener", move |stop| {
        crate::db::listen::listen(&url, CHANNEL, Duration::from_millis(25), &stop, &mut doorbells)
    });
}

/// Works through one handler's due deliveries, a batch per transaction, for as long as there are
/// any; then sleeps until the doorbell rings or the handler's next retry falls due. Each handler
/// has workers of its own, so that one waiting on the world outside (an SMTP server that stalls,
/// a broker's confirms) never holds up another's work.
fn work(db: &Db, settings: &OutboxSettings, handler: &dyn Handler, doorbell: &Doorbell, stop: &StopSignal) {
    while !stop.is_stopped() {
        // A handler that is not ready rings when it is again (see `Handler::ring_when_ready`).
        let mut sleep = settings.poll_interval;
        if handler.is_ready() {
            let batch = handler.batch_size();
            match db.run_blocking(Module::Outbox.op("dispatch"), |conn| process_batch(conn, settings, handler, batch)) {
                // A full batch may have left more: a colleague is asked to help.
                Ok(done) if done.claimed as i64 >= batch => {
                    doorbell.ring();
                    continue;
                }
                // Nothing else announces the next events of an aggregate an ordered handler
                // just let through.
                Ok(done) if done.released_followers => continue,
                Ok(done) => sleep = done.next_due.map_or(sleep, |due| due.min(sleep)),
                Err(error) => log::warn!("outbox worker ({}): {}", handler.name(), CauseChain(&error)),
            }
        }
        doorbell.wait(sleep, stop);
        let linger = handler.linger();
        if !linger.is_zero() {
            stop.wait(linger);
        }
    }
}

#[derive(Debug, QueryableByName)]
struct Claimed {
    #[diesel(sql_type = BigInt)]
    event_id: i64,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    aggregate_id: uuid::Uuid,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Jsonb)]
    payload: serde_json::Value,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

/// The claim of due deliveries of one handler, oldest first. 'pending' is spelled out rather
/// than bound, so that every plan of these statements can use the partial index on pending
/// deliveries by handler.
const CLAIM: &str = "SELECT d.event_id, e.aggregate_id, d.attempts, e.event_type, e.payload, e.created_at
       FROM event_deliveries d
       JOIN events e ON e.id = d.event_id
      WHERE d.handler = $1 AND d.status = 'pending' AND d.next_attempt_at <= now()
      ORDER BY d.next_attempt_at, d.event_id
      LIMIT $2
        FOR NO KEY UPDATE OF d SKIP LOCKED";

/// The same claim for an ordered handler: a delivery is left while the handler's delivery of the
/// aggregate's previous event is not completed (pending, perhaps failing, or dead), so the
/// events of one aggregate are handled in the order of their ids, one after another, whatever
/// the number of workers and processes; those of other aggregates never wait for it.
///
/// The order of ids is the order of commits within an aggregate, because every transaction that
/// publishes an event of an aggregate first locks the aggregate's row (the order's, or the
/// product's stock level) and holds it to its commit: the next event of that aggregate can only
/// take its id once the previous one has committed.
///
/// Only the previous delivery is looked at, one step back along `events_aggregate_idx`, however
/// long the aggregate's history: a delivery is claimed only once the one before it completed,
/// so an aggregate's completed deliveries are always the first ones, and the previous delivery
/// being completed means every earlier one is. That previous delivery may be locked by a worker
/// handling it right now: it then reads as pending, and this one waits its turn.
///
/// "Not pending or dead" rather than "= 'completed'": PostgreSQL guesses that few rows pass an
/// equality on an expression and then plans to read, join and sort every due delivery before
/// the LIMIT (88 ms for 6,000 of them, measured); guessing that most pass, it walks the handler's
/// index in order and stops at the batch (2 ms, with 200 waiting deliveries to step over).
const CLAIM_ORDERED: &str = "SELECT d.event_id, e.aggregate_id, d.attempts, e.event_type, e.payload, e.created_at
       FROM event_deliveries d
       JOIN events e ON e.id = d.event_id
      WHERE d.handler = $1 AND d.status = 'pending' AND d.next_attempt_at <= now()
        AND coalesce((SELECT previous.status
                        FROM events earlier
                        JOIN event_deliveries previous
                          ON previous.event_id = earlier.id AND previous.handler = d.handler
                       WHERE earlier.aggregate_id = e.aggregate_id
                         AND earlier.aggregate_type = e.aggregate_type
                         AND earlier.id < e.id
                       ORDER BY earlier.id DESC
                       LIMIT 1), 'completed') NOT IN ('pending', 'dead')
      ORDER BY d.next_attempt_at, d.event_id
      LIMIT $2
        FOR NO KEY UPDATE OF d SKIP LOCKED";

/// What one transaction of a worker did.
#[derive(Debug, Default)]
pub struct Batch {
    /// Deliveries claimed (and handled).
    pub claimed: usize,
    /// For an ordered handler: a later event of an aggregate it completed waits for it, and may
    /// be claimed now.
    pub released_followers: bool,
    /// How long until the handler's next pending delivery falls due (see [`next_due_in`]), asked
    /// in the same transaction.
    pub next_due: Option<Duration>,
}

/// Claims up to `batch` due deliveries of `handler` with their events (one query), has the
/// handler handle them as its module's role, and records the outcomes as the outbox.
pub fn process_batch(
    conn: &mut PgConnection,
    settings: &OutboxSettings,
    handler: &dyn Handler,
    batch: i64,
) -> Result<Batch, AppError> {
    conn.transaction(|conn| {
        let ordered = super::ORDERED_HANDLERS.contains(&handler.name());
        let claim = if ordered { CLAIM_ORDERED } else { CLAIM };
        let claimed: Vec<Claimed> =
            diesel::sql_query(claim).bind::<Text, _>(handler.name()).bind::<BigInt, _>(batch).load(conn)?;
        if claimed.is_empty() {
            return Ok(Batch { next_due: next_due_in(conn, handler.name())?, ..Batch::default() });
        }
        let attempts: Vec<Attempt> = claimed
            .iter()
            .map(|delivery| Attempt {
                number: delivery.attempts + 1,
                is_last: delivery.attempts + 1 >= settings.max_attempts,
            })
            .collect();
        // An event this version cannot read is not the handler's to see; it is retried, so that
        // a newer process on the same database may take it.
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(claimed.len());
        let mut readable = Vec::with_capacity(claimed.len());
        for (delivery, attempt) in claimed.iter().zip(&attempts) {
            match DomainEvent::from_stored(&delivery.event_type, &delivery.payload) {
                Ok(event) => {
                    outcomes.push(None);
                    let record = EventRecord {
                        id: delivery.event_id,
                        created_at: delivery.created_at,
                        event,
                        payload: delivery.payload.clone(),
                    };
                    readable.push((record, *attempt));
                }
                Err(error) => {
                    outcomes.push(Some(Outcome::Retry(format!("unreadable {} payload: {error}", delivery.event_type))))
                }
            }
        }
        let mut handled = {
            let mut handling = roles::enter(conn, handler.module())?;
            handler.handle_batch(&mut handling, &readable).into_iter()
        };
        let outcomes = outcomes.into_iter().map(|outcome| {
            outcome.unwrap_or_else(|| {
                handled.next().unwrap_or_else(|| Outcome::Retry(format!("{} gave no outcome", handler.name())))
            })
        });
        let mut done = Vec::new();
        let mut done_aggregates = Vec::new();
        for ((delivery, attempt), outcome) in claimed.iter().zip(attempts).zip(outcomes) {
            match outcome {
                Outcome::Done => {
                    done.push((delivery.event_id, attempt.number));
                    done_aggregates.push(delivery.aggregate_id);
                }
                Outcome::Retry(error) => {
                    record_failure(conn, settings, handler.name(), delivery.event_id, attempt, &error)?
                }
            }
        }
        record_done(conn, handler.name(), &done)?;
        let released_followers = ordered && has_followers(conn, handler.name(), &done_aggregates, &done)?;
        Ok(Batch { claimed: claimed.len(), released_followers, next_due: next_due_in(conn, handler.name())? })
    })
}

/// Whether a pending delivery of `handler` follows one of those just completed, for the same
/// aggregate: one question in the batch's transaction, instead of another claim to find out.
fn has_followers(
    conn: &mut PgConnection,
    handler: &str,
    aggregates: &[uuid::Uuid],
    done: &[(i64, i32)],
) -> QueryResult<bool> {
    let Some(first) = done.iter().map(|(event_id, _)| *event_id).min() else { return Ok(false) };
    #[derive(QueryableByName)]
    struct Followers {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        any: bool,
    }
    let followers: Followers = diesel::sql_query(
        "SELECT EXISTS (
             SELECT 1 FROM events later
               JOIN event_deliveries d ON d.event_id = later.id AND d.handler = $1 AND d.status = 'pending'
              WHERE later.aggregate_id = ANY($2) AND later.id > $3
         ) AS any",
    )
    .bind::<Text, _>(handler)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(aggregates)
    .bind::<BigInt, _>(first)
    .get_result(conn)?;
    Ok(followers.any)
}

/// Marks deliveries of `handler` completed, in one statement: `(event id, attempt number)`.
fn record_done(conn: &mut PgConnection, handler: &str, done: &[(i64, i32)]) -> QueryResult<()> {
    if done.is_empty() {
        return Ok(());
    }
    let (event_ids, attempts): (Vec<i64>, Vec<i32>) = done.iter().copied().unzip();
    diesel::sql_query(
        "UPDATE event_deliveries d
            SET status = 'completed', attempts = done.attempts, completed_at = now(), last_error = NULL
           FROM unnest($2::bigint[], $3::integer[]) AS done (event_id, attempts)
          WHERE d.handler = $1 AND d.event_id = done.event_id",
    )
    .bind::<Text, _>(handler)
    .bind::<diesel::sql_types::Array<BigInt>, _>(event_ids)
    .bind::<diesel::sql_types::Array<Integer>, _>(attempts)
    .execute(conn)?;
    Ok(())
}

fn record_failure(
    conn: &mut PgConnection,
    settings: &OutboxSettings,
    handler: &str,
    event_id: i64,
    attempt: Attempt,
    error: &str,
) -> QueryResult<()> {
    use crate::schema::event_deliveries as d;
    let row = d::table.find((event_id, handler));
    if attempt.is_last {
        log::error!("{handler} gave up on event {event_id} after {} attempts: {error}", attempt.number);
        diesel::update(row)
            .set((
                d::status.eq(DeliveryStatus::Dead),
                d::attempts.eq(attempt.number),
                d::last_error.eq(truncate(error)),
            ))
            .execute(conn)?;
    } else {
        let delay = backoff(settings, attempt.number);
        log::warn!("{handler} failed on event {event_id} (attempt {}), retrying in {delay:?}: {error}", attempt.number);
        let next = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        diesel::update(row)
            .set((d::attempts.eq(attempt.number), d::last_error.eq(truncate(error)), d::next_attempt_at.eq(next)))
            .execute(conn)?;
    }
    Ok(())
}

/// How long until the next pending delivery of `handler` falls due, counting only those due
/// later. Work due now that a claim just passed over is locked by another worker, which comes
/// back for more when it is done, or waits for an earlier event of its aggregate, which is
/// taken up when that one completes (by a worker that then claims again) or falls due (counted
/// here): waking for it would only spin.
fn next_due_in(conn: &mut PgConnection, handler: &str) -> QueryResult<Option<Duration>> {
    use crate::schema::event_deliveries as d;
    let next: Option<DateTime<Utc>> = d::table
        .filter(d::status.eq(DeliveryStatus::Pending))
        .filter(d::handler.eq(handler))
        .filter(d::next_attempt_at.gt(diesel::dsl::now))
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
