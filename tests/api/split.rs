//! Notifications out of the shared database: the tests of e-mails and the order view in both
//! topologies, the split topology's own behaviour (the service down or hung, what lives where),
//! and `agora split notifications`, run as a command against a running shop, killed at each step,
//! rolled back and contracted.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agora::config::{Config, NotificationsConsumer, ServiceLink};
use serde_json::Value;

use crate::helpers::{TestApp, TestDatabase, count_in, eventually, test_config};
use crate::in_both_topologies;
use crate::notifications::{mailing, wait_for_messages};
use crate::rabbit::{TestExchange, amqp_url};
use crate::smtp::{Mode, SmtpSink};
use crate::topology::{ServiceProcess, Shop, Topology};

fn emails_of(shop: &Shop, order_id: &str) -> Vec<Value> {
    shop.get(&format!("/api/orders/{order_id}")).ok_json(200)["notifications"].as_array().unwrap().clone()
}

in_both_topologies! {
    fn paying_sends_each_e_mail_once_and_the_order_view_lists_them(topology) {
        let sink = SmtpSink::start();
        let shop = Shop::spawn(topology, mailing(Some(sink.url())));
        let mug = shop.product_with_stock("MUG-001", 1290, 10);
        let order = shop.placed_order("ada@example.com", &[(&mug, 2)]);
        let (id, number) = (order["id"].as_str().unwrap(), order["number"].as_str().unwrap());
        shop.pay(id, "4242424242424242").ok_json(201);

        wait_for_messages(&sink, 2);
        let subjects: Vec<String> =
            sink.messages().iter().map(|message| message.header("Subject").unwrap().to_owned()).collect();
        assert!(subjects.contains(&format!("We received your order {number}")), "{subjects:?}");
        assert!(subjects.contains(&format!("Order {number} confirmed: payment received")), "{subjects:?}");
        eventually("both e-mails sent in the order view", Duration::from_secs(10), || {
            let emails = emails_of(&shop, id);
            emails.len() == 2 && emails.iter().all(|email| email["status"] == "sent")
        });
        let view = shop.get(&format!("/api/orders/{id}")).ok_json(200);
        assert!(view["notifications_unavailable"].is_null(), "{view}");
        let kinds: Vec<&str> = view["notifications"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["order_received", "order_confirmation"]);
        assert_eq!(view["status"], "paid");

        let listed = shop.admin_get(&format!("/api/notifications?order_id={id}&limit=1")).ok_json(200);
        assert_eq!(listed["items"].as_array().unwrap().len(), 1);
        assert_eq!(listed["items"][0]["kind"], "order_confirmation", "newest first");
        let next = listed["next_cursor"].as_str().expect("a second page");
        let rest = shop.admin_get(&format!("/api/notifications?order_id={id}&limit=1&cursor={next}")).ok_json(200);
        assert_eq!(rest["items"][0]["kind"], "order_received");
        assert!(rest["next_cursor"].is_null());

        let mut browser = shop.signed_in_browser();
        let page = browser.get(&format!("/admin/orders/{id}"));
        assert_eq!(page.status, 200);
        assert!(page.body.contains(&format!("Order {number} confirmed: payment received")), "{}", page.body);
        assert!(!page.body.contains("E-mails unavailable"));
        assert_eq!(shop.emails_recorded(), 2);
    }

    fn the_order_view_follows_an_order_through_its_life_with_an_e_mail_per_step(topology) {
        let shop = Shop::spawn(topology, mailing(None));
        let mug = shop.product_with_stock("MUG-001", 1290, 10);
        let paid = shop.placed_order("ada@example.com", &[(&mug, 2)]);
        let paid = paid["id"].as_str().unwrap();
        shop.pay(paid, "4242424242424242").ok_json(201);
        shop.admin_post(&format!("/api/orders/{paid}/ship")).ok_json(200);
        shop.admin_post(&format!("/api/orders/{paid}/refund")).ok_json(200);
        let cancelled = shop.placed_order("bob@example.com", &[(&mug, 1)]);
        let cancelled = cancelled["id"].as_str().unwrap();
        shop.post_json(&format!("/api/orders/{cancelled}/cancel"), &serde_json::json!({})).ok_json(200);

        let kinds = |id: &str| -> Vec<String> {
            emails_of(&shop, id).iter().map(|email| email["kind"].as_str().unwrap().to_owned()).collect()
        };
        eventually("every step's e-mail", Duration::from_secs(15), || kinds(paid).len() == 4 && kinds(cancelled).len() == 2);
        assert_eq!(kinds(paid), ["order_received", "order_confirmation", "order_shipped", "order_refunded"]);
        assert_eq!(kinds(cancelled), ["order_received", "order_cancelled"]);
        let view = shop.get(&format!("/api/orders/{paid}")).ok_json(200);
        assert_eq!(view["status"], "refunded");
        let events: Vec<&str> = view["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(events, ["OrderPlaced", "PaymentSucceeded", "OrderShipped", "OrderRefunded"]);
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(shop.emails_recorded(), 6, "one e-mail per event");
    }

    fn stored_e_mails_are_listed_filtered_and_previewed_in_the_admin_pages(topology) {
        let shop = Shop::spawn(topology, mailing(None));
        let mug = shop.product_with_stock("MUG-001", 1290, 10);
        let ada = shop.placed_order("ada@example.com", &[(&mug, 1)]);
        shop.placed_order("bob@example.com", &[(&mug, 3)]);
        eventually("both e-mails stored", Duration::from_secs(10), || shop.emails_recorded() == 2);

        let mut browser = shop.signed_in_browser();
        let bobs = browser.get("/admin/notifications?to=BOB");
        assert_eq!(bobs.status, 200);
        assert!(bobs.body.contains("bob@example.com") && !bobs.body.contains("ada@example.com"), "{}", bobs.body);
        let stored = browser.get("/admin/notifications?status=stored&kind=order_received");
        assert!(stored.body.contains("bob@example.com") && stored.body.contains("ada@example.com"));
        assert!(browser.get("/admin/notifications?status=failed").body.contains("No e-mails"));
        assert_eq!(browser.get("/admin/notifications?status=lost").status, 400);

        let email = &emails_of(&shop, ada["id"].as_str().unwrap())[0];
        let id = email["id"].as_str().unwrap();
        let shown = browser.get(&format!("/admin/notifications/{id}"));
        assert_eq!(shown.status, 200);
        let number = ada["number"].as_str().unwrap();
        assert!(shown.body.contains(&format!("We received your order {number}")), "{}", shown.body);
        let html = browser.get(&format!("/admin/notifications/{id}/html"));
        assert_eq!(html.status, 200);
        assert!(html.body.contains(number) && html.header("content-security-policy").unwrap().contains("sandbox"));
        let missing = browser.get(&format!("/admin/notifications/{}", uuid::Uuid::new_v4()));
        assert_eq!(missing.status, 404, "{}", missing.body);
    }

    fn a_failed_e_mail_is_resent_once_from_the_admin_pages(topology) {
        let sink = SmtpSink::start();
        sink.set_mode(Mode::Refuse);
        let shop = Shop::spawn(topology, |config| {
            mailing(Some(sink.url()))(config);
            config.outbox.max_attempts = 2;
        });
        let mug = shop.product_with_stock("MUG-001", 1290, 10);
        let order = shop.placed_order("ada@example.com", &[(&mug, 1)]);
        let order_id = order["id"].as_str().unwrap();
        eventually("the e-mail given up on", Duration::from_secs(15), || {
            emails_of(&shop, order_id).first().is_some_and(|email| email["status"] == "failed")
        });
        let id = emails_of(&shop, order_id)[0]["id"].as_str().unwrap().to_owned();
        let (page, action) = (format!("/admin/notifications/{id}"), format!("/admin/notifications/{id}/resend"));
        let mut browser = shop.signed_in_browser();
        assert!(browser.get(&page).body.contains(">Failed</span>"));
        sink.set_mode(Mode::Accept);
        let form = browser.confirmation_form(&action);
        let resent = browser.post(&form);
        assert_eq!((resent.status, resent.header("location")), (303, Some(page.as_str())), "{}", resent.body);
        assert!(browser.get(&page).body.contains("E-mail to ada@example.com queued again."));
        wait_for_messages(&sink, 1);
        assert!(sink.messages()[0].message_id().ends_with(".order_received@agora.localhost>"));
        eventually("the e-mail sent", Duration::from_secs(10), || emails_of(&shop, order_id)[0]["status"] == "sent");
        // The same confirmation posted again sends nothing, and says why.
        assert_eq!(browser.post(&form).status, 303);
        assert!(browser.get(&page).body.contains("was not sent again: it was sent on"));
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(sink.messages().len(), 1, "exactly one e-mail");
    }
}

#[test]
fn the_order_view_answers_while_the_notifications_service_is_down() {
    let mut shop = Shop::spawn(Topology::Split, mailing(None));
    let mug = shop.product_with_stock("MUG-001", 1290, 10);
    let order = shop.placed_order("ada@example.com", &[(&mug, 1)]);
    let id = order["id"].as_str().unwrap().to_owned();
    eventually("the e-mail stored", Duration::from_secs(10), || emails_of(&shop, &id).len() == 1);
    let service_address = shop.parts().service.as_ref().unwrap().address.clone();
    drop(shop.split.as_mut().unwrap().service.take());

    let asked = Instant::now();
    let view = shop.get(&format!("/api/orders/{id}")).ok_json(200);
    assert!(asked.elapsed() < Duration::from_secs(3), "{:?}", asked.elapsed());
    assert_eq!(view["notifications"], serde_json::json!([]));
    assert!(view["notifications_unavailable"].as_str().unwrap().contains("did not answer"), "{view}");
    assert_eq!(view["status"], "pending_payment", "the rest of the order stands");
    let mut browser = shop.signed_in_browser();
    let page = browser.get(&format!("/admin/orders/{id}"));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("E-mails unavailable"), "{}", page.body);
    let list = browser.get("/admin/notifications");
    assert_eq!(list.status, 503);
    assert!(list.body.contains("<html") || list.body.contains("<!DOCTYPE"), "a readable page: {}", list.body);
    let problem = shop.admin_get("/api/notifications").problem(503);
    assert_eq!(problem["detail"], "The notifications service is unavailable; try again shortly.");
    // Checkout does not need the service.
    shop.placed_order("bob@example.com", &[(&mug, 1)]);

    // Back on its address: the e-mail of the order placed meanwhile was waiting in its queue.
    let parts = shop.split.as_mut().unwrap();
    let mut config = parts.service_config.clone();
    config.bind = service_address.trim_start_matches("http://").to_owned();
    parts.service = Some(ServiceProcess::start_on(config));
    eventually("both e-mails listed again", Duration::from_secs(15), || {
        shop.admin_get("/api/notifications").ok_json(200)["items"].as_array().unwrap().len() == 2
    });
    assert_eq!(emails_of(&shop, &id).len(), 1);
}

