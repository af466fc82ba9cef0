use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_ledger_matches_levels, concurrently, eventually, order_body};

#[test]
fn placing_an_order_prices_it_from_the_catalog_and_reserves_its_stock() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let cap = app.product_with_stock("CAP-001", 1790, 5);

    let response = app.place_order("Ada@Example.com", &[(&mug, 2), (&cap, 1)]);
    let order = response.ok_json(201);
    let id = order["id"].as_str().unwrap();
    assert_eq!(response.header("location"), Some(format!("/api/orders/{id}").as_str()));
    assert!(order["number"].as_str().unwrap().starts_with("AG-0"), "{order}");
    assert_eq!(order["status"], "pending_payment");
    assert_eq!(order["customer"], json!({"email": "ada@example.com", "name": "Ada Lovelace"}));
    assert_eq!(
        order["items"],
        json!([
            {"product_id": mug, "sku": "MUG-001", "name": "Product MUG-001", "unit_price_minor": 1290, "quantity": 2, "line_total_minor": 2580, "refunded_quantity": 0},
            {"product_id": cap, "sku": "CAP-001", "name": "Product CAP-001", "unit_price_minor": 1790, "quantity": 1, "line_total_minor": 1790, "refunded_quantity": 0},
        ])
    );
    assert_eq!(order["total_minor"], 4370);
    assert_eq!(order["currency"], "EUR");
    assert_eq!(order["shipped_at"], Value::Null);

    assert_eq!(app.stock(&mug)["reserved"], 2);
    assert_eq!(app.stock(&cap)["available"], 4);
    let details = app.order(id);
    assert_eq!(details["events"][0]["type"], "OrderPlaced");
    assert_eq!(details["events"][0]["payload"]["total_minor"], 4370);
    assert_eq!(details["payments"], json!([]));
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM inventory_movements WHERE order_id = '{id}' AND kind = 'reservation'"
        )),
        2
    );
}

#[test]
fn order_numbers_are_sequential() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 100, 10);
    let first = app.placed_order("a@example.com", &[(&mug, 1)]);
    let second = app.placed_order("b@example.com", &[(&mug, 1)]);
    let number = |order: &serde_json::Value| order["number"].as_str().unwrap()[3..].parse::<i64>().unwrap();
    assert_eq!(number(&second), number(&first) + 1);
}

#[test]
fn lines_for_the_same_product_are_merged() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 100, 10);
    let order = app.placed_order("a@example.com", &[(&mug, 2), (&mug, 3)]);
    assert_eq!(order["items"].as_array().unwrap().len(), 1);
    assert_eq!(order["items"][0]["quantity"], 5);
    assert_eq!(app.stock(&mug)["reserved"], 5);
}

#[test]
fn invalid_orders_are_refused_and_change_nothing() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 100, 10);
    let gone = app.product_with_stock("GONE-001", 100, 10);
    app.admin_patch_json(&format!("/api/products/{gone}"), &json!({"active": false})).ok_json(200);
    let unknown = "6f1d6f5e-0000-4000-8000-000000000000";

    let problem = app.place_order("not-an-email", &[(&mug, 0)]).problem(422);
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["customer.email", "items[0].quantity"]);
    app.place_order("a@example.com", &[]).problem(422);
    app.place_order("a@example.com", &[(&mug, 1001)]).problem(422);
    let many: Vec<(&str, i64)> = (0..51).map(|_| (mug.as_str(), 1)).collect();
    app.place_order("a@example.com", &many).problem(422);
    // An id naming nothing is a 404; a product no longer sold is a conflict with its state.
    let problem = app.place_order("a@example.com", &[(&mug, 1), (unknown, 1)]).problem(404);
    assert_eq!(problem["errors"][0]["field"], "items[1].product_id");
    let problem = app.place_order("a@example.com", &[(&gone, 1)]).problem(409);
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("GONE-001 is no longer sold"));
    app.post_json("/api/orders", &json!({"customer": {"email": "a@example.com"}, "items": []})).problem(400);

    assert_eq!(app.count("SELECT count(*) FROM orders"), 0);
    assert_eq!(app.count("SELECT count(*) FROM customers"), 0);
    assert_eq!(app.stock(&mug)["reserved"], 0);
}

