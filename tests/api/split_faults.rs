//! The split topology's faults, end to end: `agora notifications-service` as a real process on a
//! database of its own, fed through RabbitMQ (an exchange and queues of the test's own) by the
//! main process's relay, sending to an SMTP sink. The service is stopped, its database is stopped,
//! it is killed in the middle of a message; each test ends with every order's e-mail exactly
//! once, read from what the SMTP server received and from the service's database, and prints how
//! many were sent twice.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::broker_faults::{held_transactions, hold_writes};
use crate::cluster::Cluster;
use crate::helpers::{TestApp, TestDatabase, count_in, eventually, test_config};
use crate::rabbit::{BrokerProxy, TestExchange, amqp_url};
use crate::smtp::SmtpSink;
use crate::topology::{ServiceBinary, contracted_database, served_by};

/// The split shop with the service as a process of its own. Dropped in order: the main process,
/// the service, its database, the SMTP sink, the broker's names.
struct SplitShop {
    app: TestApp,
    service: ServiceBinary,
    service_database: Arc<TestDatabase>,
    sink: SmtpSink,
    exchange: TestExchange,
}

impl SplitShop {
    /// The service on `service_database` (it creates and migrates it if need be), consuming
    /// through `broker_url` with `env` added to its settings; then the main process in this one,
    /// on a contracted shared database, relaying straight to the broker.
    fn start(service_database: TestDatabase, broker_url: &str, env: &[(&'static str, String)]) -> SplitShop {
        // It holds no events: nothing there for the contract check to read.
        service_database.holds_hand_made_events();
        let (exchange, sink) = (TestExchange::new(), SmtpSink::start());
        let broker = exchange.settings(broker_url);
        let mut service_env = vec![
            ("AGORA_NOTIFICATIONS_DATABASE_URL", service_database.url.clone()),
            ("AGORA_BROKER_URL", broker.url),
            ("AGORA_BROKER_EXCHANGE", broker.exchange),
            ("AGORA_NOTIFICATIONS_QUEUE", broker.notifications_queue),
            ("AGORA_SMTP_URL", sink.url()),
            ("AGORA_OUTBOX_POLL_MS", "200".into()),
            ("AGORA_OUTBOX_BACKOFF_MS", "100".into()),
            ("AGORA_OUTBOX_BACKOFF_MAX_SECS", "1".into()),
        ];
        service_env.extend_from_slice(env);
        let service = ServiceBinary::start(&service_env);
        let shared = contracted_database();
        let mut config = test_config(&shared.url);
        exchange.relaying(&amqp_url())(&mut config);
        served_by(&mut config, &service.address());
        let shop = SplitShop {
            app: TestApp::spawn_configured(shared, config),
            service,
            service_database: Arc::new(service_database),
            sink,
            exchange,
        };
        eventually("the service consuming its queue", Duration::from_secs(20), || shop.queue() == Some((0, 1)));
        shop
    }

    /// The messages ready in the service's queue, and its consumers.
    fn queue(&self) -> Option<(u32, u32)> {
        self.exchange.counts(&self.exchange.settings("").notifications_queue)
    }

    fn service_count(&self, sql: &str) -> i64 {
        count_in(&self.service_database.url, sql)
    }

    /// The ids of the shared database's OrderPlaced events: one e-mail each.
    fn orders_placed(&self) -> BTreeSet<i64> {
        #[derive(QueryableByName)]
        struct Event {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        diesel::sql_query("SELECT id FROM events WHERE event_type = 'OrderPlaced'")
            .load::<Event>(&mut self.app.connect())
            .unwrap()
            .into_iter()
            .map(|event| event.id)
            .collect()
    }

    /// Every order's e-mail exactly once: at the SMTP server (one Message-ID per OrderPlaced
    /// event, none twice, none missing) and in the service's database (one e-mail per event, sent,
    /// its event in the inbox once). Prints the figures of `fault`.
    #[track_caller]
    fn assert_each_e_mail_sent_once(&self, fault: &str) {
        let events = self.orders_placed();
        eventually(&format!("{} e-mails at the SMTP server", events.len()), Duration::from_secs(90), || {
            self.sink.messages().len() >= events.len()
        });
        // Anything sent twice would arrive right behind.
        std::thread::sleep(Duration::from_secs(1));
        let message_ids: Vec<String> = self.sink.messages().iter().map(|message| message.message_id()).collect();
        let distinct: BTreeSet<String> = message_ids.iter().cloned().collect();
        let sent_twice = message_ids.len() - distinct.len();
        eprintln!("fault {fault}: {} e-mails, {sent_twice} sent twice", message_ids.len());
        assert_eq!(sent_twice, 0, "no e-mail sent twice");
        let expected: BTreeSet<String> =
            events.iter().map(|id| format!("<event-{id}.order_received@agora.localhost>")).collect();
        assert_eq!(distinct, expected, "an e-mail per order placed, none lost, none other");
        let orders = events.len() as i64;
        assert_eq!(self.service_count("SELECT count(*) FROM notifications"), orders);
        assert_eq!(self.service_count("SELECT count(DISTINCT event_id) FROM notifications"), orders);
        assert_eq!(self.service_count("SELECT count(*) FROM notifications WHERE status = 'sent'"), orders);
        assert_eq!(self.service_count("SELECT count(*) FROM notifications_inbox"), orders);
    }
}

#[test]
fn the_service_down_for_30_s_under_checkout_load_delays_e_mails_and_sends_each_once() {
    let mut shop = SplitShop::start(TestDatabase::empty(), &amqp_url(), &[]);
    let mug = shop.app.product_with_stock("MUG-001", 1290, 100_000);

    // Three shoppers who place an order every 200 ms, before, during and after the outage; each
    // checkout is marked as in the outage when the service was down at its start and its end.
    let (down, stop) = (AtomicBool::new(false), AtomicBool::new(false));
    let (checkouts, views, outage) = std::thread::scope(|scope| {
        let shoppers: Vec<_> = (0..3)
            .map(|shopper| {
                let (app, mug, down, stop) = (&shop.app, &mug, &down, &stop);
                scope.spawn(move || {
                    let mut checkouts = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let was_down = down.load(Ordering::Relaxed);
                        let email = format!("shopper{shopper}.{}@example.com", checkouts.len());
                        let status = app.place_order(&email, &[(mug, 1)]).status;
                        checkouts.push((status, was_down && down.load(Ordering::Relaxed)));
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    checkouts
                })
            })
            .collect();
        let stopping = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_secs(3));
        let (exit, took) = shop.service.terminate();
        assert!(exit.success() && took < Duration::from_secs(10), "a clean stop: {exit} after {took:?}");
        let stopped = Instant::now();
        down.store(true, Ordering::Relaxed);
        eventually("the outage's messages waiting in the queue", Duration::from_secs(10), || {
            shop.queue().is_some_and(|(ready, consumers)| ready >= 5 && consumers == 0)
        });
        // The order view of an order placed now, every few seconds of the outage.
        let mut views = Vec::new();
        while stopped.elapsed() < Duration::from_secs(25) {
            let order = shop.app.place_order("watcher@example.com", &[(&mug, 1)]);
            assert_eq!(order.status, 201, "{}", order.body);
            views.push(shop.app.get(&format!("/api/orders/{}", order.json()["id"].as_str().unwrap())));
            std::thread::sleep(Duration::from_secs(5));
        }
        std::thread::sleep(Duration::from_secs(30).saturating_sub(stopped.elapsed()));
        down.store(false, Ordering::Relaxed);
        shop.service.restart();
        let outage = stopped.elapsed();
        std::thread::sleep(Duration::from_secs(3));
        drop(stopping);
        let checkouts: Vec<(u16, bool)> = shoppers.into_iter().flat_map(|shopper| shopper.join().unwrap()).collect();
        (checkouts, views, outage)
    });

    let failed: Vec<u16> = checkouts.iter().map(|(status, _)| *status).filter(|status| *status != 201).collect();
    assert!(failed.is_empty(), "every checkout answered 201, not {failed:?}");
    let during = checkouts.iter().filter(|(_, in_outage)| *in_outage).count();
    assert!(during >= 50, "{during} checkouts during the outage");
    assert_eq!(shop.app.count("SELECT count(*) FROM orders") as usize, checkouts.len() + views.len());
    assert!(views.len() >= 4, "{} order views during the outage", views.len());
    for view in &views {
        assert_eq!(view.status, 200, "{}", view.body);
        let view = view.json();
        assert!(view["notifications_unavailable"].as_str().unwrap().contains("did not answer"), "{view}");
        assert_eq!(view["status"], "pending_payment", "the rest of the order stands");
    }
    eprintln!(
        "the service down for {:.1} s: {} checkouts, {during} of them in the outage",
        outage.as_secs_f64(),
        checkouts.len()
    );
    shop.assert_each_e_mail_sent_once("the service down for 30 s under checkout load");
}

/// Sets its flag when dropped: the shoppers stop even when the test fails while they shop.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn the_services_database_stopped_while_messages_arrive_loses_none_and_e_mails_once() {
    let cluster = Cluster::start(&[]);
    // The service reaches the broker through a proxy of the test's own, to cut it off for a moment.
    let proxy = BrokerProxy::start();
    let mut shop = SplitShop::start(TestDatabase::on_server(|name| cluster.url(name)), &proxy.url(), &[]);
    let mug = shop.app.product_with_stock("MUG-001", 1290, 100);
    let place = |orders: u32, who: &str| {
        for n in 0..orders {
            shop.app.placed_order(&format!("{who}{n}@example.com"), &[(&mug, 1)]);
        }
    };
    place(1, "before");
    eventually("the first e-mail sent", Duration::from_secs(20), || shop.sink.messages().len() == 1);

    // Messages arrive while the database is down: the service takes each, cannot record it, and
    // sends it back to the queue; once the database is back, it takes them, still running.
    cluster.stop();
    place(3, "first-outage");
    eventually("the service unready", Duration::from_secs(10), || shop.service.get("/readyz").status == 503);
    eventually("a message sent back to the queue", Duration::from_secs(20), || requeued(&shop.service) >= 1.0);
    cluster.start_again();
    eventually("the outage's e-mails sent", Duration::from_secs(30), || shop.sink.messages().len() >= 4);
    assert_eq!(shop.service.get("/readyz").status, 200);

    // Again, and the service cut from the broker while its database is down: it held every
    // message of the outage unacknowledged, so all of them are ready in the queue again.
    cluster.stop();
    let requeued_before = requeued(&shop.service);
    const DURING: u32 = 5;
    place(DURING, "second-outage");
    eventually("a message sent back to the queue", Duration::from_secs(20), || {
        requeued(&shop.service) > requeued_before
    });
    proxy.cut();
    eventually("every message of the outage ready in the queue", Duration::from_secs(10), || {
        shop.queue() == Some((DURING, 0))
    });
    proxy.restore();
    assert_eq!(shop.sink.messages().len(), 4);

    cluster.start_again();
    eventually("the service ready again", Duration::from_secs(20), || shop.service.get("/readyz").status == 200);
    eventually("the second outage's e-mails sent", Duration::from_secs(30), || shop.sink.messages().len() >= 9);

    // Started while its database is down, the service answers at once, says why it is not ready,
    // and starts consuming once the database is there.
    cluster.stop();
    shop.service.kill();
    shop.service.restart_unready();
    assert_eq!(shop.service.get("/healthz").status, 200);
    let unready = shop.service.get("/readyz");
    assert_eq!(unready.status, 503);
    assert!(unready.body.contains("starting: waiting for its database"), "{}", unready.body);
    assert_eq!(shop.service.admin_get("/api/emails").status, 503);
    place(2, "restarted-while-down");
    cluster.start_again();
    eventually("the service ready again", Duration::from_secs(30), || shop.service.get("/readyz").status == 200);
    shop.assert_each_e_mail_sent_once("the service's database stopped while messages arrive");
}

/// Messages the service sent back to its queue, by its own count.
fn requeued(service: &ServiceBinary) -> f64 {
    let response = service.admin_get("/metrics");
    assert_eq!(response.status, 200, "{}", response.body);
    let scrape = prometheus_parse::Scrape::parse(response.body.lines().map(|line| Ok(line.to_owned()))).unwrap();
    crate::metrics::value_or_zero(&scrape, "agora_notifications_messages_total", &[("outcome", "requeued")])
}

#[test]
fn the_service_killed_in_the_middle_of_a_message_takes_it_again_and_e_mails_once() {
    let service_database = TestDatabase::empty();
    agora::notifications::service::prepare_database(&service_database.url).unwrap();
    // The take's transaction waits in the trigger, between its inbox row and its e-mail, the
    // message unacknowledged.
    hold_writes(&service_database, "notifications", "INSERT", "true");
    // No timeout of agora's may end the held transaction before the kill does.
    let timeouts = [
        ("AGORA_DB_STATEMENT_TIMEOUT_MS", "120000".to_owned()),
        ("AGORA_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", "120000".to_owned()),
    ];
    let mut shop = SplitShop::start(service_database, &amqp_url(), &timeouts);
    let mug = shop.app.product_with_stock("MUG-001", 1290, 100);
    const ORDERS: u32 = 3;
    for n in 0..ORDERS {
        shop.app.placed_order(&format!("buyer{n}@example.com"), &[(&mug, 1)]);
    }
    eventually("the service held mid-message", Duration::from_secs(20), || {
        held_transactions(&shop.service_database) >= 1
    });
    assert_eq!(shop.queue(), Some((0, 1)), "the messages are with the service, unacknowledged");

    shop.service.kill();
    eventually("the messages back in the queue", Duration::from_secs(10), || shop.queue() == Some((ORDERS, 0)));
    eventually("the dead process's transaction rolled back", Duration::from_secs(10), || {
        held_transactions(&shop.service_database) == 0
    });
    assert_eq!(shop.service_count("SELECT count(*) FROM notifications_inbox"), 0);
    assert_eq!(shop.service_count("SELECT count(*) FROM notifications"), 0);
    assert!(shop.sink.messages().is_empty());
    shop.service_database.connect().batch_execute("DROP TRIGGER test_hold ON notifications").unwrap();

    shop.service.restart();
    shop.assert_each_e_mail_sent_once("the service killed in the middle of a message");
}
