//! Diesel queries on `inventory_levels` and `inventory_movements` (reading `products` too).

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Int4, Text, Uuid as SqlUuid};

use super::model::{Movement, NewMovement, StockLevel};
use crate::ids::{OrderId, ProductId};

/// A level locked for update, with what the checks need.
#[derive(Debug, QueryableByName)]
pub struct LockedLevel {
    #[diesel(sql_type = SqlUuid)]
    pub product_id: ProductId,
    #[diesel(sql_type = Text)]
    pub sku: String,
    #[diesel(sql_type = Int4)]
    pub on_hand: i32,
    #[diesel(sql_type = Int4)]
    pub reserved: i32,
    #[diesel(sql_type = Int4)]
    pub low_stock_threshold: i32,
}

/// Locks the levels of `product_ids` in product-id order, in one statement. Every transaction
/// that moves stock locks through here, so they all take locks in the same order and cannot
/// deadlock one another. `NO KEY UPDATE` leaves foreign-key checks against the rows unblocked.
pub fn lock_levels(conn: &mut PgConnection, product_ids: &[ProductId]) -> QueryResult<Vec<LockedLevel>> {
    diesel::sql_query(
        "SELECT l.product_id, p.sku, l.on_hand, l.reserved, p.low_stock_threshold
           FROM inventory_levels l
           JOIN products p ON p.id = l.product_id
          WHERE l.product_id = ANY($1)
          ORDER BY l.product_id
            FOR NO KEY UPDATE OF l",
    )
    .bind::<Array<SqlUuid>, _>(product_ids)
    .load(conn)
}

/// Adds the deltas to the levels, all products in one statement.
pub fn add_to_levels(
    conn: &mut PgConnection,
    product_ids: &[ProductId],
    on_hand_deltas: &[i32],
    reserved_deltas: &[i32],
) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE inventory_levels l
            SET on_hand = l.on_hand + d.on_hand_delta,
                reserved = l.reserved + d.reserved_delta
           FROM unnest($1::uuid[], $2::int4[], $3::int4[]) AS d (product_id, on_hand_delta, reserved_delta)
          WHERE l.product_id = d.product_id",
    )
    .bind::<Array<SqlUuid>, _>(product_ids)
    .bind::<Array<Int4>, _>(on_hand_deltas)
    .bind::<Array<Int4>, _>(reserved_deltas)
    .execute(conn)
}

pub fn insert_movements(conn: &mut PgConnection, movements: &[NewMovement<'_>]) -> QueryResult<usize> {
    diesel::insert_into(crate::schema::inventory_movements::table).values(movements).execute(conn)
}

pub fn insert_level(conn: &mut PgConnection, product: ProductId) -> QueryResult<usize> {
    use crate::schema::inventory_levels::dsl::*;
    diesel::insert_into(inventory_levels).values(product_id.eq(product)).on_conflict_do_nothing().execute(conn)
}

pub fn level(conn: &mut PgConnection, product: ProductId) -> QueryResult<Option<StockLevel>> {
    use crate::schema::{inventory_levels, products};
    inventory_levels::table
        .inner_join(products::table)
        .filter(inventory_levels::product_id.eq(product))
        .select(StockLevel::as_select())
        .first(conn)
        .optional()
}

/// Levels by available stock, emptiest first, from just after `after`.
pub fn levels(
    conn: &mut PgConnection,
    low_only: bool,
    after: Option<(i32, ProductId)>,
    limit: i64,
) -> QueryResult<Vec<StockLevel>> {
    use crate::schema::{inventory_levels, products};
    let available = inventory_levels::on_hand - inventory_levels::reserved;
    let mut query = inventory_levels::table
        .inner_join(products::table)
        .select(StockLevel::as_select())
        .order((available.asc(), inventory_levels::product_id.asc()))
        .limit(limit)
        .into_boxed();
    if low_only {
        query = query.filter(available.le(products::low_stock_threshold));
    }
    if let Some((after_available, after_product)) = after {
        // Matches the (on_hand - reserved, product_id) index.
        query = query.filter(
            sql::<Bool>("(inventory_levels.on_hand - inventory_levels.reserved, inventory_levels.product_id) > (")
                .bind::<Int4, _>(after_available)
                .sql(", ")
                .bind::<SqlUuid, _>(after_product)
                .sql(")"),
        );
    }
    query.load(conn)
}

/// How many levels are at or below their product's threshold, as `levels(low_only)` lists them.
pub fn low_count(conn: &mut PgConnection) -> QueryResult<i64> {
    use crate::schema::{inventory_levels, products};
    inventory_levels::table
        .inner_join(products::table)
        .filter((inventory_levels::on_hand - inventory_levels::reserved).le(products::low_stock_threshold))
        .count()
        .get_result(conn)
}

/// The ledger of one product, newest first, older than `before` (a movement id).
pub fn movements(
    conn: &mut PgConnection,
    product: ProductId,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Movement>> {
    use crate::schema::inventory_movements::dsl::*;
    let mut query = inventory_movements
        .filter(product_id.eq(product))
        .select(Movement::as_select())
        .order(id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(id.lt(before));
    }
    query.load(conn)
}

/// Ledger rows that belong to one order, oldest first.
pub fn order_movements(conn: &mut PgConnection, order: OrderId) -> QueryResult<Vec<Movement>> {
    use crate::schema::inventory_movements::dsl::*;
    inventory_movements.filter(order_id.eq(order)).select(Movement::as_select()).order(id.asc()).load(conn)
}
