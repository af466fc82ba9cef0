//! Load benchmark: the running `agora` binary against a baseline of pgbench running the same
//! SQL on the same database, in the same run.
//!
//!     cargo bench --bench load
//!
//! Settings (environment): AGORA_BENCH_SECS (per round, default 5), AGORA_BENCH_ROUNDS (rounds
//! per scenario, alternating agora and its baseline; default 3), AGORA_BENCH_CLIENTS (concurrent
//! clients, default 8), AGORA_TEST_DATABASE_URL or DATABASE_URL (the server; default
//! postgres://postgres@127.0.0.1:5432/postgres). Needs `pgbench` on the PATH. Prints a Markdown
//! report and writes it to target/bench-report.md.
//!
//! Scenarios:
//! - checkout, spread: each order takes 1 unit each of 2 neighbouring products out of 200;
//! - checkout, hot: every order takes 1 unit of the same product (all contend for one row);
//! - order view: GET /api/orders/{id} (five reads from one snapshot) for random orders;
//! - HTTP hop: GET /healthz, the cost of one request on loopback without the database;
//! - e-mail delay: checkout under load with the outbox dispatcher running, then the time from
//!   each order's transaction to its stored confirmation e-mail.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Text};

const TOKEN: &str = "bench-admin-token-0123456789";

#[path = "common.rs"]
mod common;
#[path = "harness.rs"]
mod harness;
#[path = "shop.rs"]
mod shop;

use common::{database_url, env_number, server_url};
use harness::{Agora, Run, alternate, load, load_with_cpu, pgbench, report_table};
use shop::{PRODUCTS, checkout_script};

/// The agora processes of this benchmark, on `database`, with its admin token.
fn start_agora(database: &str, port: u16, clients: usize, background: bool, roles: bool) -> Agora {
    Agora::start(
        &database_url(database),
        port,
        clients,
        &[
            ("AGORA_ADMIN_TOKEN", TOKEN),
            ("AGORA_BACKGROUND", if background { "on" } else { "off" }),
            ("AGORA_DB_ROLES", if roles { "on" } else { "off" }),
        ],
    )
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Text)]
    id: String,
}

#[derive(QueryableByName)]
struct Delays {
    #[diesel(sql_type = BigInt)]
    emails: i64,
    #[diesel(sql_type = Double)]
    p50: f64,
    #[diesel(sql_type = Double)]
    p95: f64,
    #[diesel(sql_type = Double)]
    p99: f64,
}

/// The five reads of `orders::order_details`, from one repeatable-read snapshot.
fn view_script(orders: usize) -> String {
    format!(
        r#"\set n random(1, {orders})
SELECT id AS order_id FROM orders WHERE number = (SELECT min(number) FROM orders) + :n - 1 \gset
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
SELECT o.*, c.id, c.email, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = ':order_id'::uuid;
SELECT * FROM order_lines WHERE order_id = ':order_id'::uuid ORDER BY line_no;
SELECT p.*, r.* FROM payments p LEFT JOIN payment_refunds r ON r.payment_id = p.id WHERE p.order_id = ':order_id'::uuid ORDER BY p.created_at, p.id;
SELECT id, kind, recipient, subject, status, attempts, last_error, sent_at, created_at FROM notifications WHERE order_id = ':order_id'::uuid ORDER BY created_at;
SELECT id, event_type, payload, created_at FROM events WHERE aggregate_id = ':order_id'::uuid ORDER BY id;
COMMIT;
"#
    )
}

