//! Refunds: the whole order, an amount, or chosen lines, one after another up to what was
//! captured. Each refund locks the order, then its payment, so refunds of one order follow one
//! another however many arrive at once; the payments module records the money (and PostgreSQL
//! refuses a sum past the captured amount), this module the units given back, and before
//! shipping the inventory module takes those units off the reservation, all in one transaction.
//!
//! What a refund does to the order:
//! - it stays `partially_refunded` while the refunds add up to less than was captured, and
//!   becomes `refunded` when they reach it;
//! - refunded lines of an order that has not shipped go back to stock, one ledger movement per
//!   line; an amount gives no goods back;
//! - once refunded in full, an order that has not shipped can never ship, so whatever it still
//!   holds reserved goes back too (an amount that completes the refund included);
//! - after shipping, refunds are money only: returned goods are a stock receipt of their own.

use std::collections::HashMap;

use diesel::prelude::*;

use super::model::{Action, Order, OrderLine, OrderStatus, RefundLine};
use super::snapshot::snapshot;
use super::{OrdersError, lifecycle, store};
use crate::error::FieldError;
use crate::events::{OrderRefunded, PayloadVersion, RefundedLine};
use crate::ids::{OrderId, ProductId};
use crate::input::Whole;
use crate::inventory::{self, StockLine};
use crate::kernel::Module;
use crate::outbox;
use crate::payments::{self, Payment, PaymentsError, Refund};

/// The largest total an order can have: 50 lines of 1,000 units at the catalog's top price of
/// 1,000,000,000 minor units. No refund can be larger.
pub const MAX_ORDER_TOTAL_MINOR: i64 = 50 * 1_000 * 1_000_000_000;
/// What a refund of an amount may ask for (what is left of the order decides the rest).
pub const REFUND_AMOUNT: Whole = Whole::between(1, MAX_ORDER_TOTAL_MINOR);
/// Units of one line a refund may name: up to what a stored line can hold.
pub const REFUND_QUANTITY: Whole = Whole::between(1, 50_000);
/// Lines one refund may name, as many as an order can have.
pub const MAX_REFUND_LINES: usize = super::MAX_LINES;

/// What to refund, past every rule the request can break on its own. Whether it fits the order
/// (its lines, what is left to refund) is decided with the order locked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefundRequest {
    Amount(i64),
    /// Products and units, in the order asked; a product named twice adds up.
    Lines(Vec<(ProductId, i64)>),
}

impl RefundRequest {
    /// Exactly one of an amount and lines, each within its rule; every broken rule at once.
    pub fn parse(
        amount_minor: Option<i64>,
        lines: Option<&[(ProductId, i64)]>,
    ) -> Result<RefundRequest, Vec<FieldError>> {
        match (amount_minor, lines) {
            (None, None) => {
                Err(vec![FieldError::new("amount_minor", "give an amount (amount_minor) or lines to refund")])
            }
            (Some(_), Some(_)) => Err(vec![FieldError::new("lines", "give amount_minor or lines, not both")]),
            (Some(amount), None) => REFUND_AMOUNT
                .check(amount)
                .map(RefundRequest::Amount)
                .map_err(|message| vec![FieldError::new("amount_minor", message)]),
            (None, Some(lines)) => {
                if lines.is_empty() || lines.len() > MAX_REFUND_LINES {
                    return Err(vec![FieldError::new("lines", format!("must have 1 to {MAX_REFUND_LINES} lines"))]);
                }
                let errors: Vec<FieldError> = lines
                    .iter()
                    .enumerate()
                    .filter_map(|(index, (_, quantity))| {
                        REFUND_QUANTITY
                            .check(*quantity)
                            .err()
                            .map(|message| FieldError::new(format!("lines[{index}].quantity"), message))
                    })
                    .collect();
                if errors.is_empty() { Ok(RefundRequest::Lines(lines.to_vec())) } else { Err(errors) }
            }
        }
    }
}

/// A refund made: the order and its payment as they now stand, the refund, and the units it gave
/// back (none for an amount or the whole order).
#[derive(Debug)]
pub struct RefundOutcome {
    pub order: Order,
    pub payment: Payment,
    pub refund: Refund,
    pub lines: Vec<RefundedLine>,
}

