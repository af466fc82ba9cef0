//! Payment rows. Order ids are the shared kernel's: payments records charges against orders
//! without depending on the orders module's code.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::ids::{OrderId, PaymentId, RefundId};
use crate::text_enum::text_enum;

text_enum! {
    /// What became of a charge attempt.
    pub enum PaymentStatus {
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = crate::schema::payments)]
pub struct Payment {
    pub id: PaymentId,
    pub order_id: OrderId,
    pub status: PaymentStatus,
    pub amount_minor: i64,
    pub currency: String,
    pub card_brand: String,
    pub card_last4: String,
    pub decline_code: Option<String>,
    pub gateway_reference: String,
    pub created_at: DateTime<Utc>,
    /// What has been refunded of it so far, in all its refunds.
    pub refunded_minor: i64,
}

impl Payment {
    pub fn succeeded(&self) -> bool {
        self.status == PaymentStatus::Succeeded
    }

    /// What can still be refunded: the captured amount less every refund so far.
    pub fn remaining_minor(&self) -> i64 {
        if self.succeeded() { self.amount_minor - self.refunded_minor } else { 0 }
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = crate::schema::payments)]
pub struct NewPayment<'a> {
    pub id: PaymentId,
    pub order_id: OrderId,
    pub status: PaymentStatus,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub card_brand: &'static str,
    pub card_last4: &'a str,
    pub decline_code: Option<&'static str>,
    pub gateway_reference: &'a str,
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = crate::schema::payment_refunds)]
pub struct Refund {
    pub id: RefundId,
    pub payment_id: PaymentId,
    pub amount_minor: i64,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

/// A payment as the admin list shows it: with its order's number.
#[derive(Clone, Debug, Queryable)]
pub struct PaymentListItem {
    pub payment: Payment,
    pub order_number: i64,
}
