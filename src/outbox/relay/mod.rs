//! The relay: the outbox's handler that publishes every event to RabbitMQ, as one persistent
//! message on a durable topic exchange, and completes a delivery only once the broker confirmed
//! it. It is an outbox subscriber like the others: a message the broker refuses (nack) or cannot
//! route to any queue (returned) is retried with backoff, dies after the last attempt, and can be
//! retried from the events page.
//!
//! The message contract, which consumers rely on:
//! - routing key `{aggregate kind}.{event type}` (`order.OrderPlaced`, `product.StockLow`);
//! - `message_id`: the event id, in decimal; consumers drop a message whose id they have seen,
//!   since a message may come twice (published, confirmed, then the process died before the
//!   delivery's transaction committed);
//! - `type`: the event type; `content_type`: `application/json`; `delivery_mode` 2 (persistent);
//!   `timestamp`: the event's `created_at` (seconds); `app_id`: `agora`;
//! - headers `aggregate_type` and `aggregate_id` (the UUID as a string);
//! - the body: the event's payload as stored, compact JSON.
//!
//! The events of one aggregate reach the exchange in the order they were committed: the relay is
//! one of [`super::ORDERED_HANDLERS`], so the next event of an order is claimed only once the
//! previous one is confirmed and its delivery completed.
//!
//! The dispatcher is synchronous and the AMQP client is not: the relay owns a small tokio
//! runtime. A task of that runtime keeps the connection up ([`link`]); a dispatcher worker
//! publishes a whole batch from its own thread through [`tokio::runtime::Runtime::block_on`] and
//! waits for the confirms there, inside the batch's transaction, so a crash before the commit
//! means publishing again (at least once), never losing.

mod link;
pub mod metrics;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation};
use tokio::sync::watch;

pub use link::{BrokerHealth, BrokerStatus};

use super::DeliveryStatus;
use super::dispatcher::{Attempt, EventRecord, Handler, Outcome};
use crate::background::BackgroundTasks;
use crate::background::Doorbell;
use crate::config::BrokerSettings;
use crate::events::BROKER_RELAY;
use crate::kernel::Module;

/// Deliveries one transaction publishes: their confirms are awaited together, so a batch costs
/// about one broker round trip (and one fsync of the broker's) rather than one per message.
const BATCH: i64 = 100;

/// How long the relay's worker gathers events once woken: under checkout load a batch then
/// carries several events for one transaction and one round of confirms, where it would carry
/// one each; when the shop is quiet, each event leaves this much later.
const LINGER: Duration = Duration::from_millis(10);

/// AMQP's `delivery_mode` of a message the broker writes to disk.
const PERSISTENT: u8 = 2;

/// An event as the message the relay publishes.
struct Message {
    routing_key: String,
    body: Vec<u8>,
    properties: BasicProperties,
}

impl Message {
    fn of(record: &EventRecord) -> Message {
        let aggregate = record.event.aggregate();
        let event_type = record.event.event_type().as_str();
        let mut headers = FieldTable::default();
        headers.insert("aggregate_type".into(), AMQPValue::LongString(aggregate.kind().into()));
        headers.insert("aggregate_id".into(), AMQPValue::LongString(aggregate.uuid().to_string().into()));
        Message {
            routing_key: record.event.event_type().routing_key(),
            body: serde_json::to_vec(&record.payload).expect("a JSON value serializes"),
            properties: BasicProperties::default()
                .with_message_id(record.id.to_string().into())
                .with_type(event_type.into())
                .with_content_type("application/json".into())
                .with_delivery_mode(PERSISTENT)
                .with_timestamp(record.created_at.timestamp().max(0) as u64)
                .with_app_id("agora".into())
                .with_headers(headers),
        }
    }
}

/// What became of one published message.
enum Published {
    Confirmed,
    /// Unroutable: confirmed, but no queue is bound for its routing key.
    Returned(String),
    Nacked,
    /// No confirm: the link failed or the confirm did not come in time.
    Unconfirmed(String),
}

/// The relay handler. Cheap to share: the dispatcher's workers publish through it at once.
pub struct Relay {
    exchange: String,
    /// How long a batch waits for its confirms: well under PostgreSQL's idle-in-transaction
    /// timeout, since the batch's transaction stays open meanwhile.
    confirm_timeout: Duration,
    runtime: RelayRuntime,
    shared: Arc<link::Shared>,
}

/// The relay's runtime: one worker thread drives the connection, its heartbeats and timers.
struct RelayRuntime(Option<tokio::runtime::Runtime>);

impl RelayRuntime {
    fn get(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("the runtime lives as long as the relay")
    }
}

