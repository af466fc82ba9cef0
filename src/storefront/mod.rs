//! The storefront: the shop's pages for shoppers (the product grid, a product, the cart,
//! checkout and an order's status page), server-rendered, usable without script.
//!
//! It owns the carts. Everything else it shows belongs to other modules: it reads the catalog's
//! products and categories and the inventory's levels straight from their tables (the shared
//! database at work: one query draws a page of the grid with each product's availability), and
//! it places and pays orders through the orders module, as the API does.

use crate::kernel::{Call, Module, TableAccess, Use};

pub const TABLES: TableAccess = TableAccess {
    module: Module::Storefront,
    owns: &["carts", "cart_lines", "checkout_attempts"],
    reads: &[
        Use {
            table: "products",
            reason: "the grid, a product's page and the cart show products with their current prices",
        },
        Use { table: "categories", reason: "the grid is filtered by category and names the categories" },
        Use {
            table: "inventory_levels",
            reason: "the grid, a product's page and the cart say whether a product is in stock, and how many are left",
        },
    ],
    writes: &[],
};

pub const CALLS: &[Call] = &[
    Call {
        module: Module::Catalog,
        reason: "the grid and product pages are kept in the catalog cache, forgotten when the catalog changes",
    },
    Call {
        module: Module::Inventory,
        reason: "checkout tells the shopper which lines the inventory module found short, and how many are left",
    },
    Call { module: Module::Payments, reason: "checkout reads the card by the payments module's rules" },
    Call {
        module: Module::Orders,
        reason: "checkout places and pays the cart's order through the orders module; the status page shows it",
    },
];

mod cache;
mod cart;
mod checkout;
mod page;
pub mod pages;
mod picture;
mod shopper;
mod store;

pub use cache::ShopCache;
pub use page::ShopError;
pub use shopper::CART_COOKIE;

use crate::background::BackgroundTasks;
use crate::db::Db;

/// Removes the carts left untouched for `idle`, in batches; returns how many went.
pub fn remove_idle_carts(conn: &mut diesel::PgConnection, idle: std::time::Duration) -> diesel::QueryResult<usize> {
    crate::as_module!(conn, Module::Storefront);
    let idle_since = chrono::Utc::now() - chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::days(30));
    // In batches, so that no statement holds many rows locked for long.
    let mut removed = 0;
    loop {
        let batch = store::remove_idle(conn, idle_since, 500)?;
        removed += batch;
        if batch < 500 {
            return Ok(removed);
        }
    }
}

/// Removes carts left untouched for `idle` (30 days unless configured), now and then.
pub fn start_removing_idle_carts(tasks: &mut BackgroundTasks, db: &Db, idle: std::time::Duration) {
    let db = db.clone();
    tasks.spawn("idle-cart-removal", move |stop| {
        loop {
            let removed =
                db.run_blocking(Module::Storefront.op("remove_idle_carts"), |conn| remove_idle_carts(conn, idle));
            match removed {
                Ok(0) => {}
                Ok(count) => log::info!("removed {count} cart(s) idle for {} days", idle.as_secs() / 86_400),
                Err(error) => log::warn!("removing idle carts failed, will retry: {error}"),
            }
            if stop.wait(std::time::Duration::from_secs(3600)) {
                return;
            }
        }
    });
}
