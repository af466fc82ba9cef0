//! The benchmarks' shop: products with known ids and ample stock, and the SQL a checkout runs,
//! for pgbench to run as the baseline.
// Each benchmark uses a part of it.
#![allow(dead_code)]

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

pub const PRODUCTS: usize = 200;
pub const CUSTOMERS: usize = 1000;

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Text)]
    id: String,
}

/// Products with known ids (md5 of their number) so that pgbench can name them, and their stock
/// received through the ledger as the inventory module would record it; their ids in SKU order.
pub fn stock_products(conn: &mut PgConnection) -> Vec<String> {
    conn.batch_execute(&format!(
        "INSERT INTO products (id, sku, name, price_minor) SELECT md5('bench-' || n)::uuid, 'BENCH-' || lpad(n::text, 5, '0'), 'Bench product', 1000 FROM generate_series(1, {PRODUCTS}) AS n;
         INSERT INTO inventory_levels (product_id, on_hand) SELECT id, 100000000 FROM products;
         INSERT INTO inventory_movements (product_id, kind, on_hand_delta, reserved_delta, reason) SELECT id, 'receipt', 100000000, 0, 'bench stock' FROM products;
         ANALYZE;"
    ))
    .unwrap();
    diesel::sql_query("SELECT id::text AS id FROM products ORDER BY sku")
        .load::<Id>(conn)
        .unwrap()
        .into_iter()
        .map(|row| row.id)
        .collect()
}

/// POST /api/orders at `base` for one unit of each of `items`, as customer number `client`/`n`;
/// whether it was placed.
pub fn checkout(base: &str, agent: &ureq::Agent, client: usize, n: u64, items: &[&str]) -> bool {
    let body = serde_json::json!({
        "customer": {"email": format!("buyer{}@example.com", (client * 7919 + n as usize) % CUSTOMERS + 1), "name": "Bench Buyer"},
        "items": items.iter().map(|id| serde_json::json!({"product_id": id, "quantity": 1})).collect::<Vec<_>>(),
    });
    agent.post(&format!("{base}/api/orders")).send_json(&body).map(|r| r.status().as_u16() == 201).unwrap_or(false)
}

/// The statements `orders::place_order` runs, in its order, for pgbench: one line per product
/// expression (pgbench variables allowed). With `stock_first`, the stock rows are locked before
/// the order is written instead of after, to measure what that order of statements would cost.
pub fn checkout_script(products: &[&str], stock_first: bool) -> String {
    let ids: Vec<String> = products.iter().map(|n| format!("md5('bench-' || {n})::uuid")).collect();
    let id_list = ids.join(", ");
    let zeros = vec!["0"; ids.len()].join(", ");
    let ones = vec!["1"; ids.len()].join(", ");
    let line_numbers: Vec<String> = (1..=ids.len()).map(|n| n.to_string()).collect();
    let skus: Vec<String> = ids.iter().map(|id| format!("(SELECT sku FROM products WHERE id = {id})")).collect();
    // The one call of `inventory::store::move_levels`.
    let stock = format!(
        "SELECT * FROM inventory_move_levels(ARRAY[{id_list}]::uuid[], ARRAY[{zeros}]::int4[], ARRAY[{ones}]::int4[], 'reservation', 'reserved for an order', ':order_id'::uuid);\n"
    );
    // As large as the payload checkout writes: the order with a snapshot of each line.
    let line = serde_json::json!({
        "product_id": "00000000-0000-0000-0000-000000000000", "sku": "BENCH-00001", "name": "Bench product",
        "description": "A product of the benchmark's catalogue.", "quantity": 1, "unit_price_minor": 1000,
        "line_total_minor": 1000,
    });
    let total = 1000 * ids.len();
    let payload = serde_json::json!({
        "version": 1, "order_id": "00000000-0000-0000-0000-000000000000", "number": "AG-000001",
        "total_minor": total, "currency": "EUR",
        "order": {
            "number": "AG-000001", "placed_at": "2026-12-06T14:00:00.123456Z",
            "customer": {"name": "Bench Buyer", "email": "buyer1@example.com"},
            "lines": vec![line; ids.len()], "total_minor": total, "currency": "EUR",
        },
    })
    .to_string()
    .replace('\'', "''");
    // The one statement of `orders::store::insert_placed_order`: the customer, the order with the
    // number drawn with the prices, its lines, and its event.
    let order = format!(
        r#"WITH customer AS (INSERT INTO customers (email, name) VALUES ('buyer' || :customer || '@example.com', 'Bench Buyer') ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name RETURNING id), placed AS (INSERT INTO orders (id, number, customer_id, status, total_minor, currency) SELECT ':order_id'::uuid, currval('order_number_seq'), customer.id, 'pending_payment', {total}, 'EUR' FROM customer RETURNING *), lines AS (INSERT INTO order_lines (order_id, line_no, product_id, sku, name, unit_price_minor, quantity, line_total_minor) SELECT ':order_id'::uuid, l.* FROM unnest(ARRAY[{line_numbers}]::int2[], ARRAY[{id_list}]::uuid[], ARRAY[{skus}]::text[], ARRAY[{names}]::text[], ARRAY[{prices}]::int8[], ARRAY[{ones}]::int4[], ARRAY[{prices}]::int8[]) AS l), published AS (SELECT outbox_publish('OrderPlaced', 'order', ':order_id'::uuid, '{payload}') AS event_id) SELECT placed.* FROM placed, published;
"#,
        line_numbers = line_numbers.join(", "),
        skus = skus.join(", "),
        names = vec!["'Bench product'"; ids.len()].join(", "),
        prices = vec!["1000"; ids.len()].join(", "),
    );
    let (first, second) = if stock_first { (&stock, &order) } else { (&order, &stock) };
    format!(
        r#"\set a random(1, {PRODUCTS})
\set customer random(1, {CUSTOMERS})
SELECT gen_random_uuid() AS order_id \gset
BEGIN;
WITH drawn AS (SELECT nextval('order_number_seq') AS number, now() AS placed_at) SELECT d.number, d.placed_at, p.id, p.sku, p.name, p.description, p.price_minor, p.active FROM drawn d LEFT JOIN products p ON p.id = ANY(ARRAY[{id_list}]);
{first}{second}COMMIT;
"#
    )
}
