//! Diesel queries on `payments` and `payment_refunds` (reading `orders` for the admin list).

use diesel::prelude::*;

use super::model::{NewPayment, Payment, PaymentListItem, PaymentStatus, Refund};
use super::{PaymentFilter, PaymentSort};
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

/// Adds `amount` to what has been refunded of the payment; the table's CHECK refuses a sum past
/// the captured amount.
pub fn add_refunded(conn: &mut PgConnection, payment: PaymentId, amount: i64) -> QueryResult<Payment> {
    use crate::schema::payments::dsl::*;
    diesel::update(payments.find(payment))
        .set(refunded_minor.eq(refunded_minor + amount))
        .returning(Payment::as_returning())
        .get_result(conn)
}

pub fn insert_refund(conn: &mut PgConnection, payment: PaymentId, amount: i64, why: &str) -> QueryResult<Refund> {
    use crate::schema::payment_refunds::dsl::*;
    diesel::insert_into(payment_refunds)
        .values((payment_id.eq(payment), amount_minor.eq(amount), reason.eq(why)))
        .returning(Refund::as_returning())
        .get_result(conn)
}

/// Narrows a boxed query over `payments` (joined to other tables or not) to a [`PaymentFilter`],
/// but for the order number, which depends on whether `orders` is joined. A macro because the
/// boxed query types of the list and of the tally differ.
macro_rules! narrowed {
    ($query:expr, $filter:expr) => {{
        use crate::schema::payments;
        let filter: &PaymentFilter = $filter;
        let mut query = $query;
        if let Some(wanted) = filter.status {
            query = query.filter(payments::status.eq(wanted));
        }
        if let Some(brand) = filter.card_brand {
            query = query.filter(payments::card_brand.eq(brand));
        }
        if let Some(from) = filter.created_from {
            query = query.filter(payments::created_at.ge(from));
        }
        if let Some(before) = filter.created_before {
            query = query.filter(payments::created_at.lt(before));
        }
        query
    }};
}

/// Status, amount and refunded sum of at most `limit` payments matching `filter`, in no order:
/// what a bounded count and its sums need.
pub fn tally(
    conn: &mut PgConnection,
    filter: &PaymentFilter,
    limit: i64,
) -> QueryResult<Vec<(PaymentStatus, i64, i64)>> {
    use crate::schema::{orders, payments};
    let mut query =
        payments::table.select((payments::status, payments::amount_minor, payments::refunded_minor)).into_boxed();
    if let Some(wanted) = filter.order_number {
        // The unique index on the order number, then payments_order_idx.
        query =
            query.filter(payments::order_id.eq_any(orders::table.filter(orders::number.eq(wanted)).select(orders::id)));
    }
    narrowed!(query, filter).limit(limit).load(conn)
}

/// A page of the payments matching `filter`. Ties (equal amounts) are broken newest first, so
/// that consecutive pages neither repeat nor skip a payment.
pub fn filtered(
    conn: &mut PgConnection,
    filter: &PaymentFilter,
    sort: PaymentSort,
    descending: bool,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<PaymentListItem>> {
    use crate::schema::{orders, payments};
    let query = payments::table.inner_join(orders::table).select((Payment::as_select(), orders::number)).into_boxed();
    let mut query = narrowed!(query, filter);
    if let Some(wanted) = filter.order_number {
        query = query.filter(orders::number.eq(wanted));
    }
    let query = match (sort, descending) {
        (PaymentSort::CreatedAt, true) => query.order((payments::created_at.desc(), payments::id.desc())),
        (PaymentSort::CreatedAt, false) => query.order((payments::created_at.asc(), payments::id.asc())),
        (PaymentSort::Amount, true) => {
            query.order((payments::amount_minor.desc(), payments::created_at.desc(), payments::id.desc()))
        }
        (PaymentSort::Amount, false) => {
            query.order((payments::amount_minor.asc(), payments::created_at.desc(), payments::id.desc()))
        }
    };
    query.offset(offset).limit(limit).load(conn)
}