#[test]
fn a_hung_notifications_service_costs_the_order_view_its_timeout_not_an_answer() {
    // Accepts connections and never answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let exchange = TestExchange::new();
    let app = TestApp::spawn_with(|config| {
        exchange.relaying(&amqp_url())(config);
        config.notifications_consumer = NotificationsConsumer::Service;
        config.notifications_service = Some(ServiceLink {
            url: format!("http://{}", hung.local_addr().unwrap()),
            timeout: Duration::from_millis(300),
        });
    });
    let mug = app.product_with_stock("MUG-001", 1290, 10);
    let order = app.placed_order("ada@example.com", &[(&mug, 1)]);
    let asked = Instant::now();
    let view = app.get(&format!("/api/orders/{}", order["id"].as_str().unwrap())).ok_json(200);
    let waited = asked.elapsed();
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(2), "{waited:?}");
    assert!(view["notifications_unavailable"].as_str().unwrap().contains("did not answer"), "{view}");
}

#[test]
fn in_the_split_topology_each_database_holds_only_its_own_tables() {
    let shop = Shop::spawn(Topology::Split, mailing(None));
    let mug = shop.product_with_stock("MUG-001", 1290, 10);
    shop.placed_order("ada@example.com", &[(&mug, 1)]);
    eventually("the e-mail stored", Duration::from_secs(10), || shop.emails_recorded() == 1);
    let tables = |url: &str| -> Vec<String> {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
        }
        let rows: Vec<Name> =
            diesel::sql_query("SELECT tablename::text AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
                .load(&mut PgConnection::establish(url).unwrap())
                .unwrap();
        rows.into_iter().map(|row| row.name).collect()
    };
    // The service's database: notifications' tables and its migrations, nothing to join with.
    assert_eq!(
        tables(&shop.parts().service_database.url),
        ["__diesel_schema_migrations", "notifications", "notifications_inbox", "notifications_ownership"]
    );
    // The shared database: no e-mail table (the main process worked without one), while the
    // rest of the shop is all there.
    let shared = tables(&shop.database.url);
    assert!(!shared.iter().any(|table| table == "notifications" || table == "notifications_inbox"), "{shared:?}");
    assert!(shared.iter().any(|table| table == "orders"));
    // And notifications declares no table of another module.
    assert!(agora::notifications::TABLES.reads.is_empty() && agora::notifications::TABLES.writes.is_empty());

    // The architecture page draws the topology from the running configuration and the service's answer.
    let page = shop.signed_in_browser().get("/admin/architecture");
    assert_eq!(page.status, 200);
    let service = &shop.parts().service.as_ref().unwrap().address;
    assert!(page.body.contains(&format!("agora notifications-service at {service}")), "{}", page.body);
    assert!(page.body.contains("its own (AGORA_NOTIFICATIONS_DATABASE_URL): ready, holds the e-mails"));
    assert!(page.body.contains("catalog, inventory, orders, payments, outbox, admin"));
}