#[test]
fn a_short_line_refuses_the_whole_order_naming_the_sku_and_what_is_available() {
    let app = TestApp::spawn();
    let plenty = app.product_with_stock("PLENTY-1", 100, 50);
    let scarce = app.product_with_stock("SCARCE-1", 100, 3);
    let problem = app.place_order("a@example.com", &[(&plenty, 5), (&scarce, 4)]).problem(409);
    assert_eq!(problem["type"], "/problems/insufficient-stock");
    assert_eq!(problem["sku"], "SCARCE-1");
    assert_eq!(problem["available"], 3);
    assert_eq!(problem["requested"], 4);
    assert!(problem["detail"].as_str().unwrap().contains("SCARCE-1: 4 requested, 3 available"));
    assert_eq!(app.stock(&plenty)["reserved"], 0, "all lines or none");
    assert_eq!(app.count("SELECT count(*) FROM orders"), 0);
    assert_eq!(app.count("SELECT count(*) FROM events"), 0);
}

#[test]
fn two_hundred_buyers_racing_for_ten_units_make_exactly_ten_orders() {
    let app = TestApp::spawn_with(|config| config.pool.max_size = 16);
    let hot = app.product_with_stock("HOT-001", 4999, 10);
    let statuses = concurrently(200, |buyer| {
        let response = app.place_order(&format!("buyer{buyer}@example.com"), &[(&hot, 1)]);
        if response.status == 409 {
            let problem = response.problem(409);
            assert_eq!(problem["sku"], "HOT-001");
        }
        response.status
    });
    assert_eq!(statuses.iter().filter(|status| **status == 201).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|status| **status == 409).count(), 190, "{statuses:?}");
    let stock = app.stock(&hot);
    assert_eq!(
        (stock["on_hand"].as_i64(), stock["reserved"].as_i64(), stock["available"].as_i64()),
        (Some(10), Some(10), Some(0))
    );
    assert_eq!(app.count("SELECT count(*) FROM orders"), 10);
    assert_ledger_matches_levels(&mut app.connect());
}

#[test]
fn concurrent_orders_naming_products_in_opposite_orders_never_deadlock() {
    let app = TestApp::spawn_with(|config| config.pool.max_size = 16);
    let a = app.product_with_stock("AAA-001", 100, 500);
    let b = app.product_with_stock("BBB-001", 100, 500);
    let c = app.product_with_stock("CCC-001", 100, 500);
    let statuses = concurrently(60, |n| {
        let items = match n % 3 {
            0 => vec![(a.as_str(), 1), (b.as_str(), 1), (c.as_str(), 1)],
            1 => vec![(c.as_str(), 1), (b.as_str(), 1), (a.as_str(), 1)],
            _ => vec![(b.as_str(), 1), (c.as_str(), 1), (a.as_str(), 1)],
        };
        app.place_order(&format!("n{n}@example.com"), &items).status
    });
    assert!(statuses.iter().all(|status| *status == 201), "{statuses:?}");
    for id in [&a, &b, &c] {
        assert_eq!(app.stock(id)["reserved"], 60);
    }
    assert_ledger_matches_levels(&mut app.connect());
}

#[test]
fn retrying_with_the_same_idempotency_key_returns_the_first_response_and_orders_once() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 100, 10);
    let body = order_body("a@example.com", &[(&mug, 2)]);
    let headers = [("Idempotency-Key", "checkout-7f3a")];
    let first = app.post_json_with("/api/orders", &headers, &body);
    assert_eq!(first.status, 201);
    let retry = app.post_json_with("/api/orders", &headers, &body);
    assert_eq!(retry.status, 201);
    assert_eq!(retry.json(), first.json());
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.header("location"), first.header("location"));
    assert_eq!(app.count("SELECT count(*) FROM orders"), 1);
    assert_eq!(app.stock(&mug)["reserved"], 2);

    // The same body with its keys in another order is the same request.
    let reordered: serde_json::Value = serde_json::from_str(&format!(
        r#"{{"items": [{{"quantity": 2, "product_id": "{mug}"}}], "customer": {{"name": "Ada Lovelace", "email": "a@example.com"}}}}"#
    ))
    .unwrap();
    assert_eq!(app.post_json_with("/api/orders", &headers, &reordered).json(), first.json());

    let other = app.post_json_with("/api/orders", &headers, &order_body("a@example.com", &[(&mug, 3)]));
    assert_eq!(other.problem(409)["type"], "/problems/idempotency-key-reused");
    assert_eq!(app.count("SELECT count(*) FROM orders"), 1);

    let fresh = app.post_json_with("/api/orders", &[("Idempotency-Key", "checkout-8b4c")], &body);
    assert_eq!(fresh.status, 201);
    assert_eq!(app.count("SELECT count(*) FROM orders"), 2);
}

