use std::time::Duration;

use agora::architecture::coupling::{self, Violation};
use agora::architecture::scan::{self, FileScan};
use agora::kernel::{Module, TableAccess, Use};
use diesel::connection::SimpleConnection;

use crate::helpers::{TestApp, concurrently, eventually};

fn schema_tables() -> Vec<&'static str> {
    agora::architecture::schema_map::tables().iter().map(|table| table.name).collect()
}

fn schema() -> Vec<scan::SchemaTable> {
    scan::parse_schema(include_str!("../../src/schema.rs"))
}

#[test]
fn the_code_uses_exactly_the_tables_the_modules_declare() {
    let violations = coupling::check(&coupling::declarations(), &coupling::scanned(), &schema_tables());
    let explained: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(violations.is_empty(), "{explained:#?}");
}

/// The real scan plus one fixture file.
fn scans_with(path: &str, source: &str) -> Vec<FileScan> {
    let mut scans = coupling::scanned();
    scans.push(scan::scan_file(path, source, &schema()));
    scans
}

#[test]
fn a_module_reading_an_undeclared_table_fails_the_check() {
    let fixture = r#"
        use diesel::connection::SimpleConnection;
        pub fn sneaky(conn: &mut PgConnection) -> QueryResult<i64> {
            use crate::schema::admin_users::dsl::*;
            admin_users.count().get_result(conn)
        }
    "#;
    let violations =
        coupling::check(&coupling::declarations(), &scans_with("orders/sneaky.rs", fixture), &schema_tables());
    assert_eq!(
        violations,
        vec![Violation::Undeclared {
            module: "orders".into(),
            table: "admin_users".into(),
            access: "reads",
            files: vec!["orders/sneaky.rs".into()],
        }]
    );
    assert!(violations[0].to_string().contains("add it to `reads` in orders's TABLES"));
}

#[test]
fn a_module_writing_a_table_it_only_declares_reading_fails_the_check() {
    let fixture = r#"
        pub fn mark(conn: &mut PgConnection) {
            diesel::sql_query("UPDATE orders SET status = 'paid' WHERE id = $1").execute(conn);
        }
    "#;
    let violations =
        coupling::check(&coupling::declarations(), &scans_with("payments/shortcut.rs", fixture), &schema_tables());
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(
        matches!(&violations[0], Violation::Undeclared { module, table, access: "writes", .. } if module == "payments" && table == "orders")
    );
}

#[test]
fn a_declared_read_the_code_no_longer_does_fails_the_check() {
    static STALE: TableAccess = TableAccess {
        module: Module::Catalog,
        owns: &["products"],
        reads: &[Use { table: "orders", reason: "once upon a time" }],
        writes: &[],
    };
    let mut declarations = coupling::declarations();
    declarations[0] = &STALE;
    let violations = coupling::check(&declarations, &coupling::scanned(), &schema_tables());
    assert_eq!(
        violations,
        vec![Violation::Stale { module: "catalog".into(), table: "orders".into(), access: "reads" }]
    );
}

#[test]
fn code_outside_every_module_must_not_name_tables() {
    let fixture = r#"pub fn count(conn: &mut PgConnection) { diesel::sql_query("SELECT count(*) FROM products").execute(conn); }"#;
    let violations = coupling::check(&coupling::declarations(), &scans_with("seed.rs", fixture), &schema_tables());
    assert_eq!(violations, vec![Violation::OutsideModules { path: "seed.rs".into(), table: "products".into() }]);
}

#[test]
fn every_table_needs_exactly_one_owner() {
    static NOBODY: TableAccess = TableAccess { module: Module::Catalog, owns: &[], reads: &[], writes: &[] };
    let mut declarations = coupling::declarations();
    declarations[0] = &NOBODY;
    let violations = coupling::check(&declarations, &coupling::scanned(), &schema_tables());
    assert!(violations.contains(&Violation::Ownership { table: "products".into(), owners: vec![] }), "{violations:?}");
}

/// The matrix as the page shows it: (table, one label per module).
fn matrix_from_page(html: &str) -> Vec<(String, Vec<String>)> {
    let body = html.split("<table class=\"matrix\">").nth(1).unwrap().split("</table>").next().unwrap();
    body.split("<tr><td class=\"mono\">")
        .skip(1)
        .map(|row| {
            let table = row.split("\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
            let cells = row
                .split("<td class=\"")
                .skip(1)
                .map(|cell| cell.split('>').nth(1).unwrap().split('<').next().unwrap().to_owned())
                .collect();
            (table, cells)
        })
        .collect()
}

#[test]
fn the_architecture_page_shows_the_declared_matrix_diagram_and_column_dependents() {
    let app = TestApp::spawn();
    let mut browser = app.signed_in_browser();
    let page = browser.get("/admin/architecture");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("The code uses exactly the tables the modules declare."));

    let declared = coupling::matrix();
    let expected: Vec<(String, Vec<String>)> = declared
        .rows
        .iter()
        .map(|(table, _, relations)| {
            (table.clone(), relations.iter().map(|relation| relation.label().to_owned()).collect())
        })
        .collect();
    assert_eq!(matrix_from_page(&page.body), expected);
    assert_eq!(expected.len(), schema_tables().len(), "every table is in the matrix");
    let products = expected.iter().find(|(table, _)| table == "products").unwrap();
    assert_eq!(products.1, vec!["owner", "reads", "reads", "", "reads", "", "", ""]);

    assert!(page.body.contains("<svg class=\"diagram\""));
    assert!(
        page.body.contains("<title>orders reads products: checkout prices every line"),
        "the diagram's edges carry the reasons"
    );
    let price_row = page.body.split("products.price_minor</td>").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(price_row.contains("src/orders/store.rs"), "{price_row}");
    assert!(price_row.contains("src/catalog/"), "{price_row}");
    assert!(!price_row.contains("src/payments/"), "{price_row}");
}