/// A shared shop relaying to an exchange of its own, and an empty database for the service.
struct Move {
    app: TestApp,
    exchange: TestExchange,
    service_database: Arc<TestDatabase>,
}

impl Move {
    fn new() -> Move {
        let exchange = TestExchange::new();
        let app = TestApp::spawn_with(|config| {
            mailing(None)(config);
            exchange.relaying(&amqp_url())(config);
        });
        let service_database = Arc::new(TestDatabase::empty());
        service_database.holds_hand_made_events();
        Move { app, exchange, service_database }
    }

    fn config(&self) -> Config {
        let mut config = test_config(&self.app.database.url);
        mailing(None)(&mut config);
        self.exchange.relaying(&amqp_url())(&mut config);
        config.notifications_database_url = Some(self.service_database.url.clone());
        config
    }

    fn command(&self, args: &[&str], failpoint: Option<&str>) -> Command {
        let broker = self.exchange.settings(&amqp_url());
        let mut command = Command::new(env!("CARGO_BIN_EXE_agora"));
        command
            .args(["split", "notifications"])
            .args(args)
            .env("DATABASE_URL", &self.app.database.url)
            .env("AGORA_NOTIFICATIONS_DATABASE_URL", &self.service_database.url)
            .env("AGORA_BROKER_URL", &broker.url)
            .env("AGORA_BROKER_EXCHANGE", &broker.exchange)
            .env("AGORA_NOTIFICATIONS_QUEUE", &broker.notifications_queue)
            .env("RUST_LOG", "warn")
            .env_remove("AGORA_SPLIT_FAILPOINT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(point) = failpoint {
            command.env("AGORA_SPLIT_FAILPOINT", point);
        }
        command
    }

