//! Read-path benchmark: the running `agora` binary against pgbench running the same SELECT, in
//! the same run.
//!
//!     cargo bench --bench reads
//!
//! Settings as for `cargo bench --bench load` (AGORA_BENCH_SECS, AGORA_BENCH_ROUNDS,
//! AGORA_BENCH_CLIENTS). Needs `pgbench` on the PATH and PostgreSQL's server programs (it builds
//! a primary and a streaming replica of its own, as the `postgres` user). Prints a Markdown
//! report and writes it to target/bench-reads-report.md.
//!
//! Scenarios:
//! - product by id, cached: `GET /api/products/{id}` over 200 products, the catalog cache on;
//! - product by id, uncached: the same with `AGORA_CATALOG_CACHE_ENTRIES=0`;
//! - baseline: pgbench `-M prepared` running the SELECT agora runs for it;
//! - HTTP floor: `GET /healthz`;
//! - product list with a replica against without (cache off, so every page reaches a server);
//! - staleness window: two agora processes; one changes a product, the other is asked until it
//!   answers the new price; the time from the change's commit to that answer.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

#[path = "../api/cluster.rs"]
#[allow(dead_code)]
mod cluster;
#[path = "common.rs"]
mod common;
#[path = "harness.rs"]
mod harness;

use common::env_number;
use harness::{Agora, Run, alternate, pgbench_with, report_table, wrk};

const PRODUCTS: usize = 200;
const TOKEN: &str = "bench-admin-token-0123456789";

/// The statement diesel sends for `catalog::get_product`, with the product picked as the load
/// generator picks it.
const PRODUCT_SQL: &str = "\\set n random(1, 200)\n\
    SELECT products.id, products.sku, products.name, products.description, products.price_minor, \
    products.active, products.low_stock_threshold, products.created_at, products.updated_at \
    FROM products WHERE products.id = md5('bench-' || :n)::uuid LIMIT 1;\n";

fn main() {
    let seconds = env_number("AGORA_BENCH_SECS", 5);
    let clients = env_number("AGORA_BENCH_CLIENTS", 8) as usize;
    let rounds = env_number("AGORA_BENCH_ROUNDS", 3) as usize;
    let duration = Duration::from_secs(seconds);

    // A primary and a streaming replica of the benchmark's own, so the replica scenario and
    // the others run on the same server.
    let primary = cluster::Cluster::start(&[("wal_level", "replica"), ("max_connections", "200")]);
    let url = primary.url("agora_bench");
    common::migrate_at(&url);
    let mut conn = PgConnection::establish(&url).unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO products (id, sku, name, description, price_minor) \
         SELECT md5('bench-' || n)::uuid, 'BENCH-' || lpad(n::text, 5, '0'), 'Bench product ' || n, \
                'A product of the read benchmark, number ' || n, 1000 + n \
           FROM generate_series(1, {PRODUCTS}) AS n;
         INSERT INTO inventory_levels (product_id, on_hand) SELECT id, 1000 FROM products;
         ANALYZE;"
    ))
    .unwrap();
    let replica = cluster::Cluster::replica_of(&primary);
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    let ids: Vec<String> = diesel::sql_query("SELECT id::text AS id FROM products ORDER BY sku")
        .load::<Id>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|row| row.id)
        .collect();

    let mut runs = Vec::new();
    let id_table = ids.iter().map(|id| format!("\"{id}\"")).collect::<Vec<_>>().join(", ");
    let baseline = || {
        pgbench_with("pgbench -M prepared: the same SELECT", &url, PRODUCT_SQL, clients, duration, &["-M", "prepared"])
    };
    let product_path = format!("\"/api/products/\" .. ({{{id_table}}})[n % {PRODUCTS} + 1]");
    {
        let port = free_port();
        let _agora = Agora::start(&url, port, clients, &[("AGORA_ADMIN_TOKEN", TOKEN)]);
        let base = format!("http://127.0.0.1:{port}");
        let (cached, baseline) = alternate(
            rounds,
            || wrk("agora: product by id, cache on", &base, &product_path, clients, duration),
            &baseline,
        );
        runs.extend([cached, baseline]);
        runs.push(wrk("agora: GET /healthz (the HTTP floor)", &base, "\"/healthz\"", clients, duration));
    }
    {
        let port = free_port();
        let _agora = Agora::start(&url, port, clients, &[("AGORA_CATALOG_CACHE_ENTRIES", "0")]);
        let base = format!("http://127.0.0.1:{port}");
        let (uncached, baseline) = alternate(
            rounds,
            || wrk("agora: product by id, cache off", &base, &product_path, clients, duration),
            &baseline,
        );
        runs.extend([uncached, baseline]);
    }

    // The list with and without the replica; the cache off, so that every page reaches a server.
    let list_path = "\"/api/products?limit=20&q=\" .. (n % 20 + 1)";
    let (with_replica, without_replica, replica_share) = {
        let (port, plain_port) = (free_port(), free_port());
        let replica_url = replica.url("agora_bench");
        let _replicated = Agora::start(
            &url,
            port,
            clients,
            &[("AGORA_CATALOG_CACHE_ENTRIES", "0"), ("AGORA_REPLICA_URL", &replica_url), ("AGORA_ADMIN_TOKEN", TOKEN)],
        );
        let _plain = Agora::start(&url, plain_port, clients, &[("AGORA_CATALOG_CACHE_ENTRIES", "0")]);
        let base = format!("http://127.0.0.1:{port}");
        wait_for_replica(&base);
        let (with_replica, without_replica) = alternate(
            rounds,
            || wrk("agora: product list, reads on the replica", &base, list_path, clients, duration),
            || {
                wrk(
                    "agora: product list, primary only",
                    &format!("http://127.0.0.1:{plain_port}"),
                    list_path,
                    clients,
                    duration,
                )
            },
        );
        (with_replica, without_replica, replica_reads_share(&base))
    };
    runs.extend([with_replica, without_replica]);

    let staleness = staleness_window(&url, &ids[0], 200);

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut report = report_table(
        &format!(
            "Command: `cargo bench --bench reads` ({rounds} rounds of {} s per scenario, agora and its baseline in turn; {clients} clients, {cores} cores, {PRODUCTS} products; primary and replica on this machine)",
            duration.as_secs()
        ),
        &runs,
    );
    let ratio = |a: &Run, b: &Run| a.throughput() / b.throughput();
    let _ = writeln!(report, "\nRatios:");
    let _ = writeln!(report, "- product by id, cache on: agora / pgbench = {:.2}", ratio(&runs[0], &runs[1]));
    let _ = writeln!(report, "- product by id, cache on: agora / GET /healthz = {:.2}", ratio(&runs[0], &runs[2]));
    let _ = writeln!(report, "- product by id, cache off: agora / pgbench = {:.2}", ratio(&runs[3], &runs[4]));
    let _ = writeln!(
        report,
        "- product list: with the replica / primary only = {:.2} ({:.0} % of the replicated process's list reads answered by the replica)",
        ratio(&runs[5], &runs[6]),
        replica_share * 100.0
    );
    let _ = writeln!(
        report,
        "- staleness window over {} changes, two processes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        staleness.len(),
        percentile_ms(&staleness, 0.50),
        percentile_ms(&staleness, 0.99),
        percentile_ms(&staleness, 1.0)
    );
    println!("{report}");
    let _ = std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-reads-report.md"), &report);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().new_agent()
}

