//! The shop's pages as a shopper's browser uses them: forms posted with the cookie and the token
//! the pages carry, answers read as a browser reads them (status, page, redirect, cookie).

use std::time::Duration;

use crate::helpers::{Browser, TestApp, concurrently, eventually, extract_csrf_token};

/// A shopper's browser on `app`, with the cart cookie the first product page gives it.
fn shopper(app: &TestApp) -> Browser {
    Browser::at(&app.address)
}

/// Adds `quantity` of the product with `sku` through its page's form, as a shopper does.
#[track_caller]
fn add_to_cart(browser: &mut Browser, sku: &str, quantity: i32) {
    let page = browser.get(&format!("/products/{sku}"));
    assert_eq!(page.status, 200, "{}", page.body);
    let token = extract_csrf_token(&page.body);
    let product_id = field_value(&page.body, "product_id");
    let added = browser.post_form(
        "/cart/items",
        &[("csrf_token", &token), ("product_id", &product_id), ("quantity", &quantity.to_string())],
    );
    assert_eq!(added.status, 303, "{}", added.body);
    assert_eq!(added.header("location"), Some("/cart"));
}

fn field_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no field {name}: {html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn checkout(browser: &mut Browser, card: &str) -> crate::helpers::TestResponse {
    let page = browser.get("/checkout");
    assert_eq!(page.status, 200, "{}", page.body);
    let token = extract_csrf_token(&page.body);
    browser.post_form("/checkout", &checkout_fields(&token, card))
}

fn checkout_fields<'a>(token: &'a str, card: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf_token", token),
        ("name", "Ada Lovelace"),
        ("email", "ada@example.com"),
        ("card_number", card),
        ("exp_month", "12"),
        ("exp_year", "2031"),
        ("cvc", "123"),
    ]
}

