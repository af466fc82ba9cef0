//! The relay to RabbitMQ: every event leaves as a persistent message on the topic exchange with
//! the properties consumers rely on, once confirmed; refused and unroutable messages are retried;
//! the events of one order arrive in the order they were committed, also through two processes;
//! and a broker cut off does not stop the shop, and loses nothing.
//!
//! Each test has an exchange and queues of its own on the machine's RabbitMQ (see `rabbit`), and
//! cuts the broker off with a proxy of its own, never by stopping it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::helpers::{TestApp, concurrently, eventually};
use crate::metrics::{value, value_or_zero};
use crate::rabbit::{BrokerProxy, Received, TestExchange, amqp_url};

const RELAY: &str = "outbox.broker_relay";

/// An event row as the outbox stored it.
#[derive(QueryableByName, Debug)]
struct StoredEvent {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Text)]
    aggregate_type: String,
    #[diesel(sql_type = Text)]
    aggregate_id: String,
    #[diesel(sql_type = Text)]
    payload: String,
    #[diesel(sql_type = BigInt)]
    created_at: i64,
}

fn stored_events(app: &TestApp) -> Vec<StoredEvent> {
    diesel::sql_query(
        "SELECT id, event_type, aggregate_type, aggregate_id::text AS aggregate_id, payload::text AS payload,
                floor(extract(epoch FROM created_at))::bigint AS created_at
           FROM events ORDER BY id",
    )
    .load(&mut app.connect())
    .unwrap()
}

fn execute(app: &TestApp, sql: &str) {
    diesel::sql_query(sql).execute(&mut app.connect()).unwrap();
}

fn relay_deliveries(app: &TestApp, status: &str) -> i64 {
    app.count(&format!("SELECT count(*) FROM event_deliveries WHERE handler = '{RELAY}' AND status = '{status}'"))
}

fn broker_state(app: &TestApp) -> serde_json::Value {
    app.get("/readyz").ok_json(200)["broker"].clone()
}

fn ids(messages: &[Received]) -> BTreeSet<i64> {
    messages.iter().map(Received::message_id).collect()
}

#[track_caller]
fn wait_until_connected(app: &TestApp) {
    eventually("the relay to connect", Duration::from_secs(15), || broker_state(app)["state"] == "connected");
}

#[test]
fn every_event_leaves_as_a_persistent_message_with_its_id_type_aggregate_and_stored_payload() {
    let broker = TestExchange::new();
    let queue = broker.queue("#");
    let app = TestApp::spawn_with(broker.relaying(&amqp_url()));
    wait_until_connected(&app);
    let ready = broker_state(&app);
    assert_eq!(ready["exchange"], broker.name.as_str(), "{ready}");
    assert!(ready["since"].is_string() && ready.get("reason").is_none(), "{ready}");
    let openapi = app.get("/api/openapi.json").ok_json(200);
    let schemas = &openapi["components"]["schemas"];
    assert!(
        schemas["Status"]["properties"]["broker"].is_object(),
        "/readyz documents the broker: {}",
        schemas["Status"]
    );
    assert!(schemas["BrokerStatus"]["properties"]["state"].is_object(), "{}", schemas["BrokerStatus"]);

    // Six in stock and a threshold of five: the order publishes StockLow too.
    let mug = app.product_with_stock("MUG-001", 1290, 6);
    let order = app.placed_order("ada@example.com", &[(&mug, 1)]);
    app.pay(order["id"].as_str().unwrap(), "4242424242424242").ok_json(201);
    let stored = stored_events(&app);
    assert_eq!(stored.len(), 3, "{stored:?}");

    let messages = broker.take_until(&queue, Duration::from_secs(15), |taken| taken.len() >= 3);
    assert_eq!(ids(&messages), stored.iter().map(|event| event.id).collect(), "each event once");
    for event in &stored {
        let message = messages.iter().find(|message| message.message_id() == event.id).unwrap();
        assert_eq!(message.routing_key, format!("{}.{}", event.aggregate_type, event.event_type));
        assert_eq!(message.kind(), Some(event.event_type.as_str()));
        let properties = &message.properties;
        assert_eq!(properties.content_type().as_ref().map(|kind| kind.as_str()), Some("application/json"));
        assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
        assert_eq!(*properties.timestamp(), Some(event.created_at as u64));
        assert_eq!(properties.app_id().as_ref().map(|id| id.as_str()), Some("agora"));
        let headers = message.headers();
        assert_eq!(headers.get("aggregate_type"), Some(&event.aggregate_type), "{headers:?}");
        assert_eq!(headers.get("aggregate_id"), Some(&event.aggregate_id), "{headers:?}");
        let payload: serde_json::Value = serde_json::from_str(&event.payload).unwrap();
        assert_eq!(message.json(), payload, "the stored payload, not a reshaped one");
        assert_eq!(message.body, serde_json::to_vec(&payload).unwrap(), "compact JSON");
    }
    let routing_keys: BTreeSet<&str> = messages.iter().map(|message| message.routing_key.as_str()).collect();
    assert_eq!(routing_keys, BTreeSet::from(["order.OrderPlaced", "order.PaymentSucceeded", "product.StockLow"]));
    eventually("every relay delivery to complete", Duration::from_secs(5), || relay_deliveries(&app, "completed") == 3);
}

