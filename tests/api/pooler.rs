//! Agora behind PgBouncer in transaction mode (`AGORA_DB_POOL_MODE=transaction`): consecutive
//! transactions of one Agora connection run on whichever server session the pooler lends, so
//! nothing may be left on a session. What is checked here is checked from PostgreSQL's side.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use serde_json::json;

use crate::helpers::{TestApp, concurrently, eventually};

#[path = "../support/pgbouncer.rs"]
mod pgbouncer;
pub use pgbouncer::PgBouncer;

/// A PgBouncer in front of the tests' PostgreSQL with at most `pool_size` server sessions per database.
pub fn pgbouncer(pool_size: u32) -> PgBouncer {
    let (host, port) = pgbouncer::host_and_port(&crate::helpers::server_url());
    PgBouncer::start(&host, port, pool_size).unwrap_or_else(|problem| panic!("{problem}"))
}

/// Agora through `bouncer` in transaction mode, on the test's own database.
fn app_through(bouncer: &PgBouncer, background: bool) -> TestApp {
    let pooled = |name: &str| bouncer.url(name);
    TestApp::spawn_with(|config| {
        // PostgreSQL itself, whether or not the tests run behind a PgBouncer of their own already.
        let name = agora::db::split_database_url(&config.direct_database_url).unwrap().1;
        config.database_url = pooled(&name);
        config.pool.mode = agora::config::PoolMode::Transaction;
        config.outbox.run_in_server = background;
    })
}

/// Every write to the tables of the modules that take part in an order, with the role that
/// made it as PostgreSQL saw it (`current_user`) and the server session it ran on.
const RECORD_WRITERS: &str = "
    CREATE TABLE write_audit (
        table_name text NOT NULL,
        writer text NOT NULL,
        backend_pid int NOT NULL
    );
    GRANT INSERT ON write_audit TO PUBLIC;
    CREATE FUNCTION record_writer() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO write_audit VALUES (TG_TABLE_NAME, current_user, pg_backend_pid());
        RETURN NULL;
    END $$;
    DO $$
    DECLARE audited text;
    BEGIN
        FOREACH audited IN ARRAY ARRAY['products', 'inventory_levels', 'inventory_movements', 'customers', 'orders',
                                       'order_lines', 'payments', 'events', 'event_deliveries', 'notifications',
                                       'admin_sessions']
        LOOP
            EXECUTE format('CREATE TRIGGER record_writer AFTER INSERT OR UPDATE OR DELETE ON %I
                            FOR EACH ROW EXECUTE FUNCTION record_writer()', audited);
        END LOOP;
    END $$;";

#[derive(QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Writer {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    writer: String,
}

#[derive(QueryableByName)]
struct Sessions {
    #[diesel(sql_type = Integer)]
    sessions: i32,
}

#[derive(QueryableByName)]
struct SessionState {
    #[diesel(sql_type = Text)]
    role: String,
    #[diesel(sql_type = Text)]
    statement_timeout: String,
    #[diesel(sql_type = Text)]
    lock_timeout: String,
}

#[test]
fn through_a_pool_of_two_server_sessions_every_write_runs_as_its_own_module_and_nothing_stays_behind() {
    let bouncer = pgbouncer(2);
    let app = app_through(&bouncer, true);
    app.connect().batch_execute(RECORD_WRITERS).unwrap();
    let products: Vec<String> =
        (0..4).map(|index| app.product_with_stock(&format!("POOL-{index}"), 1_000 + index, 500)).collect();

    // Four kinds of work of five modules, interleaved from eight clients over Agora's eight
    // connections, which share two server sessions.
    let outcomes = concurrently(8, |client| {
        let mut statuses = Vec::new();
        for round in 0..6 {
            let product = &products[(client + round) % products.len()];
            let placed = app.place_order(&format!("pool-{client}-{round}@example.com"), &[(product, 1)]);
            statuses.push(("checkout", placed.status));
            if placed.status != 201 {
                continue;
            }
            let order_id = placed.json()["id"].as_str().unwrap().to_owned();
            statuses.push(("payment", app.pay(&order_id, "4242424242424242").status));
            let restocked = app.admin_post_json(
                &format!("/api/inventory/{product}/adjustments"),
                &json!({"delta": 1, "reason": "restock", "kind": "receipt"}),
            );
            statuses.push(("stock", restocked.status));
            let renamed = app.admin_patch_json(
                &format!("/api/products/{product}"),
                &json!({
                    "description": format!("restocked by client {client} in round {round}")
                }),
            );
            statuses.push(("product", renamed.status));
        }
        // Sign-ins by name are limited to five at a time: four of the clients sign in.
        if client < 4 {
            let mut browser = app.browser();
            statuses.push(("sign-in", browser.sign_in("admin", crate::helpers::ADMIN_PASSWORD).status));
        }
        statuses
    });
    for (kind, status) in outcomes.iter().flatten() {
        assert!(matches!(status, 200 | 201 | 303), "{kind} answered {status}; PgBouncer said:\n{}", bouncer.log());
    }
    // The order e-mails are written by the dispatcher's workers, through the same two sessions.
    eventually("every order's e-mail", Duration::from_secs(20), || {
        app.count("SELECT count(*) FROM notifications") >= 48
    });

    let mut conn = app.connect();
    let writers: Vec<Writer> =
        diesel::sql_query("SELECT DISTINCT table_name, writer FROM write_audit ORDER BY table_name, writer")
            .load(&mut conn)
            .unwrap();
    let expected = [
        ("admin_sessions", "agora_admin"),
        ("customers", "agora_orders"),
        ("event_deliveries", "agora_outbox"),
        ("events", "agora_outbox"),
        ("inventory_levels", "agora_inventory"),
        ("inventory_movements", "agora_inventory"),
        ("notifications", "agora_notifications"),
        ("order_lines", "agora_orders"),
        ("orders", "agora_orders"),
        ("payments", "agora_payments"),
        ("products", "agora_catalog"),
    ];
    let expected: Vec<Writer> = expected
        .iter()
        .map(|(table, writer)| Writer { table_name: (*table).to_owned(), writer: (*writer).to_owned() })
        .collect();
    assert_eq!(writers, expected, "each table written only by its module's role, never by the login user");
    let sessions: Sessions = diesel::sql_query("SELECT count(DISTINCT backend_pid)::int AS sessions FROM write_audit")
        .get_result(&mut conn)
        .unwrap();
    assert!(sessions.sessions <= 2, "all of it ran on PgBouncer's two server sessions, not {}", sessions.sessions);

    // Both server sessions, taken at once through PgBouncer by plain clients: each is back to the
    // login user and the server's default timeouts.
    let database = agora::db::split_database_url(&app.database.url).unwrap().1;
    let states = concurrently(2, |_| {
        let mut client = PgConnection::establish(&bouncer.url(&database)).unwrap();
        client
            .transaction(|client| {
                let state: SessionState = diesel::sql_query(
                    "SELECT current_user::text AS role, current_setting('statement_timeout') AS statement_timeout, \
                            current_setting('lock_timeout') AS lock_timeout, pg_sleep(0.3)::text AS slept",
                )
                .get_result(client)?;
                Ok::<_, diesel::result::Error>(state)
            })
            .unwrap()
    });
    for state in states {
        assert_eq!(
            (state.role.as_str(), state.statement_timeout.as_str(), state.lock_timeout.as_str()),
            ("postgres", "0", "0"),
            "a server session kept a role or a timeout of Agora's work"
        );
    }
}
