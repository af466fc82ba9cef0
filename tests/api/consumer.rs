//! Notifications consuming its own queue on the machine's RabbitMQ
//! (`AGORA_NOTIFICATIONS_CONSUMER=broker`). Each test declares an exchange and a queue of its own,
//! publishes the messages the relay would publish (a real order's stored events, with the
//! contract's properties), and deletes its exchanges and queues when it ends, however it ends.

use std::sync::Arc;
use std::time::Duration;

use agora::config::{BrokerSettings, Config, NotificationsConsumer};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Text, Uuid as SqlUuid};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually};
use crate::metrics::{scrape, value_or_zero};
use crate::notifications::{mailing, wait_for_messages};
use crate::rabbit::BrokerProxy;
use crate::smtp::{Mode, SmtpSink};

fn broker_url() -> String {
    std::env::var("AGORA_TEST_BROKER_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The test's own exchange and queue names on the machine's broker, and a connection to publish
/// and look with. Dropped, it deletes the exchange, the queue and the dead letters' exchange and
/// queue. Declare it before the app, so that the app (and its consumer, which would declare the
/// queue again) is gone first.
struct TestBroker {
    exchange: String,
    queue: String,
    runtime: Arc<tokio::runtime::Runtime>,
    driver: Option<(tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>)>,
    connection: Connection,
}

impl TestBroker {
    fn new() -> TestBroker {
        let runtime = Arc::new(tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap());
        // A thread inside the runtime drives lapin's I/O (heartbeats too) while the test waits.
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let driving = runtime.clone();
        let thread = std::thread::spawn(move || {
            let _ = driving.block_on(stopped);
        });
        let connection = runtime
            .handle()
            .block_on(Connection::connect(&broker_url(), ConnectionProperties::default()))
            .expect("RabbitMQ must be reachable for the broker tests");
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let broker = TestBroker {
            exchange: format!("agora.test.{suffix}.events"),
            queue: format!("agora.test.{suffix}.notifications"),
            runtime,
            driver: Some((stop, thread)),
            connection,
        };
        // As the relay declares it, so that the test can publish before the consumer is up.
        broker.block_on(async {
            let channel = broker.connection.create_channel().await?;
            let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
            channel
                .exchange_declare(broker.exchange.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default())
                .await
        });
        broker
    }

    fn block_on<T>(&self, work: impl Future<Output = lapin::Result<T>>) -> T {
        self.runtime.handle().block_on(work).unwrap_or_else(|error| panic!("RabbitMQ: {error}"))
    }

    fn dead_queue(&self) -> String {
        agora::notifications::dead_letter_name(&self.queue)
    }

    /// Notifications consuming from this broker's queue, reaching the broker at `url`.
    fn consuming_at(&self, url: String) -> impl FnOnce(&mut Config) + use<> {
        let (exchange, queue) = (self.exchange.clone(), self.queue.clone());
        move |config: &mut Config| {
            config.broker = Some(BrokerSettings { url, exchange, notifications_queue: queue });
            config.notifications_consumer = NotificationsConsumer::Broker;
        }
    }

    /// Messages ready in `queue` (not those handed to a consumer and not yet acknowledged), and
    /// its consumers; `None` if there is no such queue.
    fn counts(&self, queue: &str) -> Option<(u32, u32)> {
        self.runtime.handle().block_on(async {
            // A passive declaration of a missing queue closes its channel: one of its own.
            let channel = self.connection.create_channel().await.ok()?;
            let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
            let declared = channel.queue_declare(queue.into(), passive, FieldTable::default()).await.ok()?;
            let _ = channel.close(200, "done".into()).await;
            Some((declared.message_count(), declared.consumer_count()))
        })
    }

    #[track_caller]
    fn wait_for_consumer(&self) {
        eventually("the consumer on its queue", Duration::from_secs(20), || {
            self.counts(&self.queue).is_some_and(|(_, consumers)| consumers >= 1)
        });
    }

    /// Publishes as the relay does, and waits for the broker's confirm; the message must reach a
    /// queue.
    fn publish(&self, routing_key: &str, properties: BasicProperties, body: &[u8]) {
        let confirmation = self.block_on(async {
            let channel = self.connection.create_channel().await?;
            channel.confirm_select(ConfirmSelectOptions::default()).await?;
            let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
            let confirm = channel
                .basic_publish(self.exchange.as_str().into(), routing_key.into(), options, body, properties)
                .await?
                .await?;
            let _ = channel.close(200, "done".into()).await;
            Ok(confirm)
        });
        assert!(confirmation.is_ack(), "the broker took the message");
        assert!(confirmation.take_message().is_none(), "{routing_key} reached no queue");
    }

    fn publish_event(&self, event: &StoredEvent) {
        let body = serde_json::to_vec(&event.payload).unwrap();
        self.publish(&event.routing_key(), event.properties(), &body);
    }

    /// The next message of `queue`, taken off it.
    fn take(&self, queue: &str) -> Option<lapin::message::Delivery> {
        self.block_on(async {
            let channel = self.connection.create_channel().await?;
            let got = channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await?;
            Ok(got.map(|message| message.delivery))
        })
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let (queue, dead, exchange) = (self.queue.clone(), self.dead_queue(), self.exchange.clone());
        let deleted = self.runtime.handle().block_on(async {
            let channel = self.connection.create_channel().await?;
            for name in [&queue, &dead] {
                channel.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await?;
            }
            for name in [&dead, &exchange] {
                channel.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default()).await?;
            }
            self.connection.close(200, "done".into()).await
        });
        if let Err(error) = deleted {
            eprintln!("cannot delete the test's exchanges and queues ({exchange}, {queue}): {error}");
        }
        if let Some((stop, thread)) = self.driver.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

/// An event as the outbox stored it.
#[derive(QueryableByName, Debug, Clone)]
struct StoredEvent {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Text)]
    aggregate_type: String,
    #[diesel(sql_type = SqlUuid)]
    aggregate_id: uuid::Uuid,
    #[diesel(sql_type = Jsonb)]
    payload: Value,
}

impl StoredEvent {
    fn routing_key(&self) -> String {
        format!("{}.{}", self.aggregate_type, self.event_type)
    }

    /// The message properties of the relay's contract.
    fn properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert("aggregate_type".into(), AMQPValue::LongString(self.aggregate_type.as_str().into()));
        headers.insert("aggregate_id".into(), AMQPValue::LongString(self.aggregate_id.to_string().as_str().into()));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        BasicProperties::default()
            .with_message_id(self.id.to_string().into())
            .with_type(self.event_type.as_str().into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_timestamp(now)
            .with_app_id("agora".into())
            .with_headers(headers)
    }
}

/// The events of an order, oldest first.
fn events_of(app: &TestApp, order_id: &str) -> Vec<StoredEvent> {
    diesel::sql_query(
        "SELECT id, event_type, aggregate_type, aggregate_id, payload FROM events
          WHERE aggregate_id = $1::uuid ORDER BY id",
    )
    .bind::<Text, _>(order_id)
    .load(&mut app.connect())
    .unwrap()
}

fn event_of(app: &TestApp, order_id: &str, event_type: &str) -> StoredEvent {
    events_of(app, order_id).into_iter().find(|event| event.event_type == event_type).unwrap()
}

/// Background work on, quick retries, SMTP to `smtp_url` (or store-only), and notifications
/// consuming from `broker` at `url`.
fn consuming(broker: &TestBroker, url: String, smtp_url: Option<String>) -> impl FnOnce(&mut Config) + use<> {
    let (consume, mail) = (broker.consuming_at(url), mailing(smtp_url));
    move |config: &mut Config| {
        consume(config);
        mail(config);
    }
}

/// An order of one mug (of a product of its own) placed through the API; its id.
fn order(app: &TestApp, email: &str) -> String {
    let sku = format!("MUG-{}", app.count("SELECT count(*) FROM products") + 1);
    let mug = app.product_with_stock(&sku, 1290, 10);
    app.placed_order(email, &[(&mug, 1)])["id"].as_str().unwrap().to_owned()
}

/// Unsubscribes the relay, so that what reaches the queue is only what the test publishes.
fn only_the_test_publishes(app: &TestApp) {
    diesel::sql_query("DELETE FROM outbox_subscriptions WHERE handler = 'outbox.broker_relay'")
        .execute(&mut app.connect())
        .unwrap();
}

fn inbox_count(app: &TestApp, event: i64) -> i64 {
    app.count(&format!("SELECT count(*) FROM notifications_inbox WHERE event_id = {event}"))
}

#[test]
fn order_events_from_the_broker_become_one_e_mail_each_sent_once() {
    let broker = TestBroker::new();
    let sink = SmtpSink::start();
    let app = TestApp::spawn_with(consuming(&broker, broker_url(), Some(sink.url())));
    broker.wait_for_consumer();
    let id = order(&app, "ada@example.com");
    app.pay(&id, "4242424242424242").ok_json(201);
    // Consuming from the broker, notifications is no outbox subscriber: the relay publishes the
    // events, and the e-mails come from the queue.
    assert_eq!(app.count("SELECT count(*) FROM event_deliveries WHERE handler = 'notifications.order_emails'"), 0);
    let placed = event_of(&app, &id, "OrderPlaced");
    let paid = event_of(&app, &id, "PaymentSucceeded");
    wait_for_messages(&sink, 2);
    // Copies, as a relay that crashed before its commit publishes again: nothing more is sent.
    broker.publish_event(&placed);
    broker.publish_event(&paid);
    wait_for_messages(&sink, 2);
    let ids: Vec<String> = sink.messages().iter().map(|message| message.message_id()).collect();
    assert!(ids.contains(&format!("<event-{}.order_received@agora.localhost>", placed.id)), "{ids:?}");
    assert!(ids.contains(&format!("<event-{}.order_confirmation@agora.localhost>", paid.id)), "{ids:?}");
    let body =
        sink.messages().iter().find(|m| m.header("Subject").unwrap().contains("confirmed")).unwrap().decoded_body();
    assert!(body.contains("Total: €12.90"), "rendered as the outbox handler renders it: {body}");

    eventually("both e-mails recorded as sent", Duration::from_secs(10), || {
        let listed = app.admin_get(&format!("/api/notifications?order_id={id}")).ok_json(200);
        let items = listed["items"].as_array().unwrap().clone();
        items.len() == 2 && items.iter().all(|item| item["status"] == "sent" && item["attempts"] == 1)
    });
    assert_eq!((inbox_count(&app, placed.id), inbox_count(&app, paid.id)), (1, 1));
    assert_eq!(broker.counts(&broker.queue), Some((0, 1)), "nothing waits in the queue");
}

#[test]
fn a_message_delivered_three_times_makes_one_e_mail() {
    let broker = TestBroker::new();
    let app = TestApp::spawn_with(consuming(&broker, broker_url(), None));
    broker.wait_for_consumer();
    only_the_test_publishes(&app);
    let id = order(&app, "ada@example.com");
    let placed = event_of(&app, &id, "OrderPlaced");
    let duplicates =
        |app: &TestApp| value_or_zero(&scrape(app), "agora_notifications_messages_total", &[("outcome", "duplicate")]);
    let before = duplicates(&app);
    for _ in 0..3 {
        broker.publish_event(&placed);
    }
    eventually("two copies dropped as duplicates", Duration::from_secs(20), || duplicates(&app) >= before + 2.0);
    assert_eq!(app.count("SELECT count(*) FROM notifications"), 1);
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM notifications WHERE event_id = {} AND status = 'stored'", placed.id)),
        1
    );
    assert_eq!(inbox_count(&app, placed.id), 1);
    assert_eq!(app.count("SELECT count(*) FROM notifications_inbox"), 1);
    assert_eq!(broker.counts(&broker.queue), Some((0, 1)));
}