    /// Runs the command to its end: its exit status and what it printed.
    fn run(&self, args: &[&str]) -> (bool, String) {
        let output = self.command(args, None).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    }

    /// Runs the command until it pauses at `point`, then kills it with SIGKILL.
    fn kill_at(&self, args: &[&str], point: &str) -> String {
        let mut child: Child = self.command(args, Some(point)).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut printed = String::new();
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "the command never paused at {point}: {printed}");
            match lines.next() {
                Some(Ok(line)) => {
                    printed.push_str(&line);
                    printed.push('\n');
                    if line == format!("paused at {point}") {
                        break;
                    }
                }
                _ => panic!("the command ended before pausing at {point}: {printed}"),
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        printed
    }

    fn shared(&self, sql: &str) -> i64 {
        self.app.count(sql)
    }

    fn service(&self, sql: &str) -> i64 {
        count_in(&self.service_database.url, sql)
    }

    /// Every order's e-mail, once, in the service's database, once the service has drained its queue.
    fn assert_every_order_has_its_e_mail_once_in_the_service(&self) {
        let orders = self.shared("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'");
        eventually("every order's e-mail in the service's database", Duration::from_secs(20), || {
            self.service("SELECT count(*) FROM notifications") == orders
        });
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(self.service("SELECT count(*) FROM notifications"), orders, "none twice");
        assert_eq!(self.service("SELECT count(DISTINCT event_id) FROM notifications"), orders);
    }

    fn place_orders(&self, count: usize) {
        let mug = self.app.product_with_stock(&format!("MUG-{:03}", rand_suffix()), 1290, 1_000);
        for n in 0..count {
            self.app.placed_order(&format!("buyer{n}@example.com"), &[(&mug, 1)]);
        }
    }
}

fn rand_suffix() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32 % 1000
}

