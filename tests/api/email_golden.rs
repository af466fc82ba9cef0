//! Every kind of order e-mail, byte for byte, against files committed under `tests/api/golden/`.
//!
//! The e-mails are a contract with customers: changing where their data comes from (tables, or
//! the events that announce a change) must not change a byte of them. The data is fixed, and
//! chosen to need escaping in HTML (`&`, `<`, quotes) and to hold characters outside ASCII; only
//! what differs between runs (the order number, when it was placed, the event id in the
//! Message-ID) is replaced by a placeholder.
//!
//! `AGORA_BLESS=1 cargo test --test api email_golden` writes the files instead of comparing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agora::db::{Db, MIGRATIONS};
use agora::kernel::Module;
use agora::notifications::OrderEmails;
use agora::outbox::dispatcher::process_batch;
use chrono::{DateTime, Utc};
use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamptz};
use diesel_migrations::MigrationHarness;
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, test_config};
use crate::topology::{Shop, Topology};

const VISA: &str = "4242424242424242";
const CUSTOMER_EMAIL: &str = "Zoe.O'Brien&Co@Example.com";
const CUSTOMER_NAME: &str = "Zoë \"Zed\" O'Brien & <Co>";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/golden")
}

/// Creates a product with a name and description of its own, and stock; returns its id.
fn product(app: &TestApp, sku: &str, name: &str, description: &str, price_minor: i64) -> String {
    let created = app
        .admin_post_json(
            "/api/products",
            &json!({"sku": sku, "name": name, "description": description, "price_minor": price_minor}),
        )
        .ok_json(201);
    let id = created["id"].as_str().unwrap().to_owned();
    app.receive_stock(&id, 50);
    id
}

/// Places an order for the one customer; returns (id, number as shown).
fn place(app: &TestApp, items: &[(&str, i64)]) -> (String, String) {
    let body = json!({
        "customer": {"email": CUSTOMER_EMAIL, "name": CUSTOMER_NAME},
        "items": items.iter().map(|(id, quantity)| json!({"product_id": id, "quantity": quantity})).collect::<Vec<_>>(),
    });
    let order = app.post_json("/api/orders", &body).ok_json(201);
    (order["id"].as_str().unwrap().to_owned(), order["number"].as_str().unwrap().to_owned())
}

fn refund(app: &TestApp, order: &str, body: &Value) {
    app.admin_post_json(&format!("/api/orders/{order}/refunds"), body).ok_json(201);
}

#[derive(QueryableByName)]
struct Email {
    #[diesel(sql_type = BigInt)]
    event_id: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    recipient: String,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Text)]
    message_id: String,
    #[diesel(sql_type = Text)]
    text_body: String,
    #[diesel(sql_type = Text)]
    html_body: String,
}

#[derive(QueryableByName)]
struct PlacedAt {
    #[diesel(sql_type = Timestamptz)]
    placed_at: DateTime<Utc>,
}

/// The order's e-mails, oldest event first, from the database that holds them (the shared one, or
/// the notifications service's, which has no `orders` to join).
fn emails_of(conn: &mut PgConnection, order: &str) -> Vec<Email> {
    diesel::sql_query(format!(
        "SELECT event_id, kind, recipient, subject, message_id, text_body, html_body
           FROM notifications WHERE order_id = '{order}' ORDER BY event_id"
    ))
    .load(conn)
    .unwrap()
}

/// When the order was placed, as the shared database has it.
fn placed_at(conn: &mut PgConnection, order: &str) -> DateTime<Utc> {
    diesel::sql_query(format!("SELECT created_at AS placed_at FROM orders WHERE id = '{order}'"))
        .get_result::<PlacedAt>(conn)
        .unwrap()
        .placed_at
}

/// One e-mail as its golden file holds it: every part, with the run's own values replaced.
fn golden_text(email: &Email, number: &str, placed_at: DateTime<Utc>) -> String {
    let placed = placed_at.format("%Y-%m-%d %H:%M UTC").to_string();
    let event_tag = format!("<event-{}.", email.event_id);
    // The status page's link names the shop's (random) port and the order's random token.
    let status_link = regex::Regex::new(r"http://127\.0\.0\.1:[0-9]+/orders/[A-Za-z0-9_-]{43}").unwrap();
    let normalize = |text: &str| {
        let text = text.replace(number, "{number}").replace(&placed, "{placed}");
        let text = status_link.replace_all(&text, "{status_link}");
        text.replace(&event_tag, "<event-{event}.")
    };
    format!(
        "To: {}\nSubject: {}\nMessage-ID: {}\n\n--- text/plain ---\n{}\n--- text/html ---\n{}",
        normalize(&email.recipient),
        normalize(&email.subject),
        normalize(&email.message_id),
        normalize(&email.text_body),
        normalize(&email.html_body),
    )
}

