//! The relay's link to the broker: one AMQP connection with one confirming channel, kept up by a
//! task of the relay's runtime, and what the process knows of it ([`BrokerHealth`]).
//!
//! The task connects, declares the exchange, hands the channel to the relay's publishers and
//! waits for the link to fail: a connection or channel error reported by lapin, or a publisher
//! that got no confirm in time. Then it drops the channel (the relay stops claiming work at once),
//! closes what is left and connects again after a pause that doubles up to [`RECONNECT_MAX`].
//! Nothing else ever waits for the broker: checkout and payments only write the outbox.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use rand::Rng;
use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::config::BrokerSettings;
use crate::outbox::dispatcher::Doorbell;

/// The first pause after a failed or lost connection; it doubles on each failure in a row.
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
/// The longest pause between two attempts: once the broker is back, the relay follows within it.
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// Connecting (TCP, AMQP handshake, channel, exchange) that takes longer than this has failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Asked of the broker unless the URL says otherwise: a link that went silent (a cable pulled, a
/// frozen broker) is found dead within two of these, where RabbitMQ's default would take minutes.
const HEARTBEAT_SECS: u16 = 10;

/// What `/readyz`, the metrics and the architecture page show of the broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BrokerStatus {
    /// `connecting` (the first connection is being made), `connected`, or `down` (reconnecting
    /// with backoff; events wait in the outbox meanwhile, and the shop works on).
    pub state: &'static str,
    /// The topic exchange events are published to.
    pub exchange: String,
    /// Since when it has been in this state.
    pub since: DateTime<Utc>,
    /// Why it is down: the last connection error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug)]
enum LinkState {
    Connecting,
    Connected,
    Down(String),
}

/// What this process knows of its link to the broker. The relay's connection task is its one
/// writer; `/readyz`, the metrics and the architecture page read it.
#[derive(Clone)]
pub struct BrokerHealth {
    inner: Arc<HealthInner>,
}

struct HealthInner {
    exchange: String,
    state: Mutex<(LinkState, DateTime<Utc>)>,
}

