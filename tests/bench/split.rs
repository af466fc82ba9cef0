//! Notifications split out against notifications in process, in the same run: what the split
//! topology costs checkout, the e-mails and the order view, and how long `agora split
//! notifications` stops e-mail writes while it cuts a running shop over.
//!
//!     cargo bench --bench split
//!
//! The two topologies, each on databases and an exchange of its own, both with the outbox relay
//! to RabbitMQ on (the split needs it; the shared one has it too so that the comparison is of the
//! split alone), and on each exchange a subscriber taking every message:
//! - **shared**: `agora serve`, the e-mails written in process by the outbox's handler into the
//!   shared database;
//! - **split**: `agora notifications-service` on a database of its own consuming its queue, and
//!   `agora serve` with AGORA_NOTIFICATIONS_URL, which writes no e-mail and asks the service for an
//!   order's e-mails when showing the order.
//!
//! Measured, rounds alternating between the two:
//! 1. checkout at full speed: throughput, latency, and CPU per checkout per process (agora, the
//!    service, the PostgreSQL backends of each database, RabbitMQ), counted until the e-mails and
//!    the relay have caught up with the round's orders;
//! 2. the e-mail delay, from an order's transaction to its order-received e-mail stored, at a rate
//!    both keep up with (AGORA_BENCH_EMAIL_RATE): the events are read from the shop's database,
//!    the e-mails from wherever they live, and joined here by event id (the split's two databases
//!    cannot be joined in SQL, but share the server's clock);
//! 3. the order view, `GET /api/orders/{id}`, of orders with their e-mails (in the split, one
//!    call to the service beside the database's read);
//! 4. the cutover: a shared shop holding AGORA_BENCH_MOVE_EMAILS e-mails (one real, the rest its
//!    copies inserted in bulk for real orders' rows), checkouts at AGORA_BENCH_MOVE_RATE a second
//!    throughout, and the real `agora split notifications` binary run against it: the write window
//!    it reports and its total time; AGORA_BENCH_MOVES times on fresh databases. Afterwards the
//!    service is started and every order's e-mail must reach its database exactly once.
//!
//! Settings (environment): AGORA_BENCH_SECS (per round, default 5), AGORA_BENCH_ROUNDS (default
//! 3), AGORA_BENCH_CLIENTS (default 8), AGORA_BENCH_EMAIL_RATE (checkouts a second, default 40),
//! AGORA_BENCH_MOVE_EMAILS (default 10000), AGORA_BENCH_MOVE_RATE (checkouts a second during the
//! move, default 100), AGORA_BENCH_MOVES (default 3), AGORA_TEST_DATABASE_URL or DATABASE_URL
//! (the PostgreSQL server), AGORA_TEST_BROKER_URL (default amqp://guest:guest@127.0.0.1:5672/%2f).
//! The databases, exchanges and queues are the run's own and go at its end, a panic included.
//! Prints a Markdown report and writes it to target/bench-split-report.md.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text};

#[path = "broker.rs"]
mod broker;
#[path = "common.rs"]
mod common;
#[path = "harness.rs"]
mod harness;
#[path = "shop.rs"]
mod shop;

use broker::{BenchBroker, bench_connection, checkout, postgres_cpu_of, prepare, rabbitmq_cpu};
use common::{database_url, env_number, server_url};
use harness::{Agora, Run, alternate, cpu_of, load, load_at_rate, load_while, report_table};

const TOKEN: &str = "bench-admin-token-0123456789";
const AGORA: &str = env!("CARGO_BIN_EXE_agora");
/// How long the e-mails and the relay may take to catch up with a round's orders.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(120);