/// Where `expected` and `actual` part, with a few lines of context on either side.
fn first_difference(expected: &str, actual: &str) -> String {
    let (expected, actual): (Vec<&str>, Vec<&str>) = (expected.split('\n').collect(), actual.split('\n').collect());
    let at = expected.iter().zip(&actual).position(|(e, a)| e != a).unwrap_or(expected.len().min(actual.len()));
    let from = at.saturating_sub(3);
    let mut report = format!("first difference at line {}:\n", at + 1);
    for line in &expected[from..at] {
        report.push_str(&format!("  {line}\n"));
    }
    for line in expected.iter().skip(at).take(6) {
        report.push_str(&format!("- {line}\n"));
    }
    for line in actual.iter().skip(at).take(6) {
        report.push_str(&format!("+ {line}\n"));
    }
    report
}

/// An order of the scenario: its label in the golden files' names, its id, its number.
struct Placed {
    label: &'static str,
    id: String,
    number: String,
}

/// How many e-mails the scenario calls for: 6 for order a, 2 for b, 3 for c.
const EMAILS: i64 = 6 + 2 + 3;

/// Three orders of one customer, through the public API, between them leading to every kind of
/// e-mail: received, confirmed, refunded in part by an amount and by lines, shipped, refunded in
/// full after parts and at once, cancelled.
fn place_the_orders(app: &TestApp) -> Vec<Placed> {
    let mug = product(
        app,
        "MUG-001",
        "Mug & Saucer \"Deluxe\"",
        "Stoneware <350 ml> & dishwasher-safe — 'tall' \"wide\"",
        1290,
    );
    let cup = product(app, "CAFE-42", "Café <Grande>", "", 1790);
    let tee = product(app, "TEE-XL", "T-shirt 'Agora' & co", "Organic cotton.\nPrinted in Zürich.", 2500);

    // Order a: paid, refunded an amount, then lines, shipped, then refunded in full.
    let (a, a_number) = place(app, &[(&mug, 2), (&cup, 1), (&tee, 3)]);
    app.pay(&a, VISA).ok_json(201);
    refund(app, &a, &json!({"amount_minor": 500}));
    refund(app, &a, &json!({"lines": [{"product_id": mug, "quantity": 1}, {"product_id": tee, "quantity": 2}]}));
    app.admin_post(&format!("/api/orders/{a}/ship")).ok_json(200);
    app.admin_post(&format!("/api/orders/{a}/refund")).ok_json(200);
    // Order b: cancelled before payment.
    let (b, b_number) = place(app, &[(&cup, 1)]);
    app.post_json(&format!("/api/orders/{b}/cancel"), &json!({})).ok_json(200);
    // Order c: paid, then refunded in full at once.
    let (c, c_number) = place(app, &[(&mug, 1)]);
    app.pay(&c, VISA).ok_json(201);
    app.admin_post(&format!("/api/orders/{c}/refund")).ok_json(200);
    vec![
        Placed { label: "a", id: a, number: a_number },
        Placed { label: "b", id: b, number: b_number },
        Placed { label: "c", id: c, number: c_number },
    ]
}

/// The orders' e-mails as their golden files would hold them, by file name; the e-mails read
/// from the database at `emails_url`.
fn golden_texts(app: &TestApp, emails_url: &str, orders: &[Placed]) -> BTreeMap<String, String> {
    let mut produced = BTreeMap::new();
    let (mut shared, mut emails) = (app.connect(), PgConnection::establish(emails_url).unwrap());
    for order in orders {
        let placed = placed_at(&mut shared, &order.id);
        for (index, email) in emails_of(&mut emails, &order.id).iter().enumerate() {
            produced.insert(
                format!("order-{}-{}-{}.txt", order.label, index + 1, email.kind),
                golden_text(email, &order.number, placed),
            );
        }
    }
    assert_eq!(produced.len() as i64, EMAILS);
    produced
}

/// Fails, naming each file that differs and where, unless every e-mail is its golden file.
fn assert_golden(produced: &BTreeMap<String, String>) {
    assert_golden_but(produced, |expected| expected)
}

/// The golden e-mail as it reads without the link to the order's status page, which events
/// written before status pages existed do not name.
fn without_status_link(golden: String) -> String {
    golden
        .replace("\nFollow your order: {status_link}\n", "")
        .replace("<p><a href=\"{status_link}\">Follow your order</a> on its status page.</p>\n  ", "")
}