#[test]
fn a_message_is_acknowledged_only_once_its_e_mail_is_committed() {
    let broker = TestBroker::new();
    let configure = consuming(&broker, broker_url(), None);
    let app = TestApp::spawn_with(|config| {
        configure(config);
        config.pool.lock_timeout = Duration::from_millis(300);
    });
    broker.wait_for_consumer();
    only_the_test_publishes(&app);
    let id = order(&app, "ada@example.com");
    let placed = event_of(&app, &id, "OrderPlaced");

    // The test holds the e-mails' table: the consumer's transaction cannot complete.
    let requeued =
        |app: &TestApp| value_or_zero(&scrape(app), "agora_notifications_messages_total", &[("outcome", "requeued")]);
    let before = requeued(&app);
    let mut holder = app.connect();
    diesel::sql_query("BEGIN").execute(&mut holder).unwrap();
    diesel::sql_query("LOCK TABLE notifications IN ACCESS EXCLUSIVE MODE").execute(&mut holder).unwrap();
    broker.publish_event(&placed);
    eventually("the message sent back to the queue", Duration::from_secs(10), || requeued(&app) >= before + 1.0);
    // Its transaction left nothing behind: the inbox row went with the rollback.
    assert_eq!(inbox_count(&app, placed.id), 0);

    // Stopped meanwhile, the process leaves the message to the queue, whole. (The second process,
    // without background work, keeps the test's database.)
    let keeper = app.spawn_beside(broker.consuming_at(broker_url()));
    drop(app);
    eventually("the message waiting in the queue, unacknowledged", Duration::from_secs(5), || {
        broker.counts(&broker.queue) == Some((1, 0))
    });
    diesel::sql_query("ROLLBACK").execute(&mut holder).unwrap();
    drop(holder);

    let again = keeper.spawn_beside(consuming(&broker, broker_url(), None));
    eventually("the e-mail written", Duration::from_secs(20), || {
        again.count("SELECT count(*) FROM notifications WHERE status = 'stored'") == 1
    });
    assert_eq!(inbox_count(&again, placed.id), 1);
    drop(again);
    // Had it not been acknowledged, closing the connection would have handed it back.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(broker.counts(&broker.queue), Some((0, 0)), "acknowledged once committed");
}

