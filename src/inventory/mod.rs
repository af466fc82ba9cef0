//! Inventory: stock per product (`on_hand`, `reserved`) and a ledger of every movement. The
//! module's public face.
//!
//! The orders module calls [`reserve`], [`release`] and [`ship`] inside its own transaction, so
//! that an order and its stock change commit together or not at all. Every function that moves
//! stock goes through one routine that locks the affected levels in product-id order (no two
//! transactions can deadlock on them), checks the invariants, updates the levels and appends the
//! ledger rows, and writes a `StockLow` event when available stock falls to its threshold.

pub mod api;
pub mod listing;
mod model;
pub mod pages;
mod store;

use diesel::prelude::*;
use serde::Serialize;

pub use model::{Movement, MovementKind, StockLevel};

use crate::error::{AppError, FieldError};
use crate::events::{DomainEvent, PayloadVersion, StockLow};
use crate::ids::{OrderId, ProductId};
use crate::input::{Text, Whole};
use crate::kernel::{Call, Module, TableAccess, Use};
use crate::outbox;
use crate::pagination::Keyset;

pub const TABLES: TableAccess = TableAccess {
    module: Module::Inventory,
    owns: &["inventory_levels", "inventory_movements"],
    reads: &[Use {
        table: "products",
        reason: "stock checks need each product's SKU and low-stock threshold; stock pages show its name",
    }],
    writes: &[],
};

pub const CALLS: &[Call] = &[
    Call { module: Module::Outbox, reason: "stock falling to its threshold publishes StockLow with the stock change" },
    Call { module: Module::Admin, reason: "its admin pages use the admin layout, session and CSRF token" },
];

/// SQL functions of the inventory's (see [`store::move_levels`]), by signature.
pub const FUNCTIONS: &[&str] = &["inventory_move_levels(uuid[], integer[], integer[], text, text, uuid)"];

/// A quantity of one product, as orders reserve, release and ship it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StockLine {
    pub product_id: ProductId,
    pub quantity: i32,
}

/// One product an order could not get enough of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Shortage {
    pub product_id: ProductId,
    pub sku: String,
    pub requested: i32,
    pub available: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("no stock is tracked for product {0}")]
    UnknownProduct(ProductId),
    #[error("insufficient stock")]
    Insufficient(Vec<Shortage>),
    #[error("on_hand of {sku} would become {on_hand}, below the {reserved} reserved or below 0")]
    BelowReserved { sku: String, on_hand: i64, reserved: i32 },
    #[error("invalid stock change")]
    Invalid(Vec<FieldError>),
    /// A release or shipment that does not match what was reserved: a bug in the caller.
    #[error("inconsistent stock movement for {sku}: {detail}")]
    Inconsistent { sku: String, detail: String },
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

impl From<InventoryError> for AppError {
    fn from(error: InventoryError) -> Self {
        match error {
            InventoryError::UnknownProduct(id) => AppError::not_found(format!("No product with id {id}.")),
            InventoryError::Insufficient(shortages) => {
                let detail = shortages
                    .iter()
                    .map(|s| format!("{}: {} requested, {} available", s.sku, s.requested, s.available))
                    .collect::<Vec<_>>()
                    .join("; ");
                let first = &shortages[0];
                AppError::conflict("insufficient-stock", format!("Not enough stock. {detail}."))
                    .with("sku", first.sku.clone())
                    .with("available", first.available)
                    .with("requested", first.requested)
                    .with("shortages", serde_json::to_value(&shortages).unwrap_or_default())
            }
            InventoryError::BelowReserved { sku, on_hand, reserved } => AppError::conflict(
                "stock-below-reserved",
                format!(
                    "This adjustment would leave {on_hand} of {sku} on hand, but {reserved} are reserved for orders \
                     and stock cannot be negative."
                ),
            )
            .with("sku", sku)
            .with("reserved", reserved),
            InventoryError::Invalid(errors) => AppError::validation(errors),
            error @ InventoryError::Inconsistent { .. } => AppError::internal(error),
            InventoryError::Database(error) => error.into(),
        }
    }
}

/// Starts tracking stock for a new product, at zero. Called by the catalog when it creates one.
pub fn track_product(conn: &mut PgConnection, product_id: ProductId) -> QueryResult<()> {
    crate::as_module!(conn, Module::Inventory);
    store::insert_level(conn, product_id).map(|_| ())
}

