//! The notifications module's own queue on the broker (`AGORA_NOTIFICATIONS_CONSUMER=broker`).
//!
//! A durable queue, bound to the events exchange for the events that make e-mails, is consumed
//! by one task per process (several processes share the queue). The messages at hand (up to the
//! prefetch) are taken into the inbox in one database transaction (see [`super::inbox`]) and
//! acknowledged only once that transaction has committed: a process that dies in between leaves
//! them unacknowledged, the broker delivers them again, and the inbox absorbs the copies. A
//! database error sends them back to the queue after a pause, to be taken again.
//!
//! A message that can never be taken (not JSON, an unknown type or version, not the event its
//! type says) is published to the dead-letter exchange `{queue}.dead` with its reason in the
//! header `x-agora-dead-reason` (and a sentence in `x-agora-dead-detail`), and acknowledged once
//! the broker has confirmed the dead letter; it is counted, and the consumer goes on.
//!
//! The broker may come and go: the task connects, declares what it needs, consumes, and on any
//! failure starts over after a pause that doubles up to [`RECONNECT_MAX`]. It never takes the
//! process down, and checkout never waits for it.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use prometheus::{IntCounterVec, Opts};

use super::inbox::{self, Dead, DeadReason, Envelope, Taken};
use super::{Fence, OrderEmails};
use crate::background::Doorbell;
use crate::background::{BackgroundTasks, StopSignal};
use crate::config::{BrokerSettings, redact_url_password};
use crate::db::Db;
use crate::error::CauseChain;
use crate::events::{EventType, ORDER_EMAILS_SUBSCRIPTION};
use crate::kernel::Module;

/// Messages the broker may hand over unacknowledged at once: what bounds the memory a burst of
/// large messages can take, while keeping the next message at hand as one is being taken.
pub const PREFETCH: u16 = 16;
/// The header of a dead letter that says why, in one word ([`DeadReason`]).
pub const DEAD_REASON_HEADER: &str = "x-agora-dead-reason";
/// The header of a dead letter that says why, in a sentence.
pub const DEAD_DETAIL_HEADER: &str = "x-agora-dead-detail";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// Pauses before a message that met a database error goes back to the queue: without one, the
/// broker would hand it straight back while the database is still down.
const REQUEUE_FIRST: Duration = Duration::from_millis(250);
const REQUEUE_MAX: Duration = Duration::from_secs(10);
/// How often a consumer waiting for messages looks at the stop signal.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// Dead letters, by reason (since the process started).
pub static DEAD_LETTERS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "agora_notifications_dead_letters_total",
            "Messages of the notifications queue sent to its dead-letter queue, by reason",
        ),
        &["reason"],
    )
    .expect("valid metric")
});

/// Messages taken from the queue, by what came of them.
pub static MESSAGES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "agora_notifications_messages_total",
            "Messages taken from the notifications queue: new (recorded), duplicate (in the inbox already), dead \
             (dead-lettered), requeued (a database error: back to the queue)",
        ),
        &["outcome"],
    )
    .expect("valid metric")
});

/// The dead-letter exchange and queue of `queue` (one name for both).
pub fn dead_letter_name(queue: &str) -> String {
    format!("{queue}.dead")
}

/// The binding of one event type. The relay's routing keys are `{aggregate kind}.{event type}`;
/// binding any kind (`*`) keeps the binding right whatever aggregate an event type is about.
pub fn binding_key(event_type: EventType) -> String {
    format!("*.{}", event_type.as_str())
}

/// Declares notifications' queue, its bindings and dead letters now, from a thread of its own
/// (the caller may be inside a runtime), within the connection timeout. Until the queue exists the
/// exchange routes the order events nowhere for notifications, so an installation switching to
/// the broker consumer does so only once this succeeded.
pub fn declare_now(settings: &BrokerSettings) -> Result<(), String> {
    on_broker_now(settings, "declared", |channel, settings| async move { declare(&channel, &settings).await })
}

/// Deletes notifications' queue (not its dead letters), as a rolled-back move leaves it to nobody.
pub fn delete_queue_now(settings: &BrokerSettings) -> Result<(), String> {
    on_broker_now(settings, "deleted", |channel, settings| async move {
        let queue = settings.notifications_queue.as_str().into();
        channel.queue_delete(queue, lapin::options::QueueDeleteOptions::default()).await.map(|_| ())
    })
}

