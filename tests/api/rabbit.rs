//! The machine's RabbitMQ, as the broker tests use it: an exchange and queues of the test's own
//! (names with a UUID), read back with lapin and deleted when the test ends, failing or not; and
//! a TCP proxy of the test's own between agora and RabbitMQ, to cut the broker off without
//! touching it.
//!
//! `AGORA_TEST_BROKER_URL` names the broker; default `amqp://guest:guest@127.0.0.1:5672/%2f`.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agora::config::{BrokerSettings, Config};
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

pub fn amqp_url() -> String {
    std::env::var("AGORA_TEST_BROKER_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A message as a consumer received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub routing_key: String,
    pub properties: BasicProperties,
    pub body: Vec<u8>,
}

impl Received {
    pub fn message_id(&self) -> i64 {
        let id = self.properties.message_id().as_ref().expect("every message has an id");
        id.as_str().parse().unwrap_or_else(|_| panic!("message_id {id} is the decimal event id"))
    }

    pub fn kind(&self) -> Option<&str> {
        self.properties.kind().as_ref().map(|kind| kind.as_str())
    }

    /// The headers whose values are strings.
    pub fn headers(&self) -> BTreeMap<String, String> {
        let Some(headers) = self.properties.headers() else { return BTreeMap::new() };
        headers
            .inner()
            .iter()
            .filter_map(|(name, value)| match value {
                AMQPValue::LongString(text) => Some((name.to_string(), text.to_string())),
                AMQPValue::ShortString(text) => Some((name.to_string(), text.to_string())),
                _ => None,
            })
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// An exchange of the test's own on the machine's RabbitMQ, and the queues bound to it; all are
/// deleted on drop.
pub struct TestExchange {
    pub name: String,
    runtime: tokio::runtime::Runtime,
    connection: Connection,
    channel: Channel,
    queues: Mutex<Vec<String>>,
}

impl TestExchange {
    pub fn new() -> TestExchange {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let name = format!("agora.test.{}", uuid::Uuid::new_v4().simple());
        let (connection, channel) = runtime.block_on(async {
            let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
                .await
                .expect("RabbitMQ must be reachable for the broker tests (AGORA_TEST_BROKER_URL)");
            let channel = connection.create_channel().await.unwrap();
            // As the relay declares it, so either may come first.
            channel
                .exchange_declare(
                    name.as_str().into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
                    FieldTable::default(),
                )
                .await
                .unwrap();
            (connection, channel)
        });
        TestExchange { name, runtime, connection, channel, queues: Mutex::new(Vec::new()) }
    }

    /// The broker settings of an agora relaying to this exchange through `url`.
    pub fn settings(&self, url: &str) -> BrokerSettings {
        BrokerSettings {
            url: url.to_owned(),
            exchange: self.name.clone(),
            notifications_queue: format!("{}.notifications", self.name),
        }
    }

    /// Background work on, relaying to this exchange through `url`, with quick retries and polls.
    pub fn relaying(&self, url: &str) -> impl FnOnce(&mut Config) + use<> {
        let settings = self.settings(url);
        move |config: &mut Config| {
            config.broker = Some(settings);
            config.outbox.run_in_server = true;
            config.outbox.backoff_base = Duration::from_millis(100);
            config.outbox.backoff_max = Duration::from_millis(500);
            config.outbox.poll_interval = Duration::from_millis(300);
        }
    }

    /// A queue of the test's own bound to the exchange with `binding` (`#` for everything).
    pub fn queue(&self, binding: &str) -> String {
        self.queue_with(binding, FieldTable::default())
    }

    /// A queue that refuses every message (no room, and the overflow rule rejects publishing),
    /// so that the broker nacks what is routed to it.
    pub fn refusing_queue(&self, binding: &str) -> String {
        let mut arguments = FieldTable::default();
        arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
        arguments.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
        self.queue_with(binding, arguments)
    }

    fn queue_with(&self, binding: &str, arguments: FieldTable) -> String {
        let queue = format!("{}.q.{}", self.name, uuid::Uuid::new_v4().simple());
        self.queues.lock().unwrap().push(queue.clone());
        self.runtime.block_on(async {
            self.channel.queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), arguments).await.unwrap();
            self.channel
                .queue_bind(
                    queue.as_str().into(),
                    self.name.as_str().into(),
                    binding.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
        });
        queue
    }

    /// Messages ready in `queue` (not those handed to a consumer and unacknowledged), and its
    /// consumers; `None` while there is no such queue.
    pub fn counts(&self, queue: &str) -> Option<(u32, u32)> {
        self.runtime.block_on(async {
            // A passive declaration of a missing queue closes its channel: one of its own.
            let channel = self.connection.create_channel().await.ok()?;
            let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
            let declared = channel.queue_declare(queue.into(), passive, FieldTable::default()).await.ok()?;
            let _ = channel.close(200, "done".into()).await;
            Some((declared.message_count(), declared.consumer_count()))
        })
    }

    pub fn delete_queue(&self, queue: &str) {
        self.runtime.block_on(async {
            self.channel.queue_delete(queue.into(), QueueDeleteOptions::default()).await.unwrap();
        });
        self.queues.lock().unwrap().retain(|name| name != queue);
    }

    /// Every message waiting in `queue`, in queue order, acknowledged on the way.
    pub fn take(&self, queue: &str) -> Vec<Received> {
        self.runtime.block_on(async {
            let mut taken = Vec::new();
            while let Some(message) = self
                .channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic.get on the test's queue")
            {
                let delivery = message.delivery;
                taken.push(Received {
                    routing_key: delivery.routing_key.to_string(),
                    properties: delivery.properties,
                    body: delivery.data,
                });
            }
            taken
        })
    }

    /// Takes messages from `queue` until `done` holds for all taken so far; panics after `timeout`.
    #[track_caller]
    pub fn take_until(
        &self,
        queue: &str,
        timeout: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        let mut taken = Vec::new();
        loop {
            taken.extend(self.take(queue));
            if done(&taken) {
                return taken;
            }
            assert!(Instant::now() < deadline, "timed out after {timeout:?}; {} messages taken", taken.len());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestExchange {
    fn drop(&mut self) {
        let mut queues = std::mem::take(&mut *self.queues.lock().unwrap());
        // What notifications' consumer declares when a test runs it on this exchange (deleting
        // a queue or exchange that is not there is no error).
        let notifications = self.settings("").notifications_queue;
        let dead_letters = agora::notifications::dead_letter_name(&notifications);
        queues.extend([notifications, dead_letters.clone()]);
        self.runtime.block_on(async {
            for queue in queues {
                if let Err(error) =
                    self.channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await
                {
                    eprintln!("cannot delete the test queue {queue}: {error}");
                }
            }
            for exchange in [&dead_letters, &self.name] {
                if let Err(error) =
                    self.channel.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default()).await
                {
                    eprintln!("cannot delete the test exchange {exchange}: {error}");
                }
            }
            let _ = self.connection.close(200, "test done".into()).await;
        });
    }
}

/// A TCP proxy of the test's own in front of RabbitMQ: [`BrokerProxy::cut`] closes every
/// connection through it and refuses new ones (accepted, then closed at once) until
/// [`BrokerProxy::restore`].
pub struct BrokerProxy {
    port: u16,
    state: Arc<ProxyState>,
    accepting: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct ProxyState {
    cut: AtomicBool,
    stopped: AtomicBool,
    /// Both ends of every open connection, to shut down on a cut.
    open: Mutex<Vec<TcpStream>>,
}

impl ProxyState {
    fn close_all(&self) {
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl BrokerProxy {
    pub fn start() -> BrokerProxy {
        let upstream = broker_address();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(ProxyState::default());
        let shared = state.clone();
        let accepting = std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stopped.load(Ordering::Acquire) {
                    break;
                }
                let Ok(client) = client else { continue };
                if shared.cut.load(Ordering::Acquire) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                shared.open.lock().unwrap().extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        BrokerProxy { port, state, accepting: Some(accepting) }
    }

    /// The broker's URL through the proxy.
    pub fn url(&self) -> String {
        let url = amqp_url();
        let upstream = broker_address();
        url.replacen(&upstream, &format!("127.0.0.1:{}", self.port), 1)
    }

    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::Release);
        self.state.close_all();
    }

    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::Release);
    }
}

impl Drop for BrokerProxy {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::Release);
        self.state.close_all();
        // Wakes the accepting thread, which then sees the stop.
        let _ = TcpStream::connect(("127.0.0.1", self.port)).and_then(|mut stream| stream.flush());
        if let Some(thread) = self.accepting.take() {
            let _ = thread.join();
        }
    }
}

/// Copies `from` to `to` until either end closes, then closes both.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// `host:port` of the broker [`amqp_url`] names.
fn broker_address() -> String {
    let uri: lapin::uri::AMQPUri = amqp_url().parse().expect("AGORA_TEST_BROKER_URL is an AMQP URL");
    format!("{}:{}", uri.authority.host, uri.authority.port)
}