#[test]
fn an_unroutable_or_refused_message_is_retried_until_a_queue_takes_it_and_the_metrics_count_each() {
    let broker = TestExchange::new();
    let app = TestApp::spawn_with(broker.relaying(&amqp_url()));
    wait_until_connected(&app);
    let before = crate::metrics::scrape(&app);
    let counted = |scrape: &prometheus_parse::Scrape, what: &str| {
        value_or_zero(scrape, &format!("agora_relay_messages_{what}_total"), &[])
    };

    let mug = app.product_with_stock("MUG-001", 1290, 100);
    app.placed_order("ada@example.com", &[(&mug, 1)]);
    let placed = app.count("SELECT max(id) FROM events");
    let last_error = || {
        #[derive(QueryableByName)]
        struct Failure {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            attempts: i32,
            #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
            last_error: Option<String>,
        }
        let failure: Failure = diesel::sql_query(format!(
            "SELECT attempts, last_error FROM event_deliveries WHERE event_id = {placed} AND handler = '{RELAY}'"
        ))
        .get_result(&mut app.connect())
        .unwrap();
        (failure.attempts, failure.last_error.unwrap_or_default())
    };
    // No queue is bound: the broker returns the message, and the delivery is retried.
    eventually("the unroutable message to be retried", Duration::from_secs(10), || {
        let (attempts, error) = last_error();
        attempts >= 2 && error.contains("unroutable") && error.contains("order.OrderPlaced")
    });
    let page = app.signed_in_browser().get(&format!("/admin/events?handler={RELAY}"));
    assert!(page.body.contains("unroutable: no queue is bound"), "{}", page.body);

    // A queue that refuses everything: the broker nacks, and the delivery is retried again.
    let refusing = broker.refusing_queue("#");
    eventually("the refused message to be retried", Duration::from_secs(10), || last_error().1.contains("nack"));
    broker.delete_queue(&refusing);

    let queue = broker.queue("order.*");
    let messages = broker.take_until(&queue, Duration::from_secs(10), |taken| !taken.is_empty());
    assert_eq!(ids(&messages), BTreeSet::from([placed]));
    eventually("the delivery to complete", Duration::from_secs(5), || relay_deliveries(&app, "completed") == 1);
    assert!(last_error().0 >= 3, "it took several attempts");

    let after = crate::metrics::scrape(&app);
    assert!(counted(&after, "returned") - counted(&before, "returned") >= 2.0);
    assert!(counted(&after, "nacked") - counted(&before, "nacked") >= 1.0);
    assert!(counted(&after, "confirmed") - counted(&before, "confirmed") >= 1.0);
    assert!(counted(&after, "published") - counted(&before, "published") >= 4.0);
    assert!(value(&after, "agora_relay_lag_seconds_count", &[]) >= 1.0);
    assert_eq!(value(&after, "agora_relay_broker_up", &[]), 1.0);
    assert_eq!(value(&after, "agora_relay_backlog", &[]), 0.0);

    let architecture = app.signed_in_browser().get("/admin/architecture");
    assert_eq!(architecture.status, 200, "{}", architecture.body);
    let section = architecture.body.split("id=\"relay\"").nth(1).expect("a relay section");
    assert!(section.contains(&format!("<code>{}</code>", broker.name)), "{section}");
    assert!(section.contains("connected since"), "{section}");
    assert!(section.contains("p50 ≤") && section.contains("p99 ≤"), "{section}");
    assert!(section.contains("0 events waiting to be published"), "{section}");
}