#[test]
fn simultaneous_requests_with_one_idempotency_key_create_one_order() {
    let app = TestApp::spawn_with(|config| config.pool.max_size = 12);
    let mug = app.product_with_stock("MUG-001", 100, 100);
    let body = order_body("a@example.com", &[(&mug, 1)]);
    let responses =
        concurrently(12, |_| app.post_json_with("/api/orders", &[("Idempotency-Key", "same-moment")], &body));
    let first = responses[0].json();
    for response in &responses {
        assert_eq!(response.status, 201, "{}", response.body);
        assert_eq!(response.json(), first);
    }
    assert_eq!(responses.iter().filter(|r| r.header("idempotent-replayed").is_none()).count(), 1);
    assert_eq!(app.count("SELECT count(*) FROM orders"), 1);
    assert_eq!(app.stock(&mug)["reserved"], 1);
}

#[test]
fn a_refusal_is_remembered_under_its_key_too() {
    let app = TestApp::spawn();
    let scarce = app.product_with_stock("SCARCE-1", 100, 1);
    let body = order_body("a@example.com", &[(&scarce, 2)]);
    let headers = [("Idempotency-Key", "too-many")];
    let first = app.post_json_with("/api/orders", &headers, &body);
    first.problem(409);
    app.receive_stock(&scarce, 10);
    let retry = app.post_json_with("/api/orders", &headers, &body);
    assert_eq!(retry.status, 409, "the first answer stands for this key");
    assert_eq!(retry.json(), first.json());
    assert_eq!(app.count("SELECT count(*) FROM orders"), 0);
}

#[test]
fn malformed_idempotency_keys_are_400() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 100, 10);
    let long = "k".repeat(256);
    let response =
        app.post_json_with("/api/orders", &[("Idempotency-Key", &long)], &order_body("a@example.com", &[(&mug, 1)]));
    response.problem(400);
    assert_eq!(app.count("SELECT count(*) FROM orders"), 0);
}

#[test]
fn the_order_view_aggregates_every_module_and_unknown_orders_are_404() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let order = app.placed_order("a@example.com", &[(&mug, 1)]);
    let id = order["id"].as_str().unwrap();
    app.pay(id, "4000000000000002").problem(402);
    app.pay(id, "4242424242424242").ok_json(201);
    let details = app.order(id);
    assert_eq!(details["status"], "paid");
    assert_eq!(details["items"], order["items"]);
    let payments = details["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 2);
    assert_eq!(
        (payments[0]["status"].as_str(), payments[0]["decline_code"].as_str()),
        (Some("failed"), Some("card_declined"))
    );
    assert_eq!(payments[1]["card"], json!({"brand": "visa", "last4": "4242"}));
    let events: Vec<&str> = details["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(events, vec!["OrderPlaced", "PaymentFailed", "PaymentSucceeded"]);
    assert!(details["notifications"].is_array());

    app.get("/api/orders/6f1d6f5e-0000-4000-8000-000000000000").problem(404);
    app.get("/api/orders/AG-000001").problem(404);
}

#[test]
fn a_later_price_change_leaves_the_order_unchanged() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let order = app.placed_order("a@example.com", &[(&mug, 2)]);
    app.admin_patch_json(&format!("/api/products/{mug}"), &json!({"price_minor": 9999, "name": "Renamed mug"}))
        .ok_json(200);
    let details = app.order(order["id"].as_str().unwrap());
    assert_eq!(details["items"][0]["unit_price_minor"], 1290);
    assert_eq!(details["items"][0]["name"], "Product MUG-001");
    assert_eq!(details["total_minor"], 2580);
}

#[test]
fn cancelling_releases_the_stock_once() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 100, 10);
    let order = app.placed_order("a@example.com", &[(&mug, 4)]);
    let id = order["id"].as_str().unwrap();
    let cancelled = app.post_json(&format!("/api/orders/{id}/cancel"), &json!({})).ok_json(200);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["events"][1]["type"], "OrderCancelled");
    assert_eq!(cancelled["events"][1]["payload"]["cancelled_by"], "customer");
    assert_eq!(app.stock(&mug)["reserved"], 0);

    let again = app.post_json(&format!("/api/orders/{id}/cancel"), &json!({})).problem(409);
    assert_eq!(again["order_status"], "cancelled");
    assert!(again["detail"].as_str().unwrap().contains("is cancelled; it cannot be cancelled"));
    assert_ledger_matches_levels(&mut app.connect());
}