impl BrokerHealth {
    pub fn new(settings: &BrokerSettings) -> BrokerHealth {
        BrokerHealth {
            inner: Arc::new(HealthInner {
                exchange: settings.exchange.clone(),
                state: Mutex::new((LinkState::Connecting, Utc::now())),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, (LinkState, DateTime<Utc>)> {
        self.inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn status(&self) -> BrokerStatus {
        let (state, since) = self.state().clone();
        let (state, reason) = match state {
            LinkState::Connecting => ("connecting", None),
            LinkState::Connected => ("connected", None),
            LinkState::Down(reason) => ("down", Some(reason)),
        };
        BrokerStatus { state, exchange: self.inner.exchange.clone(), since, reason }
    }

    pub fn is_connected(&self) -> bool {
        matches!(self.state().0, LinkState::Connected)
    }

    fn report_connected(&self) {
        let mut state = self.state();
        log::info!("broker connected: publishing events to the exchange {}", self.inner.exchange);
        *state = (LinkState::Connected, Utc::now());
    }

    fn report_down(&self, reason: String) {
        let mut state = self.state();
        match &mut state.0 {
            LinkState::Down(last) => *last = reason,
            LinkState::Connected => {
                log::error!("broker link lost: {reason}; events wait in the outbox while the relay reconnects");
                *state = (LinkState::Down(reason), Utc::now());
            }
            LinkState::Connecting => {
                log::error!("cannot reach the broker: {reason}; events wait in the outbox while the relay retries");
                *state = (LinkState::Down(reason), Utc::now());
            }
        }
    }

    /// Why nothing can be published right now, for a delivery that got there first.
    pub fn unavailable(&self) -> String {
        match &self.state().0 {
            LinkState::Down(reason) => format!("the broker is unreachable: {reason}"),
            LinkState::Connecting | LinkState::Connected => "the broker link is being re-established".to_owned(),
        }
    }
}

/// What the connection task and the publishers share.
pub(super) struct Shared {
    pub(super) health: BrokerHealth,
    /// The channel publishers use, with the number of the connection it belongs to; `None`
    /// while there is no usable link.
    channel: Mutex<Option<(u64, Channel)>>,
    /// Set while the broker blocks publishers (a memory or disk alarm): publishes would hang.
    blocked: AtomicBool,
    /// Batches being published: a stopping relay lets them have their confirms before it closes.
    in_flight: AtomicUsize,
    settled: Notify,
    /// Why a publisher gave up on the link, for the connection task to act on.
    broken: Mutex<Option<(u64, String)>>,
    wake_task: Notify,
    doorbell: Mutex<Option<Doorbell>>,
}

impl Shared {
    pub(super) fn new(health: BrokerHealth) -> Shared {
        Shared {
            health,
            channel: Mutex::new(None),
            blocked: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            settled: Notify::new(),
            broken: Mutex::new(None),
            wake_task: Notify::new(),
            doorbell: Mutex::new(None),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Option<(u64, Channel)>> {
        self.channel.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The channel to publish a batch on, and its connection's number (to report it broken),
    /// held until the returned guard is dropped.
    pub(super) fn channel(&self) -> Option<Publishing<'_>> {
        if self.blocked.load(Ordering::Acquire) {
            return None;
        }
        let slot = self.slot();
        let (generation, channel) = slot.clone()?;
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Some(Publishing { shared: self, generation, channel })
    }

    /// Waits until no batch is being published, for at most `patience`.
    async fn settle(&self, patience: Duration) {
        let settled = async {
            loop {
                let notified = self.settled.notified();
                if self.in_flight.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(patience, settled).await;
    }

    pub(super) fn is_ready(&self) -> bool {
        !self.blocked.load(Ordering::Acquire) && self.slot().is_some()
    }

    pub(super) fn set_doorbell(&self, doorbell: Doorbell) {
        *self.doorbell.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(doorbell);
    }

    /// Deliveries waited while the link was down: wake the dispatcher's workers for them.
    fn ring(&self) {
        if let Some(doorbell) = &*self.doorbell.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) {
            doorbell.ring();
        }
    }

    /// A publisher found the link of connection `generation` unusable: publishing stops at once,
    /// and the connection task replaces the connection. A report about a connection already
    /// replaced is dropped.
    pub(super) fn report_broken(&self, generation: u64, reason: String) {
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|(current, _)| *current == generation) {
            *slot = None;
            *self.broken.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((generation, reason));
            self.wake_task.notify_one();
        }
    }

    fn broken_reason(&self, generation: u64) -> Option<String> {
        let mut broken = self.broken.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match broken.take() {
            Some((of, reason)) if of == generation => Some(reason),
            _ => None,
        }
    }
}

/// A batch being published on the channel of connection `generation`.
pub(super) struct Publishing<'a> {
    shared: &'a Shared,
    pub(super) generation: u64,
    pub(super) channel: Channel,
}

impl Drop for Publishing<'_> {
    fn drop(&mut self) {
        if self.shared.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.settled.notify_waiters();
        }
    }
}

/// Why a connection ended.
enum Ended {
    Lost(String),
    Stopped,
}

/// Keeps a link to the broker up until `stop` turns true, then closes it once the batches being
/// published have their confirms (within `patience`), so that stopping costs no attempt.
pub(super) async fn maintain(
    shared: Arc<Shared>,
    settings: BrokerSettings,
    patience: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut pause = RECONNECT_FIRST;
    let mut generation = 0;
    loop {
        let attempt = tokio::select! {
            attempt = connect(&settings) => attempt,
            _ = stop.changed() => return,
        };
        match attempt {
            Ok((connection, channel)) => {
                pause = RECONNECT_FIRST;
                generation += 1;
                let ended = serve(&shared, &connection, channel, generation, &mut stop).await;
                *shared.slot() = None;
                shared.blocked.store(false, Ordering::Release);
                if let Ended::Stopped = ended {
                    shared.settle(patience).await;
                }
                // A connection that broke answers nothing; one given up for a missing confirm
                // may: either way the close is brief, and the next attempt does not wait for it.
                let _ = tokio::time::timeout(Duration::from_secs(1), connection.close(200, "agora relay stops".into()))
                    .await;
                match ended {
                    Ended::Stopped => return,
                    Ended::Lost(reason) => shared.health.report_down(reason),
                }
            }
            Err(reason) => shared.health.report_down(reason),
        }
        let jittered = pause.mul_f64(rand::rng().random_range(0.5..=1.0));
        tokio::select! {
            () = tokio::time::sleep(jittered) => {}
            _ = stop.changed() => return,
        }
        pause = (pause * 2).min(RECONNECT_MAX);
    }
}

/// Hands `channel` to the publishers and waits for the connection to end.
async fn serve(
    shared: &Shared,
    connection: &Connection,
    channel: Channel,
    generation: u64,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let mut events = connection.events_listener();
    if !connection.status().connected() {
        return Ended::Lost("the connection closed as it opened".to_owned());
    }
    *shared.slot() = Some((generation, channel));
    shared.health.report_connected();
    shared.ring();
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(lapin::Event::Error(error)) => return Ended::Lost(error.to_string()),
                Some(lapin::Event::ConnectionBlocked(reason)) => {
                    log::warn!("the broker blocks publishing ({reason}); events wait in the outbox");
                    shared.blocked.store(true, Ordering::Release);
                }
                Some(lapin::Event::ConnectionUnblocked) => {
                    log::info!("the broker accepts messages again");
                    shared.blocked.store(false, Ordering::Release);
                    shared.ring();
                }
                Some(_) => {}
                None => return Ended::Lost("the connection ended".to_owned()),
            },
            () = shared.wake_task.notified() => {
                if let Some(reason) = shared.broken_reason(generation) {
                    return Ended::Lost(reason);
                }
            }
            _ = stop.changed() => return Ended::Stopped,
        }
    }
}

/// Connects, opens a channel in confirm mode and declares the exchange (durable, topic), within
/// [`CONNECT_TIMEOUT`]. The error says what failed, never with the URL (it may hold a password).
async fn connect(settings: &BrokerSettings) -> Result<(Connection, Channel), String> {
    let mut uri =
        AMQPUri::from_str(&settings.url).map_err(|_| "AGORA_BROKER_URL is not a valid AMQP URL".to_owned())?;
    uri.query.heartbeat.get_or_insert(HEARTBEAT_SECS);
    uri.query.connection_timeout.get_or_insert(CONNECT_TIMEOUT.as_millis() as u64);
    let exchange = settings.exchange.clone();
    let connecting = async move {
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("agora relay (pid {})", std::process::id()).into());
        let connection =
            Connection::connect_uri_with_runtime(uri, properties, lapin::runtime::default_runtime()?).await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
                FieldTable::default(),
            )
            .await?;
        Ok::<_, lapin::Error>((connection, channel))
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(link)) => Ok(link),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_elapsed) => Err(format!("no connection within {} s", CONNECT_TIMEOUT.as_secs())),
    }
}
