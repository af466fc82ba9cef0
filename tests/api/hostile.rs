//! What a fuzzer or an attacker sends: control characters in every text, numbers at the edges,
//! wrong methods, HEAD, oversized addresses. Each gets a 4xx with a body and changes nothing.

use diesel::prelude::*;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp, order_body};

fn auth() -> String {
    format!("Bearer {ADMIN_TOKEN}")
}

/// Row counts of everything a refused request might have written.
fn rows(app: &TestApp) -> [i64; 4] {
    [
        app.count("SELECT count(*) FROM products"),
        app.count("SELECT count(*) FROM orders"),
        app.count("SELECT count(*) FROM customers"),
        app.count("SELECT count(*) FROM inventory_movements"),
    ]
}

#[test]
fn a_nul_byte_or_a_control_character_in_any_text_is_a_422_naming_the_field() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let before = rows(&app);
    let product = |field: &str, value: &str| {
        let mut body = json!({"sku": "NEW-001", "name": "Mug", "description": "A mug", "price_minor": 100});
        body[field] = value.into();
        body
    };

    for (hostile, single_line_only) in [("nul\u{0}byte", false), ("bell\u{7}", false), ("two\r\nlines", true)] {
        let mut cases: Vec<(String, Value, &str)> = vec![
            ("/api/products".into(), product("name", hostile), "name"),
            ("/api/products".into(), product("sku", hostile), "sku"),
            ("/api/products".into(), product("category", hostile), "category"),
            ("/api/categories".into(), json!({"slug": hostile, "name": "Kitchen"}), "slug"),
            ("/api/categories".into(), json!({"slug": "kitchen", "name": hostile}), "name"),
        ];
        if !single_line_only {
            cases.push(("/api/products".into(), product("description", hostile), "description"));
            cases.push((format!("/api/inventory/{mug}/adjustments"), json!({"delta": 1, "reason": hostile}), "reason"));
        }
        for (path, body, field) in cases {
            let problem = app.admin_post_json(&path, &body).problem(422);
            assert_eq!(problem["errors"][0]["field"], field, "{path} {body}");
        }
        let response = app.admin_patch_json(&format!("/api/products/{mug}"), &json!({"name": hostile}));
        assert_eq!(response.problem(422)["errors"][0]["field"], "name");
        let response = app.admin_patch_json(&format!("/api/products/{mug}"), &json!({"category": hostile}));
        assert_eq!(response.problem(422)["errors"][0]["field"], "category");
        let problem = app
            .get(&format!(
                "/api/products?category={}",
                hostile.replace('\u{0}', "%00").replace('\u{7}', "%07").replace("\r\n", "%0D%0A")
            ))
            .problem(422);
        assert_eq!(problem["errors"][0]["field"], "category");

        let mut order = order_body("ada@example.com", &[(&mug, 1)]);
        order["customer"]["name"] = hostile.into();
        let problem = app.post_json("/api/orders", &order).problem(422);
        assert_eq!(problem["errors"][0]["field"], "customer.name", "{hostile:?}");
        let mut order = order_body("ada@example.com", &[(&mug, 1)]);
        order["customer"]["email"] = format!("ada{hostile}@example.com").into();
        assert_eq!(app.post_json("/api/orders", &order).problem(422)["errors"][0]["field"], "customer.email");
    }

    // Line breaks and tabs belong in multi-line text.
    let created = app.admin_post_json("/api/products", &product("description", "Line one\r\n\tLine two")).ok_json(201);
    assert_eq!(created["description"], "Line one\r\n\tLine two");
    let before = [before[0] + 1, before[1], before[2], before[3]];

    // Query parameters and cursors.
    let problem = app.get("/api/products?q=%00").problem(422);
    assert_eq!(problem["errors"][0]["field"], "q");
    let problem = app.admin_get("/api/orders?email=a%00b").problem(422);
    assert_eq!(problem["errors"][0]["field"], "email");
    app.get("/api/products?cursor=%00").problem(400);
    // A cursor of valid base64url that decodes to text with a NUL byte in it.
    app.get("/api/products?cursor=WyJhAGIiLCI2ZjFkNmY1ZS0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDAiXQ").problem(400);
    let key = app.post_json_with(
        "/api/orders",
        &[("Idempotency-Key", "has a space")],
        &order_body("a@example.com", &[(&mug, 1)]),
    );
    key.problem(400);

    assert_eq!(rows(&app), before, "refused requests change nothing");
}