/// Reserves every line for `order_id`, or nothing: on any shortage nothing changes and the
/// error lists every short product with what is available.
pub fn reserve(conn: &mut PgConnection, order_id: OrderId, lines: &[StockLine]) -> Result<(), InventoryError> {
    let changes = lines.iter().map(|line| (line.product_id, 0, line.quantity)).collect();
    move_stock(conn, MovementKind::Reservation, "reserved for an order", Some(order_id), changes).map(|_| ())
}

/// Gives back what was reserved for `order_id` (cancelled, or refunded before shipping).
pub fn release(
    conn: &mut PgConnection,
    order_id: OrderId,
    lines: &[StockLine],
    reason: &str,
) -> Result<(), InventoryError> {
    let changes = lines.iter().map(|line| (line.product_id, 0, -line.quantity)).collect();
    move_stock(conn, MovementKind::Release, reason, Some(order_id), changes).map(|_| ())
}

/// Takes the reserved goods of `order_id` out of the warehouse.
pub fn ship(conn: &mut PgConnection, order_id: OrderId, lines: &[StockLine]) -> Result<(), InventoryError> {
    let changes = lines.iter().map(|line| (line.product_id, -line.quantity, -line.quantity)).collect();
    move_stock(conn, MovementKind::Shipment, "shipped with an order", Some(order_id), changes).map(|_| ())
}

/// A manual change of `on_hand`: a receipt of goods (delta > 0) or an adjustment after a count.
/// What one adjustment may change `on_hand` by: at most a million units either way, never 0.
pub const RECEIPT_DELTA: Whole = Whole::between(1, 1_000_000);
pub const DECREASE_DELTA: Whole = Whole::between(-1_000_000, -1);
/// Why stock changed, kept in the ledger.
pub const REASON: Text = Text::lines(500);

pub fn adjust(
    conn: &mut PgConnection,
    product_id: ProductId,
    delta: i64,
    kind: MovementKind,
    reason: &str,
) -> Result<StockLevel, InventoryError> {
    crate::as_module!(conn, Module::Inventory);
    let mut errors = Vec::new();
    let delta = match kind {
        MovementKind::Receipt => {
            RECEIPT_DELTA.check(delta).map_err(|_| "a receipt adds stock: it must be 1 to 1000000")
        }
        MovementKind::Adjustment if delta == 0 => Err("must not be 0"),
        MovementKind::Adjustment => DECREASE_DELTA
            .check(delta)
            .or(RECEIPT_DELTA.check(delta))
            .map_err(|_| "must be between -1000000 and 1000000"),
        _ => {
            errors.push(FieldError::new("kind", "must be receipt or adjustment"));
            Ok(delta)
        }
    }
    .map_err(|message| errors.push(FieldError::new("delta", message)))
    .unwrap_or_default() as i32;
    let reason = REASON.check(reason).map_err(|message| errors.push(FieldError::new("reason", message))).unwrap_or("");
    if !errors.is_empty() {
        return Err(InventoryError::Invalid(errors));
    }
    conn.transaction(|conn| {
        move_stock(conn, kind, reason, None, vec![(product_id, delta, 0)])?;
        stock_level(conn, product_id)
    })
}

pub fn stock_level(conn: &mut PgConnection, product_id: ProductId) -> Result<StockLevel, InventoryError> {
    crate::as_module!(conn, Module::Inventory);
    store::level(conn, product_id)?.ok_or(InventoryError::UnknownProduct(product_id))
}

/// Stock levels, emptiest first; `low_only` keeps those at or below their threshold.
pub fn stock_levels(
    conn: &mut PgConnection,
    low_only: bool,
    after: Option<LevelsCursor>,
    limit: i64,
) -> Result<Keyset<StockLevel>, InventoryError> {
    crate::as_module!(conn, Module::Inventory);
    let rows = store::levels(conn, low_only, after, limit + 1)?;
    Ok(Keyset::from_rows(rows, limit, |level| (level.available(), level.product_id)))
}

pub type LevelsCursor = (i32, ProductId);

/// How many products are at or below their low-stock threshold: the count of what
/// `stock_levels(low_only)` pages through.
pub fn low_stock_count(conn: &mut PgConnection) -> Result<i64, InventoryError> {
    crate::as_module!(conn, Module::Inventory);
    Ok(store::low_count(conn)?)
}

/// The ledger of a product, newest first; the cursor is the last movement id seen.
pub fn movements(
    conn: &mut PgConnection,
    product_id: ProductId,
    before: Option<i64>,
    limit: i64,
) -> Result<Keyset<Movement>, InventoryError> {
    crate::as_module!(conn, Module::Inventory);
    stock_level(conn, product_id)?;
    let rows = store::movements(conn, product_id, before, limit + 1)?;
    Ok(Keyset::from_rows(rows, limit, |movement| movement.id))
}

