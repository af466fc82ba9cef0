//! Payments: charges against orders through a card gateway (simulated), declines and refunds.
//! The module's public face.
//!
//! Only the card's brand and last four digits are stored or logged. The orders module calls
//! [`charge`] and [`refund`] inside its own transaction, so that a payment and the order's
//! status change commit together.

pub mod card;
pub mod gateway;
mod model;
pub mod pages;
mod store;
pub mod views;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

pub use card::{Card, CardBrand, CardNumber};
pub use gateway::{CardGateway, ChargeOutcome, DeclineCode, SimulatedGateway};
pub use model::{Payment, PaymentListItem, PaymentStatus, Refund};

use crate::error::AppError;
use crate::ids::{OrderId, PaymentId};
use crate::kernel::{Call, Module, TableAccess, Use};

pub const TABLES: TableAccess = TableAccess {
    module: Module::Payments,
    owns: &["payments", "payment_refunds"],
    reads: &[Use { table: "orders", reason: "the payments list shows the number of each payment's order" }],
    writes: &[],
};

pub const CALLS: &[Call] =
    &[Call { module: Module::Admin, reason: "its admin pages use the admin layout, session and CSRF token" }];

#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error("order {0} is paid already")]
    AlreadyPaid(OrderId),
    #[error("order {0} has no successful payment to refund")]
    NothingToRefund(OrderId),
    /// A refund of more than is left of the payment (or of nothing).
    #[error("a refund of {requested_minor} for order {order_id}, of which {remaining_minor} is left to refund")]
    RefundExceeds { order_id: OrderId, requested_minor: i64, remaining_minor: i64 },
    #[error(transparent)]
    Database(#[from] DieselError),
}

impl From<PaymentsError> for AppError {
    fn from(error: PaymentsError) -> Self {
        match error {
            PaymentsError::AlreadyPaid(_) => AppError::conflict("already-paid", "The order is paid already."),
            PaymentsError::NothingToRefund(_) => {
                AppError::conflict("nothing-to-refund", "The order has no successful payment to refund.")
            }
            PaymentsError::RefundExceeds { requested_minor, remaining_minor, .. } => AppError::conflict(
                "refund-exceeds-remaining",
                format!(
                    "A refund of {requested_minor} minor units exceeds the {remaining_minor} left to refund of the \
                     captured amount."
                ),
            )
            .with("requested_minor", requested_minor)
            .with("remaining_minor", remaining_minor),
            PaymentsError::Database(error) => error.into(),
        }
    }
}

/// Charges `amount_minor` to `card` for `order_id` and records the attempt, succeeded or
/// declined. A second successful payment of one order is refused by a unique index, whatever
/// races the callers run.
pub fn charge(
    conn: &mut PgConnection,
    gateway: &dyn CardGateway,
    order_id: OrderId,
    amount_minor: i64,
    currency: &str,
    card: &Card,
) -> Result<Payment, PaymentsError> {
    crate::as_module!(conn, Module::Payments);
    let (status, decline_code, reference) = match gateway.charge(card, amount_minor, currency) {
        ChargeOutcome::Captured { reference } => (PaymentStatus::Succeeded, None, reference),
        ChargeOutcome::Declined { code, reference } => (PaymentStatus::Failed, Some(code.as_str()), reference),
    };
    let payment = model::NewPayment {
        id: PaymentId::new(),
        order_id,
        status,
        amount_minor,
        currency,
        card_brand: card.number.brand().as_str(),
        card_last4: card.number.last4(),
        decline_code,
        gateway_reference: &reference,
    };
    let recorded = store::insert(conn, &payment).map_err(|error| match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => PaymentsError::AlreadyPaid(order_id),
        other => other.into(),
    })?;
    log::info!(
        "payment {} for order {order_id}: {status}{} ({} **** {})",
        recorded.id,
        decline_code.map(|code| format!(" ({code})")).unwrap_or_default(),
        recorded.card_brand,
        recorded.card_last4
    );
    Ok(recorded)
}

