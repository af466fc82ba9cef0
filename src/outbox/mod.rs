//! The transactional outbox (shared infrastructure): modules append [`DomainEvent`]s in the
//! same transaction as the change they describe; handlers consume them later, each at its own
//! pace, with retries. It is the event-driven pattern, kept inside the one database.

pub mod events;
pub mod subscriptions;

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Jsonb, Text, Uuid as SqlUuid};

pub use events::{CancelledBy, DomainEvent, EventType};

#[derive(QueryableByName)]
struct PublishedId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Appends `event` and a delivery row for each subscribed handler, in one round trip, inside
/// the caller's transaction. Returns the event id.
pub fn publish(conn: &mut PgConnection, event: &DomainEvent) -> QueryResult<i64> {
    let (aggregate_type, aggregate_id) = event.aggregate();
    let handlers = subscriptions::handlers_for(event.event_type());
    let published = diesel::sql_query(
        "WITH event AS (
             INSERT INTO events (event_type, aggregate_type, aggregate_id, payload)
             VALUES ($1, $2, $3, $4)
             RETURNING id
         ), deliveries AS (
             INSERT INTO event_deliveries (event_id, handler)
             SELECT event.id, handler FROM event, unnest($5::text[]) AS handler
         )
         SELECT id FROM event",
    )
    .bind::<Text, _>(event.event_type().as_str())
    .bind::<Text, _>(aggregate_type)
    .bind::<SqlUuid, _>(aggregate_id)
    .bind::<Jsonb, _>(event.payload())
    .bind::<Array<Text>, _>(handlers)
    .get_result::<PublishedId>(conn)?;
    Ok(published.id)
}
