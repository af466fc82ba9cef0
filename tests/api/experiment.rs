//! `agora experiment checkout-race`: the shared transaction, separate services with a saga, and a
//! naive read-then-write, raced by real concurrent buyers on scratch databases.

use std::process::Command;

use agora::experiment::{self, Outcome, RaceOptions};

use crate::helpers::{TestApp, TestDatabase, test_config};

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