/// The text of a page without its tags, with runs of white space as one space.
fn text_of(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn a_shopper_finds_adds_pays_after_a_decline_and_follows_the_order() {
    let app = TestApp::spawn_with(|config| {
        config.outbox.run_in_server = true;
        config.outbox.poll_interval = Duration::from_millis(200);
    });
    app.product_with_stock("MUG-001", 1290, 10);
    app.product_with_stock("LAMP-01", 4500, 3);
    let mut browser = shopper(&app);

    let grid = browser.get("/?q=mug");
    assert_eq!(grid.status, 200);
    let text = text_of(&grid.body);
    assert!(text.contains("Product MUG-001 €12.90 In stock"), "{text}");
    assert!(!text.contains("LAMP-01"), "the search finds only the mug: {text}");
    let lamp = text_of(&browser.get("/products/LAMP-01").body);
    assert!(lamp.contains("Only 3 left"), "{lamp}");

    add_to_cart(&mut browser, "MUG-001", 2);
    add_to_cart(&mut browser, "LAMP-01", 1);
    add_to_cart(&mut browser, "MUG-001", 1);
    let cart = text_of(&browser.get("/cart").body);
    assert!(cart.contains("€12.90 each · €38.70") && cart.contains("Total €83.70"), "{cart}");

    let declined = checkout(&mut browser, "4000000000000002");
    assert_eq!(declined.status, 402, "{}", declined.body);
    assert!(declined.body.contains(r#"id="card_number" name="card_number""#));
    assert!(declined.body.contains(r#"aria-invalid="true" aria-describedby="card_number-error""#));
    assert!(text_of(&declined.body).contains("The card was declined. Nothing was charged"), "{}", declined.body);
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE status = 'pending_payment'"), 1);

    let paid = checkout(&mut browser, "4242424242424242");
    assert_eq!(paid.status, 303, "{}", paid.body);
    let location = paid.header("location").unwrap().to_owned();
    assert!(location.starts_with("/orders/") && location.ends_with("?confirmation"), "{location}");
    // One order, placed once, paid once after one decline.
    assert_eq!(app.count("SELECT count(*) FROM orders"), 1);
    assert_eq!(app.count("SELECT count(*) FROM payments WHERE status = 'succeeded'"), 1);
    assert_eq!(app.count("SELECT count(*) FROM payments WHERE status = 'failed'"), 1);

    let confirmation = text_of(&browser.get(&location).body);
    assert!(confirmation.contains("Thank you! Your order is placed and paid"), "{confirmation}");
    assert!(confirmation.contains("Status: Paid") && confirmation.contains("Total €83.70"), "{confirmation}");
    assert!(confirmation.contains("3 × Product MUG-001"), "{confirmation}");

    // The confirmation e-mail links to the status page.
    let status_path = location.trim_end_matches("?confirmation").to_owned();
    let link = format!("{}{status_path}", app.address);
    eventually("the confirmation e-mail is written", Duration::from_secs(10), || {
        app.count(&format!(
            "SELECT count(*) FROM notifications WHERE kind = 'order_confirmation' AND text_body LIKE '%{link}%'"
        )) == 1
    });
    // The spent cart: the next item starts a new, empty one.
    assert!(text_of(&browser.get("/cart").body).contains("Your cart is empty"));
    add_to_cart(&mut browser, "LAMP-01", 1);
    assert_eq!(app.count("SELECT count(*) FROM carts"), 2);
    let status = text_of(&Browser::at(&app.address).get(&status_path).body);
    assert!(status.contains("Status: Paid") && status.contains("Paid"), "{status}");
}

#[test]
fn a_strangers_cart_id_gives_nothing() {
    let app = TestApp::spawn();
    app.product_with_stock("MUG-001", 1290, 10);
    let mut owner = shopper(&app);
    add_to_cart(&mut owner, "MUG-001", 2);
    let stored = |sql: &str| -> String {
        use diesel::prelude::*;
        diesel::sql_query(sql).get_result::<Value>(&mut app.connect()).map(|row| row.value).unwrap()
    };
    let cart_id = stored("SELECT id::text AS value FROM carts");
    // What a copy of the table holds, in the cookie's own form.
    let digest = stored("SELECT translate(rtrim(encode(token_sha256, 'base64'), '='), '+/', '-_') AS value FROM carts");

    // The cart's id, a guess in the cookie's form, or the stored digest of the owner's: none opens it.
    for cookie in [cart_id, "A".repeat(43), digest] {
        let page = app.request("GET", "/cart", &[("Cookie", &format!("agora_cart={cookie}"))]);
        assert_eq!(page.status, 200);
        assert!(text_of(&page.body).contains("Your cart is empty"), "{cookie}: {}", page.body);
        assert!(!page.body.contains("MUG-001"));
    }
    // A status page needs its token, not the order's number or id.
    let order = app.placed_order("bob@example.com", &[(&product_id(&app, "MUG-001"), 1)]);
    for guess in [order["id"].as_str().unwrap().to_owned(), order["number"].as_str().unwrap().to_owned()] {
        let page = Browser::at(&app.address).get(&format!("/orders/{guess}"));
        assert_eq!(page.status, 404, "{guess}");
        assert!(page.body.contains("This link opens no order"));
    }
}

#[derive(diesel::QueryableByName)]
struct Value {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

fn product_id(app: &TestApp, sku: &str) -> String {
    app.get(&format!("/api/products?q={sku}")).json()["items"][0]["id"].as_str().unwrap().to_owned()
}

#[test]
fn shop_forms_without_the_shoppers_own_token_change_nothing() {
    let app = TestApp::spawn();
    let id = app.product_with_stock("MUG-001", 1290, 10);
    let mut victim = shopper(&app);
    add_to_cart(&mut victim, "MUG-001", 1);
    let victims_token = extract_csrf_token(&victim.get("/cart").body);

    // No token, a made-up one, another shopper's, and the victim's token without the victim's cookie.
    let mut attacker = shopper(&app);
    let attackers_token = extract_csrf_token(&attacker.get("/products/MUG-001").body);
    let attempts: Vec<(Browser, String)> = vec![
        (victim.with_copied_cookies(), String::new()),
        (victim.with_copied_cookies(), "x".repeat(43)),
        (victim.with_copied_cookies(), attackers_token.clone()),
        (Browser::at(&app.address), victims_token.clone()),
    ];
    for (mut browser, token) in attempts {
        for (path, fields) in [
            ("/cart/items".to_owned(), vec![("product_id", id.as_str()), ("quantity", "5")]),
            (format!("/cart/lines/{id}"), vec![("quantity", "9")]),
            (format!("/cart/lines/{id}/remove"), vec![]),
            ("/checkout".to_owned(), checkout_fields("", "4242424242424242")[1..].to_vec()),
        ] {
            let mut all = vec![("csrf_token", token.as_str())];
            all.extend(fields);
            let answer = browser.post_form(&path, &all);
            assert_eq!(answer.status, 403, "{path} with {token:?}: {}", answer.body);
            assert!(answer.body.contains("This form has expired or did not come from this shop"));
            assert!(answer.body.contains("class=\"shop-header\""), "in the shop's layout");
        }
    }
    assert_eq!(app.count("SELECT sum(quantity) FROM cart_lines"), 1);
    assert_eq!(app.count("SELECT count(*) FROM carts"), 1);
    assert_eq!(app.count("SELECT count(*) FROM orders"), 0);
}

#[test]
fn checkout_attempts_are_limited_per_address() {
    // Behind a balancer on this machine: the client is who X-Forwarded-For names.
    let app = TestApp::spawn_with(|config| {
        config.shop.checkouts_per_minute = 3;
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    });
    app.product_with_stock("MUG-001", 1290, 10);
    let mut browser = shopper(&app);
    add_to_cart(&mut browser, "MUG-001", 1);
    let token = extract_csrf_token(&browser.get("/checkout").body);
    let mut fields = checkout_fields(&token, "4000000000000002");
    fields[2] = ("email", "not an address");
    let from = |address: &'static str| [("X-Forwarded-For", address)];
    for _ in 0..3 {
        assert_eq!(browser.post_form_with("/checkout", &from("203.0.113.7"), &fields).status, 422);
    }
    let good = checkout_fields(&token, "4242424242424242");
    let limited = browser.post_form_with("/checkout", &from("203.0.113.7"), &good);
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_eq!(limited.header("retry-after"), Some("60"));
    assert!(text_of(&limited.body).contains("Too many checkout attempts from your address"));
    assert!(limited.body.contains("class=\"shop-header\""));
    assert_eq!(app.count("SELECT count(*) FROM orders"), 0);
    // Another address is not held back by that one's attempts.
    let other = browser.post_form_with("/checkout", &from("203.0.113.8"), &good);
    assert_eq!(other.status, 303, "{}", other.body);
}

#[test]
fn a_double_submit_gives_one_order_and_one_charge() {
    let app = TestApp::spawn();
    app.product_with_stock("MUG-001", 1290, 10);
    for round in 0..3 {
        let mut browser = shopper(&app);
        add_to_cart(&mut browser, "MUG-001", 1);
        let token = extract_csrf_token(&browser.get("/checkout").body);
        let answers = concurrently(4, |_| {
            let mut copy = browser.with_copied_cookies();
            copy.post_form("/checkout", &checkout_fields(&token, "4242424242424242"))
        });
        let locations: Vec<_> = answers.iter().map(|answer| answer.header("location").map(str::to_owned)).collect();
        assert!(answers.iter().all(|answer| answer.status == 303), "round {round}: {answers:?}");
        assert!(locations.windows(2).all(|pair| pair[0] == pair[1]), "one order for all: {locations:?}");
        assert_eq!(app.count("SELECT count(*) FROM orders"), round + 1);
        assert_eq!(app.count("SELECT count(*) FROM payments"), round + 1);
    }
}

#[test]
fn checkout_keeps_the_cart_open_and_says_how_many_are_left() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 5);
    app.product_with_stock("LAMP-01", 4500, 5);
    let mut browser = shopper(&app);
    add_to_cart(&mut browser, "MUG-001", 3);
    add_to_cart(&mut browser, "LAMP-01", 1);
    // Someone else buys while the mugs sit in the cart.
    app.placed_order("bob@example.com", &[(&mug, 4)]);

    let refused = checkout(&mut browser, "4242424242424242");
    assert_eq!(refused.status, 409, "{}", refused.body);
    let text = text_of(&refused.body);
    assert!(text.contains("3 × Product MUG-001") && text.contains("Only 1 left. Lower the quantity"), "{text}");
    assert!(text.contains("Nothing was ordered or charged"), "{text}");
    assert_eq!(app.count("SELECT count(*) FROM orders"), 1, "only Bob's");
    assert_eq!(app.stock(&mug)["available"], 1);
    // The cart is as it was, and says the same.
    assert!(text_of(&browser.get("/cart").body).contains("Only 1 left"));
}

#[test]
fn the_cart_shows_current_prices_and_what_is_no_longer_sold() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let lamp = app.product_with_stock("LAMP-01", 4500, 10);
    let mut browser = shopper(&app);
    add_to_cart(&mut browser, "MUG-001", 2);
    add_to_cart(&mut browser, "LAMP-01", 1);
    app.admin_patch_json(&format!("/api/products/{mug}"), &serde_json::json!({"price_minor": 1490})).ok_json(200);
    app.admin_patch_json(&format!("/api/products/{lamp}"), &serde_json::json!({"active": false})).ok_json(200);
    let cart = text_of(&browser.get("/cart").body);
    assert!(cart.contains("€14.90 each · €29.80 The price has changed: it was €12.90 when you added it."), "{cart}");
    assert!(cart.contains("This product is no longer sold. Remove it to check out."), "{cart}");

    // Lines change and go.
    let token = extract_csrf_token(&browser.get("/cart").body);
    assert_eq!(
        browser.post_form(&format!("/cart/lines/{mug}"), &[("csrf_token", &token), ("quantity", "5")]).status,
        303
    );
    assert_eq!(browser.post_form(&format!("/cart/lines/{lamp}/remove"), &[("csrf_token", &token)]).status, 303);
    let cart = text_of(&browser.get("/cart").body);
    assert!(cart.contains("Total €74.50") && !cart.contains("LAMP-01"), "{cart}");
    assert_eq!(
        browser.post_form(&format!("/cart/lines/{mug}"), &[("csrf_token", &token), ("quantity", "0")]).status,
        303
    );
    assert!(text_of(&browser.get("/cart").body).contains("Your cart is empty"));
}

#[test]
fn a_cart_survives_a_restart() {
    let first = TestApp::spawn();
    first.product_with_stock("MUG-001", 1290, 10);
    let mut browser = shopper(&first);
    add_to_cart(&mut browser, "MUG-001", 2);
    let second = first.spawn_beside(|_| {});
    drop(first);
    let mut browser = browser.moved_to(&second.address);
    let cart = browser.get("/cart");
    assert!(text_of(&cart.body).contains("Total €25.80"), "{}", cart.body);
    // Its forms still work: the key behind their tokens is the database's, not the process's.
    let paid = checkout(&mut browser, "4242424242424242");
    assert_eq!(paid.status, 303, "{}", paid.body);
}

#[test]
fn idle_carts_are_removed_and_recent_ones_kept() {
    let app = TestApp::spawn();
    app.product_with_stock("MUG-001", 1290, 10);
    let (mut old, mut recent) = (shopper(&app), shopper(&app));
    add_to_cart(&mut old, "MUG-001", 1);
    add_to_cart(&mut recent, "MUG-001", 1);
    let mut conn = app.connect();
    use diesel::prelude::*;
    diesel::sql_query(
        "UPDATE carts SET updated_at = now() - interval '31 days' WHERE id = (SELECT min(id::text)::uuid FROM carts)",
    )
    .execute(&mut conn)
    .unwrap();
    let removed = agora::storefront::remove_idle_carts(&mut conn, Duration::from_secs(30 * 86_400)).unwrap();
    assert_eq!(removed, 1);
    assert_eq!(app.count("SELECT count(*) FROM carts"), 1);
    assert_eq!(app.count("SELECT count(*) FROM cart_lines"), 1);
}

#[test]
fn the_grid_searches_filters_sorts_and_pages() {
    let app = TestApp::spawn();
    for n in 0..15 {
        app.product_with_stock(&format!("ITEM-{n:02}"), 1000 + 100 * (15 - n as i64), if n == 3 { 0 } else { 20 });
    }
    let mut conn = app.connect();
    use diesel::prelude::*;
    diesel::sql_query(
        "WITH kitchen AS (INSERT INTO categories (slug, name) VALUES ('kitchen', 'Kitchen') RETURNING id)
         UPDATE products SET category_id = (SELECT id FROM kitchen) WHERE sku IN ('ITEM-01', 'ITEM-02')",
    )
    .execute(&mut conn)
    .unwrap();
    let mut browser = shopper(&app);

    let first = browser.get("/");
    assert_eq!(first.status, 200);
    assert_eq!(first.body.matches("class=\"card\"").count(), 12);
    assert!(text_of(&first.body).contains("Product ITEM-03 €22.00 Out of stock"));
    let next =
        first.body.split("rel=\"next\"").next().unwrap().rsplit("href=\"").next().unwrap().split('"').next().unwrap();
    let next = next.replace("&amp;", "&");
    let second = browser.get(&next);
    assert_eq!(second.body.matches("class=\"card\"").count(), 3, "{}", second.body);
    assert!(second.body.contains("ITEM-14") && !second.body.contains("rel=\"next\""));

    let first_card = |path: &str| {
        let text = text_of(&shopper(&app).get(path).body);
        let from = text.find("Product ITEM-").unwrap();
        text[from..from + "Product ITEM-00".len()].to_owned()
    };
    assert_eq!(first_card("/?sort=price"), "Product ITEM-14");
    assert_eq!(first_card("/?sort=price-desc"), "Product ITEM-00");
    assert_eq!(first_card("/?sort=name"), "Product ITEM-00");

    let kitchen = browser.get("/?category=kitchen");
    assert_eq!(kitchen.body.matches("class=\"card\"").count(), 2);
    assert!(kitchen.body.contains("<a href=\"/?category=kitchen\" aria-current=\"page\">Kitchen</a>"));
    assert_eq!(browser.get("/?category=garden").status, 404);
    let found = browser.get("/?q=item-1");
    assert_eq!(found.body.matches("class=\"card\"").count(), 5, "ITEM-10 to ITEM-14");
}

#[test]
fn shop_pages_carry_validators_and_say_how_long_to_keep_them() {
    let app = TestApp::spawn();
    app.product_with_stock("MUG-001", 1290, 10);
    let mut browser = shopper(&app);
    let grid = browser.get("/");
    assert_eq!(grid.header("cache-control"), Some("no-cache"));
    assert!(!grid.headers.contains_key("set-cookie"), "the grid is the same for every shopper");
    let etag = grid.header("etag").unwrap().to_owned();
    let again = app.request("GET", "/", &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    let product = browser.get("/products/MUG-001");
    assert_eq!(product.header("cache-control"), Some("private, no-cache"));
    assert!(product.header("etag").is_some());
    let cookie = product.headers.get("set-cookie").and_then(|cookies| cookies.first()).unwrap().clone();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "not over plain HTTP unless configured: {cookie}");
    assert_eq!(browser.get("/cart").header("cache-control"), Some("no-store"));

    let secure = TestApp::spawn_with(|config| config.cookie_secure = true);
    secure.product_with_stock("MUG-001", 1290, 10);
    let cookie = shopper(&secure).get("/products/MUG-001").headers["set-cookie"][0].clone();
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[test]
fn availability_on_shop_pages_is_never_older_than_its_bound() {
    let app = TestApp::spawn_with(|config| config.shop.availability_max_age = Duration::from_millis(300));
    let mug = app.product_with_stock("MUG-001", 1290, 4);
    let mut browser = shopper(&app);
    assert!(text_of(&browser.get("/products/MUG-001").body).contains("Only 4 left"));
    assert!(text_of(&browser.get("/").body).contains("Only 4 left"));
    app.placed_order("bob@example.com", &[(&mug, 4)]);
    eventually("the pages say the mug is sold out", Duration::from_secs(2), || {
        let product = browser.get("/products/MUG-001").body;
        text_of(&product).contains("Out of stock")
            && product.contains("disabled>Add to cart")
            && text_of(&browser.get("/").body).contains("Out of stock")
    });
}

#[test]
fn hostile_input_gets_a_readable_page_in_the_shops_layout() {
    let app = TestApp::spawn();
    let id = app.product_with_stock("MUG-001", 1290, 10);
    let mut browser = shopper(&app);
    add_to_cart(&mut browser, "MUG-001", 1);
    let token = extract_csrf_token(&browser.get("/cart").body);
    let long = "x".repeat(5000);
    let hostile =
        ["<script>alert(1)</script>", "'; DROP TABLE carts; --", "\u{0}", "%00", "Ada\r\nBcc: x@evil.example", &long];

    let mut gets: Vec<String> = vec![
        "/products/..%2F..%2Fetc".into(),
        "/products/mug-001".into(),
        "/orders/short".into(),
        "/orders/%3Cscript%3E".into(),
        format!("/orders/{}", "a".repeat(43)),
        "/?sort=%27".into(),
        "/?after=%%%".into(),
        "/?after=bm90IGEgY3Vyc29y".into(),
        "/?category=%3Cb%3E".into(),
        format!("/?q={}", "q".repeat(101)),
        "/?q=%01".into(),
    ];
    gets.extend(hostile.iter().map(|text| format!("/?q={}", urlencode(text))));
    for path in &gets {
        let page = browser.get(path);
        assert!((200..500).contains(&page.status), "{path}: {}", page.status);
        if page.status >= 400 {
            assert!(page.header("content-type").unwrap().starts_with("text/html"), "{path}");
            assert!(page.body.contains("class=\"shop-header\""), "{path}: {}", page.body);
        }
        assert!(!page.body.contains("<script>"), "{path} reflected markup");
    }

    let mut posts: Vec<(String, Vec<(&str, &str)>)> = Vec::new();
    for text in hostile {
        posts.push(("/cart/items".into(), vec![("product_id", text), ("quantity", "1")]));
        posts.push(("/cart/items".into(), vec![("product_id", &id), ("quantity", text)]));
        posts.push((format!("/cart/lines/{id}"), vec![("quantity", text)]));
        posts.push((format!("/cart/lines/{}/remove", urlencode(text)), vec![]));
        for field in ["name", "email", "card_number", "exp_month", "exp_year", "cvc"] {
            // A card that fails the Luhn check: however the hostile field is judged, nothing is bought.
            let mut fields: Vec<(&str, &str)> = checkout_fields("", "4242424242424241")[1..].to_vec();
            fields.iter_mut().filter(|(name, _)| *name == field).for_each(|pair| pair.1 = text);
            posts.push(("/checkout".into(), fields));
        }
    }
    for (path, fields) in posts {
        let mut all = vec![("csrf_token", token.as_str())];
        all.extend(fields.iter().copied());
        let answer = browser.post_form(&path, &all);
        assert!((400..500).contains(&answer.status), "{path} {fields:?}: {} {}", answer.status, answer.body);
        assert!(answer.header("content-type").unwrap().starts_with("text/html"), "{path}");
        assert!(answer.body.contains("class=\"shop-header\""), "{path}: {}", answer.body);
        assert!(!answer.body.contains("<script>"), "{path} reflected markup");
    }
    // A form body that is not a form, and one too large.
    let raw = app.post_raw("/checkout", "application/x-www-form-urlencoded", &"a=".repeat(20_000));
    assert!((400..500).contains(&raw.status));
    assert_eq!(app.count("SELECT count(*) FROM orders"), 0);
    assert_eq!(app.count("SELECT sum(quantity) FROM cart_lines"), 1);
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("v", text)]).unwrap().trim_start_matches("v=").to_owned()
}

#[test]
fn an_out_of_stock_product_cannot_be_added() {
    let app = TestApp::spawn();
    app.product_with_stock("MUG-001", 1290, 0);
    let page = shopper(&app).get("/products/MUG-001");
    assert!(text_of(&page.body).contains("Out of stock"));
    assert!(page.body.contains("disabled>Add to cart"), "{}", page.body);
}

#[test]
fn many_shoppers_at_once_each_get_their_own_cart() {
    let app = TestApp::spawn();
    app.product_with_stock("MUG-001", 1290, 100);
    let carts = concurrently(6, |n| {
        let mut browser = shopper(&app);
        add_to_cart(&mut browser, "MUG-001", n as i32 + 1);
        text_of(&browser.get("/cart").body)
    });
    for (n, cart) in carts.iter().enumerate() {
        let cents = 1290 * (n + 1);
        let total = format!("Total €{}.{:02}", cents / 100, cents % 100);
        assert!(cart.contains(&total), "shopper {n}: {cart}");
    }
    assert_eq!(app.count("SELECT count(*) FROM carts"), 6);
}

#[test]
fn stock_held_by_the_carts_own_unpaid_order_is_not_counted_against_it() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 3);
    let mut browser = shopper(&app);
    add_to_cart(&mut browser, "MUG-001", 3);
    // Declined: the order waits, holding all three.
    assert_eq!(checkout(&mut browser, "4000000000000002").status, 402);
    assert_eq!(app.stock(&mug)["available"], 0);
    assert!(!text_of(&browser.get("/cart").body).contains("Out of stock"));

    // The shopper takes one fewer; the unpaid order gives way to the cart as it is now.
    let token = extract_csrf_token(&browser.get("/cart").body);
    let changed = browser.post_form(&format!("/cart/lines/{mug}"), &[("csrf_token", &token), ("quantity", "2")]);
    assert_eq!(changed.status, 303);
    let cart = text_of(&browser.get("/cart").body);
    assert!(!cart.contains("Out of stock") && !cart.contains(" left"), "{cart}");
    let checkout_page = text_of(&browser.get("/checkout").body);
    assert!(!checkout_page.contains("waits for payment"), "that order is not this cart's any more: {checkout_page}");
    assert_eq!(checkout(&mut browser, "4242424242424242").status, 303);
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE status = 'cancelled'"), 1);
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE status = 'paid' AND total_minor = 2580"), 1);
    assert_eq!(app.stock(&mug)["available"], 1);
}
