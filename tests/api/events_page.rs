//! The admin events page: what events are about, filters, numbered pages of the latest events,
//! and retrying dead work (one delivery or all of it) behind a confirmation step.

use std::time::Duration;

use agora::config::Config;

use crate::helpers::{Browser, TestApp, eventually};
use crate::smtp::{Mode, SmtpSink};

const HANDLER: &str = "notifications.order_emails";

/// The open-work part of the page: everything before the latest events.
fn open_work(body: &str) -> &str {
    body.split("id=\"latest\"").next().unwrap()
}

/// The latest-events part of the page.
fn latest(body: &str) -> &str {
    body.split_once("id=\"latest\"").map(|(_, latest)| latest).unwrap()
}

fn event_of(app: &TestApp, event_type: &str) -> i64 {
    app.count(&format!("SELECT max(id) FROM events WHERE event_type = '{event_type}'"))
}

fn execute(app: &TestApp, sql: &str) {
    use diesel::RunQueryDsl;
    diesel::sql_query(sql).execute(&mut app.connect()).unwrap();
}

/// The page after a form's redirect, where its flash or warning is shown.
fn followed(browser: &mut Browser, response: &crate::helpers::TestResponse) -> String {
    assert_eq!(response.status, 303, "{}", response.body);
    let location = response.header("location").unwrap().to_owned();
    let page = browser.get(&location);
    assert_eq!(page.status, 200, "{location}: {}", page.body);
    page.body
}

#[test]
fn open_work_says_what_it_is_about_and_filters_by_status_handler_and_type() {
    let app = TestApp::spawn();
    // Six in stock and a threshold of five: the order's reservation publishes StockLow.
    let mug = app.product_with_stock("MUG-001", 1290, 6);
    let order = app.placed_order("ada@example.com", &[(&mug, 1)]);
    let (order_id, number) = (order["id"].as_str().unwrap(), order["number"].as_str().unwrap());
    app.pay(order_id, "4242424242424242").ok_json(201);
    let placed = event_of(&app, "OrderPlaced");
    let paid = event_of(&app, "PaymentSucceeded");
    assert!(event_of(&app, "StockLow") > 0, "the test needs a StockLow event");
    // No dispatcher runs: the deliveries are where the SQL puts them.
    execute(
        &app,
        &format!(
            "UPDATE event_deliveries SET status = 'dead', attempts = 3, last_error = 'mailbox on fire'
              WHERE event_id = {paid}"
        ),
    );
    execute(&app, &format!("UPDATE event_deliveries SET attempts = 2 WHERE event_id = {placed}"));

    let mut browser = app.signed_in_browser();
    let page = browser.get("/admin/events");
    assert_eq!(page.status, 200, "{}", page.body);
    let open = open_work(&page.body);
    // PaymentSucceeded carries no number: its name comes from the order's first event.
    assert_eq!(open.matches(&format!(">Order {number}</a>")).count(), 2, "{open}");
    assert!(open.contains(&format!("href=\"/admin/orders/{order_id}\"")), "{open}");
    assert!(open.contains("badge dead\">Dead<") && open.contains("badge failed\">Failing<"), "{open}");
    assert!(open.contains("title=\"PaymentSucceeded\">Payment succeeded<"), "{open}");
    assert!(open.contains(&format!("href=\"/admin/events/{paid}/{HANDLER}/retry\">Retry…")), "{open}");
    assert!(!open.contains(&format!("/admin/events/{placed}/{HANDLER}/retry")), "only dead work is retried");
    assert!(open.contains("href=\"/admin/events?status=dead\">Dead<strong>1</strong>"), "{open}");
    assert!(open.contains("href=\"/admin/events?status=failing\">Failing<strong>1</strong>"), "{open}");
    assert!(open.contains("href=\"/admin/events?status=waiting\">Waiting<strong>0</strong>"), "{open}");
    assert!(open.contains("href=\"/admin/events/retry-dead\">Retry all 1 dead delivery…"), "{open}");
    assert!(latest(&page.body).contains(">Product MUG-001</a>"), "{}", page.body);
    assert!(latest(&page.body).contains(&format!(">Order {number}</a>")), "{}", page.body);

    let dead = browser.get("/admin/events?status=dead");
    assert!(open_work(&dead.body).contains(&format!("#{paid}<")), "{}", dead.body);
    assert!(!open_work(&dead.body).contains(&format!("#{placed}<")), "{}", dead.body);
    let failing = browser.get("/admin/events?status=failing");
    assert!(open_work(&failing.body).contains(&format!("#{placed}<")), "{}", failing.body);
    assert!(!open_work(&failing.body).contains(&format!("#{paid}<")), "{}", failing.body);
    let waiting = browser.get("/admin/events?status=waiting");
    assert!(open_work(&waiting.body).contains("No open work matches."), "{}", waiting.body);

    let of_type = browser.get("/admin/events?type=OrderPlaced");
    assert!(open_work(&of_type.body).contains(&format!("#{placed}<")), "{}", of_type.body);
    assert!(!open_work(&of_type.body).contains(&format!("#{paid}<")), "{}", of_type.body);
    assert!(latest(&of_type.body).contains("1 event, newest first"), "{}", of_type.body);
    assert!(!latest(&of_type.body).contains("Product MUG-001"), "{}", of_type.body);

    let of_handler = browser.get(&format!("/admin/events?handler={HANDLER}"));
    assert!(open_work(&of_handler.body).contains(&format!("#{paid}<")), "{}", of_handler.body);
    let of_other = browser.get("/admin/events?handler=search.indexer");
    assert!(open_work(&of_other.body).contains("No open work matches."), "{}", of_other.body);
    assert!(!open_work(&of_other.body).contains("Retry all"), "nothing of that handler is dead");

    for refused in ["/admin/events?status=completed", "/admin/events?handler=a%00b", "/admin/events?type=order"] {
        let page = browser.get(refused);
        assert_eq!(page.status, 400, "{refused}: {}", page.body);
    }
}

