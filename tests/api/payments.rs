use serde_json::json;

use crate::helpers::{TestApp, card, concurrently};

fn pending_order(app: &TestApp) -> String {
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    app.placed_order("ada@example.com", &[(&mug, 2)])["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_good_card_pays_the_order_total_and_only_brand_and_last_four_are_kept() {
    let app = TestApp::spawn();
    let order = pending_order(&app);
    let payment = app.pay(&order, "4242 4242 4242 4242").ok_json(201);
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["amount_minor"], 2580);
    assert_eq!(payment["currency"], "EUR");
    assert_eq!(payment["card"], json!({"brand": "visa", "last4": "4242"}));
    assert_eq!(payment["order_status"], "paid");

    let details = app.order(&order);
    assert_eq!(details["status"], "paid");
    assert_eq!(details["events"].as_array().unwrap().last().unwrap()["type"], "PaymentSucceeded");
    // The number appears nowhere in the database.
    let dump = app.count(
        "SELECT count(*) FROM (SELECT row_to_json(p)::text AS t FROM payments p
           UNION ALL SELECT row_to_json(i)::text FROM idempotency_keys i
           UNION ALL SELECT row_to_json(e)::text FROM events e) AS rows
          WHERE t LIKE '%4242424242424242%' OR t LIKE '%424242424242%'",
    );
    assert_eq!(dump, 0);
}

#[test]
fn declined_cards_answer_402_record_the_attempt_and_leave_the_order_payable() {
    let app = TestApp::spawn();
    let order = pending_order(&app);
    for (number, code) in [
        ("4000000000000002", "card_declined"),
        ("4000000000009995", "insufficient_funds"),
        ("4000000000000069", "expired_card"),
    ] {
        let problem = app.pay(&order, number).problem(402);
        assert_eq!(problem["type"], "/problems/card-declined");
        assert_eq!(problem["decline_code"], code);
        assert!(problem["payment_id"].is_string());
        assert_eq!(app.order(&order)["status"], "pending_payment");
    }
    let expired = json!({"card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2020, "cvc": "123"}});
    assert_eq!(
        app.post_json(&format!("/api/orders/{order}/payments"), &expired).problem(402)["decline_code"],
        "expired_card"
    );

    assert_eq!(app.count("SELECT count(*) FROM payments WHERE status = 'failed'"), 4);
    assert_eq!(app.count("SELECT count(*) FROM events WHERE event_type = 'PaymentFailed'"), 4);
    app.pay(&order, "5555555555554444").ok_json(201);
    assert_eq!(app.order(&order)["status"], "paid");
}

#[test]
fn invalid_cards_are_422_and_record_nothing() {
    let app = TestApp::spawn();
    let order = pending_order(&app);
    let path = format!("/api/orders/{order}/payments");
    let problem = app.pay(&order, "4242424242424241").problem(422);
    assert_eq!(problem["errors"][0]["field"], "card.number");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("Luhn"));
    let problem = app
        .post_json(
            &path,
            &json!({"card": {"number": "4242424242424242", "exp_month": 13, "exp_year": 2030, "cvc": "1"}}),
        )
        .problem(422);
    assert_eq!(problem["errors"].as_array().unwrap().len(), 2);
    app.post_json(&path, &json!({"card": {"number": "4242424242424242"}})).problem(400);
    app.pay("6f1d6f5e-0000-4000-8000-000000000000", "4242424242424242").problem(404);
    assert_eq!(app.count("SELECT count(*) FROM payments"), 0);
}

#[test]
fn simultaneous_payments_of_one_order_charge_it_once() {
    let app = TestApp::spawn_with(|config| config.pool.max_size = 12);
    let order = pending_order(&app);
    let statuses = concurrently(12, |_| app.pay(&order, "4242424242424242").status);
    assert_eq!(statuses.iter().filter(|status| **status == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|status| **status == 409).count(), 11, "{statuses:?}");
    assert_eq!(app.count("SELECT count(*) FROM payments"), 1);
}

#[test]
fn the_database_itself_refuses_a_second_successful_payment() {
    let app = TestApp::spawn();
    let order = pending_order(&app);
    app.pay(&order, "4242424242424242").ok_json(201);
    let error = diesel::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "INSERT INTO payments (order_id, status, amount_minor, currency, card_brand, card_last4, gateway_reference)
             VALUES ('{order}', 'succeeded', 2580, 'EUR', 'visa', '4242', 'sneaky')"
        )),
        &mut app.connect(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("payments_one_success_per_order_idx"), "{error}");
}

#[test]
fn a_retried_payment_with_its_idempotency_key_charges_once() {
    let app = TestApp::spawn();
    let order = pending_order(&app);
    let path = format!("/api/orders/{order}/payments");
    let headers = [("Idempotency-Key", "pay-1")];
    let first = app.post_json_with(&path, &headers, &card("4242424242424242"));
    assert_eq!(first.status, 201);
    let retry = app.post_json_with(&path, &headers, &card("4242424242424242"));
    assert_eq!((retry.status, retry.json()), (201, first.json()));
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.count("SELECT count(*) FROM payments"), 1);

    let other_card = app.post_json_with(&path, &headers, &card("5555555555554444"));
    assert_eq!(other_card.problem(409)["type"], "/problems/idempotency-key-reused");
}

#[test]
fn simultaneous_retries_of_one_payment_charge_once_and_answer_alike() {
    let app = TestApp::spawn_with(|config| config.pool.max_size = 12);
    let order = pending_order(&app);
    let path = format!("/api/orders/{order}/payments");
    let responses =
        concurrently(10, |_| app.post_json_with(&path, &[("Idempotency-Key", "pay-now")], &card("4242424242424242")));
    for response in &responses {
        assert_eq!(response.status, 201, "{}", response.body);
        assert_eq!(response.json(), responses[0].json());
    }
    assert_eq!(app.count("SELECT count(*) FROM payments"), 1);
}

#[test]
fn a_declined_payment_replays_its_402_without_a_second_attempt() {
    let app = TestApp::spawn();
    let order = pending_order(&app);
    let path = format!("/api/orders/{order}/payments");
    let headers = [("Idempotency-Key", "declined-once")];
    let first = app.post_json_with(&path, &headers, &card("4000000000000002"));
    assert_eq!(first.status, 402);
    let retry = app.post_json_with(&path, &headers, &card("4000000000000002"));
    assert_eq!((retry.status, retry.json()), (402, first.json()));
    assert_eq!(retry.header("content-type"), Some("application/problem+json"));
    assert_eq!(app.count("SELECT count(*) FROM payments"), 1);
}

#[test]
fn the_same_key_on_another_order_is_another_request() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-002", 500, 10);
    let first = app.placed_order("a@example.com", &[(&mug, 1)])["id"].as_str().unwrap().to_owned();
    let second = app.placed_order("b@example.com", &[(&mug, 1)])["id"].as_str().unwrap().to_owned();
    for order in [&first, &second] {
        let response = app.post_json_with(
            &format!("/api/orders/{order}/payments"),
            &[("Idempotency-Key", "k1")],
            &card("4242424242424242"),
        );
        assert_eq!(response.status, 201);
    }
    assert_eq!(app.count("SELECT count(*) FROM payments WHERE status = 'succeeded'"), 2);
}
