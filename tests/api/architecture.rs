use std::time::Duration;

use agora::architecture::coupling::{self, Violation};
use agora::architecture::scan::{self, FileScan};
use agora::kernel::{Call, Module, TableAccess, Use};
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
        owns: &["products", "categories"],
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

#[test]
fn the_code_calls_exactly_the_modules_the_modules_declare_and_no_cycle() {
    let violations = coupling::check_dependencies(&coupling::dependency_declarations(), &coupling::scanned());
    let explained: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(violations.is_empty(), "{explained:#?}");
}

#[test]
fn the_scan_finds_the_calls_that_make_the_module_graph() {
    // The dependency check compares the declarations with these; an empty scan would pass it.
    let calls = coupling::code_calls(&coupling::scanned());
    assert!(calls["orders"]["inventory"].contains(&"orders/checkout.rs".to_owned()), "{calls:?}");
    assert!(calls["orders"]["payments"].contains(&"orders/view.rs".to_owned()), "a type import: {calls:?}");
    assert!(calls["catalog"].contains_key("inventory"), "{calls:?}");
    assert!(!calls.contains_key("admin"), "the shell calls no module: {calls:?}");
}

#[test]
fn a_module_calling_an_undeclared_module_fails_the_check() {
    let fixture = r#"
        use crate::{catalog, notifications::{self, Notification}};
        pub struct Hold {
            card: crate::payments::Card,
        }
        pub fn peek(conn: &mut PgConnection) -> Vec<Notification> {
            notifications::list(conn)
        }
    "#;
    let scans = scans_with("inventory/sneaky.rs", fixture);
    let violations = coupling::check_dependencies(&coupling::dependency_declarations(), &scans);
    let undeclared = |callee: &str| Violation::UndeclaredCall {
        module: "inventory".into(),
        callee: callee.into(),
        files: vec!["inventory/sneaky.rs".into()],
    };
    assert_eq!(violations, vec![undeclared("catalog"), undeclared("notifications"), undeclared("payments")]);
    let message = violations[0].to_string();
    assert!(message.contains("(in inventory/sneaky.rs)"), "{message}");
    assert!(message.contains("add catalog to inventory's `CALLS` (beside its TABLES), with a reason"), "{message}");
}

#[test]
fn a_declared_call_the_code_no_longer_makes_fails_the_check() {
    static CATALOG: &[Call] = &[
        Call { module: Module::Inventory, reason: "stock" },
        Call { module: Module::Notifications, reason: "once upon a time" },
        Call { module: Module::Admin, reason: "pages" },
    ];
    let mut declarations = coupling::dependency_declarations();
    assert_eq!(declarations[0].0, Module::Catalog);
    declarations[0].1 = CATALOG;
    let violations = coupling::check_dependencies(&declarations, &coupling::scanned());
    assert_eq!(violations, vec![Violation::StaleCall { module: "catalog".into(), callee: "notifications".into() }]);
    assert!(violations[0].to_string().contains("remove notifications from catalog's `CALLS`"));
}

#[test]
fn declared_calls_that_form_a_cycle_fail_the_check() {
    // The dashboard as it was, inside the admin shell: admin calls orders and the outbox, whose
    // pages call admin.
    let fixture = r#"
        use crate::orders::Dashboard;
        use crate::outbox::Backlog;
        pub async fn show(state: web::Data<AppState>) -> (Dashboard, Backlog) {
            (crate::orders::dashboard(conn), crate::outbox::backlog(conn))
        }
    "#;
    static ADMIN: &[Call] = &[
        Call { module: Module::Orders, reason: "the dashboard counts orders" },
        Call { module: Module::Outbox, reason: "the dashboard shows the backlog" },
    ];
    let mut declarations = coupling::dependency_declarations();
    assert_eq!(declarations[7].0, Module::Admin);
    declarations[7].1 = ADMIN;
    let violations = coupling::check_dependencies(&declarations, &scans_with("admin/dashboard.rs", fixture));
    let cycles: Vec<Vec<String>> = violations
        .iter()
        .map(|violation| match violation {
            Violation::Cycle { path } => path.clone(),
            other => panic!("{other}"),
        })
        .collect();
    let cycle = |modules: &[&str]| modules.iter().map(|module| module.to_string()).collect::<Vec<_>>();
    assert!(cycles.contains(&cycle(&["orders", "admin", "orders"])), "{cycles:?}");
    assert!(cycles.contains(&cycle(&["outbox", "admin", "outbox"])), "{cycles:?}");
    assert!(cycles.iter().all(|path| path.contains(&"admin".to_owned())), "{cycles:?}");
    let message =
        violations.iter().map(ToString::to_string).find(|message| message.contains("orders -> admin -> orders"));
    assert!(message.unwrap().contains("form a cycle, orders -> admin -> orders: "));

    static LONGER: &[Call] = &[Call { module: Module::Catalog, reason: "a product's stock history names its product" }];
    let mut declarations = coupling::dependency_declarations();
    assert_eq!(declarations[1].0, Module::Inventory);
    declarations[1].1 = LONGER;
    let cycles: Vec<Violation> = coupling::check_dependencies(&declarations, &coupling::scanned())
        .into_iter()
        .filter(|violation| matches!(violation, Violation::Cycle { .. }))
        .collect();
    assert_eq!(cycles, vec![Violation::Cycle { path: vec!["catalog".into(), "inventory".into(), "catalog".into()] }]);
}