#[test]
fn numbers_are_bounded_as_documented_and_whole_floats_are_whole_numbers() {
    let app = TestApp::spawn();
    let body = |price: Value| json!({"sku": "BIG-001", "name": "Big", "price_minor": price});
    let problem = app.admin_post_json("/api/products", &body(json!(1_000_000_001))).problem(422);
    assert_eq!(problem["errors"][0]["field"], "price_minor");
    app.admin_post_json("/api/products", &body(json!(i64::MAX))).problem(422);
    app.admin_post_json("/api/products", &body(json!(12.5))).problem(400);
    app.admin_post_json("/api/products", &body(json!("12"))).problem(400);
    let created = app.admin_post_json("/api/products", &body(json!(1_000_000_000.0))).ok_json(201);
    assert_eq!(created["price_minor"], 1_000_000_000);

    let id = created["id"].as_str().unwrap();
    let problem =
        app.admin_post_json(&format!("/api/inventory/{id}/adjustments"), &json!({"delta": 1_000_001, "reason": "x"}));
    assert_eq!(problem.problem(422)["errors"][0]["field"], "delta");
    let stock = app
        .admin_post_json(&format!("/api/inventory/{id}/adjustments"), &json!({"delta": -0.0 + 5.0, "reason": "count"}));
    assert_eq!(stock.ok_json(201)["on_hand"], 5);
    app.get("/api/products?limit=5.0").ok_json(200);
    assert_eq!(app.get("/api/products?limit=101").problem(422)["errors"][0]["field"], "limit");
}

#[test]
fn sums_over_stored_data_never_overflow_into_a_500() {
    let app = TestApp::spawn();
    let product = app.product_with_stock("MAX-001", 1_000_000_000, 10);
    let order = app.placed_order("ada@example.com", &[(&product, 1)]);
    let id = order["id"].as_str().unwrap();
    app.pay(id, "4242424242424242").ok_json(201);
    // Rows no request could write any more (prices are bounded now), as an older version or a
    // hand-made fix might have left them: totals whose sum is far beyond a bigint.
    let mut conn = app.connect();
    diesel::sql_query(
        "INSERT INTO orders (id, customer_id, status, total_minor, currency)
         SELECT gen_random_uuid(), customer_id, 'paid', 9223372036854775807, currency FROM orders LIMIT 1",
    )
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query("INSERT INTO orders (id, customer_id, status, total_minor, currency) SELECT gen_random_uuid(), customer_id, 'paid', total_minor, currency FROM orders WHERE total_minor = 9223372036854775807").execute(&mut conn).unwrap();

    let mut browser = app.signed_in_browser();
    let dashboard = browser.get("/admin");
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    assert!(
        dashboard.body.contains("€184,467,440,747,095,516.14"),
        "the revenue, summed beyond i64: {}",
        dashboard.body
    );
    for path in ["/admin/orders", "/admin/payments", "/admin/architecture"] {
        let page = browser.get(path);
        assert!(page.status < 500, "{path}: {}", page.status);
    }
    app.admin_get("/api/orders").ok_json(200);
}

#[test]
fn a_known_path_with_a_wrong_method_is_a_405_naming_the_allowed_ones() {
    let app = TestApp::spawn();
    let response = app.request("DELETE", "/api/products", &[("Authorization", &auth())]);
    response.problem(405);
    assert_eq!(response.header("allow"), Some("GET, HEAD, OPTIONS, POST"));
    let response = app.request("TRACE", "/healthz", &[]);
    response.problem(405);
    assert_eq!(response.header("allow"), Some("GET, HEAD, OPTIONS"));
    let response = app.request("PUT", "/api/orders/6f1d6f5e-0000-4000-8000-000000000000/cancel", &[]);
    assert_eq!(
        response.problem(405)["detail"],
        "/api/orders/6f1d6f5e-0000-4000-8000-000000000000/cancel takes OPTIONS, POST, not PUT."
    );
    let options = app.request("OPTIONS", "/api/products/6f1d6f5e-0000-4000-8000-000000000000", &[]);
    assert_eq!(options.status, 204);
    assert_eq!(options.header("allow"), Some("GET, HEAD, OPTIONS, PATCH"));
    // Unknown paths stay 404.
    app.request("DELETE", "/api/nothing-here", &[]).problem(404);
}

