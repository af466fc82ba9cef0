//! The test harness: every test gets the real application on a database of its own, cloned
//! from a migrated template, served over real HTTP on a free port, and dropped afterwards.
//!
//! `AGORA_TEST_DATABASE_URL` (or else `DATABASE_URL`) names the PostgreSQL server to use; only
//! its server part matters. Default: `postgres://postgres@127.0.0.1:5432/postgres`.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use agora::config::{Config, SeedMode};
use agora::db;
use agora::startup::Application;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// URL of the test server's maintenance database.
pub fn server_url() -> String {
    let url = std::env::var("AGORA_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    db::split_database_url(&url).map(|(maintenance, _)| maintenance).unwrap_or(url)
}

pub fn database_url(name: &str) -> String {
    db::with_database_name(&server_url(), name).expect("the test server's URL names a database")
}

pub fn maintenance_connection() -> PgConnection {
    PgConnection::establish(&server_url()).expect("PostgreSQL must be reachable for the integration tests")
}

/// The migrated template: built once per migration set (its name carries a hash of every
/// migration file), shared by test processes, never connected to afterwards.
fn template_database() -> &'static str {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let name = format!("agora_test_template_{}", migrations_hash());
        let mut conn = maintenance_connection();
        // Several test processes may start at once; one builds the template, the rest wait.
        let lock_key = i64::from_str_radix(&migrations_hash()[..15], 16).unwrap();
        diesel::sql_query("SELECT pg_advisory_lock($1)").bind::<BigInt, _>(lock_key).execute(&mut conn).unwrap();
        if !database_exists(&mut conn, &name) {
            let building = format!("{name}_building");
            drop_database(&mut conn, &building);
            create_database(&mut conn, &building, None);
            {
                let mut template = PgConnection::establish(&database_url(&building)).unwrap();
                db::run_migrations(&mut template).expect("migrations must apply to a fresh database");
                // Clones inherit the grants, so each test's start finds them in place.
                agora::architecture::privileges::apply(&mut template).expect("the module roles can be set up");
            }
            // Renamed only once complete, so a half-built template is never cloned.
            diesel::sql_query(format!("ALTER DATABASE {} RENAME TO {}", quote(&building), quote(&name)))
                .execute(&mut conn)
                .unwrap();
        }
        diesel::sql_query("SELECT pg_advisory_unlock($1)").bind::<BigInt, _>(lock_key).execute(&mut conn).unwrap();
        name
    })
}

fn migrations_hash() -> String {
    let mut files: Vec<_> = walk(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")));
    files.sort();
    let mut hasher = Sha256::new();
    for path in files {
        hasher.update(path.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&path).unwrap());
    }
    hasher.finalize().iter().take(8).map(|byte| format!("{byte:02x}")).collect()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn quote(name: &str) -> String {
    db::quote_identifier(name)
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

fn database_exists(conn: &mut PgConnection, name: &str) -> bool {
    diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
        .bind::<Text, _>(name)
        .get_result::<Exists>(conn)
        .unwrap()
        .exists
}

fn create_database(conn: &mut PgConnection, name: &str, template: Option<&str>) {
    let sql = match template {
        Some(template) => format!("CREATE DATABASE {} TEMPLATE {}", quote(name), quote(template)),
        None => format!("CREATE DATABASE {}", quote(name)),
    };
    diesel::sql_query(sql).execute(conn).unwrap_or_else(|error| panic!("cannot create database {name}: {error}"));
}

pub fn drop_database(conn: &mut PgConnection, name: &str) {
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(name)))
        .execute(conn)
        .unwrap_or_else(|error| panic!("cannot drop database {name}: {error}"));
}

/// A database of the test's own, cloned from the migrated template and dropped on drop.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    /// The server's maintenance database, from which the test database is dropped.
    maintenance_url: String,
    /// Whether every stored event is checked against the AsyncAPI contract before the drop
    /// (see [`TestDatabase::holds_hand_made_events`]).
    check_events: std::sync::atomic::AtomicBool,
}