struct Settings {
    seconds: u64,
    rounds: usize,
    clients: usize,
    email_rate: u64,
    move_emails: i64,
    move_rate: u64,
    moves: usize,
    amqp: String,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            seconds: env_number("AGORA_BENCH_SECS", 5),
            rounds: env_number("AGORA_BENCH_ROUNDS", 3) as usize,
            clients: env_number("AGORA_BENCH_CLIENTS", 8) as usize,
            email_rate: env_number("AGORA_BENCH_EMAIL_RATE", 40),
            move_emails: env_number("AGORA_BENCH_MOVE_EMAILS", 10_000).max(1) as i64,
            move_rate: env_number("AGORA_BENCH_MOVE_RATE", 100),
            moves: env_number("AGORA_BENCH_MOVES", 3).max(1) as usize,
            amqp: std::env::var("AGORA_TEST_BROKER_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
        }
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    fn command_line(&self) -> String {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        format!(
            "Command: `cargo bench --bench split` with AGORA_BENCH_SECS={} AGORA_BENCH_ROUNDS={} AGORA_BENCH_CLIENTS={} \
             AGORA_BENCH_EMAIL_RATE={} AGORA_BENCH_MOVE_EMAILS={} AGORA_BENCH_MOVE_RATE={} AGORA_BENCH_MOVES={} \
             ({cores} cores; PostgreSQL and RabbitMQ on loopback; release build)",
            self.seconds, self.rounds, self.clients, self.email_rate, self.move_emails, self.move_rate, self.moves
        )
    }
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Text)]
    id: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Stamp {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Double)]
    ms: f64,
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Count>(conn).unwrap().n
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Databases of the run's own, dropped with it, a panic's unwinding included.
#[derive(Default)]
struct Databases(Vec<String>);

impl Databases {
    fn create(&mut self, name: &str) {
        let mut maintenance = PgConnection::establish(&server_url()).expect("PostgreSQL must be reachable");
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut maintenance).unwrap();
        self.0.push(name.to_owned());
    }

    /// A database another process creates (the service's own).
    fn adopt(&mut self, name: &str) {
        self.0.push(name.to_owned());
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        let Ok(mut maintenance) = PgConnection::establish(&server_url()) else { return };
        for name in &self.0 {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut maintenance);
        }
    }
}

/// One topology's databases, exchange and ports.
struct Topology {
    label: &'static str,
    /// The shop's database (the shared database).
    database: String,
    /// The notifications service's, in the split topology.
    service_database: Option<String>,
    broker: BenchBroker,
    port: u16,
    service_port: u16,
}

/// A topology's processes, stopped when dropped (the main process first).
struct Running {
    agora: Agora,
    service: Option<Agora>,
}

impl Topology {
    fn start(&self, amqp: &str, clients: usize) -> Running {
        let queue = self.broker.notifications_queue();
        let service_url = format!("http://127.0.0.1:{}", self.service_port);
        let mut env = vec![
            ("AGORA_ADMIN_TOKEN", TOKEN.to_owned()),
            ("AGORA_BACKGROUND", "on".to_owned()),
            ("AGORA_BROKER_URL", amqp.to_owned()),
            ("AGORA_BROKER_EXCHANGE", self.broker.exchange.clone()),
        ];
        let service = self.service_database.as_ref().map(|service_database| {
            env.push(("AGORA_NOTIFICATIONS_QUEUE", queue.clone()));
            let mut service_env = env.clone();
            service_env.push(("AGORA_NOTIFICATIONS_DATABASE_URL", database_url(service_database)));
            // Smaller than the shop's pool: PostgreSQL's connections are shared with other work.
            let service =
                start(AGORA, "notifications-service", &self.database, self.service_port, clients / 2, &service_env);
            env.push(("AGORA_NOTIFICATIONS_URL", service_url.clone()));
            service
        });
        let agora = start(AGORA, "serve", &self.database, self.port, clients, &env);
        Running { agora, service }
    }

    /// Where the e-mails are stored.
    fn email_database(&self) -> &str {
        self.service_database.as_deref().unwrap_or(&self.database)
    }

    fn databases(&self) -> Vec<&str> {
        std::iter::once(self.database.as_str()).chain(self.service_database.as_deref()).collect()
    }
}

fn start(binary: &str, subcommand: &str, database: &str, port: u16, pool: usize, env: &[(&str, String)]) -> Agora {
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
    Agora::start_command(binary, subcommand, &database_url(database), port, pool, &env)
}

/// How far a topology's e-mails and relay are behind its orders.
struct Backlog {
    shop: PgConnection,
    emails: PgConnection,
}

impl Backlog {
    fn of(topology: &Topology) -> Backlog {
        Backlog { shop: bench_connection(&topology.database), emails: bench_connection(topology.email_database()) }
    }

    /// Orders without their order-received e-mail, and deliveries (e-mails in process, the relay)
    /// not completed.
    fn behind(&mut self) -> (i64, i64) {
        let orders = count(&mut self.shop, "SELECT count(*) AS n FROM orders");
        let pending = count(&mut self.shop, "SELECT count(*) AS n FROM event_deliveries WHERE status = 'pending'");
        let emails = count(&mut self.emails, "SELECT count(*) AS n FROM notifications WHERE kind = 'order_received'");
        (orders - emails, pending)
    }

