//! The storefront's queries: its own carts, and the catalog's and inventory's tables read
//! directly, as its declaration says.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Bytea, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};

use crate::ids::{OrderId, ProductId};

/// How the grid is sorted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sort {
    Name,
    PriceLow,
    PriceHigh,
}

impl Sort {
    pub const ALL: [Sort; 3] = [Sort::Name, Sort::PriceLow, Sort::PriceHigh];

    pub fn parse(text: &str) -> Option<Sort> {
        Sort::ALL.into_iter().find(|sort| sort.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::PriceLow => "price",
            Sort::PriceHigh => "price-desc",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Sort::Name => "Name",
            Sort::PriceLow => "Price, low to high",
            Sort::PriceHigh => "Price, high to low",
        }
    }
}

/// Where a page of the grid starts: after this product, in the page's sort order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum After {
    Name(String, ProductId),
    Price(i64, ProductId),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GridQuery {
    /// Part of the product's name (at most 100 characters).
    pub search: Option<String>,
    pub category: Option<String>,
    pub sort: Sort,
    pub after: Option<After>,
}

/// A product as a card of the grid shows it.
#[derive(Clone, Debug, QueryableByName)]
pub struct Card {
    #[diesel(sql_type = SqlUuid)]
    pub id: ProductId,
    #[diesel(sql_type = Text)]
    pub sku: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = BigInt)]
    pub price_minor: i64,
    /// On hand and not promised to an order; 0 for a product with no stock row.
    #[diesel(sql_type = Integer)]
    pub available: i32,
}

#[derive(Clone, Debug, QueryableByName)]
pub struct Category {
    #[diesel(sql_type = SqlUuid)]
    pub id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    pub slug: String,
    #[diesel(sql_type = Text)]
    pub name: String,
}

pub const PAGE_SIZE: i64 = 12;

/// Every category, by name: the shop's aisles.
pub fn categories(conn: &mut PgConnection) -> QueryResult<Vec<Category>> {
    diesel::sql_query("SELECT id, slug, name FROM categories ORDER BY name, slug").load(conn)
}

/// A page of active products with their availability, in one query across the catalog's and
/// the inventory's tables. `None` as the category's id: every category. Returns one card more
/// than a page when there is a next page.
pub fn grid(conn: &mut PgConnection, query: &GridQuery, category_id: Option<uuid::Uuid>) -> QueryResult<Vec<Card>> {
    // The keyset condition and order for each sort; the values are bound, never formatted in.
    let (keyset, order) = match query.sort {
        Sort::Name => ("($4::text IS NULL OR (p.name, p.id) > ($4, $6))", "p.name, p.id"),
        Sort::PriceLow => ("($5::int8 IS NULL OR (p.price_minor, p.id) > ($5, $6))", "p.price_minor, p.id"),
        Sort::PriceHigh => (
            "($5::int8 IS NULL OR p.price_minor < $5 OR (p.price_minor = $5 AND p.id > $6))",
            "p.price_minor DESC, p.id",
        ),
    };
    let sql = format!(
        "SELECT p.id, p.sku, p.name, p.price_minor, COALESCE(l.on_hand - l.reserved, 0) AS available
           FROM products p
           LEFT JOIN inventory_levels l ON l.product_id = p.id
          WHERE p.active
            AND ($1::uuid IS NULL OR p.category_id = $1)
            AND ($2::text IS NULL OR p.name ILIKE $2)
            AND {keyset}
          ORDER BY {order}
          LIMIT $3"
    );
    let (after_name, after_price, after_id) = match &query.after {
        None => (None, None, None),
        Some(After::Name(name, id)) => (Some(name.as_str()), None, Some(*id)),
        Some(After::Price(price, id)) => (None, Some(*price), Some(*id)),
    };
    diesel::sql_query(sql)
        .bind::<Nullable<SqlUuid>, _>(category_id)
        .bind::<Nullable<Text>, _>(query.search.as_deref().map(crate::input::like_containing))
        .bind::<BigInt, _>(PAGE_SIZE + 1)
        .bind::<Nullable<Text>, _>(after_name)
        .bind::<Nullable<BigInt>, _>(after_price)
        .bind::<Nullable<SqlUuid>, _>(after_id)
        .load(conn)
}

/// A product as its page shows it.
#[derive(Clone, Debug, QueryableByName)]
pub struct ProductPage {
    #[diesel(sql_type = SqlUuid)]
    pub id: ProductId,
    #[diesel(sql_type = Text)]
    pub sku: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub description: String,
    #[diesel(sql_type = BigInt)]
    pub price_minor: i64,
    #[diesel(sql_type = Bool)]
    pub active: bool,
    #[diesel(sql_type = Integer)]
    pub available: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub category_slug: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub category_name: Option<String>,
}