fn main() {
    let seconds = env_number("AGORA_BENCH_SECS", 5);
    let clients = env_number("AGORA_BENCH_CLIENTS", 8) as usize;
    let rounds = env_number("AGORA_BENCH_ROUNDS", 3) as usize;
    let duration = Duration::from_secs(seconds);
    let database = format!("agora_bench_{}", std::process::id());
    let mut maintenance = PgConnection::establish(&server_url()).expect("PostgreSQL must be reachable");
    diesel::sql_query(format!("CREATE DATABASE {database}")).execute(&mut maintenance).unwrap();
    let result = std::panic::catch_unwind(|| run(&database, clients, duration, rounds));
    diesel::sql_query(format!("DROP DATABASE {database} WITH (FORCE)")).execute(&mut maintenance).unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn run(database: &str, clients: usize, duration: Duration, rounds: usize) {
    common::migrate(database);
    let mut conn = PgConnection::establish(&database_url(database)).unwrap();
    let product_ids = shop::stock_products(&mut conn);

    // A shop with a history: checkouts through pgbench before any agora process starts. Each
    // PostgreSQL session plans its foreign-key checks once and keeps the plan; planned against
    // empty tables, they scan sequentially forever after, which would penalise whichever process
    // happens to meet the empty tables first.
    let neighbour = format!("(1 + :a % {PRODUCTS})");
    let warm_up = checkout_script(&[":a", &neighbour], false);
    pgbench("warm-up", &database_url(database), &warm_up, clients, Duration::from_secs(3));
    conn.batch_execute("ANALYZE").unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let checkout_at = |base: &str, agent: &ureq::Agent, client: usize, n: u64, items: Vec<&str>| -> bool {
        shop::checkout(base, agent, client, n, &items)
    };
    let checkout =
        |agent: &ureq::Agent, client: usize, n: u64, items: Vec<&str>| checkout_at(&base, agent, client, n, items);
    let pick = |client: usize, n: u64, salt: usize| (client * 31 + n as usize * 17 + salt * 101) % PRODUCTS;

    let mut runs = Vec::new();
    let mut role_runs = Vec::new();
    let only_roles = std::env::var("AGORA_BENCH_ONLY").as_deref() == Ok("roles");
    {
        let _agora = start_agora(database, port, clients, false, true);
        let spread = |agent: &ureq::Agent, client: usize, n: u64| {
            let a = pick(client, n, 0);
            checkout(agent, client, n, vec![&product_ids[a], &product_ids[(a + 1) % PRODUCTS]])
        };
        let neighbour = format!("(1 + :a % {PRODUCTS})");
        let spread_script = checkout_script(&[":a", &neighbour], false);
        if !only_roles {
            let (agora, baseline) = alternate(
                rounds,
                || load("agora: checkout, 2 of 200 products", clients, duration, spread),
                || pgbench("pgbench: the same SQL", &database_url(database), &spread_script, clients, duration),
            );
            runs.extend([agora, baseline]);
        }

        // The same checkout on a second process that runs every module as the login user.
        let plain_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let plain_base = format!("http://127.0.0.1:{plain_port}");
        let _plain = start_agora(database, plain_port, clients, false, false);
        let spread_at = |base: &str, agent: &ureq::Agent, client: usize, n: u64| {
            let a = pick(client, n, 4);
            checkout_at(base, agent, client, n, vec![&product_ids[a], &product_ids[(a + 1) % PRODUCTS]])
        };
        let (with_roles, without_roles) = alternate(
            rounds,
            || {
                load_with_cpu(
                    "agora: checkout, module roles on",
                    _agora.0.id(),
                    clients,
                    duration,
                    |agent, client, n| spread_at(&base, agent, client, n),
                )
            },
            || {
                load_with_cpu(
                    "agora: checkout, AGORA_DB_ROLES=off",
                    _plain.0.id(),
                    clients,
                    duration,
                    |agent, client, n| spread_at(&plain_base, agent, client, n),
                )
            },
        );
        drop(_plain);
        role_runs.extend([with_roles, without_roles]);
        // AGORA_BENCH_ONLY=roles: just the cost of the module roles, for a quick answer.
        if only_roles {
            let [with_roles, without_roles] = [&role_runs[0], &role_runs[1]];
            println!(
                "| scenario | per second | p50 ms | p95 ms | p99 ms | errors |\n| --- | ---: | ---: | ---: | ---: | ---: |"
            );
            println!("{}\n{}", with_roles.row(), without_roles.row());
            println!("\nmodule roles on / off = {:.3}", with_roles.throughput() / without_roles.throughput());
            println!("{}\n{}", with_roles.cpu_line(), without_roles.cpu_line());
            return;
        }

        let hot = |agent: &ureq::Agent, client: usize, n: u64| checkout(agent, client, n, vec![&product_ids[0]]);
        let hot_script = checkout_script(&["1"], false);
        let (agora, baseline) = alternate(
            rounds,
            || load("agora: checkout, 1 hot product", clients, duration, hot),
            || pgbench("pgbench: the same SQL", &database_url(database), &hot_script, clients, duration),
        );
        runs.extend([agora, baseline]);

        let orders =
            diesel::sql_query("SELECT count(*)::text AS id FROM orders").get_result::<Id>(&mut conn).unwrap().id;
        let orders: usize = orders.parse().unwrap();
        let order_ids: Vec<String> = diesel::sql_query("SELECT id::text AS id FROM orders ORDER BY number LIMIT 5000")
            .load::<Id>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|row| row.id)
            .collect();
        let view = |agent: &ureq::Agent, client: usize, n: u64| {
            let id = &order_ids[pick(client, n, 2) * 7 % order_ids.len()];
            agent.get(&format!("{base}/api/orders/{id}")).call().map(|r| r.status().as_u16() == 200).unwrap_or(false)
        };
        let view_sql = view_script(orders.min(5000));
        let (agora, baseline) = alternate(
            rounds,
            || load("agora: order view (5 reads, 1 snapshot)", clients, duration, view),
            || pgbench("pgbench: the same SQL", &database_url(database), &view_sql, clients, duration),
        );
        runs.extend([agora, baseline]);
        runs.push(load("agora: GET /healthz (one HTTP hop)", clients, duration, |agent, _, _| {
            agent.get(&format!("{base}/healthz")).call().map(|r| r.status().as_u16() == 200).unwrap_or(false)
        }));
    }
    let stock_first_script = checkout_script(&["1"], true);
    let stock_last_script = checkout_script(&["1"], false);
    let (stock_first, stock_last) = alternate(
        rounds,
        || {
            pgbench(
                "pgbench: hot product, stock locked first",
                &database_url(database),
                &stock_first_script,
                clients,
                duration,
            )
        },
        || {
            pgbench(
                "pgbench: hot product, stock locked last",
                &database_url(database),
                &stock_last_script,
                clients,
                duration,
            )
        },
    );

    // E-mails: checkout under load with the dispatcher running, then the delays it achieved.
    conn.batch_execute(
        "UPDATE event_deliveries SET status = 'completed', completed_at = now() WHERE status = 'pending'",
    )
    .unwrap();
    let marker: String = diesel::sql_query("SELECT now()::text AS id").get_result::<Id>(&mut conn).unwrap().id;
    let email_run = {
        let _agora = start_agora(database, port, clients, true, true);
        let run = load("agora: checkout with e-mails being written", clients, duration, |agent, client, n| {
            let a = pick(client, n, 3);
            checkout(agent, client, n, vec![&product_ids[a], &product_ids[(a + 1) % PRODUCTS]])
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let pending =
                diesel::sql_query("SELECT count(*)::text AS id FROM event_deliveries WHERE status = 'pending'")
                    .get_result::<Id>(&mut conn)
                    .unwrap()
                    .id;
            if pending == "0" || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        run
    };
    let delays = diesel::sql_query(format!(
        "SELECT count(*) AS emails,
                percentile_cont(0.50) WITHIN GROUP (ORDER BY ms) AS p50,
                percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95,
                percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99
           FROM (SELECT extract(epoch FROM n.sent_at - o.created_at) * 1000 AS ms
                   FROM notifications n JOIN orders o ON o.id = n.order_id
                  WHERE o.created_at > '{marker}') AS delays"
    ))
    .get_result::<Delays>(&mut conn)
    .unwrap();
    runs.push(email_run);
    runs.push(stock_first);
    runs.push(stock_last);
    runs.extend(role_runs);

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut report = report_table(
        &format!(
            "Command: `cargo bench --bench load` ({rounds} rounds of {} s per scenario, agora and its baseline in turn; {clients} clients, {cores} cores, {PRODUCTS} products, PostgreSQL on loopback)",
            duration.as_secs()
        ),
        &runs,
    );
    let ratio = |a: &Run, b: &Run| a.throughput() / b.throughput();
    let _ = writeln!(report, "\nRatios:");
    let _ = writeln!(report, "- checkout, spread: agora / pgbench throughput = {:.2}", ratio(&runs[0], &runs[1]));
    let _ = writeln!(report, "- checkout, hot product: agora / pgbench throughput = {:.2}", ratio(&runs[2], &runs[3]));
    let _ = writeln!(report, "- hot / spread checkout throughput (agora) = {:.2}", ratio(&runs[2], &runs[0]));
    let _ = writeln!(
        report,
        "- hot product, stock locked last / locked first (pgbench, same statements) = {:.2}",
        ratio(&runs[9], &runs[8])
    );
    let _ = writeln!(
        report,
        "- checkout with module roles enforced / with AGORA_DB_ROLES=off = {:.3} (p99 {:.2} ms against {:.2} ms)",
        ratio(&runs[10], &runs[11]),
        runs[10].percentile(0.99),
        runs[11].percentile(0.99)
    );
    let _ = writeln!(report, "- order view: agora / pgbench throughput = {:.2}", ratio(&runs[4], &runs[5]));
    let _ = writeln!(
        report,
        "- one HTTP hop p50 = {:.2} ms; order view p50 = {:.2} ms",
        runs[6].percentile(0.5),
        runs[4].percentile(0.5)
    );
    let _ = writeln!(
        report,
        "- e-mails: {} written while taking orders; order transaction to stored e-mail p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms; checkout throughput with the dispatcher running / without = {:.2}",
        delays.emails,
        delays.p50,
        delays.p95,
        delays.p99,
        ratio(&runs[7], &runs[0])
    );
    println!("{report}");
    let _ = std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-report.md"), &report);
}