/// Connects, does `work` on a channel, and closes (saying `done`), on a thread and runtime of its
/// own, within the connection timeout.
fn on_broker_now<F, Fut>(settings: &BrokerSettings, done: &'static str, work: F) -> Result<(), String>
where
    F: FnOnce(Channel, BrokerSettings) -> Fut + Send + 'static,
    Fut: Future<Output = lapin::Result<()>>,
{
    let settings = settings.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let working = async {
                let connection = Connection::connect(&settings.url, ConnectionProperties::default()).await?;
                let channel = connection.create_channel().await?;
                work(channel.clone(), settings.clone()).await?;
                channel.close(200, done.into()).await?;
                connection.close(200, done.into()).await
            };
            match tokio::time::timeout(CONNECT_TIMEOUT, working).await {
                Ok(Ok(())) => Ok(()),
                // lapin's errors do not carry the URL.
                Ok(Err(error)) => Err(error.to_string()),
                Err(_elapsed) => Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())),
            }
        })
    })
    .join()
    .unwrap_or_else(|_| Err("the broker's thread panicked".into()))
}

pub fn start(
    tasks: &mut BackgroundTasks,
    db: &Db,
    settings: &BrokerSettings,
    emails: Arc<OrderEmails>,
    sender: Doorbell,
    fence: Fence,
) {
    let consumer = Consumer { db: db.clone(), settings: settings.clone(), emails, sender, fence, moved: false.into() };
    tasks.spawn("notifications-consumer", move |stop| {
        // lapin is asynchronous; this thread is its runtime, and database work goes to the
        // runtime's blocking threads so that heartbeats go on meanwhile.
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(consumer.run(&stop)),
            Err(error) => log::error!("the notifications consumer cannot start its runtime: {error}"),
        }
    });
}

struct Consumer {
    db: Db,
    settings: BrokerSettings,
    emails: Arc<OrderEmails>,
    sender: Doorbell,
    fence: Fence,
    /// Set when the shared database refused an e-mail because notifications moved to its service:
    /// this process then stops consuming for good.
    moved: std::sync::atomic::AtomicBool,
}

/// How often a service that does not hold the e-mails of record looks whether it does now.
const HOLDER_CHECK: Duration = Duration::from_millis(500);

impl Consumer {
    /// Waits until this process may write e-mails (at once, unfenced); `false` if stopped first.
    async fn until_admitted(&self, stop: &StopSignal) -> bool {
        let mut said = false;
        loop {
            let (db, fence) = (self.db.clone(), self.fence);
            let admitted = tokio::task::spawn_blocking(move || {
                db.run_blocking(Module::Notifications.op("holds_records"), |conn| fence.admits(conn))
            })
            .await;
            match admitted {
                Ok(Ok(true)) => return true,
                Ok(Ok(false)) if !said => {
                    log::info!("the shared database holds the e-mails of record: waiting for the cutover to consume");
                    said = true;
                }
                Ok(Ok(false)) => {}
                Ok(Err(error)) => log::warn!("notifications consumer: {}", CauseChain(&error)),
                Err(panicked) => log::error!("notifications consumer: {panicked}"),
            }
            if sleep_unless_stopped(HOLDER_CHECK, stop).await {
                return false;
            }
        }
    }

    async fn run(&self, stop: &StopSignal) {
        let broker = redact_url_password(&self.settings.url);
        let mut pause = RECONNECT_FIRST;
        while !stop.is_stopped() {
            let mut consumed = false;
            match self.session(stop, &mut consumed).await {
                Ok(()) => return,
                Err(_) if self.moved.load(std::sync::atomic::Ordering::Relaxed) => {
                    log::error!(
                        "notifications has moved to its own service (agora split notifications): this process stops \
                         consuming {}; restart it with AGORA_NOTIFICATIONS_URL",
                        self.settings.notifications_queue
                    );
                    return;
                }
                Err(error) => {
                    if consumed {
                        pause = RECONNECT_FIRST;
                    }
                    log::warn!("notifications consumer, broker {broker}: {error:#}; connecting again in {pause:?}");
                }
            }
            if sleep_unless_stopped(pause, stop).await {
                return;
            }
            pause = (pause * 2).min(RECONNECT_MAX);
        }
    }

