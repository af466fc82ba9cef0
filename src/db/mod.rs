//! The one shared database: connection pool, embedded migrations, and the helper through which
//! every module's database work runs.
//!
//! Module code is synchronous and takes `&mut PgConnection`, so that one transaction can span
//! modules. HTTP handlers never touch diesel: they hand a closure to [`Db::run`], which takes a
//! pooled connection *inside* actix-web's blocking thread pool and attributes the work to the
//! module that asked for it (see [`crate::kernel::measure`]).

pub mod health;
pub mod listen;
pub mod replica;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, PooledConnection, R2D2Connection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::{PoolMode, PoolSettings};
use crate::error::AppError;
use crate::kernel::{Module, Operation, measure, roles};
pub use health::{DbHealth, HealthState};
pub use replica::{Lsn, Replica, ReplicaSettings, ReplicaStatus};

pub type PgPool = r2d2::Pool<ModuleConnectionManager>;
pub type PooledPg = PooledConnection<ModuleConnectionManager>;

/// The migrations under `migrations/`, compiled into the binary so it needs no diesel CLI.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How long taking a connection from the pool waited (all processes' work through [`Db`]).
pub static POOL_ACQUIRE_SECONDS: std::sync::LazyLock<prometheus::Histogram> = std::sync::LazyLock::new(|| {
    prometheus::Histogram::with_opts(
        prometheus::HistogramOpts::new("agora_db_pool_acquire_seconds", "Time waited for a pooled connection")
            .buckets(vec![0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
    )
    .expect("valid metric")
});
/// Waits for a pooled connection that ended without one.
pub static POOL_TIMEOUTS: std::sync::LazyLock<prometheus::IntCounter> = std::sync::LazyLock::new(|| {
    prometheus::IntCounter::new("agora_db_pool_timeouts_total", "Waits for a pooled connection that timed out")
        .expect("valid metric")
});

const START_UP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The advisory lock held while migrating. Any fixed number works; it only has to be the same in
/// every agora process (and public, for the tests that hold it to hold up a migration).
pub const MIGRATION_LOCK_KEY: i64 = 0x4147_4f52_415f_4d49; // "AGORA_MI"

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot connect to PostgreSQL at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: diesel::ConnectionError,
    },
    #[error("cannot create database {name:?}: {source}")]
    CreateDatabase {
        name: String,
        #[source]
        source: diesel::result::Error,
    },
    #[error("DATABASE_URL must name a database, e.g. postgres://postgres@127.0.0.1:5432/agora")]
    NoDatabaseName,
    #[error("cannot apply migrations: {0}")]
    Migrate(String),
    #[error("cannot build the connection pool: {0}")]
    Pool(#[from] r2d2::Error),
}

/// Handle to the shared database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    pools: Arc<Pools>,
    /// Whether work runs as its module's role (see [`crate::kernel::roles`]).
    module_roles: bool,
    /// In [`PoolMode::Transaction`], the statement that opens each unit of work's transaction
    /// and sets what a session would have kept (role, timeouts), per module role.
    unit_of_work: Option<Arc<UnitOfWork>>,
    health: DbHealth,
    request_timeout: Duration,
    /// Where reads that may be a little behind go, when one is configured.
    replica: Option<Arc<Replica>>,
}

/// The pool, rebuilt after each outage: the old one's connections died with the server, and
/// r2d2 keeps retrying a failed connection with a growing delay (up to half the acquire
/// timeout), which would hold up the first requests after the database is back.
struct Pools {
    recipe: PoolRecipe,
    /// The pool and the [`DbHealth::generation`] it was built in.
    current: RwLock<(u64, PgPool)>,
}

struct PoolRecipe {
    url: String,
    settings: PoolSettings,
}

impl PoolRecipe {
    fn build(&self) -> PgPool {
        let url = match self.settings.mode {
            PoolMode::Session => self.url.clone(),
            // Sent at connection start-up, which a pooler keeps for every server session it
            // lends this client; a SET would stay behind on one server session.
            PoolMode::Transaction => with_options(&self.url, &[("application_name", "agora".to_owned())]),
        };
        r2d2::Pool::builder()
            .max_size(self.settings.max_size)
            .min_idle(Some(self.settings.max_size.min(2)))
            .connection_timeout(self.settings.acquire_timeout)
            .test_on_check_out(false)
            .connection_customizer(Box::new(SessionSetup {
                mode: self.settings.mode,
                timeouts: Timeouts::of(&self.settings),
            }))
            // Outages are logged once, by the health state, not once per connection attempt.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(ModuleConnectionManager(ConnectionManager::<PgConnection>::new(url)))
    }
}