    /// Waits until nothing is behind; returns how many e-mails were missing at first and how long
    /// catching up took.
    fn catch_up(&mut self) -> (i64, Duration) {
        let started = Instant::now();
        let (missing, _) = self.behind();
        loop {
            let (emails, deliveries) = self.behind();
            if emails <= 0 && deliveries == 0 {
                return (missing, started.elapsed());
            }
            assert!(
                started.elapsed() < CATCH_UP_LIMIT,
                "{emails} e-mails and {deliveries} deliveries still behind after {CATCH_UP_LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// CPU seconds of a topology's processes: agora, the notifications service, the PostgreSQL
/// backends of each of its databases (in [`Topology::databases`]' order), RabbitMQ.
#[derive(Clone, Default)]
struct Cpu {
    agora: f64,
    service: f64,
    postgres: Vec<f64>,
    rabbitmq: f64,
}

impl Cpu {
    /// Used so far.
    fn now(stats: &mut PgConnection, topology: &Topology, processes: &Running) -> Cpu {
        Cpu {
            agora: cpu_of(processes.agora.0.id()),
            service: processes.service.as_ref().map_or(0.0, |service| cpu_of(service.0.id())),
            postgres: topology.databases().iter().map(|database| postgres_cpu_of(stats, database)).collect(),
            rabbitmq: rabbitmq_cpu(),
        }
    }

    /// Adds what was used from `before` to `after`.
    fn add(&mut self, before: &Cpu, after: &Cpu) {
        self.agora += after.agora - before.agora;
        self.service += after.service - before.service;
        self.postgres.resize(after.postgres.len(), 0.0);
        for (sum, (after, before)) in self.postgres.iter_mut().zip(after.postgres.iter().zip(&before.postgres)) {
            *sum += after - before;
        }
        self.rabbitmq += after.rabbitmq - before.rabbitmq;
    }

    fn total(&self) -> f64 {
        self.agora + self.service + self.postgres.iter().sum::<f64>() + self.rabbitmq
    }

    /// Milliseconds per request of `run`, process by process.
    fn line(&self, topology: &Topology, run: &Run, what: &str) -> String {
        let per = |seconds: f64| seconds * 1000.0 / run.requests.max(1) as f64;
        let mut parts = vec![format!("{:.3} ms in agora", per(self.agora))];
        if topology.service_database.is_some() {
            parts.push(format!("{:.3} ms in the notifications service", per(self.service)));
        }
        for (database, seconds) in topology.databases().iter().zip(&self.postgres) {
            let whose = if Some(*database) == topology.service_database.as_deref() { "service's" } else { "shop's" };
            parts.push(format!("{:.3} ms in PostgreSQL for the {whose} database", per(*seconds)));
        }
        parts.push(format!("{:.3} ms in RabbitMQ", per(self.rabbitmq)));
        format!("{}: CPU per {what} {} = **{:.3} ms**", topology.label, parts.join(" + "), per(self.total()))
    }
}

/// A topology's checkout cost beyond its latencies, summed over its rounds.
#[derive(Default)]
struct Cost {
    cpu: Cpu,
    /// E-mails missing when a round's load stopped, the most of any round.
    behind: i64,
    /// How long the slowest round's e-mails and relay took to catch up.
    catch_up: Duration,
    /// The rounds' load and catch-up, summed: how long their checkouts took to be done with.
    busy: Duration,
}

/// The local ends of the connections to 127.0.0.1:`port` that this machine closed within the
/// last minute (TIME_WAIT, kept by the side that closes: a client dropping its connection).
fn closed_connections_to(port: u16) -> std::collections::HashSet<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let peer = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(2) == Some(&peer.as_str()) && fields.get(3) == Some(&"06")).then(|| fields[1].to_owned())
        })
        .collect()
}

