//! The one shared database: connection pool, embedded migrations, and the helper through which
//! every module's database work runs.
//!
//! Module code is synchronous and takes `&mut PgConnection`, so that one transaction can span
//! modules. HTTP handlers never touch diesel: they hand a closure to [`Db::run`], which takes a
//! pooled connection *inside* actix-web's blocking thread pool and attributes the work to the
//! module that asked for it (see [`crate::kernel::measure`]).

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, PooledConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::PoolSettings;
use crate::error::AppError;
use crate::kernel::{Module, Operation, measure, roles};

pub type PgPool = r2d2::Pool<ModuleConnectionManager>;
pub type PooledPg = PooledConnection<ModuleConnectionManager>;

/// The migrations under `migrations/`, compiled into the binary so it needs no diesel CLI.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Any fixed number works; it only has to be the same in every agora process.
const MIGRATION_LOCK_KEY: i64 = 0x4147_4f52_415f_4d49; // "AGORA_MI"

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
    pool: PgPool,
    /// Whether work runs as its module's role (see [`crate::kernel::roles`]).
    module_roles: bool,
}

/// A pooled connection and the role its session runs as, so that consecutive work of the same
/// module on it costs no `SET ROLE`.
pub struct ModuleConnection {
    conn: PgConnection,
    /// `Some(None)`: the login user; `None`: unknown, after a switch that failed.
    session_role: Option<Option<Module>>,
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
        self.0.connect().map(|conn| ModuleConnection { conn, session_role: Some(None) })
    }

    fn is_valid(&self, conn: &mut ModuleConnection) -> Result<(), Self::Error> {
        self.0.is_valid(&mut conn.conn)
    }

    fn has_broken(&self, conn: &mut ModuleConnection) -> bool {
        self.0.has_broken(&mut conn.conn)
    }
}

impl Db {
    /// Builds the pool without waiting for connections, so that the process can start (and
    /// report itself unready) while the database is down.
    pub fn connect(database_url: &str, settings: &PoolSettings) -> Db {
        let manager = ModuleConnectionManager(ConnectionManager::<PgConnection>::new(database_url));
        let pool = r2d2::Pool::builder()
            .max_size(settings.max_size)
            .min_idle(Some(settings.max_size.min(2)))
            .connection_timeout(settings.acquire_timeout)
            .test_on_check_out(false)
            .connection_customizer(Box::new(SessionSetup { statement_timeout: settings.statement_timeout }))
            .build_unchecked(manager);
        Db { pool, module_roles: settings.module_roles }
    }

    /// Runs `work` on a pooled connection in the blocking thread pool, attributed to `operation`.
    pub async fn run<T, E, F>(&self, operation: Operation, work: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<AppError>,
    {
        let db = self.clone();
        actix_web::web::block(move || db.run_blocking(operation, work)).await?
    }

    /// [`Db::run`] for code that already runs on its own thread (background workers, the CLI).
    pub fn run_blocking<T, E, F>(&self, operation: Operation, work: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, E>,
        E: Into<AppError>,
    {
        let mut conn = self.pool.get()?;
        if !self.module_roles {
            return measure::measure(operation, || work(&mut conn)).map_err(Into::into);
        }
        conn.set_session_role(Some(operation.module))?;
        roles::in_context(operation.module, || measure::measure(operation, || work(&mut conn))).map_err(Into::into)
    }

    /// A connection of the pool as the login user, for work that belongs to no module (e.g. the
    /// lock sampler reading `pg_stat_activity`, the seed's advisory lock).
    pub fn get(&self) -> Result<PooledPg, AppError> {
        let mut conn = self.pool.get()?;
        conn.set_session_role(None)?;
        Ok(conn)
    }

    /// Whether module work runs as module roles.
    pub fn enforces_module_roles(&self) -> bool {
        self.module_roles
    }

    /// Whether the database answers a trivial query within `timeout`.
    pub fn ping(&self, timeout: Duration) -> Result<(), AppError> {
        let mut conn = self.pool.get_timeout(timeout)?;
        conn.batch_execute("SELECT 1")?;
        Ok(())
    }

    pub fn pool_state(&self) -> r2d2::State {
        self.pool.state()
    }
}

/// Per-connection setup, run once when the pool opens a connection.
#[derive(Debug)]
struct SessionSetup {
    statement_timeout: Duration,
}

impl CustomizeConnection<ModuleConnection, diesel::r2d2::Error> for SessionSetup {
    fn on_acquire(&self, conn: &mut ModuleConnection) -> Result<(), diesel::r2d2::Error> {
        let conn = &mut conn.conn;
        conn.batch_execute(&format!(
            "SET statement_timeout = {}; SET application_name = 'agora'",
            self.statement_timeout.as_millis()
        ))
        .map_err(diesel::r2d2::Error::QueryError)?;
        let pid: i32 = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("pg_backend_pid()"))
            .get_result(conn)
            .map_err(diesel::r2d2::Error::QueryError)?;
        conn.set_instrumentation(measure::QueryInstrumentation::for_backend(pid));
        Ok(())
    }
}

/// Splits `postgres://.../name?params` into the URL of the server's maintenance database
/// (`postgres`) and the database name.
pub fn split_database_url(database_url: &str) -> Result<(String, String), SetupError> {
    let (base, query) = match database_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (database_url, None),
    };
    let Some((server, name)) = base.rsplit_once('/') else {
        return Err(SetupError::NoDatabaseName);
    };
    if name.is_empty() || server.ends_with('/') {
        return Err(SetupError::NoDatabaseName);
    }
    let mut maintenance = format!("{server}/postgres");
    if let Some(query) = query {
        maintenance.push('?');
        maintenance.push_str(query);
    }
    Ok((maintenance, name.to_owned()))
}

/// Creates the database named in `database_url` when it does not exist yet. Returns whether it
/// was created.
pub fn create_database_if_missing(database_url: &str) -> Result<bool, SetupError> {
    let (maintenance_url, name) = split_database_url(database_url)?;
    let mut conn = PgConnection::establish(&maintenance_url)
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

/// A connection of its own, outside the pool (start-up work).
pub fn connect(database_url: &str) -> Result<PgConnection, SetupError> {
    PgConnection::establish(database_url)
        .map_err(|source| SetupError::Connect { url: crate::config::redact_url_password(database_url), source })
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
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_identifier("agora"), "\"agora\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
