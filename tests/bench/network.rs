//! Past one process: Agora behind PgBouncer, Agora with a network between it and PostgreSQL,
//! and three instances behind HAProxy serving a thousand clients.
//!
//!     cargo bench --bench network
//!
//! Settings (environment): AGORA_BENCH_ONLY (one scenario: round-trips, pgbouncer, network or
//! crowd), AGORA_BENCH_SECS (per round, default 5), AGORA_BENCH_ROUNDS (rounds
//! per comparison, alternating; default 3), AGORA_BENCH_CLIENTS (default 8), AGORA_BENCH_CROWD
//! (the clients of the three instances, default 1000), AGORA_TEST_DATABASE_URL or DATABASE_URL
//! (the server). Needs pgbench, pgbouncer and haproxy. Prints a Markdown report and writes it
//! to target/bench-network.md.
//!
//! The network: a proxy of the benchmark's own ([`delay::DelayProxy`]) holds every chunk 0.5 ms
//! in each direction, between Agora and PostgreSQL and, for the baseline, between pgbench and
//! PostgreSQL; its effect is read off pgbench's `SELECT 1` with and without it.
//!
//! Scenarios:
//! - round trips per checkout, counted by the proxy over sequential checkouts;
//! - checkout (2 of 200 products) direct, against the same through PgBouncer in transaction mode;
//! - checkout at 1 ms round trip, against pgbench sending the same statements through the proxy;
//! - a hot product at 1 ms round trip (every buyer takes the same item), against the limit that
//!   the round trips holding its stock row lock set;
//! - a crowd of clients over three instances behind HAProxy, all through one PgBouncer, with the
//!   PostgreSQL server connections counted meanwhile.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::BigInt;

#[path = "common.rs"]
mod common;
#[path = "delay.rs"]
mod delay;
#[path = "../support/haproxy.rs"]
mod haproxy;
#[path = "harness.rs"]
mod harness;
#[path = "../support/pgbouncer.rs"]
mod pgbouncer;
#[path = "shop.rs"]
mod shop;

use common::{database_url, env_number, server_url};
use delay::DelayProxy;
use harness::{Agora, Run, alternate, load, load_while, load_with_cpu, pgbench, report_table};
use shop::{PRODUCTS, checkout, checkout_script};