/// Refunds an amount or chosen lines of a paid, shipped or partially refunded order (409 for any
/// other status, or for more than is left; 422 for lines the order does not have or units it no
/// longer has to refund).
pub fn refund_part(
    conn: &mut PgConnection,
    order_id: OrderId,
    request: &RefundRequest,
) -> Result<RefundOutcome, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    conn.transaction(|conn| {
        let order = lifecycle::lock(conn, order_id)?;
        // The status first: whatever the request asks, a pending or cancelled order refunds nothing.
        lifecycle::allow(&order, Action::RefundPart)?;
        let lines = store::lines(conn, order.id)?;
        let refunded = refunded_units(conn, order.id)?;
        let (amount, given_back) = match request {
            RefundRequest::Amount(amount) => (*amount, Vec::new()),
            RefundRequest::Lines(asked) => {
                let chosen = choose_lines(&lines, &refunded, asked)?;
                (chosen.iter().map(|(line, units)| line.unit_price_minor * units).sum(), chosen)
            }
        };
        let payment = payments::refundable(conn, order.id)?;
        if amount > payment.remaining_minor() {
            return Err(PaymentsError::RefundExceeds {
                order_id,
                requested_minor: amount,
                remaining_minor: payment.remaining_minor(),
            }
            .into());
        }
        let action = if amount == payment.remaining_minor() { Action::Refund } else { Action::RefundPart };
        record(conn, order, action, amount, &lines, &refunded, given_back)
    })
}

/// Refunds all that is left of the order's payment: the whole order, or the rest after refunds
/// of parts. Before shipping, whatever the order still holds reserved goes back to stock.
pub fn refund(conn: &mut PgConnection, order_id: OrderId) -> Result<Order, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    conn.transaction(|conn| {
        let order = lifecycle::lock(conn, order_id)?;
        lifecycle::allow(&order, Action::Refund)?;
        let lines = store::lines(conn, order.id)?;
        let refunded = refunded_units(conn, order.id)?;
        let remaining = payments::refundable(conn, order.id)?.remaining_minor();
        Ok(record(conn, order, Action::Refund, remaining, &lines, &refunded, Vec::new())?.order)
    })
}

/// Units of each line refunded so far, by line number.
fn refunded_units(conn: &mut PgConnection, order_id: OrderId) -> Result<HashMap<i16, i64>, OrdersError> {
    Ok(store::refunded_units(conn, order_id)?.into_iter().collect())
}

/// The units of each line still in the order: ordered, less refunded.
pub(super) fn units_left(lines: &[OrderLine], refunded: &HashMap<i16, i64>) -> Vec<StockLine> {
    lines
        .iter()
        .map(|line| StockLine {
            product_id: line.product_id,
            quantity: line.quantity - refunded.get(&line.line_no).copied().unwrap_or(0) as i32,
        })
        .filter(|line| line.quantity > 0)
        .collect()
}

/// The order's lines the request names, with the units asked of each (a product named twice adds
/// up), in the order's line order; 422 naming every line the order does not have, or of which
/// fewer units are left to refund than asked.
fn choose_lines<'a>(
    lines: &'a [OrderLine],
    refunded: &HashMap<i16, i64>,
    asked: &[(ProductId, i64)],
) -> Result<Vec<(&'a OrderLine, i64)>, OrdersError> {
    let mut errors: Vec<(usize, FieldError)> = Vec::new();
    // (first index naming the line, line, units)
    let mut chosen: Vec<(usize, &OrderLine, i64)> = Vec::new();
    for (index, (product_id, units)) in asked.iter().enumerate() {
        match lines.iter().find(|line| line.product_id == *product_id) {
            None => errors
                .push((index, FieldError::new(format!("lines[{index}].product_id"), "is not a product of this order"))),
            Some(line) => match chosen.iter_mut().find(|(_, seen, _)| seen.line_no == line.line_no) {
                Some((_, _, total)) => *total += units,
                None => chosen.push((index, line, *units)),
            },
        }
    }
    for (index, line, units) in &chosen {
        let left = i64::from(line.quantity) - refunded.get(&line.line_no).copied().unwrap_or(0);
        if *units > left {
            errors.push((
                *index,
                FieldError::new(
                    format!("lines[{index}].quantity"),
                    format!(
                        "only {left} of the {} units of {} {} left to refund",
                        line.quantity,
                        line.sku,
                        if left == 1 { "is" } else { "are" }
                    ),
                ),
            ));
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|(index, _)| *index);
        return Err(OrdersError::Invalid(errors.into_iter().map(|(_, error)| error).collect()));
    }
    chosen.sort_by_key(|(_, line, _)| line.line_no);
    Ok(chosen.into_iter().map(|(_, line, units)| (line, units)).collect())
}