/// The dead letters of the test's queue, as (reason, detail, message_id), in the order they came.
fn dead_letters(broker: &TestBroker) -> Vec<(String, String, Option<String>)> {
    let header = |delivery: &lapin::message::Delivery, name: &str| -> String {
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        match headers.inner().get(name) {
            Some(AMQPValue::LongString(text)) => String::from_utf8_lossy(text.as_bytes()).into_owned(),
            other => panic!("{name}: {other:?}"),
        }
    };
    std::iter::from_fn(|| broker.take(&broker.dead_queue()))
        .map(|delivery| {
            (
                header(&delivery, agora::notifications::DEAD_REASON_HEADER),
                header(&delivery, agora::notifications::DEAD_DETAIL_HEADER),
                delivery.properties.message_id().as_ref().map(|id| id.as_str().to_owned()),
            )
        })
        .collect()
}

#[test]
fn messages_that_can_never_be_e_mails_are_dead_letters_with_their_reason_and_the_consumer_goes_on() {
    let broker = TestBroker::new();
    let app = TestApp::spawn_with(consuming(&broker, broker_url(), None));
    broker.wait_for_consumer();
    only_the_test_publishes(&app);
    let id = order(&app, "ada@example.com");
    let placed = event_of(&app, &id, "OrderPlaced");
    let dead = |app: &TestApp, reason: &str| {
        value_or_zero(&scrape(app), "agora_notifications_dead_letters_total", &[("reason", reason)])
    };
    let reasons = ["not_json", "invalid", "unsupported_version", "unknown_type"];
    let before: Vec<f64> = reasons.iter().map(|reason| dead(&app, reason)).collect();

    let with_id = |id: &str| placed.properties().with_message_id(id.into());
    broker.publish("order.OrderPlaced", with_id("900001"), b"{\"order_id\": ");
    let mut missing = placed.payload.clone();
    missing.as_object_mut().unwrap().remove("order_id");
    broker.publish("order.OrderPlaced", with_id("900002"), &serde_json::to_vec(&missing).unwrap());
    let mut future = placed.payload.clone();
    future["version"] = json!(99);
    broker.publish("order.OrderPlaced", with_id("900003"), &serde_json::to_vec(&future).unwrap());
    broker.publish(
        "order.OrderPlaced",
        with_id("900004").with_type("OrderMisplaced".into()),
        &serde_json::to_vec(&placed.payload).unwrap(),
    );
    // A good message after them is taken as ever.
    broker.publish_event(&placed);
    eventually("the good message's e-mail", Duration::from_secs(20), || {
        app.count("SELECT count(*) FROM notifications WHERE status = 'stored'") == 1
    });

    let letters = dead_letters(&broker);
    let found: Vec<(&str, Option<&str>)> =
        letters.iter().map(|(reason, _, id)| (reason.as_str(), id.as_deref())).collect();
    assert_eq!(
        found,
        [
            ("not_json", Some("900001")),
            ("invalid", Some("900002")),
            ("unsupported_version", Some("900003")),
            ("unknown_type", Some("900004")),
        ]
    );
    assert!(letters[1].1.contains("missing field `order_id`"), "{}", letters[1].1);
    assert!(letters[2].1.contains("payload version 99 is not supported"), "{}", letters[2].1);
    assert_eq!(inbox_count(&app, placed.id), 1);
    assert_eq!(app.count("SELECT count(*) FROM notifications_inbox"), 1, "no dead letter reached the inbox");
    for (reason, before) in reasons.iter().zip(before) {
        assert!(dead(&app, reason) > before, "{reason} counted");
    }

    let page = app.signed_in_browser().get("/admin/notifications");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<h2 id=\"dead-letters\">Dead letters</h2>"), "{}", page.body);
    assert!(page.body.contains(&format!("<code>{}</code>", broker.dead_queue())), "{}", page.body);
    assert!(page.body.contains("Unsupported version<strong>"), "{}", page.body);
}

