//! SIGTERM (a service manager) and SIGINT (Ctrl-C) end `agora serve` promptly in every phase:
//! while it waits for its database, while it migrates, and while it serves.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::helpers::{AgoraProcess, TestDatabase, eventually};

/// Well within what a service manager allows before it kills (systemd: 90 s, Kubernetes: 30 s),
/// and far below the test's own 30 s; the closing note reports the times measured.
const PROMPT: Duration = Duration::from_secs(5);

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(conn: &mut PgConnection, sql: &str, database: &str) -> i64 {
    diesel::sql_query(sql).bind::<Text, _>(database).get_result::<Count>(conn).unwrap().n
}

/// A PostgreSQL URL nobody listens at.
fn unreachable_database_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("postgres://postgres@127.0.0.1:{port}/agora")
}

#[test]
fn a_stop_signal_ends_agora_while_it_waits_for_its_database() {
    for signal in ["TERM", "INT"] {
        let agora = AgoraProcess::start_on(&unreachable_database_url(), &[]);
        // Past the first attempt, into the retries.
        std::thread::sleep(Duration::from_millis(500));
        assert!(agora.get("/readyz").problem(503)["reason"].as_str().unwrap().starts_with("starting"));
        let (status, took) = agora.stop_with(signal);
        eprintln!("waiting for the database: SIG{signal} to exit {} ms", took.as_millis());
        assert!(status.success(), "SIG{signal} is a normal stop: {status}");
        assert!(took < PROMPT, "SIG{signal} took {took:?}");
    }
}

#[test]
fn a_stop_signal_ends_agora_while_it_migrates_and_leaves_no_migration_half_done() {
    let database = TestDatabase::empty();
    // Another process migrating: agora waits for the migration lock, as it would behind a slow migration.
    let mut holder = database.connect();
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(agora::db::MIGRATION_LOCK_KEY)
        .execute(&mut holder)
        .unwrap();
    let agora = AgoraProcess::start_on(&database.url, &[]);
    let mut observer = crate::helpers::maintenance_connection();
    let waiting_for_the_lock = "SELECT count(*) AS n FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
                                WHERE l.locktype = 'advisory' AND NOT l.granted AND a.datname = $1";
    eventually("agora to wait for the migration lock", Duration::from_secs(20), || {
        count(&mut observer, waiting_for_the_lock, &database.name) == 1
    });
    let unready = agora.get("/readyz");
    assert!(unready.problem(503)["reason"].as_str().unwrap().starts_with("starting"), "{}", unready.body);
    assert_eq!(agora.get("/healthz").status, 200, "alive while migrating");

    let (status, took) = agora.terminate();
    eprintln!("migrating: SIGTERM to exit {} ms", took.as_millis());
    assert!(status.success(), "{status}");
    assert!(took < PROMPT, "SIGTERM took {took:?}");

    // Once the lock is free, the abandoned connection finds nobody to carry on: nothing is applied.
    diesel::sql_query("SELECT pg_advisory_unlock_all()").execute(&mut holder).unwrap();
    let sessions = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()";
    eventually("agora's connections to end", Duration::from_secs(10), || {
        count(&mut observer, sessions, &database.name) <= 1
    });
    let migrated =
        "SELECT count(*) AS n FROM pg_tables WHERE tablename = '__diesel_schema_migrations' AND schemaname = $1";
    assert_eq!(count(&mut holder, migrated, "public"), 0, "no migration ran after the signal");
}

#[test]
fn a_stop_signal_ends_agora_while_it_serves_even_with_idle_connections_open() {
    let database = TestDatabase::migrated();
    for signal in ["TERM", "INT"] {
        let agora = AgoraProcess::start(&database, &[("AGORA_BACKGROUND", "on")]);
        agora.get("/api/products").ok_json(200);
        // A client that keeps its connection open and says nothing.
        let idle = std::net::TcpStream::connect(agora.address.trim_start_matches("http://")).unwrap();
        let (status, took) = agora.stop_with(signal);
        drop(idle);
        eprintln!("serving: SIG{signal} to exit {} ms", took.as_millis());
        assert!(status.success(), "{status}");
        assert!(took < PROMPT, "SIG{signal} took {took:?}");
    }
}
