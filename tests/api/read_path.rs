//! The read path: HTTP validators on product answers, the catalog cache and how it learns of
//! changes made by any process, and reads from a PostgreSQL streaming replica.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::helpers::{AgoraProcess, TestApp, TestDatabase, eventually};
use crate::metrics::value_or_zero;

/// How soon after a committed change no process may serve the old product. The cache's TTL (60 s
/// by default) is far longer, so only the invalidation can meet it.
const STALENESS_BOUND: Duration = Duration::from_secs(1);

fn scrape(agora: &AgoraProcess) -> prometheus_parse::Scrape {
    let response = agora.admin_get("/metrics");
    assert_eq!(response.status, 200, "{}", response.body);
    prometheus_parse::Scrape::parse(response.body.lines().map(|line| Ok(line.to_owned()))).unwrap()
}

#[test]
fn a_product_answer_carries_validators_and_a_current_copy_earns_a_304() {
    let app = TestApp::spawn();
    let id = app.create_product("ETAG-001", 1250)["id"].as_str().unwrap().to_owned();
    let path = format!("/api/products/{id}");

    let first = app.get(&path);
    assert_eq!(first.status, 200);
    let etag = first.header("etag").expect("an ETag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 20, "{etag}");
    assert_eq!(first.header("cache-control"), Some("public, max-age=5"));
    let last_modified = first.header("last-modified").expect("a Last-Modified").to_owned();

    let current = app.request("GET", &path, &[("If-None-Match", &etag)]);
    assert_eq!(current.status, 304);
    assert!(current.body.is_empty());
    assert_eq!(current.header("etag"), Some(etag.as_str()));
    assert_eq!(current.header("cache-control"), Some("public, max-age=5"));
    // Weak comparison, lists and `*`, as RFC 9110 has them.
    assert_eq!(app.request("GET", &path, &[("If-None-Match", &format!("W/{etag}"))]).status, 304);
    assert_eq!(app.request("GET", &path, &[("If-None-Match", &format!("\"other\", {etag}"))]).status, 304);
    assert_eq!(app.request("GET", &path, &[("If-None-Match", "*")]).status, 304);
    assert_eq!(app.request("GET", &path, &[("If-None-Match", "\"other\"")]).status, 200);
    // Without If-None-Match, the date decides; with it, the date is ignored.
    assert_eq!(app.request("GET", &path, &[("If-Modified-Since", &last_modified)]).status, 304);
    assert_eq!(app.request("GET", &path, &[("If-Modified-Since", "Wed, 01 Jan 2025 00:00:00 GMT")]).status, 200);
    let both = [("If-None-Match", "\"other\""), ("If-Modified-Since", last_modified.as_str())];
    assert_eq!(app.request("GET", &path, &both).status, 200);

    // The change is seen at once by the process that made it, and the old copy is no longer current.
    app.admin_patch_json(&path, &json!({"price_minor": 1300})).ok_json(200);
    let changed = app.request("GET", &path, &[("If-None-Match", &etag)]);
    assert_eq!(changed.status, 200);
    assert_eq!(changed.json()["price_minor"], 1300);
    assert_ne!(changed.header("etag"), Some(etag.as_str()));
}

#[test]
fn a_list_page_carries_validators_and_changes_with_any_product() {
    let app = TestApp::spawn();
    let kept = app.create_product("LIST-001", 100)["id"].as_str().unwrap().to_owned();
    app.create_product("LIST-002", 200);
    let path = "/api/products?limit=10";
    let first = app.get(path);
    assert_eq!(first.json()["items"].as_array().unwrap().len(), 2);
    let etag = first.header("etag").unwrap().to_owned();
    assert_eq!(app.request("GET", path, &[("If-None-Match", &etag)]).status, 304);

    // A new product changes the page.
    app.create_product("LIST-003", 300);
    let grown = app.request("GET", path, &[("If-None-Match", &etag)]);
    assert_eq!(grown.status, 200);
    assert_eq!(grown.json()["items"].as_array().unwrap().len(), 3);

    // So does a product leaving the shop, although no product left on the page changed.
    let etag = grown.header("etag").unwrap().to_owned();
    app.admin_patch_json(&format!("/api/products/{kept}"), &json!({"active": false})).ok_json(200);
    let shrunk = app.request("GET", path, &[("If-None-Match", &etag)]);
    assert_eq!(shrunk.status, 200);
    let skus: Vec<Value> = shrunk.json()["items"].as_array().unwrap().iter().map(|item| item["sku"].clone()).collect();
    assert_eq!(skus, [json!("LIST-002"), json!("LIST-003")]);
    let since = shrunk.header("last-modified").unwrap().to_owned();
    assert_eq!(app.request("GET", path, &[("If-Modified-Since", &since)]).status, 304);
}

#[test]
fn the_cache_serves_copies_and_the_ttl_is_the_safety_net() {
    let app = TestApp::spawn_with(|config| config.catalog_cache.ttl = Duration::from_secs(1));
    let id = app.create_product("TTL-001", 500)["id"].as_str().unwrap().to_owned();
    let path = format!("/api/products/{id}");
    eventually("the cache to listen", Duration::from_secs(10), || {
        app.get(&path);
        app.get(&path).json()["price_minor"] == 500
    });
    // A change nobody announces (the notifying trigger switched off) shows what is cached:
    // the old copy, until the TTL ends it.
    let mut conn = app.connect();
    conn.batch_execute(&format!(
        "ALTER TABLE products DISABLE TRIGGER products_notify_update; \
         UPDATE products SET price_minor = 900 WHERE id = '{id}'; \
         ALTER TABLE products ENABLE TRIGGER products_notify_update;"
    ))
    .unwrap();
    let changed_at = Instant::now();
    assert_eq!(app.get(&path).json()["price_minor"], 500, "served from the cache");
    eventually("the TTL to end the cached copy", Duration::from_secs(5), || {
        app.get(&path).json()["price_minor"] == 900
    });
    assert!(changed_at.elapsed() >= Duration::from_millis(500));

    // An announced change (the trigger on again) ends it at once, TTL or not.
    conn.batch_execute(&format!("UPDATE products SET price_minor = 950 WHERE id = '{id}'")).unwrap();
    eventually("the notification to end the cached copy", Duration::from_millis(500), || {
        app.get(&path).json()["price_minor"] == 950
    });
}

/// Two agora processes on one database: whatever changes a product, through either process or
/// straight in SQL, the other never serves the old product once the staleness bound has passed.
#[test]
fn every_process_drops_a_changed_product_within_the_staleness_bound() {
    let database = TestDatabase::migrated();
    let env = [("AGORA_BACKGROUND", "off")];
    let (writer, reader) = (AgoraProcess::start(&database, &env), AgoraProcess::start(&database, &env));
    for agora in [&writer, &reader] {
        eventually("agora ready", Duration::from_secs(30), || agora.get("/readyz").status == 200);
    }
    let id = writer
        .admin_post_json("/api/products", &json!({"sku": "STALE-001", "name": "Stale", "price_minor": 1000}))
        .ok_json(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/products/{id}");
    let price_on_reader = || reader.get(&path).json()["price_minor"].as_i64().unwrap();
    eventually("the reader's cache to listen", Duration::from_secs(10), || {
        scrape(&reader).samples.iter().any(|s| s.metric == "agora_catalog_cache_listening")
            && value_or_zero(&scrape(&reader), "agora_catalog_cache_listening", &[]) == 1.0
    });

    let mut conn = database.connect();
    let mut windows = Vec::new();
    for round in 1..=40_i64 {
        let price = 1000 + round;
        // The reader holds the current product in its cache...
        assert_eq!(price_on_reader(), price - 1);
        assert_eq!(price_on_reader(), price - 1);
        // ...when another process (or, every tenth round, plain SQL) changes it.
        if round % 10 == 0 {
            conn.batch_execute(&format!("UPDATE products SET price_minor = {price} WHERE id = '{id}'")).unwrap();
        } else {
            writer.admin_patch_json(&path, &json!({"price_minor": price})).ok_json(200);
        }
        let committed = Instant::now();
        while price_on_reader() != price {
            assert!(
                committed.elapsed() < STALENESS_BOUND,
                "round {round}: the reader still served the old product {:?} after the change committed",
                committed.elapsed()
            );
        }
        windows.push(committed.elapsed());
    }
    windows.sort();
    let (p50, p99) = (windows[windows.len() / 2], windows[windows.len() * 99 / 100]);
    println!("staleness window over {} changes: p50 {p50:?}, p99 {p99:?}, max {:?}", windows.len(), windows.last());

    let metrics = scrape(&reader);
    let hits = value_or_zero(&metrics, "agora_catalog_cache_lookups_total", &[("kind", "product"), ("outcome", "hit")]);
    assert!(hits >= 40.0, "the reader answered from its cache: {hits} hits");
    let notified = value_or_zero(&metrics, "agora_catalog_cache_invalidations_total", &[("source", "notified")]);
    assert!(notified >= 40.0, "every change was announced to the reader: {notified}");

    // The operator sees the same on the architecture page.
    let page = reader.signed_in_browser().get("/admin/architecture");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Measured staleness") && page.body.contains("from the changing statement to the drop here")
    );
    assert!(page.body.contains("none configured (<code>AGORA_REPLICA_URL</code>)"), "no replica here");
}

/// Whether the admin product list, searched for `sku`, lists that product (the search box
/// holds the SKU either way; a listed product's SKU links to its page).
fn product_list_shows(browser: &mut crate::helpers::Browser, sku: &str) -> bool {
    let page = browser.get(&format!("/admin/products?q={sku}"));
    assert_eq!(page.status, 200, "{}", page.body);
    page.body.contains(&format!(">{sku}</a></td>"))
}

fn replica_state(agora: &AgoraProcess) -> Value {
    let ready = agora.get("/readyz");
    assert_eq!(ready.status, 200, "a skipped replica leaves the process ready: {}", ready.body);
    ready.json()["replica"].clone()
}

fn reads_served(agora: &AgoraProcess, server: &str) -> f64 {
    value_or_zero(&scrape(agora), "agora_db_reads_total", &[("server", server)])
}

/// agora on `primary`, reading from `replica` while it is at most `max_lag_ms` behind; ready
/// with the replica in use. Without a cache, so that every product read reaches a server.
fn agora_reading_from(primary: &Cluster, replica: &Cluster, max_lag_ms: &str) -> AgoraProcess {
    let agora = AgoraProcess::start_on(
        &primary.url("agora"),
        &[
            ("AGORA_REPLICA_URL", &replica.url("agora")),
            ("AGORA_REPLICA_MAX_LAG_MS", max_lag_ms),
            ("AGORA_CATALOG_CACHE_ENTRIES", "0"),
            ("AGORA_BACKGROUND", "off"),
        ],
    );
    eventually("the replica in use", Duration::from_secs(30), || {
        agora.get("/readyz").status == 200 && replica_state(&agora)["state"] == "in_use"
    });
    agora
}

/// A real streaming replica (its own primary and replica clusters): reads reach it, a session
/// reads its own writes, and a lagging, stopped or promoted replica is skipped without errors.
#[test]
fn reads_go_to_a_streaming_replica_while_it_keeps_up() {
    let primary = Cluster::start(&[("wal_level", "replica")]);
    let replica = Cluster::replica_of(&primary);
    let patient = agora_reading_from(&primary, &replica, "60000");
    let id = patient
        .admin_post_json("/api/products", &json!({"sku": "REPL-001", "name": "Replicated", "price_minor": 700}))
        .ok_json(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Reads reach the replica (once it has replayed the new product): the metrics count them,
    // and the replica's own statistics show agora's sessions there.
    eventually("a read served by the replica", Duration::from_secs(10), || {
        let before = reads_served(&patient, "replica");
        patient.get("/api/products").status == 200 && reads_served(&patient, "replica") > before
    });
    let before = reads_served(&patient, "replica");
    for _ in 0..20 {
        assert_eq!(patient.get("/api/products").status, 200);
    }
    assert!(reads_served(&patient, "replica") >= before + 15.0, "reads went to the replica");
    let mut on_replica = PgConnection::establish(&replica.url("agora")).unwrap();
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sessions = diesel::sql_query("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'agora'")
        .get_result::<Count>(&mut on_replica)
        .unwrap()
        .n;
    assert!(sessions >= 1, "agora holds connections to the replica");
    let page = patient.signed_in_browser().get("/admin/architecture");
    assert!(page.body.contains("Replica lag") && page.body.contains("replica-eligible reads"), "{}", page.body);

    // Read-your-writes: with replay paused the replica cannot have a new product. The operator
    // who created it sees it at once (read from the primary); another operator, who wrote
    // nothing since, reads the replica and does not see it yet.
    let mut bystander = patient.signed_in_browser();
    let mut operator = patient.signed_in_browser();
    // Signing in was a write: wait until the replica has replayed it for the bystander.
    eventually("the bystander to read from the replica", Duration::from_secs(10), || {
        let before = reads_served(&patient, "replica");
        product_list_shows(&mut bystander, "RYW-001");
        reads_served(&patient, "replica") > before
    });
    on_replica.batch_execute("SELECT pg_wal_replay_pause()").unwrap();
    let created = operator.submit(
        "/admin/products/new",
        "/admin/products",
        &[
            ("sku", "RYW-001"),
            ("name", "Read your writes"),
            ("description", ""),
            ("price", "12.50"),
            ("low_stock_threshold", "5"),
        ],
    );
    assert_eq!(created.status, 303, "{}", created.body);
    assert!(product_list_shows(&mut operator, "RYW-001"), "the writer reads its own write");
    assert!(!product_list_shows(&mut bystander, "RYW-001"), "another session reads the (paused) replica");
    on_replica.batch_execute("SELECT pg_wal_replay_resume()").unwrap();
    eventually("the replica to replay the write", Duration::from_secs(10), || {
        product_list_shows(&mut bystander, "RYW-001")
    });

    // A lagging replica is skipped by a process that allows little lag.
    let strict = agora_reading_from(&primary, &replica, "300");
    on_replica.batch_execute("SELECT pg_wal_replay_pause()").unwrap();
    patient.admin_patch_json(&format!("/api/products/{id}"), &json!({"price_minor": 710})).ok_json(200);
    eventually("the lagging replica to be skipped", Duration::from_secs(10), || {
        let state = replica_state(&strict);
        state["state"] == "skipped" && state["reason"].as_str().unwrap_or_default().contains("lagging")
    });
    let from_primary = reads_served(&strict, "primary");
    assert_eq!(strict.get(&format!("/api/products/{id}")).json()["price_minor"], 710, "read from the primary");
    assert!(reads_served(&strict, "primary") > from_primary);
    on_replica.batch_execute("SELECT pg_wal_replay_resume()").unwrap();
    eventually("the caught-up replica in use again", Duration::from_secs(10), || {
        replica_state(&strict)["state"] == "in_use"
    });
    drop(on_replica);

    // A stopped replica: every read still succeeds, from the primary.
    replica.stop();
    for _ in 0..30 {
        assert_eq!(patient.get(&format!("/api/products/{id}")).status, 200);
        assert_eq!(patient.get("/api/products").status, 200);
    }
    eventually("the stopped replica to be skipped", Duration::from_secs(10), || {
        replica_state(&patient)["state"] == "skipped"
    });
    let metrics = scrape(&patient);
    assert_eq!(value_or_zero(&metrics, "agora_db_replica_in_use", &[]), 0.0);

    // A promoted replica follows the primary no more: skipped, whatever its lag.
    replica.start_again();
    eventually("the restarted replica in use", Duration::from_secs(30), || {
        replica_state(&patient)["state"] == "in_use"
    });
    replica.promote();
    eventually("the promoted replica to be skipped", Duration::from_secs(10), || {
        replica_state(&patient)["reason"].as_str().unwrap_or_default().contains("promoted")
    });
    assert_eq!(patient.get(&format!("/api/products/{id}")).json()["price_minor"], 710);
}
