use std::collections::HashSet;
use std::time::Duration;

use agora::config::Config;
use serde_json::json;

use crate::helpers::{AgoraProcess, TestApp, card, eventually, order_body};
use crate::smtp::{Mode, SmtpSink, unused_port};

/// Background work on, SMTP to `smtp_url`, quick retries.
pub fn mailing(smtp_url: Option<String>) -> impl FnOnce(&mut Config) + use<> {
    move |config: &mut Config| {
        config.smtp_url = smtp_url;
        config.outbox.run_in_server = true;
        config.outbox.backoff_base = Duration::from_millis(100);
        config.outbox.backoff_max = Duration::from_millis(400);
        config.outbox.poll_interval = Duration::from_millis(500);
    }
}

pub fn wait_for_messages(sink: &SmtpSink, count: usize) {
    eventually(&format!("{count} e-mails at the SMTP server"), Duration::from_secs(20), || {
        sink.messages().len() >= count
    });
    // Anything sent twice would arrive right behind.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(sink.messages().len(), count, "no e-mail is sent twice");
}

#[test]
fn paying_an_order_sends_one_confirmation_listing_its_lines_and_total() {
    let sink = SmtpSink::start();
    let app = TestApp::spawn_with(mailing(Some(sink.url())));
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let cap = app.product_with_stock("CAP-001", 1790, 10);
    let order = app.placed_order("Ada@Example.com", &[(&mug, 2), (&cap, 1)]);
    let id = order["id"].as_str().unwrap();
    let number = order["number"].as_str().unwrap();
    app.pay(id, "4242424242424242").ok_json(201);

    wait_for_messages(&sink, 2);
    let messages = sink.messages();
    let confirmation = messages.iter().find(|m| m.header("Subject").unwrap().contains("confirmed")).unwrap();
    assert_eq!(confirmation.to, vec!["ada@example.com"]);
    assert_eq!(confirmation.header("Subject").unwrap(), format!("Order {number} confirmed: payment received"));
    assert_eq!(confirmation.header("From").unwrap(), "Agora <shop@agora.localhost>");
    assert!(
        confirmation.message_id().ends_with(".order_confirmation@agora.localhost>"),
        "{}",
        confirmation.message_id()
    );
    let body = confirmation.decoded_body();
    assert!(body.contains("2 x Product MUG-001 (MUG-001) at €12.90 = €25.80"), "{body}");
    assert!(body.contains("1 x Product CAP-001 (CAP-001) at €17.90 = €17.90"), "{body}");
    assert!(body.contains("Total: €43.70"), "{body}");
    assert!(body.contains("<strong>€43.70</strong>"), "the HTML part too: {body}");

    let listed = app.admin_get(&format!("/api/notifications?order_id={id}")).ok_json(200);
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for item in items {
        assert_eq!(item["status"], "sent");
        assert_eq!(item["attempts"], 1);
        assert_eq!(item["to"], "ada@example.com");
        assert!(item["sent_at"].is_string());
    }
    let kinds: HashSet<&str> = items.iter().map(|item| item["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, HashSet::from(["order_received", "order_confirmation"]));
    assert_eq!(app.order(id)["notifications"].as_array().unwrap().len(), 2);
}

#[test]
fn without_smtp_e_mails_are_stored_and_readable_in_the_admin_pages() {
    let app = TestApp::spawn_with(mailing(None));
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let order = app.placed_order("ada@example.com", &[(&mug, 1)]);
    let id = order["id"].as_str().unwrap().to_owned();
    app.post_json(&format!("/api/orders/{id}/cancel"), &json!({})).ok_json(200);
    eventually("two stored e-mails", Duration::from_secs(10), || {
        app.count(&format!("SELECT count(*) FROM notifications WHERE order_id = '{id}' AND status = 'stored'")) == 2
    });

    let mut browser = app.signed_in_browser();
    let list = browser.get("/admin/notifications");
    assert!(list.body.contains("e-mails are stored here, not sent"), "{}", list.body);
    let notification_id = app.admin_get(&format!("/api/notifications?order_id={id}")).ok_json(200)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = browser.get(&format!("/admin/notifications/{notification_id}"));
    assert_eq!(page.status, 200);
    let frame = format!("<iframe class=\"mail\" sandbox=\"\" src=\"/admin/notifications/{notification_id}/html\"");
    assert!(page.body.contains(&frame), "the e-mail's HTML in a sandboxed frame: {}", page.body);
    // The frame's document is the e-mail alone, under a policy of its own: its inline styles
    // apply, nothing else runs, and only Agora's own pages may frame it.
    let html = browser.get(&format!("/admin/notifications/{notification_id}/html"));
    assert_eq!(html.status, 200);
    assert!(html.body.starts_with("<!doctype html>") && html.body.contains("style="), "{}", html.body);
    let policy = html.header("content-security-policy").unwrap();
    assert!(policy.contains("sandbox") && policy.contains("frame-ancestors 'self'"), "{policy}");
    assert!(page.body.contains("1 x Product MUG-001 (MUG-001) at €12.90 = €12.90"), "the text version beside it");
}

#[test]
fn a_refusing_smtp_server_means_retries_then_one_delivery() {
    let sink = SmtpSink::start();
    sink.set_mode(Mode::Refuse);
    let app = TestApp::spawn_with(mailing(Some(sink.url())));
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let order = app.placed_order("ada@example.com", &[(&mug, 1)]);
    let id = order["id"].as_str().unwrap();
    eventually("a few refused attempts", Duration::from_secs(10), || {
        app.count(&format!("SELECT max(attempts) FROM notifications WHERE order_id = '{id}'")) >= 3
    });
    let pending = app.admin_get(&format!("/api/notifications?order_id={id}")).ok_json(200);
    assert_eq!(pending["items"][0]["status"], "pending");
    assert!(pending["items"][0]["last_error"].as_str().unwrap().contains("temporarily unavailable"), "{pending}");
    assert!(sink.messages().is_empty());

    sink.set_mode(Mode::Accept);
    wait_for_messages(&sink, 1);
    let sent = app.admin_get(&format!("/api/notifications?order_id={id}")).ok_json(200);
    assert_eq!(sent["items"][0]["status"], "sent");
    assert!(sent["items"][0]["last_error"].is_null());
    assert!(sent["items"][0]["attempts"].as_i64().unwrap() >= 4);
}

#[test]
fn an_smtp_server_that_is_down_gets_the_e_mail_once_it_is_up() {
    let port = unused_port();
    let app = TestApp::spawn_with(mailing(Some(format!("smtp://127.0.0.1:{port}"))));
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let id = app.placed_order("ada@example.com", &[(&mug, 1)])["id"].as_str().unwrap().to_owned();
    eventually("failed attempts while the server is down", Duration::from_secs(10), || {
        app.count(&format!("SELECT max(attempts) FROM notifications WHERE order_id = '{id}'")) >= 2
    });
    let sink = SmtpSink::start_on(port);
    wait_for_messages(&sink, 1);
    assert_eq!(sink.messages()[0].to, vec!["ada@example.com"]);
}

#[test]
fn a_process_killed_before_its_e_mails_went_out_delivers_each_exactly_once_after_restart() {
    let sink = SmtpSink::start();
    sink.set_mode(Mode::Stall);
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 100);
    let env = [("AGORA_SMTP_URL", sink.url()), ("AGORA_OUTBOX_BACKOFF_MS", "100".to_owned())];
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();

    let first = AgoraProcess::start(&app.database, &env);
    for n in 0..5 {
        first.post_json("/api/orders", &order_body(&format!("c{n}@example.com"), &[(&mug, 1)])).ok_json(201);
    }
    // One delivery is now stuck mid-SMTP-conversation, holding its row lock; the rest wait.
    std::thread::sleep(Duration::from_millis(500));
    first.kill();
    assert!(sink.messages().is_empty());
    assert_eq!(app.count("SELECT count(*) FROM event_deliveries WHERE status = 'completed'"), 0);

    sink.set_mode(Mode::Accept);
    let _second = AgoraProcess::start(&app.database, &env);
    wait_for_messages(&sink, 5);
    let ids: HashSet<String> = sink.messages().iter().map(|message| message.message_id()).collect();
    assert_eq!(ids.len(), 5);
    assert_eq!(app.count("SELECT count(*) FROM notifications WHERE status = 'sent'"), 5);
}

#[test]
fn sigterm_stops_agora_after_finishing_or_releasing_the_work_in_flight() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 100);
    let process = AgoraProcess::start(&app.database, &[]);
    for n in 0..10 {
        process.post_json("/api/orders", &order_body(&format!("c{n}@example.com"), &[(&mug, 1)])).ok_json(201);
    }
    let (status, took) = process.terminate();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // Whatever was not finished is pending again, for the next process.
    assert_eq!(app.count("SELECT count(*) FROM event_deliveries WHERE status NOT IN ('pending', 'completed')"), 0);
    let _next = AgoraProcess::start(&app.database, &[]);
    eventually("every e-mail stored", Duration::from_secs(15), || {
        app.count("SELECT count(*) FROM notifications WHERE status = 'stored'") == 10
    });
    assert_eq!(app.count("SELECT count(*) FROM event_deliveries WHERE status = 'completed'"), 10);
}

