//! The shop in a real browser on a phone's screen: a shopper's whole errand through its forms
//! and links, no script of the shop's own, every page held to the phone's width and to axe at
//! every impact level on the way.

use std::time::{Duration, Instant};

use serde_json::json;

use super::chrome::{Chrome, DESKTOP, PHONE};
use crate::helpers::{ADMIN_PASSWORD, AgoraProcess, TestDatabase, eventually};
use crate::smtp::SmtpSink;

/// The page shown fits the phone (or desktop) and axe finds nothing, at any impact.
#[track_caller]
fn holds_up(chrome: &Chrome, what: &str) {
    chrome.check_fits().unwrap_or_else(|report| panic!("{what}: {report}"));
    let report = chrome.axe();
    let listed: Vec<String> = report.violations.iter().map(|violation| format!("    {violation}")).collect();
    assert!(listed.is_empty(), "{what} ({}): axe finds:\n{}", report.page, listed.join("\n"));
}

fn product(agora: &AgoraProcess, sku: &str, name: &str, price_minor: i64, stock: i64) -> String {
    let created = agora.admin_post_json(
        "/api/products",
        &json!({"sku": sku, "name": name, "price_minor": price_minor, "description": "Made to last.\nSold with care."}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    if stock > 0 {
        let received = agora.admin_post_json(
            &format!("/api/inventory/{id}/adjustments"),
            &json!({"delta": stock, "reason": "delivery", "kind": "receipt"}),
        );
        assert_eq!(received.status, 201, "{}", received.body);
    }
    id
}

/// Finds a product by searching for `search` and adds `quantity` of the first one found.
fn find_and_add(chrome: &Chrome, search: &str, name: &str, quantity: &str) {
    chrome.goto("/");
    chrome.fill("q", search);
    chrome.click_button("Search");
    holds_up(chrome, "the search results");
    chrome.click_link(name);
    assert_eq!(chrome.h1(), name);
    holds_up(chrome, "the product page");
    chrome.fill("quantity", quantity);
    chrome.click_button("Add to cart");
    assert_eq!(chrome.current_path(), "/cart");
}

fn fill_checkout(chrome: &Chrome, card: &str) {
    chrome.fill("name", "Ada Lovelace");
    chrome.fill("email", "ada@example.com");
    chrome.fill("card_number", card);
    chrome.fill("exp_month", "12");
    chrome.fill("exp_year", "2031");
    chrome.fill("cvc", "123");
}

#[test]
fn a_shopper_searches_fills_a_cart_meets_a_decline_pays_and_follows_the_order_until_shipped() {
    let sink = SmtpSink::start();
    let database = TestDatabase::migrated();
    let agora =
        AgoraProcess::start(&database, &[("AGORA_SMTP_URL", sink.url().as_str()), ("AGORA_OUTBOX_POLL_MS", "100")]);
    product(&agora, "LAMP-042", "Desk lamp", 4800, 10);
    product(&agora, "MUG-001", "Enamel mug", 1290, 10);
    let chrome = Chrome::start(&agora.address);
    chrome.resize(PHONE);

    // 1-2. Found by search, two products in the cart, a quantity changed, a line removed.
    find_and_add(&chrome, "lamp", "Desk lamp", "1");
    find_and_add(&chrome, "mug", "Enamel mug", "2");
    holds_up(&chrome, "the cart");
    chrome.fill_in(".line:nth-of-type(1) input[name=quantity]", "3");
    chrome.click_button_in(".line:nth-of-type(1) .line-actions form:not([action$='/remove'])");
    assert!(chrome.text().contains("Total €169.80"), "3 lamps and 2 mugs: {}", chrome.text());
    chrome.click_button_in(".line:nth-of-type(2) form[action$='/remove']");
    let cart = chrome.text();
    assert!(cart.contains("Total €144.00") && !cart.contains("Enamel mug"), "{cart}");

    // 3. A declined card: said next to the card field; the order waits.
    chrome.click_link("Check out");
    holds_up(&chrome, "the checkout");
    fill_checkout(&chrome, "4000 0000 0000 0002");
    chrome.click_button("Pay €144.00");
    assert_eq!(chrome.status(), 402);
    let error = chrome.text_of("#card_number-error").expect("a message at the card field");
    assert!(error.contains("The card was declined."), "{error}");
    let described = chrome.execute(
        "const input = document.getElementById('card_number');
         return [input.getAttribute('aria-invalid'), input.getAttribute('aria-describedby')];",
        vec![],
    );
    assert_eq!(described, json!(["true", "card_number-error"]));
    assert!(chrome.text().contains("is placed and waits for payment"), "{}", chrome.text());
    holds_up(&chrome, "the declined checkout");

    // 4. A good card: the confirmation.
    fill_checkout(&chrome, "4242 4242 4242 4242");
    chrome.click_button("Pay €144.00");
    let confirmation = chrome.current_path();
    assert!(confirmation.starts_with("/orders/") && confirmation.ends_with("?confirmation"), "{confirmation}");
    let number = chrome.h1().trim_start_matches("Order ").to_owned();
    let text = chrome.text();
    assert!(text.contains("Thank you!") && text.contains("3 × Desk lamp") && text.contains("Total €144.00"), "{text}");
    holds_up(&chrome, "the confirmation");

    // 5. The confirmation e-mail's link opens the status page.
    eventually("the confirmation e-mail", Duration::from_secs(20), || {
        sink.messages().iter().any(|message| message.decoded_body().contains("we have received your payment"))
    });
    let email = sink
        .messages()
        .into_iter()
        .find(|message| message.decoded_body().contains("we have received your payment"))
        .unwrap()
        .decoded_body();
    let link = email
        .split("Follow your order: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no link in the e-mail: {email}"))
        .to_owned();
    assert!(link.starts_with(&agora.address), "{link}");
    assert_eq!(link.trim_start_matches(&agora.address), confirmation.trim_end_matches("?confirmation"));
    chrome.goto(link.trim_start_matches(&agora.address));
    assert_eq!(chrome.text_of(".status").unwrap(), "Status: Paid");
    holds_up(&chrome, "the status page");

    // 6. An operator ships it in the admin pages; the status page says so.
    let status_page = chrome.current_path();
    chrome.resize(DESKTOP);
    chrome.sign_in_through_form("admin", ADMIN_PASSWORD);
    chrome.goto("/admin/orders");
    chrome.click_link(&number);
    chrome.click_link("Ship");
    chrome.click_button("Ship it");
    chrome.resize(PHONE);
    chrome.goto(&status_page);
    assert_eq!(chrome.text_of(".status").unwrap(), "Status: Shipped");
    let history = chrome.text_of(".history").unwrap();
    assert!(
        history.contains("Order placed") && history.contains("declined") && history.contains("Shipped"),
        "{history}"
    );
    holds_up(&chrome, "the shipped order's status page");
}

#[test]
fn a_product_that_sells_out_while_in_the_cart_is_named_on_its_checkout_line() {
    let database = TestDatabase::migrated();
    let agora = AgoraProcess::start(&database, &[]);
    let lamp = product(&agora, "LAMP-042", "Desk lamp", 4800, 2);
    product(&agora, "MUG-001", "Enamel mug", 1290, 10);
    let chrome = Chrome::start(&agora.address);
    chrome.resize(PHONE);
    find_and_add(&chrome, "lamp", "Desk lamp", "2");
    find_and_add(&chrome, "mug", "Enamel mug", "1");
    chrome.click_link("Check out");
    fill_checkout(&chrome, "4242424242424242");

    // Someone else buys the last lamps while the shopper types.
    let body = json!({"customer": {"email": "bob@example.com", "name": "Bob"}, "items": [{"product_id": lamp, "quantity": 2}]});
    assert_eq!(agora.post_json("/api/orders", &body).status, 201);
    chrome.click_button("Pay €108.90");
    assert_eq!(chrome.status(), 409);
    assert_eq!(chrome.current_path(), "/checkout");
    let line = chrome.text_of(".line:nth-of-type(1)").unwrap();
    assert!(line.contains("2 × Desk lamp") && line.contains("Sold out."), "{line}");
    let other = chrome.text_of(".line:nth-of-type(2)").unwrap();
    assert!(!other.contains("Sold out") && !other.contains("left"), "{other}");
    assert!(chrome.text().contains("Nothing was ordered or charged"));
    holds_up(&chrome, "the refused checkout");
    assert_eq!(agora.admin_get("/api/orders?email=ada@example.com").json()["items"], json!([]));
}

/// Every shop page, as a shopper meets it, at a phone's width and a desktop's.
#[test]
fn every_shop_page_fits_a_phone_and_a_desktop_with_no_axe_violation() {
    let started = Instant::now();
    let database = TestDatabase::migrated();
    let agora = AgoraProcess::start(&database, &[("AGORA_SEED", "demo")]);
    let chrome = Chrome::start(&agora.address);
    let mut failures = Vec::new();
    let mut visits = 0;
    let mut visit = |chrome: &Chrome, what: &str| {
        visits += 1;
        let mut found = Vec::new();
        if let Err(report) = chrome.check_fits() {
            found.push(format!("  does not fit: {report}"));
        }
        found.extend(chrome.axe().violations.iter().map(|violation| format!("  {violation}")));
        if !found.is_empty() {
            failures.push(format!("{what} ({}):\n{}", chrome.current_path(), found.join("\n")));
        }
    };
    for viewport in [PHONE, DESKTOP] {
        chrome.resize(viewport);
        let at = |what: &str| format!("{} {what}", viewport.name);
        for (path, what) in [
            ("/", "the grid"),
            ("/?sort=price-desc", "the grid by price"),
            ("/?q=zzzz-nothing", "a search that finds nothing"),
            ("/products/NO-SUCH", "an unknown product (404)"),
            ("/?sort=nonsense", "a bad sort (400)"),
            ("/cart", "the empty cart"),
        ] {
            chrome.goto(path);
            visit(&chrome, &at(what));
        }
        chrome.goto("/");
        chrome.click_link("Next page");
        visit(&chrome, &at("the grid's second page"));
        chrome.goto("/");
        chrome.click_link("Kitchen");
        visit(&chrome, &at("a category"));
        let in_stock = chrome.execute(
            "return Array.from(document.querySelectorAll('.card')).find(card => !card.querySelector('.stock.out'))
                 .querySelector('a').getAttribute('href');",
            vec![],
        );
        chrome.goto(in_stock.as_str().expect("a product in stock in the category"));
        visit(&chrome, &at("a product"));
        chrome.click_button("Add to cart");
        visit(&chrome, &at("a cart"));
        chrome.click_link("Check out");
        visit(&chrome, &at("the checkout"));
        chrome.fill("email", "not an address");
        chrome.click_button_in("form.checkout");
        visit(&chrome, &at("the checkout with every field's error"));
        fill_checkout(&chrome, "4242424242424242");
        chrome.click_button_in("form.checkout");
        assert!(chrome.current_path().starts_with("/orders/"), "{}", chrome.text());
        visit(&chrome, &at("the confirmation"));
    }
    println!("{visits} shop page visits in {:.1} s", started.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "{} of {visits} visits fail:\n\n{}", failures.len(), failures.join("\n\n"));
}
