//! The broker's faults, end to end: the relay and notifications' consumer together on the
//! machine's RabbitMQ (an exchange and queues of the test's own), each test ending with every
//! event published at least once, each e-mail sent exactly once, and nothing lost. A witness queue
//! bound to everything sees each message the relay publishes; each test prints the duplicates the
//! fault produced (copies of one event on the broker), which the consumer's inbox absorbed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agora::config::{Config, NotificationsConsumer};
use diesel::connection::SimpleConnection;

use crate::helpers::{AgoraProcess, TestApp, TestDatabase, count_in, eventually};
use crate::rabbit::{BrokerProxy, Received, TestExchange, amqp_url};
use crate::smtp::SmtpSink;

const RELAY: &str = "outbox.broker_relay";

/// Background work on, relaying to `exchange` through `url`, and notifications consuming from its
/// queue there, sending to `smtp`.
fn relaying_and_consuming(exchange: &TestExchange, url: &str, smtp: String) -> impl FnOnce(&mut Config) + use<> {
    let relaying = exchange.relaying(url);
    move |config: &mut Config| {
        relaying(config);
        config.notifications_consumer = NotificationsConsumer::Broker;
        config.smtp_url = Some(smtp);
    }
}

/// The same installation as environment variables, for `agora serve` in a process of its own.
fn process_env(exchange: &TestExchange, smtp: &SmtpSink) -> Vec<(&'static str, String)> {
    let settings = exchange.settings(&amqp_url());
    vec![
        ("AGORA_BROKER_URL", settings.url),
        ("AGORA_BROKER_EXCHANGE", settings.exchange),
        ("AGORA_NOTIFICATIONS_QUEUE", settings.notifications_queue),
        ("AGORA_NOTIFICATIONS_CONSUMER", "broker".into()),
        ("AGORA_SMTP_URL", smtp.url()),
        ("AGORA_OUTBOX_POLL_MS", "200".into()),
        ("AGORA_OUTBOX_BACKOFF_MS", "100".into()),
        // The fault holds a transaction for seconds: no timeout of agora's may end it first.
        ("AGORA_DB_STATEMENT_TIMEOUT_MS", "120000".into()),
        ("AGORA_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", "120000".into()),
    ]
}

fn execute(app: &TestApp, sql: &str) {
    app.connect().batch_execute(sql).unwrap();
}

/// How many times each event id reached the witness queue.
fn copies(messages: &[Received]) -> BTreeMap<i64, usize> {
    let mut copies = BTreeMap::new();
    for message in messages {
        *copies.entry(message.message_id()).or_default() += 1;
    }
    copies
}

fn event_ids(app: &TestApp) -> BTreeSet<i64> {
    let last = app.count("SELECT coalesce(max(id), 0) FROM events");
    let first = app.count("SELECT coalesce(min(id), 1) FROM events");
    assert_eq!(app.count("SELECT count(*) FROM events"), last - first + 1, "ids without gaps in this test");
    (first..=last).collect()
}

/// Every e-mail arrived at the SMTP server exactly once, and is recorded sent once per event.
#[track_caller]
fn assert_each_e_mail_sent_once(app: &TestApp, sink: &SmtpSink, expected: usize) {
    let started = Instant::now();
    eventually(&format!("{expected} e-mails at the SMTP server"), Duration::from_secs(60), || {
        sink.messages().len() >= expected
    });
    println!("{expected} e-mails at the SMTP server {:?} after the check began", started.elapsed());
    // Anything sent twice would arrive right behind.
    std::thread::sleep(Duration::from_millis(1000));
    let message_ids: Vec<String> = sink.messages().iter().map(|message| message.message_id()).collect();
    let distinct: BTreeSet<&String> = message_ids.iter().collect();
    assert_eq!((message_ids.len(), distinct.len()), (expected, expected), "each e-mail once");
    assert_eq!(app.count("SELECT count(*) FROM notifications WHERE status = 'sent'"), expected as i64);
    assert_eq!(
        app.count("SELECT count(*) FROM notifications_inbox"),
        app.count("SELECT count(DISTINCT event_id) FROM notifications")
    );
}