/// A pooled connection and the role its session runs as, so that consecutive work of the same
/// module on it costs no `SET ROLE`.
pub struct ModuleConnection {
    conn: PgConnection,
    /// `Some(None)`: the login user; `None`: unknown, after a switch that failed.
    session_role: Option<Option<Module>>,
    /// Found dead: the pool drops it instead of handing it out again.
    broken: bool,
}

impl ModuleConnection {
    fn set_session_role(&mut self, role: Option<Module>) -> QueryResult<()> {
        if self.session_role != Some(role) {
            self.session_role = None;
            // `SET ROLE` takes no bind parameters; the role names are our own constants.
            let sql = role.map_or_else(|| "RESET ROLE".to_owned(), |module| format!("SET ROLE {}", module.role()));
            self.conn.batch_execute(&sql)?;
            self.session_role = Some(role);
        }
        Ok(())
    }
}

impl std::ops::Deref for ModuleConnection {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for ModuleConnection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

/// diesel's connection manager, with each connection's session role tracked beside it.
pub struct ModuleConnectionManager(ConnectionManager<PgConnection>);

impl r2d2::ManageConnection for ModuleConnectionManager {
    type Connection = ModuleConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<ModuleConnection, Self::Error> {
        self.0.connect().map(|conn| ModuleConnection { conn, session_role: Some(None), broken: false })
    }

    fn is_valid(&self, conn: &mut ModuleConnection) -> Result<(), Self::Error> {
        self.0.is_valid(&mut conn.conn)
    }

    fn has_broken(&self, conn: &mut ModuleConnection) -> bool {
        conn.broken || self.0.has_broken(&mut conn.conn)
    }
}

impl Db {
    /// Builds the pool without waiting for connections, so that the process can start (and
    /// report itself unready) while the database is down.
    pub fn connect(database_url: &str, settings: &PoolSettings) -> Db {
        Self::connect_with_health(database_url, settings, DbHealth::new())
    }

    /// Sends the reads of [`Db::read`] to a streaming replica of this database while it keeps up.
    pub fn with_replica(mut self, replica: &ReplicaSettings, settings: &PoolSettings) -> Db {
        let replica_db = Self::connect_with_health(&replica.url, settings, DbHealth::of_replica());
        let primary_url = with_connection_options(&self.pools.recipe.url, settings.connect_timeout);
        self.replica = Some(Replica::start(replica_db, replica, primary_url));
        self
    }

    fn connect_with_health(database_url: &str, settings: &PoolSettings, health: DbHealth) -> Db {
        let url = with_connection_options(database_url, settings.connect_timeout);
        let recipe = PoolRecipe { url: url.clone(), settings: settings.clone() };
        let pools = Pools { current: RwLock::new((health.generation(), recipe.build())), recipe };
        health.start_probe(url);
        let unit_of_work = (settings.mode == PoolMode::Transaction)
            .then(|| Arc::new(UnitOfWork::new(Timeouts::of(settings), settings.module_roles)));
        Db {
            pools: Arc::new(pools),
            module_roles: settings.module_roles,
            unit_of_work,
            health,
            request_timeout: settings.request_timeout,
            replica: None,
        }
    }

    /// The primary's position now: after work that committed, at or past its commit. Reads that
    /// must see that work pass it to [`Db::read`]. Always 0 without a replica (nothing to wait for).
    pub async fn position_after_write(&self) -> Result<Lsn, AppError> {
        if self.replica.is_none() {
            return Ok(0);
        }
        let db = self.clone();
        actix_web::web::block(move || {
            let mut conn = db.get()?;
            let position = replica::current_position(&mut conn).map_err(AppError::from);
            db.observe(&mut conn, position)
        })
        .await?
    }

