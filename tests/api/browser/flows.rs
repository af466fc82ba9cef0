//! An operator's day in a real browser, on a phone's screen: each step through the forms and
//! links a person uses, each page held to axe and to the phone's width on the way.

use std::time::{Duration, Instant};

use serde_json::json;

use super::chrome::{Chrome, PHONE};
use crate::helpers::{ADMIN_PASSWORD, AgoraProcess, TestDatabase, card, eventually};
use crate::smtp::SmtpSink;

/// The page shown must fit the phone and pass axe; `what` says where in the story it is.
fn holds_up(chrome: &Chrome, what: &str) {
    chrome.check_fits().unwrap_or_else(|report| panic!("{what}: {report}"));
    chrome.assert_accessible();
}

/// The confirmation of what was just done.
fn flash(chrome: &Chrome) -> String {
    chrome
        .text_of(".flash")
        .unwrap_or_else(|| panic!("no confirmation on {}: {}", chrome.current_path(), chrome.text()))
}

#[test]
fn an_operator_creates_stocks_finds_cancels_refunds_and_revives_dead_e_mail_in_a_browser() {
    // SMTP is down: nothing listens on this port until the sink starts, late in the story.
    let smtp_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let database = TestDatabase::migrated();
    let agora = AgoraProcess::start(
        &database,
        &[
            ("AGORA_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}").as_str()),
            ("AGORA_OUTBOX_MAX_ATTEMPTS", "2"),
            ("AGORA_OUTBOX_BACKOFF_MS", "50"),
            ("AGORA_OUTBOX_POLL_MS", "100"),
        ],
    );
    let chrome = Chrome::start(&agora.address);
    chrome.sign_in_through_form("admin", ADMIN_PASSWORD);
    chrome.resize(PHONE);

    // An existing product, so that a SKU can be taken.
    let taken = agora.admin_post_json("/api/products", &json!({"sku": "MUG-001", "name": "Mug", "price_minor": 1290}));
    assert_eq!(taken.status, 201, "{}", taken.body);

    // 1. A new product with three mistakes the browser cannot see: all three are named at once.
    chrome.goto("/admin/products/new");
    holds_up(&chrome, "the new product form");
    chrome.fill("sku", "bad sku");
    let mismatch = chrome.execute("return document.getElementById('sku').validity.patternMismatch;", vec![]);
    assert_eq!(mismatch, true, "the browser checks the SKU's pattern itself");
    chrome.fill("sku", "MUG-001");
    chrome.fill("name", "   ");
    chrome.fill("price", "twelve");
    chrome.click_button("Create product");
    let summary = chrome.text_of("#form-errors").expect("a summary of the errors");
    assert!(summary.contains("3 fields need correcting"), "{summary}");
    for (field, message) in [("sku", "MUG-001 is taken"), ("name", ""), ("price", "enter an amount")] {
        let error = chrome.text_of(&format!("#{field}-error")).unwrap_or_else(|| panic!("no message for {field}"));
        assert!(error.contains(message), "{field}: {error}");
        let described = chrome.execute(
            "const input = document.getElementById(arguments[0]);
             return [input.getAttribute('aria-invalid'), input.getAttribute('aria-describedby')];",
            vec![json!(field)],
        );
        assert_eq!(described, json!(["true", format!("{field}-error")]), "{field}");
    }
    holds_up(&chrome, "the form with its errors");

    // 2. Fixed and saved.
    chrome.fill("sku", "LAMP-042");
    chrome.fill("name", "Desk lamp");
    chrome.fill("price", "48.00");
    chrome.click_button("Create product");
    assert!(flash(&chrome).contains("Product LAMP-042 created"), "{}", chrome.text());
    assert_eq!(chrome.h1(), "Desk lamp LAMP-042");
    holds_up(&chrome, "the new product's page");

    // 3. Stock received through the ledger's form.
    chrome.click_link("Adjust stock");
    chrome.fill("delta", "25");
    chrome.fill("reason", "Delivery 4711");
    chrome.click_button("Record");
    assert!(flash(&chrome).contains("changed by +25: 25 available"), "{}", chrome.text());
    holds_up(&chrome, "the ledger");
    let lamp = chrome.current_path().trim_start_matches("/admin/inventory/").to_owned();

    // Customers order through the API, as the shop would.
    let order = |email: &str, name: &str, quantity: i64| {
        let body =
            json!({"customer": {"email": email, "name": name}, "items": [{"product_id": lamp, "quantity": quantity}]});
        let placed = agora.post_json("/api/orders", &body);
        assert_eq!(placed.status, 201, "{}", placed.body);
        placed.json()
    };
    let unpaid = order("grace@navy.example", "Grace Hopper", 1);
    let paid = order("ada@engines.example", "Ada Lovelace", 2);
    let paid_id = paid["id"].as_str().unwrap();
    let payment = agora.post_json(&format!("/api/orders/{paid_id}/payments"), &card("4242424242424242"));
    assert_eq!(payment.status, 201, "{}", payment.body);

    // 4. An order found by its customer's name.
    chrome.goto("/admin/orders");
    chrome.fill("q", "hopper");
    chrome.click_button("Search");
    let unpaid_number = unpaid["number"].as_str().unwrap();
    let found = chrome.text();
    assert!(found.contains(unpaid_number) && !found.contains(paid["number"].as_str().unwrap()), "{found}");
    holds_up(&chrome, "the search results");

    // 5. Cancelled through its confirmation step, which says what will happen.
    chrome.click_link(unpaid_number);
    chrome.click_link("Cancel order");
    assert_eq!(chrome.h1(), format!("Cancel order {unpaid_number} (€48.00) for Grace Hopper?"));
    assert!(chrome.text().contains("The 1 unit reserved for it goes back to stock."), "{}", chrome.text());
    holds_up(&chrome, "the cancel confirmation");
    chrome.click_button("Cancel the order");
    assert!(flash(&chrome).contains(&format!("Order {unpaid_number} cancelled.")), "{}", chrome.text());
    assert!(chrome.text_of(".badge").unwrap().contains("Cancelled"));

    // 6. Refunded, naming the amount and the card.
    chrome.goto(&format!("/admin/orders/{paid_id}"));
    chrome.click_link("Refund €96.00");
    assert_eq!(chrome.h1(), "Refund €96.00 to visa •••• 4242?");
    holds_up(&chrome, "the refund confirmation");
    chrome.click_button("Refund");
    assert!(flash(&chrome).contains("refunded"), "{}", chrome.text());
    assert!(chrome.text_of(".badge").unwrap().contains("Refunded"));

    // 7. The e-mails died while SMTP was down; with SMTP back, one click revives them all.
    let dead_by = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        chrome.goto("/admin/events?status=dead");
        let text = chrome.text();
        if let Some(count) = text.split("Retry all ").nth(1).and_then(|rest| rest.split(' ').next()) {
            // Every e-mail the story caused: two received, a confirmation, a cancellation, a refund.
            if count.parse::<usize>().is_ok_and(|count| count >= 5) {
                break count.parse::<usize>().unwrap();
            }
        }
        assert!(Instant::now() < dead_by, "no dead e-mails after 30 s: {text}");
        std::thread::sleep(Duration::from_millis(250));
    };
    holds_up(&chrome, "the dead events");
    let sink = SmtpSink::start_on(smtp_port);
    chrome.click_link("Retry all");
    holds_up(&chrome, "the retry-all confirmation");
    chrome.click_button_in(".confirm");
    assert!(flash(&chrome).contains(&format!("{dead} dead deliveries queued again")), "{}", chrome.text());
    eventually("the revived e-mails to arrive", Duration::from_secs(30), || sink.messages().len() >= dead);
    assert_eq!(sink.messages().len(), dead, "each revived e-mail is sent once");
}
