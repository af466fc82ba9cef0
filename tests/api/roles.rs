//! PostgreSQL enforces the module-to-table map: each module's work runs as its own role, whose
//! privileges come from the modules' declarations.

use agora::architecture::{coupling, privileges};
use agora::db::Db;
use agora::error::CauseChain;
use agora::kernel::{Module, measure, roles};
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::cluster::Cluster;
use crate::helpers::{TestApp, captured_error_logs, test_config};

/// The application's database handle on the test's database, enforcement on.
fn module_db(app: &TestApp) -> Db {
    let config = test_config(&app.database.url);
    assert!(config.pool.module_roles, "enforcement is on by default");
    Db::connect(&app.database.url, &config.pool)
}

#[derive(QueryableByName)]
struct CurrentUser {
    #[diesel(sql_type = Text)]
    current_user: String,
}

fn current_user(conn: &mut PgConnection) -> String {
    diesel::sql_query("SELECT current_user::text AS current_user").get_result::<CurrentUser>(conn).unwrap().current_user
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    flag: bool,
}

fn may(conn: &mut PgConnection, role: &str, table: &str, privilege: &str) -> bool {
    diesel::sql_query("SELECT has_table_privilege($1, $2, $3) AS flag")
        .bind::<Text, _>(role)
        .bind::<Text, _>(table)
        .bind::<Text, _>(privilege)
        .get_result::<Flag>(conn)
        .unwrap()
        .flag
}

#[test]
fn each_module_role_holds_exactly_the_privileges_its_declaration_names() {
    let app = TestApp::spawn();
    let mut conn = app.connect();
    let granted = privileges::actual_grants(&mut conn).unwrap();
    assert_eq!(granted, privileges::declared_grants(&coupling::declarations()));

    assert!(may(&mut conn, "agora_orders", "products", "SELECT"), "a declared read");
    assert!(!may(&mut conn, "agora_orders", "products", "UPDATE"), "a read is not a write");
    assert!(!may(&mut conn, "agora_notifications", "orders", "SELECT"), "e-mails come from the events alone");
    assert!(may(&mut conn, "agora_notifications", "notifications", "INSERT"), "its own table");
    assert!(!may(&mut conn, "agora_catalog", "payments", "SELECT"), "no declaration, no access");
    assert!(may(&mut conn, "agora_catalog", "products", "DELETE"), "the owner");
    let sequence_usable =
        diesel::sql_query("SELECT has_sequence_privilege('agora_orders', 'order_number_seq', 'USAGE') AS flag")
            .get_result::<Flag>(&mut conn)
            .unwrap()
            .flag;
    assert!(sequence_usable, "the owner draws order numbers from its sequence");
    let logins = diesel::sql_query("SELECT bool_or(rolcanlogin) AS flag FROM pg_roles WHERE rolname LIKE 'agora\\_%'")
        .get_result::<Flag>(&mut conn)
        .unwrap()
        .flag;
    assert!(!logins, "module roles cannot log in");
}

/// An event any module could be asked to publish: it needs no order to exist.
fn payment_failed() -> agora::events::DomainEvent {
    agora::events::PaymentFailed {
        version: agora::events::PayloadVersion::CURRENT,
        order_id: agora::ids::OrderId::new(),
        payment_id: agora::ids::PaymentId::new(),
        decline_code: "card_declined".into(),
    }
    .into()
}

#[test]
fn modules_publish_through_the_outbox_function_only_if_they_may_call_the_outbox() {
    let app = TestApp::spawn();
    let mut conn = app.connect();
    assert_eq!(privileges::actual_function_grants(&mut conn).unwrap(), privileges::declared_function_grants());
    let can_publish = |conn: &mut PgConnection, role: &str| {
        diesel::sql_query(
            "SELECT has_function_privilege($1, 'outbox_publish(text, text, uuid, jsonb)', 'EXECUTE') AS flag",
        )
        .bind::<Text, _>(role)
        .get_result::<Flag>(conn)
        .unwrap()
        .flag
    };
    assert!(can_publish(&mut conn, "agora_orders"));
    assert!(can_publish(&mut conn, "agora_inventory"));
    assert!(!can_publish(&mut conn, "agora_catalog"), "the catalog does not call the outbox");
    assert!(!may(&mut conn, "agora_orders", "events", "INSERT"), "the function is the only way in");

    // The function writes as the outbox, whoever calls it.
    let db = module_db(&app);
    let writer = db
        .run_blocking(Module::Orders.op("publish_as_orders"), |conn| {
            conn.transaction::<_, diesel::result::Error, _>(|conn| {
                agora::outbox::publish(conn, &payment_failed())?;
                Ok(current_user(conn))
            })
        })
        .unwrap();
    assert_eq!(writer, "agora_orders", "the caller's own statements stay its own");
    let refused = db
        .run_blocking(Module::Catalog.op("publish_as_catalog"), |conn| agora::outbox::publish(conn, &payment_failed()));
    assert!(CauseChain(&refused.unwrap_err()).to_string().contains("permission denied for function outbox_publish"));
    let denial = measure::access_denials()
        .into_iter()
        .find(|denial| denial.operation == "catalog.publish_as_catalog")
        .expect("the refusal is counted");
    assert_eq!((denial.statement.as_str(), denial.table.as_str()), ("EXECUTE", "function outbox_publish"));
}

