//! The JSON shape of a payment attempt, as the order views embed it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Payment, PaymentStatus, Refund};
use crate::ids::{OrderId, PaymentId, RefundId};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CardView {
    pub brand: String,
    pub last4: String,
}

/// All the refunds of a payment as one: their sum, and when the last one was made.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefundView {
    pub amount_minor: i64,
    pub created_at: DateTime<Utc>,
}

/// One refund of a payment.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentRefundView {
    pub id: RefundId,
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
    /// The refunds as one (their sum, and when the last one was made), or `null` before any:
    /// what a whole refund always was. `refunds` lists each.
    pub refund: Option<RefundView>,
    /// What has been refunded of the payment so far, in all its refunds.
    pub refunded_minor: i64,
    /// Each refund, oldest first.
    pub refunds: Vec<PaymentRefundView>,
    pub created_at: DateTime<Utc>,
}

impl PaymentView {
    /// The payment with its refunds, oldest first.
    pub fn new(payment: Payment, refunds: Vec<Refund>) -> Self {
        let refund = refunds.last().map(|last| RefundView {
            amount_minor: refunds.iter().map(|refund| refund.amount_minor).sum(),
            created_at: last.created_at,
        });
        PaymentView {
            id: payment.id,
            order_id: payment.order_id,
            status: payment.status,
            amount_minor: payment.amount_minor,
            currency: payment.currency,
            card: CardView { brand: payment.card_brand, last4: payment.card_last4 },
            decline_code: payment.decline_code,
            refund,
            refunded_minor: payment.refunded_minor,
            refunds: refunds
                .into_iter()
                .map(|refund| PaymentRefundView {
                    id: refund.id,
                    amount_minor: refund.amount_minor,
                    created_at: refund.created_at,
                })
                .collect(),
            created_at: payment.created_at,
        }
    }
}