/// Half the simulated round trip: each direction's hold.
const ONE_WAY: Duration = Duration::from_micros(500);
/// Round trips of a checkout from the stock row's lock to the end of its transaction: the one
/// statement that locks, moves and records the stock, and COMMIT.
const ROUND_TRIPS_HOLDING_THE_STOCK_LOCK: f64 = 2.0;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn main() {
    let seconds = env_number("AGORA_BENCH_SECS", 5);
    let clients = env_number("AGORA_BENCH_CLIENTS", 8) as usize;
    let rounds = env_number("AGORA_BENCH_ROUNDS", 3) as usize;
    let crowd = env_number("AGORA_BENCH_CROWD", 1000) as usize;
    let database = format!("agora_bench_network_{}", std::process::id());
    let mut maintenance = PgConnection::establish(&server_url()).expect("PostgreSQL must be reachable");
    diesel::sql_query(format!("CREATE DATABASE {database}")).execute(&mut maintenance).unwrap();
    let result = std::panic::catch_unwind(|| run(&database, clients, crowd, Duration::from_secs(seconds), rounds));
    diesel::sql_query(format!("DROP DATABASE {database} WITH (FORCE)")).execute(&mut maintenance).unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn run(database: &str, clients: usize, crowd: usize, duration: Duration, rounds: usize) {
    common::migrate(database);
    let direct = database_url(database);
    let mut conn = PgConnection::establish(&direct).unwrap();
    let product_ids = shop::stock_products(&mut conn);
    let neighbour = format!("(1 + :a % {PRODUCTS})");
    let spread_script = checkout_script(&[":a", &neighbour], false);
    let hot_script = checkout_script(&["1"], false);
    // A shop with a history, so that no process meets empty tables (see the load benchmark).
    pgbench("warm-up", &direct, &spread_script, clients, Duration::from_secs(3));
    diesel::sql_query("ANALYZE").execute(&mut conn).unwrap();

    let (host, port) = pgbouncer::host_and_port(&direct);
    let network = DelayProxy::start((host.clone(), port), ONE_WAY);
    let pick = |client: usize, n: u64, salt: usize| (client * 31 + n as usize * 17 + salt * 101) % PRODUCTS;
    let spread_at = |base: String| {
        let product_ids = &product_ids;
        move |agent: &ureq::Agent, client: usize, n: u64| {
            let a = pick(client, n, 0);
            checkout(&base, agent, client, n, &[&product_ids[a], &product_ids[(a + 1) % PRODUCTS]])
        }
    };
    let mut runs: Vec<Run> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    // The network's round trip, as pgbench sees it on the smallest statement.
    let (select_direct, select_delayed) = alternate(
        rounds,
        || pgbench("pgbench: SELECT 1, loopback", &direct, "SELECT 1;\n", 1, Duration::from_secs(2)),
        || pgbench("pgbench: SELECT 1, 1 ms network", &network.url(database), "SELECT 1;\n", 1, Duration::from_secs(2)),
    );
    let round_trip_ms = select_delayed.percentile(0.5) - select_direct.percentile(0.5);
    notes.push(format!(
        "- the simulated network adds {round_trip_ms:.3} ms per round trip (pgbench `SELECT 1`, p50 {:.3} ms through the proxy against {:.3} ms on loopback)",
        select_delayed.percentile(0.5),
        select_direct.percentile(0.5)
    ));

    // AGORA_BENCH_ONLY=<scenario> (round-trips, pgbouncer, network, crowd) runs just that one.
    let only = std::env::var("AGORA_BENCH_ONLY").ok();
    let runs_scenario = |name: &str| only.as_deref().is_none_or(|only| only == name);

    // Round trips per checkout, counted on the wire, in each pool mode.
    for (mode, label) in [("session", "direct (session mode)"), ("transaction", "AGORA_DB_POOL_MODE=transaction")] {
        if !runs_scenario("round-trips") {
            break;
        }
        let port = free_port();
        let _agora = Agora::start(
            &network.url(database),
            port,
            1,
            &[("AGORA_DB_DIRECT_URL", &direct), ("AGORA_DB_POOL_MODE", mode), ("AGORA_DB_POOL_SIZE", "1")],
        );
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        let base = format!("http://127.0.0.1:{port}");
        // The first checkout opens the connection and warms the statement cache.
        assert!(checkout(&base, &agent, 0, 0, &[&product_ids[0], &product_ids[1]]));
        let (before, checkouts) = (network.round_trips(), 100u64);
        for n in 1..=checkouts {
            let a = pick(0, n, 7);
            assert!(checkout(&base, &agent, 0, n, &[&product_ids[a], &product_ids[(a + 1) % PRODUCTS]]));
        }
        let per_checkout = (network.round_trips() - before) as f64 / checkouts as f64;
        notes.push(format!(
            "- round trips per 2-line checkout, {label}: {per_checkout:.2} (counted over {checkouts} checkouts)"
        ));
    }

    // Direct against through PgBouncer, on loopback.
    if runs_scenario("pgbouncer") {
        let bouncer = pgbouncer::PgBouncer::start(&host, port, 16).unwrap();
        let (direct_port, pooled_port) = (free_port(), free_port());
        let direct_agora = Agora::start(&direct, direct_port, clients, &[]);
        let pooled_agora = Agora::start(
            &bouncer.url(database),
            pooled_port,
            clients,
            &[("AGORA_DB_DIRECT_URL", &direct), ("AGORA_DB_POOL_MODE", "transaction")],
        );
        let (direct_run, pooled_run) = alternate(
            rounds,
            || {
                load_with_cpu(
                    "agora: checkout, direct",
                    direct_agora.0.id(),
                    clients,
                    duration,
                    spread_at(format!("http://127.0.0.1:{direct_port}")),
                )
            },
            || {
                load_with_cpu(
                    "agora: checkout through PgBouncer (transaction mode)",
                    pooled_agora.0.id(),
                    clients,
                    duration,
                    spread_at(format!("http://127.0.0.1:{pooled_port}")),
                )
            },
        );
        notes.push(format!(
            "- checkout through PgBouncer / direct = {:.2} (p99 {:.2} ms against {:.2} ms)",
            pooled_run.throughput() / direct_run.throughput(),
            pooled_run.percentile(0.99),
            direct_run.percentile(0.99)
        ));
        notes.push(direct_run.cpu_line());
        notes.push(pooled_run.cpu_line());
        runs.extend([direct_run, pooled_run]);
    }

    // A network between Agora and PostgreSQL.
    if runs_scenario("network") {
        let port = free_port();
        let _agora = Agora::start(&network.url(database), port, clients, &[("AGORA_DB_DIRECT_URL", &direct)]);
        let base = format!("http://127.0.0.1:{port}");
        let (agora_run, baseline) = alternate(
            rounds,
            || load("agora: checkout, 1 ms network", clients, duration, spread_at(base.clone())),
            || {
                pgbench(
                    "pgbench: the same SQL, 1 ms network",
                    &network.url(database),
                    &spread_script,
                    clients,
                    duration,
                )
            },
        );
        notes.push(format!(
            "- checkout at 1 ms round trip: agora / pgbench throughput = {:.2}",
            agora_run.throughput() / baseline.throughput()
        ));
        runs.extend([agora_run, baseline]);

        let hot_product = product_ids[0].as_str();
        let hot = |agent: &ureq::Agent, client: usize, n: u64| checkout(&base, agent, client, n, &[hot_product]);
        let (agora_hot, baseline_hot) = alternate(
            rounds,
            || load("agora: checkout, 1 hot product, 1 ms network", clients, duration, hot),
            || pgbench("pgbench: the same SQL, 1 ms network", &network.url(database), &hot_script, clients, duration),
        );
        let limit = 1000.0 / (ROUND_TRIPS_HOLDING_THE_STOCK_LOCK * round_trip_ms);
        notes.push(format!(
            "- hot product at 1 ms round trip: {:.0} checkouts/s; the stock row is locked for {ROUND_TRIPS_HOLDING_THE_STOCK_LOCK} round trips, a limit of {limit:.0}/s: {:.2} of it (pgbench, same statements: {:.2})",
            agora_hot.throughput(),
            agora_hot.throughput() / limit,
            baseline_hot.throughput() / limit
        ));
        runs.extend([agora_hot, baseline_hot]);
    }

    // A crowd over three instances behind HAProxy, through one PgBouncer.
    if runs_scenario("crowd") {
        // pgbench's events stand for orders it never wrote: not the dispatchers' to handle.
        diesel::sql_query(
            "UPDATE event_deliveries SET status = 'completed', completed_at = now() WHERE status = 'pending'",
        )
        .execute(&mut conn)
        .unwrap();
        let bouncer = pgbouncer::PgBouncer::start(&host, port, 12).unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let instances: Vec<Agora> = ports
            .iter()
            .map(|port| {
                Agora::start(
                    &bouncer.url(database),
                    *port,
                    6,
                    &[
                        ("AGORA_DB_DIRECT_URL", &direct),
                        ("AGORA_DB_POOL_MODE", "transaction"),
                        ("AGORA_BACKGROUND", "on"),
                    ],
                )
            })
            .collect();
        let servers: Vec<String> = ports.iter().map(|port| format!("127.0.0.1:{port}")).collect();
        let balancer = haproxy::HaProxy::start(&servers, Duration::from_millis(500), 2);
        let most_server_connections = AtomicI64::new(0);
        let failures: std::sync::Mutex<std::collections::BTreeMap<u16, u64>> = Default::default();
        let count_sql = format!(
            "SELECT count(*) AS count FROM pg_stat_activity WHERE datname = '{database}' AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        );
        let (crowd_run, ()) = load_while(
            &format!("agora: checkout, {crowd} clients over 3 instances"),
            crowd,
            None,
            || {
                let started = std::time::Instant::now();
                let mut sampler = PgConnection::establish(&direct).unwrap();
                while started.elapsed() < duration * 2 {
                    let now = diesel::sql_query(&count_sql).get_result::<Count>(&mut sampler).unwrap().count;
                    most_server_connections.fetch_max(now, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            },
            |agent: &ureq::Agent, client: usize, n: u64| {
                let a = pick(client, n, 0);
                let body = serde_json::json!({
                    "customer": {"email": format!("crowd{client}@example.com"), "name": "Crowd"},
                    "items": [{"product_id": product_ids[a], "quantity": 1}, {"product_id": product_ids[(a + 1) % PRODUCTS], "quantity": 1}],
                });
                let (status, answer) = match agent.post(&format!("{}/api/orders", balancer.address)).send_json(&body) {
                    Ok(mut response) => {
                        (response.status().as_u16(), response.body_mut().read_to_string().unwrap_or_default())
                    }
                    Err(error) => (0, error.to_string()),
                };
                if status != 201 && std::env::var_os("AGORA_BENCH_DEBUG").is_some() {
                    eprintln!("{status}: {answer}");
                }
                if status != 201 {
                    *failures.lock().unwrap().entry(status).or_insert(0) += 1;
                }
                status == 201
            },
        );
        notes.push(format!(
            "- {crowd} clients over 3 instances (pools of 10 each, 30 client connections into PgBouncer): at most {} PostgreSQL server connections seen (PgBouncer's pool of 12, plus each instance's LISTEN connections), {} errors {:?}, p99 {:.1} ms",
            most_server_connections.load(Ordering::Relaxed),
            crowd_run.errors,
            failures.lock().unwrap(),
            crowd_run.percentile(0.99)
        ));
        runs.push(crowd_run);
        drop(instances);
    }

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut report = report_table(
        &format!(
            "Command: `cargo bench --bench network` ({rounds} rounds of {} s per comparison, in turn; {clients} clients, {cores} cores, {PRODUCTS} products)",
            duration.as_secs()
        ),
        &runs,
    );
    let _ = writeln!(report, "\nFigures:");
    for note in notes {
        let _ = writeln!(report, "{note}");
    }
    println!("{report}");
    let _ = std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-network.md"), &report);
}
