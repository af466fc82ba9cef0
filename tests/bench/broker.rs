//! What the benchmarks of events through RabbitMQ share (relay and split): exchanges of the
//! run's own with a subscriber taking everything, a shop with products to sell, its checkout, and
//! CPU counted per process.
// Each benchmark uses a part of it.
#![allow(dead_code)]

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{ConnectionProperties, ExchangeKind};

use super::common::database_url;
use super::harness::cpu_of;
use super::shop::PRODUCTS;

/// What the benchmark's own connections call themselves, so that the CPU of a database's
/// backends ([`postgres_cpu_of`]) leaves out the benchmark's queries.
pub const BENCH_APPLICATION: &str = "agora-bench";

/// An exchange and a durable queue of the run's own, with a consumer that takes every message,
/// as a subscriber would (without one the relay's publishes come back unroutable and are
/// retried); deleted on drop, with notifications' queue on the exchange and its dead letters.
pub struct BenchBroker {
    runtime: tokio::runtime::Runtime,
    connection: lapin::Connection,
    channel: lapin::Channel,
    pub exchange: String,
    queue: String,
}

/// notifications' queue on the run's exchange, when the e-mails come from the broker.
pub fn notifications_queue(exchange: &str) -> String {
    format!("{exchange}.notifications")
}

impl BenchBroker {
    pub fn start(url: &str, exchange: String) -> BenchBroker {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let queue = format!("{exchange}.all");
        let (connection, channel) = runtime.block_on(async {
            let connection = lapin::Connection::connect(url, ConnectionProperties::default())
                .await
                .expect("RabbitMQ must be reachable (AGORA_TEST_BROKER_URL)");
            let channel = connection.create_channel().await.unwrap();
            channel
                .exchange_declare(
                    exchange.as_str().into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
                    FieldTable::default(),
                )
                .await
                .unwrap();
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() },
                    FieldTable::default(),
                )
                .await
                .unwrap();
            channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange.as_str().into(),
                    "#".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            channel
                .basic_consume(
                    queue.as_str().into(),
                    "bench".into(),
                    BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() },
                    FieldTable::default(),
                )
                .await
                .unwrap()
                .set_delegate(|_delivery| async {});
            (connection, channel)
        });
        BenchBroker { runtime, connection, channel, exchange, queue }
    }

    pub fn notifications_queue(&self) -> String {
        notifications_queue(&self.exchange)
    }
}

impl Drop for BenchBroker {
    fn drop(&mut self) {
        self.runtime.block_on(async {
            let notifications = notifications_queue(&self.exchange);
            let dead_letters = agora::notifications::dead_letter_name(&notifications);
            for queue in [&self.queue, &notifications, &dead_letters] {
                let _ = self.channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
            }
            for exchange in [&dead_letters, &self.exchange] {
                let _ = self.channel.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default()).await;
            }
            let _ = self.connection.close(200, "bench done".into()).await;
        });
    }
}

/// CPU seconds used so far by RabbitMQ's Erlang VM on this machine (0 where it runs elsewhere).
pub fn rabbitmq_cpu() -> f64 {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "beam.smp"))
        .map(cpu_of)
        .sum()
}

/// CPU seconds used so far by the PostgreSQL backends serving `database`: other databases on the
/// server (other work on a shared machine) are not this scenario's cost, nor are the benchmark's
/// own connections ([`BENCH_APPLICATION`]).
pub fn postgres_cpu_of(conn: &mut PgConnection, database: &str) -> f64 {
    #[derive(QueryableByName)]
    struct Backend {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    diesel::sql_query(format!(
        "SELECT pid FROM pg_stat_activity WHERE datname = '{database}' AND application_name <> '{BENCH_APPLICATION}'"
    ))
    .load::<Backend>(conn)
    .unwrap()
    .into_iter()
    .map(|backend| cpu_of(backend.pid as u32))
    .sum()
}

/// A connection of the benchmark's own to `database`.
pub fn bench_connection(database: &str) -> PgConnection {
    let mut conn = PgConnection::establish(&database_url(database)).expect("PostgreSQL must be reachable");
    conn.batch_execute(&format!("SET application_name = '{BENCH_APPLICATION}'")).unwrap();
    conn
}

/// Migrates `database` and gives it products with plenty of stock; returns the product ids.
pub fn prepare(database: &str) -> Vec<String> {
    super::common::migrate(database);
    super::shop::stock_products(&mut bench_connection(database))
}

/// A checkout of two neighbouring products out of `products` at agora on `port`, by one of 1,000
/// customers; whether it was placed. The answer is read to its end: ureq returns a connection to
/// its pool only then, and a client opening a connection per checkout would be measured instead.
pub fn checkout(port: u16, products: &[String]) -> impl Fn(&ureq::Agent, usize, u64) -> bool + Sync + '_ {
    move |agent: &ureq::Agent, client: usize, n: u64| {
        let a = (client * 31 + n as usize * 17) % PRODUCTS;
        let body = serde_json::json!({
            "customer": {"email": format!("buyer{}@example.com", (client * 7919 + n as usize) % 1000), "name": "Bench Buyer"},
            "items": [{"product_id": products[a], "quantity": 1}, {"product_id": products[(a + 1) % PRODUCTS], "quantity": 1}],
        });
        agent
            .post(&format!("http://127.0.0.1:{port}/api/orders"))
            .send_json(&body)
            .is_ok_and(|mut response| response.status().as_u16() == 201 && response.body_mut().read_to_vec().is_ok())
    }
}