impl TestDatabase {
    pub fn migrated() -> TestDatabase {
        let template = template_database();
        let name = format!("agora_test_{}", uuid::Uuid::new_v4().simple());
        create_database(&mut maintenance_connection(), &name, Some(template));
        TestDatabase { url: database_url(&name), name, maintenance_url: server_url(), check_events: true.into() }
    }

    /// An empty database (no migrations), for tests of the migrations themselves.
    pub fn empty() -> TestDatabase {
        let name = format!("agora_test_{}", uuid::Uuid::new_v4().simple());
        create_database(&mut maintenance_connection(), &name, None);
        TestDatabase { url: database_url(&name), name, maintenance_url: server_url(), check_events: true.into() }
    }

    /// A database of a name of its own on another server (`url_of` gives a database's URL there),
    /// not created: whatever the test starts creates it. Dropped on drop, while that server runs.
    pub fn on_server(url_of: impl Fn(&str) -> String) -> TestDatabase {
        let name = format!("agora_test_{}", uuid::Uuid::new_v4().simple());
        TestDatabase { url: url_of(&name), maintenance_url: url_of("postgres"), name, check_events: true.into() }
    }

    /// The test wrote events of its own making (a payload cut down to what a page shows, one of
    /// an older shape): the contract check at the drop leaves this database's events alone.
    pub fn holds_hand_made_events(&self) {
        self.check_events.store(false, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url).unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Every event the application stored is a message body the relay would publish: each
        // test's events are held to the published contract, unless the test already failed.
        if self.check_events.load(std::sync::atomic::Ordering::Relaxed)
            && !std::thread::panicking()
            && let Ok(mut conn) = PgConnection::establish(&self.url)
        {
            crate::contract::assert_events_match_the_asyncapi_document(&mut conn);
        }
        match PgConnection::establish(&self.maintenance_url) {
            Ok(mut conn) => drop_database(&mut conn, &self.name),
            // A cluster of the test's own may be gone already, and its databases with it.
            Err(error) if self.maintenance_url != server_url() => eprintln!("{}: {error}", self.name),
            Err(error) => panic!("cannot reach {}: {error}", self.maintenance_url),
        }
    }
}

/// The configuration tests run with: the documented defaults, a known admin token and
/// password, no demo data, and no background work unless a test turns it on.
///
/// With `AGORA_TEST_PGBOUNCER_URL` (a PgBouncer in transaction mode in front of the test server,
/// as `cargo xtask test-through-pgbouncer` starts), Agora reaches its database through it, in
/// `AGORA_DB_POOL_MODE=transaction`; the tests' own connections still go to PostgreSQL itself.
pub fn test_config(database_url: &str) -> Config {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", database_url.to_owned()),
        ("AGORA_BIND", "127.0.0.1:0".to_owned()),
        ("AGORA_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ("AGORA_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
        ("AGORA_SEED", "none".to_owned()),
        ("AGORA_BACKGROUND", "off".to_owned()),
        ("AGORA_DB_POOL_SIZE", "8".to_owned()),
    ]);
    if let Ok(bouncer) = std::env::var("AGORA_TEST_PGBOUNCER_URL")
        && db::split_database_url(database_url).is_ok_and(|(server, _)| server == server_url())
    {
        let name = db::split_database_url(database_url).unwrap().1;
        vars.insert("DATABASE_URL", db::with_database_name(&bouncer, &name).unwrap());
        vars.insert("AGORA_DB_DIRECT_URL", database_url.to_owned());
        vars.insert("AGORA_DB_POOL_MODE", "transaction".to_owned());
    }
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    assert_eq!(config.seed, SeedMode::None);
    config
}

/// The real application, serving HTTP on a free port, on a database of its own.
pub struct TestApp {
    pub address: String,
    pub database: std::sync::Arc<TestDatabase>,
    handle: actix_web::dev::ServerHandle,
    server_thread: Option<JoinHandle<()>>,
    agent: ureq::Agent,
}