#[test]
fn on_a_database_whose_notifications_role_read_the_orders_tables_starting_agora_revokes_those_reads() {
    let app = TestApp::spawn();
    let mut conn = app.connect();
    let foreign = ["orders", "customers", "order_lines", "products"];
    // What the grants were while e-mails were rendered from those tables.
    for table in foreign {
        diesel::sql_query(format!("GRANT SELECT ON {table} TO agora_notifications")).execute(&mut conn).unwrap();
        assert!(may(&mut conn, "agora_notifications", table, "SELECT"));
    }

    // A newer agora starting on that database (as `agora serve` and `agora migrate` do).
    let upgraded = app.spawn_beside(|_| {});
    let mut conn = upgraded.connect();
    for table in foreign {
        assert!(!may(&mut conn, "agora_notifications", table, "SELECT"), "{table}: revoked, not merely not granted");
    }
    assert_eq!(privileges::actual_grants(&mut conn).unwrap(), privileges::declared_grants(&coupling::declarations()));
    let refused = module_db(&upgraded).run_blocking(Module::Notifications.op("read_an_order"), |conn| {
        diesel::sql_query("SELECT number FROM orders LIMIT 1").execute(conn)
    });
    assert!(CauseChain(&refused.unwrap_err()).to_string().contains("permission denied for table orders"));
}

#[test]
fn applying_the_privileges_again_changes_nothing() {
    let app = TestApp::spawn();
    let mut conn = app.connect();
    let before = privileges::actual_grants(&mut conn).unwrap();
    let functions_before = privileges::actual_function_grants(&mut conn).unwrap();
    privileges::apply(&mut conn).unwrap();
    privileges::apply(&mut conn).unwrap();
    assert_eq!(privileges::actual_grants(&mut conn).unwrap(), before);
    assert_eq!(privileges::actual_function_grants(&mut conn).unwrap(), functions_before);
}

#[test]
fn running_as_notifications_an_update_of_orders_is_refused_by_postgresql() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let order = app.placed_order("ada@example.com", &[(&mug, 1)]);
    let db = module_db(&app);

    let refused = db
        .run_blocking(Module::Notifications.op("mark_orders_paid"), |conn| {
            diesel::sql_query("UPDATE orders SET status = 'paid'").execute(conn)
        })
        .unwrap_err();
    assert!(CauseChain(&refused).to_string().contains("permission denied for table orders"), "{refused:?}");
    let denial = measure::access_denials()
        .into_iter()
        .find(|denial| denial.operation == "notifications.mark_orders_paid")
        .expect("the refusal is counted");
    assert_eq!(
        (denial.module.as_str(), denial.statement.as_str(), denial.table.as_str()),
        ("notifications", "UPDATE", "orders")
    );
    assert_eq!(app.order(order["id"].as_str().unwrap())["status"], "pending_payment", "nothing changed");

    // The same statement as the owner goes through: it is the role, not the statement.
    let updated = db
        .run_blocking(Module::Orders.op("touch_orders"), |conn| {
            diesel::sql_query("UPDATE orders SET updated_at = now()").execute(conn)
        })
        .unwrap();
    assert_eq!(updated, 1);
}

#[test]
fn an_undeclared_read_fails_at_runtime_and_the_log_names_module_operation_and_table() {
    let app = TestApp::spawn();
    let logs = captured_error_logs();
    let db = module_db(&app);
    let refused = db.run_blocking(Module::Notifications.op("peek_at_payments"), |conn| {
        diesel::sql_query("SELECT id FROM payments LIMIT 1").execute(conn)
    });
    assert!(refused.is_err());
    let line = logs.lines().into_iter().find(|line| line.contains("notifications.peek_at_payments")).expect("logged");
    assert!(
        line.contains("PostgreSQL refused module notifications SELECT on table payments in operation notifications.peek_at_payments"),
        "{line}"
    );
}