#[test]
fn a_delivery_is_retried_after_a_confirmation_and_a_stale_retry_is_a_warning() {
    let app = TestApp::spawn();
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let order = app.placed_order("ada@example.com", &[(&mug, 1)]);
    let number = order["number"].as_str().unwrap();
    let placed = event_of(&app, "OrderPlaced");
    execute(&app, "UPDATE event_deliveries SET status = 'dead', attempts = 10, last_error = 'mailbox on fire'");

    let mut browser = app.signed_in_browser();
    let path = format!("/admin/events/{placed}/{HANDLER}/retry");
    let confirm = browser.get(&path);
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(confirm.body.contains(&format!("Retry OrderPlaced #{placed} for {HANDLER}?")), "{}", confirm.body);
    assert!(confirm.body.contains("an e-mail may be sent"), "{}", confirm.body);
    assert!(confirm.body.contains(&format!("It is about Order {number}.")), "{}", confirm.body);
    assert!(confirm.body.contains("mailbox on fire"), "{}", confirm.body);
    assert!(confirm.body.contains(&format!("<form method=\"post\" action=\"{path}\">")), "{}", confirm.body);
    assert_eq!(app.count("SELECT count(*) FROM event_deliveries WHERE status = 'dead'"), 1, "GET changes nothing");

    let form = browser.confirmation_form(&path);
    let retried = browser.post(&form);
    let after = followed(&mut browser, &retried);
    assert!(after.contains(&format!("Event #{placed} queued again for {HANDLER}.")), "{after}");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM event_deliveries
              WHERE event_id = {placed} AND status = 'pending' AND attempts = 0 AND last_error IS NULL"
        )),
        1
    );

    // A second look at a delivery that is no longer dead, and a post from a stale page.
    let again = browser.get(&path);
    assert!(followed(&mut browser, &again).contains("is not dead"));
    let stale = browser.post(&form);
    assert!(followed(&mut browser, &stale).contains(&format!("Event #{placed} was not retried for {HANDLER}")));
    assert_eq!(browser.get(&format!("/admin/events/{}/{HANDLER}/retry", placed + 1000)).status, 404);
}

