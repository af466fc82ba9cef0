//! Partial refunds: an amount, or chosen lines, several in a row, up to the captured amount.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_ledger_matches_levels, concurrently, eventually};

const VISA: &str = "4242424242424242";

/// A paid order of `items` (product id, quantity); returns its id.
fn paid_order(app: &TestApp, items: &[(&str, i64)]) -> String {
    let order = app.placed_order("ada@example.com", items);
    let id = order["id"].as_str().unwrap().to_owned();
    app.pay(&id, VISA).ok_json(201);
    id
}

fn refund(app: &TestApp, order: &str, body: &Value) -> crate::helpers::TestResponse {
    app.admin_post_json(&format!("/api/orders/{order}/refunds"), body)
}

/// The ledger rows an order caused, of one kind: (SKU, on-hand change, reserved change), oldest
/// first, and by SKU within one transaction.
fn movements(app: &TestApp, order: &str, kind: &str) -> Vec<(String, i64, i64)> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        sku: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        on_hand: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        reserved: i64,
    }
    use diesel::RunQueryDsl;
    diesel::sql_query(format!(
        "SELECT p.sku, m.on_hand_delta::bigint AS on_hand, m.reserved_delta::bigint AS reserved
           FROM inventory_movements m JOIN products p ON p.id = m.product_id
          WHERE m.order_id = '{order}' AND m.kind = '{kind}' ORDER BY m.created_at, p.sku"
    ))
    .load::<Row>(&mut app.connect())
    .unwrap()
    .into_iter()
    .map(|row| (row.sku, row.on_hand, row.reserved))
    .collect()
}

#[test]
fn an_amount_refund_leaves_the_order_partially_refunded_and_moves_no_stock() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let id = paid_order(&app, &[(&mug, 2)]);

    let response = refund(&app, &id, &json!({"amount_minor": 500}));
    let refund = response.ok_json(201);
    assert_eq!(refund["order_id"], id.as_str());
    assert_eq!(refund["amount_minor"], 500);
    assert_eq!(refund["currency"], "EUR");
    assert_eq!(refund["lines"], json!([]));
    assert_eq!(refund["order_status"], "partially_refunded");
    assert_eq!(refund["refunded_minor"], 500);
    assert_eq!(refund["remaining_minor"], 2080);
    assert!(refund["id"].is_string() && refund["payment_id"].is_string() && refund["created_at"].is_string());

    let order = app.order(&id);
    assert_eq!(order["status"], "partially_refunded");
    let payment = &order["payments"][0];
    assert_eq!(payment["refunded_minor"], 500);
    assert_eq!(payment["refunds"].as_array().unwrap().len(), 1);
    assert_eq!(payment["refunds"][0]["amount_minor"], 500);
    assert_eq!(payment["refunds"][0]["id"], refund["id"]);
    let event = order["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(event["type"], "OrderRefunded");
    assert_eq!(event["payload"]["amount_minor"], 500);
    assert_eq!(event["payload"]["refunded_minor"], 500);

    assert_eq!(app.stock(&mug)["reserved"], 2, "an amount gives no goods back");
    assert!(movements(&app, &id, "release").is_empty());
    assert_eq!(app.count("SELECT sum(amount_minor) FROM payment_refunds"), 500);
}