/// The order's successful payment, locked until the transaction ends: what it captured and what
/// has been refunded of it so far ([`Payment::remaining_minor`]). A refund about to be decided
/// reads this first, and nothing can refund the payment meanwhile.
pub fn refundable(conn: &mut PgConnection, order_id: OrderId) -> Result<Payment, PaymentsError> {
    crate::as_module!(conn, Module::Payments);
    store::succeeded_for_order(conn, order_id)?.ok_or(PaymentsError::NothingToRefund(order_id))
}

/// Refunds `amount_minor` of the order's successful payment: one more refund row, and the
/// payment's running sum. Refunds of one payment follow one another under its row lock, and never
/// add up to more than it captured: this checks, and PostgreSQL's CHECK on the sum refuses it too.
/// Returns the payment as it now stands, with the refund.
pub fn refund(
    conn: &mut PgConnection,
    order_id: OrderId,
    amount_minor: i64,
    reason: &str,
) -> Result<(Payment, Refund), PaymentsError> {
    crate::as_module!(conn, Module::Payments);
    let payment = store::succeeded_for_order(conn, order_id)?.ok_or(PaymentsError::NothingToRefund(order_id))?;
    let exceeds = || PaymentsError::RefundExceeds {
        order_id,
        requested_minor: amount_minor,
        remaining_minor: payment.remaining_minor(),
    };
    if amount_minor <= 0 || amount_minor > payment.remaining_minor() {
        return Err(exceeds());
    }
    let refunded = store::add_refunded(conn, payment.id, amount_minor).map_err(|error| match error {
        DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, _) => exceeds(),
        other => other.into(),
    })?;
    let refund = store::insert_refund(conn, payment.id, amount_minor, reason)?;
    log::info!(
        "refund {} of {amount_minor} for order {order_id} ({} of {} refunded)",
        refund.id,
        refunded.refunded_minor,
        refunded.amount_minor
    );
    Ok((refunded, refund))
}

/// What the admin list of payments is narrowed to; `None` is "any".
#[derive(Clone, Debug, Default)]
pub struct PaymentFilter {
    pub status: Option<PaymentStatus>,
    /// A stored brand word (`visa`), see [`CardBrand::as_str`].
    pub card_brand: Option<&'static str>,
    pub order_number: Option<i64>,
    /// Created at or after this instant.
    pub created_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Created before this instant (exclusive), so that a whole last day is included.
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// The column the admin list of payments sorts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentSort {
    CreatedAt,
    Amount,
}

/// Sums of the payments matching a filter. Sums of many amounts are `i128` (see `crate::money`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PaymentTotals {
    pub succeeded_minor: i128,
    pub refunded_minor: i128,
}

/// How many payments match a filter, counted up to `cap + 1`, and their sums when there are no
/// more than `cap`: past the cap the page says "more than" rather than scanning everything.
#[derive(Clone, Copy, Debug)]
pub struct PaymentTally {
    pub counted: i64,
    pub totals: Option<PaymentTotals>,
}

pub fn tally_payments(
    conn: &mut PgConnection,
    filter: &PaymentFilter,
    cap: i64,
) -> Result<PaymentTally, PaymentsError> {
    crate::as_module!(conn, Module::Payments);
    let rows = store::tally(conn, filter, cap + 1)?;
    let counted = rows.len() as i64;
    let totals = (counted <= cap).then(|| {
        rows.iter().fold(PaymentTotals::default(), |mut totals, (status, amount, refunded)| {
            if *status == PaymentStatus::Succeeded {
                totals.succeeded_minor += i128::from(*amount);
            }
            totals.refunded_minor += i128::from(*refunded);
            totals
        })
    });
    Ok(PaymentTally { counted, totals })
}

/// One page of the payments matching `filter`, with their order numbers and refunds.
pub fn find_payments(
    conn: &mut PgConnection,
    filter: &PaymentFilter,
    sort: PaymentSort,
    descending: bool,
    offset: i64,
    limit: i64,
) -> Result<Vec<PaymentListItem>, PaymentsError> {
    crate::as_module!(conn, Module::Payments);
    Ok(store::filtered(conn, filter, sort, descending, offset, limit)?)
}