#[test]
fn an_admin_page_asked_with_a_wrong_method_is_a_405_page_naming_the_allowed_ones() {
    let app = TestApp::spawn();
    let product = app.product_with_stock("MUG-001", 1290, 10);
    let order = app.placed_order("ada@example.com", &[(&product, 1)]);
    let order = order["id"].as_str().unwrap();
    let mut browser = app.signed_in_browser();
    let token = browser.csrf_token("/admin");
    let cookies = browser.cookie_header();
    let ask = |method: &str, path: &str| app.request(method, path, &[("Cookie", &cookies)]);
    for (method, path, allowed) in [
        ("GET", "/admin/logout".to_owned(), "OPTIONS, POST"),
        ("POST", "/admin/orders".to_owned(), "GET, HEAD, OPTIONS"),
        ("POST", "/admin/payments".to_owned(), "GET, HEAD, OPTIONS"),
        ("DELETE", format!("/admin/products/{product}"), "GET, HEAD, OPTIONS, POST"),
        ("PUT", format!("/admin/orders/{order}/cancel"), "GET, HEAD, OPTIONS, POST"),
        ("GET", format!("/admin/inventory/{product}/adjustments"), "OPTIONS, POST"),
        ("PATCH", "/admin".to_owned(), "GET, HEAD, OPTIONS"),
    ] {
        let response = ask(method, &path);
        assert_eq!(response.status, 405, "{method} {path}: {}", response.body);
        assert_eq!(response.header("allow"), Some(allowed), "{method} {path}");
        assert!(response.header("content-type").unwrap().starts_with("text/html"), "{method} {path}");
        assert!(response.body.contains("Method not allowed"), "{method} {path}: {}", response.body);
    }
    // A form post to a page that takes none: refused, nothing done, and the session goes on.
    let posted = browser.post_form("/admin/orders", &[("csrf_token", &token)]);
    assert_eq!(posted.status, 405);
    assert_eq!(browser.get("/admin/orders").status, 200);
    let options = ask("OPTIONS", "/admin/products");
    assert_eq!(options.status, 204);
    assert_eq!(options.header("allow"), Some("GET, HEAD, OPTIONS, POST"));
    // Unknown admin paths stay 404.
    assert_eq!(ask("POST", "/admin/nothing-here").status, 404);
}

#[test]
fn head_works_wherever_get_does() {
    let app = TestApp::spawn();
    let product = app.product_with_stock("MUG-001", 1290, 10);
    let order = app.placed_order("ada@example.com", &[(&product, 1)]);
    let order = order["id"].as_str().unwrap();
    let document = app.get("/api/openapi.json").ok_json(200);
    let mut paths: Vec<String> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, operations)| operations.get("get").is_some())
        .map(|(path, _)| {
            path.replace("{product_id}", &product)
                .replace("{id}", if path.contains("orders") { order } else { &product })
        })
        .collect();
    paths.extend(["/api/openapi.json", "/static/admin.css", "/static/favicon.svg", "/admin/login"].map(String::from));
    paths.extend(admin_pages(&product, order));
    assert!(paths.len() >= 25, "{paths:?}");
    let cookie = app.signed_in_browser().cookie_header();
    for path in paths {
        let headers = [("Authorization", auth()), ("Cookie", cookie.clone())];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
        let get = app.request("GET", &path, &headers);
        let head = app.request("HEAD", &path, &headers);
        assert_eq!(head.status, get.status, "HEAD {path}");
        // The login page sends a signed-in admin on to the dashboard.
        let expected = if path == "/admin/login" { 303 } else { 200 };
        assert_eq!(get.status, expected, "GET {path}: {}", get.body);
        assert!(head.body.is_empty(), "HEAD {path} has no body");
        assert_eq!(head.header("content-type"), get.header("content-type"), "HEAD {path}");
    }
}