#[test]
fn the_latest_events_come_in_numbered_pages_newest_first_and_by_type() {
    let app = TestApp::spawn();
    // Payloads cut down to what the page shows: not the contract's.
    app.database.holds_hand_made_events();
    // Published as modules publish, without the round trips of 63 orders.
    execute(
        &app,
        "SELECT outbox_publish('StockLow', 'product', gen_random_uuid(), jsonb_build_object('sku', 'SKU-' || n))
           FROM generate_series(1, 60) n",
    );
    execute(
        &app,
        "SELECT outbox_publish('OrderPlaced', 'order', gen_random_uuid(),
                               jsonb_build_object('number', 'AG-00000' || n))
           FROM generate_series(1, 3) n",
    );
    let newest = app.count("SELECT max(id) FROM events");

    let mut browser = app.signed_in_browser();
    let first = browser.get("/admin/events");
    let page = latest(&first.body);
    assert!(page.contains("63 events, newest first. Page 1 of 2."), "{page}");
    assert_eq!(page.matches("<tr><td>").count(), 50, "{page}");
    let rows: Vec<&str> = page.split("<tr><td>").skip(1).collect();
    assert!(rows[0].starts_with(&format!("{newest}<")), "newest first: {}", rows[0]);
    assert!(rows[0].contains(">Order AG-000003</a>"), "{}", rows[0]);
    assert!(page.contains("href=\"/admin/events?page=2#latest\">Older →"), "{page}");
    assert!(!page.contains("Newer"), "{page}");

    let second = browser.get("/admin/events?page=2");
    let page = latest(&second.body);
    assert!(page.contains("Page 2 of 2."), "{page}");
    assert_eq!(page.matches("<tr><td>").count(), 13, "{page}");
    assert!(page.contains(">Product SKU-1</a>") && !page.contains("Older"), "{page}");
    assert!(page.contains("href=\"/admin/events#latest\">← Newer"), "{page}");

    let orders = browser.get("/admin/events?type=OrderPlaced");
    let page = latest(&orders.body);
    assert!(page.contains("3 events, newest first. Page 1 of 1."), "{page}");
    assert_eq!(page.matches("<tr><td>").count(), 3, "{page}");
    let beyond = browser.get("/admin/events?type=StockLow&page=2");
    assert!(latest(&beyond.body).contains("Page 2 of 2.") && latest(&beyond.body).contains(">Product SKU-1</a>"));
    assert!(latest(&beyond.body).contains("href=\"/admin/events?type=StockLow#latest\">← Newer"), "filter kept");
    assert!((400..500).contains(&browser.get("/admin/events?page=0").status));
}

/// Background work on, SMTP to the sink, quick retries, one attempt before giving up.
fn mailing(sink: &SmtpSink) -> impl FnOnce(&mut Config) {
    let url = sink.url();
    move |config: &mut Config| {
        config.smtp_url = Some(url);
        config.outbox.run_in_server = true;
        config.outbox.max_attempts = 1;
        config.outbox.backoff_base = Duration::from_millis(100);
        config.outbox.backoff_max = Duration::from_millis(400);
        config.outbox.poll_interval = Duration::from_millis(500);
    }
}

#[test]
fn retrying_all_dead_work_is_confirmed_revives_every_dead_delivery_and_they_complete() {
    let sink = SmtpSink::start();
    sink.set_mode(Mode::Refuse);
    let app = TestApp::spawn_with(mailing(&sink));
    let mug = app.product_with_stock("MUG-001", 1290, 100);
    for n in 0..3 {
        app.placed_order(&format!("c{n}@example.com"), &[(&mug, 1)]);
    }
    eventually("three deliveries to die", Duration::from_secs(15), || {
        app.count("SELECT count(*) FROM event_deliveries WHERE status = 'dead'") == 3
    });

    let mut browser = app.signed_in_browser();
    let page = browser.get("/admin/events");
    assert!(page.body.contains("href=\"/admin/events/retry-dead\">Retry all 3 dead deliveries…"), "{}", page.body);
    let confirm = browser.get("/admin/events/retry-dead");
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(confirm.body.contains("Retry 3 dead deliveries?"), "{}", confirm.body);
    assert!(confirm.body.contains(&format!("{HANDLER}: 3 dead deliveries.")), "{}", confirm.body);
    assert!(confirm.body.contains("<form method=\"post\" action=\"/admin/events/retry-dead\">"), "{}", confirm.body);

    // Of a handler with nothing dead: nothing to confirm, and a post revives nothing.
    let none = browser.get("/admin/events/retry-dead?handler=search.indexer");
    assert!(followed(&mut browser, &none).contains("No delivery is dead; there is nothing to retry."));
    let nothing = browser.submit(
        "/admin/events",
        "/admin/events/retry-dead",
        &[("handler", "search.indexer"), ("dead", "0"), ("newest", "")],
    );
    assert_eq!(nothing.header("location"), Some("/admin/events?handler=search.indexer"));
    assert!(followed(&mut browser, &nothing).contains("No delivery was dead; nothing was retried."));
    assert_eq!(app.count("SELECT count(*) FROM event_deliveries WHERE status = 'dead'"), 3);

    sink.set_mode(Mode::Accept);
    let form = browser.confirmation_form("/admin/events/retry-dead");
    let retried = browser.post(&form);
    assert!(followed(&mut browser, &retried).contains("3 dead deliveries queued again."));
    assert_eq!(app.count("SELECT count(*) FROM event_deliveries WHERE status = 'dead'"), 0);
    eventually("the revived deliveries to complete", Duration::from_secs(15), || {
        app.count("SELECT count(*) FROM event_deliveries WHERE status = 'completed'") == 3
    });
    eventually("three e-mails at the SMTP server", Duration::from_secs(10), || sink.messages().len() == 3);
    let page = browser.get("/admin/events");
    assert!(!page.body.contains("Retry all"), "{}", page.body);
    assert!(page.body.contains("Every handler is up to date."), "{}", page.body);
}

