//! Diesel queries on `customers`, `orders` and `order_lines`, and the deliberate reads of other
//! modules' tables that the shared database allows (`products` at checkout).

use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Timestamptz, Uuid as SqlUuid};

use super::model::{Customer, Order, OrderLine, OrderStatus, RefundLine};
use crate::ids::{OrderId, ProductId};

/// What checkout needs of a product: read straight from the catalog's table, in the checkout's
/// transaction, instead of asking the catalog over an API.
#[derive(Debug)]
pub struct PricedProduct {
    pub id: ProductId,
    pub sku: String,
    pub name: String,
    /// Not stored with the order: only its events' snapshot shows it.
    pub description: String,
    pub price_minor: i64,
    pub active: bool,
}

/// The number and time of an order about to be written, drawn with its prices: the event that
/// tells of the order is then written by the statement that writes the order.
#[derive(Clone, Copy, Debug)]
pub struct Drawn {
    pub number: i64,
    pub placed_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct PricedRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    number: i64,
    #[diesel(sql_type = Timestamptz)]
    placed_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Nullable<SqlUuid>)]
    id: Option<ProductId>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    sku: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    name: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    description: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    price_minor: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Bool>)]
    active: Option<bool>,
}

/// The products of `ids` with their prices, and the new order's number and time, in one round
/// trip. The number is drawn even when the order is then refused, leaving a gap in the numbering,
/// as a rolled-back checkout always did.
pub fn priced_products(conn: &mut PgConnection, ids: &[ProductId]) -> QueryResult<(Vec<PricedProduct>, Drawn)> {
    let rows: Vec<PricedRow> = diesel::sql_query(
        "WITH drawn AS (SELECT nextval('order_number_seq') AS number, now() AS placed_at)
         SELECT d.number, d.placed_at, p.id, p.sku, p.name, p.description, p.price_minor, p.active
           FROM drawn d
           LEFT JOIN products p ON p.id = ANY($1)",
    )
    .bind::<diesel::sql_types::Array<SqlUuid>, _>(ids)
    .load(conn)?;
    let drawn = rows
        .first()
        .map(|row| Drawn { number: row.number, placed_at: row.placed_at })
        .ok_or(diesel::result::Error::NotFound)?;
    let products = rows
        .into_iter()
        .filter_map(|row| {
            Some(PricedProduct {
                id: row.id?,
                sku: row.sku?,
                name: row.name?,
                description: row.description?,
                price_minor: row.price_minor?,
                active: row.active?,
            })
        })
        .collect();
    Ok((products, drawn))
}