#[test]
fn refunded_lines_of_an_unshipped_order_go_back_to_stock_one_ledger_movement_per_line() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let cap = app.product_with_stock("CAP-001", 1790, 10);
    let id = paid_order(&app, &[(&mug, 3), (&cap, 2)]);

    let lines = json!({"lines": [{"product_id": mug, "quantity": 2}, {"product_id": cap, "quantity": 1}]});
    let first = refund(&app, &id, &lines).ok_json(201);
    assert_eq!(first["amount_minor"], 2 * 1290 + 1790);
    assert_eq!(
        first["lines"],
        json!([
            {"product_id": mug, "sku": "MUG-001", "name": "Product MUG-001", "quantity": 2, "amount_minor": 2580},
            {"product_id": cap, "sku": "CAP-001", "name": "Product CAP-001", "quantity": 1, "amount_minor": 1790},
        ])
    );
    assert_eq!(first["order_status"], "partially_refunded");
    assert_eq!(first["remaining_minor"], 7450 - 4370);
    assert_eq!(app.stock(&mug)["reserved"], 1);
    assert_eq!(app.stock(&cap)["reserved"], 1);
    assert_eq!(movements(&app, &id, "release"), vec![("CAP-001".into(), 0, -1), ("MUG-001".into(), 0, -2)]);
    let items = app.order(&id)["items"].clone();
    assert_eq!((items[0]["refunded_quantity"].as_i64(), items[1]["refunded_quantity"].as_i64()), (Some(2), Some(1)));

    // Only what is left of a line can be refunded.
    let problem = refund(&app, &id, &json!({"lines": [{"product_id": mug, "quantity": 2}]})).problem(422);
    assert_eq!(problem["errors"][0]["field"], "lines[0].quantity");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("1 of the 3 units"), "{problem}");

    // The last units are the rest of the money: the order is refunded and nothing stays reserved.
    let last = json!({"lines": [{"product_id": cap, "quantity": 1}, {"product_id": mug, "quantity": 1}]});
    let last = refund(&app, &id, &last).ok_json(201);
    assert_eq!((last["amount_minor"].as_i64(), last["remaining_minor"].as_i64()), (Some(3080), Some(0)));
    assert_eq!(last["order_status"], "refunded");
    assert_eq!(app.stock(&mug)["reserved"], 0);
    assert_eq!(app.stock(&cap)["reserved"], 0);
    assert_eq!(movements(&app, &id, "release").len(), 4, "one movement per line and refund");
    assert_ledger_matches_levels(&mut app.connect());
}

#[test]
fn refunds_add_up_to_the_captured_amount_and_no_further() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let id = paid_order(&app, &[(&mug, 2)]);

    assert_eq!(refund(&app, &id, &json!({"amount_minor": 1000})).ok_json(201)["remaining_minor"], 1580);
    let problem = refund(&app, &id, &json!({"amount_minor": 2000})).problem(409);
    assert_eq!(problem["type"], "/problems/refund-exceeds-remaining");
    assert_eq!((problem["remaining_minor"].as_i64(), problem["requested_minor"].as_i64()), (Some(1580), Some(2000)));
    assert_eq!(app.count("SELECT sum(amount_minor) FROM payment_refunds"), 1000, "nothing was refunded");

    let refund_rest = refund(&app, &id, &json!({"amount_minor": 1580})).ok_json(201);
    assert_eq!(refund_rest["order_status"], "refunded");
    assert_eq!(refund_rest["refunded_minor"], 2580);
    // An order no longer shippable keeps nothing reserved, even when money alone was refunded.
    assert_eq!(app.stock(&mug)["reserved"], 0);
    assert_eq!(movements(&app, &id, "release"), vec![("MUG-001".into(), 0, -2)]);

    let problem = refund(&app, &id, &json!({"amount_minor": 1})).problem(409);
    assert_eq!(problem["type"], "/problems/order-status");
    assert_eq!(problem["order_status"], "refunded");
    assert_eq!(app.count("SELECT sum(amount_minor) FROM payment_refunds"), 2580);
    assert_eq!(app.count("SELECT refunded_minor FROM payments WHERE status = 'succeeded'"), 2580);
    assert_ledger_matches_levels(&mut app.connect());
}

