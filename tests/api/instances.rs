//! Three `agora` processes behind HAProxy, on one database through PgBouncer in transaction
//! mode: what one instance does, the others see, and one killed outright loses nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::json;

use crate::helpers::{
    ADMIN_PASSWORD, AgoraProcess, Browser, TestDatabase, agent, concurrently, eventually, order_body,
};
use crate::pooler::PgBouncer;

#[derive(QueryableByName)]
struct OrderId {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

#[path = "../support/haproxy.rs"]
mod haproxy;
use haproxy::HaProxy;

/// How often HAProxy checks each instance's `/readyz`, and after how many failed checks in a row
/// it stops sending to it.
const CHECK_INTERVAL: Duration = Duration::from_millis(300);
const FAILED_CHECKS: u32 = 2;

/// One database, PgBouncer in front of it, three instances through PgBouncer, HAProxy in front
/// of them: the topology of `deploy/cluster`, without the replica.
struct Shop {
    database: TestDatabase,
    instances: Vec<Option<AgoraProcess>>,
    balancer: HaProxy,
    // Dropped last: the instances hold connections through it.
    _bouncer: PgBouncer,
}

impl Shop {
    fn start(env: &[(&str, &str)]) -> Shop {
        let database = TestDatabase::migrated();
        let bouncer = crate::pooler::pgbouncer(10);
        let name = agora::db::split_database_url(&database.url).unwrap().1;
        let pooled = bouncer.url(&name);
        let mut all = vec![
            ("DATABASE_URL", pooled.as_str()),
            ("AGORA_DB_DIRECT_URL", database.url.as_str()),
            ("AGORA_DB_POOL_MODE", "transaction"),
            ("AGORA_TRUSTED_PROXIES", "127.0.0.1"),
        ];
        all.extend_from_slice(env);
        let instances: Vec<AgoraProcess> = (0..3).map(|_| AgoraProcess::start(&database, &all)).collect();
        let servers: Vec<String> =
            instances.iter().map(|instance| instance.address.trim_start_matches("http://").to_owned()).collect();
        let balancer = HaProxy::start(&servers, CHECK_INTERVAL, FAILED_CHECKS);
        Shop { database, instances: instances.into_iter().map(Some).collect(), balancer, _bouncer: bouncer }
    }

    fn instance(&self, index: usize) -> &AgoraProcess {
        self.instances[index].as_ref().expect("a running instance")
    }

    fn count(&self, sql: &str) -> i64 {
        crate::helpers::count_in(&self.database.url, sql)
    }

    fn admin_post_json(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let response = agent()
            .post(&format!("{}{path}", self.balancer.address))
            .header("Authorization", &format!("Bearer {}", crate::helpers::ADMIN_TOKEN))
            .send_json(body)
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&response).unwrap()
    }

    fn product_with_stock(&self, sku: &str, stock: i64) -> String {
        let product = self.admin_post_json("/api/products", &json!({"sku": sku, "name": sku, "price_minor": 1_250}));
        let id = product["id"].as_str().unwrap().to_owned();
        self.admin_post_json(
            &format!("/api/inventory/{id}/adjustments"),
            &json!({"delta": stock, "reason": "delivery", "kind": "receipt"}),
        );
        id
    }
}

#[test]
fn sixty_wrong_passwords_spread_over_three_instances_get_at_most_five_checked() {
    let shop = Shop::start(&[]);
    // Each client fetches the form from one instance and posts to the next.
    let clients: Vec<Mutex<(Browser, String)>> = (0..60)
        .map(|index| {
            let mut browser = Browser::at(&shop.instance(index % 3).address);
            let token = browser.csrf_token("/admin/login");
            Mutex::new((browser.moved_to(&shop.instance((index + 1) % 3).address), token))
        })
        .collect();
    let statuses = concurrently(60, |index| {
        let mut client = clients[index].lock().unwrap();
        let (browser, token) = &mut *client;
        let token = token.clone();
        browser
            .post_form("/admin/login", &[("csrf_token", &token), ("username", "admin"), ("password", "guess")])
            .status
    });
    let checked = statuses.iter().filter(|status| **status == 401).count();
    let limited = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!(checked + limited, 60, "{statuses:?}");
    assert_eq!(checked, 5, "five checked, over all three instances: {statuses:?}");
    assert_eq!(shop.count("SELECT count(*) FROM admin_login_failures WHERE username = 'admin'"), 5);
}