#[test]
fn two_agora_processes_on_one_database_send_each_e_mail_once() {
    let sink = SmtpSink::start();
    let app = TestApp::spawn_with(mailing(Some(sink.url())));
    let _other = app.spawn_beside(mailing(Some(sink.url())));
    let mug = app.product_with_stock("MUG-001", 500, 100);
    for n in 0..15 {
        let id = app.placed_order(&format!("c{n}@example.com"), &[(&mug, 1)])["id"].as_str().unwrap().to_owned();
        app.post_json(&format!("/api/orders/{id}/payments"), &card("4242424242424242")).ok_json(201);
    }
    wait_for_messages(&sink, 30);
    let ids: HashSet<String> = sink.messages().iter().map(|message| message.message_id()).collect();
    assert_eq!(ids.len(), 30);
    assert_eq!(app.count("SELECT count(*) FROM event_deliveries WHERE status = 'completed'"), 30);
}

#[test]
fn dead_work_is_shown_with_its_error_and_can_be_retried_from_the_admin_page() {
    let sink = SmtpSink::start();
    sink.set_mode(Mode::Refuse);
    let app = TestApp::spawn_with(|config| {
        mailing(Some(sink.url()))(config);
        config.outbox.max_attempts = 2;
    });
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let id = app.placed_order("ada@example.com", &[(&mug, 1)])["id"].as_str().unwrap().to_owned();
    eventually("the delivery to die", Duration::from_secs(10), || {
        app.count("SELECT count(*) FROM event_deliveries WHERE status = 'dead'") == 1
    });
    let api = app.admin_get(&format!("/api/notifications?order_id={id}")).ok_json(200);
    assert_eq!(api["items"][0]["status"], "failed");

    let mut browser = app.signed_in_browser();
    let page = browser.get("/admin/events");
    assert!(page.body.contains("badge dead") && page.body.contains("temporarily unavailable"), "{}", page.body);
    let event_id = app.count("SELECT event_id FROM event_deliveries WHERE status = 'dead'");

    sink.set_mode(Mode::Accept);
    let form = browser.confirmation_form(&format!("/admin/events/{event_id}/notifications.order_emails/retry"));
    let retried = browser.post(&form);
    assert_eq!(retried.status, 303, "{}", retried.body);
    wait_for_messages(&sink, 1);
    assert_eq!(app.count("SELECT count(*) FROM event_deliveries WHERE status = 'completed'"), 1);
    let again = browser.post(&form);
    assert_eq!(again.status, 303, "only dead work can be retried: {}", again.body);
    let warned = browser.get("/admin/events");
    assert!(warned.body.contains(&format!("Event #{event_id} was not retried")), "{}", warned.body);
}