#[test]
fn a_partially_refunded_order_can_still_be_shipped_and_ships_only_what_was_not_refunded() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1000, 10);
    let cap = app.product_with_stock("CAP-001", 500, 10);
    let id = paid_order(&app, &[(&mug, 3), (&cap, 1)]);
    refund(&app, &id, &json!({"lines": [{"product_id": mug, "quantity": 1}]})).ok_json(201);

    let shipped = app.admin_post(&format!("/api/orders/{id}/ship")).ok_json(200);
    assert_eq!(shipped["status"], "partially_refunded", "refunds still add up to less than was captured");
    assert!(shipped["shipped_at"].is_string(), "{shipped}");
    assert_eq!(movements(&app, &id, "shipment"), vec![("CAP-001".into(), -1, -1), ("MUG-001".into(), -2, -2)]);
    let stock = app.stock(&mug);
    assert_eq!((stock["on_hand"].as_i64(), stock["reserved"].as_i64()), (Some(8), Some(0)));

    let problem = app.admin_post(&format!("/api/orders/{id}/ship")).problem(409);
    assert_eq!(problem["order_status"], "partially_refunded");
    assert!(problem["detail"].as_str().unwrap().contains("has shipped"), "{problem}");

    // After shipping, refunded lines are money only: the goods are with the customer.
    refund(&app, &id, &json!({"lines": [{"product_id": mug, "quantity": 1}]})).ok_json(201);
    assert_eq!(app.stock(&mug)["on_hand"], 8);
    assert_eq!(movements(&app, &id, "release").len(), 1);

    // The whole-order refund refunds what remains.
    let refunded = app.admin_post(&format!("/api/orders/{id}/refund")).ok_json(200);
    assert_eq!(refunded["status"], "refunded");
    assert_eq!(refunded["payments"][0]["refunded_minor"], 3500);
    assert_eq!(refunded["payments"][0]["refunds"][2]["amount_minor"], 3500 - 2000);
    assert_eq!(movements(&app, &id, "release").len(), 1, "nothing left reserved to release");
    assert_ledger_matches_levels(&mut app.connect());
}

#[test]
fn the_whole_order_refund_of_a_partially_refunded_order_releases_what_is_still_reserved() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1000, 10);
    let id = paid_order(&app, &[(&mug, 4)]);
    refund(&app, &id, &json!({"lines": [{"product_id": mug, "quantity": 1}]})).ok_json(201);
    refund(&app, &id, &json!({"amount_minor": 250})).ok_json(201);
    let refunded = app.admin_post(&format!("/api/orders/{id}/refund")).ok_json(200);
    assert_eq!(refunded["status"], "refunded");
    let refunds = refunded["payments"][0]["refunds"].as_array().unwrap().clone();
    let amounts: Vec<i64> = refunds.iter().map(|refund| refund["amount_minor"].as_i64().unwrap()).collect();
    assert_eq!(amounts, vec![1000, 250, 2750]);
    assert_eq!(refunded["payments"][0]["refund"]["amount_minor"], 4000, "the sum, as before partial refunds");
    assert_eq!(movements(&app, &id, "release"), vec![("MUG-001".into(), 0, -1), ("MUG-001".into(), 0, -3)]);
    assert_eq!(app.stock(&mug)["reserved"], 0);
    assert_ledger_matches_levels(&mut app.connect());
}

#[test]
fn a_refund_that_breaks_a_rule_is_a_422_naming_every_field_and_changes_nothing() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let cap = app.product_with_stock("CAP-001", 1790, 10);
    let id = paid_order(&app, &[(&mug, 2)]);
    let unknown = "6f1d6f5e-0000-4000-8000-000000000000";

    let fields = |body: Value| -> Vec<String> {
        let problem = refund(&app, &id, &body).problem(422);
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(fields(json!({"amount_minor": 0})), vec!["amount_minor"]);
    assert_eq!(fields(json!({"amount_minor": -5})), vec!["amount_minor"]);
    assert_eq!(fields(json!({"amount_minor": 50_000_000_000_001_i64})), vec!["amount_minor"]);
    assert_eq!(fields(json!({})), vec!["amount_minor"]);
    assert_eq!(fields(json!({"amount_minor": 100, "lines": [{"product_id": mug, "quantity": 1}]})), vec!["lines"]);
    assert_eq!(fields(json!({"lines": []})), vec!["lines"]);
    // What the request alone breaks is said at once, before the order is looked at...
    assert_eq!(
        fields(json!({"lines": [{"product_id": mug, "quantity": 0}, {"product_id": mug, "quantity": 50_001}]})),
        vec!["lines[0].quantity", "lines[1].quantity"]
    );
    // ...then everything the order's lines rule out, at once. Lines naming one product add up.
    assert_eq!(
        fields(json!({"lines": [
            {"product_id": unknown, "quantity": 1},
            {"product_id": mug, "quantity": 1},
            {"product_id": cap, "quantity": 1},
            {"product_id": mug, "quantity": 2},
        ]})),
        vec!["lines[0].product_id", "lines[1].quantity", "lines[2].product_id"]
    );
    let many: Vec<Value> = (0..51).map(|_| json!({"product_id": mug, "quantity": 1})).collect();
    assert_eq!(fields(json!({ "lines": many })), vec!["lines"]);

    // Not JSON of the right shape: 400, as everywhere in the API.
    refund(&app, &id, &json!({"amount_minor": "12"})).problem(400);
    refund(&app, &id, &json!({"amount_minor": 12.5})).problem(400);
    refund(&app, &id, &json!({"amount": 12})).problem(400);
    refund(&app, &id, &json!({"lines": [{"product_id": "mug", "quantity": 1}]})).problem(400);

    assert_eq!(app.count("SELECT count(*) FROM payment_refunds"), 0);
    assert_eq!(app.order(&id)["status"], "paid");
    assert_eq!(app.stock(&mug)["reserved"], 2);
}