#[test]
fn a_call_into_another_module_switches_role_for_the_call_and_back() {
    let app = TestApp::spawn();
    let db = module_db(&app);
    let seen = db
        .run_blocking(Module::Orders.op("role_switch"), |conn| {
            conn.transaction::<_, diesel::result::Error, _>(|conn| {
                let mut seen = vec![current_user(conn)];
                {
                    let mut inventory = roles::enter(conn, Module::Inventory)?;
                    seen.push(current_user(&mut inventory));
                    {
                        let mut outbox = roles::enter(&mut inventory, Module::Outbox)?;
                        seen.push(current_user(&mut outbox));
                        let same = roles::enter(&mut outbox, Module::Outbox)?;
                        drop(same);
                        seen.push(current_user(&mut outbox));
                    }
                    seen.push(current_user(&mut inventory));
                }
                seen.push(current_user(conn));
                Ok(seen)
            })
        })
        .unwrap();
    assert_eq!(
        seen,
        ["agora_orders", "agora_inventory", "agora_outbox", "agora_outbox", "agora_inventory", "agora_orders"]
    );
}

#[test]
fn a_failed_call_inside_a_transaction_leaves_the_connection_in_its_own_role() {
    let app = TestApp::spawn();
    // One connection, so the next unit of work surely reuses the one that failed.
    let mut config = test_config(&app.database.url);
    config.pool.max_size = 1;
    let db = Db::connect(&app.database.url, &config.pool);
    let failed = db.run_blocking(Module::Orders.op("failing_call"), |conn| {
        conn.transaction::<(), diesel::result::Error, _>(|conn| {
            let mut inventory = roles::enter(conn, Module::Inventory)?;
            diesel::sql_query("SELECT no_such_column FROM inventory_levels").execute(&mut *inventory)?;
            Ok(())
        })
    });
    assert!(failed.is_err());
    let after =
        db.run_blocking(Module::Orders.op("after_failure"), |conn| Ok::<_, diesel::result::Error>(current_user(conn)));
    assert_eq!(after.unwrap(), "agora_orders");
    let outside = db.get().map(|mut conn| current_user(&mut conn)).unwrap();
    assert!(!outside.starts_with("agora_"), "work of no module runs as the login user, not {outside}");
}

#[test]
fn checkout_payment_and_e_mails_run_under_enforcement() {
    let logs = captured_error_logs();
    let app = TestApp::spawn_with(|config| config.outbox.run_in_server = true);
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let order = app.placed_order("ada@example.com", &[(&mug, 2)]);
    // With a key, the stored answer is written after checkout's last call, as idempotency.
    let keyed = serde_json::json!({
        "customer": {"email": "grace@example.com", "name": "Grace"},
        "items": [{"product_id": mug, "quantity": 1}],
    });
    app.post_json_with("/api/orders", &[("Idempotency-Key", "roles-1")], &keyed).ok_json(201);
    app.post_json_with("/api/orders", &[("Idempotency-Key", "roles-1")], &keyed).ok_json(201);
    let id = order["id"].as_str().unwrap();
    app.pay(id, "4242424242424242").ok_json(201);
    crate::helpers::eventually("the confirmation e-mail", std::time::Duration::from_secs(10), || {
        app.order(id)["notifications"].as_array().unwrap().iter().any(|mail| mail["kind"] == "order_confirmation")
    });
    let metrics = app.admin_get("/api/metrics").ok_json(200);
    assert_eq!(metrics["enforcement"]["module_roles"], true);
    // Refusals are counted per process; the only ones allowed are those other tests provoke.
    let provoked = ["notifications.mark_orders_paid", "notifications.peek_at_payments", "catalog.publish_as_catalog"];
    let denials: Vec<&serde_json::Value> = metrics["enforcement"]["denials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|denial| !provoked.contains(&denial["operation"].as_str().unwrap()))
        .collect();
    assert!(denials.is_empty(), "{denials:?}");
    // The deliberate case is another test's `SELECT 1`; checkout itself never runs late.
    let late: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|line| line.contains("handed to") && !line.contains(": SELECT 1 -- binds"))
        .collect();
    assert!(late.is_empty(), "{late:?}");
}