impl TestApp {
    pub fn spawn() -> TestApp {
        Self::spawn_with(|_| {})
    }

    pub fn spawn_with(customize: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_on(std::sync::Arc::new(TestDatabase::migrated()), customize)
    }

    /// The real application on a database it creates and migrates itself on another server,
    /// such as a [`crate::cluster::Cluster`] of the test's own.
    pub fn spawn_on_server(url_of: impl Fn(&str) -> String, customize: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_on(std::sync::Arc::new(TestDatabase::on_server(url_of)), customize)
    }

    /// Another agora process on this app's database, as when several run side by side.
    pub fn spawn_beside(&self, customize: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_on(self.database.clone(), customize)
    }

    fn spawn_on(database: std::sync::Arc<TestDatabase>, customize: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = test_config(&database.url);
        customize(&mut config);
        Self::spawn_configured(database, config)
    }

    /// The real application on `database` with exactly `config` (whose database URL is `database`'s).
    pub fn spawn_configured(database: std::sync::Arc<TestDatabase>, config: Config) -> TestApp {
        let (started, receive_start) = mpsc::channel();
        let server_thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match Application::build(config) {
                    Ok(application) => {
                        started.send(Ok((application.port(), application.handle()))).unwrap();
                        application.run_until_stopped().await.unwrap();
                    }
                    Err(error) => started.send(Err(error.to_string())).unwrap(),
                }
            })
        });
        let (port, handle) =
            receive_start.recv().unwrap().unwrap_or_else(|error| panic!("agora failed to start: {error}"));
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            database,
            handle,
            server_thread: Some(server_thread),
            agent: agent(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn connect(&self) -> PgConnection {
        self.database.connect()
    }

    pub fn get(&self, path: &str) -> TestResponse {
        TestResponse::from(self.agent.get(&self.url(path)).call())
    }

    pub fn admin_get(&self, path: &str) -> TestResponse {
        TestResponse::from(
            self.agent.get(&self.url(path)).header("Authorization", &format!("Bearer {ADMIN_TOKEN}")).call(),
        )
    }

    pub fn post_json(&self, path: &str, body: &Value) -> TestResponse {
        TestResponse::from(self.agent.post(&self.url(path)).send_json(body))
    }

    pub fn post_json_with(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> TestResponse {
        let mut request = self.agent.post(&self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        TestResponse::from(request.send_json(body))
    }

    pub fn admin_post_json(&self, path: &str, body: &Value) -> TestResponse {
        self.post_json_with(path, &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))], body)
    }

    pub fn admin_post(&self, path: &str) -> TestResponse {
        TestResponse::from(
            self.agent.post(&self.url(path)).header("Authorization", &format!("Bearer {ADMIN_TOKEN}")).send_empty(),
        )
    }

    pub fn post_raw(&self, path: &str, content_type: &str, body: &str) -> TestResponse {
        TestResponse::from(self.agent.post(&self.url(path)).header("Content-Type", content_type).send(body))
    }

    pub fn admin_patch_json(&self, path: &str, body: &Value) -> TestResponse {
        TestResponse::from(
            self.agent.patch(&self.url(path)).header("Authorization", &format!("Bearer {ADMIN_TOKEN}")).send_json(body),
        )
    }

    /// Any method, with any headers, without a body.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> TestResponse {
        let url = self.url(path);
        let mut request = ureq::http::Request::builder().method(method).uri(url.as_str());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(()).expect("a well-formed request");
        TestResponse::from(self.agent.run(request))
    }

    /// A browser-like client for the admin pages (keeps the session cookie).
    pub fn browser(&self) -> Browser {
        Browser { address: self.address.clone(), agent: agent(), cookies: HashMap::new() }
    }

    /// A browser already signed in as the first admin.
    pub fn signed_in_browser(&self) -> Browser {
        let mut browser = self.browser();
        let response = browser.sign_in("admin", ADMIN_PASSWORD);
        assert_eq!(response.status, 303, "sign-in failed: {}", response.body);
        browser
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The stop command is sent when `stop` is called; the server thread ends once it is done.
        drop(self.handle.stop(true));
        if let Some(thread) = self.server_thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// What a client saw: status, headers and body.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: HashMap<String, Vec<String>>,
    pub body: String,
}