#[test]
fn the_notifications_api_is_admin_only() {
    let app = TestApp::spawn();
    app.get("/api/notifications").problem(401);
    app.admin_get("/api/notifications?order_id=nope").problem(400);
    assert_eq!(app.admin_get("/api/notifications").ok_json(200)["items"], json!([]));
}

/// The recipients of the rows of the admin list of e-mails, in the order shown.
fn listed_recipients(body: &str) -> Vec<String> {
    let Some((_, rows)) = body.split_once("<tbody>") else { return Vec::new() };
    let rows = rows.split("</tbody>").next().unwrap();
    rows.split("<tr>")
        .skip(1)
        .map(|row| row.split("<td>").nth(3).unwrap().split("</td>").next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_admin_list_of_e_mails_filters_by_part_of_the_address_status_and_kind() {
    let app = TestApp::spawn_with(mailing(None));
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let ada = app.placed_order("ada@example.com", &[(&mug, 1)])["id"].as_str().unwrap().to_owned();
    app.pay(&ada, "4242424242424242").ok_json(201);
    for email in ["bob@example.org", "a_b@example.net", "axb@example.net"] {
        app.placed_order(email, &[(&mug, 1)]);
    }
    eventually("five stored e-mails", Duration::from_secs(10), || {
        app.count("SELECT count(*) FROM notifications WHERE status = 'stored'") == 5
    });
    // One e-mail given up on after many attempts, as a mail server that kept refusing leaves it.
    diesel::RunQueryDsl::execute(
        diesel::sql_query(
            "UPDATE notifications SET status = 'failed', attempts = 5, sent_at = NULL, last_error = 'SMTP: refused'
              WHERE recipient = 'bob@example.org'",
        ),
        &mut app.connect(),
    )
    .unwrap();
    let mut browser = app.signed_in_browser();

    let all = browser.get("/admin/notifications");
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(listed_recipients(&all.body).len(), 5);
    for text in [
        "5 e-mails",
        "Page 1 of 1",
        "Stored<strong>4</strong>",
        "Failed<strong>1</strong>",
        "Sent<strong>0</strong>",
        "<td>Order confirmation</td>",
        "<span class=\"badge failed\">Failed</span>",
        "<th aria-sort=\"descending\"><a href=\"/admin/notifications?sort=created&#38;dir=asc\">Created (UTC) ↓</a></th>",
    ] {
        assert!(all.body.contains(text), "{text}: {}", all.body);
    }
    assert!(!all.body.contains(">order_received<") && !all.body.contains(">stored<"), "labels, not words");

    let by_part = browser.get("/admin/notifications?to=EXAMPLE.COM");
    assert_eq!(listed_recipients(&by_part.body), ["ada@example.com", "ada@example.com"]);
    assert!(by_part.body.contains("2 e-mails") && by_part.body.contains("Stored<strong>2</strong>"));
    assert!(by_part.body.contains("Failed<strong>0</strong>"), "totals per status of the filter");
    // `_` and `%` are letters in the search, not wildcards.
    assert_eq!(listed_recipients(&browser.get("/admin/notifications?to=a_b").body), ["a_b@example.net"]);
    let percent = browser.get("/admin/notifications?to=%25");
    assert!(percent.body.contains("0 e-mails") && percent.body.contains("No e-mails match these filters."));

    let failed = browser.get("/admin/notifications?status=failed");
    assert_eq!(listed_recipients(&failed.body), ["bob@example.org"]);
    assert!(failed.body.contains("1 e-mail<") && failed.body.contains("Resend…"), "{}", failed.body);
    let stored_for_ada = browser.get("/admin/notifications?status=stored&to=ada");
    assert_eq!(listed_recipients(&stored_for_ada.body).len(), 2);
    assert!(!stored_for_ada.body.contains("Resend…"), "only failed e-mails can be resent");
    let kind = browser.get("/admin/notifications?kind=order_confirmation");
    assert_eq!(listed_recipients(&kind.body), ["ada@example.com"]);
    assert!(kind.body.contains("<option value=\"order_confirmation\" selected>Order confirmation</option>"));
    // A status total narrows the list to it, the other filters kept.
    assert!(all.body.contains("href=\"/admin/notifications?status=failed\""), "{}", all.body);
    assert!(by_part.body.contains("href=\"/admin/notifications?status=stored&#38;to=EXAMPLE.COM\""));

    let most_attempts = browser.get("/admin/notifications?sort=attempts");
    assert_eq!(listed_recipients(&most_attempts.body)[0], "bob@example.org");
    assert!(most_attempts.body.contains("<th class=\"num\" aria-sort=\"descending\">"));
    let fewest_attempts = browser.get("/admin/notifications?sort=attempts&dir=asc");
    assert_eq!(listed_recipients(&fewest_attempts.body).last().unwrap(), "bob@example.org");
    assert_eq!(browser.get("/admin/notifications?status=bounced").status, 400, "a status no form offers");
}

#[test]
fn a_failed_e_mail_is_resent_once_after_a_confirmation() {
    let sink = SmtpSink::start();
    sink.set_mode(Mode::Refuse);
    let app = TestApp::spawn_with(|config| {
        mailing(Some(sink.url()))(config);
        config.outbox.max_attempts = 2;
    });
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let order = app.placed_order("ada@example.com", &[(&mug, 1)]);
    let (order_id, number) = (order["id"].as_str().unwrap(), order["number"].as_str().unwrap());
    eventually("the delivery to die", Duration::from_secs(10), || {
        app.count("SELECT count(*) FROM event_deliveries WHERE status = 'dead'") == 1
    });
    let listed = app.admin_get(&format!("/api/notifications?order_id={order_id}")).ok_json(200);
    assert_eq!(listed["items"][0]["status"], "failed");
    let id = listed["items"][0]["id"].as_str().unwrap().to_owned();
    let (page, action) = (format!("/admin/notifications/{id}"), format!("/admin/notifications/{id}/resend"));

    let mut browser = app.signed_in_browser();
    let list = browser.get("/admin/notifications");
    assert!(list.body.contains(&format!("<a href=\"{action}\">Resend…</a>")), "{}", list.body);
    let shown = browser.get(&page);
    assert!(shown.body.contains(">Failed</span>") && shown.body.contains(&format!("href=\"{action}\">Resend…</a>")));
    let confirmation = browser.get(&action);
    assert_eq!(confirmation.status, 200, "{}", confirmation.body);
    assert!(
        confirmation.body.contains(&format!("Resend “We received your order {number}” to ada@example.com?")),
        "{}",
        confirmation.body
    );
    assert!(
        confirmation.body.contains(&format!("action=\"{action}\""))
            && confirmation.body.contains("temporarily unavailable")
    );
    assert!(sink.messages().is_empty());

    sink.set_mode(Mode::Accept);
    let form = browser.confirmation_form(&action);
    let resent = browser.post(&form);
    assert_eq!((resent.status, resent.header("location")), (303, Some(page.as_str())), "{}", resent.body);
    assert!(browser.get(&page).body.contains("E-mail to ada@example.com queued again."));
    wait_for_messages(&sink, 1);
    assert_eq!(sink.messages()[0].to, vec!["ada@example.com"]);
    assert!(sink.messages()[0].message_id().ends_with(".order_received@agora.localhost>"), "the same message");
    eventually("the e-mail sent", Duration::from_secs(10), || {
        app.admin_get(&format!("/api/notifications?order_id={order_id}")).ok_json(200)["items"][0]["status"] == "sent"
    });
    let sent = browser.get(&page);
    assert!(sent.body.contains(">Sent</span>") && !sent.body.contains("Resend…"), "{}", sent.body);

    // Again, from a page opened before it went out: nothing more is sent, and the page says why.
    let again = browser.post(&form);
    assert_eq!((again.status, again.header("location")), (303, Some(page.as_str())));
    let warned = browser.get(&page);
    assert!(
        warned.body.contains("The e-mail to ada@example.com was not sent again: it was sent on"),
        "{}",
        warned.body
    );
    assert_eq!(browser.get(&action).status, 303, "no confirmation for what cannot happen");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(sink.messages().len(), 1, "exactly one more e-mail");
    assert_eq!(app.count("SELECT count(*) FROM event_deliveries WHERE status = 'completed'"), 1);
    assert_eq!(
        browser.post_form(&action, &[("csrf_token", "forged"), ("status", "failed"), ("attempts", "2")]).status,
        403
    );
}

#[test]
fn ten_simultaneous_resends_of_one_failed_e_mail_make_one_smtp_attempt() {
    let sink = SmtpSink::start();
    sink.set_mode(Mode::Refuse);
    let app = TestApp::spawn_with(|config| {
        mailing(Some(sink.url()))(config);
        // Each revival makes one attempt and fails again at once: a second revival would show.
        config.outbox.max_attempts = 1;
    });
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let order_id = app.placed_order("ada@example.com", &[(&mug, 1)])["id"].as_str().unwrap().to_owned();
    let dead = || app.count("SELECT count(*) FROM event_deliveries WHERE status = 'dead'") == 1;
    eventually("the delivery to die", Duration::from_secs(10), dead);
    assert_eq!(sink.attempts(), 1);
    let id = app.admin_get(&format!("/api/notifications?order_id={order_id}")).ok_json(200)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (page, action) = (format!("/admin/notifications/{id}"), format!("/admin/notifications/{id}/resend"));

    // Ten operators (or one impatient one in ten tabs) confirm the same resend at the same moment.
    let browsers: Vec<_> = (0..10).map(|_| std::sync::Mutex::new(app.signed_in_browser())).collect();
    let forms: Vec<_> = browsers.iter().map(|browser| browser.lock().unwrap().confirmation_form(&action)).collect();
    assert_eq!(forms[0].field("attempts"), Some("1"), "the confirmation posts the attempts it showed");
    let pages = crate::helpers::concurrently(10, |index| {
        let mut browser = browsers[index].lock().unwrap();
        let posted = browser.post(&forms[index]);
        assert_eq!((posted.status, posted.header("location")), (303, Some(page.as_str())), "{}", posted.body);
        browser.get(&page).body
    });
    let queued = pages.iter().filter(|body| body.contains("E-mail to ada@example.com queued again.")).count();
    let refused = pages.iter().filter(|body| body.contains("The e-mail to ada@example.com was not sent again")).count();
    assert_eq!((queued, refused), (1, 9), "one post acts, the others are told why not");

    eventually("the resent e-mail to fail again", Duration::from_secs(10), || {
        dead() && app.count(&format!("SELECT attempts FROM notifications WHERE id = '{id}'")) == 2
    });
    // A late post of the same form, after the resend failed again: it saw one attempt, there are two.
    let late = browsers[0].lock().unwrap().post(&forms[0]);
    assert_eq!(late.status, 303);
    let told = browsers[0].lock().unwrap().get(&page).body;
    assert!(told.contains("The e-mail to ada@example.com was not sent again: it changed since you looked"), "{told}");
    assert!(told.contains("it failed again after 2 attempts"), "{told}");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(sink.attempts(), 2, "the first attempt and exactly one resend");
    assert_eq!(app.count(&format!("SELECT attempts FROM notifications WHERE id = '{id}'")), 2);
    assert!(dead());
}
