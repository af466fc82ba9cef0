//! `agora notifications-service`: the notifications module alone, in a process of its own, on a
//! database of its own (`AGORA_NOTIFICATIONS_DATABASE_URL`). It is the way out of the shared
//! database, run: the module already renders every e-mail from its event and consumes a queue of
//! its own, so moving it needs no code of another module, only these tables elsewhere.
//!
//! The service applies its own migrations (`src/notifications/migrations`) to its own database,
//! consumes its queue on the broker, sends over SMTP, and answers a small HTTP API (an order's
//! e-mails, one e-mail, resend) that the main process's order view and admin pages call.
//!
//! Which database holds the e-mails of record is written in the service's database
//! (`notifications_ownership`): a fresh service holds them; during `agora split notifications`
//! the shared database does until the cutover. The service takes a message or sends an e-mail
//! only while it holds them, checked in the same transaction under a share lock, so the cutover
//! and the rollback, which change the holder, wait for the message in flight and fence off the rest.

pub mod api;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::background::BackgroundTasks;
use crate::config::{BrokerSettings, Config, PoolSettings};
use crate::db::{Db, SetupError};

/// The service's migrations, compiled in: its database holds nothing else.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("src/notifications/migrations");

/// Held while migrating the service's database, as [`crate::db::MIGRATION_LOCK_KEY`] is for the shared one.
const MIGRATION_LOCK_KEY: i64 = 0x4147_4f52_415f_4e53; // "AGORA_NS"

const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

diesel::table! {
    /// Which database holds the e-mails of record (the service's database only).
    notifications_ownership (only_row) {
        only_row -> Bool,
        holder -> Text,
        changed_at -> Timestamptz,
    }
}

/// Which database holds the e-mails of record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// The service's own database: the service takes messages and sends.
    Service,
    /// The shared database (a move not cut over yet, or rolled back): the service does nothing.
    Shared,
}

impl Holder {
    pub fn as_str(self) -> &'static str {
        match self {
            Holder::Service => "service",
            Holder::Shared => "shared",
        }
    }
}

/// Whether the service's database holds the e-mails of record, read under a share lock that a
/// change of holder waits for until the caller's transaction ends.
pub fn holds_records(conn: &mut PgConnection) -> QueryResult<bool> {
    use self::notifications_ownership::dsl as ownership;
    let current: String = ownership::notifications_ownership.select(ownership::holder).for_share().first(conn)?;
    Ok(current == Holder::Service.as_str())
}

/// Makes `to` the holder; waits for every message and send in flight (they hold the share lock).
pub fn set_holder(conn: &mut PgConnection, to: Holder) -> QueryResult<()> {
    use self::notifications_ownership::dsl as ownership;
    diesel::update(ownership::notifications_ownership)
        .set((ownership::holder.eq(to.as_str()), ownership::changed_at.eq(diesel::dsl::now)))
        .execute(conn)?;
    Ok(())
}

/// Creates the service's database if needed and applies its migrations.
pub fn prepare_database(database_url: &str) -> Result<(), SetupError> {
    if crate::db::create_database_if_missing(database_url)? {
        log::info!("created the notifications database {}", crate::db::split_database_url(database_url)?.1);
    }
    let mut conn = crate::db::connect(database_url)?;
    let applied = run_migrations(&mut conn)?;
    if !applied.is_empty() {
        log::info!("notifications database: applied {}", applied.join(", "));
    }
    Ok(())
}

fn run_migrations(conn: &mut PgConnection) -> Result<Vec<String>, SetupError> {
    let migrate = |error: &dyn std::fmt::Display| SetupError::Migrate(error.to_string());
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(conn)
        .map_err(|error| migrate(&error))?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|error| migrate(&error));
    let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(conn);
    let applied = applied?;
    unlocked.map_err(|error| migrate(&error))?;
    Ok(applied)
}

/// The pool of the service's database: no module roles (the database is the module's alone).
pub fn pool_settings(config: &Config) -> PoolSettings {
    PoolSettings { module_roles: false, ..config.pool.clone() }
}

/// What the service needs beyond Agora's configuration, checked at start.
pub struct ServiceSettings {
    pub database_url: String,
    pub broker: BrokerSettings,
}

