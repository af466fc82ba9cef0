//! The aggregated order: what an API gateway would assemble from five services' APIs, read here
//! straight from five modules' tables, in five queries whatever the order's size, and from one
//! snapshot (a read-only repeatable-read transaction), so the parts agree with each other.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::model::{Customer, Order, OrderLine};
use super::{OrdersError, store};
use crate::ids::OrderId;
use crate::kernel::Module;
use crate::notifications::{EmailKind, NotificationStatus};
use crate::payments::{Payment, Refund};

#[derive(Clone, Debug)]
pub struct OrderDetails {
    pub order: Order,
    pub customer: Customer,
    pub lines: Vec<OrderLine>,
    /// Each payment attempt with its refunds, oldest first.
    pub payments: Vec<(Payment, Vec<Refund>)>,
    pub notifications: Vec<NotificationSummary>,
    pub events: Vec<EventSummary>,
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = crate::schema::notifications)]
pub struct NotificationSummary {
    pub id: Uuid,
    pub kind: EmailKind,
    pub recipient: String,
    pub subject: String,
    pub status: NotificationStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = crate::schema::events)]
pub struct EventSummary {
    pub id: i64,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

pub fn order_details(conn: &mut PgConnection, order_id: OrderId) -> Result<OrderDetails, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    use crate::schema::{customers, events, notifications, orders, payment_refunds, payments};
    conn.build_transaction().read_only().repeatable_read().run(|conn| {
        let (order, customer) = orders::table
            .inner_join(customers::table)
            .filter(orders::id.eq(order_id))
            .select((Order::as_select(), Customer::as_select()))
            .first(conn)
            .optional()?
            .ok_or(OrdersError::NotFound(order_id))?;
        let lines = store::lines(conn, order_id)?;
        // Payments with their refunds: one query, whatever the number of payments or refunds.
        let rows: Vec<(Payment, Option<Refund>)> = payments::table
            .left_join(payment_refunds::table)
            .filter(payments::order_id.eq(order_id))
            .order((payments::created_at.asc(), payments::id.asc(), payment_refunds::created_at.asc()))
            .select((Payment::as_select(), Option::<Refund>::as_select()))
            .load(conn)?;
        let mut payments: Vec<(Payment, Vec<Refund>)> = Vec::new();
        for (payment, refund) in rows {
            match payments.last_mut() {
                Some((last, refunds)) if last.id == payment.id => refunds.extend(refund),
                _ => payments.push((payment, refund.into_iter().collect())),
            }
        }
        let notifications = notifications::table
            .filter(notifications::order_id.eq(order_id))
            .order(notifications::created_at.asc())
            .select(NotificationSummary::as_select())
            .load(conn)?;
        let events = events::table
            .filter(events::aggregate_id.eq(order_id))
            .order(events::id.asc())
            .select(EventSummary::as_select())
            .load(conn)?;
        Ok(OrderDetails { order, customer, lines, payments, notifications, events })
    })
}
