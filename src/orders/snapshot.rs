//! The order as its events describe it ([`OrderSnapshot`]): what the orders module tells every
//! consumer of its events, so that none of them reads its tables. Checkout builds it from what it
//! has just written; every later event of an order reads it in one query, inside the event's own
//! transaction, so that it shows the order as that transaction leaves it.

use diesel::prelude::*;

use super::OrdersError;
use super::model::{Customer, Order, OrderLine};
use crate::events::{CustomerSnapshot, LineSnapshot, OrderSnapshot};
use crate::ids::OrderId;
use crate::kernel::Module;

/// The order as of the caller's transaction, in one query across the order, its customer, its
/// lines and their products (for the descriptions).
pub fn snapshot(conn: &mut PgConnection, order_id: OrderId) -> Result<OrderSnapshot, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    use crate::schema::{customers, order_lines, orders, products};
    let rows: Vec<(Order, Customer, OrderLine, String)> = order_lines::table
        .inner_join(orders::table.inner_join(customers::table))
        .inner_join(products::table)
        .filter(order_lines::order_id.eq(order_id))
        .order(order_lines::line_no.asc())
        .select((Order::as_select(), Customer::as_select(), OrderLine::as_select(), products::description))
        .load(conn)?;
    let Some((order, customer, _, _)) = rows.first() else { return Err(OrdersError::NotFound(order_id)) };
    let lines = rows.iter().map(|(_, _, line, description)| (line, description.as_str()));
    Ok(of(order, customer, lines))
}

/// The snapshot of an order whose parts the caller has in hand: each line with its product's
/// description, in line order.
pub(super) fn of<'a>(
    order: &Order,
    customer: &Customer,
    lines: impl IntoIterator<Item = (&'a OrderLine, &'a str)>,
) -> OrderSnapshot {
    let placed = Placed {
        number: order.number,
        placed_at: order.created_at,
        total_minor: order.total_minor,
        currency: &order.currency,
        status_token: &order.status_token,
    };
    of_parts(&placed, (&customer.name, &customer.email), lines)
}

/// What an order's snapshot needs of the order itself: known to checkout before it writes the order.
pub(super) struct Placed<'a> {
    pub number: i64,
    pub placed_at: chrono::DateTime<chrono::Utc>,
    pub total_minor: i64,
    pub currency: &'a str,
    pub status_token: &'a str,
}

/// The snapshot of an order from its parts; `customer` is (name, e-mail address).
pub(super) fn of_parts<'a>(
    order: &Placed<'_>,
    customer: (&str, &str),
    lines: impl IntoIterator<Item = (&'a OrderLine, &'a str)>,
) -> OrderSnapshot {
    OrderSnapshot {
        number: crate::ids::OrderNumber(order.number).to_string(),
        placed_at: order.placed_at,
        customer: CustomerSnapshot { name: customer.0.to_owned(), email: customer.1.to_owned() },
        lines: lines
            .into_iter()
            .map(|(line, description)| LineSnapshot {
                product_id: line.product_id,
                sku: line.sku.clone(),
                name: line.name.clone(),
                description: description.to_owned(),
                quantity: line.quantity,
                unit_price_minor: line.unit_price_minor,
                line_total_minor: line.line_total_minor,
            })
            .collect(),
        total_minor: order.total_minor,
        currency: order.currency.to_owned(),
        status_token: Some(order.status_token.to_owned()),
    }
}