#[test]
fn only_an_admin_refunds_and_only_a_paid_or_shipped_order() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let paid = paid_order(&app, &[(&mug, 1)]);
    let pending = app.placed_order("bob@example.com", &[(&mug, 1)])["id"].as_str().unwrap().to_owned();
    let cancelled = app.placed_order("cy@example.com", &[(&mug, 1)])["id"].as_str().unwrap().to_owned();
    app.post_json(&format!("/api/orders/{cancelled}/cancel"), &json!({})).ok_json(200);

    let unauthenticated = app.post_json(&format!("/api/orders/{paid}/refunds"), &json!({"amount_minor": 100}));
    unauthenticated.problem(401);
    assert_eq!(unauthenticated.header("www-authenticate"), Some("Bearer"));
    for (id, status) in [(&pending, "pending_payment"), (&cancelled, "cancelled")] {
        let problem = refund(&app, id, &json!({"amount_minor": 100})).problem(409);
        assert_eq!(problem["order_status"], status);
        assert!(problem["detail"].as_str().unwrap().contains("cannot be refunded"), "{problem}");
    }
    // The order's status is told before any complaint about lines it does not have.
    let problem = refund(&app, &pending, &json!({"lines": [{"product_id": paid, "quantity": 1}]})).problem(409);
    assert_eq!(problem["order_status"], "pending_payment");
    refund(&app, "6f1d6f5e-0000-4000-8000-000000000000", &json!({"amount_minor": 100})).problem(404);
    let allow = app.request("GET", &format!("/api/orders/{paid}/refunds"), &[]);
    assert_eq!(allow.status, 405);
    assert_eq!(app.count("SELECT count(*) FROM payment_refunds"), 0);
}

#[test]
fn each_refund_sends_its_own_e_mail_stating_its_amount() {
    let app = TestApp::spawn_with(|config| {
        config.outbox.run_in_server = true;
        config.outbox.poll_interval = Duration::from_millis(200);
    });
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let order = app.placed_order("ada@example.com", &[(&mug, 2)]);
    let id = order["id"].as_str().unwrap().to_owned();
    let number = order["number"].as_str().unwrap().to_owned();
    app.pay(&id, VISA).ok_json(201);
    refund(&app, &id, &json!({"amount_minor": 500})).ok_json(201);
    refund(&app, &id, &json!({"lines": [{"product_id": mug, "quantity": 1}]})).ok_json(201);
    app.admin_post(&format!("/api/orders/{id}/refund")).ok_json(200);

    let refund_mails =
        format!("SELECT count(*) FROM notifications WHERE order_id = '{id}' AND kind = 'order_refunded'");
    eventually("three refund e-mails", Duration::from_secs(15), || app.count(&refund_mails) == 3);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(app.count(&refund_mails), 3, "one e-mail per refund, none twice");

    #[derive(diesel::QueryableByName)]
    struct Mail {
        #[diesel(sql_type = diesel::sql_types::Text)]
        subject: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        text_body: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        html_body: String,
    }
    use diesel::RunQueryDsl;
    let mails: Vec<Mail> = diesel::sql_query(format!(
        "SELECT n.subject, n.text_body, n.html_body FROM notifications n JOIN events e ON e.id = n.event_id
          WHERE n.order_id = '{id}' AND n.kind = 'order_refunded' ORDER BY e.id"
    ))
    .load(&mut app.connect())
    .unwrap();
    let expected = [
        (format!("€5.00 refunded for order {number}"), "This refund: €5.00", "Refunded so far: €5.00 of €25.80"),
        (format!("€12.90 refunded for order {number}"), "This refund: €12.90", "Refunded so far: €17.90 of €25.80"),
        (format!("Order {number} refunded in full"), "This refund: €7.90", "Refunded so far: €25.80 of €25.80"),
    ];
    for (mail, (subject, amount, so_far)) in mails.iter().zip(expected) {
        assert_eq!(mail.subject, subject);
        assert!(mail.text_body.contains(amount) && mail.text_body.contains(so_far), "{}", mail.text_body);
        assert!(mail.html_body.contains(amount), "the HTML part too: {}", mail.html_body);
    }
    assert!(mails[1].text_body.contains("Refunded items: 1 x Product MUG-001 (MUG-001)"), "{}", mails[1].text_body);
    assert!(mails[2].text_body.contains("refunded in full"), "{}", mails[2].text_body);
    assert!(!mails[0].text_body.contains("refunded in full"), "{}", mails[0].text_body);
}

