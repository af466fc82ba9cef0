//! `agora experiment checkout-race`: the shared transaction, separate services with a saga, and a
//! naive read-then-write, raced by real concurrent buyers on scratch databases.

use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use agora::experiment::{self, Outcome, RaceOptions};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};

use crate::cluster::Cluster;
use crate::helpers::{AgoraProcess, Browser, TestApp, TestDatabase, TestResponse, eventually, test_config};

/// One race at a time: each opens up to three pools of connections, and the tests beside them
/// need theirs too (PostgreSQL allows 100 here).
static ONE_RACE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_race_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_RACE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn variant<'a>(outcomes: &'a [Outcome], name: &str) -> &'a Outcome {
    outcomes.iter().find(|outcome| outcome.variant.starts_with(name)).unwrap()
}

#[test]
fn two_hundred_buyers_for_ten_units_three_ways() {
    let _race = one_race_at_a_time();
    let database = TestDatabase::migrated();
    let config = test_config(&database.url);
    // Every separate-services checkout fails somewhere: a third of them by dying after reserving.
    let options = RaceOptions { buyers: 200, stock: 10, lines: 2, seed: 7, failure_rate: 1.0 };
    let outcomes = experiment::checkout_race(&config, &options).unwrap();

    let shared = variant(&outcomes, "shared");
    assert_eq!((shared.accepted, shared.refused), (10, 190));
    assert_eq!((shared.units_sold, shared.units_in_stock, shared.oversold), (20, 20, 0));
    assert_eq!((shared.compensations, shared.orphaned), (0, 0));

    let saga = variant(&outcomes, "separate");
    assert_eq!(saga.oversold, 0, "reservations never oversell");
    assert_eq!(saga.units_sold, 0, "no checkout completed");
    assert!(saga.compensations > 0, "failed steps were compensated");
    assert!(saga.orphaned > 0, "dead processes left reservations behind");
    assert!(saga.consistent_after_ms.is_some(), "the sweep released every orphan: stock and orders agree again");

    let naive = variant(&outcomes, "naive");
    assert_eq!(naive.accepted, 200, "everyone read 10 units left");
    assert_eq!(naive.oversold, 400 - 20);
    assert_eq!(naive.consistent_after_ms, None);
}

#[test]
fn without_failures_the_saga_sells_the_stock_too() {
    let _race = one_race_at_a_time();
    let database = TestDatabase::migrated();
    let options = RaceOptions { buyers: 60, stock: 10, lines: 1, seed: 1, failure_rate: 0.0 };
    let outcomes = experiment::checkout_race(&test_config(&database.url), &options).unwrap();
    let saga = variant(&outcomes, "separate");
    assert_eq!((saga.accepted, saga.units_sold, saga.compensations, saga.orphaned), (10, 10, 0, 0));
    assert_eq!(variant(&outcomes, "shared").units_sold, 10);
}

#[test]
fn the_command_prints_the_table() {
    let _race = one_race_at_a_time();
    let database = TestDatabase::migrated();
    let output = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["experiment", "checkout-race", "--buyers", "30", "--stock", "5", "--seed", "3"])
        .env("DATABASE_URL", &database.url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("checkout race: 30 buyers, 5 units of each of 1 product(s), seed 3"), "{stdout}");
    for name in ["shared transaction", "separate services (saga)", "naive read-then-write"] {
        assert!(stdout.contains(name), "{stdout}");
    }
    let rejected = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["experiment", "checkout-race", "--lines", "9"])
        .env("DATABASE_URL", &database.url)
        .output()
        .unwrap();
    assert!(!rejected.status.success());
    assert!(String::from_utf8_lossy(&rejected.stderr).contains("lines must be between 1 and 5"));
}

#[test]
fn the_admin_page_runs_the_race_and_shows_a_table_and_a_chart() {
    let _race = one_race_at_a_time();
    let app = TestApp::spawn();
    let mut browser = app.signed_in_browser();
    let form = browser.get("/admin/experiments/checkout-race");
    assert_eq!(form.status, 200);
    assert!(form.body.contains("name=\"buyers\" value=\"200\""));

    let ran = browser.submit(
        "/admin/experiments/checkout-race",
        "/admin/experiments/checkout-race",
        &[("buyers", "40"), ("stock", "5"), ("lines", "1"), ("seed", "9"), ("failure_rate", "0.2")],
    );
    assert_eq!(ran.status, 200, "{}", ran.body);
    assert!(ran.body.contains("Results: 40 buyers, 5 units of each of 1 product(s), seed 9"));
    assert!(ran.body.contains("<svg") && ran.body.contains("5 sold / 5 in stock"), "{}", ran.body);
    assert!(ran.body.contains("40 sold / 5 in stock"), "the naive variant oversold");

    let refused = browser.submit(
        "/admin/experiments/checkout-race",
        "/admin/experiments/checkout-race",
        &[("buyers", "0"), ("stock", "many"), ("lines", "1"), ("seed", "1"), ("failure_rate", "2")],
    );
    assert_eq!(refused.status, 422);
    for field in ["buyers-error", "stock-error", "failure_rate-error"] {
        assert!(refused.body.contains(&format!("id=\"{field}\"")), "every field's error at once: {field}");
    }
    assert!(!refused.body.contains("Results:"));
}