#[test]
fn shipping_takes_the_goods_out_and_refunds_release_only_unshipped_stock() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 100, 10);
    let shipped = app.placed_order("a@example.com", &[(&mug, 3)]);
    let shipped_id = shipped["id"].as_str().unwrap();
    app.pay(shipped_id, "4242424242424242").ok_json(201);
    let view = app.admin_post(&format!("/api/orders/{shipped_id}/ship")).ok_json(200);
    assert_eq!(view["status"], "shipped");
    let stock = app.stock(&mug);
    assert_eq!((stock["on_hand"].as_i64(), stock["reserved"].as_i64()), (Some(7), Some(0)));

    let refunded = app.admin_post(&format!("/api/orders/{shipped_id}/refund")).ok_json(200);
    assert_eq!(refunded["status"], "refunded");
    assert_eq!(refunded["payments"][0]["refund"]["amount_minor"], 300);
    assert_eq!(app.stock(&mug)["on_hand"], 7, "shipped goods are not restocked by a refund");

    let paid = app.placed_order("b@example.com", &[(&mug, 2)]);
    let paid_id = paid["id"].as_str().unwrap();
    app.pay(paid_id, "4242424242424242").ok_json(201);
    assert_eq!(app.stock(&mug)["reserved"], 2);
    app.admin_post(&format!("/api/orders/{paid_id}/refund")).ok_json(200);
    assert_eq!(app.stock(&mug)["reserved"], 0, "a refund before shipping releases the reservation");
    assert_eq!(app.count("SELECT count(*) FROM payment_refunds"), 2);
    assert_ledger_matches_levels(&mut app.connect());
}

#[test]
fn every_illegal_transition_is_a_409_naming_the_status() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 100, 50);
    let place = || app.placed_order("a@example.com", &[(&mug, 1)])["id"].as_str().unwrap().to_owned();

    let pending = place();
    let paid = place();
    app.pay(&paid, "4242424242424242").ok_json(201);
    let shipped = place();
    app.pay(&shipped, "4242424242424242").ok_json(201);
    app.admin_post(&format!("/api/orders/{shipped}/ship")).ok_json(200);
    let cancelled = place();
    app.post_json(&format!("/api/orders/{cancelled}/cancel"), &json!({})).ok_json(200);
    let refunded = place();
    app.pay(&refunded, "4242424242424242").ok_json(201);
    app.admin_post(&format!("/api/orders/{refunded}/refund")).ok_json(200);
    let partly = place();
    app.pay(&partly, "4242424242424242").ok_json(201);
    app.admin_post_json(&format!("/api/orders/{partly}/refunds"), &json!({"amount_minor": 10})).ok_json(201);
    let partly_shipped = place();
    app.pay(&partly_shipped, "4242424242424242").ok_json(201);
    app.admin_post_json(&format!("/api/orders/{partly_shipped}/refunds"), &json!({"amount_minor": 10})).ok_json(201);
    app.admin_post(&format!("/api/orders/{partly_shipped}/ship")).ok_json(200);

    let cases: Vec<(&str, &str, &str)> = vec![
        (&pending, "ship", "pending_payment"),
        (&pending, "refund", "pending_payment"),
        (&paid, "cancel", "paid"),
        (&paid, "pay", "paid"),
        (&shipped, "cancel", "shipped"),
        (&shipped, "ship", "shipped"),
        (&shipped, "pay", "shipped"),
        (&cancelled, "cancel", "cancelled"),
        (&cancelled, "ship", "cancelled"),
        (&cancelled, "refund", "cancelled"),
        (&cancelled, "pay", "cancelled"),
        (&refunded, "refund", "refunded"),
        (&refunded, "ship", "refunded"),
        (&refunded, "cancel", "refunded"),
        (&refunded, "pay", "refunded"),
        (&partly, "cancel", "partially_refunded"),
        (&partly, "pay", "partially_refunded"),
        (&partly_shipped, "ship", "partially_refunded"),
        (&partly_shipped, "cancel", "partially_refunded"),
        (&partly_shipped, "pay", "partially_refunded"),
    ];
    for (id, action, status) in cases {
        let response = match action {
            "cancel" => app.post_json(&format!("/api/orders/{id}/cancel"), &json!({})),
            "pay" => app.pay(id, "4242424242424242"),
            other => app.admin_post(&format!("/api/orders/{id}/{other}")),
        };
        let problem = response.problem(409);
        assert_eq!(problem["order_status"], status, "{action} on {status}: {problem}");
        assert_eq!(problem["type"], "/problems/order-status");
        assert_eq!(app.order(id)["status"], status, "nothing changed");
    }
    assert_eq!(app.count("SELECT count(*) FROM payments WHERE status = 'succeeded'"), 5);
    assert_ledger_matches_levels(&mut app.connect());
}