    pub fn replica_status(&self) -> Option<ReplicaStatus> {
        self.replica.as_ref().map(|replica| replica.status())
    }

    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// Work that only reads and may be answered by the replica, provided the replica has
    /// replayed at least up to `after` (the reader's last write, or 0). Falls back to the primary
    /// whenever the replica is skipped, behind `after`, or fails the read.
    pub async fn read<T, E, F>(&self, operation: Operation, after: Lsn, work: F) -> Result<T, AppError>
    where
        F: Fn(&mut PgConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<AppError>,
    {
        if self.replica.is_none() {
            return self.run(operation, work).await;
        }
        let db = self.clone();
        // A hang may be the replica's: it does not count against the primary's health.
        self.offload(move || db.read_blocking(operation, after, work), false).await
    }

    /// [`Db::read`] for code on its own thread.
    pub fn read_blocking<T, E, F>(&self, operation: Operation, after: Lsn, work: F) -> Result<T, AppError>
    where
        F: Fn(&mut PgConnection) -> Result<T, E>,
        E: Into<AppError>,
    {
        if let Some(replica) = self.replica.as_ref().filter(|replica| replica.serves(after)) {
            match replica.db.run_blocking(operation, &work) {
                Ok(value) => {
                    replica::READS.with_label_values(&["replica"]).inc();
                    return Ok(value);
                }
                // A 4xx is the answer; anything else may be the replica's fault.
                Err(AppError::Client(problem)) => return Err(AppError::Client(problem)),
                Err(error) => replica.failed(crate::error::CauseChain(&error).to_string()),
            }
        }
        if self.replica.is_some() {
            replica::READS.with_label_values(&["primary"]).inc();
        }
        self.run_blocking(operation, work)
    }

    pub fn health(&self) -> &DbHealth {
        &self.health
    }

    /// The pool of the current health generation, built anew on first use after an outage.
    fn pool(&self) -> PgPool {
        let generation = self.health.generation();
        {
            let current = self.pools.current.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            if current.0 == generation {
                return current.1.clone();
            }
        }
        let mut current = self.pools.current.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if current.0 != generation {
            *current = (generation, self.pools.recipe.build());
            log::info!("database connection pool rebuilt after the outage");
        }
        current.1.clone()
    }

    /// A pooled connection, at once refused while the database is known to be down.
    fn checkout(&self) -> Result<PooledPg, AppError> {
        if let Some(reason) = self.health.unavailable() {
            return Err(AppError::Unavailable(reason));
        }
        let waiting = std::time::Instant::now();
        let taken = self.pool().get();
        POOL_ACQUIRE_SECONDS.observe(waiting.elapsed().as_secs_f64());
        taken.map_err(|error| {
            POOL_TIMEOUTS.inc();
            // A bare timeout means every connection is busy; one with a cause means none could be opened.
            let text = error.to_string();
            if text != "timed out waiting for connection" {
                self.health.report_down(text);
            }
            AppError::from(error)
        })
    }

    /// Reads the outcome of work for the health state: a connection that broke under it means
    /// the database went away, and the answer is a 503 whatever error the work saw.
    fn observe<T>(&self, conn: &mut PooledPg, result: Result<T, AppError>) -> Result<T, AppError> {
        if conn.broken || conn.conn.is_broken() {
            conn.broken = true;
            let reason = match &result {
                Err(error) => format!("connection lost: {}", crate::error::CauseChain(error)),
                Ok(_) => "connection lost".to_owned(),
            };
            self.health.report_down(reason.clone());
            return result.map_err(|_| AppError::Unavailable(reason));
        }
        if result.is_ok() {
            self.health.report_up();
        }
        result
    }

    /// Runs `work` on a pooled connection in the blocking thread pool, attributed to `operation`.
    pub async fn run<T, E, F>(&self, operation: Operation, work: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<AppError>,
    {
        // Known down: answer without a trip through the blocking thread pool.
        if let Some(reason) = self.health.unavailable() {
            return Err(AppError::Unavailable(reason));
        }
        let db = self.clone();
        self.offload(move || db.run_blocking(operation, work), true).await
    }

    /// Runs `work` in the blocking thread pool and answers 503 once `request_timeout` has
    /// passed; `primary_hung` says whether that timeout means the primary stopped answering.
    async fn offload<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
        primary_hung: bool,
    ) -> Result<T, AppError> {
        match tokio::time::timeout(self.request_timeout, actix_web::web::block(work)).await {
            Ok(outcome) => outcome?,
            Err(_elapsed) => {
                // The work goes on in its thread until the database answers or the connection dies.
                let reason = format!("the database did not answer within {} ms", self.request_timeout.as_millis());
                if primary_hung {
                    self.health.report_down(reason.clone());
                }
                Err(AppError::Unavailable(reason))
            }
        }
    }

    /// [`Db::run`] for code that already runs on its own thread (background workers, the CLI).
    pub fn run_blocking<T, E, F>(&self, operation: Operation, work: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, E>,
        E: Into<AppError>,
    {
        let mut conn = self.checkout()?;
        let result = if let Some(unit) = &self.unit_of_work {
            let measured = || unit.run(&mut conn, operation.module, |conn| measure::measure(operation, || work(conn)));
            if self.module_roles { roles::in_context(operation.module, measured) } else { measured() }
        } else if !self.module_roles {
            measure::measure(operation, || work(&mut conn)).map_err(Into::into)
        } else {
            match conn.set_session_role(Some(operation.module)) {
                Ok(()) => roles::in_context(operation.module, || measure::measure(operation, || work(&mut conn)))
                    .map_err(Into::into),
                Err(error) => Err(AppError::from(error)),
            }
        };
        self.observe(&mut conn, result)
    }

    /// A connection of the pool as the login user, for work that belongs to no module (e.g. the
    /// lock sampler reading `pg_stat_activity`, the seed's advisory lock).
    pub fn get(&self) -> Result<PooledPg, AppError> {
        let mut conn = self.checkout()?;
        let reset = conn.set_session_role(None).map_err(AppError::from);
        self.observe(&mut conn, reset)?;
        Ok(conn)
    }

    /// Whether module work runs as module roles.
    pub fn enforces_module_roles(&self) -> bool {
        self.module_roles
    }

    /// Whether the database answers a trivial query within `timeout`.
    pub fn ping(&self, timeout: Duration) -> Result<(), AppError> {
        if let Some(reason) = self.health.unavailable() {
            return Err(AppError::Unavailable(reason));
        }
        let mut conn = self.pool().get_timeout(timeout)?;
        let answered = conn.batch_execute("SELECT 1").map_err(AppError::from);
        self.observe(&mut conn, answered)
    }

    pub fn pool_state(&self) -> r2d2::State {
        self.pool().state()
    }
}

/// The bounds PostgreSQL enforces on Agora's work, in milliseconds.
#[derive(Clone, Copy, Debug)]
struct Timeouts {
    statement: u128,
    lock: u128,
    idle_in_transaction: u128,
}

impl Timeouts {
    fn of(settings: &PoolSettings) -> Timeouts {
        Timeouts {
            statement: settings.statement_timeout.as_millis(),
            lock: settings.lock_timeout.as_millis(),
            idle_in_transaction: settings.idle_in_transaction_timeout.as_millis(),
        }
    }

    /// `SET` (or `SET LOCAL`) statements for these bounds.
    fn set(&self, scope: &str) -> String {
        format!(
            "SET {scope}statement_timeout = {}; SET {scope}lock_timeout = {}; \
             SET {scope}idle_in_transaction_session_timeout = {}",
            self.statement, self.lock, self.idle_in_transaction
        )
    }
}

/// A unit of work behind a transaction-mode pooler: one transaction, opened by a single
/// statement batch (one round trip) that also sets, with `SET LOCAL`, what a session of its own
/// would have kept. Nothing outlives the transaction, so the pooler may hand the server session
/// to any other client afterwards.
struct UnitOfWork {
    /// The opening batch as the login user, then as each module's role.
    login: String,
    as_module: Vec<String>,
}

impl UnitOfWork {
    fn new(timeouts: Timeouts, module_roles: bool) -> UnitOfWork {
        let login = format!("BEGIN; {}", timeouts.set("LOCAL "));
        let as_module = Module::ALL
            .iter()
            .map(
                |module| {
                    if module_roles { format!("{login}; SET LOCAL ROLE {}", module.role()) } else { login.clone() }
                },
            )
            .collect();
        UnitOfWork { login, as_module }
    }

    /// Runs `work` in a transaction of its own as `module`. The transaction is committed even when
    /// the work returned an error, so that what a refusal records stays (a failed sign-in, which
    /// the sign-in limit counts), as it would in a session of its own where each statement
    /// commits. Work that failed inside a transaction of its own has rolled that back already; a
    /// statement that failed outside one aborts the whole unit, whose COMMIT then rolls back.
    fn run<T, E: Into<AppError>>(
        &self,
        conn: &mut PgConnection,
        module: Module,
        work: impl FnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, AppError> {
        use diesel::connection::{AnsiTransactionManager, TransactionManager};
        let begin = self.as_module.get(module.index()).unwrap_or(&self.login);
        AnsiTransactionManager::begin_transaction_sql(conn, begin)?;
        let outcome = work(conn).map_err(Into::into);
        match AnsiTransactionManager::commit_transaction(conn) {
            Ok(()) => outcome,
            Err(error) => {
                // A failed COMMIT may leave the transaction open; it must not reach the next work.
                let _ = AnsiTransactionManager::rollback_transaction(conn);
                outcome.and(Err(error.into()))
            }
        }
    }
}

/// Runs `work` in a read-only transaction that sees one snapshot throughout. Behind a transaction
/// pooler the unit of work is that transaction already ([`UnitOfWork`]): it is made repeatable
/// read and read-only before its first query, which PostgreSQL allows after `SET LOCAL`.
pub fn read_only_snapshot<T, E>(
    conn: &mut PgConnection,
    work: impl FnOnce(&mut PgConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    if crate::kernel::in_transaction(conn) {
        conn.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        return work(conn);
    }
    conn.build_transaction().read_only().repeatable_read().run(work)
}

/// Per-connection setup, run once when the pool opens a connection.
#[derive(Debug)]
struct SessionSetup {
    mode: PoolMode,
    timeouts: Timeouts,
}

impl CustomizeConnection<ModuleConnection, diesel::r2d2::Error> for SessionSetup {
    fn on_acquire(&self, conn: &mut ModuleConnection) -> Result<(), diesel::r2d2::Error> {
        let conn = &mut conn.conn;
        if self.mode == PoolMode::Transaction {
            // A statement prepared by name lives in one server session; the next transaction
            // may run on another. Statements go out unnamed (parse, bind, execute at once).
            conn.set_prepared_statement_cache_size(diesel::connection::CacheSize::Disabled);
            // The backend pid changes with every transaction: no session to attribute lock waits to.
            conn.set_instrumentation(measure::QueryInstrumentation::default());
            return Ok(());
        }
        conn.batch_execute(&format!("{}; SET application_name = 'agora'", self.timeouts.set("")))
            .map_err(diesel::r2d2::Error::QueryError)?;
        let pid: i32 = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("pg_backend_pid()"))
            .get_result(conn)
            .map_err(diesel::r2d2::Error::QueryError)?;
        conn.set_instrumentation(measure::QueryInstrumentation::for_backend(pid));
        Ok(())
    }
}

/// The URL with libpq's connection options added, unless the URL sets them itself: a bound on
/// connecting, and TCP keepalives so that a connection to a vanished server is noticed.
pub fn with_connection_options(database_url: &str, connect_timeout: Duration) -> String {
    let options = [
        ("connect_timeout", connect_timeout.as_secs().max(2).to_string()),
        ("keepalives", "1".to_owned()),
        ("keepalives_idle", "10".to_owned()),
        ("keepalives_interval", "5".to_owned()),
        ("keepalives_count", "3".to_owned()),
    ];
    with_options(database_url, &options)
}

/// The URL with each of `options` added as a query parameter, unless the URL sets it itself.
fn with_options(database_url: &str, options: &[(&str, String)]) -> String {
    let mut url = database_url.to_owned();
    for &(name, ref value) in options {
        let present = url
            .split_once('?')
            .is_some_and(|(_, query)| query.split('&').any(|pair| pair.split('=').next() == Some(name)));
        if !present {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&format!("{name}={value}"));
        }
    }
    url
}

/// Splits `postgres://.../name?params` into the URL of the server's maintenance database
/// (`postgres`) and the database name.
pub fn split_database_url(database_url: &str) -> Result<(String, String), SetupError> {
    let (_, name, _) = url_parts(database_url)?;
    Ok((with_database_name(database_url, "postgres")?, name.to_owned()))
}

/// `database_url` naming database `name` instead, on the same server with the same parameters.
pub fn with_database_name(database_url: &str, name: &str) -> Result<String, SetupError> {
    let (server, _, query) = url_parts(database_url)?;
    Ok(match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    })
}

/// (server, database name, query parameters) of `postgres://server/name?query`.
fn url_parts(database_url: &str) -> Result<(&str, &str, Option<&str>), SetupError> {
    let (base, query) = match database_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (database_url, None),
    };
    match base.rsplit_once('/') {
        Some((server, name)) if !name.is_empty() && !server.ends_with('/') => Ok((server, name, query)),
        _ => Err(SetupError::NoDatabaseName),
    }
}

/// Creates the database named in `database_url` when it does not exist yet. Returns whether it
/// was created.
pub fn create_database_if_missing(database_url: &str) -> Result<bool, SetupError> {
    let (maintenance_url, name) = split_database_url(database_url)?;
    let mut conn = PgConnection::establish(&with_connection_options(&maintenance_url, START_UP_CONNECT_TIMEOUT))
        .map_err(|source| SetupError::Connect { url: crate::config::redact_url_password(&maintenance_url), source })?;
    let exists = database_exists(&mut conn, &name)
        .map_err(|source| SetupError::CreateDatabase { name: name.clone(), source })?;
    if exists {
        return Ok(false);
    }
    let created = diesel::sql_query(format!("CREATE DATABASE {}", quote_identifier(&name))).execute(&mut conn);
    match created {
        Ok(_) => Ok(true),
        // Another agora process created it between our check and our CREATE: fine.
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(error) if error.to_string().contains("already exists") => Ok(false),
        Err(source) => Err(SetupError::CreateDatabase { name, source }),
    }
}

fn database_exists(conn: &mut PgConnection, name: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(pg_database::table.filter(pg_database::datname.eq(name)))).get_result(conn)
}

