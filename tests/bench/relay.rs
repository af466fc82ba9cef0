//! The relay's cost and speed: checkout with the relay to RabbitMQ on against the same checkout
//! with it off, in the same run, and how fast and how late the relay follows.
//!
//!     cargo bench --bench relay
//!
//! Two `agora serve` processes with their background work on (the in-process e-mails stored, as
//! without SMTP), each on a database of its own: one relays to RabbitMQ, one has no broker.
//! Rounds alternate between them. CPU is counted per process: agora's, the PostgreSQL backends
//! of its database, and RabbitMQ's, including the second after each round in which the
//! background work catches up; on a machine shared with other work, CPU per checkout is the
//! steadier measure of what the relay costs, throughput the one the issue asks for. Afterwards, from the relaying process's database: events
//! confirmed per second while taking orders, and the lag from each event's transaction to the
//! completion of its relay delivery (which follows the broker's confirm), p50/p95/p99.
//!
//! Then the e-mail delay, from an order's transaction to its order-received e-mail stored, at a
//! rate both keep up with (AGORA_BENCH_EMAIL_RATE checkouts a second, default 40): the same two
//! databases served again, one with the e-mails written in process by the outbox's handler, the
//! other with the relay publishing and notifications consuming its queue on RabbitMQ, in
//! alternating rounds; p50/p95/p99 of each, from its database.
//!
//! Settings (environment): AGORA_BENCH_SECS (per round, default 5), AGORA_BENCH_ROUNDS (default
//! 3), AGORA_BENCH_CLIENTS (default 8), AGORA_TEST_DATABASE_URL or DATABASE_URL (the PostgreSQL
//! server), AGORA_TEST_BROKER_URL (default amqp://guest:guest@127.0.0.1:5672/%2f). The exchange
//! and queue are the run's own and deleted at its end. Prints a Markdown report and writes it to
//! target/bench-relay-report.md.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Text};

#[path = "broker.rs"]
mod broker;
#[path = "common.rs"]
mod common;
#[path = "harness.rs"]
mod harness;
#[path = "shop.rs"]
mod shop;

use broker::{BenchBroker, notifications_queue, postgres_cpu_of, prepare, rabbitmq_cpu};
use common::{database_url, env_number, server_url};
use harness::{Agora, Run, alternate, cpu_of, load, load_at_rate, report_table};

const TOKEN: &str = "bench-admin-token-0123456789";

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Text)]
    id: String,
}

#[derive(QueryableByName)]
struct Lag {
    #[diesel(sql_type = BigInt)]
    events: i64,
    #[diesel(sql_type = Double)]
    p50: f64,
    #[diesel(sql_type = Double)]
    p95: f64,
    #[diesel(sql_type = Double)]
    p99: f64,
}