/// A new order, pending payment, with its lines, its customer (created, or renamed to the name
/// given last) and the event that tells of it, in one statement: one round trip instead of five.
pub fn insert_placed_order(
    conn: &mut PgConnection,
    order: &NewOrder<'_>,
    lines: &[OrderLine],
    event: crate::outbox::Publication,
) -> QueryResult<Order> {
    use diesel::sql_types::{Array, BigInt, Int2, Integer, Jsonb, Text};
    let column = |value: fn(&OrderLine) -> i64| lines.iter().map(value).collect::<Vec<i64>>();
    let line_numbers: Vec<i16> = lines.iter().map(|line| line.line_no).collect();
    let products: Vec<ProductId> = lines.iter().map(|line| line.product_id).collect();
    let skus: Vec<&str> = lines.iter().map(|line| line.sku.as_str()).collect();
    let names: Vec<&str> = lines.iter().map(|line| line.name.as_str()).collect();
    let quantities: Vec<i32> = lines.iter().map(|line| line.quantity).collect();
    diesel::sql_query(format!(
        "WITH customer AS (
             INSERT INTO customers (email, name) VALUES ($1, $2)
             ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name
             RETURNING id
         ), placed AS (
             INSERT INTO orders (id, number, customer_id, status, total_minor, currency, status_token)
             SELECT $3, $4, customer.id, $5, $6, $7, $19 FROM customer
             RETURNING *
         ), lines AS (
             INSERT INTO order_lines (order_id, line_no, product_id, sku, name, unit_price_minor, quantity,
                                      line_total_minor)
             SELECT $3, l.* FROM unnest($8::int2[], $9::uuid[], $10::text[], $11::text[], $12::int8[], $13::int4[],
                                        $14::int8[]) AS l
         ), published AS (
             SELECT {} AS event_id
         )
         SELECT placed.* FROM placed, published",
        crate::outbox::publish_call(15)
    ))
    .bind::<Text, _>(order.email)
    .bind::<Text, _>(order.name)
    .bind::<SqlUuid, _>(order.id)
    .bind::<BigInt, _>(order.number)
    .bind::<Text, _>(OrderStatus::PendingPayment.as_str())
    .bind::<BigInt, _>(order.total_minor)
    .bind::<Text, _>(order.currency)
    .bind::<Array<Int2>, _>(line_numbers)
    .bind::<Array<SqlUuid>, _>(products)
    .bind::<Array<Text>, _>(skus)
    .bind::<Array<Text>, _>(names)
    .bind::<Array<BigInt>, _>(column(|line| line.unit_price_minor))
    .bind::<Array<Integer>, _>(quantities)
    .bind::<Array<BigInt>, _>(column(|line| line.line_total_minor))
    .bind::<Text, _>(event.event_type)
    .bind::<Text, _>(event.aggregate_kind)
    .bind::<SqlUuid, _>(event.aggregate_id)
    .bind::<Jsonb, _>(event.payload)
    .bind::<Text, _>(order.status_token)
    .get_result(conn)
}

/// What [`insert_placed_order`] writes of the order itself.
pub struct NewOrder<'a> {
    pub id: OrderId,
    pub number: i64,
    pub email: &'a str,
    pub name: &'a str,
    pub total_minor: i64,
    pub currency: &'a str,
    pub status_token: &'a str,
}

/// Locks the order for a status change. `NO KEY UPDATE`: rows that merely reference the order
/// (payments, e-mails) can still be inserted meanwhile.
pub fn lock_order(conn: &mut PgConnection, order_id: OrderId) -> QueryResult<Option<Order>> {
    use crate::schema::orders::dsl::*;
    orders.find(order_id).select(Order::as_select()).for_no_key_update().first(conn).optional()
}

/// The oldest unpaid order created before `cutoff` that no other process is working on, locked.
pub fn lock_expired_unpaid(conn: &mut PgConnection, cutoff: DateTime<Utc>) -> QueryResult<Option<Order>> {
    use crate::schema::orders::dsl::*;
    orders
        .filter(status.eq(OrderStatus::PendingPayment))
        .filter(created_at.lt(cutoff))
        .order(created_at.asc())
        .select(Order::as_select())
        .for_no_key_update()
        .skip_locked()
        .first(conn)
        .optional()
}

pub fn set_status(conn: &mut PgConnection, order_id: OrderId, new_status: OrderStatus) -> QueryResult<Order> {
    use crate::schema::orders::dsl::*;
    diesel::update(orders.find(order_id)).set(status.eq(new_status)).returning(Order::as_returning()).get_result(conn)
}

/// Sets the status of an order that is leaving the warehouse, and when it did.
pub fn set_shipped(conn: &mut PgConnection, order_id: OrderId, new_status: OrderStatus) -> QueryResult<Order> {
    use crate::schema::orders::dsl::*;
    diesel::update(orders.find(order_id))
        .set((status.eq(new_status), shipped_at.eq(diesel::dsl::now)))
        .returning(Order::as_returning())
        .get_result(conn)
}

pub fn insert_refund_lines(conn: &mut PgConnection, lines: &[RefundLine]) -> QueryResult<usize> {
    diesel::insert_into(crate::schema::order_refund_lines::table).values(lines).execute(conn)
}

