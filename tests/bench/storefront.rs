//! The shop under shoppers: its read pages against `GET /healthz` and against pgbench running the
//! grid's query, and a shopper mix, in one run.
//!
//!     cargo bench --bench storefront
//!
//! Settings (environment): AGORA_BENCH_SECS (per step, default 5), AGORA_BENCH_ROUNDS (rounds of
//! the read scenarios, alternating; default 3), AGORA_BENCH_CLIENTS (wrk connections, default 8),
//! AGORA_BENCH_SHOPPERS (the mix's shoppers, default 32). Needs `wrk` and `pgbench` on the PATH.
//! Prints a Markdown report and writes it to target/bench-storefront-report.md.
//!
//! Scenarios:
//! - reads: the grid's first page, a product page (each from the shop's cache, as shoppers get
//!   them), `GET /healthz` (the HTTP floor), and pgbench running the grid's query (what a page the
//!   cache does not hold costs PostgreSQL);
//! - the shopper mix: each shopper's requests in a cycle of 20, 16 grid and product pages (80 %),
//!   3 cart changes (15 %: two adds, one quantity change), 1 checkout paying with a good card
//!   (5 %), each through the forms a browser posts, with the cart cookie and the form token. Offered
//!   at a fixed rate (latency counted from each request's due time, so a server that falls behind
//!   is charged for it), the rate raised until the p99 passes 50 ms, then narrowed down: the
//!   highest rate whose p99 is at most 50 ms, and the p99 at half that rate.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

#[path = "common.rs"]
mod common;
#[path = "harness.rs"]
mod harness;
#[path = "shop.rs"]
mod shop;

use common::{database_url, env_number, server_url};
use harness::{Agora, Run, alternate, load_at_rate, pgbench_with, report_table, wrk};
use shop::PRODUCTS;

/// The p99 the shopper mix may reach.
const P99_BOUND_MS: f64 = 50.0;

/// The query a page of the grid runs when the shop's cache does not hold it (the first page by
/// name, every category), as `storefront::store::grid` sends it.
const GRID_SQL: &str = "SELECT p.id, p.sku, p.name, p.price_minor, COALESCE(l.on_hand - l.reserved, 0) AS available \
    FROM products p LEFT JOIN inventory_levels l ON l.product_id = p.id \
    WHERE p.active AND (NULL::uuid IS NULL OR p.category_id = NULL) AND (NULL::text IS NULL OR p.name ILIKE NULL) \
    AND (NULL::text IS NULL OR (p.name, p.id) > (NULL, NULL::uuid)) ORDER BY p.name, p.id LIMIT 13;\n";