pub fn product_by_sku(conn: &mut PgConnection, sku: &str) -> QueryResult<Option<ProductPage>> {
    diesel::sql_query(
        "SELECT p.id, p.sku, p.name, p.description, p.price_minor, p.active,
                COALESCE(l.on_hand - l.reserved, 0) AS available, c.slug AS category_slug, c.name AS category_name
           FROM products p
           LEFT JOIN inventory_levels l ON l.product_id = p.id
           LEFT JOIN categories c ON c.id = p.category_id
          WHERE p.sku = $1",
    )
    .bind::<Text, _>(sku)
    .get_result(conn)
    .optional()
}

/// A shopper's cart, as its row holds it.
#[derive(Clone, Debug, QueryableByName)]
pub struct Cart {
    #[diesel(sql_type = SqlUuid)]
    pub id: uuid::Uuid,
    #[diesel(sql_type = Integer)]
    pub revision: i32,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub order_id: Option<OrderId>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub order_revision: Option<i32>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub closed_at: Option<DateTime<Utc>>,
}

impl Cart {
    /// The order placed from the cart as it is now, if any.
    pub fn current_order(&self) -> Option<OrderId> {
        self.order_id.filter(|_| self.order_revision == Some(self.revision))
    }
}

const CART_COLUMNS: &str = "id, revision, order_id, order_revision, closed_at";

pub fn find_cart(conn: &mut PgConnection, token_sha256: &[u8]) -> QueryResult<Option<Cart>> {
    diesel::sql_query(format!("SELECT {CART_COLUMNS} FROM carts WHERE token_sha256 = $1"))
        .bind::<Bytea, _>(token_sha256)
        .get_result(conn)
        .optional()
}

/// The cart, locked until the transaction ends: changes to one cart and its checkout happen one
/// at a time.
pub fn lock_cart(conn: &mut PgConnection, token_sha256: &[u8]) -> QueryResult<Option<Cart>> {
    diesel::sql_query(format!("SELECT {CART_COLUMNS} FROM carts WHERE token_sha256 = $1 FOR UPDATE"))
        .bind::<Bytea, _>(token_sha256)
        .get_result(conn)
        .optional()
}

/// The cart for a change to its lines, created if it does not exist, with its revision bumped
/// and its row locked: one statement.
pub fn cart_for_change(conn: &mut PgConnection, token_sha256: &[u8]) -> QueryResult<Cart> {
    diesel::sql_query(format!(
        "INSERT INTO carts (token_sha256) VALUES ($1)
         ON CONFLICT (token_sha256) DO UPDATE SET revision = carts.revision + 1
         RETURNING {CART_COLUMNS}"
    ))
    .bind::<Bytea, _>(token_sha256)
    .get_result(conn)
}

/// The shopper's open cart for a change to a line it has: its revision bumped and its row locked,
/// in one statement; `None` without an open cart.
pub fn open_cart_for_change(conn: &mut PgConnection, token_sha256: &[u8]) -> QueryResult<Option<Cart>> {
    diesel::sql_query(format!(
        "UPDATE carts SET revision = revision + 1 WHERE token_sha256 = $1 AND closed_at IS NULL RETURNING {CART_COLUMNS}"
    ))
    .bind::<Bytea, _>(token_sha256)
    .get_result(conn)
    .optional()
}

/// A line of a cart with what the catalog and the inventory say of its product now.
#[derive(Clone, Debug, QueryableByName)]
pub struct CartLine {
    #[diesel(sql_type = SqlUuid)]
    pub product_id: ProductId,
    #[diesel(sql_type = Text)]
    pub sku: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = BigInt)]
    pub price_minor: i64,
    #[diesel(sql_type = Bool)]
    pub active: bool,
    #[diesel(sql_type = Integer)]
    pub quantity: i32,
    #[diesel(sql_type = BigInt)]
    pub unit_price_minor_added: i64,
    #[diesel(sql_type = Integer)]
    pub available: i32,
}

pub fn cart_lines(conn: &mut PgConnection, cart_id: uuid::Uuid) -> QueryResult<Vec<CartLine>> {
    diesel::sql_query(
        "SELECT cl.product_id, p.sku, p.name, p.price_minor, p.active, cl.quantity, cl.unit_price_minor_added,
                COALESCE(l.on_hand - l.reserved, 0) AS available
           FROM cart_lines cl
           JOIN products p ON p.id = cl.product_id
           LEFT JOIN inventory_levels l ON l.product_id = cl.product_id
          WHERE cl.cart_id = $1
          ORDER BY cl.added_at, p.name",
    )
    .bind::<SqlUuid, _>(cart_id)
    .load(conn)
}

