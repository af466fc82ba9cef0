//! The JSON shapes of orders, and of the aggregated order view.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::ids::{OrderId, ProductId};
use crate::notifications::{EmailKind, NotificationStatus};
use crate::orders::{Customer, Order, OrderDetails, OrderLine, OrderStatus};
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
    pub events: Vec<EventView>,
}

impl From<OrderDetails> for OrderDetailsView {
    fn from(details: OrderDetails) -> Self {
        let order_id = details.order.id;
        OrderDetailsView {
            order: OrderView::new(details.order, details.customer, details.lines),
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