fn main() {
    let settings = Settings::from_env();
    let pid = std::process::id();
    let mut databases = Databases::default();
    let (shared_db, split_db, service_db) =
        (format!("agora_bench_{pid}_shared"), format!("agora_bench_{pid}_split"), format!("agora_bench_{pid}_service"));
    databases.create(&shared_db);
    databases.create(&split_db);
    databases.adopt(&service_db);
    let topologies = [
        Topology {
            label: "shared",
            database: shared_db,
            service_database: None,
            broker: BenchBroker::start(&settings.amqp, format!("agora.bench.{pid}.shared")),
            port: free_port(),
            service_port: 0,
        },
        Topology {
            label: "split",
            database: split_db,
            service_database: Some(service_db),
            broker: BenchBroker::start(&settings.amqp, format!("agora.bench.{pid}.split")),
            port: free_port(),
            service_port: free_port(),
        },
    ];
    let mut report = compare(&settings, &topologies);
    drop(topologies);
    drop(databases);
    report.push_str(&cutovers(&settings));
    println!("{report}");
    let _ = std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-split-report.md"), &report);
}

/// Parts 1 to 3: checkout, e-mail delay and order view in both topologies.
fn compare(settings: &Settings, topologies: &[Topology; 2]) -> String {
    let (clients, duration, rounds) = (settings.clients, settings.duration(), settings.rounds);
    let products = prepare(&topologies[0].database);
    assert_eq!(products, prepare(&topologies[1].database), "both shops sell the same products");
    let start_both = || [topologies[0].start(&settings.amqp, clients), topologies[1].start(&settings.amqp, clients)];
    // Both shops get a history first, through processes that then stop: a PostgreSQL session
    // keeps the plans it made of agora's statements, and plans made against the empty tables of
    // a new shop (sequential scans) would be measured instead of the shop's.
    {
        let _warming = start_both();
        for topology in topologies {
            load("warm-up", clients, Duration::from_secs(5), checkout(topology.port, &products));
            Backlog::of(topology).catch_up();
        }
    }
    for topology in topologies {
        for database in topology.databases() {
            bench_connection(database).batch_execute("ANALYZE").unwrap();
        }
    }
    let running = start_both();
    for topology in topologies {
        load("warm-up", clients, Duration::from_secs(2), checkout(topology.port, &products));
        Backlog::of(topology).catch_up();
    }

    // 1. Checkout at full speed.
    let stats = std::cell::RefCell::new(PgConnection::establish(&server_url()).unwrap());
    let costs = std::cell::RefCell::new([Cost::default(), Cost::default()]);
    let measured = |which: usize| {
        let (topology, processes) = (&topologies[which], &running[which]);
        let mut backlog = Backlog::of(topology);
        let before = Cpu::now(&mut stats.borrow_mut(), topology, processes);
        let run = load(&format!("{}: checkout", topology.label), clients, duration, checkout(topology.port, &products));
        // The round's cost includes the work it left behind: its e-mails and its relay.
        let (behind, caught_up) = backlog.catch_up();
        let after = Cpu::now(&mut stats.borrow_mut(), topology, processes);
        let cost = &mut costs.borrow_mut()[which];
        cost.cpu.add(&before, &after);
        cost.behind = cost.behind.max(behind);
        cost.catch_up = cost.catch_up.max(caught_up);
        cost.busy += Duration::from_secs_f64(run.seconds) + caught_up;
        run
    };
    let (shared_checkout, split_checkout) = alternate(rounds, || measured(0), || measured(1));
    let costs = costs.into_inner();

    // 2. The e-mail delay at a rate both keep up with.
    let markers: Vec<String> = topologies
        .iter()
        .map(|topology| {
            diesel::sql_query("SELECT now()::text AS id")
                .get_result::<Id>(&mut bench_connection(&topology.database))
                .unwrap()
                .id
        })
        .collect();
    let at_rate = |which: usize| {
        let topology = &topologies[which];
        let label = format!("{}: checkout at {} a second", topology.label, settings.email_rate);
        let run = load_at_rate(&label, clients, duration, settings.email_rate, checkout(topology.port, &products));
        Backlog::of(topology).catch_up();
        run
    };
    let (shared_paced, split_paced) = alternate(rounds, || at_rate(0), || at_rate(1));
    let delays: Vec<(Run, usize)> =
        topologies.iter().zip(&markers).map(|(topology, marker)| email_delays(topology, marker)).collect();

    // 3. The order view of orders with their e-mails.
    let order_ids: Vec<Vec<String>> = topologies
        .iter()
        .map(|topology| {
            diesel::sql_query("SELECT id::text AS id FROM orders ORDER BY number DESC LIMIT 2000")
                .load::<Id>(&mut bench_connection(&topology.database))
                .unwrap()
                .into_iter()
                .map(|row| row.id)
                .collect()
        })
        .collect();
    let view_costs = std::cell::RefCell::new([Cpu::default(), Cpu::default()]);
    let opened = std::cell::Cell::new(0);
    let view = |which: usize| {
        let (topology, processes) = (&topologies[which], &running[which]);
        let (port, ids) = (topology.port, &order_ids[which]);
        let before = Cpu::now(&mut stats.borrow_mut(), topology, processes);
        let closed_before = closed_connections_to(topology.service_port);
        let run = load(&format!("{}: order view", topology.label), clients, duration, move |agent, client, n| {
            let id = &ids[(client * 7919 + n as usize * 13) % ids.len()];
            agent.get(&format!("http://127.0.0.1:{port}/api/orders/{id}")).call().is_ok_and(|mut response| {
                // An answer without the e-mails (the service did not answer) is not the view asked for.
                response.status().as_u16() == 200
                    && response.body_mut().read_to_string().is_ok_and(|body| {
                        body.contains("\"notifications_unavailable\":null") && !body.contains("\"notifications\":[]")
                    })
            })
        });
        view_costs.borrow_mut()[which].add(&before, &Cpu::now(&mut stats.borrow_mut(), topology, processes));
        if topology.service_database.is_some() {
            opened.set(opened.get() + closed_connections_to(topology.service_port).difference(&closed_before).count());
        }
        run
    };
    let (shared_view, split_view) = alternate(rounds, || view(0), || view(1));
    let view_costs = view_costs.into_inner();
    drop(running);

    let runs = [shared_checkout, split_checkout, shared_paced, split_paced, shared_view, split_view];
    let mut report =
        format!("# Notifications: shared database against its own service\n\n{}\n\n", settings.command_line());
    report.push_str(
        "Both topologies relay every event to RabbitMQ (AGORA_BROKER_URL set in both: the split needs it, so the \
         shared one has it too), each to an exchange of its own with a subscriber taking every message. shared: \
         `agora serve`, e-mails written in process by the outbox handler into the shared database. split: `agora \
         notifications-service` on its own database, consuming its queue, and `agora serve` with \
         AGORA_NOTIFICATIONS_URL (no e-mail handler in process; the order view asks the service). Rounds alternate \
         between the two.\n\n",
    );
    report.push_str(report_table("", &runs).trim_start());
    let [shared_checkout, split_checkout, _, _, shared_view, split_view] = &runs;

    let ratio = split_checkout.throughput() / shared_checkout.throughput();
    let _ = writeln!(
        report,
        "\n## 1. Checkout ({rounds} rounds of {} s each, {clients} clients, back to back)\n",
        duration.as_secs()
    );
    let _ = writeln!(
        report,
        "- checkout throughput split / shared = **{ratio:.3}** (goal ≥ 0.9: {}); p50 {:.2} ms split against {:.2} ms shared, p99 {:.2} ms against {:.2} ms",
        if ratio >= 0.9 { "met" } else { "NOT met" },
        split_checkout.percentile(0.50),
        shared_checkout.percentile(0.50),
        split_checkout.percentile(0.99),
        shared_checkout.percentile(0.99)
    );
    for (which, (run, cost)) in [shared_checkout, split_checkout].into_iter().zip(&costs).enumerate() {
        let _ = writeln!(
            report,
            "- {}; at most {} e-mails behind when a round's load stopped, caught up (e-mails and relay) within {:.2} s",
            cost.cpu.line(&topologies[which], run, "checkout"),
            cost.behind,
            cost.catch_up.as_secs_f64()
        );
    }
    let done: Vec<f64> = [shared_checkout, split_checkout]
        .iter()
        .zip(&costs)
        .map(|(run, cost)| run.requests as f64 / cost.busy.as_secs_f64())
        .collect();
    let _ = writeln!(
        report,
        "- checkouts a second counting each round's catch-up as well (the split's service writes its e-mails after the load stops): {:.0} shared, {:.0} split; split / shared = {:.3}",
        done[0],
        done[1],
        done[1] / done[0]
    );
    let totals: Vec<f64> = [shared_checkout, split_checkout]
        .iter()
        .zip(&costs)
        .map(|(run, cost)| cost.cpu.total() * 1000.0 / run.requests.max(1) as f64)
        .collect();
    let _ = writeln!(
        report,
        "- CPU per checkout shared / split = {:.3} (the throughput ratio a machine bound by CPU alone would show; each round's CPU counted until its e-mails and relay caught up)",
        totals[0] / totals[1]
    );

    let _ = writeln!(
        report,
        "\n## 2. E-mail delay, order transaction to order-received e-mail stored, at {} checkouts a second ({rounds} rounds of {} s each)\n",
        settings.email_rate,
        duration.as_secs()
    );
    for (topology, ((delay, checkouts), paced)) in topologies.iter().zip(delays.iter().zip(&runs[2..4])) {
        let _ = writeln!(
            report,
            "- {}: {} e-mails of {checkouts} orders ({} checkouts answered, {} errors); p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            topology.label,
            delay.requests,
            paced.requests,
            paced.errors,
            delay.percentile(0.50),
            delay.percentile(0.95),
            delay.percentile(0.99),
            delay.percentile(1.0)
        );
    }
    let _ = writeln!(
        report,
        "- both from each transaction's `now()` on one PostgreSQL server: the event's `created_at` in the shop's database, the e-mail's `created_at` where it is stored (split: the service's database, joined by event id here)"
    );

    let _ = writeln!(
        report,
        "\n## 3. Order view, GET /api/orders/{{id}} ({rounds} rounds of {} s each, {clients} clients, orders with their e-mail)\n",
        duration.as_secs()
    );
    let _ = writeln!(
        report,
        "- split / shared throughput = {:.3}; p50 {:.2} ms split against {:.2} ms shared (+{:.2} ms), p99 {:.2} ms against {:.2} ms; an answer without its e-mails counts as an error ({} split, {} shared)",
        split_view.throughput() / shared_view.throughput(),
        split_view.percentile(0.50),
        shared_view.percentile(0.50),
        split_view.percentile(0.50) - shared_view.percentile(0.50),
        split_view.percentile(0.99),
        shared_view.percentile(0.99),
        split_view.errors,
        shared_view.errors
    );
    for (which, (run, cpu)) in [shared_view, split_view].into_iter().zip(&view_costs).enumerate() {
        let _ = writeln!(report, "- {}", cpu.line(&topologies[which], run, "order view"));
    }
    let _ = writeln!(
        report,
        "- TCP connections the split's agora opened to the service during its order views: {} for {} views",
        opened.get(),
        split_view.requests
    );
    report
}