#[test]
fn a_session_made_on_one_instance_works_on_the_others_and_signing_out_on_one_ends_it_on_all() {
    let shop = Shop::start(&[]);
    let mut first = Browser::at(&shop.instance(0).address);
    assert_eq!(first.sign_in("admin", ADMIN_PASSWORD).status, 303);
    for index in 1..3 {
        let mut other = first.moved_to(&shop.instance(index).address);
        assert_eq!(other.get("/admin").status, 200, "the session works on instance {}", index + 1);
    }
    let mut last = first.moved_to(&shop.instance(2).address);
    let token = last.csrf_token("/admin");
    assert_eq!(last.post_form("/admin/logout", &[("csrf_token", &token)]).status, 303);
    for index in 0..3 {
        let mut other = first.moved_to(&shop.instance(index).address);
        let refused = other.get("/admin");
        assert_eq!(refused.status, 303, "signed out on instance {} too", index + 1);
        assert!(refused.header("location").unwrap().starts_with("/admin/login"));
    }
}

#[test]
fn a_product_changed_through_one_instance_is_seen_changed_on_all_within_the_cache_staleness_bound() {
    let shop = Shop::start(&[]);
    let product = shop.product_with_stock("LAMP-1", 5);
    let path = format!("/api/products/{product}");
    // Every instance has the product cached.
    for index in 0..3 {
        for _ in 0..2 {
            assert_eq!(shop.instance(index).get(&path).status, 200);
        }
    }
    let changed = shop.instance(0).admin_patch_json(&path, &json!({"price_minor": 1_990}));
    assert_eq!(changed.status, 200, "{}", changed.body);
    let committed = Instant::now();
    // The bound: a notification from the committing transaction to each instance's listener,
    // which reads its socket every 5 ms (the catalog cache's LISTEN_POLL).
    let bound = Duration::from_secs(1);
    for index in 1..3 {
        eventually("the new price on every instance", bound, || {
            shop.instance(index).get(&path).json()["price_minor"] == 1_990
        });
    }
    assert!(committed.elapsed() <= bound + Duration::from_millis(100), "{:?}", committed.elapsed());
}

#[test]
fn one_idempotency_key_sent_to_all_three_instances_at_once_gives_one_order() {
    let shop = Shop::start(&[]);
    let product = shop.product_with_stock("MUG-3", 10);
    let body = order_body("once@example.com", &[(&product, 2)]);
    for round in 0..5 {
        let key = format!("checkout-{round}");
        let responses = concurrently(3, |index| {
            shop.instance(index).post_json_with("/api/orders", &[("Idempotency-Key", &key)], &body)
        });
        for response in &responses {
            assert_eq!(response.status, 201, "{}", response.body);
            assert_eq!(response.json()["id"], responses[0].json()["id"], "one order for key {key}");
        }
    }
    assert_eq!(shop.count("SELECT count(*) FROM orders"), 5);
    assert_eq!(shop.count("SELECT sum(reserved)::bigint FROM inventory_levels"), 10);
}