#[test]
fn twenty_concurrent_refunds_of_one_order_never_exceed_the_captured_amount() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 100, 50);
    let id = paid_order(&app, &[(&mug, 15)]);

    // Half refund one unit, half refund the same money as an amount: 2,000 asked, 1,500 captured.
    let responses = concurrently(20, |n| {
        let body = if n % 2 == 0 {
            json!({"lines": [{"product_id": mug, "quantity": 1}]})
        } else {
            json!({"amount_minor": 100})
        };
        refund(&app, &id, &body)
    });
    let created: Vec<&crate::helpers::TestResponse> = responses.iter().filter(|r| r.status == 201).collect();
    assert_eq!(created.len(), 15, "{:?}", responses.iter().map(|r| r.status).collect::<Vec<_>>());
    for refused in responses.iter().filter(|r| r.status != 201) {
        assert_eq!(refused.problem(409)["order_status"], "refunded", "{}", refused.body);
    }
    let answered: i64 = created.iter().map(|r| r.json()["amount_minor"].as_i64().unwrap()).sum();
    assert_eq!(answered, 1500);

    let refunded = format!(
        "SELECT sum(r.amount_minor) FROM payment_refunds r JOIN payments p ON p.id = r.payment_id
          WHERE p.order_id = '{id}'"
    );
    assert_eq!(app.count(&refunded), 1500);
    assert_eq!(app.count("SELECT count(*) FROM payment_refunds"), 15);
    assert_eq!(
        app.count(&format!("SELECT refunded_minor FROM payments WHERE order_id = '{id}' AND status = 'succeeded'")),
        1500
    );
    assert_eq!(app.order(&id)["status"], "refunded");
    assert_eq!(app.count("SELECT count(*) FROM events WHERE event_type = 'OrderRefunded'"), 15);

    // Every unit refunded by line went back at once, and the rest (the last refund's unit among it,
    // if it named one) when the money ran out: one movement per refund that moved stock.
    let by_line = |response: &crate::helpers::TestResponse| !response.json()["lines"].as_array().unwrap().is_empty();
    let last = created.iter().find(|response| response.json()["remaining_minor"] == 0).expect("one refund completes");
    let units_by_line = created.iter().filter(|response| by_line(response)).count() - usize::from(by_line(last));
    let releases = movements(&app, &id, "release");
    assert_eq!(releases.len(), units_by_line + 1, "{releases:?}");
    assert_eq!(releases.iter().filter(|(_, _, reserved)| *reserved == -1).count(), units_by_line, "{releases:?}");
    assert_eq!(releases.iter().map(|(_, _, reserved)| reserved).sum::<i64>(), -15);
    let stock = app.stock(&mug);
    assert_eq!((stock["on_hand"].as_i64(), stock["reserved"].as_i64()), (Some(50), Some(0)));
    assert_ledger_matches_levels(&mut app.connect());
}