impl TestResponse {
    fn from(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> TestResponse {
        let mut response = result.expect("the request must reach the server");
        let mut headers: HashMap<String, Vec<String>> = HashMap::new();
        for (name, value) in response.headers() {
            headers.entry(name.as_str().to_owned()).or_default().push(value.to_str().unwrap_or_default().to_owned());
        }
        let body = response.body_mut().read_to_string().unwrap_or_default();
        TestResponse { status: response.status().as_u16(), headers, body }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|values| values.first()).map(String::as_str)
    }

    /// Asserts a problem+json answer with this status, and returns the problem.
    #[track_caller]
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "expected {status}, got {}: {}", self.status, self.body);
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{}", self.body);
        let problem = self.json();
        assert_eq!(problem["status"], status);
        assert!(problem["type"].is_string() && problem["title"].is_string() && problem["detail"].is_string());
        problem
    }

    #[track_caller]
    pub fn ok_json(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "expected {status}, got {}: {}", self.status, self.body);
        self.json()
    }
}

/// Keeps cookies like a browser does, for the admin pages.
pub struct Browser {
    address: String,
    agent: ureq::Agent,
    cookies: HashMap<String, String>,
}

impl Browser {
    /// A browser with no cookies, on the server at `address` (e.g. a load balancer's).
    pub fn at(address: &str) -> Browser {
        Browser { address: address.to_owned(), agent: agent(), cookies: HashMap::new() }
    }

    /// This browser's cookies, sent to the server at `address` instead.
    pub fn moved_to(&self, address: &str) -> Browser {
        Browser { address: address.to_owned(), agent: agent(), cookies: self.cookies.clone() }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
    }