#[test]
fn an_instance_killed_under_load_is_taken_out_and_loses_no_acknowledged_order_or_claimed_work() {
    let mut shop = Shop::start(&[("AGORA_PAYMENT_TIMEOUT_SECS", "2"), ("AGORA_OUTBOX_POLL_MS", "200")]);
    let product = shop.product_with_stock("TEE-KILL", 100_000);
    let acknowledged: Mutex<HashMap<String, String>> = Mutex::new(HashMap::new());
    let failures_seen: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let load_until = Instant::now() + Duration::from_secs(4);
    let balancer = shop.balancer.address.clone();
    let taken_out_after = std::thread::scope(|scope| {
        for client in 0..6 {
            let (acknowledged, failures_seen, product, balancer) = (&acknowledged, &failures_seen, &product, &balancer);
            scope.spawn(move || {
                let body = order_body(&format!("load-{client}@example.com"), &[(product, 1)]);
                let mut sequence = 0;
                while Instant::now() < load_until {
                    sequence += 1;
                    let key = format!("client-{client}-order-{sequence}");
                    // A client retries with the same key until the shop acknowledges the order.
                    for _attempt in 0..100 {
                        let response = agent()
                            .post(&format!("{balancer}/api/orders"))
                            .header("Idempotency-Key", &key)
                            .send_json(&body);
                        let status = match response {
                            Ok(mut response) if response.status() == 201 => {
                                let order: serde_json::Value =
                                    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
                                acknowledged.lock().unwrap().insert(key.clone(), order["id"].as_str().unwrap().into());
                                break;
                            }
                            Ok(response) => response.status().as_u16(),
                            Err(_) => 0,
                        };
                        failures_seen.lock().unwrap().push(status);
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(1_500));
        let victim = shop.instances[1].take().unwrap();
        let killed_at = Instant::now();
        victim.kill();
        // Watched while the load goes on.
        while killed_at.elapsed() < Duration::from_secs(10) {
            if shop.balancer.statuses().get("agora2").is_some_and(|status| status.starts_with("DOWN")) {
                return Some(killed_at.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    });
    // HAProxy saw it go: at most its failed checks in a row, one interval apart, plus one interval
    // for the check in flight when it died.
    let taken_out_after = taken_out_after.expect("HAProxy marks the killed instance down");
    let bound = CHECK_INTERVAL * (FAILED_CHECKS + 1) + Duration::from_millis(500);
    assert!(taken_out_after <= bound, "taken out after {taken_out_after:?}, more than {bound:?}");

    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(acknowledged.len() >= 20, "the load went on: {} orders", acknowledged.len());
    let stored: HashSet<String> = diesel::sql_query("SELECT id::text AS id FROM orders")
        .load::<OrderId>(&mut shop.database.connect())
        .unwrap()
        .into_iter()
        .map(|row| row.id)
        .collect();
    let acknowledged_ids: HashSet<String> = acknowledged.values().cloned().collect();
    assert_eq!(acknowledged_ids.len(), acknowledged.len(), "one order per key");
    assert!(acknowledged_ids.is_subset(&stored), "every acknowledged order is stored");
    assert_eq!(stored.len(), acknowledged.len(), "and no order beyond them: no key made two");

    // The survivors finish what the dead one had claimed or would have done: every order's
    // event handled, its e-mail stored once, and every unpaid order cancelled after the timeout.
    eventually("every delivery completed by the surviving instances", Duration::from_secs(30), || {
        shop.count("SELECT count(*) FROM event_deliveries WHERE completed_at IS NULL") == 0
            && shop.count("SELECT count(*) FROM orders WHERE status = 'pending_payment'") == 0
    });
    assert_eq!(
        shop.count("SELECT count(*) FROM notifications WHERE kind = 'order_received'"),
        stored.len() as i64,
        "one order-received e-mail per order"
    );
    assert_eq!(shop.count("SELECT count(*) FROM orders WHERE status = 'cancelled'"), stored.len() as i64);
    eprintln!(
        "killed instance taken out after {taken_out_after:?}; {} orders acknowledged; failed attempts retried: {:?}",
        acknowledged.len(),
        failures_seen.into_inner().unwrap()
    );
}

/// Instances started together each make the installation's outbox subscriptions theirs: one after
/// another, none failing on the rows another is inserting (which once stopped an instance of
/// `deploy/cluster` from starting).
#[test]
fn processes_starting_together_set_the_outbox_subscriptions_one_after_another() {
    let database = TestDatabase::migrated();
    let subscriptions = [agora::events::ORDER_EMAILS_SUBSCRIPTION, agora::events::BROKER_RELAY_SUBSCRIPTION];
    let expected: usize = subscriptions.iter().map(|subscription| subscription.events.len()).sum();
    for round in 0..20 {
        let starts = concurrently(6, |_| {
            let mut conn = database.connect();
            agora::outbox::subscribe(&mut conn, &subscriptions).map_err(|error| error.to_string())
        });
        assert!(starts.iter().all(Result::is_ok), "round {round}: {starts:?}");
        let rows: i64 = agora::schema::outbox_subscriptions::table.count().get_result(&mut database.connect()).unwrap();
        assert_eq!(rows as usize, expected);
    }
}
