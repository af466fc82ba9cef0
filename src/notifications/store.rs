//! Diesel queries on `notifications`.

use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::model::{NewNotification, Notification, NotificationStatus};
use super::{NotificationFilter, NotificationSort};
use crate::ids::OrderId;

/// Every column of an e-mail but its two bodies, which come back empty: what the lists show
/// (an order's e-mails, the API's pages, the admin list) without reading kilobytes they drop.
/// A macro because the select's type is the columns' tuple.
macro_rules! without_bodies {
    () => {{
        use crate::schema::notifications::dsl as n;
        let empty = || diesel::dsl::sql::<diesel::sql_types::Text>("''");
        (
            n::id,
            n::event_id,
            n::order_id,
            n::kind,
            n::recipient,
            n::subject,
            empty(),
            empty(),
            n::message_id,
            n::status,
            n::attempts,
            n::last_error,
            n::sent_at,
            n::created_at,
            n::round_attempts,
        )
    }};
}

/// The e-mail of this event, locked, if it was rendered before.
pub fn find_for_update(conn: &mut PgConnection, event: i64) -> QueryResult<Option<Notification>> {
    use crate::schema::notifications::dsl::*;
    notifications.filter(event_id.eq(event)).select(Notification::as_select()).for_update().first(conn).optional()
}

pub fn insert(conn: &mut PgConnection, notification: &NewNotification) -> QueryResult<Notification> {
    diesel::insert_into(crate::schema::notifications::table)
        .values(notification)
        .returning(Notification::as_returning())
        .get_result(conn)
}