#[test]
fn a_last_call_leaves_the_callee_role_until_the_transaction_ends() {
    let app = TestApp::spawn();
    let logs = captured_error_logs();
    // One connection, so each unit of work surely reuses the one before it.
    let mut config = test_config(&app.database.url);
    config.pool.max_size = 1;
    let db = Db::connect(&app.database.url, &config.pool);
    let in_call = db
        .run_blocking(Module::Orders.op("hand_over"), |conn| {
            conn.transaction::<_, diesel::result::Error, _>(|conn| {
                roles::last_call_of_transaction(|| {
                    let mut inventory = roles::enter(conn, Module::Inventory)?;
                    Ok(current_user(&mut inventory))
                })
            })
        })
        .unwrap();
    assert_eq!(in_call, "agora_inventory");
    let after = db
        .run_blocking(Module::Orders.op("after_hand_over"), |conn| Ok::<_, diesel::result::Error>(current_user(conn)));
    assert_eq!(after.unwrap(), "agora_orders", "the commit switched back");

    // Handed over inside a savepoint that is rolled back: the enclosing transaction is the caller's again.
    let seen = db
        .run_blocking(Module::Orders.op("hand_over_rolled_back"), |conn| {
            conn.transaction::<_, diesel::result::Error, _>(|conn| {
                let failed = conn.transaction::<(), diesel::result::Error, _>(|conn| {
                    roles::last_call_of_transaction(|| roles::enter(conn, Module::Inventory).map(drop))?;
                    Err(diesel::result::Error::RollbackTransaction)
                });
                assert!(failed.is_err());
                let outer = current_user(conn);
                let mut inventory = roles::enter(conn, Module::Inventory)?;
                let entered = current_user(&mut inventory);
                drop(inventory);
                Ok((outer, entered, current_user(conn)))
            })
        })
        .unwrap();
    assert_eq!(seen, ("agora_orders".into(), "agora_inventory".into(), "agora_orders".into()));

    // A statement of the caller's after its last call is an error in the log.
    db.run_blocking(Module::Orders.op("statement_after_last_call"), |conn| {
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            roles::last_call_of_transaction(|| roles::enter(conn, Module::Inventory).map(drop))?;
            diesel::sql_query("SELECT 1").execute(conn)
        })
    })
    .unwrap();
    assert!(
        logs.lines().iter().any(|line| line.contains("a statement ran after the transaction was handed to inventory")),
        "{:?}",
        logs.lines()
    );
}

#[test]
fn the_architecture_page_says_whether_postgresql_enforces_the_map() {
    let app = TestApp::spawn();
    let mut browser = app.signed_in_browser();
    let page = browser.get("/admin/architecture");
    assert!(page.body.contains("<p class=\"enforcement-on\"><strong>On.</strong>"), "enforcement is on by default");

    let off = TestApp::spawn_with(|config| config.pool.module_roles = false);
    let mut browser = off.signed_in_browser();
    assert!(browser.get("/admin/architecture").body.contains("<p class=\"enforcement-off\"><strong>Off</strong>"));
    assert_eq!(off.admin_get("/api/metrics").ok_json(200)["enforcement"]["module_roles"], false);
    // Without roles the shop works all the same.
    let mug = off.product_with_stock("MUG-001", 1290, 10);
    off.placed_order("ada@example.com", &[(&mug, 1)]);
}

#[test]
fn where_the_server_collects_statement_statistics_the_architecture_page_shows_them_per_module_role() {
    let cluster = Cluster::start(&[("shared_preload_libraries", "pg_stat_statements")]);
    let app = TestApp::spawn_on_server(|name| cluster.url(name), |_| {});
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    app.placed_order("ada@example.com", &[(&mug, 1)]);

    let metrics = app.admin_get("/api/metrics").ok_json(200);
    let roles = metrics["enforcement"]["statements_by_role"].as_array().expect("collected on this server");
    let orders = roles.iter().find(|role| role["role"] == "agora_orders").expect("checkout ran as orders");
    assert!(orders["calls"].as_i64().unwrap() >= 3, "{orders}");
    assert!(roles.iter().any(|role| role["role"] == "agora_inventory"), "the reservation ran as inventory: {roles:?}");
    let mut browser = app.signed_in_browser();
    let page = browser.get("/admin/architecture").body;
    assert!(page.contains("PostgreSQL's own figures per module role"));
    assert!(page.contains("<td class=\"mono\">agora_orders</td>"));
    drop(app);
}