#[test]
fn test_code_in_any_layout_is_not_the_modules_code() {
    let fixture = r#"
        use crate::admin::session::Admin;
        pub fn list(_: Admin) {}

        #[cfg(test)] use crate::orders::Order;
        #[cfg(test)]
        #[allow(dead_code)]
        fn helper(conn: &mut PgConnection) {
            diesel::sql_query("UPDATE orders SET status = 'paid'").execute(conn);
        }
        #[derive(Debug)] #[cfg( test )] struct Probe { card: crate::inventory::StockLine }
        #[cfg(all(test, feature = "slow"))]
        mod slow { use crate::{catalog, notifications}; }
        #[cfg(test)]
        mod tests {
            use super::*;
            #[test]
            fn t() { crate::outbox::publish(conn, &event); }
        }
        #[cfg(test)] mod more_tests;
    "#;
    let scans = scans_with("payments/odd.rs", fixture);
    let odd = scans.last().unwrap();
    assert_eq!(odd.calls.iter().collect::<Vec<_>>(), ["admin"]);
    assert!(odd.tables.is_empty(), "{:?}", odd.tables);
    assert!(coupling::check_dependencies(&coupling::dependency_declarations(), &scans).is_empty());
    assert!(coupling::check(&coupling::declarations(), &scans, &schema_tables()).is_empty());
    assert_eq!(
        scan::test_only_files("payments/odd.rs", fixture),
        ["payments/odd/slow/", "payments/odd/tests/", "payments/odd/more_tests.rs", "payments/odd/more_tests/"]
    );

    // The same code without the attributes is the module's code, and fails both checks.
    let untested = fixture
        .replace("#[cfg(test)]", "")
        .replace("#[cfg( test )]", "")
        .replace("#[cfg(all(test, feature = \"slow\"))]", "");
    let scans = scans_with("payments/odd.rs", &untested);
    assert_eq!(coupling::check_dependencies(&coupling::dependency_declarations(), &scans).len(), 5);
    assert_eq!(coupling::check(&coupling::declarations(), &scans, &schema_tables()).len(), 1);
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
    assert_eq!(products.1, vec!["owner", "reads", "reads", "", "", "", "", ""]);
    for table in ["orders", "customers", "order_lines"] {
        let row = expected.iter().find(|(name, _)| name == table).unwrap();
        assert_eq!(row.1[Module::Notifications.index()], "", "{table}: e-mails come from the events alone");
    }

    assert!(page.body.contains("<svg class=\"diagram\""));
    assert!(
        page.body.contains("<title>orders reads products: checkout prices every line"),
        "the diagram's edges carry the reasons"
    );
    assert!(page.body.contains("The modules call exactly the modules they declare, and no cycle."));
    let dependencies =
        page.body.split("<table class=\"dependencies\">").nth(1).unwrap().split("</table>").next().unwrap();
    let declared_calls: Vec<(Module, &Call)> = coupling::dependency_declarations()
        .into_iter()
        .flat_map(|(module, calls)| calls.iter().map(move |call| (module, call)))
        .collect();
    assert_eq!(dependencies.matches("<tr><td>").count(), declared_calls.len());
    for (module, call) in &declared_calls {
        let row = format!("<tr><td>{}</td><td>{}</td><td>", module.name(), call.module.name());
        assert!(dependencies.contains(&row), "{row} missing from {dependencies}");
    }
    assert!(
        page.body.contains("<title>orders calls inventory: checkout reserves stock"),
        "the diagram's call arcs are the declared ones, with their reasons"
    );
    assert!(!page.body.contains("<title>orders calls admin"), "calls into the admin shell are listed, not drawn");

    let price_row = page.body.split("products.price_minor</td>").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(price_row.contains("src/orders/store.rs"), "{price_row}");
    assert!(price_row.contains("src/catalog/"), "{price_row}");
    assert!(!price_row.contains("src/payments/"), "{price_row}");
    let description_row = page.body.split("products.description</td>").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(description_row.contains("src/orders/snapshot.rs"), "the events' snapshot: {description_row}");
    assert!(!description_row.contains("src/notifications/"), "{description_row}");
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