/// Places `count` orders whose e-mails the refusing sink makes die, one attempt each.
fn dead_deliveries(app: &TestApp, count: i64) {
    let mug = app.product_with_stock("MUG-001", 1290, 100);
    for n in 0..count {
        app.placed_order(&format!("c{n}@example.com"), &[(&mug, 1)]);
    }
    eventually("the deliveries to die", Duration::from_secs(15), || {
        app.count("SELECT count(*) FROM event_deliveries WHERE status = 'dead'") == count
    });
}

#[test]
fn four_simultaneous_retry_alls_retry_each_dead_delivery_once() {
    let sink = SmtpSink::start();
    sink.set_mode(Mode::Refuse);
    let app = TestApp::spawn_with(mailing(&sink));
    dead_deliveries(&app, 3);
    assert_eq!(sink.attempts(), 3);

    let browsers: Vec<_> = (0..4).map(|_| std::sync::Mutex::new(app.signed_in_browser())).collect();
    let forms: Vec<_> =
        browsers.iter().map(|browser| browser.lock().unwrap().confirmation_form("/admin/events/retry-dead")).collect();
    assert_eq!(forms[0].field("dead"), Some("3"), "the confirmation posts what it showed");
    let pages = crate::helpers::concurrently(4, |index| {
        let mut browser = browsers[index].lock().unwrap();
        let posted = browser.post(&forms[index]);
        followed(&mut browser, &posted)
    });
    let retried = pages.iter().filter(|body| body.contains("3 dead deliveries queued again.")).count();
    let refused = pages.iter().filter(|body| body.contains("Nothing was retried")).count();
    assert_eq!((retried, refused), (1, 3), "one post acts, the others are told why not");

    eventually("the retried deliveries to die again", Duration::from_secs(15), || {
        app.count("SELECT count(*) FROM notifications WHERE status = 'failed' AND attempts = 2") == 3
            && app.count("SELECT count(*) FROM event_deliveries WHERE status = 'dead'") == 3
    });
    // The same form once more, after the retried deliveries died again: they are not the ones it showed.
    let late = browsers[0].lock().unwrap().post(&forms[0]);
    let told = followed(&mut browsers[0].lock().unwrap(), &late);
    assert!(told.contains("Nothing was retried: the dead deliveries changed since you looked"), "{told}");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(sink.attempts(), 6, "three first attempts and one retry each");
    assert_eq!(app.count("SELECT count(*) FROM notifications WHERE attempts = 2"), 3, "each e-mail tried twice");
    assert_eq!(app.count("SELECT count(*) FROM event_deliveries WHERE status = 'dead'"), 3);
}