    /// Connects, declares, and consumes until stopped (`Ok`) or until something fails.
    async fn session(&self, stop: &StopSignal, consumed: &mut bool) -> anyhow::Result<()> {
        if !self.until_admitted(stop).await {
            return Ok(());
        }
        let properties = ConnectionProperties::default().with_connection_name("agora notifications".into());
        let connecting = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(&self.settings.url, properties));
        let connection = tokio::select! {
            connected = connecting => connected
                .map_err(|_| anyhow!("no connection within {CONNECT_TIMEOUT:?}"))?
                .context("cannot connect")?,
            () = until_stopped(stop) => return Ok(()),
        };
        let outcome = self.consume(&connection, stop, consumed).await;
        // Closing hands the messages still unacknowledged back to the queue at once.
        let _ = tokio::time::timeout(Duration::from_secs(2), connection.close(200, "stopping".into())).await;
        outcome
    }

    async fn consume(&self, connection: &Connection, stop: &StopSignal, consumed: &mut bool) -> anyhow::Result<()> {
        let channel = connection.create_channel().await?;
        declare(&channel, &self.settings).await.context("cannot declare the queues")?;
        // Dead letters are acknowledged only once the broker has confirmed their copy.
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        channel.basic_qos(PREFETCH, BasicQosOptions::default()).await?;
        let queue = &self.settings.notifications_queue;
        let mut deliveries = channel
            .basic_consume(queue.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await?;
        *consumed = true;
        log::info!("notifications consumes the queue {queue}, bound to the exchange {}", self.settings.exchange);
        let mut requeue_pause = REQUEUE_FIRST;
        loop {
            if stop.is_stopped() {
                return Ok(());
            }
            let next = tokio::select! {
                next = deliveries.next() => next,
                () = tokio::time::sleep(STOP_CHECK) => continue,
            };
            let mut batch = match next {
                Some(Ok(delivery)) => vec![delivery],
                Some(Err(error)) => return Err(error.into()),
                None => bail!("the broker ended the consumer (was the queue {queue} deleted?)"),
            };
            // Whatever else the broker has handed over already goes into the same transaction.
            while batch.len() < usize::from(PREFETCH) {
                match deliveries.next().now_or_never() {
                    Some(Some(Ok(delivery))) => batch.push(delivery),
                    Some(Some(Err(error))) => return Err(error.into()),
                    Some(None) | None => break,
                }
            }
            self.handle(&channel, batch, &mut requeue_pause, stop).await?;
        }
    }

    /// Takes a batch of messages: those that can never be events are dead-lettered, the rest are
    /// taken in one transaction and acknowledged once it has committed, each as it came out.
    async fn handle(
        &self,
        channel: &Channel,
        batch: Vec<Delivery>,
        requeue_pause: &mut Duration,
        stop: &StopSignal,
    ) -> anyhow::Result<()> {
        let mut readable = Vec::with_capacity(batch.len());
        let mut received = Vec::with_capacity(batch.len());
        for delivery in batch {
            let properties = &delivery.properties;
            let envelope = Envelope {
                message_id: properties.message_id().as_ref().map(ShortString::as_str),
                event_type: properties.kind().as_ref().map(ShortString::as_str),
                timestamp: *properties.timestamp(),
                body: &delivery.data,
            };
            match inbox::read(&envelope) {
                Ok(message) => {
                    received.push(message);
                    readable.push(delivery);
                }
                Err(dead) => self.dead_letter(channel, &delivery, &dead).await?,
            }
        }
        if readable.is_empty() {
            return Ok(());
        }
        let events: Vec<i64> = received.iter().map(|message| message.record.id).collect();
        let (db, emails, fence) = (self.db.clone(), self.emails.clone(), self.fence);
        let taken = tokio::task::spawn_blocking(move || {
            db.run_blocking(Module::Notifications.op("take_message"), |conn| {
                inbox::take_all(conn, &emails, &received, fence)
            })
        })
        .await
        .map_err(|panicked| anyhow!("taking the messages panicked: {panicked}"))
        .and_then(|taken| taken.map_err(|error| anyhow!("{}", CauseChain(&error))));
        let taken = match taken {
            Ok(taken) => taken,
            Err(error) => {
                log::warn!("events {events:?} not taken, back to the queue in {requeue_pause:?}: {error}");
                sleep_unless_stopped(*requeue_pause, stop).await;
                *requeue_pause = (*requeue_pause * 2).min(REQUEUE_MAX);
                for delivery in readable {
                    delivery.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await?;
                    MESSAGES.with_label_values(&["requeued"]).inc();
                }
                return Ok(());
            }
        };
        *requeue_pause = REQUEUE_FIRST;
        let mut handed_back = None;
        let mut pending = false;
        for ((delivery, taken), event) in readable.into_iter().zip(taken).zip(events) {
            match taken {
                Taken::New { pending: waits } => {
                    delivery.ack(BasicAckOptions::default()).await?;
                    MESSAGES.with_label_values(&["new"]).inc();
                    pending |= waits;
                }
                Taken::Duplicate => {
                    delivery.ack(BasicAckOptions::default()).await?;
                    MESSAGES.with_label_values(&["duplicate"]).inc();
                    log::debug!("event {event} was in the inbox already: the copy is dropped");
                }
                Taken::Dead(dead) => self.dead_letter(channel, &delivery, &dead).await?,
                Taken::NotHolder => {
                    delivery.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await?;
                    MESSAGES.with_label_values(&["requeued"]).inc();
                    handed_back = Some(event);
                }
            }
        }
        if pending {
            self.sender.ring();
        }
        if let Some(event) = handed_back {
            if self.fence == Fence::None {
                self.moved.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            // Ending the session hands back every message prefetched; the next one waits until
            // this process holds the e-mails again.
            bail!("the e-mails of record are no longer this database's: message {event} back to the queue");
        }
        Ok(())
    }

    /// Publishes a copy of the message, its reason added, to the dead-letter exchange, and
    /// acknowledges the message once the broker has confirmed the copy. Failing that, the message
    /// stays unacknowledged and comes back to be dead-lettered again.
    async fn dead_letter(&self, channel: &Channel, delivery: &Delivery, dead: &Dead) -> anyhow::Result<()> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(DEAD_REASON_HEADER.into(), AMQPValue::LongString(dead.reason.as_str().into()));
        let detail: String = dead.detail.chars().take(1000).collect();
        headers.insert(DEAD_DETAIL_HEADER.into(), AMQPValue::LongString(detail.as_str().into()));
        let dead_exchange = dead_letter_name(&self.settings.notifications_queue);
        let confirmation = channel
            .basic_publish(
                dead_exchange.as_str().into(),
                delivery.routing_key.clone(),
                BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
                &delivery.data,
                delivery.properties.clone().with_headers(headers),
            )
            .await?
            .await?;
        if !confirmation.is_ack() || confirmation.take_message().is_some() {
            bail!("the broker did not take the dead letter into {dead_exchange}");
        }
        delivery.ack(BasicAckOptions::default()).await?;
        DEAD_LETTERS.with_label_values(&[dead.reason.as_str()]).inc();
        MESSAGES.with_label_values(&["dead"]).inc();
        log::warn!(
            "message {:?} ({}) sent to the dead-letter queue {dead_exchange}: {}: {detail}",
            delivery.properties.message_id().as_ref().map(ShortString::as_str),
            delivery.routing_key,
            dead.reason.as_str(),
        );
        Ok(())
    }
}