/// The order-received e-mails of the orders placed since `marker` in `topology`: each one's
/// delay from its event (as latencies of a [`Run`], for its percentiles) and how many orders.
fn email_delays(topology: &Topology, marker: &str) -> (Run, usize) {
    let events: HashMap<i64, f64> = diesel::sql_query(format!(
        "SELECT id, (extract(epoch FROM created_at) * 1000)::float8 AS ms FROM events
          WHERE event_type = 'OrderPlaced' AND created_at > '{marker}'"
    ))
    .load::<Stamp>(&mut bench_connection(&topology.database))
    .unwrap()
    .into_iter()
    .map(|event| (event.id, event.ms))
    .collect();
    // An e-mail is written after its event: those before the marker are not this phase's.
    let emails = diesel::sql_query(format!(
        "SELECT event_id AS id, (extract(epoch FROM created_at) * 1000)::float8 AS ms FROM notifications
          WHERE kind = 'order_received' AND created_at > '{marker}'"
    ))
    .load::<Stamp>(&mut bench_connection(topology.email_database()))
    .unwrap();
    let mut latencies_us: Vec<u64> = emails
        .iter()
        .filter_map(|email| events.get(&email.id).map(|placed| ((email.ms - placed).max(0.0) * 1000.0) as u64))
        .collect();
    latencies_us.sort_unstable();
    let run = Run {
        label: format!("{}: e-mail delay", topology.label),
        requests: latencies_us.len(),
        errors: 0,
        seconds: 0.0,
        latencies_us,
        cpu_seconds: None,
        reported_percentiles: None,
    };
    (run, events.len())
}