#[test]
fn the_openapi_document_states_the_refund_operation_exactly() {
    let app = TestApp::spawn();
    let document = app.get("/api/openapi.json").ok_json(200);
    let operation = &document["paths"]["/api/orders/{id}/refunds"]["post"];
    let statuses: Vec<&str> = operation["responses"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(statuses, vec!["201", "400", "401", "404", "409", "422", "503"]);
    assert_eq!(operation["security"], json!([{"admin_token": []}]));
    let schema_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str().unwrap();
    let schemas = &document["components"]["schemas"];
    let request = &schemas[schema_ref.rsplit('/').next().unwrap()];
    let variants = request["oneOf"].as_array().unwrap_or_else(|| panic!("{request}"));
    assert_eq!(variants.len(), 2);
    let amount = &variants[0];
    assert_eq!(amount["required"], json!(["amount_minor"]));
    assert_eq!(amount["additionalProperties"], false);
    assert_eq!(amount["properties"]["amount_minor"]["minimum"], 1.0);
    assert_eq!(amount["properties"]["amount_minor"]["maximum"], 50_000_000_000_000.0);
    let lines = &variants[1];
    assert_eq!(lines["required"], json!(["lines"]));
    assert_eq!(lines["additionalProperties"], false);
    assert_eq!(
        (lines["properties"]["lines"]["minItems"].as_u64(), lines["properties"]["lines"]["maxItems"].as_u64()),
        (Some(1), Some(50))
    );
    let line = &lines["properties"]["lines"]["items"];
    assert_eq!(line["required"], json!(["product_id", "quantity"]));
    assert_eq!(
        (line["properties"]["quantity"]["minimum"].as_f64(), line["properties"]["quantity"]["maximum"].as_f64()),
        (Some(1.0), Some(50_000.0))
    );
}

/// The hidden fields of the first form on a page (a confirmation's), as a browser would post them.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let form = html.split("<form method=\"post\"").nth(1).expect("a form").split("</form>").next().unwrap();
    form.split("<input type=\"hidden\" ")
        .skip(1)
        .map(|input| {
            let attribute = |name: &str| {
                let marker = format!("{name}=\"");
                let start = input.find(&marker).unwrap() + marker.len();
                input[start..].split('"').next().unwrap().replace("&#x3a;", ":").replace("&#x2c;", ",")
            };
            (attribute("name"), attribute("value"))
        })
        .collect()
}

