//! Demo orders for `agora seed` and the first start, placed through the real checkout and
//! lifecycle so that they obey every rule a customer's order does.

use diesel::prelude::*;
use rand::Rng;
use rand::seq::IndexedRandom;

use super::{OrdersError, PlaceOrder, RefundRequest, cancel, pay, place_order, refund, refund_part, ship};
use crate::config::Config;
use crate::error::AppError;
use crate::events::CancelledBy;
use crate::ids::ProductId;
use crate::inventory::{InventoryError, MovementKind};
use crate::kernel::Module;
use crate::payments::{Card, SimulatedGateway};

/// Units the demo warehouse receives when a product runs out: more than any one order takes.
const RESTOCK: i64 = 100;

const FIRST_NAMES: &[&str] =
    &["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Radia", "Tony", "Frances", "John"];
const LAST_NAMES: &[&str] =
    &["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson", "Perlman", "Hoare"];

/// Exactly `orders` demo orders through the real checkout and lifecycle, spread over every
/// status. `products` are (id, units received). `placed` is called after each order.
pub fn seed_orders(
    conn: &mut PgConnection,
    config: &Config,
    products: &[(ProductId, i32)],
    customers: u32,
    orders: u32,
    rng: &mut impl Rng,
    placed: &dyn Fn(),
) -> Result<String, AppError> {
    crate::as_module!(conn, Module::Orders);
    let in_stock: Vec<ProductId> = products.iter().filter(|(_, stock)| *stock > 20).map(|(id, _)| *id).collect();
    if in_stock.is_empty() || customers == 0 {
        return Ok("no orders".into());
    }
    let people: Vec<(String, String)> = (0..customers as usize)
        .map(|n| {
            let first = FIRST_NAMES[n % FIRST_NAMES.len()];
            let last = LAST_NAMES[(n / FIRST_NAMES.len() + n) % LAST_NAMES.len()];
            let suffix: u32 = rng.random_range(1000..10000);
            (
                format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), suffix),
                format!("{first} {last}"),
            )
        })
        .collect();
    let card = Card::parse("4242424242424242", 12, 2099, "123").map_err(AppError::validation)?;
    let declined = Card::parse("4000000000000002", 12, 2099, "123").map_err(AppError::validation)?;
    for n in 0..orders as usize {
        let (email, name) = people.choose(rng).expect("at least one customer");
        let lines = rng.random_range(1..=3usize);
        let items: Vec<(ProductId, i64)> =
            in_stock.choose_multiple(rng, lines).map(|id| (*id, rng.random_range(1..=3i64))).collect();
        let request = PlaceOrder::new(email, name, &items).map_err(AppError::validation)?;
        let order = match place_order(conn, &request, config.currency) {
            Ok(placed) => placed.order,
            // Demo stock ran out: the warehouse receives more, as a shop would, and the customer
            // orders again, so that the seed places exactly the orders asked for.
            Err(OrdersError::Stock(InventoryError::Insufficient(shortages))) => {
                for shortage in &shortages {
                    crate::inventory::adjust(
                        conn,
                        shortage.product_id,
                        RESTOCK,
                        MovementKind::Receipt,
                        "restock (demo data)",
                    )?;
                }
                place_order(conn, &request, config.currency)?.order
            }
            Err(other) => return Err(other.into()),
        };
        placed();
        // Every status, most orders paid or shipped, a few declined once before paying.
        match n % 8 {
            0 => {}
            1 => {
                pay(conn, &SimulatedGateway, order.id, &declined)?;
            }
            2 => {
                cancel(conn, order.id, CancelledBy::Customer)?;
            }
            3 | 4 => {
                pay(conn, &SimulatedGateway, order.id, &card)?;
            }
            5 | 6 => {
                pay(conn, &SimulatedGateway, order.id, &card)?;
                ship(conn, order.id)?;
            }
            _ => {
                pay(conn, &SimulatedGateway, order.id, &card)?;
                if rng.random_bool(0.5) {
                    ship(conn, order.id)?;
                }
                // Every other one is refunded in part: a third of it, as a goodwill amount.
                if n % 16 == 15 {
                    refund_part(conn, order.id, &RefundRequest::Amount((order.total_minor / 3).max(1)))?;
                } else {
                    refund(conn, order.id)?;
                }
            }
        }
    }
    Ok(format!("{orders} orders in every status"))
}
