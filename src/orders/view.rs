//! The aggregated order: what an API gateway would assemble from five services' APIs, read here
//! straight from five modules' tables, in five queries whatever the order's size, and from one
//! snapshot (a read-only repeatable-read transaction), so the parts agree with each other.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::OrdersError;
use super::model::{Customer, Order, OrderLine, RefundLine};
use crate::ids::OrderId;
use crate::kernel::Module;
use crate::notifications::{EmailKind, NotificationStatus};
use crate::payments::{Payment, Refund};

#[derive(Clone, Debug)]
pub struct OrderDetails {
    pub order: Order,
    pub customer: Customer,
    pub lines: Vec<OrderLine>,
    /// The units each refund gave back, line by line.
    pub refund_lines: Vec<RefundLine>,
    /// Each payment attempt with its refunds, oldest first.
    pub payments: Vec<(Payment, Vec<Refund>)>,
    pub notifications: Vec<NotificationSummary>,
    /// Why the e-mails could not be listed (the notifications service did not answer): the rest
    /// of the view stands without them.
    pub notifications_unavailable: Option<String>,
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

impl From<crate::notifications::Notification> for NotificationSummary {
    fn from(email: crate::notifications::Notification) -> NotificationSummary {
        NotificationSummary {
            id: email.id,
            kind: email.kind,
            recipient: email.recipient,
            subject: email.subject,
            status: email.status,
            attempts: email.attempts,
            last_error: email.last_error,
            sent_at: email.sent_at,
            created_at: email.created_at,
        }
    }
}

impl OrderDetails {
    /// The e-mails as the notifications service gave them, or why it did not.
    pub fn with_emails(mut self, emails: Option<Result<Vec<crate::notifications::Notification>, String>>) -> Self {
        match emails {
            None => {}
            Some(Ok(emails)) => self.notifications = emails.into_iter().map(NotificationSummary::from).collect(),
            Some(Err(reason)) => self.notifications_unavailable = Some(reason),
        }
        self
    }

    /// Units of the line refunded so far.
    pub fn refunded_quantity(&self, line_no: i16) -> i32 {
        self.refund_lines.iter().filter(|refund| refund.line_no == line_no).map(|refund| refund.quantity).sum()
    }

    /// Units of the line not refunded: still to ship, or shipped and kept.
    pub fn units_left(&self, line: &OrderLine) -> i32 {
        line.quantity - self.refunded_quantity(line.line_no)
    }

    /// Units of every line not refunded.
    pub fn all_units_left(&self) -> i64 {
        self.lines.iter().map(|line| i64::from(self.units_left(line))).sum()
    }

    /// What has been refunded of the order so far.
    pub fn refunded_minor(&self) -> i64 {
        self.refunded_and_remaining().0
    }

    /// What is left to refund of what was captured.
    pub fn remaining_minor(&self) -> i64 {
        self.refunded_and_remaining().1
    }

    /// What has been refunded of the order, and what is left to refund of what was captured.
    pub fn refunded_and_remaining(&self) -> (i64, i64) {
        self.payments
            .iter()
            .find(|(payment, _)| payment.succeeded())
            .map_or((0, 0), |(payment, _)| (payment.refunded_minor, payment.remaining_minor()))
    }
}

/// The order from one snapshot; its e-mails too when `emails_here` (notifications in this
/// database), else none: the caller asks the notifications service ([`OrderDetails::with_emails`]).
pub fn order_details(
    conn: &mut PgConnection,
    order_id: OrderId,
    emails_here: bool,
) -> Result<OrderDetails, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    details_of(conn, Wanted::Id(order_id), emails_here)?.ok_or(OrdersError::NotFound(order_id))
}

/// The order whose status page `status_token` opens, for its customer: `None` for a token that
/// opens none. Its e-mails are not part of it.
pub fn order_for_status_page(conn: &mut PgConnection, status_token: &str) -> Result<Option<OrderDetails>, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    details_of(conn, Wanted::StatusToken(status_token), false)
}

enum Wanted<'a> {
    Id(OrderId),
    StatusToken(&'a str),
}

fn details_of(
    conn: &mut PgConnection,
    wanted: Wanted<'_>,
    emails_here: bool,
) -> Result<Option<OrderDetails>, OrdersError> {
    use crate::schema::{
        customers, events, notifications, order_lines, order_refund_lines, orders, payment_refunds, payments,
    };
    crate::db::read_only_snapshot(conn, |conn| {
        let query = orders::table.inner_join(customers::table).select((Order::as_select(), Customer::as_select()));
        let found = match wanted {
            Wanted::Id(order_id) => query.filter(orders::id.eq(order_id)).first(conn).optional()?,
            Wanted::StatusToken(token) => query.filter(orders::status_token.eq(token)).first(conn).optional()?,
        };
        let Some((order, customer)) = found else { return Ok(None) };
        let order_id = order.id;
        // Lines with what was refunded of them, and payments with their refunds: one query each,
        // whatever the number of lines, payments or refunds.
        let rows: Vec<(OrderLine, Option<RefundLine>)> = order_lines::table
            .left_join(
                order_refund_lines::table.on(order_refund_lines::order_id
                    .eq(order_lines::order_id)
                    .and(order_refund_lines::line_no.eq(order_lines::line_no))),
            )
            .filter(order_lines::order_id.eq(order_id))
            .order((order_lines::line_no.asc(), order_refund_lines::refund_id.asc()))
            .select((OrderLine::as_select(), Option::<RefundLine>::as_select()))
            .load(conn)?;
        let mut lines: Vec<OrderLine> = Vec::new();
        let mut refund_lines = Vec::new();
        for (line, refunded) in rows {
            if lines.last().is_none_or(|last| last.line_no != line.line_no) {
                lines.push(line);
            }
            refund_lines.extend(refunded);
        }
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
        let notifications = if emails_here {
            notifications::table
                .filter(notifications::order_id.eq(order_id))
                .order(notifications::event_id.asc())
                .select(NotificationSummary::as_select())
                .load(conn)?
        } else {
            Vec::new()
        };
        let events = events::table
            .filter(events::aggregate_id.eq(order_id))
            .order(events::id.asc())
            .select(EventSummary::as_select())
            .load(conn)?;
        Ok(Some(OrderDetails {
            order,
            customer,
            lines,
            refund_lines,
            payments,
            notifications,
            notifications_unavailable: None,
            events,
        }))
    })
}