#[test]
fn retry_all_leaves_a_delivery_that_died_after_the_confirmation_was_shown() {
    let sink = SmtpSink::start();
    sink.set_mode(Mode::Refuse);
    let app = TestApp::spawn_with(mailing(&sink));
    dead_deliveries(&app, 2);
    let mut browser = app.signed_in_browser();
    let form = browser.confirmation_form("/admin/events/retry-dead");
    assert!(form.fields.iter().any(|(name, _)| name == "dead"), "{form:?}");

    // One more dies while the operator reads the confirmation of two.
    let product = app.product_with_stock("CUP-001", 990, 10);
    app.placed_order("late@example.com", &[(&product, 1)]);
    eventually("a third delivery to die", Duration::from_secs(15), || {
        app.count("SELECT count(*) FROM event_deliveries WHERE status = 'dead'") == 3
    });
    let posted = browser.post(&form);
    let told = followed(&mut browser, &posted);
    assert!(told.contains("Nothing was retried: the dead deliveries changed since you looked"), "{told}");
    assert!(told.contains("2 when you confirmed, 3 now"), "{told}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(app.count("SELECT count(*) FROM event_deliveries WHERE status = 'dead'"), 3, "none retried");
    assert_eq!(sink.attempts(), 3);
}

#[test]
fn four_simultaneous_retries_of_one_dead_delivery_retry_it_once() {
    let sink = SmtpSink::start();
    sink.set_mode(Mode::Refuse);
    let app = TestApp::spawn_with(mailing(&sink));
    dead_deliveries(&app, 1);
    let event = app.count("SELECT event_id FROM event_deliveries WHERE status = 'dead'");
    let path = format!("/admin/events/{event}/{HANDLER}/retry");

    let browsers: Vec<_> = (0..4).map(|_| std::sync::Mutex::new(app.signed_in_browser())).collect();
    let forms: Vec<_> = browsers.iter().map(|browser| browser.lock().unwrap().confirmation_form(&path)).collect();
    let pages = crate::helpers::concurrently(4, |index| {
        let mut browser = browsers[index].lock().unwrap();
        let posted = browser.post(&forms[index]);
        followed(&mut browser, &posted)
    });
    let retried = pages.iter().filter(|body| body.contains(&format!("Event #{event} queued again"))).count();
    let refused = pages.iter().filter(|body| body.contains(&format!("Event #{event} was not retried"))).count();
    assert_eq!((retried, refused), (1, 3));

    eventually("the retried delivery to die again", Duration::from_secs(15), || {
        app.count("SELECT count(*) FROM notifications WHERE status = 'failed' AND attempts = 2") == 1
            && app.count("SELECT count(*) FROM event_deliveries WHERE status = 'dead'") == 1
    });
    let late = browsers[0].lock().unwrap().post(&forms[0]);
    let told = followed(&mut browsers[0].lock().unwrap(), &late);
    assert!(told.contains(&format!("Event #{event} was not retried")), "{told}");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(sink.attempts(), 2, "the first attempt and one retry");
}

#[test]
fn who_gets_an_event_is_the_installations_configuration_not_the_callers() {
    let deliveries_of = |app: &TestApp, handler: &str| {
        app.count(&format!("SELECT count(*) FROM event_deliveries WHERE handler = '{handler}'"))
    };
    let app = TestApp::spawn();
    let product = app.product_with_stock("SUB-1", 500, 5);
    app.placed_order("subscriber@example.com", &[(&product, 1)]);
    assert_eq!((deliveries_of(&app, HANDLER), deliveries_of(&app, "outbox.broker_relay")), (1, 0));
    let before = app.count("SELECT max(id) FROM events");

    // The same database started with a broker, and notifications consuming from it: from then
    // on the relay gets every event and the in-process e-mail handler none.
    let relayed = app.spawn_beside(|config: &mut Config| {
        let broker = Config::from_lookup(|name| match name {
            "AGORA_BROKER_URL" => Some("amqp://guest:guest@127.0.0.1:5672/%2f".into()),
            "AGORA_NOTIFICATIONS_CONSUMER" => Some("broker".into()),
            _ => None,
        })
        .unwrap();
        config.broker = broker.broker;
        config.notifications_consumer = broker.notifications_consumer;
    });
    relayed.placed_order("subscriber@example.com", &[(&product, 1)]);
    let since = app.count(&format!("SELECT count(*) FROM events WHERE id > {before}"));
    assert!(since >= 1);
    assert_eq!((deliveries_of(&app, HANDLER), deliveries_of(&app, "outbox.broker_relay")), (1, since));
}