#[test]
fn a_later_event_of_an_order_waits_for_an_earlier_dead_one_while_other_orders_pass() {
    let broker = TestExchange::new();
    let queue = broker.queue("#");
    // Events are written with the relay subscribed but not yet running, so that the test can
    // hold one back before any is published.
    let settings = broker.settings(&amqp_url());
    let shop = TestApp::spawn_with(move |config| config.broker = Some(settings));
    let mug = shop.product_with_stock("MUG-001", 1290, 100);
    let first = shop.placed_order("first@example.com", &[(&mug, 1)]);
    let first_placed = shop.count("SELECT max(id) FROM events");
    shop.pay(first["id"].as_str().unwrap(), "4242424242424242").ok_json(201);
    let first_paid = shop.count("SELECT max(id) FROM events");
    let second = shop.placed_order("second@example.com", &[(&mug, 1)]);
    shop.pay(second["id"].as_str().unwrap(), "4242424242424242").ok_json(201);
    execute(
        &shop,
        &format!(
            "UPDATE event_deliveries SET status = 'dead', attempts = 10, last_error = 'held back by the test'
              WHERE event_id = {first_placed} AND handler = '{RELAY}'"
        ),
    );

    let relay = shop.spawn_beside(broker.relaying(&amqp_url()));
    let second_order = second["id"].as_str().unwrap().to_owned();
    let passed = broker.take_until(&queue, Duration::from_secs(15), |taken| taken.len() >= 2);
    assert!(
        passed.iter().all(|message| message.headers()["aggregate_id"] == second_order),
        "only the second order's events pass: {passed:?}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(broker.take(&queue).is_empty(), "the first order's payment waits for its placement");
    assert_eq!(
        shop.count(&format!(
            "SELECT attempts FROM event_deliveries WHERE event_id = {first_paid} AND handler = '{RELAY}' AND status = 'pending'"
        )),
        0,
        "waiting spends no attempt"
    );

    let mut browser = relay.signed_in_browser();
    let page = browser.get(&format!("/admin/events?handler={RELAY}"));
    let row = page.body.split(&format!("<td>#{first_paid}</td>")).nth(1).expect("the waiting delivery is listed");
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains(&format!("waits for event #{first_placed}")), "{row}");

    let retry = format!("/admin/events/{first_placed}/{RELAY}/retry");
    let form = browser.confirmation_form(&retry);
    assert_eq!(browser.post(&form).status, 303);
    let released = broker.take_until(&queue, Duration::from_secs(15), |taken| taken.len() >= 2);
    let released: Vec<i64> = released.iter().map(Received::message_id).collect();
    assert_eq!(released, [first_placed, first_paid], "placed, then paid");
}