impl ServiceSettings {
    pub fn from_config(config: &Config) -> Result<ServiceSettings, String> {
        let database_url = config.notifications_database_url.clone().ok_or(
            "AGORA_NOTIFICATIONS_DATABASE_URL must name the service's own database, e.g. \
             postgres://postgres@127.0.0.1:5432/agora_notifications",
        )?;
        if crate::db::split_database_url(&database_url).ok().map(|(_, name)| name)
            == crate::db::split_database_url(&config.direct_database_url).ok().map(|(_, name)| name)
            && same_server(&database_url, &config.direct_database_url)
        {
            return Err("AGORA_NOTIFICATIONS_DATABASE_URL names the shared database: the service needs its own".into());
        }
        let broker =
            config.broker.clone().ok_or("AGORA_BROKER_URL is needed: the service takes its events from the broker")?;
        Ok(ServiceSettings { database_url, broker })
    }
}

fn same_server(a: &str, b: &str) -> bool {
    let server = |url: &str| crate::db::split_database_url(url).map(|(server, _)| server).ok();
    server(a) == server(b)
}

/// The running service: its HTTP server and background work (consumer and sender).
pub struct NotificationsService {
    port: u16,
    server: actix_web::dev::Server,
    /// The consumer and the sender, once the database is prepared.
    background: Arc<Mutex<BackgroundTasks>>,
    preparing: actix_web::rt::task::JoinHandle<()>,
}

/// Applies the service's migrations, retrying while its database cannot be reached; `false` on a
/// failure waiting cannot cure (said in the log and on `/readyz`).
async fn prepare_until_done(settings: &ServiceSettings, starting: &api::Starting) -> bool {
    let mut delay = RETRY_FIRST;
    loop {
        let url = settings.database_url.clone();
        match actix_web::rt::task::spawn_blocking(move || prepare_database(&url)).await {
            Ok(Ok(())) => return true,
            Ok(Err(error @ (SetupError::Connect { .. } | SetupError::Pool(_)))) => {
                log::warn!("waiting for the notifications database: {error}");
                starting.waiting(format!("waiting for its database: {error}"));
            }
            Ok(Err(other)) => {
                log::error!("cannot prepare the notifications database: {other}");
                starting.waiting(format!("cannot prepare its database: {other}"));
                return false;
            }
            Err(panicked) => {
                starting.waiting(format!("preparing its database panicked: {panicked}"));
                return false;
            }
        }
        actix_web::rt::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_MAX);
    }
}

impl NotificationsService {
    /// Starts serving at once (`/healthz` answers, `/readyz` says why it is not ready yet), and
    /// prepares its database in the background, retrying while it cannot be reached; consuming
    /// and sending begin once it is prepared. Must be called from within an actix system.
    pub async fn build(config: Config) -> Result<NotificationsService, Box<dyn std::error::Error>> {
        let settings = ServiceSettings::from_config(&config)?;
        let listener = std::net::TcpListener::bind(&config.bind)?;
        let port = listener.local_addr()?.port();
        let db = Db::connect(&settings.database_url, &pool_settings(&config));
        let starting = Arc::new(api::Starting::default());
        let background = Arc::new(Mutex::new(BackgroundTasks::default()));
        let state = api::ServiceState { db: db.clone(), config: Arc::new(config.clone()), starting: starting.clone() };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .app_data(crate::error::extractors::json_config())
                .app_data(crate::error::extractors::query_config())
                .app_data(crate::error::extractors::path_config())
                .configure(api::configure)
        })
        .disable_signals()
        .listen(listener)?
        .run();
        log::info!("notifications service listening on 127.0.0.1:{port}");
        let tasks = background.clone();
        let preparing = actix_web::rt::spawn(async move {
            if prepare_until_done(&settings, &starting).await {
                let emails = Arc::new(super::OrderEmails::new(&config));
                let mut tasks = tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                super::start_consuming(&mut tasks, &db, &settings.broker, &config.outbox, emails, super::Fence::Holder);
                starting.prepared();
            }
        });
        Ok(NotificationsService { port, server, background, preparing })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped or `stop` completes, then stops the background work.
    pub async fn run_until(self, stop: impl Future<Output = &'static str>) -> std::io::Result<()> {
        let served = crate::lifecycle::serve_until(self.server, BackgroundTasks::default(), stop).await;
        // The runtime is this one thread: once aborted, the preparation starts nothing more.
        self.preparing.abort();
        let tasks = std::mem::take(&mut *self.background.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let _ = actix_web::rt::task::spawn_blocking(move || tasks.shutdown()).await;
        served
    }
}

/// `agora notifications-service`, until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let service = NotificationsService::build(config).await?;
    service.run_until(crate::lifecycle::termination()).await?;
    Ok(())
}