#[test]
fn splitting_a_running_shop_moves_every_e_mail_once_and_reports_its_write_window() {
    let shop = Move::new();
    shop.place_orders(12);
    eventually("12 e-mails in the shared database", Duration::from_secs(10), || {
        shop.shared("SELECT count(*) FROM notifications") == 12
    });

    // Checkouts go on during the move.
    let placing = AtomicBool::new(true);
    let mug = shop.app.product_with_stock("CAP-001", 900, 1_000);
    let (ok, printed, placed) = std::thread::scope(|scope| {
        let buyer = scope.spawn(|| {
            let mut placed = 0;
            while placing.load(Ordering::Relaxed) {
                shop.app.placed_order(&format!("during{placed}@example.com"), &[(&mug, 1)]);
                placed += 1;
            }
            placed
        });
        let (ok, printed) = shop.run(&[]);
        placing.store(false, Ordering::Relaxed);
        (ok, printed, buyer.join().unwrap())
    });
    assert!(ok, "{printed}");
    assert!(placed > 0, "orders were placed during the move");
    for expected in ["step 1: copied", "step 2: verified status stored", "step 3: cut over", "step 4: write window"] {
        assert!(printed.contains(expected), "{expected:?} in {printed}");
    }
    let window = shop.shared("SELECT write_window_ms::bigint FROM notifications_move");
    assert!(window < 5_000, "{window} ms");

    // The old table refuses writes, and the shop goes on selling.
    let refused = diesel::RunQueryDsl::execute(
        diesel::sql_query("UPDATE notifications SET attempts = attempts"),
        &mut shop.app.connect(),
    )
    .unwrap_err();
    assert!(refused.to_string().contains("write-locked"), "{refused}");
    shop.place_orders(3);

    let _service = ServiceProcess::start(shop.config());
    shop.assert_every_order_has_its_e_mail_once_in_the_service();
    assert_eq!(shop.shared("SELECT count(*) FROM event_deliveries WHERE status = 'dead'"), 0);
    // Run again, it knows it is done.
    let (ok, again) = shop.run(&[]);
    assert!(ok && again.contains("moved already"), "{again}");
}

#[test]
fn a_split_killed_at_each_step_resumes_when_run_again_and_says_so() {
    for (point, resumed) in [
        ("copying", "resuming: step 1 was interrupted"),
        ("copied", "resuming: the copy was made and verified"),
        ("cutover", "resuming: the copy was made and verified"),
        ("handover", "resuming after the cutover"),
    ] {
        let shop = Move::new();
        shop.place_orders(4);
        eventually("4 e-mails", Duration::from_secs(10), || shop.shared("SELECT count(*) FROM notifications") == 4);
        shop.kill_at(&[], point);
        // Killed in the cutover's transaction: nothing of it happened, the shop still writes e-mails here.
        if point == "cutover" {
            shop.place_orders(1);
            eventually("the e-mail written in process", Duration::from_secs(10), || {
                shop.shared("SELECT count(*) FROM notifications") == 5
            });
        }
        let (ok, printed) = shop.run(&[]);
        assert!(ok, "{point}: {printed}");
        assert!(printed.contains(resumed), "{point}: {resumed:?} in {printed}");
        let _service = ServiceProcess::start(shop.config());
        shop.place_orders(1);
        shop.assert_every_order_has_its_e_mail_once_in_the_service();
    }
}

#[test]
fn a_rollback_brings_back_what_the_service_recorded_and_survives_being_killed() {
    let shop = Move::new();
    shop.place_orders(5);
    eventually("5 e-mails", Duration::from_secs(10), || shop.shared("SELECT count(*) FROM notifications") == 5);
    let (ok, printed) = shop.run(&[]);
    assert!(ok, "{printed}");
    let service = ServiceProcess::start(shop.config());
    // Orders after the cutover: their e-mails are the service's.
    shop.place_orders(3);
    shop.assert_every_order_has_its_e_mail_once_in_the_service();

    shop.kill_at(&["--rollback"], "rollback-fenced");
    let ready: Value =
        ureq::get(&format!("{}/readyz", service.address)).call().unwrap().body_mut().read_json().unwrap();
    assert_eq!(ready["holds_records"], false, "the service stood aside");
    shop.kill_at(&["--rollback"], "rollback-copy");
    let (ok, printed) = shop.run(&["--rollback"]);
    assert!(ok, "{printed}");
    assert!(printed.contains("resuming the rollback"), "{printed}");
    assert_eq!(shop.shared("SELECT count(*) FROM notifications"), 8, "the service's e-mails came back");
    assert!(shop.exchange.counts(&shop.exchange.settings("").notifications_queue).is_none(), "the queue is gone");

    // The shop writes e-mails in process again, once each.
    shop.place_orders(2);
    eventually("10 e-mails in the shared database", Duration::from_secs(10), || {
        shop.shared("SELECT count(*) FROM notifications") == 10
    });
    assert_eq!(shop.shared("SELECT count(DISTINCT event_id) FROM notifications"), 10);
    let (ok, again) = shop.run(&["--rollback"]);
    assert!(ok && again.contains("rolled back already"), "{again}");
}