fn main() {
    let seconds = env_number("AGORA_BENCH_SECS", 5);
    let clients = env_number("AGORA_BENCH_CLIENTS", 8) as usize;
    let shoppers = env_number("AGORA_BENCH_SHOPPERS", 32) as usize;
    let rounds = env_number("AGORA_BENCH_ROUNDS", 3) as usize;
    let database = format!("agora_bench_shop_{}", std::process::id());
    let mut maintenance = PgConnection::establish(&server_url()).expect("PostgreSQL must be reachable");
    diesel::sql_query(format!("CREATE DATABASE {database}")).execute(&mut maintenance).unwrap();
    let result = std::panic::catch_unwind(|| run(&database, clients, shoppers, Duration::from_secs(seconds), rounds));
    diesel::sql_query(format!("DROP DATABASE {database} WITH (FORCE)")).execute(&mut maintenance).unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn run(database: &str, clients: usize, shoppers: usize, duration: Duration, rounds: usize) {
    common::migrate(database);
    let url = database_url(database);
    let mut conn = PgConnection::establish(&url).unwrap();
    let product_ids = shop::stock_products(&mut conn);
    conn.batch_execute(
        "INSERT INTO categories (slug, name) VALUES ('kitchen', 'Kitchen'), ('desk', 'Desk'), ('garden', 'Garden');
         UPDATE products SET category_id = (SELECT id FROM categories ORDER BY slug OFFSET (hashtext(sku) & 3) % 3 LIMIT 1),
                             name = 'Bench product ' || right(sku, 3);
         ANALYZE;",
    )
    .unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let _agora = Agora::start(
        &url,
        port,
        clients.max(shoppers),
        &[("AGORA_SHOP_CHECKOUTS_PER_MINUTE", "1000000"), ("AGORA_BACKGROUND", "on")],
    );

    let mut runs = Vec::new();
    let product_page = format!("\"/products/BENCH-\" .. string.format(\"%05d\", n % {PRODUCTS} + 1)");
    let (grid, healthz) = alternate(
        rounds,
        || wrk("agora: the grid's first page (GET /)", &base, "\"/\"", clients, duration),
        || wrk("agora: GET /healthz (the HTTP floor)", &base, "\"/healthz\"", clients, duration),
    );
    let (product, pgbench) = alternate(
        rounds,
        || wrk("agora: a product page (GET /products/{sku})", &base, &product_page, clients, duration),
        || {
            pgbench_with(
                "pgbench -M prepared: the grid's query (a cache miss)",
                &url,
                GRID_SQL,
                clients,
                duration,
                &["-M", "prepared"],
            )
        },
    );
    runs.extend([grid, product, healthz, pgbench]);

    // The highest offered rate whose p99 stays within the bound: doubled until it does not, then
    // halved in between three times.
    let mix = |rate: u64| shopper_mix(&base, &product_ids, shoppers, duration, rate);
    let mut steps: Vec<(u64, Run)> = Vec::new();
    let (mut good, mut bad) = (None::<u64>, None::<u64>);
    let mut rate = 100;
    while bad.is_none() && rate <= 20_000 {
        let run = mix(rate);
        let within = within_bound(&run);
        steps.push((rate, run));
        if within {
            good = Some(rate);
            rate *= 2;
        } else {
            bad = Some(rate);
        }
    }
    if let (Some(low), Some(high)) = (good, bad) {
        let (mut low, mut high) = (low, high);
        for _ in 0..3 {
            let middle = (low + high) / 2;
            let run = mix(middle);
            let within = within_bound(&run);
            steps.push((middle, run));
            if within { low = middle } else { high = middle }
        }
        good = Some(low);
    }
    let best = good.expect("the shop keeps its p99 within 50 ms at 100 requests a second");
    let half = mix(best / 2);

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut report = report_table(
        &format!(
            "Command: `cargo bench --bench storefront` (reads: {rounds} rounds of {} s, wrk with {clients} connections; \
             the mix: {shoppers} shoppers at a fixed offered rate, {} s per step; {cores} cores, {PRODUCTS} products in 3 categories)",
            duration.as_secs(),
            duration.as_secs()
        ),
        &runs,
    );
    let ratio = |a: &Run, b: &Run| a.throughput() / b.throughput();
    let _ = writeln!(report, "\nReads:");
    let _ = writeln!(report, "- the grid's first page / GET /healthz = {:.2}", ratio(&runs[0], &runs[2]));
    let _ = writeln!(report, "- a product page / GET /healthz = {:.2}", ratio(&runs[1], &runs[2]));
    let _ = writeln!(
        report,
        "- the grid's first page from the cache / pgbench running its query = {:.2}",
        ratio(&runs[0], &runs[3])
    );
    let _ = writeln!(report, "\nThe shopper mix (80 % pages, 15 % cart changes, 5 % checkouts), each step:\n");
    let _ = writeln!(report, "| offered per second | served per second | p50 ms | p95 ms | p99 ms | errors |");
    let _ = writeln!(report, "| ---: | ---: | ---: | ---: | ---: | ---: |");
    for (rate, run) in steps.iter().map(|(rate, run)| (*rate, run)).chain(std::iter::once((best / 2, &half))) {
        let _ = writeln!(
            report,
            "| {rate} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
            run.throughput(),
            run.percentile(0.50),
            run.percentile(0.95),
            run.percentile(0.99),
            run.errors
        );
    }
    let at_best = &steps.iter().find(|(rate, _)| *rate == best).unwrap().1;
    let _ = writeln!(
        report,
        "\n- the highest rate with a p99 of at most {P99_BOUND_MS} ms: {best} offered, {:.0} served per second (p99 {:.2} ms)",
        at_best.throughput(),
        at_best.percentile(0.99)
    );
    let _ = writeln!(
        report,
        "- at half that rate ({}/s): p99 {:.2} ms, p50 {:.2} ms",
        best / 2,
        half.percentile(0.99),
        half.percentile(0.50)
    );
    println!("{report}");
    let _ = std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-storefront-report.md"), &report);
}

fn within_bound(run: &Run) -> bool {
    run.errors == 0 && run.percentile(0.99) <= P99_BOUND_MS
}

/// One shopper: a browser's cookie, the token its pages' forms carry, and its own connection.
struct Shopper {
    agent: ureq::Agent,
    cookie: String,
    /// `None` until a page has given the token for the current cookie.
    token: Option<String>,
    last_added: usize,
}

impl Shopper {
    fn new() -> Shopper {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().new_agent();
        Shopper { agent, cookie: new_cookie(), token: None, last_added: 0 }
    }

    fn get(&self, url: &str) -> Option<(u16, String)> {
        let mut response = self.agent.get(url).header("Cookie", &format!("agora_cart={}", self.cookie)).call().ok()?;
        let body = response.body_mut().read_to_string().ok()?;
        Some((response.status().as_u16(), body))
    }

    fn post(&self, url: &str, fields: &[(&str, &str)]) -> Option<(u16, String)> {
        let response = self
            .agent
            .post(url)
            .header("Cookie", &format!("agora_cart={}", self.cookie))
            .send_form(fields.iter().copied())
            .ok()?;
        let location = response.headers().get("location").and_then(|value| value.to_str().ok()).unwrap_or_default();
        Some((response.status().as_u16(), location.to_owned()))
    }

    /// The form token for the current cookie, from the cart page if no page has given it yet.
    fn token(&mut self, base: &str) -> Option<String> {
        if self.token.is_none() {
            let (status, body) = self.get(&format!("{base}/cart"))?;
            let marker = "name=\"csrf_token\" value=\"";
            let start = body.find(marker)? + marker.len();
            (status == 200).then_some(())?;
            self.token = Some(body[start..].split('"').next()?.to_owned());
        }
        self.token.clone()
    }
}

/// A cart cookie of the shop's own form: 43 URL-safe characters.
fn new_cookie() -> String {
    let random = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    random[..43].to_owned()
}

fn shopper_mix(base: &str, product_ids: &[String], shoppers: usize, duration: Duration, rate: u64) -> Run {
    let states: Vec<Mutex<Shopper>> = (0..shoppers).map(|_| Mutex::new(Shopper::new())).collect();
    let categories = ["", "?category=kitchen", "?category=desk", "?q=product+1", "?sort=price"];
    load_at_rate(&format!("shopper mix at {rate}/s"), shoppers, duration, rate, |_agent, client, n| {
        let mut shopper = states[client].lock().unwrap();
        let pick = (client * 7919 + n as usize * 104_729) % PRODUCTS;
        match n % 20 {
            step if step < 16 => {
                let url = if step % 2 == 0 {
                    format!("{base}/{}", categories[(n as usize / 2) % categories.len()])
                } else {
                    format!("{base}/products/BENCH-{:05}", pick + 1)
                };
                shopper.get(&url).is_some_and(|(status, _)| status == 200)
            }
            16 | 17 => {
                let Some(token) = shopper.token(base) else { return false };
                shopper.last_added = pick;
                let fields =
                    [("csrf_token", token.as_str()), ("product_id", product_ids[pick].as_str()), ("quantity", "1")];
                shopper.post(&format!("{base}/cart/items"), &fields).is_some_and(|(status, _)| status == 303)
            }
            18 => {
                let Some(token) = shopper.token(base) else { return false };
                let path = format!("{base}/cart/lines/{}", product_ids[shopper.last_added]);
                shopper
                    .post(&path, &[("csrf_token", token.as_str()), ("quantity", "2")])
                    .is_some_and(|(status, _)| status == 303)
            }
            _ => {
                let Some(token) = shopper.token(base) else { return false };
                let fields = [
                    ("csrf_token", token.as_str()),
                    ("name", "Bench Shopper"),
                    ("email", "shopper@example.com"),
                    ("card_number", "4242424242424242"),
                    ("exp_month", "12"),
                    ("exp_year", "2031"),
                    ("cvc", "123"),
                ];
                let placed = shopper
                    .post(&format!("{base}/checkout"), &fields)
                    .is_some_and(|(status, location)| status == 303 && location.starts_with("/orders/"));
                // The cart is spent: this shopper's next item goes into a new one.
                shopper.cookie = new_cookie();
                shopper.token = None;
                placed
            }
        }
    })
}
