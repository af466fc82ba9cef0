//! The transactional outbox (shared infrastructure): modules append [`DomainEvent`]s in the
//! same transaction as the change they describe; handlers consume them later, each at its own
//! pace, with retries. It is the event-driven pattern, kept inside the one database.

pub mod dispatcher;
pub mod handover;
pub mod history;
pub mod listing;
pub mod pages;
pub mod relay;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Text, Uuid as SqlUuid};

use crate::config::{Config, NotificationsConsumer};
use crate::events::{DomainEvent, Subscription};
use crate::kernel::{Call, Module, TableAccess};
use crate::text_enum::text_enum;

/// Modules write events only through [`publish`], never into these tables.
pub const TABLES: TableAccess = TableAccess {
    module: Module::Outbox,
    owns: &["events", "event_deliveries", "outbox_subscriptions"],
    reads: &[],
    writes: &[],
};

/// Handlers are handed in by the HTTP wiring (`crate::http`), so the outbox calls none of the
/// modules that handle its events.
pub const CALLS: &[Call] =
    &[Call { module: Module::Admin, reason: "its events page uses the admin layout, session and CSRF token" }];

text_enum! {
    /// Where a handler is with an event (`event_deliveries.status`).
    pub enum DeliveryStatus {
        /// To do: due at `next_attempt_at`, perhaps after failed attempts.
        Pending = "pending",
        Completed = "completed",
        /// Given up on after the last attempt, until an admin retries it.
        Dead = "dead",
    }
}

/// Handlers that take the events of one aggregate one after another, in the order they were
/// committed (see [`dispatcher`]'s ordered claim): the relay, so that a consumer on the broker
/// sees each order's events in the order they happened.
pub const ORDERED_HANDLERS: &[&str] = &[crate::events::BROKER_RELAY];

/// SQL functions of the outbox's (see [`publish`]), by signature.
pub const FUNCTIONS: &[&str] = &["outbox_publish(text, text, uuid, jsonb)"];

#[derive(QueryableByName)]
struct PublishedId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Appends `event` and a delivery row for each handler subscribed to its type (in
/// `outbox_subscriptions`), in one round trip, inside the caller's transaction. Returns the
/// event id.
///
/// The SQL function `outbox_publish` (a migration of the outbox's) does the writes as the
/// outbox's role, so the caller's role needs no privilege on these tables and the call costs no
/// role switch.
pub fn publish(conn: &mut PgConnection, event: &DomainEvent) -> QueryResult<i64> {
    let publication = Publication::of(event);
    let published = diesel::sql_query(
        // The comment names the tables the function writes, for the runtime's table sampling.
        "SELECT outbox_publish($1, $2, $3, $4) AS id /* writes events, event_deliveries */",
    )
    .bind::<Text, _>(publication.event_type)
    .bind::<Text, _>(publication.aggregate_kind)
    .bind::<SqlUuid, _>(publication.aggregate_id)
    .bind::<Jsonb, _>(publication.payload)
    .get_result::<PublishedId>(conn)?;
    Ok(published.id)
}

/// What `outbox_publish` takes of an event, in the order of its parameters.
pub struct Publication {
    pub event_type: &'static str,
    pub aggregate_kind: &'static str,
    pub aggregate_id: uuid::Uuid,
    pub payload: serde_json::Value,
}

impl Publication {
    pub fn of(event: &DomainEvent) -> Publication {
        let aggregate = event.aggregate();
        Publication {
            event_type: event.event_type().as_str(),
            aggregate_kind: aggregate.kind(),
            aggregate_id: aggregate.uuid(),
            payload: event.payload(),
        }
    }
}

/// [`publish`] as an expression of another module's statement, so that the event is appended by
/// the statement that writes what it tells of (one round trip for both): the call of
/// `outbox_publish` with its parameters numbered from `$first`, to be bound to a
/// [`Publication`]'s fields in order. It returns the event id.
pub fn publish_call(first: usize) -> String {
    // The comment names the tables the function writes, for the runtime's table sampling.
    format!(
        "outbox_publish(${first}, ${}, ${}, ${}) /* writes events, event_deliveries */",
        first + 1,
        first + 2,
        first + 3
    )
}

/// The handlers an installation with `config` subscribes: the relay when there is a broker, the
/// notifications' in-process handler unless notifications consumes from the broker.
pub fn subscriptions(config: &Config) -> Vec<Subscription> {
    let mut subscriptions = Vec::new();
    if config.notifications_consumer == NotificationsConsumer::Outbox {
        subscriptions.push(crate::events::ORDER_EMAILS_SUBSCRIPTION);
    }
    if config.broker.is_some() {
        subscriptions.push(crate::events::BROKER_RELAY_SUBSCRIPTION);
    }
    subscriptions
}

/// Makes `subscriptions` the installation's, at once for every later publish. Deliveries already
/// created stay: a handler unsubscribed still finishes what it was given.
pub fn subscribe(conn: &mut PgConnection, subscriptions: &[Subscription]) -> QueryResult<()> {
    crate::as_module!(conn, Module::Outbox);
    use crate::schema::outbox_subscriptions::dsl::*;
    let rows: Vec<_> = subscriptions
        .iter()
        .flat_map(|subscription| {
            subscription.events.iter().map(|event| (handler.eq(subscription.handler), event_type.eq(event.as_str())))
        })
        .collect();
    conn.transaction(|conn| {
        // Processes starting together each replace the set: one after the other, or the second's
        // delete finds none of the rows the first is inserting and its insert collides with them.
        // The mode conflicts with itself and with writers, not with the readers that publish.
        diesel::connection::SimpleConnection::batch_execute(
            conn,
            "LOCK TABLE outbox_subscriptions IN SHARE ROW EXCLUSIVE MODE",
        )?;
        diesel::delete(outbox_subscriptions).execute(conn)?;
        diesel::insert_into(outbox_subscriptions).values(&rows).execute(conn)?;
        Ok(())
    })
}

/// Work the handlers have not finished: counted through the partial indexes on pending and
/// dead deliveries, so the count stays cheap however many events have completed.
#[derive(Debug, Default)]
pub struct Backlog {
    pub pending: i64,
    pub dead: i64,
    /// Since when the longest-waiting pending delivery has been due (`None`: nothing is due).
    pub oldest_due_since: Option<chrono::DateTime<chrono::Utc>>,
}

pub fn backlog(conn: &mut PgConnection) -> QueryResult<Backlog> {
    crate::as_module!(conn, Module::Outbox);
    use crate::schema::event_deliveries::dsl::*;
    let pending = event_deliveries.filter(status.eq(DeliveryStatus::Pending)).count().get_result(conn)?;
    let dead = event_deliveries.filter(status.eq(DeliveryStatus::Dead)).count().get_result(conn)?;
    let oldest_due_since = event_deliveries
        .filter(status.eq(DeliveryStatus::Pending))
        .filter(next_attempt_at.le(diesel::dsl::now))
        .select(diesel::dsl::min(next_attempt_at))
        .get_result(conn)?;
    Ok(Backlog { pending, dead, oldest_due_since })
}

/// Puts dead work back in the queue, from its first attempt, and wakes the dispatchers.
/// Returns whether there was such dead work.
pub fn retry_dead(conn: &mut PgConnection, event: i64, handler_name: &str) -> QueryResult<bool> {
    crate::as_module!(conn, Module::Outbox);
    Ok(listing::revive(conn, Some(event), Some(handler_name), None)? == 1)
}
