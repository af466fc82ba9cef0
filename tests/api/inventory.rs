use std::sync::{Arc, Barrier};

use agora::ids::{OrderId, ProductId};
use agora::inventory::{self, InventoryError, MovementKind, StockLine};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde_json::json;

use crate::helpers::{TestApp, assert_ledger_matches_levels};

fn product_id(id: &str) -> ProductId {
    id.parse().unwrap()
}

#[test]
fn stock_levels_show_on_hand_reserved_and_available() {
    let app = TestApp::spawn();
    let id = app.product_with_stock("MUG-001", 1290, 12);
    let stock = app.stock(&id);
    assert_eq!(
        stock,
        json!({"product_id": id, "sku": "MUG-001", "on_hand": 12, "reserved": 0, "available": 12, "low_stock_threshold": 5})
    );
    app.get("/api/inventory/6f1d6f5e-0000-4000-8000-000000000000").problem(404);
}

#[test]
fn adjustments_change_on_hand_and_are_recorded_in_the_ledger_newest_first() {
    let app = TestApp::spawn();
    let id = app.product_with_stock("MUG-001", 1290, 10);
    let levels = app
        .admin_post_json(
            &format!("/api/inventory/{id}/adjustments"),
            &json!({"delta": -3, "reason": "broken in transit"}),
        )
        .ok_json(201);
    assert_eq!((levels["on_hand"].as_i64(), levels["available"].as_i64()), (Some(7), Some(7)));

    let ledger = app.admin_get(&format!("/api/inventory/{id}/movements")).ok_json(200);
    let items = ledger["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["kind"], "adjustment");
    assert_eq!(items[0]["on_hand_delta"], -3);
    assert_eq!(items[0]["reason"], "broken in transit");
    assert_eq!(items[1]["kind"], "receipt");
    assert_eq!(items[1]["on_hand_delta"], 10);
    assert!(ledger["next_cursor"].is_null());

    let first = app.admin_get(&format!("/api/inventory/{id}/movements?limit=1")).ok_json(200);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app.admin_get(&format!("/api/inventory/{id}/movements?limit=1&cursor={cursor}")).ok_json(200);
    assert_eq!(second["items"][0]["kind"], "receipt");
}

#[test]
fn the_ledger_and_adjustments_are_admin_only() {
    let app = TestApp::spawn();
    let id = app.product_with_stock("MUG-001", 1290, 1);
    app.get(&format!("/api/inventory/{id}/movements")).problem(401);
    app.post_json(&format!("/api/inventory/{id}/adjustments"), &json!({"delta": 5, "reason": "x"})).problem(401);
    assert_eq!(app.stock(&id)["on_hand"], 1);
}

#[test]
fn invalid_adjustments_are_422_and_change_nothing() {
    let app = TestApp::spawn();
    let id = app.product_with_stock("MUG-001", 1290, 5);
    let path = format!("/api/inventory/{id}/adjustments");
    assert_eq!(
        app.admin_post_json(&path, &json!({"delta": 0, "reason": "x"})).problem(422)["errors"][0]["field"],
        "delta"
    );
    assert_eq!(
        app.admin_post_json(&path, &json!({"delta": 3, "reason": "  "})).problem(422)["errors"][0]["field"],
        "reason"
    );
    app.admin_post_json(&path, &json!({"delta": -1, "reason": "x", "kind": "receipt"})).problem(422);
    app.admin_post_json(&path, &json!({"delta": 1, "reason": "x", "kind": "shipment"})).problem(422);
    app.admin_post_json(&path, &json!({"delta": 1, "reason": "x", "kind": "gift"})).problem(400);
    app.admin_post_json(&path, &json!({"delta": 1})).problem(400);
    app.admin_post_json(&path, &json!({"delta": 2147483647, "reason": "overflow"})).problem(422);
    assert_eq!(app.stock(&id)["on_hand"], 5);
    assert_eq!(
        app.admin_get(&format!("/api/inventory/{id}/movements")).ok_json(200)["items"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn an_adjustment_below_reserved_or_zero_is_a_conflict_and_changes_nothing() {
    let app = TestApp::spawn();
    let id = app.product_with_stock("MUG-001", 1290, 10);
    let mut conn = app.connect();
    conn.transaction(|conn| {
        inventory::reserve(conn, OrderId::new(), &[StockLine { product_id: product_id(&id), quantity: 6 }])
    })
    .unwrap();

    let path = format!("/api/inventory/{id}/adjustments");
    let problem = app.admin_post_json(&path, &json!({"delta": -5, "reason": "count"})).problem(409);
    assert_eq!(problem["type"], "/problems/stock-below-reserved");
    assert!(problem["detail"].as_str().unwrap().contains("6 are reserved"), "{problem}");
    app.admin_post_json(&path, &json!({"delta": -11, "reason": "count"})).problem(409);

    assert_eq!(
        app.stock(&id),
        json!({"product_id": id, "sku": "MUG-001", "on_hand": 10, "reserved": 6, "available": 4, "low_stock_threshold": 5})
    );
    app.admin_post_json(&path, &json!({"delta": -4, "reason": "count"})).ok_json(201);
    assert_ledger_matches_levels(&mut conn);
}

#[test]
fn check_constraints_hold_against_direct_bad_updates() {
    let app = TestApp::spawn();
    let id = app.product_with_stock("MUG-001", 1290, 3);
    let mut conn = app.connect();
    for statement in [
        "UPDATE inventory_levels SET reserved = on_hand + 1",
        "UPDATE inventory_levels SET on_hand = -1, reserved = -1",
        "UPDATE inventory_levels SET reserved = -1",
        "UPDATE inventory_levels SET on_hand = 0, reserved = 1",
    ] {
        let error = diesel::sql_query(statement).execute(&mut conn).unwrap_err();
        assert!(error.to_string().contains("violates check constraint"), "{statement}: {error}");
    }
    assert_eq!(app.stock(&id)["on_hand"], 3);
}

#[test]
fn fifty_threads_reserving_from_one_product_get_exactly_the_available_stock() {
    let app = TestApp::spawn();
    let id = product_id(&app.product_with_stock("HOT-001", 1000, 20));
    let barrier = Arc::new(Barrier::new(50));
    let outcomes: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                let barrier = barrier.clone();
                let url = app.database.url.clone();
                scope.spawn(move || {
                    let mut conn = PgConnection::establish(&url).unwrap();
                    barrier.wait();
                    conn.transaction(|conn| {
                        inventory::reserve(conn, OrderId::new(), &[StockLine { product_id: id, quantity: 1 }])
                    })
                    .map_err(|error| match error {
                        InventoryError::Insufficient(shortages) => {
                            assert_eq!(shortages[0].sku, "HOT-001");
                            assert_eq!(shortages[0].available, 0);
                            "insufficient".to_owned()
                        }
                        other => panic!("unexpected error (a deadlock?): {other}"),
                    })
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    assert_eq!(outcomes.iter().filter(|outcome| outcome.is_ok()).count(), 20);
    assert_eq!(outcomes.iter().filter(|outcome| outcome.is_err()).count(), 30);
    let stock = app.stock(&id.to_string());
    assert_eq!((stock["on_hand"].as_i64(), stock["reserved"].as_i64()), (Some(20), Some(20)));
    assert_ledger_matches_levels(&mut app.connect());
}

#[test]
fn reservations_naming_products_in_opposite_orders_never_deadlock() {
    let app = TestApp::spawn();
    let a = product_id(&app.product_with_stock("AAA-001", 100, 1000));
    let b = product_id(&app.product_with_stock("BBB-001", 100, 1000));
    let c = product_id(&app.product_with_stock("CCC-001", 100, 1000));
    let orders = [vec![a, b, c], vec![c, b, a], vec![b, a, c], vec![c, a, b]];
    std::thread::scope(|scope| {
        for thread in 0..20 {
            let url = app.database.url.clone();
            let products = orders[thread % orders.len()].clone();
            scope.spawn(move || {
                let mut conn = PgConnection::establish(&url).unwrap();
                for _ in 0..10 {
                    let lines: Vec<StockLine> =
                        products.iter().map(|&product_id| StockLine { product_id, quantity: 1 }).collect();
                    let order = OrderId::new();
                    conn.transaction(|conn| inventory::reserve(conn, order, &lines)).expect("no deadlock");
                    conn.transaction(|conn| inventory::release(conn, order, &lines, "cancelled")).expect("no deadlock");
                }
            });
        }
    });
    for id in [a, b, c] {
        assert_eq!(app.stock(&id.to_string())["reserved"], 0);
    }
    assert_ledger_matches_levels(&mut app.connect());
}

#[test]
fn a_burst_of_mixed_operations_keeps_the_ledger_equal_to_the_levels() {
    let app = TestApp::spawn();
    let products: Vec<ProductId> =
        (0..4).map(|n| product_id(&app.product_with_stock(&format!("MIX-{n:03}"), 100, 50))).collect();
    std::thread::scope(|scope| {
        for thread in 0..8u64 {
            let url = app.database.url.clone();
            let products = products.clone();
            scope.spawn(move || {
                let mut conn = PgConnection::establish(&url).unwrap();
                for step in 0..30u64 {
                    let product = products[((thread * 7 + step * 3) % 4) as usize];
                    let other = products[((thread + step) % 4) as usize];
                    let lines = vec![
                        StockLine { product_id: product, quantity: 2 },
                        StockLine { product_id: other, quantity: 1 },
                    ];
                    let order = OrderId::new();
                    let _ = conn.transaction(|conn| -> Result<(), InventoryError> {
                        inventory::reserve(conn, order, &lines)?;
                        match step % 3 {
                            0 => inventory::release(conn, order, &lines, "cancelled"),
                            1 => inventory::ship(conn, order, &lines),
                            _ => Ok(()),
                        }
                    });
                    let kind = if step % 2 == 0 { MovementKind::Receipt } else { MovementKind::Adjustment };
                    let delta = if step % 2 == 0 { 3 } else { -1 };
                    let _ = conn.transaction(|conn| inventory::adjust(conn, product, delta, kind, "burst"));
                }
            });
        }
    });
    assert_ledger_matches_levels(&mut app.connect());
}

#[derive(QueryableByName)]
struct EventRow {
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Text)]
    payload: String,
}

#[test]
fn falling_to_the_threshold_writes_one_stock_low_event() {
    let app = TestApp::spawn();
    let id = app.product_with_stock("MUG-001", 1290, 10);
    let path = format!("/api/inventory/{id}/adjustments");
    app.admin_post_json(&path, &json!({"delta": -4, "reason": "count"})).ok_json(201);
    let events = || {
        diesel::sql_query("SELECT event_type, payload::text AS payload FROM events ORDER BY id")
            .load::<EventRow>(&mut app.connect())
            .unwrap()
    };
    assert!(events().is_empty(), "6 available is above the threshold of 5");
    app.admin_post_json(&path, &json!({"delta": -1, "reason": "count"})).ok_json(201);
    app.admin_post_json(&path, &json!({"delta": -1, "reason": "count"})).ok_json(201);
    let written = events();
    assert_eq!(written.len(), 1, "only the crossing is an event");
    assert_eq!(written[0].event_type, "StockLow");
    let payload: serde_json::Value = serde_json::from_str(&written[0].payload).unwrap();
    assert_eq!(payload["sku"], "MUG-001");
    assert_eq!(payload["available"], 5);
    assert_eq!(payload["threshold"], 5);
}

#[test]
fn stock_functions_refuse_to_run_outside_a_transaction() {
    let app = TestApp::spawn();
    let id = product_id(&app.product_with_stock("MUG-001", 1290, 10));
    let error = inventory::reserve(&mut app.connect(), OrderId::new(), &[StockLine { product_id: id, quantity: 1 }])
        .unwrap_err();
    assert!(error.to_string().contains("outside a transaction"), "{error}");
    assert_eq!(app.stock(&id.to_string())["reserved"], 0);
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

#[test]
fn admin_pages_show_low_stock_and_refuse_impossible_adjustments() {
    let app = TestApp::spawn();
    let low = app.product_with_stock("LOW-001", 100, 2);
    app.product_with_stock("FULL-001", 100, 50);
    let mut browser = app.signed_in_browser();

    let overview = browser.get("/admin/inventory?low=1");
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains("LOW-001") && !overview.body.contains("FULL-001"), "{}", overview.body);
    assert!(overview.body.contains("<tr class=\"low\">"));

    let refused = browser.submit(
        &format!("/admin/inventory/{low}"),
        &format!("/admin/inventory/{low}/adjustments"),
        &[("kind", "adjustment"), ("delta", "-3"), ("reason", "count")],
    );
    assert_eq!(refused.status, 409);
    assert!(refused.body.contains("stock cannot be negative"), "{}", refused.body);

    let received = browser.submit(
        &format!("/admin/inventory/{low}"),
        &format!("/admin/inventory/{low}/adjustments"),
        &[("kind", "receipt"), ("delta", "+8"), ("reason", "delivery 17")],
    );
    assert_eq!(received.status, 303);
    let ledger = browser.get(&format!("/admin/inventory/{low}"));
    assert!(ledger.body.contains("delivery 17") && ledger.body.contains("10 available"), "{}", ledger.body);

    let movements = diesel::sql_query("SELECT count(*) AS count FROM inventory_movements")
        .get_result::<Count>(&mut app.connect())
        .unwrap()
        .count;
    assert_eq!(movements, 3);
}
