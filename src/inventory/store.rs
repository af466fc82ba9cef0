//! Diesel queries on `inventory_levels` and `inventory_movements` (reading `products` too).

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Int4, Nullable, Text, Uuid as SqlUuid};

use super::model::{Movement, MovementKind, StockLevel};
use crate::ids::{OrderId, ProductId};

/// A level as it was when locked for a move, with what the checks need.
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
    /// Whether the move these levels were locked for was applied.
    #[diesel(sql_type = Bool)]
    pub applied: bool,
}

/// Moves the stock of `product_ids` by the deltas and writes the ledger, in one call of the SQL
/// function `inventory_move_levels` (a migration of the inventory's; one round trip, so that the
/// rows stay locked only until the transaction ends): locks the levels in product-id order,
/// applies the deltas only if every level stays valid (on hand at least 0, reserved between 0 and
/// on hand), and returns the levels as they were before, with whether the move was applied. Every
/// transaction that moves stock locks through here, so they all take locks in the same order and
/// cannot deadlock one another. The function runs as the inventory's role: a caller of another
/// module needs EXECUTE only, and no role switch.
pub fn move_levels(
    conn: &mut PgConnection,
    changes: &LevelChanges<'_>,
    kind: MovementKind,
    reason: &str,
    order_id: Option<OrderId>,
) -> QueryResult<Vec<LockedLevel>> {
    diesel::sql_query(
        // The comment names the tables the function touches, for the runtime's table sampling.
        "SELECT * FROM inventory_move_levels($1, $2, $3, $4, $5, $6) \
         /* locks and writes inventory_levels, writes inventory_movements, reads products */",
    )
    .bind::<Array<SqlUuid>, _>(changes.product_ids)
    .bind::<Array<Int4>, _>(changes.on_hand_deltas)
    .bind::<Array<Int4>, _>(changes.reserved_deltas)
    .bind::<Text, _>(kind.as_str())
    .bind::<Text, _>(reason)
    .bind::<Nullable<SqlUuid>, _>(order_id)
    .load(conn)
}

/// Changes to several levels, one entry per product, in product-id order.
pub struct LevelChanges<'a> {
    pub product_ids: &'a [ProductId],
    pub on_hand_deltas: &'a [i32],
    pub reserved_deltas: &'a [i32],
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