fn form_action(html: &str) -> String {
    let start = html.find("<form method=\"post\" action=\"").expect("a form") + "<form method=\"post\" action=\"".len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn post_hidden(browser: &mut crate::helpers::Browser, page: &str) -> crate::helpers::TestResponse {
    let fields = hidden_fields(page);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    browser.post_form(&form_action(page), &fields)
}

#[test]
fn the_admin_refunds_chosen_lines_or_an_amount_through_a_confirmation_that_states_it() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let cap = app.product_with_stock("CAP-001", 3080, 10);
    let order = app.placed_order("ada@example.com", &[(&mug, 3), (&cap, 1)]);
    let id = order["id"].as_str().unwrap().to_owned();
    let number = order["number"].as_str().unwrap().to_owned();
    app.pay(&id, VISA).ok_json(201);
    let mut browser = app.signed_in_browser();

    let order_page = format!("/admin/orders/{id}");
    let page = browser.get(&order_page);
    let form_path = format!("/admin/orders/{id}/refunds/new");
    assert!(page.body.contains(&format!("href=\"{form_path}\">Refund part…</a>")), "{}", page.body);
    let form = browser.get(&form_path);
    assert_eq!(form.status, 200);
    for field in ["amount", "line-1", "line-2"] {
        assert!(form.body.contains(&format!("name=\"{field}\"")), "{field}: {}", form.body);
    }
    assert!(form.body.contains("name=\"csrf_token\""));

    // Every mistake at once, each next to its field, with what was typed kept.
    let review = format!("/admin/orders/{id}/refunds/review");
    let wrong = browser.submit(&form_path, &review, &[("amount", "12.345"), ("line-1", "4"), ("line-2", "x")]);
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    for (field, message) in [
        ("amount", "enter an amount such as 12.50"),
        ("line-1", "at most 3 units"),
        ("line-2", "enter a whole number of units"),
    ] {
        assert!(
            wrong.body.contains(&format!("id=\"{field}\""))
                && wrong.body.contains(&format!("aria-describedby=\"{field}-error\"")),
            "{field}: {}",
            wrong.body
        );
        let error = wrong
            .body
            .split(&format!("id=\"{field}-error\">"))
            .nth(1)
            .unwrap_or_else(|| panic!("{field}: {}", wrong.body));
        assert!(error.split("</span>").next().unwrap().contains(message), "{field}: {error}");
    }
    assert_eq!(wrong.body.matches("aria-invalid=\"true\"").count(), 3);
    assert!(wrong.body.contains("value=\"12.345\""), "{}", wrong.body);
    let nothing = browser.submit(&form_path, &review, &[("amount", ""), ("line-1", ""), ("line-2", "0")]);
    assert_eq!(nothing.status, 422);
    assert!(nothing.body.contains("enter an amount, or units of at least one line"), "{}", nothing.body);
    let both = browser.submit(&form_path, &review, &[("amount", "1"), ("line-1", "1"), ("line-2", "")]);
    assert_eq!(both.status, 422);
    assert!(both.body.contains("an amount or units, not both"), "{}", both.body);

    // Lines: the confirmation states the amount, the card and what goes back to stock.
    let confirm = browser.submit(&form_path, &review, &[("amount", ""), ("line-1", "2"), ("line-2", "")]);
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(confirm.body.contains("<h1>Refund €25.80 to visa •••• 4242?</h1>"), "{}", confirm.body);
    assert!(confirm.body.contains("2 × Product MUG-001 (MUG-001) go back to stock."), "{}", confirm.body);
    assert!(
        confirm
            .body
            .contains(&format!("Order {number} becomes partially refunded: €25.80 of €69.50 refunded, €43.70 left.")),
        "{}",
        confirm.body
    );
    assert!(confirm.body.contains("ada@example.com is e-mailed about this refund."), "{}", confirm.body);
    assert_eq!(app.count("SELECT count(*) FROM payment_refunds"), 0, "the confirmation changes nothing");
    let done = post_hidden(&mut browser, &confirm.body);
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header("location"), Some(order_page.as_str()));
    let after = browser.get(&order_page);
    assert!(after.body.contains(&format!("€25.80 refunded for order {number}.")), "{}", after.body);
    assert!(after.body.contains("Partially refunded"), "{}", after.body);
    assert_eq!(app.stock(&mug)["reserved"], 1);

    // An amount: no goods move.
    let confirm = browser.submit(&form_path, &review, &[("amount", "10"), ("line-1", ""), ("line-2", "")]);
    assert!(confirm.body.contains("<h1>Refund €10.00 to visa •••• 4242?</h1>"), "{}", confirm.body);
    assert!(confirm.body.contains("No goods go back to stock."), "{}", confirm.body);
    assert_eq!(post_hidden(&mut browser, &confirm.body).status, 303);
    assert_eq!(app.count("SELECT sum(amount_minor) FROM payment_refunds"), 3580);

    // Confirmed after someone else refunded meanwhile: nothing happens, and the page says why.
    let stale = browser.submit(&form_path, &review, &[("amount", "5"), ("line-1", ""), ("line-2", "")]);
    assert_eq!(stale.status, 200);
    refund(&app, &id, &json!({"amount_minor": 70})).ok_json(201);
    assert_eq!(post_hidden(&mut browser, &stale.body).status, 303);
    let back = browser.get(&order_page);
    assert!(back.body.contains("it changed while you were deciding"), "{}", back.body);
    assert_eq!(app.count("SELECT sum(amount_minor) FROM payment_refunds"), 3650);

    // More than is left is said next to the amount; the whole refund offers what is left.
    let too_much = browser.submit(&form_path, &review, &[("amount", "40"), ("line-1", ""), ("line-2", "")]);
    assert_eq!(too_much.status, 422);
    assert!(too_much.body.contains("only €33.00 is left to refund"), "{}", too_much.body);
    let whole = browser.get(&format!("/admin/orders/{id}/refund"));
    assert!(whole.body.contains("<h1>Refund €33.00 to visa •••• 4242?</h1>"), "{}", whole.body);
    assert!(whole.body.contains("the 2 units still reserved for it go back to stock"), "{}", whole.body);

    // The confirmation's post needs the session's CSRF token like every form.
    let mut fields = hidden_fields(&stale.body);
    for (name, value) in &mut fields {
        if name == "csrf_token" {
            *value = "forged".into();
        }
    }
    let fields: Vec<(&str, &str)> = fields.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    assert_eq!(browser.post_form(&form_action(&stale.body), &fields).status, 403);

    // Each of its addresses takes its own methods, and says which.
    let cookies = browser.cookie_header();
    for (method, path, allowed) in [
        ("GET", review.clone(), "OPTIONS, POST"),
        ("GET", format!("/admin/orders/{id}/refunds"), "OPTIONS, POST"),
        ("POST", form_path.clone(), "GET, HEAD, OPTIONS"),
    ] {
        let response = app.request(method, &path, &[("Cookie", &cookies)]);
        assert_eq!((response.status, response.header("allow")), (405, Some(allowed)), "{method} {path}");
    }
}