/// What one `agora split notifications` did.
struct Cutover {
    window_ms: f64,
    printed_window_ms: f64,
    total: Duration,
    copied: i64,
    caught_up: i64,
    during: Run,
    orders: i64,
    emails_in_service: i64,
}

/// Part 4: the cutover of a running shared shop, AGORA_BENCH_MOVES times on fresh databases.
fn cutovers(settings: &Settings) -> String {
    let runs: Vec<Cutover> = (1..=settings.moves).map(|n| cutover(settings, n)).collect();
    let mut report = format!(
        "\n## 4. Cutover: `agora split notifications` on a running shared shop holding {} e-mails, checkouts at {} a second throughout ({} runs, fresh databases each)\n\n",
        settings.move_emails, settings.move_rate, settings.moves
    );
    report.push_str(
        "| run | e-mails copied | copied again under the lock | write window ms | command total s | checkouts during the move | their p50 ms | p99 ms | max ms | errors | after: orders / e-mails in the service |\n",
    );
    report.push_str("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (n, run) in runs.iter().enumerate() {
        let _ = writeln!(
            report,
            "| {} | {} | {} | {:.1} | {:.2} | {} | {:.2} | {:.2} | {:.2} | {} | {} / {} |",
            n + 1,
            run.copied,
            run.caught_up,
            run.window_ms,
            run.total.as_secs_f64(),
            run.during.requests,
            run.during.percentile(0.50),
            run.during.percentile(0.99),
            run.during.percentile(1.0),
            run.during.errors,
            run.orders,
            run.emails_in_service
        );
    }
    let spread = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        (values[0], values[values.len() / 2], values[values.len() - 1])
    };
    let (low, median, high) = spread(runs.iter().map(|run| run.window_ms).collect());
    let _ = writeln!(
        report,
        "\n- write window (from `notifications_move.write_window_ms`): min {low:.1} ms, median {median:.1} ms, max {high:.1} ms"
    );
    let printed: Vec<String> = runs.iter().map(|run| format!("{:.1}", run.printed_window_ms)).collect();
    let _ = writeln!(report, "- as the command printed it (`step 4: write window X ms`): {} ms", printed.join(", "));
    let (low, median, high) = spread(runs.iter().map(|run| run.total.as_secs_f64()).collect());
    let _ = writeln!(
        report,
        "- command total time (process start to exit): min {low:.2} s, median {median:.2} s, max {high:.2} s"
    );
    let _ = writeln!(
        report,
        "- afterwards the service was started on its database: every order's e-mail there exactly once in every run (checked: as many e-mails as orders, one per event)"
    );
    report
}

