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
    owns: &["carts", "cart_lines"],
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
        module: Module::Orders,
        reason: "checkout places and pays the cart's order through the orders module; the status page shows it",
    },
];