/// The ledger rows an order caused, oldest first.
pub fn order_movements(conn: &mut PgConnection, order_id: OrderId) -> Result<Vec<Movement>, InventoryError> {
    crate::as_module!(conn, Module::Inventory);
    Ok(store::order_movements(conn, order_id)?)
}

/// The one routine that changes stock. `changes` are (product, on_hand delta, reserved delta).
fn move_stock(
    conn: &mut PgConnection,
    kind: MovementKind,
    reason: &str,
    order_id: Option<OrderId>,
    mut changes: Vec<(ProductId, i32, i32)>,
) -> Result<Vec<store::LockedLevel>, InventoryError> {
    // Row locks taken outside a transaction would be released at once.
    if !crate::kernel::in_transaction(conn) {
        return Err(InventoryError::Inconsistent {
            sku: String::new(),
            detail: format!("{} called outside a transaction", kind.as_str()),
        });
    }
    // Fixed lock order, and one row per product.
    changes.sort_by_key(|(product_id, _, _)| *product_id);
    changes.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            earlier.1 += later.1;
            earlier.2 += later.2;
        }
        same
    });
    let product_ids: Vec<ProductId> = changes.iter().map(|(id, _, _)| *id).collect();
    let on_hand_deltas: Vec<i32> = changes.iter().map(|(_, on_hand, _)| *on_hand).collect();
    let reserved_deltas: Vec<i32> = changes.iter().map(|(_, _, reserved)| *reserved).collect();
    // Locked, checked, moved and written down in one statement: the rows are held from here to
    // the end of the transaction, which is the bottleneck of a product everyone buys.
    let requested = store::LevelChanges {
        product_ids: &product_ids,
        on_hand_deltas: &on_hand_deltas,
        reserved_deltas: &reserved_deltas,
    };
    let locked = store::move_levels(conn, &requested, kind, reason, order_id)?;
    if let Some(missing) = product_ids.iter().find(|id| !locked.iter().any(|level| level.product_id == **id)) {
        return Err(InventoryError::UnknownProduct(*missing));
    }

    // The statement applied the move only if every level stays valid; what was wrong, if
    // anything, is told from the levels as they were.
    let mut shortages = Vec::new();
    for ((_, on_hand_delta, reserved_delta), level) in changes.iter().zip(&locked) {
        let on_hand = i64::from(level.on_hand) + i64::from(*on_hand_delta);
        let reserved = i64::from(level.reserved) + i64::from(*reserved_delta);
        let available = level.on_hand - level.reserved;
        if kind == MovementKind::Reservation && *reserved_delta > available {
            shortages.push(Shortage {
                product_id: level.product_id,
                sku: level.sku.clone(),
                requested: *reserved_delta,
                available: available.max(0),
            });
            continue;
        }
        if on_hand > i64::from(i32::MAX) {
            return Err(InventoryError::Invalid(vec![FieldError::new("delta", "would make on_hand too large")]));
        }
        if on_hand < 0 || reserved < 0 || reserved > on_hand {
            return Err(match kind {
                MovementKind::Receipt | MovementKind::Adjustment => {
                    InventoryError::BelowReserved { sku: level.sku.clone(), on_hand, reserved: level.reserved }
                }
                _ => InventoryError::Inconsistent {
                    sku: level.sku.clone(),
                    detail: format!(
                        "{} would leave on_hand {on_hand}, reserved {reserved} (was {}, {})",
                        kind.as_str(),
                        level.on_hand,
                        level.reserved
                    ),
                },
            });
        }
    }
    if !shortages.is_empty() {
        return Err(InventoryError::Insufficient(shortages));
    }
    if !locked.iter().all(|level| level.applied) {
        return Err(InventoryError::Inconsistent {
            sku: locked.first().map(|level| level.sku.clone()).unwrap_or_default(),
            detail: format!("the database refused a {} these levels allow", kind.as_str()),
        });
    }

    for ((_, on_hand_delta, reserved_delta), level) in changes.iter().zip(&locked) {
        let before = level.on_hand - level.reserved;
        let after = before + on_hand_delta - reserved_delta;
        if before > level.low_stock_threshold && after <= level.low_stock_threshold {
            outbox::publish(
                conn,
                &DomainEvent::from(StockLow {
                    version: PayloadVersion::CURRENT,
                    product_id: level.product_id,
                    sku: level.sku.clone(),
                    available: after,
                    threshold: level.low_stock_threshold,
                }),
            )?;
        }
    }
    Ok(locked)
}