/// How many units of each line of the order have been refunded so far: (line number, units),
/// lines with none left out.
pub fn refunded_units(conn: &mut PgConnection, order: OrderId) -> QueryResult<Vec<(i16, i64)>> {
    use crate::schema::order_refund_lines::dsl::*;
    let rows: Vec<(i16, Option<i64>)> = order_refund_lines
        .filter(order_id.eq(order))
        .group_by(line_no)
        .select((line_no, diesel::dsl::sum(quantity)))
        .load(conn)?;
    Ok(rows.into_iter().map(|(line, units)| (line, units.unwrap_or(0))).collect())
}

pub fn lines(conn: &mut PgConnection, order: OrderId) -> QueryResult<Vec<OrderLine>> {
    use crate::schema::order_lines::dsl::*;
    order_lines.filter(order_id.eq(order)).select(OrderLine::as_select()).order(line_no.asc()).load(conn)
}

pub struct ListFilter {
    pub status: Option<OrderStatus>,
    pub email: Option<String>,
    pub number: Option<i64>,
}

/// Orders newest first with their customer, from just after `after`.
pub fn list(
    conn: &mut PgConnection,
    filter: &ListFilter,
    after: Option<(DateTime<Utc>, OrderId)>,
    limit: i64,
) -> QueryResult<Vec<(Order, Customer)>> {
    use crate::schema::{customers, orders};
    let mut query = orders::table
        .inner_join(customers::table)
        .select((Order::as_select(), Customer::as_select()))
        .order((orders::created_at.desc(), orders::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(orders::status.eq(status));
    }
    if let Some(email) = &filter.email {
        query = query.filter(customers::email.eq(email.clone()));
    }
    if let Some(number) = filter.number {
        query = query.filter(orders::number.eq(number));
    }
    if let Some((after_created, after_id)) = after {
        // Row comparison: answered from the (created_at DESC, id DESC) indexes.
        query = query.filter(
            sql::<Bool>("(orders.created_at, orders.id) < (")
                .bind::<Timestamptz, _>(after_created)
                .sql(", ")
                .bind::<SqlUuid, _>(after_id)
                .sql(")"),
        );
    }
    query.load(conn)
}

/// What an order brings in, net of refunds, as SQL over `orders o`: its total while paid or
/// shipped, its total less what was refunded while partially refunded (read from its payment,
/// for those orders only), nothing otherwise. Fully refunded orders bring nothing.
pub const NET_REVENUE_SQL: &str = "CASE o.status WHEN 'paid' THEN o.total_minor WHEN 'shipped' THEN o.total_minor \
     WHEN 'partially_refunded' THEN o.total_minor - coalesce((SELECT p.refunded_minor FROM payments p \
     WHERE p.order_id = o.id AND p.status = 'succeeded'), 0) ELSE 0 END";

#[derive(Debug, QueryableByName)]
pub struct StatusTotal {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: OrderStatus,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub orders: i64,
    /// `sum()` of bigints is `numeric` in PostgreSQL; read as text, it becomes an `i128`
    /// rather than overflowing a cast back to bigint.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub total_minor: String,
    /// The revenue of these orders, net of refunds (see [`NET_REVENUE_SQL`]).
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub net_minor: String,
}

/// Orders created since `since`, per status, with their totals: a range of the created_at index.
pub fn recent_totals(conn: &mut PgConnection, since: DateTime<Utc>) -> QueryResult<Vec<StatusTotal>> {
    diesel::sql_query(format!(
        "SELECT o.status, count(*) AS orders, coalesce(sum(o.total_minor), 0)::text AS total_minor,
                coalesce(sum({NET_REVENUE_SQL}), 0)::text AS net_minor
           FROM orders o WHERE o.created_at >= $1 GROUP BY o.status"
    ))
    .bind::<Timestamptz, _>(since)
    .load(conn)
}