#[test]
fn a_refund_retried_with_its_idempotency_key_refunds_once() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let id = paid_order(&app, &[(&mug, 2)]);
    let path = format!("/api/orders/{id}/refunds");
    let admin = format!("Bearer {}", crate::helpers::ADMIN_TOKEN);
    let headers = [("Authorization", admin.as_str()), ("Idempotency-Key", "refund-7f3a")];
    let first = app.post_json_with(&path, &headers, &json!({"amount_minor": 500}));
    assert_eq!(first.status, 201, "{}", first.body);
    let retry = app.post_json_with(&path, &headers, &json!({"amount_minor": 500}));
    assert_eq!((retry.status, retry.json()), (201, first.json()));
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    let other = app.post_json_with(&path, &headers, &json!({"amount_minor": 600}));
    assert_eq!(other.problem(409)["type"], "/problems/idempotency-key-reused");
    assert_eq!(app.count("SELECT count(*) FROM payment_refunds"), 1);
    assert_eq!(app.count("SELECT refunded_minor FROM payments WHERE status = 'succeeded'"), 500);
}

#[test]
fn revenue_and_spending_count_a_partially_refunded_order_net_of_its_refunds() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let cap = app.product_with_stock("CAP-001", 1000, 10);
    let tee = app.product_with_stock("TEE-001", 500, 10);
    paid_order(&app, &[(&mug, 2)]);
    let partly = paid_order(&app, &[(&cap, 1)]);
    refund(&app, &partly, &json!({"amount_minor": 300})).ok_json(201);
    let whole = paid_order(&app, &[(&tee, 1)]);
    app.admin_post(&format!("/api/orders/{whole}/refund")).ok_json(200);

    let mut browser = app.signed_in_browser();
    let dashboard = browser.get("/admin");
    assert!(dashboard.body.contains("Revenue (net of refunds)<strong>€32.80</strong>"), "{}", dashboard.body);
    assert!(dashboard.body.contains("€32.80 revenue from paid and shipped orders"), "{}", dashboard.body);
    assert!(dashboard.body.contains("Partially refunded</a><strong>1</strong>"), "{}", dashboard.body);
    let customers = browser.get("/admin/customers");
    assert!(customers.body.contains("<td class=\"num\">€32.80</td>"), "{}", customers.body);
}

#[test]
fn a_whole_refund_confirmed_after_another_refund_meanwhile_refunds_nothing() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1000, 10);
    let id = paid_order(&app, &[(&mug, 2)]);
    refund(&app, &id, &json!({"amount_minor": 500})).ok_json(201);
    let mut browser = app.signed_in_browser();

    let confirm = browser.get(&format!("/admin/orders/{id}/refund"));
    assert!(confirm.body.contains("<h1>Refund €15.00 to visa •••• 4242?</h1>"), "{}", confirm.body);
    assert!(confirm.body.contains("€5.00 of €20.00 was refunded before; this refunds the €15.00 left."));
    // The status stays partially refunded, but what is left is not what the operator saw.
    refund(&app, &id, &json!({"amount_minor": 200})).ok_json(201);
    assert_eq!(post_hidden(&mut browser, &confirm.body).status, 303);
    let back = browser.get(&format!("/admin/orders/{id}"));
    assert!(
        back.body.contains("it changed while you were deciding, €2.00 more was refunded meanwhile"),
        "{}",
        back.body
    );
    assert_eq!(app.order(&id)["status"], "partially_refunded");
    assert_eq!(app.count("SELECT refunded_minor FROM payments WHERE status = 'succeeded'"), 700);
}