    fn remember_cookies(&mut self, response: &TestResponse) {
        for cookie in response.headers.get("set-cookie").into_iter().flatten() {
            let pair = cookie.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || cookie.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
    }

    pub fn get(&mut self, path: &str) -> TestResponse {
        let mut request = self.agent.get(&format!("{}{}", self.address, path));
        if !self.cookies.is_empty() {
            request = request.header("Cookie", &self.cookie_header());
        }
        let response = TestResponse::from(request.call());
        self.remember_cookies(&response);
        response
    }

    pub fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> TestResponse {
        self.post_form_with(path, &[], fields)
    }

    /// [`Browser::post_form`] with more request headers.
    pub fn post_form_with(&mut self, path: &str, headers: &[(&str, &str)], fields: &[(&str, &str)]) -> TestResponse {
        let mut request = self.agent.post(&format!("{}{}", self.address, path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if !self.cookies.is_empty() {
            request = request.header("Cookie", &self.cookie_header());
        }
        let response = TestResponse::from(request.send_form(fields.iter().copied()));
        self.remember_cookies(&response);
        response
    }

    /// The CSRF token of the page at `path` (every admin form carries it).
    pub fn csrf_token(&mut self, path: &str) -> String {
        let page = self.get(path);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        extract_csrf_token(&page.body)
    }

    /// Posts a form the way a browser would: with the CSRF token taken from `page`.
    pub fn submit(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> TestResponse {
        let token = self.csrf_token(page);
        let mut all = vec![("csrf_token", token.as_str())];
        all.extend_from_slice(fields);
        self.post_form(action, &all)
    }

    /// The form of the confirmation page at `path`, as the page shows it: its action and every
    /// field it posts (the CSRF token and what the page saw).
    pub fn confirmation_form(&mut self, path: &str) -> Form {
        let page = self.get(path);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        Form::of_page(&page.body)
    }

    /// Posts a form as a browser would once its button is pressed.
    pub fn post(&mut self, form: &Form) -> TestResponse {
        let fields: Vec<(&str, &str)> =
            form.fields.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        self.post_form(&form.action, &fields)
    }

    pub fn sign_in(&mut self, username: &str, password: &str) -> TestResponse {
        self.submit("/admin/login", "/admin/login", &[("username", username), ("password", password)])
    }

    pub fn has_session(&self) -> bool {
        self.cookies.contains_key("agora_admin")
    }

    /// Another client holding a copy of this one's cookies, as a thief with a copied cookie.
    pub fn with_copied_cookies(&self) -> Browser {
        Browser { address: self.address.clone(), agent: agent(), cookies: self.cookies.clone() }
    }
}

/// A page's (first) form that posts: where to, and its fields as the page filled them in.
#[derive(Clone, Debug)]
pub struct Form {
    pub action: String,
    pub fields: Vec<(String, String)>,
}

impl Form {
    pub fn of_page(html: &str) -> Form {
        let start = html.find("<form method=\"post\"").unwrap_or_else(|| panic!("no form that posts: {html}"));
        let form = &html[start..start + html[start..].find("</form>").expect("the form ends")];
        let attribute = |tag: &str, name: &str| -> Option<String> {
            let marker = format!(" {name}=\"");
            let from = tag.find(&marker)? + marker.len();
            Some(unescape(&tag[from..from + tag[from..].find('"')?]))
        };
        let action = attribute(form, "action").expect("the form has an action");
        let fields = form
            .split("<input")
            .skip(1)
            .filter_map(|input| {
                let tag = &input[..input.find('>')?];
                Some((attribute(tag, "name")?, attribute(tag, "value").unwrap_or_default()))
            })
            .collect();
        Form { action, fields }
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(field, _)| field == name).map(|(_, value)| value.as_str())
    }
}

/// What askama escapes in attribute values, undone.
fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub fn extract_csrf_token(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).unwrap_or_else(|| panic!("no CSRF token in page: {html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Waits up to `timeout` for `check` to hold, polling; panics with `what` otherwise.
#[track_caller]
pub fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for: {what}");
}

/// Shortcuts for arranging a test through the public API.
impl TestApp {
    #[track_caller]
    pub fn create_product(&self, sku: &str, price_minor: i64) -> Value {
        let response = self.admin_post_json(
            "/api/products",
            &serde_json::json!({"sku": sku, "name": format!("Product {sku}"), "price_minor": price_minor}),
        );
        response.ok_json(201)
    }

    /// Creates a product with `stock` units received; returns its id.
    #[track_caller]
    pub fn product_with_stock(&self, sku: &str, price_minor: i64, stock: i32) -> String {
        let product = self.create_product(sku, price_minor);
        let id = product["id"].as_str().unwrap().to_owned();
        if stock > 0 {
            self.receive_stock(&id, stock);
        }
        id
    }

    #[track_caller]
    pub fn receive_stock(&self, product_id: &str, quantity: i32) -> Value {
        self.admin_post_json(
            &format!("/api/inventory/{product_id}/adjustments"),
            &serde_json::json!({"delta": quantity, "reason": "test delivery", "kind": "receipt"}),
        )
        .ok_json(201)
    }

    #[track_caller]
    pub fn stock(&self, product_id: &str) -> Value {
        self.get(&format!("/api/inventory/{product_id}")).ok_json(200)
    }
}

#[derive(QueryableByName, Debug, PartialEq)]
pub struct LedgerCheck {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub sku: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub on_hand: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub reserved: i32,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub ledger_on_hand: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub ledger_reserved: i64,
}

/// Asserts that for every product the ledger sums equal the levels, and that no level is
/// negative or over-reserved.
#[track_caller]
pub fn assert_ledger_matches_levels(conn: &mut PgConnection) {
    let rows = diesel::sql_query(
        "SELECT p.sku, l.on_hand, l.reserved,
                coalesce(sum(m.on_hand_delta), 0)::bigint AS ledger_on_hand,
                coalesce(sum(m.reserved_delta), 0)::bigint AS ledger_reserved
           FROM inventory_levels l
           JOIN products p ON p.id = l.product_id
           LEFT JOIN inventory_movements m ON m.product_id = l.product_id
          GROUP BY p.sku, l.on_hand, l.reserved",
    )
    .load::<LedgerCheck>(conn)
    .unwrap();
    for row in rows {
        assert_eq!(i64::from(row.on_hand), row.ledger_on_hand, "{row:?}");
        assert_eq!(i64::from(row.reserved), row.ledger_reserved, "{row:?}");
        assert!(row.reserved >= 0 && row.reserved <= row.on_hand, "{row:?}");
    }
}

impl TestApp {
    /// Places an order for one customer; returns the response.
    pub fn place_order(&self, email: &str, items: &[(&str, i64)]) -> TestResponse {
        self.post_json("/api/orders", &order_body(email, items))
    }

    #[track_caller]
    pub fn placed_order(&self, email: &str, items: &[(&str, i64)]) -> Value {
        self.place_order(email, items).ok_json(201)
    }

    pub fn pay(&self, order_id: &str, card_number: &str) -> TestResponse {
        self.post_json(&format!("/api/orders/{order_id}/payments"), &card(card_number))
    }

    #[track_caller]
    pub fn order(&self, order_id: &str) -> Value {
        self.get(&format!("/api/orders/{order_id}")).ok_json(200)
    }

    /// One query's single bigint answer (NULL read as 0), e.g. a count.
    pub fn count(&self, sql: &str) -> i64 {
        count_in(&self.database.url, sql)
    }
}

/// The number `sql` selects, in the database at `url`.
pub fn count_in(url: &str, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct Answer {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(format!("SELECT coalesce(({sql})::bigint, 0) AS n"))
        .get_result::<Answer>(&mut PgConnection::establish(url).unwrap())
        .unwrap()
        .n
}

pub fn order_body(email: &str, items: &[(&str, i64)]) -> Value {
    serde_json::json!({
        "customer": {"email": email, "name": "Ada Lovelace"},
        "items": items.iter().map(|(id, quantity)| serde_json::json!({"product_id": id, "quantity": quantity})).collect::<Vec<_>>(),
    })
}

pub fn card(number: &str) -> Value {
    serde_json::json!({"card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
}

/// Runs `count` copies of `request` at the same moment, each on its own thread and connection.
pub fn concurrently<T: Send>(count: usize, request: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = std::sync::Barrier::new(count);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .map(|index| {
                let (barrier, request) = (&barrier, &request);
                scope.spawn(move || {
                    barrier.wait();
                    request(index)
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    })
}

/// The real `agora` binary in a process of its own, for tests that kill it.
pub struct AgoraProcess {
    child: std::process::Child,
    pub address: String,
}

impl AgoraProcess {
    /// Starts `agora serve` on `database` with test settings plus `env`, and waits until it is ready.
    pub fn start(database: &TestDatabase, env: &[(&str, &str)]) -> AgoraProcess {
        let process = Self::start_on(&database.url, env);
        eventually("agora to be ready", Duration::from_secs(30), || process.get("/readyz").status == 200);
        process
    }

    /// Starts `agora serve` on the database at `url` (which may be down) and waits for `/healthz`.
    pub fn start_on(url: &str, env: &[(&str, &str)]) -> AgoraProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut all = vec![("DATABASE_URL", url)];
        all.extend_from_slice(env);
        Self::spawn("serve", port, &all)
    }

    /// Starts `agora {subcommand}` on `port` with test settings plus `env`, and waits for `/healthz`.
    pub fn spawn(subcommand: &str, port: u16, env: &[(&str, &str)]) -> AgoraProcess {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_agora"));
        command
            .arg(subcommand)
            .env("AGORA_BIND", format!("127.0.0.1:{port}"))
            .env("AGORA_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("AGORA_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("AGORA_SEED", "none")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("the agora binary starts");
        let process = AgoraProcess { child, address: format!("http://127.0.0.1:{port}") };
        let agent = agent();
        eventually("agora to answer /healthz", Duration::from_secs(20), || {
            agent.get(&format!("{}/healthz", process.address)).call().is_ok_and(|response| response.status() == 200)
        });
        process
    }

    pub fn post_json(&self, path: &str, body: &Value) -> TestResponse {
        TestResponse::from(agent().post(&format!("{}{}", self.address, path)).send_json(body))
    }

    pub fn get(&self, path: &str) -> TestResponse {
        TestResponse::from(agent().get(&format!("{}{}", self.address, path)).call())
    }

    pub fn post_json_with(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> TestResponse {
        let mut request = agent().post(&format!("{}{}", self.address, path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        TestResponse::from(request.send_json(body))
    }

    pub fn admin_post_json(&self, path: &str, body: &Value) -> TestResponse {
        let url = format!("{}{}", self.address, path);
        TestResponse::from(agent().post(&url).header("Authorization", &format!("Bearer {ADMIN_TOKEN}")).send_json(body))
    }

    pub fn admin_get(&self, path: &str) -> TestResponse {
        let url = format!("{}{}", self.address, path);
        TestResponse::from(agent().get(&url).header("Authorization", &format!("Bearer {ADMIN_TOKEN}")).call())
    }

    pub fn admin_patch_json(&self, path: &str, body: &Value) -> TestResponse {
        let url = format!("{}{}", self.address, path);
        TestResponse::from(
            agent().patch(&url).header("Authorization", &format!("Bearer {ADMIN_TOKEN}")).send_json(body),
        )
    }

    /// A browser on this process, signed in as the first admin.
    pub fn signed_in_browser(&self) -> Browser {
        let mut browser = Browser { address: self.address.clone(), agent: agent(), cookies: HashMap::new() };
        let response = browser.sign_in("admin", ADMIN_PASSWORD);
        assert_eq!(response.status, 303, "sign-in failed: {}", response.body);
        browser
    }

    /// The process's resident memory, from /proc, in KiB.
    pub fn resident_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("VmRSS in /proc/PID/status");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM, as a service manager stops a process; returns how it exited and how long it took.
    pub fn terminate(self) -> (std::process::ExitStatus, Duration) {
        self.stop_with("TERM")
    }

    /// Sends the signal `name` (`TERM`, `INT`) and waits for the process to end; returns how it
    /// exited and how long after the signal.
    pub fn stop_with(mut self, name: &str) -> (std::process::ExitStatus, Duration) {
        let started = std::time::Instant::now();
        let sent =
            std::process::Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status();
        assert!(sent.unwrap().success());
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(std::time::Instant::now() < deadline, "agora did not stop within 30 s of SIG{name}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown hook runs, work in flight is simply cut off.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for AgoraProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Error lines the application logs, captured from the first call on (one logger per process).
pub struct CapturedLogs(&'static std::sync::Mutex<Vec<String>>);

impl CapturedLogs {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

pub fn captured_error_logs() -> CapturedLogs {
    struct Capture(std::sync::Mutex<Vec<String>>);
    impl log::Log for Capture {
        fn enabled(&self, metadata: &log::Metadata) -> bool {
            metadata.level() <= log::Level::Error
        }
        fn log(&self, record: &log::Record) {
            if self.enabled(record.metadata()) {
                self.0.lock().unwrap().push(record.args().to_string());
            }
        }
        fn flush(&self) {}
    }
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    let capture = CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(std::sync::Mutex::new(Vec::new()))));
        log::set_logger(capture).expect("no other logger in the test binary");
        log::set_max_level(log::LevelFilter::Error);
        capture
    });
    CapturedLogs(&capture.0)
}
