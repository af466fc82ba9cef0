//! Anonymous visits against the admin sessions: the sign-in page and a public read while a
//! flood of cookieless visitors asks for the sign-in page, on a session table that such a flood
//! filled (500,000 rows). Run with an older build beside this one to compare the two in one run:
//!
//!     cargo bench --bench sessions
//!     AGORA_BENCH_BASELINE=/path/to/older/agora cargo bench --bench sessions
//!
//! Settings: AGORA_BENCH_SECS (per scenario, default 10), AGORA_BENCH_FLOOD_CLIENTS (default 4),
//! AGORA_BENCH_FLOOD_RATE (visits a second the flood offers, default 950, the rate one client
//! reached in the report that found this), AGORA_BENCH_SESSIONS (rows in the table beforehand,
//! default 500000), AGORA_TEST_DATABASE_URL or DATABASE_URL (the server). Prints a Markdown
//! report and writes it to target/bench-sessions-report.md.
//!
//! Scenarios, for each build:
//! - public read alone: `GET /api/orders/{id}` by one client;
//! - sign-in page alone: cookieless `GET /admin/login` back to back by the flood's clients (what
//!   the page can serve);
//! - the flood: the same visits offered at the flood's rate (a build that cannot keep up falls
//!   behind), while one client reads `GET /api/orders/{id}` as before;
//! - then the rows the flood left in `admin_sessions`.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

#[path = "common.rs"]
mod common;
#[path = "harness.rs"]
mod harness;

use common::{database_url, env_number, server_url};
use harness::{Agora, Run, load, load_at_rate, report_table};

const TOKEN: &str = "bench-admin-token-0123456789";

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

struct Figures {
    runs: Vec<Run>,
    sessions_after: i64,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One build through every scenario, on a database of its own.
fn measure(name: &str, binary: &str, duration: Duration, flood: (usize, u64), sessions: u64) -> Figures {
    let (flood_clients, flood_rate) = flood;
    let database = format!("agora_bench_sessions_{}", std::process::id());
    let mut server = PgConnection::establish(&server_url()).unwrap();
    server.batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).unwrap();
    let url = database_url(&database);
    let port = free_port();
    let agora = Agora::start_binary(binary, &url, port, flood_clients + 1, &[("AGORA_ADMIN_TOKEN", TOKEN)]);
    let base = format!("http://127.0.0.1:{port}");

    let mut conn = PgConnection::establish(&url).unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO admin_sessions (key_hash, state) SELECT sha256(n::text::bytea), '{{\"csrf\":\"\\\"x\\\"\"}}'
           FROM generate_series(1, {sessions}) AS n;
         ANALYZE admin_sessions;"
    ))
    .unwrap();
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let product: serde_json::Value = agent
        .post(&format!("{base}/api/products"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send_json(serde_json::json!({"sku": "BENCH-1", "name": "Bench", "description": "", "price_minor": 100}))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let product = product["id"].as_str().unwrap().to_owned();
    agent
        .post(&format!("{base}/api/inventory/{product}/adjustments"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send_json(serde_json::json!({"delta": 10, "reason": "bench"}))
        .unwrap();
    let order: serde_json::Value = agent
        .post(&format!("{base}/api/orders"))
        .send_json(serde_json::json!({
            "customer": {"email": "bench@example.com", "name": "Bench"},
            "items": [{"product_id": product, "quantity": 1}]
        }))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let order_url = format!("{base}/api/orders/{}", order["id"].as_str().unwrap());
    let read = |agent: &ureq::Agent, _: usize, _: u64| agent.get(&order_url).call().is_ok_and(|r| r.status() == 200);
    let login_url = format!("{base}/admin/login");
    // A new agent per visit: no cookie, as a flood sends it.
    let visit = |_: &ureq::Agent, _: usize, _: u64| {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        agent.get(&login_url).call().is_ok_and(|r| r.status() == 200)
    };

    let quiet = load(&format!("{name}: public read alone"), 1, duration, read);
    let capacity = load(&format!("{name}: sign-in page alone"), flood_clients, duration, visit);
    let label = format!("{name}: sign-in page, {flood_rate}/s offered");
    let (flood, during) = std::thread::scope(|scope| {
        let flood = scope.spawn(|| load_at_rate(&label, flood_clients, duration, flood_rate, visit));
        let during = load(&format!("{name}: public read during the flood"), 1, duration, read);
        (flood.join().unwrap(), during)
    });
    let sessions_after =
        diesel::sql_query("SELECT count(*) AS n FROM admin_sessions").get_result::<Count>(&mut conn).unwrap().n;
    drop(conn);
    drop(agora);
    server.batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).unwrap();
    Figures { runs: vec![quiet, capacity, flood, during], sessions_after }
}

fn main() {
    let duration = Duration::from_secs(env_number("AGORA_BENCH_SECS", 10));
    let flood_clients = env_number("AGORA_BENCH_FLOOD_CLIENTS", 4) as usize;
    let flood_rate = env_number("AGORA_BENCH_FLOOD_RATE", 950).max(1);
    let sessions = env_number("AGORA_BENCH_SESSIONS", 500_000);
    let mut builds = Vec::new();
    if let Ok(baseline) = std::env::var("AGORA_BENCH_BASELINE") {
        builds.push(("baseline".to_owned(), baseline));
    }
    builds.push(("this build".to_owned(), env!("CARGO_BIN_EXE_agora").to_owned()));

    let mut runs = Vec::new();
    let mut notes = String::new();
    for (name, binary) in &builds {
        let figures = measure(name, binary, duration, (flood_clients, flood_rate), sessions);
        notes.push_str(&format!(
            "- {name}: {} rows in admin_sessions after the flood ({sessions} before)\n",
            figures.sessions_after
        ));
        runs.extend(figures.runs);
    }
    let command = format!(
        "`AGORA_BENCH_SECS={} AGORA_BENCH_FLOOD_CLIENTS={flood_clients} AGORA_BENCH_FLOOD_RATE={flood_rate} \
         AGORA_BENCH_SESSIONS={sessions}{} cargo bench --bench sessions`",
        duration.as_secs(),
        if builds.len() > 1 { " AGORA_BENCH_BASELINE=..." } else { "" }
    );
    let report = format!("{}\n{notes}", report_table(&command, &runs));
    print!("{report}");
    std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-sessions-report.md"), &report).unwrap();
}