#[test]
fn shipping_and_refunding_need_the_admin_token() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 100, 5);
    let id = app.placed_order("a@example.com", &[(&mug, 1)])["id"].as_str().unwrap().to_owned();
    app.pay(&id, "4242424242424242").ok_json(201);
    app.post_json(&format!("/api/orders/{id}/ship"), &json!({})).problem(401);
    app.post_json(&format!("/api/orders/{id}/refund"), &json!({})).problem(401);
    app.get("/api/orders").problem(401);
    assert_eq!(app.order(&id)["status"], "paid");
}

#[test]
fn the_admin_order_list_filters_by_status_and_email_newest_first() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 100, 50);
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(app.placed_order(&format!("c{}@example.com", n % 2), &[(&mug, 1)])["id"].as_str().unwrap().to_owned());
    }
    app.pay(&ids[1], "4242424242424242").ok_json(201);

    let all = app.admin_get("/api/orders?limit=2").ok_json(200);
    assert_eq!(all["items"][0]["id"], ids[4].as_str(), "newest first");
    let cursor = all["next_cursor"].as_str().unwrap();
    let next = app.admin_get(&format!("/api/orders?limit=2&cursor={cursor}")).ok_json(200);
    assert_eq!(next["items"][0]["id"], ids[2].as_str());

    let paid = app.admin_get("/api/orders?status=paid").ok_json(200);
    assert_eq!(paid["items"].as_array().unwrap().len(), 1);
    assert_eq!(paid["items"][0]["id"], ids[1].as_str());
    let by_email = app.admin_get("/api/orders?email=C1@example.com").ok_json(200);
    assert_eq!(by_email["items"].as_array().unwrap().len(), 2);
    app.admin_get("/api/orders?status=lost").problem(400);
}

#[test]
fn unpaid_orders_are_cancelled_after_the_payment_timeout_and_their_stock_released() {
    let app = TestApp::spawn_with(|config| {
        config.payment_timeout = Duration::from_secs(1);
        config.outbox.run_in_server = true;
    });
    let mug = app.product_with_stock("MUG-001", 100, 10);
    let unpaid = app.placed_order("a@example.com", &[(&mug, 3)]);
    let paid = app.placed_order("b@example.com", &[(&mug, 2)]);
    app.pay(paid["id"].as_str().unwrap(), "4242424242424242").ok_json(201);

    let unpaid_id = unpaid["id"].as_str().unwrap();
    eventually("the unpaid order to be cancelled", Duration::from_secs(10), || {
        app.order(unpaid_id)["status"] == "cancelled"
    });
    let details = app.order(unpaid_id);
    assert_eq!(details["events"][1]["payload"]["cancelled_by"], "payment_timeout");
    assert_eq!(app.order(paid["id"].as_str().unwrap())["status"], "paid");
    assert_eq!(app.stock(&mug)["reserved"], 2);
    assert_ledger_matches_levels(&mut app.connect());
}

#[test]
fn several_agora_processes_cancel_each_expired_order_once() {
    let slow = |config: &mut agora::config::Config| config.payment_timeout = Duration::from_secs(3600);
    let app = TestApp::spawn_with(slow);
    let mug = app.product_with_stock("MUG-001", 100, 100);
    for n in 0..30 {
        app.placed_order(&format!("c{n}@example.com"), &[(&mug, 1)]);
    }
    // Three more processes on the same database, all with a timeout the orders have passed.
    let fast = |config: &mut agora::config::Config| {
        config.payment_timeout = Duration::from_millis(1500);
        config.outbox.run_in_server = true;
    };
    let _others: Vec<TestApp> = (0..3).map(|_| app.spawn_beside(fast)).collect();
    eventually("every order to be cancelled", Duration::from_secs(15), || {
        app.count("SELECT count(*) FROM orders WHERE status = 'cancelled'") == 30
    });
    assert_eq!(app.count("SELECT count(*) FROM events WHERE event_type = 'OrderCancelled'"), 30);
    assert_eq!(app.count("SELECT count(*) FROM inventory_movements WHERE kind = 'release'"), 30);
    assert_eq!(app.stock(&mug)["reserved"], 0);
    assert_ledger_matches_levels(&mut app.connect());
}