fn cutover(settings: &Settings, n: usize) -> Cutover {
    let pid = std::process::id();
    let (database, service_database) =
        (format!("agora_bench_{pid}_move{n}"), format!("agora_bench_{pid}_move{n}_service"));
    let mut databases = Databases::default();
    databases.create(&database);
    databases.adopt(&service_database);
    let broker = BenchBroker::start(&settings.amqp, format!("agora.bench.{pid}.move{n}"));
    let products = prepare(&database);
    let (port, clients) = (free_port(), settings.clients);
    let env = [
        ("AGORA_ADMIN_TOKEN", TOKEN.to_owned()),
        ("AGORA_BACKGROUND", "on".to_owned()),
        ("AGORA_BROKER_URL", settings.amqp.clone()),
        ("AGORA_BROKER_EXCHANGE", broker.exchange.clone()),
    ];
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let mut shop = bench_connection(&database);
    // One real order gives the e-mail that the bulk copies repeat, bodies and all.
    {
        let _agora = start(AGORA, "serve", &database, port, clients, &env);
        assert!(checkout(port, &products)(&agent, 0, 0), "a checkout");
        let deadline = Instant::now() + Duration::from_secs(30);
        while count(&mut shop, "SELECT count(*) AS n FROM notifications") < 1 {
            assert!(Instant::now() < deadline, "the first e-mail was never written");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    seed_emails(&mut shop, settings.move_emails - 1);
    let _agora = start(AGORA, "serve", &database, port, clients, &env);
    let queue = broker.notifications_queue();
    let split = || {
        // The shop at its pace first, then the move.
        std::thread::sleep(Duration::from_secs(1));
        let started = Instant::now();
        let output = Command::new(AGORA)
            .args(["split", "notifications"])
            .env("DATABASE_URL", database_url(&database))
            .env("AGORA_NOTIFICATIONS_DATABASE_URL", database_url(&service_database))
            .env("AGORA_BROKER_URL", &settings.amqp)
            .env("AGORA_BROKER_EXCHANGE", &broker.exchange)
            .env("AGORA_NOTIFICATIONS_QUEUE", &queue)
            .env("RUST_LOG", "warn")
            .output()
            .expect("agora split notifications runs");
        (output, started.elapsed())
    };
    let label = format!("checkout during move {n}");
    let (during, (output, total)) =
        load_while(&label, clients, Some(settings.move_rate), split, checkout(port, &products));
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "agora split notifications failed:\n{printed}");
    let printed_window_ms = printed
        .lines()
        .find_map(|line| line.strip_prefix("step 4: write window ")?.split_once(" ms")?.0.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no write window in:\n{printed}"));

    #[derive(QueryableByName)]
    struct Moved {
        #[diesel(sql_type = Nullable<Double>)]
        write_window_ms: Option<f64>,
        #[diesel(sql_type = Nullable<BigInt>)]
        copied_rows: Option<i64>,
        #[diesel(sql_type = Nullable<BigInt>)]
        caught_up_rows: Option<i64>,
    }
    let moved: Moved = diesel::sql_query("SELECT write_window_ms, copied_rows, caught_up_rows FROM notifications_move")
        .get_result(&mut shop)
        .unwrap();

    // The service takes over: every order's e-mail reaches its database once, those of the
    // orders placed during the move included.
    let service_env: Vec<(&str, String)> = env
        .iter()
        .cloned()
        .chain([
            ("AGORA_NOTIFICATIONS_QUEUE", queue.clone()),
            ("AGORA_NOTIFICATIONS_DATABASE_URL", database_url(&service_database)),
        ])
        .collect();
    let _service = start(AGORA, "notifications-service", &database, free_port(), clients / 2, &service_env);
    let mut service = bench_connection(&service_database);
    let orders = count(&mut shop, "SELECT count(*) AS n FROM orders");
    let deadline = Instant::now() + CATCH_UP_LIMIT;
    while count(&mut service, "SELECT count(*) AS n FROM notifications") < orders {
        assert!(Instant::now() < deadline, "the service never stored every order's e-mail");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let emails_in_service = count(&mut service, "SELECT count(*) AS n FROM notifications");
    let events = count(&mut service, "SELECT count(DISTINCT event_id) AS n FROM notifications");
    assert_eq!((emails_in_service, events), (orders, orders), "one e-mail per order, none twice");
    Cutover {
        window_ms: moved.write_window_ms.expect("the window recorded"),
        printed_window_ms,
        total,
        copied: moved.copied_rows.unwrap_or_default(),
        caught_up: moved.caught_up_rows.unwrap_or_default(),
        during,
        orders,
        emails_in_service,
    }
}

/// `count` more e-mails like the one in the shop, each for an order and event of its own (rows
/// only: nothing renders them again), so that the move has that many to copy.
fn seed_emails(conn: &mut PgConnection, count: i64) {
    conn.batch_execute(&format!(
        "INSERT INTO customers (email, name) VALUES ('seeded@example.com', 'Seeded Buyer');
         INSERT INTO orders (id, customer_id, status, total_minor, currency, created_at, updated_at)
         SELECT md5('seeded-' || n)::uuid, c.id, 'paid', t.total_minor, t.currency, now() - interval '1 day', now() - interval '1 day'
           FROM generate_series(1, {count}) AS n,
                (SELECT id FROM customers WHERE email = 'seeded@example.com') AS c,
                (SELECT total_minor, currency FROM orders LIMIT 1) AS t;
         INSERT INTO events (event_type, aggregate_type, aggregate_id, payload, created_at)
         SELECT 'OrderPlaced', 'order', o.id, t.payload, o.created_at
           FROM orders o JOIN customers c ON c.id = o.customer_id AND c.email = 'seeded@example.com',
                (SELECT payload FROM events WHERE event_type = 'OrderPlaced' LIMIT 1) AS t
          ORDER BY o.id;
         INSERT INTO notifications (event_id, order_id, kind, recipient, subject, text_body, html_body, message_id,
                                    status, created_at, updated_at, next_attempt_at)
         SELECT e.id, e.aggregate_id, t.kind, t.recipient, t.subject, t.text_body, t.html_body,
                '<seeded-' || e.id || '@agora.localhost>', t.status, e.created_at, e.created_at, e.created_at
           FROM events e JOIN orders o ON o.id = e.aggregate_id
                JOIN customers c ON c.id = o.customer_id AND c.email = 'seeded@example.com',
                (SELECT * FROM notifications LIMIT 1) AS t
          WHERE e.event_type = 'OrderPlaced';
         ANALYZE;"
    ))
    .unwrap();
}