/// What a product costs now and whether it is sold, for adding it to a cart.
#[derive(QueryableByName)]
pub struct Sellable {
    #[diesel(sql_type = BigInt)]
    pub price_minor: i64,
    #[diesel(sql_type = Bool)]
    pub active: bool,
}

pub fn sellable(conn: &mut PgConnection, product_id: ProductId) -> QueryResult<Option<Sellable>> {
    diesel::sql_query("SELECT price_minor, active FROM products WHERE id = $1")
        .bind::<SqlUuid, _>(product_id)
        .get_result(conn)
        .optional()
}

pub fn line_count(conn: &mut PgConnection, cart_id: uuid::Uuid) -> QueryResult<i64> {
    use crate::schema::cart_lines;
    cart_lines::table.filter(cart_lines::cart_id.eq(cart_id)).count().get_result(conn)
}

/// Adds `quantity` of a product to a cart (up to `max` of it), remembering the price seen the
/// first time it was added.
pub fn add_line(
    conn: &mut PgConnection,
    cart_id: uuid::Uuid,
    product_id: ProductId,
    quantity: i32,
    price_minor: i64,
    max: i32,
) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO cart_lines (cart_id, product_id, quantity, unit_price_minor_added) VALUES ($1, $2, $3, $4)
         ON CONFLICT (cart_id, product_id) DO UPDATE SET quantity = LEAST(cart_lines.quantity + EXCLUDED.quantity, $5)",
    )
    .bind::<SqlUuid, _>(cart_id)
    .bind::<SqlUuid, _>(product_id)
    .bind::<Integer, _>(quantity)
    .bind::<BigInt, _>(price_minor)
    .bind::<Integer, _>(max)
    .execute(conn)
}

pub fn set_quantity(
    conn: &mut PgConnection,
    cart_id: uuid::Uuid,
    product_id: ProductId,
    quantity: i32,
) -> QueryResult<usize> {
    use crate::schema::cart_lines;
    diesel::update(cart_lines::table.find((cart_id, product_id))).set(cart_lines::quantity.eq(quantity)).execute(conn)
}

pub fn remove_line(conn: &mut PgConnection, cart_id: uuid::Uuid, product_id: ProductId) -> QueryResult<usize> {
    use crate::schema::cart_lines;
    diesel::delete(cart_lines::table.find((cart_id, product_id))).execute(conn)
}

pub fn set_order(conn: &mut PgConnection, cart: &Cart, order_id: OrderId) -> QueryResult<usize> {
    use crate::schema::carts;
    diesel::update(carts::table.find(cart.id))
        .set((carts::order_id.eq(Some(order_id)), carts::order_revision.eq(Some(cart.revision))))
        .execute(conn)
}

/// The cart's order is paid: the cart is spent.
pub fn close(conn: &mut PgConnection, cart_id: uuid::Uuid) -> QueryResult<usize> {
    diesel::sql_query("UPDATE carts SET closed_at = now() WHERE id = $1").bind::<SqlUuid, _>(cart_id).execute(conn)
}

/// Counts a checkout attempt from `address` in the current minute; returns the minute's count.
pub fn count_checkout_attempt(conn: &mut PgConnection, address: &str) -> QueryResult<i32> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = Integer)]
        attempts: i32,
    }
    let count: Count = diesel::sql_query(
        "INSERT INTO checkout_attempts (client_address, minute, attempts) VALUES ($1, date_trunc('minute', now()), 1)
         ON CONFLICT (client_address, minute) DO UPDATE SET attempts = checkout_attempts.attempts + 1
         RETURNING attempts",
    )
    .bind::<Text, _>(address)
    .get_result(conn)?;
    Ok(count.attempts)
}

/// Removes up to `batch` carts untouched since `idle_since`, and the attempt counts of minutes
/// long past; returns how many carts went.
pub fn remove_idle(conn: &mut PgConnection, idle_since: DateTime<Utc>, batch: i64) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM checkout_attempts WHERE minute < now() - interval '1 hour'").execute(conn)?;
    diesel::sql_query(
        "DELETE FROM carts WHERE id IN (SELECT id FROM carts WHERE updated_at < $1 ORDER BY updated_at LIMIT $2)",
    )
    .bind::<Timestamptz, _>(idle_since)
    .bind::<BigInt, _>(batch)
    .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_read_back_what_they_write() {
        for sort in Sort::ALL {
            assert_eq!(Sort::parse(sort.as_str()), Some(sort));
        }
        assert_eq!(Sort::parse("price; DROP TABLE"), None);
    }
}