#[test]
fn contracting_drops_the_old_tables_and_the_way_back() {
    let shop = Move::new();
    let (ok, refused) = shop.run(&["--contract"]);
    assert!(!ok && refused.contains("not cut over"), "{refused}");
    shop.place_orders(2);
    eventually("2 e-mails", Duration::from_secs(10), || shop.shared("SELECT count(*) FROM notifications") == 2);
    let (ok, printed) = shop.run(&[]);
    assert!(ok, "{printed}");
    let (ok, printed) = shop.run(&["--contract"]);
    assert!(ok && printed.contains("contracted"), "{printed}");
    assert_eq!(
        shop.shared("SELECT count(*) FROM pg_tables WHERE tablename IN ('notifications', 'notifications_inbox')"),
        0
    );
    let (ok, refused) = shop.run(&["--rollback"]);
    assert!(!ok && refused.contains("can no longer be rolled back"), "{refused}");

    // The split shop starts on the contracted database and shows the moved e-mails.
    let service = ServiceProcess::start(shop.config());
    let split = shop.app.spawn_beside(|config| {
        *config = Config { ..shop.config() };
        config.notifications_consumer = NotificationsConsumer::Service;
        config.notifications_service =
            Some(ServiceLink { url: service.address.clone(), timeout: Duration::from_secs(1) });
    });
    let listed = split.admin_get("/api/notifications").ok_json(200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
}

#[test]
fn a_copy_that_differs_stops_the_cutover_and_changes_nothing() {
    let shop = Move::new();
    shop.place_orders(3);
    eventually("3 e-mails", Duration::from_secs(10), || shop.shared("SELECT count(*) FROM notifications") == 3);
    shop.kill_at(&[], "copied");
    // Damage the copy behind the command's back: a row no write since the copy has touched.
    diesel::RunQueryDsl::execute(
        diesel::sql_query(
            "UPDATE notifications SET subject = subject || ' (damaged)' WHERE id = (SELECT id FROM notifications ORDER BY id LIMIT 1)",
        ),
        &mut <diesel::PgConnection as diesel::Connection>::establish(&shop.service_database.url).unwrap(),
    )
    .unwrap();
    let (ok, printed) = shop.run(&[]);
    assert!(!ok, "{printed}");
    assert!(printed.contains("the copy differs from the shared table: status stored"), "{printed}");
    assert!(printed.contains("run the command again to copy every e-mail again"), "{printed}");
    // Nothing was cut over: the shop still writes its e-mails in process.
    assert_eq!(shop.shared("SELECT count(*) FROM notifications_move WHERE step = 'cut_over'"), 0);
    shop.place_orders(1);
    eventually("the e-mail written in process", Duration::from_secs(10), || {
        shop.shared("SELECT count(*) FROM notifications") == 4
    });
    // Run again, it copies every row again, the damaged one included, and cuts over.
    let (ok, printed) = shop.run(&[]);
    assert!(ok && printed.contains("resuming: step 1 was interrupted"), "{printed}");
    assert_eq!(shop.service("SELECT count(*) FROM notifications WHERE subject LIKE '%(damaged)'"), 0);
}

#[test]
fn a_move_rolled_back_before_its_cutover_leaves_the_shop_as_it_was() {
    let shop = Move::new();
    shop.place_orders(2);
    eventually("2 e-mails", Duration::from_secs(10), || shop.shared("SELECT count(*) FROM notifications") == 2);
    shop.kill_at(&[], "copied");
    let queue = shop.exchange.settings("").notifications_queue;
    assert!(shop.exchange.counts(&queue).is_some(), "step 1 declared the service's queue");
    let (ok, printed) = shop.run(&["--rollback"]);
    assert!(ok && printed.contains("the move had not cut over (step copied)"), "{printed}");
    assert!(shop.exchange.counts(&queue).is_none(), "the queue nobody consumes is gone");
    assert_eq!(shop.shared("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'notifications%'"), 0);
    shop.place_orders(1);
    eventually("the e-mail written in process", Duration::from_secs(10), || {
        shop.shared("SELECT count(*) FROM notifications") == 3
    });
}