/// [`assert_golden`] against each golden file as `expected` reads it.
fn assert_golden_but(produced: &BTreeMap<String, String>, expected: impl Fn(String) -> String) {
    let dir = golden_dir();
    let actual_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/golden-actual");
    std::fs::create_dir_all(&actual_dir).unwrap();
    let mut failures = Vec::new();
    for (name, actual) in produced {
        let path = dir.join(name);
        match std::fs::read_to_string(&path).map(&expected) {
            Ok(expected) if expected == *actual => {}
            Ok(expected) => {
                let written = actual_dir.join(name);
                std::fs::write(&written, actual).unwrap();
                failures.push(format!(
                    "{name} differs; compare with `diff -u {} {}`\n{}",
                    path.display(),
                    written.display(),
                    first_difference(&expected, actual)
                ));
            }
            Err(error) => failures.push(format!("{name}: cannot read {}: {error}", path.display())),
        }
    }
    let stale: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".txt") && !produced.contains_key(name))
        .collect();
    for name in stale {
        failures.push(format!("{name} is a golden file no e-mail produced"));
    }
    assert!(
        failures.is_empty(),
        "the e-mails differ from their golden files (AGORA_BLESS=1 rewrites them, if the change is meant):\n\n{}",
        failures.join("\n")
    );
}

crate::in_both_topologies! {
    /// The service renders from the same events, with the same code: the same bytes.
    fn every_order_e_mail_is_byte_for_byte_its_golden_file(topology) {
        let shop = Shop::spawn(topology, |config| {
            config.outbox.run_in_server = true;
            config.outbox.poll_interval = Duration::from_millis(200);
        });
        let orders = place_the_orders(&shop);
        eventually("every e-mail written", Duration::from_secs(30), || shop.emails_recorded() == EMAILS);
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(shop.emails_recorded(), EMAILS, "one e-mail per event");
        let emails_url = shop.split.as_ref().map_or(&shop.database.url, |parts| &parts.service_database.url);
        let produced = golden_texts(&shop, emails_url, &orders);
        if topology == Topology::Shared && std::env::var("AGORA_BLESS").is_ok_and(|value| value == "1") {
            bless(&produced);
            return;
        }
        assert_golden(&produced);
    }
}

/// Writes the golden files from `produced`, instead of comparing (`AGORA_BLESS=1`).
fn bless(produced: &BTreeMap<String, String>) {
    let dir = golden_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "txt") {
            std::fs::remove_file(path).unwrap();
        }
    }
    for (name, text) in produced {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

/// The migration that gives stored payloads their version and order.
fn snapshots_migration() -> Box<dyn Migration<Pg>> {
    MigrationSource::<Pg>::migrations(&MIGRATIONS)
        .unwrap()
        .into_iter()
        .find(|migration| migration.name().to_string().ends_with("_outbox_event_payload_snapshots"))
        .expect("the migration is embedded")
}

#[test]
fn e_mails_of_events_stored_before_payloads_carried_the_order_are_the_same_bytes() {
    // No background work: the events wait in the outbox, as they may across an upgrade.
    let app = TestApp::spawn();
    let orders = place_the_orders(&app);
    let mut conn = app.connect();
    // The payloads as the code before them stored them: no version, no order.
    conn.revert_migration(snapshots_migration().as_ref()).unwrap();
    assert_eq!(app.count("SELECT count(*) FROM events WHERE payload ?| ARRAY['version', 'order']"), 0);
    assert_eq!(app.count("SELECT count(*) FROM event_deliveries WHERE status = 'pending'"), EMAILS);

    let config = test_config(&app.database.url);
    let db = Db::connect(&app.database.url, &config.pool);
    let handler = OrderEmails::new(&config);
    let dispatch = || {
        db.run_blocking(Module::Outbox.op("dispatch"), |conn| process_batch(conn, &config.outbox, &handler, 32))
            .unwrap()
            .claimed
    };

    // Unreadable, they are retried, each saying why; nothing is written, nothing panics.
    assert_eq!(dispatch(), EMAILS as usize);
    assert_eq!(app.count("SELECT count(*) FROM notifications"), 0);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM event_deliveries WHERE status = 'pending' AND attempts = 1
                AND last_error LIKE 'unreadable % payload: missing field `version`%'"
        ),
        EMAILS,
    );

    conn.run_pending_migrations(MIGRATIONS).unwrap();
    assert_eq!(
        app.count(
            "SELECT count(*) FROM events WHERE payload ->> 'version' = '1' AND payload ? 'order'
                AND event_type <> 'PaymentFailed' AND aggregate_type = 'order'"
        ),
        EMAILS
    );
    assert_eq!(app.count("SELECT count(*) FROM events WHERE NOT payload ? 'version'"), 0);
    // Due now rather than after the backoff.
    diesel::sql_query("UPDATE event_deliveries SET next_attempt_at = now()").execute(&mut conn).unwrap();
    assert_eq!(dispatch(), EMAILS as usize);
    assert_eq!(app.count("SELECT count(*) FROM event_deliveries WHERE status = 'completed'"), EMAILS);
    // The same bytes as the e-mails of events written now, but for the status page's link:
    // these events were written before orders had status pages.
    assert_golden_but(&golden_texts(&app, &app.database.url, &orders), without_status_link);
}
