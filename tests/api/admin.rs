use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::helpers::{ADMIN_PASSWORD, TestApp};

#[test]
fn an_unauthenticated_admin_page_redirects_to_the_login_page() {
    let app = TestApp::spawn();
    let mut browser = app.browser();
    let response = browser.get("/admin/products?q=mug");
    assert_eq!(response.status, 303);
    assert_eq!(response.header("location"), Some("/admin/login?next=%2Fadmin%2Fproducts%3Fq%3Dmug"));
    let login = browser.get("/admin/login");
    assert_eq!(login.status, 200);
    assert!(login.body.contains("name=\"password\""));
}

#[test]
fn signing_in_opens_the_admin_shell_with_every_section() {
    let app = TestApp::spawn();
    let mut browser = app.browser();
    let response = browser.sign_in("admin", ADMIN_PASSWORD);
    assert_eq!(response.status, 303, "{}", response.body);
    assert_eq!(response.header("location"), Some("/admin"));
    let cookies = response.headers.get("set-cookie").expect("cookies");
    let cookie = cookies.iter().find(|cookie| cookie.starts_with("agora_admin=")).expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");

    let shell = browser.get("/admin");
    assert_eq!(shell.status, 200);
    for (label, href) in [
        ("Products", "/admin/products"),
        ("Categories", "/admin/categories"),
        ("Inventory", "/admin/inventory"),
        ("Orders", "/admin/orders"),
        ("Payments", "/admin/payments"),
        ("Notifications", "/admin/notifications"),
        ("Events", "/admin/events"),
        ("Architecture", "/admin/architecture"),
    ] {
        assert!(shell.body.contains(&format!("<a href=\"{href}\">{label}</a>")), "no link to {label}");
    }
    assert!(shell.body.contains("href=\"/static/admin.css\""));
    assert!(shell.body.contains("The last 24 hours") && shell.body.contains("Dead events"), "the dashboard's figures");
    assert!(!shell.body.contains("http://") && !shell.body.contains("https://"), "no external resources");
}

#[test]
fn admin_errors_are_readable_pages() {
    let app = TestApp::spawn();
    let mut browser = app.signed_in_browser();
    // Inside the layout: the menu, the signed-in admin, and a way back to the list the page is in.
    for (path, back) in [
        ("/admin/nowhere", None),
        ("/admin/orders/not-an-id", Some("<a href=\"/admin/orders\">Back to Orders</a>")),
        (
            "/admin/products/6f1d6f5e-0000-4000-8000-000000000000",
            Some("<a href=\"/admin/products\">Back to Products</a>"),
        ),
    ] {
        let page = browser.get(path);
        assert_eq!(page.status, 404, "{path}");
        assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"), "{path}");
        assert!(
            page.body.contains("Not found") && page.body.contains("<a href=\"/admin\">Dashboard</a>"),
            "{path}: {}",
            page.body
        );
        assert!(page.body.contains("aria-label=\"Sections\"") && page.body.contains("Sign out"), "{path}: the menu");
        if let Some(back) = back {
            assert!(page.body.contains(back), "{path}: {}", page.body);
        }
    }
    let page = browser.get("/admin/orders?page=garbage");
    assert_eq!(page.status, 400);
    assert!(page.body.contains("must be a page number") && page.body.contains("Back to Orders"), "{}", page.body);
    let page = browser.get("/admin/orders?sort=password");
    assert_eq!(page.status, 400);
    assert!(page.body.contains("must be one of placed, number, total, customer"), "{}", page.body);
}

#[test]
fn signing_in_returns_to_the_page_that_was_asked_for() {
    let app = TestApp::spawn();
    let mut browser = app.browser();
    let response = browser.submit(
        "/admin/login?next=%2Fadmin%2Forders",
        "/admin/login",
        &[("username", "admin"), ("password", ADMIN_PASSWORD), ("next", "/admin/orders")],
    );
    assert_eq!(response.header("location"), Some("/admin/orders"));

    let mut other = app.browser();
    let response = other.submit(
        "/admin/login",
        "/admin/login",
        &[("username", "admin"), ("password", ADMIN_PASSWORD), ("next", "https://evil.example/")],
    );
    assert_eq!(response.header("location"), Some("/admin"), "never redirects off-site");
}