impl Drop for RelayRuntime {
    fn drop(&mut self) {
        // Whichever thread lets go of the relay last, it must not wait here.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Relay {
    /// Starts connecting to the broker in the background (a thread of `tasks`, which closes the
    /// connection when the tasks stop) and returns the handler for the dispatcher. `health` is
    /// what the rest of the process reads of the link.
    pub fn start(
        tasks: &mut BackgroundTasks,
        settings: &BrokerSettings,
        health: BrokerHealth,
        confirm_timeout: Duration,
    ) -> Arc<Relay> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("broker-relay-io")
            .enable_all()
            .build()
            .expect("the OS refused to start the relay's runtime");
        let relay = Arc::new(Relay {
            exchange: settings.exchange.clone(),
            confirm_timeout,
            runtime: RelayRuntime(Some(runtime)),
            shared: Arc::new(link::Shared::new(health)),
        });
        let (stopping, stop_seen) = watch::channel(false);
        let link_task = relay.runtime.get().spawn(link::maintain(
            relay.shared.clone(),
            settings.clone(),
            confirm_timeout,
            stop_seen,
        ));
        let owner = relay.clone();
        tasks.spawn("broker-relay", move |stop| {
            while !stop.wait(Duration::from_secs(3600)) {}
            let _ = stopping.send(true);
            // The link task lets the batches in flight have their confirms, then closes the
            // connection politely.
            let runtime = owner.runtime.get();
            let patience = owner.confirm_timeout + Duration::from_secs(2);
            let _ = runtime.block_on(async { tokio::time::timeout(patience, link_task).await });
        });
        relay
    }

    /// Publishes every message, then waits for all their confirms (up to the confirm timeout).
    fn publish_all(&self, work: &[(EventRecord, Attempt)]) -> Vec<Outcome> {
        let Some(publishing) = self.shared.channel() else {
            let reason = self.shared.health.unavailable();
            return work.iter().map(|_| Outcome::Retry(reason.clone())).collect();
        };
        let messages: Vec<Message> = work.iter().map(|(record, _)| Message::of(record)).collect();
        let published = self.runtime.get().block_on(publish_and_confirm(
            &publishing.channel,
            &self.exchange,
            &messages,
            self.confirm_timeout,
        ));
        let generation = publishing.generation;
        drop(publishing);
        let mut broken = None;
        let outcomes = published
            .into_iter()
            .zip(work)
            .zip(&messages)
            .map(|((published, (record, _)), message)| match published {
                Published::Confirmed => {
                    let lag = (Utc::now() - record.created_at).num_microseconds().unwrap_or(i64::MAX);
                    metrics::confirmed(lag as f64 / 1e6);
                    Outcome::Done
                }
                Published::Returned(reply) => {
                    metrics::returned();
                    Outcome::Retry(format!(
                        "unroutable: no queue is bound to the exchange {} for {} ({reply})",
                        self.exchange, message.routing_key
                    ))
                }
                Published::Nacked => {
                    metrics::nacked();
                    Outcome::Retry(format!("the broker refused the message (nack) on the exchange {}", self.exchange))
                }
                Published::Unconfirmed(reason) => {
                    broken.get_or_insert_with(|| reason.clone());
                    Outcome::Retry(format!("not confirmed by the broker: {reason}"))
                }
            })
            .collect();
        if let Some(reason) = broken {
            self.shared.report_broken(generation, reason);
        }
        outcomes
    }
}

async fn publish_and_confirm(
    channel: &Channel,
    exchange: &str,
    messages: &[Message],
    confirm_timeout: Duration,
) -> Vec<Published> {
    let deadline = tokio::time::Instant::now() + confirm_timeout;
    let mut confirms = Vec::with_capacity(messages.len());
    for message in messages {
        let publishing = channel.basic_publish(
            exchange.into(),
            message.routing_key.as_str().into(),
            BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
            &message.body,
            message.properties.clone(),
        );
        confirms.push(tokio::time::timeout_at(deadline, publishing).await);
    }
    metrics::published(confirms.iter().filter(|confirm| matches!(confirm, Ok(Ok(_)))).count() as u64);
    let mut published = Vec::with_capacity(messages.len());
    for confirm in confirms {
        published.push(match confirm {
            Err(_elapsed) => Published::Unconfirmed("the publish did not go out in time".to_owned()),
            Ok(Err(error)) => Published::Unconfirmed(error.to_string()),
            Ok(Ok(confirm)) => match tokio::time::timeout_at(deadline, confirm).await {
                Err(_elapsed) => {
                    Published::Unconfirmed(format!("no confirm within {} ms", confirm_timeout.as_millis()))
                }
                Ok(Err(error)) => Published::Unconfirmed(error.to_string()),
                Ok(Ok(Confirmation::Ack(None))) => Published::Confirmed,
                Ok(Ok(Confirmation::Ack(Some(returned)))) => {
                    Published::Returned(format!("{} {}", returned.reply_code, returned.reply_text))
                }
                Ok(Ok(Confirmation::Nack(_))) => Published::Nacked,
                Ok(Ok(Confirmation::NotRequested)) => {
                    Published::Unconfirmed("the channel is not in confirm mode".to_owned())
                }
            },
        });
    }
    published
}

