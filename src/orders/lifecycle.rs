//! The order lifecycle after checkout: payment, cancellation (by the customer, an admin or the
//! payment timeout) and shipping (refunds are in `refunds`). Each transition locks the order,
//! moves stock through the inventory module, records money through the payments module, changes the status and
//! writes its event, in one transaction. Anything the lifecycle does not allow is refused with
//! the order's current status.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::model::{Action, Order, OrderStatus};
use super::snapshot::snapshot;
use super::{OrdersError, store};
use crate::events::{
    CancelledBy, DomainEvent, OrderCancelled, OrderShipped, PayloadVersion, PaymentFailed, PaymentSucceeded,
};
use crate::ids::OrderId;
use crate::inventory::{self, StockLine};
use crate::kernel::Module;
use crate::outbox;
use crate::payments::{self, Card, CardGateway, Payment};

/// The outcome of a payment attempt that reached the gateway.
#[derive(Debug)]
pub enum PaymentAttempt {
    Succeeded {
        payment: Payment,
        order: Order,
    },
    /// Recorded, with its `PaymentFailed` event; the order stays payable.
    Declined {
        payment: Payment,
        order: Order,
    },
}

pub fn pay(
    conn: &mut PgConnection,
    gateway: &dyn CardGateway,
    order_id: OrderId,
    card: &Card,
) -> Result<PaymentAttempt, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    conn.transaction(|conn| {
        let order = lock(conn, order_id)?;
        let paid = allow(&order, Action::Pay)?;
        let payment = payments::charge(conn, gateway, order.id, order.total_minor, &order.currency, card)?;
        if payment.succeeded() {
            let order = store::set_status(conn, order.id, paid)?;
            let event = PaymentSucceeded {
                version: PayloadVersion::CURRENT,
                order_id: order.id,
                payment_id: payment.id,
                amount_minor: payment.amount_minor,
                currency: payment.currency.clone(),
                order: snapshot(conn, order.id)?,
            };
            outbox::publish(conn, &event.into())?;
            Ok(PaymentAttempt::Succeeded { payment, order })
        } else {
            outbox::publish(
                conn,
                &DomainEvent::from(PaymentFailed {
                    version: PayloadVersion::CURRENT,
                    order_id: order.id,
                    payment_id: payment.id,
                    decline_code: payment.decline_code.clone().unwrap_or_default(),
                }),
            )?;
            Ok(PaymentAttempt::Declined { payment, order })
        }
    })
}

pub fn cancel(conn: &mut PgConnection, order_id: OrderId, by: CancelledBy) -> Result<Order, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    conn.transaction(|conn| {
        let order = lock(conn, order_id)?;
        cancel_locked(conn, order, by)
    })
}

/// Ships a paid order, or a partially refunded one that has not shipped: what the refunds left
/// of each line leaves the warehouse.
pub fn ship(conn: &mut PgConnection, order_id: OrderId) -> Result<Order, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    conn.transaction(|conn| {
        let order = lock(conn, order_id)?;
        let status = allow(&order, Action::Ship)?;
        let lines = store::lines(conn, order.id)?;
        let refunded = store::refunded_units(conn, order.id)?.into_iter().collect();
        let leaving = super::refunds::units_left(&lines, &refunded);
        if !leaving.is_empty() {
            inventory::ship(conn, order.id, &leaving)?;
        }
        let order = store::set_shipped(conn, order.id, status)?;
        let event =
            OrderShipped { version: PayloadVersion::CURRENT, order_id: order.id, order: snapshot(conn, order.id)? };
        outbox::publish(conn, &event.into())?;
        Ok(order)
    })
}

/// Cancels the oldest unpaid order created before `cutoff` that no other process is already
/// cancelling (`SKIP LOCKED`), releasing its stock. `None` when there is none left.
pub fn cancel_one_expired(conn: &mut PgConnection, cutoff: DateTime<Utc>) -> Result<Option<Order>, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    conn.transaction(|conn| match store::lock_expired_unpaid(conn, cutoff)? {
        Some(order) => cancel_locked(conn, order, CancelledBy::PaymentTimeout).map(Some),
        None => Ok(None),
    })
}

fn cancel_locked(conn: &mut PgConnection, order: Order, by: CancelledBy) -> Result<Order, OrdersError> {
    let cancelled = allow(&order, Action::Cancel)?;
    let reason = match by {
        CancelledBy::Customer => "order cancelled by the customer",
        CancelledBy::Admin => "order cancelled by an admin",
        CancelledBy::PaymentTimeout => "order not paid in time",
    };
    let lines = stock_lines(conn, order.id)?;
    inventory::release(conn, order.id, &lines, reason)?;
    let order = store::set_status(conn, order.id, cancelled)?;
    let event = OrderCancelled {
        version: PayloadVersion::CURRENT,
        order_id: order.id,
        cancelled_by: by,
        order: snapshot(conn, order.id)?,
    };
    outbox::publish(conn, &event.into())?;
    Ok(order)
}

pub(super) fn lock(conn: &mut PgConnection, order_id: OrderId) -> Result<Order, OrdersError> {
    store::lock_order(conn, order_id)?.ok_or(OrdersError::NotFound(order_id))
}

/// The status `action` leads the order to, or the refusal naming its status.
pub(super) fn allow(order: &Order, action: Action) -> Result<OrderStatus, OrdersError> {
    order.after(action).ok_or_else(|| OrdersError::IllegalTransition {
        number: order.display_number(),
        status: order.status,
        shipped: order.has_shipped(),
        action,
    })
}

fn stock_lines(conn: &mut PgConnection, order_id: OrderId) -> Result<Vec<StockLine>, OrdersError> {
    Ok(store::lines(conn, order_id)?
        .into_iter()
        .map(|line| StockLine { product_id: line.product_id, quantity: line.quantity })
        .collect())
}