#[test]
fn a_confirmed_message_whose_completion_is_lost_is_published_again_with_the_same_id() {
    let broker = TestExchange::new();
    let queue = broker.queue("#");
    let settings = broker.settings(&amqp_url());
    let shop = TestApp::spawn_with(move |config| config.broker = Some(settings));
    let mug = shop.product_with_stock("MUG-001", 1290, 100);
    shop.placed_order("ada@example.com", &[(&mug, 1)]);
    let placed = shop.count("SELECT max(id) FROM events");

    // The test holds a lock that lets the relay claim and publish but not mark its delivery
    // completed: each attempt ends, after the broker's confirm, in a rollback (agora's lock
    // timeout), as a process killed at that moment would.
    let mut holder = shop.connect();
    diesel::sql_query("BEGIN").execute(&mut holder).unwrap();
    diesel::sql_query("LOCK TABLE event_deliveries IN SHARE MODE").execute(&mut holder).unwrap();
    let _relay = shop.spawn_beside(|config| {
        broker.relaying(&amqp_url())(config);
        config.pool.lock_timeout = Duration::from_millis(200);
    });
    let twice = broker.take_until(&queue, Duration::from_secs(15), |taken| taken.len() >= 2);
    assert_eq!(relay_deliveries(&shop, "pending"), 1, "not completed while the lock is held");
    diesel::sql_query("ROLLBACK").execute(&mut holder).unwrap();
    eventually("the delivery to complete", Duration::from_secs(10), || relay_deliveries(&shop, "completed") == 1);

    let again = broker.take(&queue);
    let copies: Vec<&Received> = twice.iter().chain(&again).collect();
    assert!(copies.iter().all(|copy| copy.message_id() == placed), "the same event each time");
    assert!(copies.iter().all(|copy| copy.body == copies[0].body), "the same message each time");
    assert_eq!(
        shop.count(&format!("SELECT attempts FROM event_deliveries WHERE event_id = {placed} AND handler = '{RELAY}'")),
        1,
        "the rolled-back attempts left no trace but the copies"
    );
}

/// One order's life through two processes, each step on one of them: placed, paid, shipped, and
/// every other one refunded.
fn live_an_order(apps: [&TestApp; 2], index: usize, product: &str) {
    let app = |step: usize| apps[(index + step) % 2];
    let order = app(0).placed_order(&format!("buyer{index}@example.com"), &[(product, 1)]);
    let id = order["id"].as_str().unwrap();
    app(1).pay(id, "4242424242424242").ok_json(201);
    app(2).admin_post(&format!("/api/orders/{id}/ship")).ok_json(200);
    if index.is_multiple_of(2) {
        app(3).admin_post(&format!("/api/orders/{id}/refund")).ok_json(200);
    }
}

#[test]
fn the_events_of_each_order_arrive_in_commit_order_through_two_relaying_processes_and_retries() {
    let broker = TestExchange::new();
    let queue = broker.queue("#");
    let proxy = BrokerProxy::start();
    let first = TestApp::spawn_with(broker.relaying(&proxy.url()));
    let second = first.spawn_beside(broker.relaying(&proxy.url()));
    wait_until_connected(&first);
    wait_until_connected(&second);
    let product = first.product_with_stock("MUG-001", 1000, 1000);

    // A backlog of many orders, each order's steps taken through both processes, while the
    // broker is cut off; then the first event of every other order is scheduled for a retry a
    // little later, as if its first attempt had failed. Both processes then drain the backlog at
    // once, and the orders held back must not have their later events overtake the first.
    proxy.cut();
    eventually("both relays to see the broker gone", Duration::from_secs(15), || {
        broker_state(&first)["state"] == "down" && broker_state(&second)["state"] == "down"
    });
    const ORDERS: usize = 24;
    concurrently(ORDERS, |index| live_an_order([&first, &second], index, &product));
    let stored = stored_events(&first);
    assert_eq!(stored.len(), ORDERS * 3 + ORDERS / 2, "placed, paid, shipped, and half refunded");
    execute(
        &first,
        &format!(
            "UPDATE event_deliveries
                SET attempts = 1, last_error = 'failed once, as the test says', next_attempt_at = now() + interval '1 second'
              WHERE handler = '{RELAY}'
                AND event_id IN (SELECT min(id) FROM events WHERE aggregate_type = 'order'
                                  GROUP BY aggregate_id HAVING min(id) % 2 = 0)"
        ),
    );
    proxy.restore();

    let every_id: BTreeSet<i64> = stored.iter().map(|event| event.id).collect();
    let messages = broker.take_until(&queue, Duration::from_secs(30), |taken| ids(taken).is_superset(&every_id));
    let mut by_order: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for message in &messages {
        let order = message.headers()["aggregate_id"].clone();
        by_order.entry(order).or_default().push((message.message_id(), message.kind().unwrap().to_owned()));
    }
    assert_eq!(by_order.len(), ORDERS);
    for (order, events) in &by_order {
        assert!(events.windows(2).all(|pair| pair[0].0 <= pair[1].0), "order {order} out of order: {events:?}");
        let kinds: Vec<&str> = events.iter().map(|(_, kind)| kind.as_str()).collect();
        assert!(kinds.starts_with(&["OrderPlaced", "PaymentSucceeded", "OrderShipped"]), "{order}: {kinds:?}");
    }
    eventually("every relay delivery to complete", Duration::from_secs(10), || {
        relay_deliveries(&first, "completed") == stored.len() as i64
    });
    let duplicates = messages.len() - every_id.len();
    assert_eq!(duplicates, 0, "no process died, so nothing was published twice");
}