impl Handler for Relay {
    fn name(&self) -> &'static str {
        BROKER_RELAY
    }

    fn module(&self) -> Module {
        Module::Outbox
    }

    fn has_external_effects(&self) -> bool {
        true
    }

    /// Publishing again after a crash is what at least once allows (consumers drop duplicates by
    /// message id), so a batch may share a transaction, unlike e-mails.
    fn batch_size(&self) -> i64 {
        BATCH
    }

    /// One publisher per process: while it waits for a batch's confirms the next batch gathers,
    /// so its batches grow with the load; more workers would split them into more transactions
    /// (each with its commit), and the broker's confirms come no sooner. Other processes bring
    /// their own.
    fn workers(&self, _configured: usize) -> usize {
        1
    }

    fn linger(&self) -> Duration {
        LINGER
    }

    fn is_ready(&self) -> bool {
        self.shared.is_ready()
    }

    fn ring_when_ready(&self, doorbell: Doorbell) {
        self.shared.set_doorbell(doorbell);
    }

    fn handle(&self, _conn: &mut PgConnection, record: &EventRecord, attempt: Attempt) -> QueryResult<Outcome> {
        let mut outcomes = self.publish_all(&[(record.clone(), attempt)]);
        Ok(outcomes.pop().unwrap_or_else(|| Outcome::Retry("nothing was published".to_owned())))
    }

    fn handle_batch(&self, _conn: &mut PgConnection, work: &[(EventRecord, Attempt)]) -> Vec<Outcome> {
        self.publish_all(work)
    }
}

/// Deliveries the relay has yet to publish (pending, whether due or waiting for a retry or for an
/// earlier event of their aggregate), counted through the index on pending deliveries by handler.
pub fn backlog(conn: &mut PgConnection) -> QueryResult<i64> {
    crate::as_module!(conn, Module::Outbox);
    use crate::schema::event_deliveries::dsl::*;
    event_deliveries
        .filter(handler.eq(BROKER_RELAY))
        .filter(status.eq(DeliveryStatus::Pending))
        .count()
        .get_result(conn)
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::events::{CustomerSnapshot, DomainEvent, OrderSnapshot, PayloadVersion};
    use crate::ids::{OrderId, ProductId};

    #[test]
    fn a_message_carries_the_event_as_the_contract_says() {
        let order_id = OrderId(Uuid::from_u128(7));
        let event = DomainEvent::from(crate::events::OrderShipped {
            version: PayloadVersion::CURRENT,
            order_id,
            order: OrderSnapshot {
                number: "AG-000007".into(),
                placed_at: chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap(),
                customer: CustomerSnapshot { name: "Ada".into(), email: "ada@example.com".into() },
                lines: Vec::new(),
                total_minor: 0,
                currency: "EUR".into(),
                status_token: None,
            },
        });
        let created_at = chrono::DateTime::from_timestamp(1_780_000_000, 250_000_000).unwrap();
        let stored = serde_json::json!({"order_id": order_id.0, "carrier": "kept as stored"});
        let record = EventRecord { id: 42, created_at, event, payload: stored.clone() };
        let message = Message::of(&record);
        assert_eq!(message.routing_key, "order.OrderShipped");
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&message.body).unwrap(), stored);
        let properties = &message.properties;
        assert_eq!(properties.message_id().as_ref().map(|id| id.as_str()), Some("42"));
        assert_eq!(properties.kind().as_ref().map(|kind| kind.as_str()), Some("OrderShipped"));
        assert_eq!(properties.content_type().as_ref().map(|kind| kind.as_str()), Some("application/json"));
        assert_eq!(*properties.delivery_mode(), Some(2));
        assert_eq!(*properties.timestamp(), Some(1_780_000_000));
        assert_eq!(properties.app_id().as_ref().map(|id| id.as_str()), Some("agora"));
        let headers = properties.headers().as_ref().unwrap().inner();
        assert_eq!(headers.get("aggregate_type"), Some(&AMQPValue::LongString("order".into())));
        assert_eq!(headers.get("aggregate_id"), Some(&AMQPValue::LongString(order_id.0.to_string().into())));

        let stock = DomainEvent::from(crate::events::StockLow {
            version: PayloadVersion::CURRENT,
            product_id: ProductId(Uuid::nil()),
            sku: "MUG".into(),
            available: 1,
            threshold: 5,
        });
        assert_eq!(stock.event_type().routing_key(), "product.StockLow");
    }
}
