//! Diesel queries on `payments` and `payment_refunds` (reading `orders` for the admin list).

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Timestamptz, Uuid as SqlUuid};

use super::model::{NewPayment, Payment, PaymentListItem, PaymentStatus, Refund};
use crate::ids::{OrderId, PaymentId};

pub fn insert(conn: &mut PgConnection, payment: &NewPayment<'_>) -> QueryResult<Payment> {
    diesel::insert_into(crate::schema::payments::table)
        .values(payment)
        .returning(Payment::as_returning())
        .get_result(conn)
}

/// The succeeded payment of an order, locked (a refund is about to be recorded against it).
pub fn succeeded_for_order(conn: &mut PgConnection, order: OrderId) -> QueryResult<Option<Payment>> {
    use crate::schema::payments::dsl::*;
    payments
        .filter(order_id.eq(order))
        .filter(status.eq(PaymentStatus::Succeeded))
        .select(Payment::as_select())
        .for_update()
        .first(conn)
        .optional()
}

pub fn insert_refund(conn: &mut PgConnection, payment: PaymentId, amount: i64, why: &str) -> QueryResult<Refund> {
    use crate::schema::payment_refunds::dsl::*;
    diesel::insert_into(payment_refunds)
        .values((payment_id.eq(payment), amount_minor.eq(amount), reason.eq(why)))
        .returning(Refund::as_returning())
        .get_result(conn)
}

/// Payments newest first, with their order number and refund, from just after `after`.
pub fn list(
    conn: &mut PgConnection,
    after: Option<(chrono::DateTime<chrono::Utc>, PaymentId)>,
    limit: i64,
) -> QueryResult<Vec<PaymentListItem>> {
    use crate::schema::{orders, payment_refunds, payments};
    let mut query = payments::table
        .inner_join(orders::table)
        .left_join(payment_refunds::table)
        .select((Payment::as_select(), orders::number, payment_refunds::amount_minor.nullable()))
        .order((payments::created_at.desc(), payments::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some((after_created, after_id)) = after {
        query = query.filter(
            sql::<Bool>("(payments.created_at, payments.id) < (")
                .bind::<Timestamptz, _>(after_created)
                .sql(", ")
                .bind::<SqlUuid, _>(after_id)
                .sql(")"),
        );
    }
    query.load(conn)
}
