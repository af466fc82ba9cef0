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

/// Thirty wrong passwords for thirty names, each "from" the address its `X-Forwarded-For` names.
fn wrong_passwords_forwarded_for(app: &TestApp, forwarded_for: impl Fn(usize) -> String) -> Vec<u16> {
    (0..30)
        .map(|index| {
            let (mut browser, token) = at_login_form(app);
            let name = format!("user{index}");
            browser
                .post_form_with(
                    "/admin/login",
                    &[("X-Forwarded-For", &forwarded_for(index))],
                    &[("csrf_token", &token), ("username", &name), ("password", "x")],
                )
                .status
        })
        .collect()
}

#[test]
fn behind_a_trusted_proxy_the_limit_per_address_is_the_forwarded_client_s() {
    let app = TestApp::spawn_with(|config| config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]);
    // Twenty failures from one client limit that client only.
    let statuses = wrong_passwords_forwarded_for(&app, |index| {
        if index < 25 { "198.51.100.1".to_owned() } else { format!("198.51.100.{index}") }
    });
    assert_eq!(statuses[..20], [401; 20], "{statuses:?}");
    assert_eq!(statuses[20..25], [429; 5], "the 21st to 25th from the same client: {statuses:?}");
    assert_eq!(statuses[25..], [401; 5], "other clients behind the same proxy are still checked: {statuses:?}");
}

#[test]
fn from_anyone_else_x_forwarded_for_is_ignored() {
    let app = TestApp::spawn();
    // A client naming a new address each time is still one client.
    let statuses = wrong_passwords_forwarded_for(&app, |index| format!("198.51.100.{index}"));
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

#[test]
fn visitors_who_do_not_sign_in_store_nothing_however_often_they_come() {
    let app = TestApp::spawn();
    // Cookieless visits of the form, as a flood would send them, and failed sign-ins.
    for _ in 0..50 {
        let page = app.get("/admin/login");
        assert_eq!(page.status, 200);
        assert!(page.header("set-cookie").is_some_and(|cookie| cookie.starts_with("agora_login_csrf=")));
    }
    let (mut browser, token) = at_login_form(&app);
    let wrong = browser.post_form("/admin/login", &[("csrf_token", &token), ("username", "admin"), ("password", "x")]);
    assert_eq!(wrong.status, 401);
    assert_eq!(extract_csrf_token(&wrong.body), token, "the form keeps its token");
    assert!(browser.get("/admin/orders").status == 303, "still signed out");
    assert_eq!(app.count("SELECT count(*) FROM admin_sessions"), 0, "no visit stored a session");

    // Signing in stores the one session, and spends the sign-in cookie.
    let signed_in = browser.sign_in("admin", ADMIN_PASSWORD);
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert!(browser.has_session());
    assert!(!browser.cookie_header().contains("agora_login_csrf"), "{}", browser.cookie_header());
    assert_eq!(app.count("SELECT count(*) FROM admin_sessions"), 1);
    assert_eq!(browser.get("/admin/orders").status, 200);
}

#[test]
fn the_sign_in_form_is_refused_without_the_cookie_its_token_came_with() {
    let app = TestApp::spawn();
    let (mut alice, alices_token) = at_login_form(&app);
    let (mut mallory, mallorys_token) = at_login_form(&app);
    let fields = |token: &str| {
        [("csrf_token", token.to_owned()), ("username", "admin".to_owned()), ("password", ADMIN_PASSWORD.to_owned())]
    };
    let post = |browser: &mut Browser, token: &str| {
        let fields = fields(token);
        let fields: Vec<(&str, &str)> = fields.iter().map(|(name, value)| (*name, value.as_str())).collect();
        browser.post_form("/admin/login", &fields)
    };
    // Another visitor's token, no cookie, a cookie not signed by Agora: refused unchecked.
    assert_eq!(post(&mut alice, &mallorys_token).status, 403);
    assert_eq!(post(&mut app.browser(), &alices_token).status, 403);
    let mut forger = app.browser();
    let forged =
        forger.post_form("/admin/login", &[("csrf_token", "abc"), ("username", "admin"), ("password", ADMIN_PASSWORD)]);
    assert_eq!(forged.status, 403);
    // A body that is not the form: a readable 400 page.
    let unreadable = mallory.post_form("/admin/login", &[("csrf_token", &mallorys_token)]);
    assert_eq!(unreadable.status, 400);
    assert!(unreadable.body.contains("The form could not be read"), "{}", unreadable.body);
    assert_eq!(app.count("SELECT count(*) FROM admin_login_failures"), 0, "no password was checked");
    assert_eq!(post(&mut mallory, &mallorys_token).status, 303);
}

#[test]
fn ended_sessions_are_removed_in_the_background_by_an_index_not_a_scan() {
    let app = TestApp::spawn();
    let mut conn = app.connect();
    // A table of 20,000 sessions, a few of them ended either way.
    use diesel::connection::SimpleConnection;
    conn.batch_execute(
        "INSERT INTO admin_sessions (key_hash, state, created_at, last_seen_at)
         SELECT sha256(n::text::bytea), '{}', now() - CASE WHEN n <= 3 THEN interval '13 hours' ELSE interval '1 minute' END,
                now() - CASE WHEN n BETWEEN 4 AND 6 THEN interval '31 minutes' ELSE interval '1 minute' END
           FROM generate_series(1, 20000) AS n;
         ANALYZE admin_sessions",
    )
    .unwrap();
    #[derive(QueryableByName)]
    struct Plan {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let plan: Vec<Plan> = diesel::sql_query(
        "EXPLAIN DELETE FROM admin_sessions WHERE last_seen_at < now() - interval '30 minutes' \
         OR created_at < now() - interval '12 hours'",
    )
    .load(&mut conn)
    .unwrap();
    let plan: Vec<String> = plan.into_iter().map(|row| row.line).collect();
    assert!(!plan.iter().any(|line| line.contains("Seq Scan")), "{plan:#?}");

    // Signing in removes nothing; a process's background work does, when it starts and then now and then.
    app.signed_in_browser();
    assert_eq!(app.count("SELECT count(*) FROM admin_sessions"), 20_000 + 1);
    let _worker = app.spawn_beside(|config| config.outbox.run_in_server = true);
    crate::helpers::eventually("the ended sessions removed", std::time::Duration::from_secs(20), || {
        app.count("SELECT count(*) FROM admin_sessions") == 20_000 - 6 + 1
    });
}