#[test]
fn the_sender_retries_a_refused_e_mail_until_the_smtp_server_takes_it() {
    let broker = TestBroker::new();
    let sink = SmtpSink::start();
    sink.set_mode(Mode::Refuse);
    let app = TestApp::spawn_with(consuming(&broker, broker_url(), Some(sink.url())));
    broker.wait_for_consumer();
    only_the_test_publishes(&app);
    let id = order(&app, "ada@example.com");
    let placed = event_of(&app, &id, "OrderPlaced");
    broker.publish_event(&placed);
    eventually("a few refused attempts", Duration::from_secs(10), || {
        app.count(&format!("SELECT attempts FROM notifications WHERE event_id = {}", placed.id)) >= 3
    });
    // The message did not wait for the mail server: it is acknowledged, the e-mail pending.
    assert_eq!(broker.counts(&broker.queue), Some((0, 1)));
    let pending = app.admin_get(&format!("/api/notifications?order_id={id}")).ok_json(200);
    assert_eq!(pending["items"][0]["status"], "pending");
    assert!(pending["items"][0]["last_error"].as_str().unwrap().contains("temporarily unavailable"), "{pending}");
    assert!(sink.messages().is_empty());

    sink.set_mode(Mode::Accept);
    wait_for_messages(&sink, 1);
    assert_eq!(sink.messages()[0].message_id(), format!("<event-{}.order_received@agora.localhost>", placed.id));
    eventually("the e-mail recorded as sent", Duration::from_secs(10), || {
        app.admin_get(&format!("/api/notifications?order_id={id}")).ok_json(200)["items"][0]["status"] == "sent"
    });
    let sent = app.admin_get(&format!("/api/notifications?order_id={id}")).ok_json(200);
    assert!(sent["items"][0]["last_error"].is_null());
    assert!(sent["items"][0]["attempts"].as_i64().unwrap() >= 4);
}