/// Transactions committed in `database` so far, as PostgreSQL counts them.
fn commits(conn: &mut PgConnection, database: &str) -> i64 {
    #[derive(QueryableByName)]
    struct Commits {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(format!("SELECT xact_commit AS n FROM pg_stat_database WHERE datname = '{database}'"))
        .get_result::<Commits>(conn)
        .unwrap()
        .n
}

/// What a scenario cost beyond agora and PostgreSQL's CPU: RabbitMQ's CPU and the database's
/// commits, summed over its rounds.
#[derive(Default)]
struct Extra {
    rabbitmq_seconds: f64,
    commits: i64,
}

impl Extra {
    fn line(&self, run: &Run) -> String {
        let per_request = run.requests.max(1) as f64;
        format!(
            "- {}: RabbitMQ CPU per request {:.3} ms; {:.2} commits per checkout",
            run.label,
            self.rabbitmq_seconds * 1000.0 / per_request,
            self.commits as f64 / per_request
        )
    }
}

/// The outbox's units of database work and their queries per order placed in `database`, as the
/// process on `port` counted them since it started (warm-up included).
fn dispatch_work(port: u16, database: &str) -> (f64, f64) {
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let metrics: serde_json::Value = agent
        .get(&format!("http://127.0.0.1:{port}/api/metrics"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .expect("agora answers")
        .body_mut()
        .read_json()
        .expect("JSON metrics");
    let outbox = metrics["operations"].as_array().into_iter().flatten().filter(|operation| {
        operation["module"] == "outbox" && operation["operation"].as_str().is_some_and(|name| name != "outbox.backlog")
    });
    let (operations, queries) = outbox.fold((0.0, 0.0), |(operations, queries), operation| {
        (
            operations + operation["count"].as_f64().unwrap_or(0.0),
            queries + operation["queries"].as_f64().unwrap_or(0.0),
        )
    });
    let mut conn = PgConnection::establish(&database_url(database)).unwrap();
    let orders: f64 = diesel::sql_query("SELECT count(*)::text AS id FROM orders")
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id
        .parse()
        .unwrap();
    (operations / orders.max(1.0), queries / orders.max(1.0))
}

fn main() {
    let seconds = env_number("AGORA_BENCH_SECS", 5);
    let clients = env_number("AGORA_BENCH_CLIENTS", 8) as usize;
    let rounds = env_number("AGORA_BENCH_ROUNDS", 3) as usize;
    let amqp =
        std::env::var("AGORA_TEST_BROKER_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let databases =
        [format!("agora_bench_{}_off", std::process::id()), format!("agora_bench_{}_on", std::process::id())];
    let mut maintenance = PgConnection::establish(&server_url()).expect("PostgreSQL must be reachable");
    for database in &databases {
        diesel::sql_query(format!("CREATE DATABASE {database}")).execute(&mut maintenance).unwrap();
    }
    let broker = BenchBroker::start(&amqp, format!("agora.bench.{}", std::process::id()));
    let result = std::panic::catch_unwind(|| {
        run(&databases, &amqp, &broker.exchange, clients, Duration::from_secs(seconds), rounds)
    });
    drop(broker);
    for database in &databases {
        diesel::sql_query(format!("DROP DATABASE {database} WITH (FORCE)")).execute(&mut maintenance).unwrap();
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn run(databases: &[String; 2], amqp: &str, exchange: &str, clients: usize, duration: Duration, rounds: usize) {
    let products = prepare(&databases[0]);
    assert_eq!(products, prepare(&databases[1]), "both shops sell the same products");
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (off_port, on_port) = (free_port(), free_port());
    let background = [("AGORA_ADMIN_TOKEN", TOKEN), ("AGORA_BACKGROUND", "on")];
    let relaying = [background[0], background[1], ("AGORA_BROKER_URL", amqp), ("AGORA_BROKER_EXCHANGE", exchange)];
    let start = || {
        (
            Agora::start(&database_url(&databases[0]), off_port, clients, &background),
            Agora::start(&database_url(&databases[1]), on_port, clients, &relaying),
        )
    };
    let checkout = |port: u16| broker::checkout(port, &products);
    // Both shops get a history first, through processes that then stop: a PostgreSQL session
    // keeps the plans it made of agora's statements, and plans made against the empty tables of
    // a new shop (sequential scans) would be measured instead of the shop's.
    {
        let _warming = start();
        load("warm-up", clients, Duration::from_secs(5), checkout(off_port));
        load("warm-up", clients, Duration::from_secs(5), checkout(on_port));
        std::thread::sleep(Duration::from_secs(2));
    }
    for database in databases {
        PgConnection::establish(&database_url(database)).unwrap().batch_execute("ANALYZE").unwrap();
    }
    let (without, with) = start();
    load("warm-up", clients, Duration::from_secs(2), checkout(off_port));
    load("warm-up", clients, Duration::from_secs(2), checkout(on_port));

    let mut on = PgConnection::establish(&database_url(&databases[1])).unwrap();
    let marker: String = diesel::sql_query("SELECT now()::text AS id").get_result::<Id>(&mut on).unwrap().id;
    let stats = std::cell::RefCell::new(PgConnection::establish(&server_url()).unwrap());
    let extras = std::cell::RefCell::new([Extra::default(), Extra::default()]);
    let measured = |which: usize, label: &str, pid: u32, port: u16| {
        let database = &databases[which];
        let cpu = |stats: &mut PgConnection| (cpu_of(pid), postgres_cpu_of(stats, database), rabbitmq_cpu());
        let (agora, postgres, rabbitmq) = cpu(&mut stats.borrow_mut());
        let committed = commits(&mut stats.borrow_mut(), database);
        let run = load(label, clients, duration, checkout(port));
        // Work the load left behind is counted with it: the relay follows within a second.
        std::thread::sleep(Duration::from_secs(1));
        let (agora_after, postgres_after, rabbitmq_after) = cpu(&mut stats.borrow_mut());
        let mut extras = extras.borrow_mut();
        extras[which].rabbitmq_seconds += rabbitmq_after - rabbitmq;
        extras[which].commits += commits(&mut stats.borrow_mut(), database) - committed;
        Run { cpu_seconds: Some((agora_after - agora, postgres_after - postgres)), ..run }
    };
    let (off_run, on_run) = alternate(
        rounds,
        || measured(0, "agora: checkout, relay off", without.0.id(), off_port),
        || measured(1, "agora: checkout, relay to RabbitMQ on", with.0.id(), on_port),
    );
    let extras = extras.into_inner();
    let deadline = Instant::now() + Duration::from_secs(120);
    let pending = |conn: &mut PgConnection| {
        diesel::sql_query(
            "SELECT count(*)::text AS id FROM event_deliveries WHERE handler = 'outbox.broker_relay' AND status <> 'completed'",
        )
        .get_result::<Id>(conn)
        .unwrap()
        .id
    };
    let left_after_load = pending(&mut on);
    while pending(&mut on) != "0" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let lag = diesel::sql_query(format!(
        "SELECT count(*) AS events,
                percentile_cont(0.50) WITHIN GROUP (ORDER BY ms) AS p50,
                percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95,
                percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99
           FROM (SELECT extract(epoch FROM d.completed_at - e.created_at) * 1000 AS ms
                   FROM event_deliveries d JOIN events e ON e.id = d.event_id
                  WHERE d.handler = 'outbox.broker_relay' AND d.status = 'completed'
                    AND e.created_at > '{marker}') AS lags"
    ))
    .get_result::<Lag>(&mut on)
    .unwrap();
    let dispatch = [dispatch_work(off_port, &databases[0]), dispatch_work(on_port, &databases[1])];
    drop((without, with));
    let delays = email_delays(databases, amqp, exchange, clients, duration, rounds, &checkout);

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let runs = [off_run, on_run];
    let mut report = report_table(
        &format!(
            "Command: `cargo bench --bench relay` ({rounds} rounds of {} s each, relay off and on in turn; {clients} clients, {cores} cores, PostgreSQL and RabbitMQ on loopback)",
            duration.as_secs()
        ),
        &runs,
    );
    let _ = writeln!(report, "\n{}\n{}", runs[0].cpu_line(), runs[1].cpu_line());
    let _ = writeln!(report, "{}\n{}", extras[0].line(&runs[0]), extras[1].line(&runs[1]));
    for (run, (operations, queries)) in runs.iter().zip(dispatch) {
        let _ = writeln!(
            report,
            "- {}: the outbox's background work, {operations:.2} units and {queries:.2} queries per order (claims, completions, next-due look-ups)",
            run.label
        );
    }
    let cpu_per_checkout = |run: &Run, extra: &Extra| {
        let (agora, postgres) = run.cpu_seconds.unwrap_or_default();
        (agora + postgres + extra.rabbitmq_seconds) * 1000.0 / run.requests.max(1) as f64
    };
    let (off_cpu, on_cpu) = (cpu_per_checkout(&runs[0], &extras[0]), cpu_per_checkout(&runs[1], &extras[1]));
    let _ = writeln!(
        report,
        "\n- CPU per checkout, agora + its PostgreSQL backends + RabbitMQ: {off_cpu:.3} ms off, {on_cpu:.3} ms on; off / on = {:.3} (the throughput ratio a machine bound by CPU alone would show)",
        off_cpu / on_cpu
    );
    let _ = writeln!(
        report,
        "- checkout throughput with the relay on / off = {:.3} (p99 {:.2} ms against {:.2} ms)",
        runs[1].throughput() / runs[0].throughput(),
        runs[1].percentile(0.99),
        runs[0].percentile(0.99)
    );
    let _ = writeln!(
        report,
        "- relay: {} events confirmed, {:.0} per second of checkout load; {left_after_load} left when the load stopped",
        lag.events,
        lag.events as f64 / runs[1].seconds
    );
    let _ = writeln!(
        report,
        "- relay lag, event transaction to confirmed delivery: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        lag.p50, lag.p95, lag.p99
    );
    let _ = writeln!(report, "\n{delays}");
    println!("{report}");
    let _ = std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-relay-report.md"), &report);
}

/// The order-received e-mail's delay in each topology, at a rate both keep up with: the same
/// checkouts offered to the in-process e-mails (`databases[0]`) and to the relay and broker
/// consumer (`databases[1]`) in turn. Returns the report's lines.
fn email_delays<C, R>(
    databases: &[String; 2],
    amqp: &str,
    exchange: &str,
    clients: usize,
    duration: Duration,
    rounds: usize,
    checkout: &C,
) -> String
where
    C: Fn(u16) -> R,
    R: Fn(&ureq::Agent, usize, u64) -> bool + Sync,
{
    let rate = env_number("AGORA_BENCH_EMAIL_RATE", 40);
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (in_process_port, broker_port) = (free_port(), free_port());
    let queue = notifications_queue(exchange);
    let background = [("AGORA_ADMIN_TOKEN", TOKEN), ("AGORA_BACKGROUND", "on")];
    let in_process = Agora::start(&database_url(&databases[0]), in_process_port, clients, &background);
    let through_broker = Agora::start(
        &database_url(&databases[1]),
        broker_port,
        clients,
        &[
            background[0],
            background[1],
            ("AGORA_BROKER_URL", amqp),
            ("AGORA_BROKER_EXCHANGE", exchange),
            ("AGORA_NOTIFICATIONS_QUEUE", &queue),
            ("AGORA_NOTIFICATIONS_CONSUMER", "broker"),
        ],
    );
    let markers: Vec<String> = databases
        .iter()
        .map(|database| {
            let mut conn = PgConnection::establish(&database_url(database)).unwrap();
            diesel::sql_query("SELECT now()::text AS id").get_result::<Id>(&mut conn).unwrap().id
        })
        .collect();
    let (in_process_run, broker_run) = alternate(
        rounds,
        || load_at_rate("e-mails in process", clients, duration, rate, checkout(in_process_port)),
        || load_at_rate("e-mails through RabbitMQ", clients, duration, rate, checkout(broker_port)),
    );
    // The last e-mails of the last round are written within a second or two.
    std::thread::sleep(Duration::from_secs(3));
    drop((in_process, through_broker));
    let delay = |database: &str, marker: &str| {
        let mut conn = PgConnection::establish(&database_url(database)).unwrap();
        diesel::sql_query(format!(
            "SELECT count(*) AS events,
                    percentile_cont(0.50) WITHIN GROUP (ORDER BY ms) AS p50,
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95,
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99
               FROM (SELECT extract(epoch FROM n.created_at - e.created_at) * 1000 AS ms
                       FROM notifications n JOIN events e ON e.id = n.event_id
                      WHERE e.event_type = 'OrderPlaced' AND e.created_at > '{marker}') AS delays"
        ))
        .get_result::<Lag>(&mut conn)
        .unwrap()
    };
    let mut lines = format!(
        "E-mail delay, order transaction to order-received e-mail stored, at {rate} checkouts a second \
         ({rounds} rounds of {} s each, in turn):\n",
        duration.as_secs()
    );
    for ((label, run), (database, marker)) in
        [("in process (outbox handler)", &in_process_run), ("through RabbitMQ (relay, queue, inbox)", &broker_run)]
            .into_iter()
            .zip(databases.iter().zip(&markers))
    {
        let delay = delay(database, marker);
        let _ = writeln!(
            lines,
            "- {label}: {} e-mails of {} checkouts; p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
            delay.events, run.requests, delay.p50, delay.p95, delay.p99
        );
    }
    lines
}