pub fn mark_delivered(conn: &mut PgConnection, notification: Uuid, new_status: NotificationStatus) -> QueryResult<()> {
    use crate::schema::notifications::dsl::*;
    diesel::update(notifications.find(notification))
        .set((
            status.eq(new_status),
            attempts.eq(attempts + 1),
            sent_at.eq(diesel::dsl::now),
            last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// One more failed attempt: pending again, due at `retry_at` when the sender retries it (the
/// outbox schedules its own retries and passes `None`), or failed when `given_up`.
pub fn mark_failed_attempt(
    conn: &mut PgConnection,
    notification: Uuid,
    error: &str,
    given_up: bool,
    retry_at: Option<DateTime<Utc>>,
) -> QueryResult<()> {
    use crate::schema::notifications::dsl::*;
    diesel::update(notifications.find(notification))
        .set((
            status.eq(if given_up { NotificationStatus::Failed } else { NotificationStatus::Pending }),
            attempts.eq(attempts + 1),
            round_attempts.eq(round_attempts + 1),
            last_error.eq(error.chars().take(2000).collect::<String>()),
            retry_at.map(|at| next_attempt_at.eq(at)),
        ))
        .execute(conn)?;
    Ok(())
}

/// The pending e-mail that has been due longest, locked; one another sender holds is skipped.
/// The claim also writes the row (changing nothing), so that a table write-locked by a move
/// (`agora split notifications`) refuses the claim before anything is sent.
pub fn claim_due(conn: &mut PgConnection) -> QueryResult<Option<Notification>> {
    use crate::schema::notifications::dsl::*;
    let due = notifications
        .filter(status.eq(NotificationStatus::Pending))
        .filter(next_attempt_at.le(diesel::dsl::now))
        .order(next_attempt_at)
        .select(Notification::as_select())
        .for_update()
        .skip_locked()
        .first(conn)
        .optional()?;
    if let Some(email) = &due {
        diesel::update(notifications.find(email.id)).set(next_attempt_at.eq(next_attempt_at)).execute(conn)?;
    }
    Ok(due)
}

/// When the next pending e-mail falls due, if any is pending.
pub fn next_due(conn: &mut PgConnection) -> QueryResult<Option<DateTime<Utc>>> {
    use crate::schema::notifications::dsl::*;
    notifications.filter(status.eq(NotificationStatus::Pending)).select(diesel::dsl::min(next_attempt_at)).first(conn)
}

pub fn find(conn: &mut PgConnection, notification: Uuid) -> QueryResult<Option<Notification>> {
    use crate::schema::notifications::dsl::*;
    notifications.find(notification).select(Notification::as_select()).first(conn).optional()
}

/// An order's e-mails, oldest first.
pub fn of_order(conn: &mut PgConnection, order: OrderId) -> QueryResult<Vec<Notification>> {
    use crate::schema::notifications::dsl::*;
    notifications
        .filter(order_id.eq(order))
        .order((created_at.asc(), id.asc()))
        .select(Notification::as_select())
        .load(conn)
}

/// E-mails newest first, without their bodies, optionally of one order, from just after `after`.
pub fn list(
    conn: &mut PgConnection,
    order: Option<OrderId>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<Notification>> {
    use crate::schema::notifications::dsl::*;
    let mut query =
        notifications.select(without_bodies!()).order((created_at.desc(), id.desc())).limit(limit).into_boxed();
    if let Some(order) = order {
        query = query.filter(order_id.eq(order));
    }
    if let Some((after_created, after_id)) = after {
        query = query.filter(
            sql::<Bool>("(notifications.created_at, notifications.id) < (")
                .bind::<Timestamptz, _>(after_created)
                .sql(", ")
                .bind::<SqlUuid, _>(after_id)
                .sql(")"),
        );
    }
    query.load(conn)
}

/// One e-mail, locked.
pub fn find_by_id_for_update(conn: &mut PgConnection, notification: Uuid) -> QueryResult<Option<Notification>> {
    use crate::schema::notifications::dsl::*;
    notifications.find(notification).select(Notification::as_select()).for_update().first(conn).optional()
}

/// A failed e-mail back to pending, due now with a new round of attempts: the last error
/// belonged to the attempts given up on.
pub fn mark_pending_again(conn: &mut PgConnection, notification: Uuid) -> QueryResult<bool> {
    use crate::schema::notifications::dsl::*;
    let updated = diesel::update(notifications.find(notification).filter(status.eq(NotificationStatus::Failed)))
        .set((
            status.eq(NotificationStatus::Pending),
            last_error.eq(None::<String>),
            round_attempts.eq(0),
            next_attempt_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(updated == 1)
}

/// Narrows a boxed query over `notifications` to a [`NotificationFilter`]. A macro because the
/// boxed query types of the list and of the counts differ.
macro_rules! narrowed {
    ($query:expr, $filter:expr) => {{
        use crate::schema::notifications::dsl as n;
        let filter: &NotificationFilter = $filter;
        let mut query = $query;
        if let Some(wanted) = filter.status {
            query = query.filter(n::status.eq(wanted));
        }
        if let Some(wanted) = filter.kind {
            query = query.filter(n::kind.eq(wanted));
        }
        if let Some(part) = filter.recipient.as_deref().filter(|part| !part.is_empty()) {
            query = query.filter(n::recipient.ilike(crate::input::like_containing(part)));
        }
        query
    }};
}

/// The e-mails in `in_status` matching `filter`, counted up to `limit`.
pub fn count_matching(
    conn: &mut PgConnection,
    filter: &NotificationFilter,
    in_status: NotificationStatus,
    limit: i64,
) -> QueryResult<i64> {
    use crate::schema::notifications::dsl::*;
    let query = notifications.select(id).filter(status.eq(in_status)).into_boxed();
    let ids: Vec<Uuid> = narrowed!(query, filter).limit(limit).load(conn)?;
    Ok(ids.len() as i64)
}

/// A page of the e-mails matching `filter`; ties (equal attempts) newest first, so that
/// consecutive pages neither repeat nor skip an e-mail.
pub fn filtered(
    conn: &mut PgConnection,
    filter: &NotificationFilter,
    sort: NotificationSort,
    descending: bool,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<Notification>> {
    use crate::schema::notifications::dsl::*;
    let query = notifications.select(without_bodies!()).into_boxed();
    let query = narrowed!(query, filter);
    let query = match (sort, descending) {
        (NotificationSort::CreatedAt, true) => query.order((created_at.desc(), id.desc())),
        (NotificationSort::CreatedAt, false) => query.order((created_at.asc(), id.asc())),
        (NotificationSort::Attempts, true) => query.order((attempts.desc(), created_at.desc(), id.desc())),
        (NotificationSort::Attempts, false) => query.order((attempts.asc(), created_at.desc(), id.desc())),
    };
    query.offset(offset).limit(limit).load(conn)
}
