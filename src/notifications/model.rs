//! E-mail rows and the kinds of e-mail Agora sends.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::events::{Aggregate, DomainEvent, OrderSnapshot};
use crate::ids::OrderId;
use crate::text_enum::text_enum;

text_enum! {
    /// Which e-mail of an order's life.
    pub enum EmailKind {
        OrderReceived = "order_received",
        OrderConfirmation = "order_confirmation",
        OrderCancelled = "order_cancelled",
        OrderRefunded = "order_refunded",
        OrderShipped = "order_shipped",
    }
}

text_enum! {
    /// Where an e-mail is: `pending` (to be sent), `sent` (accepted by the SMTP server),
    /// `stored` (no SMTP configured: kept in the database only) or `failed` (given up on).
    pub enum NotificationStatus {
        Pending = "pending",
        Sent = "sent",
        Stored = "stored",
        Failed = "failed",
    }
}

impl EmailKind {
    /// The e-mail an event calls for, the order it is about, and the order as the event
    /// describes it: all the e-mail says.
    pub fn for_event(event: &DomainEvent) -> Option<(EmailKind, OrderId, &OrderSnapshot)> {
        let kind = match event {
            DomainEvent::OrderPlaced(_) => EmailKind::OrderReceived,
            DomainEvent::PaymentSucceeded(_) => EmailKind::OrderConfirmation,
            DomainEvent::OrderCancelled(_) => EmailKind::OrderCancelled,
            DomainEvent::OrderRefunded(_) => EmailKind::OrderRefunded,
            DomainEvent::OrderShipped(_) => EmailKind::OrderShipped,
            DomainEvent::PaymentFailed(_) | DomainEvent::StockLow(_) => return None,
        };
        let Aggregate::Order(order_id) = event.aggregate() else { return None };
        Some((kind, order_id, event.order_snapshot()?))
    }

    pub fn subject(self, number: &str) -> String {
        match self {
            EmailKind::OrderReceived => format!("We received your order {number}"),
            EmailKind::OrderConfirmation => format!("Order {number} confirmed: payment received"),
            EmailKind::OrderCancelled => format!("Order {number} cancelled"),
            EmailKind::OrderRefunded => format!("Order {number} refunded in full"),
            EmailKind::OrderShipped => format!("Order {number} is on its way"),
        }
    }
}

/// An e-mail as kept. Serialized as the notifications service's API gives it; a list leaves the
/// bodies out (empty), one e-mail has them.
#[derive(Clone, Debug, Queryable, Selectable, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = crate::schema::notifications)]
pub struct Notification {
    pub id: Uuid,
    pub event_id: i64,
    pub order_id: OrderId,
    pub kind: EmailKind,
    pub recipient: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text_body: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub html_body: String,
    pub message_id: String,
    pub status: NotificationStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Attempts since the e-mail was last queued (written, or resent by an operator).
    pub round_attempts: i32,
}

impl Notification {
    /// Delivered (to an SMTP server) or kept (store-only mode): nothing more to do.
    pub fn is_done(&self) -> bool {
        matches!(self.status, NotificationStatus::Sent | NotificationStatus::Stored)
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = crate::schema::notifications)]
pub struct NewNotification {
    pub event_id: i64,
    pub order_id: OrderId,
    pub kind: EmailKind,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub message_id: String,
    pub status: NotificationStatus,
    pub attempts: i32,
    pub sent_at: Option<DateTime<Utc>>,
}
