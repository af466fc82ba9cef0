//! Scale benchmark: list and search pages of the running `agora` binary on a database holding
//! 100,000 products and 1,000,000 orders.
//!
//!     cargo bench --bench scale
//!
//! The data is generated with SQL (generate_series) into a database of its own, dropped at the
//! end. Each page is requested AGORA_SCALE_REPEAT times (default 30), one client, and reported
//! as p50 / p95 latency. Settings: AGORA_SCALE_PRODUCTS (100000), AGORA_SCALE_ORDERS (1000000),
//! AGORA_TEST_DATABASE_URL or DATABASE_URL for the server.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

const TOKEN: &str = "bench-admin-token-0123456789";
const PASSWORD: &str = "bench password 123";

#[path = "common.rs"]
mod common;

use common::{database_url, env_number, server_url};

fn main() {
    let database = format!("agora_scale_{}", std::process::id());
    let mut maintenance = PgConnection::establish(&server_url()).expect("PostgreSQL must be reachable");
    diesel::sql_query(format!("CREATE DATABASE {database}")).execute(&mut maintenance).unwrap();
    let result = std::panic::catch_unwind(|| run(&database));
    diesel::sql_query(format!("DROP DATABASE {database} WITH (FORCE)")).execute(&mut maintenance).unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn run(database: &str) {
    let products = env_number("AGORA_SCALE_PRODUCTS", 100_000);
    let orders = env_number("AGORA_SCALE_ORDERS", 1_000_000);
    let repeat = env_number("AGORA_SCALE_REPEAT", 30) as usize;
    common::migrate(database);

    let generating = Instant::now();
    let mut conn = PgConnection::establish(&database_url(database)).unwrap();
    // Orders here skip checkout (no reservations): this measures reading, not the lifecycle.
    conn.batch_execute(&format!(
        "INSERT INTO products (id, sku, name, price_minor, active, low_stock_threshold)
         SELECT md5('p' || n)::uuid, 'SKU-' || lpad(n::text, 7, '0'),
                (ARRAY['Mug', 'T-shirt', 'Notebook', 'Poster', 'Cap', 'Bottle', 'Lamp', 'Socks'])[1 + n % 8] || ' model ' || n,
                100 + n % 9900, n % 10 <> 0, 5
           FROM generate_series(1, {products}) AS n;
         INSERT INTO inventory_levels (product_id, on_hand) SELECT id, (hashtext(id::text) & 255) FROM products;
         INSERT INTO customers (id, email, name)
         SELECT md5('c' || n)::uuid, lower(first) || '.' || lower(last) || '.' || n || '@example.com', first || ' ' || last
           FROM generate_series(1, 50000) AS n,
                LATERAL (SELECT (ARRAY['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'John',
                                       'Margaret', 'Ken', 'Radia', 'Dennis', 'Hedy', 'Tim', 'Katherine', 'Linus',
                                       'Annie', 'Niklaus', 'Sophie', 'Guido'])[1 + n % 20] AS first,
                                (ARRAY['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen',
                                       'McCarthy', 'Hamilton', 'Thompson', 'Perlman', 'Ritchie', 'Lamarr',
                                       'Berners-Lee', 'Johnson', 'Torvalds', 'Easley', 'Wirth', 'Wilson',
                                       'van Rossum', 'Backus', 'Kay', 'Cerf', 'Kahn', 'Goldberg'])[1 + (n / 20) % 25] AS last
                ) AS names;
         INSERT INTO orders (id, number, customer_id, status, total_minor, currency, created_at, updated_at)
         SELECT md5('o' || n)::uuid, n, md5('c' || (1 + n % 50000))::uuid,
                (ARRAY['pending_payment', 'paid', 'shipped', 'shipped', 'shipped', 'cancelled', 'refunded'])[1 + n % 7],
                1000 + n % 5000, 'EUR', now() - (({orders} - n) * interval '30 seconds'), now()
           FROM generate_series(1, {orders}) AS n;
         SELECT setval('order_number_seq', {orders});
         INSERT INTO order_lines (order_id, line_no, product_id, sku, name, unit_price_minor, quantity, line_total_minor)
         SELECT md5('o' || n)::uuid, 1, md5('p' || (1 + n % {products}))::uuid, 'SKU', 'Product', 1000 + n % 5000, 1, 1000 + n % 5000
           FROM generate_series(1, {orders}) AS n;"
    ))
    .unwrap();
    // Not in the batch above: VACUUM refuses to run inside its implicit transaction.
    conn.batch_execute("VACUUM ANALYZE").unwrap();
    let generated_in = generating.elapsed();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_agora"))
        .arg("serve")
        .env("DATABASE_URL", database_url(database))
        .env("AGORA_BIND", format!("127.0.0.1:{port}"))
        .env("AGORA_ADMIN_TOKEN", TOKEN)
        .env("AGORA_ADMIN_PASSWORD", PASSWORD)
        .env("AGORA_SEED", "none")
        .env("AGORA_BACKGROUND", "off")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().new_agent();
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.get(&format!("{base}/readyz")).call().map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(Instant::now() < deadline, "agora did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let cookie = sign_in(&agent, &base);

    let get = |path: &str, admin_page: bool| -> (u16, String) {
        let mut request = agent.get(&format!("{base}{path}"));
        request = if admin_page {
            request.header("Cookie", &cookie)
        } else {
            request.header("Authorization", &format!("Bearer {TOKEN}"))
        };
        let mut response = request.call().unwrap();
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap_or_default())
    };
    // A cursor 20 pages deep, to show that depth costs nothing.
    let deep_cursor = |path: &str| -> String {
        let mut cursor = String::new();
        for _ in 0..20 {
            let separator = if path.contains('?') { '&' } else { '?' };
            let url = if cursor.is_empty() { path.to_owned() } else { format!("{path}{separator}cursor={cursor}") };
            let (_, body) = get(&url, false);
            let page: serde_json::Value = serde_json::from_str(&body).unwrap();
            cursor = page["next_cursor"].as_str().unwrap().to_owned();
        }
        format!("{path}{}cursor={cursor}", if path.contains('?') { '&' } else { '?' })
    };
    let scenarios: Vec<(String, String, bool)> = vec![
        ("products, first page (API, 50)".into(), "/api/products?limit=50".into(), false),
        ("products, 21st page (API, 50)".into(), deep_cursor("/api/products?limit=50"), false),
        ("products, search \"model 4242\" (API)".into(), "/api/products?q=model%204242&limit=50".into(), false),
        ("orders, newest (API, 50)".into(), "/api/orders?limit=50".into(), false),
        ("orders, 21st page (API, 50)".into(), deep_cursor("/api/orders?limit=50"), false),
        ("orders, status=paid (API, 50)".into(), "/api/orders?status=paid&limit=50".into(), false),
        (
            "orders, one customer's (API)".into(),
            "/api/orders?email=niklaus.berners-lee.777@example.com&limit=50".into(),
            false,
        ),
        ("admin page: products".into(), "/admin/products".into(), true),
        ("admin page: products, search".into(), "/admin/products?q=SKU-00424".into(), true),
        ("admin page: inventory, low stock".into(), "/admin/inventory?low=1".into(), true),
        ("admin page: orders".into(), "/admin/orders".into(), true),
        ("admin page: orders, by number".into(), format!("/admin/orders?q=AG-{:06}", orders / 2), true),
        ("admin page: orders, status=refunded".into(), "/admin/orders?status=refunded".into(), true),
        // The operator's search (pg_trgm indexes on customers' names and addresses): a number typed
        // without its dash, a full name (~100 customers, ~2,000 orders), a surname (1 in 25
        // customers, ~40,000 orders: past the counting cap), part of one address, a name and a status.
        ("admin search: number typed AG000424".into(), "/admin/orders?q=AG000424".into(), true),
        ("admin search: full name \"Grace Hopper\"".into(), "/admin/orders?q=Grace+Hopper".into(), true),
        ("admin search: surname \"lovelace\"".into(), "/admin/orders?q=lovelace".into(), true),
        ("admin search: part of an e-mail \"lamarr.4242@\"".into(), "/admin/orders?q=lamarr.4242%40".into(), true),
        ("admin search: \"hopper\", status=paid".into(), "/admin/orders?q=hopper&status=paid".into(), true),
        ("admin search: sorted by total".into(), "/admin/orders?q=Grace+Hopper&sort=total&dir=desc".into(), true),
        ("admin page: customers".into(), "/admin/customers".into(), true),
        ("admin page: customers, search \"knuth\"".into(), "/admin/customers?q=knuth".into(), true),
    ];
    let mut report = String::new();
    let _ = writeln!(
        report,
        "Command: `cargo bench --bench scale` ({products} products, {orders} orders and lines, 50,000 customers; generated in {:.0} s; {repeat} requests each, one client)\n",
        generated_in.as_secs_f64()
    );
    let _ = writeln!(report, "| page | p50 ms | p95 ms | rows shown |");
    let _ = writeln!(report, "| --- | ---: | ---: | ---: |");
    for (label, path, admin_page) in scenarios {
        let mut latencies = Vec::with_capacity(repeat);
        let mut shown = 0;
        for _ in 0..repeat {
            let started = Instant::now();
            let (status, body) = get(&path, admin_page);
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200, "{path}: {body}");
            shown = if admin_page {
                body.matches("<tr").count().saturating_sub(1)
            } else {
                serde_json::from_str::<serde_json::Value>(&body).unwrap()["items"].as_array().unwrap().len()
            };
        }
        latencies.sort_by(f64::total_cmp);
        let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
        let _ = writeln!(report, "| {label} | {:.1} | {:.1} | {shown} |", at(0.5), at(0.95));
    }
    let _ = child.kill();
    let _ = child.wait();
    println!("{report}");
    let _ = std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-scale-report.md"), &report);
}

/// Signs in to the admin pages like a browser: the login page's CSRF token and cookie first.
fn sign_in(agent: &ureq::Agent, base: &str) -> String {
    let mut login = agent.get(&format!("{base}/admin/login")).call().unwrap();
    let login_cookies: HashMap<String, String> = cookies(&login);
    let html = login.body_mut().read_to_string().unwrap();
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).unwrap() + marker.len();
    let token = html[start..].split('"').next().unwrap().to_owned();
    let cookie_header: String = login_cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
    let response = agent
        .post(&format!("{base}/admin/login"))
        .header("Cookie", &cookie_header)
        .send_form([("csrf_token", token.as_str()), ("username", "admin"), ("password", PASSWORD)])
        .unwrap();
    assert_eq!(response.status().as_u16(), 303, "sign-in failed");
    cookies(&response).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
}

fn cookies(response: &ureq::http::Response<ureq::Body>) -> HashMap<String, String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| {
            value.to_str().ok()?.split(';').next()?.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}