diesel::table! {
    pg_database (datname) {
        datname -> Text,
    }
}

/// Double-quotes an SQL identifier.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Applies pending migrations, holding an advisory lock so that several agora processes
/// starting at once apply each migration once. Returns the versions applied.
pub fn run_migrations(conn: &mut PgConnection) -> Result<Vec<String>, SetupError> {
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(conn)
        .map_err(|error| SetupError::Migrate(error.to_string()))?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|error| SetupError::Migrate(error.to_string()));
    let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(conn);
    let applied = applied?;
    unlocked.map_err(|error| SetupError::Migrate(error.to_string()))?;
    Ok(applied)
}

/// A connection of its own, outside the pool (start-up work): it gives up connecting after a
/// few seconds rather than hanging on a server that accepts but does not answer.
pub fn connect(database_url: &str) -> Result<PgConnection, SetupError> {
    PgConnection::establish(&with_connection_options(database_url, START_UP_CONNECT_TIMEOUT))
        .map_err(|source| SetupError::Connect { url: crate::config::redact_url_password(database_url), source })
}

/// Whether the database answers and has every migration this binary knows applied.
pub fn schema_is_current(database_url: &str) -> Result<bool, SetupError> {
    let mut conn = connect(database_url)?;
    conn.has_pending_migration(MIGRATIONS)
        .map(|pending| !pending)
        .map_err(|error| SetupError::Migrate(error.to_string()))
}

/// Creates the database if needed and brings its schema up to date.
pub fn prepare_database(database_url: &str) -> Result<(), SetupError> {
    if create_database_if_missing(database_url)? {
        log::info!("created database {}", split_database_url(database_url)?.1);
    }
    let mut conn = connect(database_url)?;
    let applied = run_migrations(&mut conn)?;
    if applied.is_empty() {
        log::info!("database schema is up to date");
    } else {
        log::info!("applied {} migration(s): {}", applied.len(), applied.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_database_urls() {
        let (server, name) = split_database_url("postgres://postgres@127.0.0.1:5432/agora").unwrap();
        assert_eq!(server, "postgres://postgres@127.0.0.1:5432/postgres");
        assert_eq!(name, "agora");
        let (server, name) = split_database_url("postgres://u:p@h/shop?sslmode=disable").unwrap();
        assert_eq!(server, "postgres://u:p@h/postgres?sslmode=disable");
        assert_eq!(name, "shop");
        assert!(split_database_url("postgres://h:5432/").is_err());
        assert_eq!(
            with_database_name("postgres://u:p@h/shop?sslmode=disable", "race").unwrap(),
            "postgres://u:p@h/race?sslmode=disable"
        );
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_identifier("agora"), "\"agora\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