#[test]
fn every_error_has_a_body_and_401_names_the_scheme() {
    let app = TestApp::spawn();
    let missing = app.get("/static/nothing.css");
    missing.problem(404);
    let long = format!("/api/products?q={}", "a".repeat(20_000));
    app.get(&long).problem(414);
    let unauthorized = app.get("/api/orders");
    unauthorized.problem(401);
    assert_eq!(unauthorized.header("www-authenticate"), Some("Bearer"));
    let mut browser = app.signed_in_browser();
    let page = browser.get(&format!("/admin/orders?q={}", "a".repeat(20_000)));
    assert_eq!(page.status, 414);
    assert!(page.header("content-type").unwrap().starts_with("text/html") && page.body.contains("URI too long"));
}

#[test]
fn every_admin_page_carries_a_strict_content_security_policy() {
    let app = TestApp::spawn_with(|config| config.cookie_secure = false);
    let mut browser = app.signed_in_browser();
    let product = app.product_with_stock("MUG-001", 1290, 10);
    let order = app.placed_order("ada@example.com", &[(&product, 1)]);
    let order = order["id"].as_str().unwrap();
    let mut pages = admin_pages(&product, order);
    pages.push("/admin/nowhere".into());
    for path in pages {
        let page = browser.get(&path);
        let policy = page.header("content-security-policy").unwrap_or_else(|| panic!("{path}: no CSP"));
        for directive in ["default-src 'none'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        assert!(!page.body.contains(" style=\"") && !page.body.contains("<script"), "{path}: inline style or script");
        assert!(page.header("strict-transport-security").is_none(), "no HSTS over plain HTTP");
    }
    let login = app.browser().get("/admin/login");
    assert!(login.header("content-security-policy").is_some());

    let secure = TestApp::spawn_with(|config| config.cookie_secure = true);
    let login = secure.browser().get("/admin/login");
    assert_eq!(login.header("strict-transport-security"), Some("max-age=31536000"));
}

#[test]
fn hostile_text_in_the_admin_pages_gets_a_readable_4xx_page() {
    let app = TestApp::spawn();
    let product = app.product_with_stock("MUG-001", 1290, 10);
    let before = rows(&app);
    let mut browser = app.signed_in_browser();
    for path in [
        "/admin/products?q=%00",
        "/admin/orders?q=a%00b",
        "/admin/orders?q=x%00@example.com",
        "/admin/orders?status=%00",
        "/admin/inventory?low=%00",
        "/admin/products?cursor=%00",
        "/admin/payments?cursor=%00",
        "/admin/notifications?cursor=%00",
        "/admin/events?cursor=%00",
    ] {
        let page = browser.get(path);
        assert!(page.status < 500, "{path}: {} {}", page.status, page.body);
        assert!(page.header("content-type").unwrap().starts_with("text/html"), "{path}");
    }
    let form = browser.submit(
        "/admin/products/new",
        "/admin/products",
        &[
            ("sku", "NEW-1"),
            ("name", "Mug\u{0}"),
            ("description", "a\u{0}b"),
            ("price", "1.00"),
            ("low_stock_threshold", "5"),
            ("category", "kitchen\u{0}"),
        ],
    );
    assert_eq!(form.status, 422, "{}", form.body);
    let category =
        browser.submit("/admin/categories", "/admin/categories", &[("slug", "a\u{0}b"), ("name", "Kitchen\u{0}")]);
    assert_eq!(category.status, 422, "{}", category.body);
    let adjustment = browser.submit(
        &format!("/admin/inventory/{product}"),
        &format!("/admin/inventory/{product}/adjustments"),
        &[("delta", "1"), ("kind", "adjustment"), ("reason", "nul\u{0}")],
    );
    assert!((400..500).contains(&adjustment.status), "{} {}", adjustment.status, adjustment.body);
    assert_eq!(rows(&app), before, "nothing was stored");

    // Sign-in: a user name no account can have, a `next` that would split the header.
    let mut stranger = app.browser();
    assert_eq!(stranger.sign_in("ad\u{0}min", "whatever").status, 401);
    let token = stranger.csrf_token("/admin/login");
    let signed_in = stranger.post_form(
        "/admin/login",
        &[
            ("csrf_token", &token),
            ("username", "admin"),
            ("password", crate::helpers::ADMIN_PASSWORD),
            ("next", "/admin\r\nSet-Cookie: x=1"),
        ],
    );
    assert_eq!(signed_in.status, 303);
    assert_eq!(signed_in.header("location"), Some("/admin"));
}

