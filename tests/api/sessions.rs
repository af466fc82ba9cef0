//! Sign-in limits under a concurrent attacker, and sessions that end on the server.

use diesel::prelude::*;

use crate::helpers::{ADMIN_PASSWORD, Browser, TestApp, concurrently, extract_csrf_token};

/// A browser on the login form, ready to post a password.
fn at_login_form(app: &TestApp) -> (Browser, String) {
    let mut browser = app.browser();
    let token = browser.csrf_token("/admin/login");
    (browser, token)
}

#[test]
fn a_burst_of_wrong_passwords_gets_at_most_five_checked_and_then_the_right_one_is_refused_too() {
    let app = TestApp::spawn();
    // Sixty clients, each on the login form, post a wrong password at the same moment.
    let clients: Vec<std::sync::Mutex<(Browser, String)>> =
        (0..60).map(|_| std::sync::Mutex::new(at_login_form(&app))).collect();
    let statuses = concurrently(60, |index| {
        let mut client = clients[index].lock().unwrap();
        let (browser, token) = &mut *client;
        let token = token.clone();
        browser
            .post_form("/admin/login", &[("csrf_token", &token), ("username", "admin"), ("password", "wrong guess")])
            .status
    });
    let checked = statuses.iter().filter(|status| **status == 401).count();
    let limited = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!(checked + limited, 60, "{statuses:?}");
    assert!(checked <= 5, "{checked} wrong passwords were checked: {statuses:?}");
    assert_eq!(checked, 5, "the first five are checked: {statuses:?}");
    assert_eq!(app.count("SELECT count(*) FROM admin_login_failures WHERE username = 'admin'"), 5);

    let (mut browser, _) = at_login_form(&app);
    let right = browser.sign_in("admin", ADMIN_PASSWORD);
    assert_eq!(right.status, 429, "the right password is refused while limited");
    let retry_after: i64 = right.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=15 * 60).contains(&retry_after), "{retry_after}");
    assert!(right.body.contains("Too many failed sign-ins"));
    assert!(!browser.get("/admin").header("location").unwrap_or_default().is_empty(), "not signed in");
}

#[test]
fn the_limit_per_client_address_holds_across_user_names() {
    let app = TestApp::spawn();
    let statuses = concurrently(30, |index| {
        let (mut browser, token) = at_login_form(&app);
        let name = format!("user{index}");
        browser.post_form("/admin/login", &[("csrf_token", &token), ("username", &name), ("password", "x")]).status
    });
    assert_eq!(statuses.iter().filter(|status| **status == 401).count(), 20, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|status| **status == 429).count(), 10, "{statuses:?}");
}

#[test]
fn signing_out_ends_the_session_for_a_copied_cookie_too() {
    let app = TestApp::spawn();
    let mut browser = app.signed_in_browser();
    let mut thief = browser.with_copied_cookies();
    assert_eq!(thief.get("/admin").status, 200, "the copy works while the session lives");
    // The table keeps a hash of the key, never the key the cookie carries.
    let cookie = thief.get("/admin/account");
    assert_eq!(cookie.status, 200);
    assert_eq!(app.count("SELECT count(*) FROM admin_sessions WHERE user_id IS NOT NULL"), 1);

    let token = browser.csrf_token("/admin");
    assert_eq!(browser.post_form("/admin/logout", &[("csrf_token", &token)]).status, 303);
    assert_eq!(app.count("SELECT count(*) FROM admin_sessions WHERE user_id IS NOT NULL"), 0);
    let refused = thief.get("/admin");
    assert_eq!(refused.status, 303, "the copied cookie is useless after sign-out");
    assert!(refused.header("location").unwrap().starts_with("/admin/login"));
}

#[test]
fn changing_the_password_ends_every_other_session() {
    let app = TestApp::spawn();
    let mut laptop = app.signed_in_browser();
    let mut phone = app.signed_in_browser();
    let mut thief = phone.with_copied_cookies();

    // Every field's problem at once: wrong current password, too short, not repeated.
    let refused = laptop.submit(
        "/admin/account",
        "/admin/account/password",
        &[("current_password", "not it"), ("new_password", "short"), ("confirm_password", "other")],
    );
    assert_eq!(refused.status, 422);
    for message in ["at least 12 characters", "does not match", "is not your current password"] {
        assert!(refused.body.contains(message), "{message}: {}", refused.body);
    }
    assert!(refused.body.contains("aria-invalid=\"true\""));

    let new_password = "a much longer passphrase";
    let changed = laptop.submit(
        "/admin/account",
        "/admin/account/password",
        &[("current_password", ADMIN_PASSWORD), ("new_password", new_password), ("confirm_password", new_password)],
    );
    assert_eq!(changed.status, 303, "{}", changed.body);
    let account = laptop.get("/admin/account");
    assert_eq!(account.status, 200, "the session that changed it goes on");
    assert!(account.body.contains("Password changed. 1 other session was ended."), "{}", account.body);
    assert_eq!(phone.get("/admin").status, 303, "the other session has ended");
    assert_eq!(thief.get("/admin").status, 303, "and so has its copied cookie");

    assert_eq!(app.browser().sign_in("admin", ADMIN_PASSWORD).status, 401, "the old password no longer works");
    assert_eq!(app.browser().sign_in("admin", new_password).status, 303);
}

#[test]
fn the_account_page_lists_the_sessions_and_ends_one() {
    let app = TestApp::spawn();
    let mut laptop = app.signed_in_browser();
    let mut phone = app.signed_in_browser();
    let page = laptop.get("/admin/account");
    assert_eq!(page.body.matches("/revoke\"").count(), 2, "two sessions: {}", page.body);
    assert!(page.body.contains("Sign out (this session)"));

    let mut conn = app.connect();
    let phone_session: uuid::Uuid = {
        use diesel::sql_types::Uuid as SqlUuid;
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = SqlUuid)]
            id: uuid::Uuid,
        }
        diesel::sql_query("SELECT id FROM admin_sessions WHERE user_id IS NOT NULL ORDER BY created_at DESC LIMIT 1")
            .get_result::<Row>(&mut conn)
            .unwrap()
            .id
    };
    let token = extract_csrf_token(&page.body);
    let ended = laptop.post_form(&format!("/admin/account/sessions/{phone_session}/revoke"), &[("csrf_token", &token)]);
    assert_eq!(ended.status, 303);
    assert!(laptop.get("/admin/account").body.contains("The session was ended."));
    assert_eq!(phone.get("/admin").status, 303);
    assert_eq!(laptop.get("/admin").status, 200);
}

#[test]
fn sessions_end_after_the_idle_and_the_absolute_lifetime() {
    let app = TestApp::spawn();
    let mut idle = app.signed_in_browser();
    let mut old = app.signed_in_browser();
    let mut conn = app.connect();
    // Moving the clock of the rows stands in for waiting half an hour.
    diesel::sql_query(
        "UPDATE admin_sessions SET last_seen_at = now() - interval '31 minutes'
          WHERE id = (SELECT id FROM admin_sessions WHERE user_id IS NOT NULL ORDER BY created_at LIMIT 1)",
    )
    .execute(&mut conn)
    .unwrap();
    assert_eq!(idle.get("/admin").status, 303, "idle for longer than 30 minutes");
    assert_eq!(old.get("/admin").status, 200);
    diesel::sql_query("UPDATE admin_sessions SET created_at = now() - interval '13 hours' WHERE user_id IS NOT NULL")
        .execute(&mut conn)
        .unwrap();
    assert_eq!(old.get("/admin").status, 303, "older than 12 hours, however active");
}
