//! Handing a handler's work to another: what a module leaving the process needs of the outbox
//! (`agora split notifications`). The in-process e-mail handler's unfinished deliveries go to
//! the broker relay, whose publish reaches the module's queue; a rollback gives the work back.

use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text, Timestamptz};

use crate::events::Subscription;
use crate::kernel::Module;

/// Holds every publish (they read the subscriptions) until the caller's transaction ends, once the
/// publishes in flight have committed: subscriptions changed meanwhile apply to every later event.
pub fn hold_publishing(conn: &mut PgConnection) -> QueryResult<()> {
    crate::as_module!(conn, Module::Outbox);
    conn.batch_execute("LOCK TABLE outbox_subscriptions IN ACCESS EXCLUSIVE MODE")
}

/// Whether `subscription`'s handler takes every one of its event types.
pub fn is_subscribed(conn: &mut PgConnection, subscription: &Subscription) -> QueryResult<bool> {
    crate::as_module!(conn, Module::Outbox);
    use crate::schema::outbox_subscriptions::dsl::*;
    let types: Vec<&str> = subscription.events.iter().map(|kind| kind.as_str()).collect();
    let subscribed: i64 = outbox_subscriptions
        .filter(handler.eq(subscription.handler))
        .filter(event_type.eq_any(&types))
        .count()
        .get_result(conn)?;
    Ok(subscribed == types.len() as i64)
}

pub fn unsubscribe(conn: &mut PgConnection, handler_name: &str) -> QueryResult<usize> {
    crate::as_module!(conn, Module::Outbox);
    use crate::schema::outbox_subscriptions::dsl::*;
    diesel::delete(outbox_subscriptions.filter(handler.eq(handler_name))).execute(conn)
}

pub fn add_subscription(conn: &mut PgConnection, subscription: &Subscription) -> QueryResult<usize> {
    crate::as_module!(conn, Module::Outbox);
    use crate::schema::outbox_subscriptions::dsl::*;
    let rows: Vec<_> = subscription
        .events
        .iter()
        .map(|kind| (handler.eq(subscription.handler), event_type.eq(kind.as_str())))
        .collect();
    diesel::insert_into(outbox_subscriptions).values(&rows).on_conflict_do_nothing().execute(conn)
}

/// Completes `from`'s unfinished deliveries, saying `note`, and makes `to` deliver their events
/// (again). A dispatcher batch holding one of them finishes first: they are locked, not skipped.
/// Returns how many were handed over.
pub fn hand_over(conn: &mut PgConnection, from: &str, to: &str, note: &str) -> QueryResult<usize> {
    crate::as_module!(conn, Module::Outbox);
    use crate::schema::event_deliveries::dsl::*;
    let open: Vec<i64> = event_deliveries
        .filter(handler.eq(from))
        .filter(status.ne("completed"))
        .select(event_id)
        .for_update()
        .load(conn)?;
    if open.is_empty() {
        return Ok(0);
    }
    diesel::update(event_deliveries.filter(handler.eq(from)).filter(event_id.eq_any(&open)))
        .set((status.eq("completed"), completed_at.eq(diesel::dsl::now), last_error.eq(note)))
        .execute(conn)?;
    deliver_again(conn, &open, to)?;
    Ok(open.len())
}

/// Makes `handler_name` deliver each of `events` from its first attempt, whether it had a
/// delivery of it (finished or not) or none.
pub fn deliver_again(conn: &mut PgConnection, events: &[i64], handler_name: &str) -> QueryResult<usize> {
    crate::as_module!(conn, Module::Outbox);
    diesel::sql_query(
        "INSERT INTO event_deliveries (event_id, handler) SELECT unnest($1::bigint[]), $2
         ON CONFLICT (event_id, handler) DO UPDATE
            SET status = 'pending', attempts = 0, next_attempt_at = now(), completed_at = NULL, last_error = NULL",
    )
    .bind::<Array<BigInt>, _>(events)
    .bind::<Text, _>(handler_name)
    .execute(conn)
}

#[derive(QueryableByName)]
struct EventId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The events of `subscription`'s types created since `since`, or whose delivery to its handler
/// was completed with `note` (handed over earlier).
pub fn events_since(
    conn: &mut PgConnection,
    subscription: &Subscription,
    since: DateTime<Utc>,
    note: &str,
) -> QueryResult<Vec<i64>> {
    crate::as_module!(conn, Module::Outbox);
    let types: Vec<&str> = subscription.events.iter().map(|kind| kind.as_str()).collect();
    let rows: Vec<EventId> = diesel::sql_query(
        "SELECT e.id FROM events e
          WHERE e.event_type = ANY($1)
            AND (e.created_at >= $2
                 OR EXISTS (SELECT 1 FROM event_deliveries d
                             WHERE d.event_id = e.id AND d.handler = $3 AND d.last_error = $4))
          ORDER BY e.id",
    )
    .bind::<Array<Text>, _>(&types)
    .bind::<Timestamptz, _>(since)
    .bind::<Text, _>(subscription.handler)
    .bind::<Text, _>(note)
    .load(conn)?;
    Ok(rows.into_iter().map(|row| row.id).collect())
}