#[test]
fn checkouts_go_on_while_the_broker_is_cut_off_and_every_event_follows_once_it_is_back() {
    let broker = TestExchange::new();
    let queue = broker.queue("#");
    let proxy = BrokerProxy::start();
    let app = TestApp::spawn_with(broker.relaying(&proxy.url()));
    wait_until_connected(&app);
    let mug = app.product_with_stock("MUG-001", 1290, 1000);

    proxy.cut();
    eventually("the relay to see the broker gone", Duration::from_secs(15), || broker_state(&app)["state"] == "down");
    const ORDERS: usize = 16;
    let statuses = concurrently(ORDERS, |index| {
        let order = app.place_order(&format!("buyer{index}@example.com"), &[(&mug, 1)]);
        if order.status != 201 {
            return order.status;
        }
        app.pay(order.json()["id"].as_str().unwrap(), "4242424242424242").status
    });
    assert!(statuses.iter().all(|status| *status == 201), "{statuses:?}");
    let ready = app.get("/readyz").ok_json(200);
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["broker"]["state"], "down", "{ready}");
    assert!(ready["broker"]["reason"].as_str().is_some_and(|reason| !reason.is_empty()), "{ready}");
    // The in-process e-mails do not wait for the broker.
    eventually("the e-mails of every order", Duration::from_secs(15), || {
        app.count("SELECT count(*) FROM notifications") == 2 * ORDERS as i64
    });
    let events = app.count("SELECT count(*) FROM events");
    assert_eq!(relay_deliveries(&app, "pending"), events, "every event waits in the outbox");
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM event_deliveries WHERE handler = '{RELAY}' AND attempts > 0")),
        0,
        "an unreachable broker spends no attempt"
    );
    let scrape = crate::metrics::scrape(&app);
    assert_eq!(value(&scrape, "agora_relay_broker_up", &[]), 0.0);
    assert_eq!(value(&scrape, "agora_relay_backlog", &[]), events as f64);
    assert!(broker.take(&queue).is_empty(), "nothing reached the broker");

    proxy.restore();
    let every_id: BTreeSet<i64> = stored_events(&app).iter().map(|event| event.id).collect();
    let messages = broker.take_until(&queue, Duration::from_secs(30), |taken| ids(taken).is_superset(&every_id));
    assert_eq!(ids(&messages), every_id, "every event arrived, none lost");
    eventually("the backlog to drain", Duration::from_secs(10), || relay_deliveries(&app, "pending") == 0);
    assert_eq!(broker_state(&app)["state"], "connected");
}