/// Records a refund the order allows: the money through payments, the units given back, the
/// stock, the status and the event.
fn record(
    conn: &mut PgConnection,
    order: Order,
    action: Action,
    amount: i64,
    lines: &[OrderLine],
    refunded: &HashMap<i16, i64>,
    given_back: Vec<(&OrderLine, i64)>,
) -> Result<RefundOutcome, OrdersError> {
    let status = lifecycle::allow(&order, action)?;
    let (payment, refund) = payments::refund(conn, order.id, amount, "refunded by an admin")?;
    let rows: Vec<RefundLine> = given_back
        .iter()
        .map(|(line, units)| RefundLine {
            refund_id: refund.id,
            order_id: order.id,
            line_no: line.line_no,
            quantity: *units as i32,
            amount_minor: line.unit_price_minor * units,
        })
        .collect();
    if !rows.is_empty() {
        store::insert_refund_lines(conn, &rows)?;
    }
    if !order.has_shipped() {
        // Refunded in full, the order will never ship: everything it still holds goes back (the
        // lines of this refund among it). Otherwise only the lines of this refund do.
        let (back, reason) = if status == OrderStatus::Refunded {
            (units_left(lines, refunded), "order refunded before shipping")
        } else {
            let back = given_back
                .iter()
                .map(|(line, units)| StockLine { product_id: line.product_id, quantity: *units as i32 })
                .collect();
            (back, "lines refunded before shipping")
        };
        if !back.is_empty() {
            inventory::release(conn, order.id, &back, reason)?;
        }
    }
    let order = store::set_status(conn, order.id, status)?;
    let lines: Vec<RefundedLine> = given_back
        .iter()
        .map(|(line, units)| RefundedLine {
            product_id: line.product_id,
            sku: line.sku.clone(),
            name: line.name.clone(),
            quantity: *units as i32,
            amount_minor: line.unit_price_minor * units,
        })
        .collect();
    let event = OrderRefunded {
        version: PayloadVersion::CURRENT,
        order_id: order.id,
        payment_id: payment.id,
        amount_minor: refund.amount_minor,
        refund_id: Some(refund.id),
        refunded_minor: Some(payment.refunded_minor),
        lines: lines.clone(),
        order: snapshot(conn, order.id)?,
    };
    outbox::publish(conn, &event.into())?;
    Ok(RefundOutcome { order, payment, refund, lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refund_request_is_an_amount_or_lines_within_their_rules() {
        let mug = ProductId::new();
        assert_eq!(RefundRequest::parse(Some(500), None), Ok(RefundRequest::Amount(500)));
        assert_eq!(RefundRequest::parse(None, Some(&[(mug, 2)])), Ok(RefundRequest::Lines(vec![(mug, 2)])));
        let fields = |result: Result<RefundRequest, Vec<FieldError>>| -> Vec<String> {
            result.unwrap_err().into_iter().map(|error| error.field).collect()
        };
        assert_eq!(fields(RefundRequest::parse(None, None)), ["amount_minor"]);
        assert_eq!(fields(RefundRequest::parse(Some(1), Some(&[(mug, 1)]))), ["lines"]);
        assert_eq!(fields(RefundRequest::parse(Some(0), None)), ["amount_minor"]);
        assert_eq!(fields(RefundRequest::parse(Some(MAX_ORDER_TOTAL_MINOR + 1), None)), ["amount_minor"]);
        assert!(RefundRequest::parse(Some(MAX_ORDER_TOTAL_MINOR), None).is_ok());
        assert_eq!(fields(RefundRequest::parse(None, Some(&[]))), ["lines"]);
        assert_eq!(
            fields(RefundRequest::parse(None, Some(&[(mug, 0), (mug, 1), (mug, 50_001)]))),
            ["lines[0].quantity", "lines[2].quantity"]
        );
        assert_eq!(fields(RefundRequest::parse(None, Some(&vec![(mug, 1); 51]))), ["lines"]);
    }
}