const PAGE: &str = "/admin/experiments/checkout-race";

/// The race's form, filled in: `buyers` for 5 units of each of `lines` products.
fn race_form(buyers: &str, lines: &str) -> [(&'static str, String); 5] {
    [
        ("buyers", buyers.to_owned()),
        ("stock", "5".to_owned()),
        ("lines", lines.to_owned()),
        ("seed", "1".to_owned()),
        ("failure_rate", "0.2".to_owned()),
    ]
}

/// Posts the race's form from another thread; its answer arrives on the returned channel.
fn run_in_background(mut browser: Browser, form: [(&'static str, String); 5]) -> mpsc::Receiver<TestResponse> {
    let (answered, answer) = mpsc::channel();
    std::thread::spawn(move || {
        let token = browser.csrf_token(PAGE);
        let mut fields = vec![("csrf_token", token.as_str())];
        fields.extend(form.iter().map(|(name, value)| (*name, value.as_str())));
        let _ = answered.send(browser.post_form(PAGE, &fields));
    });
    answer
}

fn post_race(browser: &mut Browser, form: &[(&'static str, String); 5]) -> TestResponse {
    let fields: Vec<(&str, &str)> = form.iter().map(|(name, value)| (*name, value.as_str())).collect();
    browser.submit(PAGE, PAGE, &fields)
}

#[derive(QueryableByName)]
struct Named {
    #[diesel(sql_type = Text)]
    datname: String,
}

/// The experiment's scratch databases on a cluster (of the test's own: no other run's are there).
fn scratch_databases(postgres: &mut PgConnection) -> Vec<String> {
    diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'agora\\_race\\_%' ORDER BY datname")
        .load::<Named>(postgres)
        .unwrap()
        .into_iter()
        .map(|row| row.datname)
        .collect()
}

fn backends(postgres: &mut PgConnection, databases: &str) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query("SELECT count(*) AS n FROM pg_stat_activity WHERE datname LIKE $1")
        .bind::<Text, _>(databases)
        .get_result::<Count>(postgres)
        .unwrap()
        .n
}

/// Ends every session on the databases named like `databases`, as an operator's
/// `pg_terminate_backend` (or a crashing backend) would.
fn terminate(postgres: &mut PgConnection, databases: &str) {
    diesel::sql_query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname LIKE $1")
        .bind::<Text, _>(databases)
        .execute(postgres)
        .unwrap();
}

#[test]
fn a_race_whose_scratch_database_loses_its_connections_stops_with_a_message_and_leaves_nothing() {
    let _race = one_race_at_a_time();
    let cluster = Cluster::start(&[]);
    let app = TestApp::spawn_on_server(|name| cluster.url(name), |_| {});
    let mut postgres = PgConnection::establish(&cluster.url("postgres")).unwrap();
    let answer = run_in_background(app.signed_in_browser(), race_form("600", "3"));

    // The naive variant's buyers all read before any writes: with its pool's connections open,
    // they are reading, and some wait at the barrier for the others.
    eventually("the naive variant's buyers to be connected", Duration::from_secs(120), || {
        backends(&mut postgres, "agora\\_race\\_naive\\_%") >= 2
    });
    let cut = Instant::now();
    let answered = loop {
        terminate(&mut postgres, "agora\\_race\\_%");
        match answer.recv_timeout(Duration::from_millis(100)) {
            Ok(answered) => break answered,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                assert!(cut.elapsed() < Duration::from_secs(60), "no answer 60 s after the connections were cut")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the request got no answer before its client gave up"),
        }
    };
    assert_eq!(answered.status, 503, "{}", answered.body);
    assert!(answered.body.contains("The race failed and was stopped"), "{}", answered.body);
    assert!(answered.body.contains("Its scratch databases were dropped"), "{}", answered.body);
    assert!(answered.header("retry-after").is_some());
    assert!(answered.body.contains("name=\"buyers\" value=\"600\""), "the form is shown again");
    assert_eq!(scratch_databases(&mut postgres), Vec::<String>::new(), "nothing is left behind");
}

#[test]
fn a_race_past_its_deadline_is_stopped_with_a_message_and_leaves_nothing() {
    let _race = one_race_at_a_time();
    let cluster = Cluster::start(&[]);
    let app = TestApp::spawn_on_server(
        |name| cluster.url(name),
        |config| config.experiment.deadline = Duration::from_millis(300),
    );
    let mut postgres = PgConnection::establish(&cluster.url("postgres")).unwrap();
    let mut browser = app.signed_in_browser();
    let started = Instant::now();
    let answered = post_race(&mut browser, &race_form("600", "3"));
    assert!(started.elapsed() < Duration::from_secs(60), "answered {:?} after a deadline of 300 ms", started.elapsed());
    assert_eq!(answered.status, 503, "{}", answered.body);
    assert!(answered.body.contains("The race did not finish within 300 ms"), "{}", answered.body);
    assert!(answered.body.contains("its scratch databases were dropped"), "{}", answered.body);
    assert_eq!(scratch_databases(&mut postgres), Vec::<String>::new(), "nothing is left behind");
}

#[test]
fn a_race_beyond_the_limit_of_runs_at_once_is_refused_at_once() {
    let _race = one_race_at_a_time();
    let cluster = Cluster::start(&[]);
    let app = TestApp::spawn_on_server(|name| cluster.url(name), |config| config.experiment.max_runs = 1);
    let mut postgres = PgConnection::establish(&cluster.url("postgres")).unwrap();
    let first = run_in_background(app.signed_in_browser(), race_form("400", "2"));
    eventually("the first run to create its scratch database", Duration::from_secs(60), || {
        !scratch_databases(&mut postgres).is_empty()
    });

    let mut other = app.signed_in_browser();
    let asked = Instant::now();
    let refused = post_race(&mut other, &race_form("10", "1"));
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(asked.elapsed() < Duration::from_secs(10), "refused at once, not after a run: {:?}", asked.elapsed());
    assert!(refused.header("retry-after").is_some());
    assert!(refused.body.contains("Another checkout race is running"), "{}", refused.body);
    assert!(refused.body.contains("Nothing was started"), "{}", refused.body);
    assert!(!refused.body.contains("Results:"));
    assert!(first.try_recv().is_err(), "the first run was still going when the second was refused");

    let finished = first.recv_timeout(Duration::from_secs(120)).expect("the first run finishes");
    assert_eq!(finished.status, 200, "{}", finished.body);
    let after = post_race(&mut other, &race_form("10", "1"));
    assert_eq!(after.status, 200, "a run may start once the other has finished: {}", after.body);
}

/// Holds `pg_advisory_lock(OWNER_LOCK_CLASS, token)` on the cluster's `postgres` database, as a
/// live run in another process does, for as long as the connection lives.
fn hold_owner_lock(cluster: &Cluster, token: u32) -> PgConnection {
    let mut owner = PgConnection::establish(&cluster.url("postgres")).unwrap();
    diesel::sql_query("SELECT pg_advisory_lock($1, $2)")
        .bind::<Integer, _>(experiment::OWNER_LOCK_CLASS)
        .bind::<Integer, _>(token as i32)
        .execute(&mut owner)
        .unwrap();
    owner
}

fn create(postgres: &mut PgConnection, name: &str) {
    diesel::sql_query(format!("CREATE DATABASE {name}")).execute(postgres).unwrap();
}

#[test]
fn start_up_drops_scratch_databases_a_dead_run_left_and_keeps_a_live_run_s() {
    let _race = one_race_at_a_time();
    let cluster = Cluster::start(&[]);
    let mut postgres = PgConnection::establish(&cluster.url("postgres")).unwrap();
    // A live run of another agora process on this server, and what a killed one left behind.
    let _live = hold_owner_lock(&cluster, 0x1234_abcd);
    create(&mut postgres, "agora_race_shared_1234abcd");
    create(&mut postgres, "agora_race_naive_0badf00d");
    create(&mut postgres, "agora_race_inventory_deadbeef");

    let shop = cluster.url("shop");
    let output = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["experiment", "checkout-race", "--buyers", "5", "--stock", "2"])
        .env("DATABASE_URL", &shop)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(scratch_databases(&mut postgres), vec!["agora_race_shared_1234abcd"], "{stderr}");
    assert!(stderr.contains("agora_race_naive_0badf00d"), "the log names what was dropped: {stderr}");

    create(&mut postgres, "agora_race_orders_0badcafe");
    let serving = AgoraProcess::start_on(&shop, &[]);
    eventually("agora serve to drop what the dead run left", Duration::from_secs(30), || {
        scratch_databases(&mut postgres) == ["agora_race_shared_1234abcd"]
    });
    drop(serving);
    assert_eq!(scratch_databases(&mut postgres), vec!["agora_race_shared_1234abcd"], "the live run's is kept");
}

#[test]
fn the_databases_of_a_run_killed_mid_race_are_dropped_by_the_next_start() {
    let _race = one_race_at_a_time();
    let cluster = Cluster::start(&[]);
    let mut postgres = PgConnection::establish(&cluster.url("postgres")).unwrap();
    let shop = cluster.url("shop");
    let mut running = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["experiment", "checkout-race", "--buyers", "600", "--lines", "3", "--stock", "5"])
        .env("DATABASE_URL", &shop)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually("the run to create its scratch database", Duration::from_secs(60), || {
        !scratch_databases(&mut postgres).is_empty()
    });
    running.kill().unwrap();
    running.wait().unwrap();
    assert!(!scratch_databases(&mut postgres).is_empty(), "a killed run cleans up nothing");

    let output = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["experiment", "checkout-race", "--buyers", "5", "--stock", "2"])
        .env("DATABASE_URL", &shop)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(scratch_databases(&mut postgres), Vec::<String>::new());
}