#[test]
fn the_broker_gone_for_30_s_under_checkout_load_loses_nothing_and_sends_each_e_mail_once() {
    let exchange = TestExchange::new();
    let witness = exchange.queue("#");
    let proxy = BrokerProxy::start();
    let sink = SmtpSink::start();
    let app = TestApp::spawn_with(relaying_and_consuming(&exchange, &proxy.url(), sink.url()));
    eventually("the relay connected", Duration::from_secs(15), || {
        app.get("/readyz").json()["broker"]["state"] == "connected"
    });
    let queue = exchange.settings("").notifications_queue;
    eventually("the consumer on its queue", Duration::from_secs(20), || {
        exchange.counts(&queue).is_some_and(|(_, consumers)| consumers == 1)
    });
    let mug = app.product_with_stock("MUG-001", 1290, 100_000);

    // Two shoppers who place and pay an order every 250 ms, before, during and after the outage.
    let stop = AtomicBool::new(false);
    let (statuses, outage) = std::thread::scope(|scope| {
        let shoppers: Vec<_> = (0..2)
            .map(|shopper| {
                let (app, mug, stop) = (&app, &mug, &stop);
                scope.spawn(move || {
                    let mut statuses = Vec::new();
                    let mut index = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let order = app.place_order(&format!("shopper{shopper}.{index}@example.com"), &[(mug, 1)]);
                        statuses.push(order.status);
                        if order.status == 201 {
                            statuses.push(app.pay(order.json()["id"].as_str().unwrap(), "4242424242424242").status);
                        }
                        index += 1;
                        std::thread::sleep(Duration::from_millis(250));
                    }
                    statuses
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(3));
        proxy.cut();
        let cut = Instant::now();
        eventually("the relay to see the broker gone", Duration::from_secs(15), || {
            app.get("/readyz").json()["broker"]["state"] == "down"
        });
        std::thread::sleep(Duration::from_secs(30).saturating_sub(cut.elapsed()));
        let ready = app.get("/readyz");
        assert_eq!(ready.status, 200, "ready through the outage: {}", ready.body);
        proxy.restore();
        let outage = cut.elapsed();
        std::thread::sleep(Duration::from_secs(3));
        stop.store(true, Ordering::Relaxed);
        let statuses: Vec<u16> = shoppers.into_iter().flat_map(|shopper| shopper.join().unwrap()).collect();
        (statuses, outage)
    });
    assert!(statuses.iter().all(|status| *status == 201), "every checkout and payment answered 201");
    let orders = app.count("SELECT count(*) FROM orders");
    assert!(orders >= 100, "{orders} orders under load");

    let every_event = event_ids(&app);
    let published = exchange.take_until(&witness, Duration::from_secs(60), |taken| {
        copies(taken).keys().copied().collect::<BTreeSet<_>>().is_superset(&every_event)
    });
    let copies = copies(&published);
    assert_eq!(copies.keys().copied().collect::<BTreeSet<_>>(), every_event, "every event published, none lost");
    eventually("the relay's backlog drained", Duration::from_secs(20), || {
        app.count(&format!("SELECT count(*) FROM event_deliveries WHERE handler = '{RELAY}' AND status <> 'completed'"))
            == 0
    });
    // An order-received and a confirmation e-mail per order.
    assert_each_e_mail_sent_once(&app, &sink, 2 * orders as usize);
    let duplicates: usize = copies.values().map(|count| count - 1).sum();
    println!(
        "broker gone for {:.1} s under load: {orders} orders, {} events, {} messages, {duplicates} duplicates",
        outage.as_secs_f64(),
        every_event.len(),
        published.len()
    );
}

/// Holds every transaction that reaches `table` with `condition` (PL/pgSQL on NEW) in a sleep, so
/// that the test can kill agora at that point; agora's backends notice their client gone within
/// 100 ms and roll back, as when a process dies before its commit. Only sessions opened afterwards
/// check their client: the process to kill connects after this.
pub fn hold_writes(database: &TestDatabase, table: &str, when: &str, condition: &str) {
    let mut conn = database.connect();
    conn.batch_execute(&format!("ALTER DATABASE {} SET client_connection_check_interval = '100ms'", database.name))
        .unwrap();
    conn.batch_execute(&format!(
        "CREATE FUNCTION test_hold() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF {condition} THEN PERFORM pg_sleep(60); END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER test_hold BEFORE {when} ON {table} FOR EACH ROW EXECUTE FUNCTION test_hold();"
    ))
    .unwrap();
}

/// Transactions of `database` held by [`hold_writes`].
pub fn held_transactions(database: &TestDatabase) -> i64 {
    count_in(
        &database.url,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND wait_event = 'PgSleep'",
            database.name
        ),
    )
}

/// An arranging instance on the test's database, without background work, configured as the
/// processes the test kills, so that it subscribes what they subscribe.
fn shop(exchange: &TestExchange, smtp: &SmtpSink) -> TestApp {
    let (settings, smtp) = (exchange.settings(&amqp_url()), smtp.url());
    TestApp::spawn_with(move |config| {
        config.broker = Some(settings);
        config.notifications_consumer = NotificationsConsumer::Broker;
        config.smtp_url = Some(smtp);
    })
}

/// `agora serve` on the shop's database, once its consumer is on notifications' queue: what the
/// relay publishes before the queue first exists reaches only the queues bound then.
fn start_agora(shop: &TestApp, exchange: &TestExchange, env: &[(&'static str, String)]) -> AgoraProcess {
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let agora = AgoraProcess::start(&shop.database, &env);
    let queue = exchange.settings("").notifications_queue;
    eventually("the consumer on its queue", Duration::from_secs(20), || {
        exchange.counts(&queue).is_some_and(|(_, consumers)| consumers == 1)
    });
    agora
}

#[test]
fn agora_killed_between_the_brokers_confirm_and_the_deliverys_completion_publishes_again_and_e_mails_once() {
    let exchange = TestExchange::new();
    let witness = exchange.queue("#");
    let sink = SmtpSink::start();
    let shop = shop(&exchange, &sink);
    let env = process_env(&exchange, &sink);
    let mug = shop.product_with_stock("MUG-001", 1290, 100);
    // The relay's completion waits in the trigger: the broker has confirmed, the outbox not.
    hold_writes(
        &shop.database,
        "event_deliveries",
        "UPDATE",
        &format!("NEW.handler = '{RELAY}' AND NEW.status = 'completed'"),
    );
    let agora = start_agora(&shop, &exchange, &env);
    let order = agora.post_json("/api/orders", &crate::helpers::order_body("ada@example.com", &[(&mug, 1)]));
    assert_eq!(order.status, 201, "{}", order.body);
    let placed = shop.count("SELECT max(id) FROM events WHERE event_type = 'OrderPlaced'");

    let first = exchange.take_until(&witness, Duration::from_secs(20), |taken| copies(taken).contains_key(&placed));
    eventually("the relay's completion held", Duration::from_secs(10), || held_transactions(&shop.database) >= 1);
    // The consumer took the confirmed message meanwhile: the e-mail is written and sent.
    assert_each_e_mail_sent_once(&shop, &sink, 1);

    agora.kill();
    eventually("the dead process's transaction rolled back", Duration::from_secs(10), || {
        held_transactions(&shop.database) == 0
    });
    let pending = format!("SELECT count(*) FROM event_deliveries WHERE handler = '{RELAY}' AND status = 'pending'");
    assert_eq!(shop.count(&pending), 1, "the confirmed message's delivery is not completed");
    execute(&shop, "DROP TRIGGER test_hold ON event_deliveries");

    let _again = start_agora(&shop, &exchange, &env);
    eventually("the delivery completed", Duration::from_secs(20), || shop.count(&pending) == 0);
    let second = exchange.take_until(&witness, Duration::from_secs(10), |taken| copies(taken).contains_key(&placed));
    let all: Vec<Received> = first.into_iter().chain(second).collect();
    assert_eq!(copies(&all)[&placed], 2, "published once before the kill and once after");
    assert!(all.iter().all(|message| message.body == all[0].body), "the same message both times");
    // The inbox absorbed the copy: no second e-mail.
    assert_each_e_mail_sent_once(&shop, &sink, 1);
    assert_eq!(shop.count(&format!("SELECT count(*) FROM notifications_inbox WHERE event_id = {placed}")), 1);
    println!("agora killed between confirm and completion: 1 event, 2 messages, 1 duplicate, 1 e-mail");
}

#[test]
fn the_consumer_killed_in_the_middle_of_a_message_takes_it_again_and_e_mails_once() {
    let exchange = TestExchange::new();
    let witness = exchange.queue("#");
    let sink = SmtpSink::start();
    let shop = shop(&exchange, &sink);
    let env = process_env(&exchange, &sink);
    let mug = shop.product_with_stock("MUG-001", 1290, 100);
    // The consumer's transaction waits in the trigger, its message taken and unacknowledged.
    hold_writes(&shop.database, "notifications_inbox", "INSERT", "true");
    let agora = start_agora(&shop, &exchange, &env);
    let order = agora.post_json("/api/orders", &crate::helpers::order_body("ada@example.com", &[(&mug, 1)]));
    assert_eq!(order.status, 201, "{}", order.body);
    let placed = shop.count("SELECT max(id) FROM events WHERE event_type = 'OrderPlaced'");
    exchange.take_until(&witness, Duration::from_secs(20), |taken| copies(taken).contains_key(&placed));
    eventually("the consumer held mid-message", Duration::from_secs(10), || held_transactions(&shop.database) >= 1);
    let queue = exchange.settings("").notifications_queue;
    assert_eq!(exchange.counts(&queue), Some((0, 1)), "the message is with the consumer, unacknowledged");

    agora.kill();
    eventually("the message back in the queue", Duration::from_secs(10), || exchange.counts(&queue) == Some((1, 0)));
    eventually("the dead process's transaction rolled back", Duration::from_secs(10), || {
        held_transactions(&shop.database) == 0
    });
    assert_eq!(shop.count("SELECT count(*) FROM notifications_inbox"), 0);
    assert_eq!(shop.count("SELECT count(*) FROM notifications"), 0);
    execute(&shop, "DROP TRIGGER test_hold ON notifications_inbox");

    let _again = start_agora(&shop, &exchange, &env);
    assert_each_e_mail_sent_once(&shop, &sink, 1);
    eventually("the queue empty", Duration::from_secs(10), || {
        exchange.counts(&queue).is_some_and(|(ready, _)| ready == 0)
    });
    assert_eq!(shop.count(&format!("SELECT count(*) FROM notifications_inbox WHERE event_id = {placed}")), 1);
    println!("consumer killed mid-message: 1 event, delivered to the consumer twice, 1 e-mail");
}
