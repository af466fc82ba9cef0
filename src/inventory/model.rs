//! Inventory rows: stock levels (joined with the product they count) and ledger movements.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::ids::{OrderId, ProductId};
use crate::text_enum::text_enum;

text_enum! {
    /// What a ledger row records.
    pub enum MovementKind {
        /// Goods arrived (on_hand up).
        Receipt = "receipt",
        /// A correction after a count, damage, loss (on_hand up or down).
        Adjustment = "adjustment",
        /// Promised to an order (reserved up).
        Reservation = "reservation",
        /// A promise withdrawn: order cancelled or refunded before shipping (reserved down).
        Release = "release",
        /// Goods left with an order (on_hand and reserved down).
        Shipment = "shipment",
    }
}

/// The stock of one product, with the catalog facts inventory needs to judge it.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = crate::schema::inventory_levels)]
pub struct StockLevel {
    pub product_id: ProductId,
    #[diesel(select_expression = crate::schema::products::sku)]
    pub sku: String,
    #[diesel(select_expression = crate::schema::products::name)]
    pub name: String,
    pub on_hand: i32,
    pub reserved: i32,
    #[diesel(select_expression = crate::schema::products::low_stock_threshold)]
    pub low_stock_threshold: i32,
    #[diesel(select_expression = crate::schema::products::active)]
    pub active: bool,
}

impl StockLevel {
    pub fn available(&self) -> i32 {
        self.on_hand - self.reserved
    }

    pub fn is_low(&self) -> bool {
        self.available() <= self.low_stock_threshold
    }
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = crate::schema::inventory_movements)]
pub struct Movement {
    pub id: i64,
    pub product_id: ProductId,
    pub kind: MovementKind,
    pub on_hand_delta: i32,
    pub reserved_delta: i32,
    pub reason: String,
    pub order_id: Option<OrderId>,
    pub created_at: DateTime<Utc>,
}
