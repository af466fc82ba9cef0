//! Diesel queries on `notifications`.

use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::model::{EmailKind, NewNotification, Notification, NotificationStatus};
use crate::ids::OrderId;

/// The e-mail of this kind for this order, locked, if it was rendered before.
pub fn find_for_update(
    conn: &mut PgConnection,
    order: OrderId,
    email_kind: EmailKind,
) -> QueryResult<Option<Notification>> {
    use crate::schema::notifications::dsl::*;
    notifications
        .filter(order_id.eq(order))
        .filter(kind.eq(email_kind))
        .select(Notification::as_select())
        .for_update()
        .first(conn)
        .optional()
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

pub fn mark_failed_attempt(
    conn: &mut PgConnection,
    notification: Uuid,
    error: &str,
    given_up: bool,
) -> QueryResult<()> {
    use crate::schema::notifications::dsl::*;
    diesel::update(notifications.find(notification))
        .set((
            status.eq(if given_up { NotificationStatus::Failed } else { NotificationStatus::Pending }),
            attempts.eq(attempts + 1),
            last_error.eq(error.chars().take(2000).collect::<String>()),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut PgConnection, notification: Uuid) -> QueryResult<Option<Notification>> {
    use crate::schema::notifications::dsl::*;
    notifications.find(notification).select(Notification::as_select()).first(conn).optional()
}

/// E-mails newest first, optionally of one order, from just after `after`.
pub fn list(
    conn: &mut PgConnection,
    order: Option<OrderId>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<Notification>> {
    use crate::schema::notifications::dsl::*;
    let mut query =
        notifications.select(Notification::as_select()).order((created_at.desc(), id.desc())).limit(limit).into_boxed();
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