#[test]
fn admin_pages_list_orders_and_drive_the_lifecycle() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let order = app.placed_order("ada@example.com", &[(&mug, 2)]);
    let id = order["id"].as_str().unwrap();
    let number = order["number"].as_str().unwrap();
    app.pay(id, "4242424242424242").ok_json(201);
    let mut browser = app.signed_in_browser();

    let list = browser.get("/admin/orders?status=paid");
    assert!(list.body.contains(number) && list.body.contains("ada@example.com"), "{}", list.body);
    assert!(browser.get(&format!("/admin/orders?q={number}")).body.contains(number));
    assert!(browser.get("/admin/orders?q=ada%40example.com").body.contains(number));
    assert!(browser.get("/admin/orders?q=ad").body.contains("at least 3 characters"));
    assert!(browser.get("/admin/orders?q=nonsense").body.contains("No orders match"));

    let page = browser.get(&format!("/admin/orders/{id}"));
    assert!(page.body.contains("€25.80") && page.body.contains("visa •••• 4242"), "{}", page.body);
    assert!(page.body.contains(&format!("href=\"/admin/orders/{id}/ship\"")), "{}", page.body);
    assert!(!page.body.contains(&format!("href=\"/admin/orders/{id}/cancel\"")), "a paid order cannot be cancelled");
    assert!(page.body.contains("Refund €25.80…"), "{}", page.body);

    // Each action goes through a confirmation page that names what will happen.
    let confirm = browser.get(&format!("/admin/orders/{id}/refund"));
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Refund €25.80 to visa •••• 4242?"), "{}", confirm.body);
    assert!(confirm.body.contains("the 2 units reserved for it go back to stock"), "{}", confirm.body);
    assert_eq!(app.order(id)["status"], "paid", "showing the confirmation changes nothing");

    let ship_page = format!("/admin/orders/{id}/ship");
    let shipped = browser.submit(&ship_page, &ship_page, &[("status", "paid")]);
    assert_eq!(shipped.status, 303);
    assert!(browser.get(&format!("/admin/orders/{id}")).body.contains(&format!("Order {number} shipped.")));

    // A refund confirmed while the order was paid is refused once it has shipped meanwhile.
    let stale =
        browser.submit(&format!("/admin/orders/{id}"), &format!("/admin/orders/{id}/refund"), &[("status", "paid")]);
    assert_eq!(stale.status, 303, "{}", stale.body);
    assert_eq!(stale.header("location"), Some(format!("/admin/orders/{id}").as_str()));
    let back = browser.get(&format!("/admin/orders/{id}"));
    assert!(
        back.body.contains(&format!(
            "Order {number} was not refunded: it changed while you were deciding, from paid to shipped."
        )),
        "{}",
        back.body
    );
    assert_eq!(app.order(id)["status"], "shipped");

    let refused = browser.submit(&format!("/admin/orders/{id}"), &format!("/admin/orders/{id}/cancel"), &[]);
    assert_eq!(refused.status, 303);
    let back = browser.get(&format!("/admin/orders/{id}"));
    assert!(
        back.body.contains("was not cancelled: it is shipped now, and a shipped order cannot be cancelled"),
        "{}",
        back.body
    );
    assert_eq!(
        browser.get(&format!("/admin/orders/{id}/cancel")).status,
        303,
        "no confirmation for what cannot happen"
    );

    let payments = browser.get("/admin/payments");
    assert!(payments.body.contains(number) && payments.body.contains("succeeded"));
}

fn placed_for(app: &TestApp, email: &str, name: &str, product: &str, quantity: i64) -> Value {
    let body = json!({
        "customer": {"email": email, "name": name},
        "items": [{"product_id": product, "quantity": quantity}],
    });
    app.post_json("/api/orders", &body).ok_json(201)
}