fn wait_for_replica(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready =
            agent().get(&format!("{base}/readyz")).call().ok().and_then(|mut r| r.body_mut().read_to_string().ok());
        if ready.is_some_and(|body| body.contains("\"in_use\"")) {
            return;
        }
        assert!(Instant::now() < deadline, "the replica never came into use");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The share of replica-eligible reads the replica answered, from the process's metrics.
fn replica_reads_share(base: &str) -> f64 {
    let text = agent()
        .get(&format!("{base}/metrics"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let served = |server: &str| {
        text.lines()
            .find(|line| line.starts_with(&format!("agora_db_reads_total{{server=\"{server}\"}}")))
            .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (replica, primary) = (served("replica"), served("primary"));
    replica / (replica + primary).max(1.0)
}

/// `changes` times: a writer process changes a product's price; a reader process that holds the
/// product in its cache is asked until it answers the new price. The window runs from the
/// writer's answer (the change has committed) to the reader's first new answer.
fn staleness_window(url: &str, id: &str, changes: usize) -> Vec<Duration> {
    let (writer_port, reader_port) = (free_port(), free_port());
    let _writer = Agora::start(url, writer_port, 2, &[("AGORA_ADMIN_TOKEN", TOKEN)]);
    let _reader = Agora::start(url, reader_port, 2, &[]);
    let (writer, reader) = (agent(), agent());
    let price_on_reader = || -> i64 {
        let mut response = reader.get(&format!("http://127.0.0.1:{reader_port}/api/products/{id}")).call().unwrap();
        let body: serde_json::Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        body["price_minor"].as_i64().unwrap()
    };
    let mut windows = Vec::with_capacity(changes);
    for change in 0..changes {
        let price = 50_000 + change as i64;
        price_on_reader();
        price_on_reader();
        let answered = writer
            .patch(&format!("http://127.0.0.1:{writer_port}/api/products/{id}"))
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .send_json(serde_json::json!({"price_minor": price}))
            .unwrap();
        assert_eq!(answered.status().as_u16(), 200);
        let committed = Instant::now();
        while price_on_reader() != price {
            assert!(committed.elapsed() < Duration::from_secs(10), "the reader never saw change {change}");
        }
        windows.push(committed.elapsed());
    }
    windows.sort();
    windows
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}
