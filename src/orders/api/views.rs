//! The JSON shapes of orders, and of the aggregated order view.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::ids::{OrderId, PaymentId, ProductId, RefundId};
use crate::notifications::{EmailKind, NotificationStatus};
use crate::orders::{Customer, Order, OrderDetails, OrderLine, OrderStatus, RefundOutcome};
use crate::payments::views::PaymentView;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerView {
    pub email: String,
    pub name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemView {
    pub product_id: ProductId,
    /// SKU, name and unit price as they were when the order was placed.
    pub sku: String,
    pub name: String,
    pub unit_price_minor: i64,
    pub quantity: i32,
    pub line_total_minor: i64,
    /// Units refunded line by line so far (a refund of an amount or of the whole order names none).
    pub refunded_quantity: i32,
}

impl From<OrderLine> for ItemView {
    fn from(line: OrderLine) -> Self {
        ItemView {
            product_id: line.product_id,
            sku: line.sku,
            name: line.name,
            unit_price_minor: line.unit_price_minor,
            quantity: line.quantity,
            line_total_minor: line.line_total_minor,
            refunded_quantity: 0,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    pub id: OrderId,
    /// Human-readable and sequential, e.g. `AG-000042`.
    pub number: String,
    pub status: OrderStatus,
    pub customer: CustomerView,
    pub items: Vec<ItemView>,
    pub total_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the order left the warehouse; `null` until it has.
    pub shipped_at: Option<DateTime<Utc>>,
}

impl OrderView {
    pub fn new(order: Order, customer: Customer, lines: Vec<OrderLine>) -> Self {
        OrderView {
            id: order.id,
            number: order.display_number(),
            status: order.status,
            customer: CustomerView { email: customer.email, name: customer.name },
            items: lines.into_iter().map(ItemView::from).collect(),
            total_minor: order.total_minor,
            currency: order.currency,
            created_at: order.created_at,
            updated_at: order.updated_at,
            shipped_at: order.shipped_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    pub id: Uuid,
    pub order_id: OrderId,
    pub kind: EmailKind,
    pub to: String,
    pub subject: String,
    pub status: NotificationStatus,
    pub attempts: i32,
    pub sent_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub id: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// The order with everything other modules know about it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderDetailsView {
    #[serde(flatten)]
    pub order: OrderView,
    pub payments: Vec<PaymentView>,
    pub notifications: Vec<NotificationView>,
    /// Set when the e-mails could not be listed (the notifications service did not answer in
    /// time): `notifications` is then empty, and the rest of the order stands.
    pub notifications_unavailable: Option<String>,
    pub events: Vec<EventView>,
}

impl From<OrderDetails> for OrderDetailsView {
    fn from(details: OrderDetails) -> Self {
        let order_id = details.order.id;
        let refunded: Vec<i32> = details.lines.iter().map(|line| details.refunded_quantity(line.line_no)).collect();
        let mut order = OrderView::new(details.order, details.customer, details.lines);
        for (item, refunded) in order.items.iter_mut().zip(refunded) {
            item.refunded_quantity = refunded;
        }
        let notifications_unavailable = details.notifications_unavailable;
        OrderDetailsView {
            notifications_unavailable,
            order,
            payments: details
                .payments
                .into_iter()
                .map(|(payment, refunds)| PaymentView::new(payment, refunds))
                .collect(),
            notifications: details
                .notifications
                .into_iter()
                .map(|n| NotificationView {
                    id: n.id,
                    order_id,
                    kind: n.kind,
                    to: n.recipient,
                    subject: n.subject,
                    status: n.status,
                    attempts: n.attempts,
                    sent_at: n.sent_at,
                })
                .collect(),
            events: details
                .events
                .into_iter()
                .map(|e| EventView { id: e.id, event_type: e.event_type, payload: e.payload, created_at: e.created_at })
                .collect(),
        }
    }
}

/// An order in a list (without its lines: fetch the order for those).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderListItem {
    pub id: OrderId,
    pub number: String,
    pub status: OrderStatus,
    pub customer: CustomerView,
    pub total_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Units of one line a refund gave back.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefundLineView {
    pub product_id: ProductId,
    /// SKU and name as on the order.
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    /// The line's unit price times `quantity`.
    pub amount_minor: i64,
}

/// A refund made, with the order as it now stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefundResult {
    pub id: RefundId,
    pub order_id: OrderId,
    pub payment_id: PaymentId,
    /// This refund: the amount asked, or the lines' prices times the units asked.
    pub amount_minor: i64,
    pub currency: String,
    /// The units it gave back, in the order's line order; empty for an amount.
    pub lines: Vec<RefundLineView>,
    pub created_at: DateTime<Utc>,
    /// `partially_refunded` while the refunds add up to less than was captured, else `refunded`.
    pub order_status: OrderStatus,
    /// What has been refunded of the order in all, this refund included.
    pub refunded_minor: i64,
    /// What is left to refund of what was captured.
    pub remaining_minor: i64,
}

impl From<RefundOutcome> for RefundResult {
    fn from(outcome: RefundOutcome) -> Self {
        RefundResult {
            id: outcome.refund.id,
            order_id: outcome.order.id,
            payment_id: outcome.payment.id,
            amount_minor: outcome.refund.amount_minor,
            currency: outcome.payment.currency.clone(),
            lines: outcome
                .lines
                .into_iter()
                .map(|line| RefundLineView {
                    product_id: line.product_id,
                    sku: line.sku,
                    name: line.name,
                    quantity: line.quantity,
                    amount_minor: line.amount_minor,
                })
                .collect(),
            created_at: outcome.refund.created_at,
            order_status: outcome.order.status,
            refunded_minor: outcome.payment.refunded_minor,
            remaining_minor: outcome.payment.remaining_minor(),
        }
    }
}