#[test]
fn the_admin_finds_orders_by_number_in_any_form_by_name_and_by_part_of_an_email() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1000, 100);
    let grace = placed_for(&app, "grace@navy.example", "Grace Hopper", &mug, 1);
    let ada = placed_for(&app, "ada@engines.example", "Ada Lovelace", &mug, 2);
    let ada_again = placed_for(&app, "ada@engines.example", "Ada Lovelace", &mug, 3);
    let mut browser = app.signed_in_browser();
    let number = ada["number"].as_str().unwrap();
    let digits = number.trim_start_matches("AG-");
    let compact = number.replace('-', "");
    let short = digits.trim_start_matches('0').to_owned();

    for typed in [number.to_owned(), compact.clone(), compact.to_lowercase(), format!("#{short}"), short.clone()] {
        let page = browser.get(&format!("/admin/orders?q={}", urlencode(&typed)));
        assert!(page.body.contains(number) && page.body.contains("1 order,"), "{typed}: {}", page.body);
        assert!(!page.body.contains(grace["number"].as_str().unwrap()), "{typed}");
    }
    // Part of a name, in any case; part of an address.
    for typed in ["lovelace", "LOVEL", "engines.exa", "ada@"] {
        let page = browser.get(&format!("/admin/orders?q={}", urlencode(typed)));
        assert!(page.body.contains(number) && page.body.contains(ada_again["number"].as_str().unwrap()), "{typed}");
        assert!(!page.body.contains(grace["number"].as_str().unwrap()), "{typed}: {}", page.body);
        assert!(page.body.contains("2 orders, €50.00 in all"), "{typed}: {}", page.body);
    }
    // LIKE's wildcards are searched for as themselves.
    assert!(browser.get("/admin/orders?q=%25%25%25").body.contains("No orders match"));

    // Sorting by total, largest first, and the header says so to assistive technology.
    let sorted = browser.get("/admin/orders?sort=total&dir=desc");
    assert!(sorted.body.contains(r#"<th class="num" aria-sort="descending">"#), "{}", sorted.body);
    let position = |page: &str, number: &str| page.find(number).unwrap();
    let (big, middle, small) = (ada_again["number"].as_str().unwrap(), number, grace["number"].as_str().unwrap());
    assert!(position(&sorted.body, big) < position(&sorted.body, middle));
    assert!(position(&sorted.body, middle) < position(&sorted.body, small));
    assert!(sorted.body.contains("3 orders, €60.00 in all") && sorted.body.contains("Page 1 of 1"));

    // The customers page: each customer once, with what they ordered; a name leads to their orders.
    let customers = browser.get("/admin/customers?q=ENGINES");
    assert!(customers.body.contains("Ada Lovelace") && !customers.body.contains("Grace Hopper"), "{}", customers.body);
    assert!(customers.body.contains("1 customer"), "{}", customers.body);
    let customer_id: String = {
        let start = customers.body.find("/admin/orders?customer=").unwrap() + "/admin/orders?customer=".len();
        customers.body[start..start + 36].to_owned()
    };
    let theirs = browser.get(&format!("/admin/orders?customer={customer_id}"));
    assert!(theirs.body.contains("Orders of Ada Lovelace") && theirs.body.contains("2 orders"), "{}", theirs.body);
    assert_eq!(browser.get("/admin/orders?customer=nope").status, 400);
}

#[test]
fn admin_order_lists_count_and_number_their_pages() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 100, 200);
    for n in 0..53 {
        placed_for(&app, &format!("buyer{n}@example.com"), &format!("Buyer {n}"), &mug, 1);
    }
    let mut browser = app.signed_in_browser();
    let first = browser.get("/admin/orders");
    assert!(first.body.contains("53 orders, €53.00 in all") && first.body.contains("Page 1 of 2"), "{}", first.body);
    assert_eq!(first.body.matches("<tr>").count(), 1 + 50, "a header row and 50 orders");
    assert!(first.body.contains(r#"href="/admin/orders?page=2" rel="next""#), "{}", first.body);
    let second = browser.get("/admin/orders?page=2");
    assert!(second.body.contains("Page 2 of 2") && second.body.contains("AG-000001"), "{}", second.body);
    assert_eq!(second.body.matches("<tr>").count(), 1 + 3);
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("q", text)]).unwrap().trim_start_matches("q=").to_owned()
}
