//! The order lifecycle after checkout: payment, cancellation (by the customer, an admin or the
//! payment timeout), shipping and refunds. Each transition locks the order, moves stock through
//! the inventory module, records money through the payments module, changes the status and
//! writes its event, in one transaction. Anything the lifecycle does not allow is refused with
//! the order's current status.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::model::{Action, Order, OrderStatus};
use super::{OrdersError, store};
use crate::events::{CancelledBy, DomainEvent};
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
        allow(&order, Action::Pay)?;
        let payment = payments::charge(conn, gateway, order.id, order.total_minor, &order.currency, card)?;
        if payment.succeeded() {
            let order = store::set_status(conn, order.id, OrderStatus::Paid)?;
            outbox::publish(
                conn,
                &DomainEvent::PaymentSucceeded {
                    order_id: order.id,
                    payment_id: payment.id,
                    amount_minor: payment.amount_minor,
                    currency: payment.currency.clone(),
                },
            )?;
            Ok(PaymentAttempt::Succeeded { payment, order })
        } else {
            outbox::publish(
                conn,
                &DomainEvent::PaymentFailed {
                    order_id: order.id,
                    payment_id: payment.id,
                    decline_code: payment.decline_code.clone().unwrap_or_default(),
                },
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

pub fn ship(conn: &mut PgConnection, order_id: OrderId) -> Result<Order, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    conn.transaction(|conn| {
        let order = lock(conn, order_id)?;
        allow(&order, Action::Ship)?;
        let lines = stock_lines(conn, order.id)?;
        inventory::ship(conn, order.id, &lines)?;
        let order = store::set_status(conn, order.id, OrderStatus::Shipped)?;
        outbox::publish(conn, &DomainEvent::OrderShipped { order_id: order.id })?;
        Ok(order)
    })
}

/// Refunds the whole payment. Before shipping the reserved stock is released; after shipping
/// the goods are gone, and taking returns back in is a stock receipt of its own.
pub fn refund(conn: &mut PgConnection, order_id: OrderId) -> Result<Order, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    conn.transaction(|conn| {
        let order = lock(conn, order_id)?;
        allow(&order, Action::Refund)?;
        let remaining = payments::refundable(conn, order.id)?.remaining_minor();
        let (payment, refund) = payments::refund(conn, order.id, remaining, "refunded by an admin")?;
        if order.status == OrderStatus::Paid {
            let lines = stock_lines(conn, order.id)?;
            inventory::release(conn, order.id, &lines, "order refunded before shipping")?;
        }
        let order = store::set_status(conn, order.id, OrderStatus::Refunded)?;
        outbox::publish(
            conn,
            &DomainEvent::OrderRefunded {
                order_id: order.id,
                payment_id: payment.id,
                amount_minor: refund.amount_minor,
            },
        )?;
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
    allow(&order, Action::Cancel)?;
    let reason = match by {
        CancelledBy::Customer => "order cancelled by the customer",
        CancelledBy::Admin => "order cancelled by an admin",
        CancelledBy::PaymentTimeout => "order not paid in time",
    };
    let lines = stock_lines(conn, order.id)?;
    inventory::release(conn, order.id, &lines, reason)?;
    let order = store::set_status(conn, order.id, OrderStatus::Cancelled)?;
    outbox::publish(conn, &DomainEvent::OrderCancelled { order_id: order.id, cancelled_by: by })?;
    Ok(order)
}

fn lock(conn: &mut PgConnection, order_id: OrderId) -> Result<Order, OrdersError> {
    store::lock_order(conn, order_id)?.ok_or(OrdersError::NotFound(order_id))
}

fn allow(order: &Order, action: Action) -> Result<(), OrdersError> {
    if order.status.allows(action) {
        Ok(())
    } else {
        Err(OrdersError::IllegalTransition { number: order.display_number(), status: order.status, action })
    }
}

fn stock_lines(conn: &mut PgConnection, order_id: OrderId) -> Result<Vec<StockLine>, OrdersError> {
    Ok(store::lines(conn, order_id)?
        .into_iter()
        .map(|line| StockLine { product_id: line.product_id, quantity: line.quantity })
        .collect())
}
