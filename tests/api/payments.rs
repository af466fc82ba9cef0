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

/// The rows of the admin list of payments, as (order number, amount), in the order shown.
fn listed_payments(body: &str) -> Vec<(String, String)> {
    let Some((_, rows)) = body.split_once("<tbody>") else { return Vec::new() };
    let rows = rows.split("</tbody>").next().unwrap();
    rows.split("<tr>")
        .skip(1)
        .map(|row| {
            let number = row.find("AG-").map(|at| row[at..at + 9].to_owned()).unwrap();
            let amount = row.split("<td class=\"num\">").nth(1).unwrap().split("</td>").next().unwrap().to_owned();
            (number, amount)
        })
        .collect()
}

#[test]
fn the_admin_list_of_payments_filters_sorts_pages_and_totals_what_it_matches() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 100);
    let first = app.placed_order("ada@example.com", &[(&mug, 1)]);
    app.pay(first["id"].as_str().unwrap(), "4242424242424242").ok_json(201);
    let second = app.placed_order("bob@example.com", &[(&mug, 2)]);
    app.pay(second["id"].as_str().unwrap(), "5555555555554444").ok_json(201);
    app.admin_post(&format!("/api/orders/{}/refund", second["id"].as_str().unwrap())).ok_json(200);
    let third = app.placed_order("cy@example.com", &[(&mug, 3)]);
    for _ in 0..52 {
        app.pay(third["id"].as_str().unwrap(), "4000000000000002").problem(402);
    }
    let (a, b, c) =
        (first["number"].as_str().unwrap(), second["number"].as_str().unwrap(), third["number"].as_str().unwrap());
    let mut browser = app.signed_in_browser();

    // Newest first, 50 to a page, the totals of all 54.
    let page = browser.get("/admin/payments");
    assert_eq!(page.status, 200, "{}", page.body);
    let rows = listed_payments(&page.body);
    assert_eq!(rows.len(), 50);
    assert!(rows.iter().all(|(number, amount)| number == c && amount == "€38.70"), "{rows:?}");
    for text in [
        "54 payments",
        "Page 1 of 2",
        "Succeeded<strong>€38.70</strong>",
        "Refunded<strong>€25.80</strong>",
        "<span class=\"badge failed\">Failed</span>",
        "Card declined",
        "Visa •••• 0002",
        "<th aria-sort=\"descending\"><a href=\"/admin/payments?sort=when&#38;dir=asc\">When (UTC) ↓</a></th>",
        "href=\"/admin/payments?page=2\" rel=\"next\"",
    ] {
        assert!(page.body.contains(text), "{text}: {}", page.body);
    }
    assert!(!page.body.contains(">failed<") && !page.body.contains(">card_declined<"), "labels, not words");
    let last = browser.get("/admin/payments?page=2");
    let rows = listed_payments(&last.body);
    let numbers: Vec<&str> = rows.iter().map(|(number, _)| number.as_str()).collect();
    assert_eq!(numbers, [c, c, b, a], "the oldest, on the last page");
    assert!(last.body.contains("Page 2 of 2") && last.body.contains("href=\"/admin/payments\" rel=\"prev\""));
    assert!(!last.body.contains("rel=\"next\""));
    assert!(browser.get("/admin/payments?page=9").body.contains("Page 2 of 2"), "past the end: the last page");

    // Filters, each with its own totals.
    let succeeded = browser.get("/admin/payments?status=succeeded");
    assert!(succeeded.body.contains("2 payments") && succeeded.body.contains("Page 1 of 1"), "{}", succeeded.body);
    assert!(succeeded.body.contains("Succeeded<strong>€38.70</strong>"));
    assert!(succeeded.body.contains("<option value=\"succeeded\" selected>Succeeded</option>"));
    let failed = browser.get("/admin/payments?status=failed");
    assert!(failed.body.contains("52 payments") && failed.body.contains("Succeeded<strong>€0.00</strong>"));
    let mastercard = browser.get("/admin/payments?brand=mastercard");
    assert_eq!(listed_payments(&mastercard.body), [(b.to_owned(), "€25.80".to_owned())]);
    assert!(
        mastercard.body.contains("Mastercard •••• 4444") && mastercard.body.contains("Refunded<strong>€25.80</strong>")
    );
    let digits: i64 = a.trim_start_matches("AG-").parse().unwrap();
    for typed in
        [a.to_owned(), format!("AG{digits:06}"), format!("ag-{digits}"), digits.to_string(), format!(" #{digits} ")]
    {
        let page = browser.get(&format!("/admin/payments?order={}", urlencode(&typed)));
        assert_eq!(listed_payments(&page.body), [(a.to_owned(), "€12.90".to_owned())], "{typed:?}");
        assert!(page.body.contains("1 payment<"), "{typed:?}");
    }
    let typo = browser.get("/admin/payments?order=AG-x");
    assert_eq!(typo.status, 200);
    assert!(typo.body.contains("Type an order number such as AG-000017 or 17.") && typo.body.contains("aria-invalid"));
    assert!(listed_payments(&typo.body).is_empty());
    assert_eq!(browser.get("/admin/payments?status=paid").status, 400, "a status no form offers");

    // Dates are whole UTC days, both ends included.
    let day = |sql: &str| {
        let yyyymmdd = app.count(sql);
        format!("{}-{:02}-{:02}", yyyymmdd / 10000, yyyymmdd / 100 % 100, yyyymmdd % 100)
    };
    let from = day("SELECT to_char(min(created_at) AT TIME ZONE 'UTC', 'YYYYMMDD') FROM payments");
    let to = day("SELECT to_char(max(created_at) AT TIME ZONE 'UTC', 'YYYYMMDD') FROM payments");
    let after = day("SELECT to_char(max(created_at) AT TIME ZONE 'UTC' + interval '1 day', 'YYYYMMDD') FROM payments");
    let before = day("SELECT to_char(min(created_at) AT TIME ZONE 'UTC' - interval '1 day', 'YYYYMMDD') FROM payments");
    assert!(browser.get(&format!("/admin/payments?from={from}&to={to}")).body.contains("54 payments"));
    let none = browser.get(&format!("/admin/payments?from={after}"));
    assert!(none.body.contains("0 payments") && none.body.contains("No payments match these filters."));
    assert!(browser.get(&format!("/admin/payments?to={before}")).body.contains("0 payments"));
    assert!(browser.get("/admin/payments?from=28%2F11%2F2026").body.contains("Type a date as 2026-11-28."));
    let backwards = browser.get(&format!("/admin/payments?from={after}&to={before}"));
    assert!(backwards.body.contains("The last day must not be before the first."), "{}", backwards.body);

    // Sorting by amount, either way, kept by the filters' links and the pager.
    let ascending = browser.get("/admin/payments?status=succeeded&sort=amount&dir=asc");
    let numbers: Vec<String> = listed_payments(&ascending.body).into_iter().map(|(number, _)| number).collect();
    assert_eq!(numbers, [a, b]);
    assert!(ascending.body.contains(
        "<th class=\"num\" aria-sort=\"ascending\"><a href=\"/admin/payments?status=succeeded&#38;sort=amount&#38;dir=desc\">Amount ↑</a></th>"
    ), "{}", ascending.body);
    let descending = browser.get("/admin/payments?status=succeeded&sort=amount&dir=desc");
    let numbers: Vec<String> = listed_payments(&descending.body).into_iter().map(|(number, _)| number).collect();
    assert_eq!(numbers, [b, a]);
    let cheapest_first = browser.get("/admin/payments?sort=amount&dir=asc");
    assert_eq!(
        listed_payments(&cheapest_first.body)[..2],
        [(a.to_owned(), "€12.90".to_owned()), (b.to_owned(), "€25.80".to_owned())]
    );
    assert!(cheapest_first.body.contains("href=\"/admin/payments?sort=amount&#38;dir=asc&#38;page=2\" rel=\"next\""));
    assert!(cheapest_first.body.contains("<input type=\"hidden\" name=\"sort\" value=\"amount\">"));
    assert_eq!(browser.get("/admin/payments?sort=card_last4").status, 400, "only the sortable columns");

    // Past the counting cap: "more than", and no sums that would need every row.
    diesel::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "INSERT INTO payments (order_id, status, amount_minor, currency, card_brand, card_last4, decline_code, gateway_reference)
             SELECT '{}', 'failed', 3870, 'EUR', 'visa', '0002', 'card_declined', 'bulk-' || n FROM generate_series(1, 1000) AS n",
            third["id"].as_str().unwrap()
        )),
        &mut app.connect(),
    )
    .unwrap();
    let capped = browser.get("/admin/payments");
    assert!(capped.body.contains("more than 1,000 payments") && capped.body.contains("Page 1 of more than 20"));
    assert!(
        !capped.body.contains("Succeeded<strong>") && capped.body.contains("Sums are shown for up to 1,000 payments")
    );
    let few = browser.get("/admin/payments?status=succeeded");
    assert!(few.body.contains("2 payments") && few.body.contains("Succeeded<strong>€38.70</strong>"));
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)]).unwrap().trim_start_matches('=').to_owned()
}

#[test]
fn a_payment_refunded_in_parts_can_never_be_refunded_past_what_it_captured() {
    use diesel::RunQueryDsl;
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let order = app.placed_order("ada@example.com", &[(&mug, 1)]);
    let id = order["id"].as_str().unwrap();
    app.pay(id, "4242424242424242").ok_json(201);
    let mut conn = app.connect();
    let refund = |amount: i64, conn: &mut diesel::PgConnection| {
        diesel::sql_query(format!(
            "UPDATE payments SET refunded_minor = refunded_minor + {amount} WHERE order_id = '{id}' AND status = 'succeeded'"
        ))
        .execute(conn)
    };
    // Whatever writes it, PostgreSQL holds the sum between 0 and the captured amount.
    refund(1000, &mut conn).unwrap();
    let error = refund(291, &mut conn).unwrap_err().to_string();
    assert!(error.contains("payments_refunded_minor_check"), "{error}");
    refund(290, &mut conn).unwrap();
    assert!(refund(-1291, &mut conn).is_err());
    assert_eq!(app.count("SELECT refunded_minor FROM payments WHERE status = 'succeeded'"), 1290);
}
