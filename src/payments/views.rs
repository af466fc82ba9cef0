//! The JSON shape of a payment attempt, as the order views embed it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Payment, PaymentStatus, Refund};
use crate::ids::{OrderId, PaymentId};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CardView {
    pub brand: String,
    pub last4: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefundView {
    pub amount_minor: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentView {
    pub id: PaymentId,
    pub order_id: OrderId,
    pub status: PaymentStatus,
    pub amount_minor: i64,
    pub currency: String,
    pub card: CardView,
    /// Why the gateway declined: `card_declined`, `insufficient_funds`, `expired_card`.
    pub decline_code: Option<String>,
    pub refund: Option<RefundView>,
    pub created_at: DateTime<Utc>,
}

impl PaymentView {
    pub fn new(payment: Payment, refund: Option<Refund>) -> Self {
        PaymentView {
            id: payment.id,
            order_id: payment.order_id,
            status: payment.status,
            amount_minor: payment.amount_minor,
            currency: payment.currency,
            card: CardView { brand: payment.card_brand, last4: payment.card_last4 },
            decline_code: payment.decline_code,
            refund: refund
                .map(|refund| RefundView { amount_minor: refund.amount_minor, created_at: refund.created_at }),
            created_at: payment.created_at,
        }
    }
}