#[test]
fn checkout_shows_which_modules_tables_it_touched() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    app.placed_order("ada@example.com", &[(&mug, 1)]);
    let metrics = app.admin_get("/api/metrics").ok_json(200);
    let checkout =
        metrics["operations"].as_array().unwrap().iter().find(|op| op["operation"] == "orders.place_order").unwrap();
    let owners = &checkout["tables_by_owner"];
    assert_eq!(owners["catalog"], serde_json::json!(["products"]));
    assert_eq!(owners["inventory"], serde_json::json!(["inventory_levels", "inventory_movements"]));
    assert_eq!(owners["orders"], serde_json::json!(["customers", "order_lines", "orders"]));
    assert_eq!(owners["outbox"], serde_json::json!(["event_deliveries", "events"]));
    let orders = metrics["modules"].as_array().unwrap().iter().find(|module| module["module"] == "orders").unwrap();
    assert!(orders["operations"].as_u64().unwrap() >= 1 && orders["queries"].as_u64().unwrap() >= 5);
    app.get("/api/metrics").problem(401);
}

#[test]
fn the_aggregated_order_view_costs_the_same_queries_whatever_the_order_holds() {
    let app = TestApp::spawn();
    let products: Vec<String> = (0..20).map(|n| app.product_with_stock(&format!("P-{n:03}"), 100, 50)).collect();
    let small = app.placed_order("a@example.com", &[(&products[0], 1)])["id"].as_str().unwrap().to_owned();
    let items: Vec<(&str, i64)> = products.iter().map(|id| (id.as_str(), 2)).collect();
    let large = app.placed_order("b@example.com", &items)["id"].as_str().unwrap().to_owned();
    app.pay(&large, "4000000000000002").problem(402);
    app.pay(&large, "4242424242424242").ok_json(201);

    let queries_per_view = |order: &str| {
        let operation = |metrics: &serde_json::Value| {
            metrics["operations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|op| op["operation"] == "orders.order_details")
                .map(|op| (op["count"].as_u64().unwrap(), op["queries"].as_u64().unwrap()))
                .unwrap_or((0, 0))
        };
        let before = operation(&app.admin_get("/api/metrics").ok_json(200));
        for _ in 0..5 {
            app.order(order);
        }
        let after = operation(&app.admin_get("/api/metrics").ok_json(200));
        // Other tests in this process may view orders meanwhile; every view costs the same, so
        // the ratio over the interval stays exact.
        (after.1 - before.1) as f64 / (after.0 - before.0) as f64
    };
    let small_cost = queries_per_view(&small);
    let large_cost = queries_per_view(&large);
    assert_eq!(small_cost, large_cost, "no query per line, payment or event");
    assert!(small_cost <= 8.0, "five reads plus the transaction's own statements: {small_cost}");
}

#[test]
fn lock_waits_behind_another_transaction_are_reported_with_the_waiting_operation() {
    let app = TestApp::spawn_with(|config| {
        config.outbox.run_in_server = true;
        config.lock_sample_interval = Duration::from_millis(20);
    });
    let hot = app.product_with_stock("HOT-001", 100, 100);
    // A stock count in another session holds the hot product's stock row.
    let mut holder = app.connect();
    holder.batch_execute("SET application_name = 'stock-count'").unwrap();
    holder
        .batch_execute(&format!("BEGIN; SELECT on_hand FROM inventory_levels WHERE product_id = '{hot}' FOR UPDATE"))
        .unwrap();
    let statuses = std::thread::scope(|scope| {
        let buyers =
            scope.spawn(|| concurrently(3, |n| app.place_order(&format!("b{n}@example.com"), &[(&hot, 1)]).status));
        eventually("a lock wait to be sampled", Duration::from_secs(10), || {
            app.admin_get("/api/metrics").ok_json(200)["lock_waits"].as_array().unwrap().iter().any(|wait| {
                wait["waiting"] == "orders.place_order" && wait["blocking"].as_str().unwrap().starts_with("stock-count")
            })
        });
        holder.batch_execute("COMMIT").unwrap();
        buyers.join().unwrap()
    });
    assert_eq!(statuses, vec![201, 201, 201], "the buyers proceed once the lock is released");
    let metrics = app.admin_get("/api/metrics").ok_json(200);
    let wait =
        metrics["lock_waits"].as_array().unwrap().iter().find(|wait| wait["waiting"] == "orders.place_order").unwrap();
    assert_eq!(wait["tables_of"], serde_json::json!(["catalog", "inventory"]));
    assert!(wait["example_query"].as_str().unwrap().contains("inventory_levels"));
    let mut browser = app.signed_in_browser();
    assert!(browser.get("/admin/architecture").body.contains("stock-count (pid"));
}