/// Declares the events exchange as the relay does (durable topic), the dead-letter exchange and
/// queue, and the queue with its bindings. Declaring what exists with the same arguments changes
/// nothing, so every process does it on every connection.
async fn declare(channel: &Channel, settings: &BrokerSettings) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel
        .exchange_declare(settings.exchange.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default())
        .await?;
    let dead = dead_letter_name(&settings.notifications_queue);
    channel.exchange_declare(dead.as_str().into(), ExchangeKind::Fanout, durable, FieldTable::default()).await?;
    channel.queue_declare(dead.as_str().into(), QueueDeclareOptions::durable(), FieldTable::default()).await?;
    channel
        .queue_bind(
            dead.as_str().into(),
            dead.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    // Whatever the broker itself rejects from the queue lands with the dead letters too.
    let mut arguments = FieldTable::default();
    arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(dead.as_str().into()));
    let queue = settings.notifications_queue.as_str();
    channel.queue_declare(queue.into(), QueueDeclareOptions::durable(), arguments).await?;
    for event_type in ORDER_EMAILS_SUBSCRIPTION.events {
        channel
            .queue_bind(
                queue.into(),
                settings.exchange.as_str().into(),
                binding_key(*event_type).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Completes once a stop is asked for.
async fn until_stopped(stop: &StopSignal) {
    while !stop.is_stopped() {
        tokio::time::sleep(STOP_CHECK).await;
    }
}

/// Sleeps `pause` unless stopped first; returns whether it was stopped.
async fn sleep_unless_stopped(pause: Duration, stop: &StopSignal) -> bool {
    let deadline = tokio::time::Instant::now() + pause;
    while tokio::time::Instant::now() < deadline {
        if stop.is_stopped() {
            return true;
        }
        tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + STOP_CHECK)).await;
    }
    stop.is_stopped()
}

/// Dead letters by reason, every reason listed.
pub fn dead_letters() -> Vec<(DeadReason, u64)> {
    DeadReason::ALL
        .into_iter()
        .map(|reason| (reason, DEAD_LETTERS.with_label_values(&[reason.as_str()]).get()))
        .collect()
}