#[test]
fn a_wrong_password_gets_a_clear_message_and_no_session() {
    let app = TestApp::spawn();
    let mut browser = app.browser();
    let response = browser.sign_in("admin", "not the password");
    assert_eq!(response.status, 401);
    assert!(response.body.contains("Unknown user name or wrong password."), "{}", response.body);
    assert_eq!(browser.get("/admin").status, 303, "still signed out");

    let response = browser.sign_in("nobody", "whatever");
    assert_eq!(response.status, 401);
    assert!(response.body.contains("Unknown user name or wrong password."));
}

#[test]
fn repeated_failures_are_rate_limited_even_with_the_right_password() {
    let app = TestApp::spawn();
    let mut browser = app.browser();
    for _ in 0..5 {
        assert_eq!(browser.sign_in("admin", "wrong guess").status, 401);
    }
    let response = browser.sign_in("admin", ADMIN_PASSWORD);
    assert_eq!(response.status, 429, "{}", response.body);
    assert!(response.body.contains("Too many failed sign-ins. Try again in"), "{}", response.body);
    assert_eq!(browser.get("/admin").status, 303);

    // The limit is kept in the database, not in one process's memory.
    let failures: i64 = app
        .connect()
        .transaction(|conn| {
            diesel::sql_query("SELECT count(*) AS count FROM admin_login_failures WHERE username = $1")
                .bind::<Text, _>("admin")
                .get_result::<Count>(conn)
        })
        .unwrap()
        .count;
    assert_eq!(failures, 5);
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

#[test]
fn a_form_post_without_the_csrf_token_is_refused() {
    let app = TestApp::spawn();
    let mut browser = app.browser();
    browser.get("/admin/login");
    let response = browser.post_form("/admin/login", &[("username", "admin"), ("password", ADMIN_PASSWORD)]);
    assert_eq!(response.status, 400, "a form without the token field cannot even be read");

    let response = browser
        .post_form("/admin/login", &[("csrf_token", "forged"), ("username", "admin"), ("password", ADMIN_PASSWORD)]);
    assert_eq!(response.status, 403);
    assert!(response.body.contains("did not come from Agora"), "{}", response.body);
    assert_eq!(browser.get("/admin").status, 303, "not signed in");
}

#[test]
fn a_csrf_token_from_another_session_is_refused() {
    let app = TestApp::spawn();
    let mut attacker = app.browser();
    let attackers_token = attacker.csrf_token("/admin/login");

    let mut victim = app.signed_in_browser();
    let response = victim.post_form("/admin/logout", &[("csrf_token", &attackers_token)]);
    assert_eq!(response.status, 403);
    assert_eq!(victim.get("/admin").status, 200, "still signed in");
}

#[test]
fn signing_out_ends_the_session() {
    let app = TestApp::spawn();
    let mut browser = app.signed_in_browser();
    assert_eq!(browser.get("/admin").status, 200);
    let response = browser.submit("/admin", "/admin/logout", &[]);
    assert_eq!(response.status, 303);
    assert_eq!(response.header("location"), Some("/admin/login"));
    assert!(!browser.has_session());
    assert_eq!(browser.get("/admin").status, 303);
}

#[test]
fn a_tampered_session_cookie_is_not_accepted() {
    let app = TestApp::spawn();
    let mut browser = app.signed_in_browser();
    let page = browser.get("/admin");
    assert_eq!(page.status, 200);

    let agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().new_agent();
    let forged = r#"agora_admin={"user_id":"\"00000000-0000-0000-0000-000000000000\"","username":"\"admin\"","signed_in_at":"9999999999"}"#;
    let response = agent.get(&app.url("/admin")).header("Cookie", forged).call().unwrap();
    assert_eq!(response.status().as_u16(), 303);
}

#[test]
fn admin_passwords_are_stored_as_argon2_hashes() {
    let app = TestApp::spawn();
    #[derive(QueryableByName)]
    struct Hash {
        #[diesel(sql_type = Text)]
        password_hash: String,
    }
    let stored = diesel::sql_query("SELECT password_hash FROM admin_users WHERE username = 'admin'")
        .get_result::<Hash>(&mut app.connect())
        .unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$"), "{}", stored.password_hash);
    assert!(!stored.password_hash.contains(ADMIN_PASSWORD));
}