#[test]
fn a_failed_e_mail_is_resent_by_the_sender_after_a_confirmation() {
    let broker = TestBroker::new();
    let sink = SmtpSink::start();
    sink.set_mode(Mode::Refuse);
    let configure = consuming(&broker, broker_url(), Some(sink.url()));
    let app = TestApp::spawn_with(|config| {
        configure(config);
        config.outbox.max_attempts = 2;
    });
    broker.wait_for_consumer();
    only_the_test_publishes(&app);
    let id = order(&app, "ada@example.com");
    let placed = event_of(&app, &id, "OrderPlaced");
    broker.publish_event(&placed);
    eventually("the e-mail given up on", Duration::from_secs(10), || {
        app.count("SELECT count(*) FROM notifications WHERE status = 'failed'") == 1
    });
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(sink.attempts(), 2, "the configured maximum, then no more");
    let email = app.admin_get(&format!("/api/notifications?order_id={id}")).ok_json(200)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    sink.set_mode(Mode::Accept);
    let (page, action) = (format!("/admin/notifications/{email}"), format!("/admin/notifications/{email}/resend"));
    let mut browser = app.signed_in_browser();
    let form = browser.confirmation_form(&action);
    assert_eq!(form.field("attempts"), Some("2"));
    let resent = browser.post(&form);
    assert_eq!((resent.status, resent.header("location")), (303, Some(page.as_str())), "{}", resent.body);
    assert!(browser.get(&page).body.contains("E-mail to ada@example.com queued again."));
    wait_for_messages(&sink, 1);
    assert_eq!(sink.messages()[0].message_id(), format!("<event-{}.order_received@agora.localhost>", placed.id));
    eventually("the e-mail recorded as sent", Duration::from_secs(10), || {
        app.count(&format!("SELECT count(*) FROM notifications WHERE id = '{email}' AND status = 'sent'")) == 1
    });
    // The outbox had no part in it.
    assert_eq!(app.count("SELECT count(*) FROM event_deliveries WHERE handler = 'notifications.order_emails'"), 0);
    // A second post of the same confirmation finds it sent, and sends nothing.
    assert_eq!(browser.post(&form).status, 303);
    assert!(browser.get(&page).body.contains("The e-mail to ada@example.com was not sent again: it was sent on"));
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn the_consumer_comes_back_when_the_broker_does_and_orders_never_wait_for_it() {
    let broker = TestBroker::new();
    let proxy = BrokerProxy::start();
    let app = TestApp::spawn_with(consuming(&broker, proxy.url(), None));
    broker.wait_for_consumer();
    only_the_test_publishes(&app);
    let first = order(&app, "ada@example.com");
    broker.publish_event(&event_of(&app, &first, "OrderPlaced"));
    eventually("the first e-mail", Duration::from_secs(20), || app.count("SELECT count(*) FROM notifications") == 1);

    proxy.cut();
    eventually("the consumer gone from the queue", Duration::from_secs(10), || {
        broker.counts(&broker.queue).is_some_and(|(_, consumers)| consumers == 0)
    });
    // The shop goes on; the event waits in the durable queue.
    let second = order(&app, "bob@example.com");
    broker.publish_event(&event_of(&app, &second, "OrderPlaced"));
    std::thread::sleep(Duration::from_secs(2));
    // The first message too, when the cut came between its commit and its acknowledgement.
    let (waiting, consumers) = broker.counts(&broker.queue).unwrap();
    assert!(consumers == 0 && (waiting == 1 || waiting == 2), "{waiting} waiting, {consumers} consumers");
    assert_eq!(app.get("/healthz").status, 200);

    proxy.restore();
    eventually("the second e-mail, once the consumer is back", Duration::from_secs(40), || {
        app.count("SELECT count(*) FROM notifications") == 2
    });
    eventually("the queue drained", Duration::from_secs(10), || broker.counts(&broker.queue) == Some((0, 1)));
    assert_eq!(app.count("SELECT count(*) FROM notifications"), 2, "a first message taken again wrote nothing");
    assert_eq!(app.count("SELECT count(*) FROM notifications_inbox"), 2);
}

#[test]
fn a_start_that_cannot_declare_the_queue_keeps_the_e_mails_in_process() {
    let broker = TestBroker::new();
    let proxy = BrokerProxy::start();
    proxy.cut();
    let app = TestApp::spawn_with(consuming(&broker, proxy.url(), None));
    // The relay would publish into no queue of notifications': the outbox handler keeps the e-mails.
    let subscribed = "SELECT count(*) FROM outbox_subscriptions WHERE handler = 'notifications.order_emails'";
    assert_eq!(app.count(subscribed), 5);
    let id = order(&app, "ada@example.com");
    eventually("the order-received e-mail, written in process", Duration::from_secs(10), || {
        app.count(&format!("SELECT count(*) FROM notifications WHERE order_id = '{id}'")) == 1
    });
    drop(app);

    // Started again with the broker there, the queue is declared first, then the switch made.
    proxy.restore();
    let app = TestApp::spawn_with(consuming(&broker, proxy.url(), None));
    assert_eq!(app.count(subscribed), 0);
    assert!(broker.counts(&broker.queue).is_some(), "the queue exists");
}