#[test]
fn lines_of_one_product_merge_beyond_the_bound_of_a_single_line() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 100, 5000);
    let order = app.placed_order("ada@example.com", &[(&mug, 1000), (&mug, 1000), (&mug, 500)]);
    assert_eq!(order["items"].as_array().unwrap().len(), 1);
    assert_eq!(order["items"][0]["quantity"], 2500);
    assert_eq!(order["total_minor"], 250_000);
    assert_eq!(app.stock(&mug)["reserved"], 2500);
}

/// Every kind of admin page, for the tests that visit them all.
fn admin_pages(product: &str, order: &str) -> Vec<String> {
    vec![
        "/admin".to_owned(),
        "/admin/products".into(),
        format!("/admin/products/{product}"),
        format!("/admin/products/{product}/edit"),
        "/admin/products/new".into(),
        "/admin/categories".into(),
        "/admin/inventory".into(),
        format!("/admin/inventory/{product}"),
        "/admin/orders".into(),
        format!("/admin/orders/{order}"),
        "/admin/payments".into(),
        "/admin/notifications".into(),
        "/admin/events".into(),
        "/admin/architecture".into(),
        "/admin/account".into(),
    ]
}

/// A keyset cursor as the API once made them: base64url JSON, trusted as it came.
fn forged_cursor(json: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

#[test]
fn a_cursor_the_api_did_not_hand_out_is_a_400_whatever_it_decodes_to() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    for n in 0..3 {
        let product = app.create_product(&format!("PEN-00{n}"), 100)["id"].as_str().unwrap().to_owned();
        app.receive_stock(&product, 5);
        app.placed_order(&format!("buyer{n}@example.com"), &[(&product, 1)]);
    }
    let id = "6f1d6f5e-0000-4000-8000-000000000000";
    let forged = [
        // A NUL byte escaped inside the JSON text, which no byte check sees.
        ("/api/products", forged_cursor(&format!(r#"["a\u0000b","{id}"]"#))),
        // A date PostgreSQL cannot store, and one it can, neither handed out.
        ("/api/orders", forged_cursor(&format!(r#"["-5000-01-01T00:00:00Z","{id}"]"#))),
        ("/api/orders", forged_cursor(&format!(r#"["2026-01-01T00:00:00Z","{id}"]"#))),
        ("/api/notifications", forged_cursor(&format!(r#"["-5000-01-01T00:00:00Z","{id}"]"#))),
        (&format!("/api/inventory/{mug}/movements") as &str, forged_cursor("1")),
    ]
    .map(|(path, cursor)| (path.to_owned(), cursor));
    for (path, cursor) in &forged {
        let problem = app.admin_get(&format!("{path}?cursor={cursor}")).problem(400);
        assert_eq!(problem["detail"], "The cursor is not one this API handed out.", "{path}");
    }

    // A cursor handed out works, on its own list only, and not once changed.
    let page = app.admin_get("/api/orders?limit=1").ok_json(200);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    app.admin_get(&format!("/api/orders?limit=1&cursor={cursor}")).ok_json(200);
    app.admin_get(&format!("/api/notifications?limit=1&cursor={cursor}")).problem(400);
    let mut changed = cursor.clone().into_bytes();
    let last = changed.last_mut().unwrap();
    *last = if *last == b'A' { b'B' } else { b'A' };
    let changed = String::from_utf8(changed).unwrap();
    app.admin_get(&format!("/api/orders?limit=1&cursor={changed}")).problem(400);
}

#[test]
fn hand_made_dates_and_path_segments_in_the_admin_pages_are_a_readable_400() {
    let app = TestApp::spawn();
    let mut browser = app.signed_in_browser();
    // Like a mistyped date: said beside its field.
    for path in
        ["/admin/payments?from=-5000-01-01", "/admin/payments?to=-5000-01-01", "/admin/payments?from=0000-12-31"]
    {
        let page = browser.get(path);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(page.body.contains("Type a date between 0001-01-01 and 9999-12-31."), "{path}: {}", page.body);
    }
    let page = browser.get("/admin/events/1/order-e%00mails/retry");
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    let token = browser.csrf_token("/admin/events");
    let posted = browser.post_form("/admin/events/1/order-e%00mails/retry", &[("csrf_token", &token)]);
    assert_eq!(posted.status, 400, "{}", posted.body);
}
