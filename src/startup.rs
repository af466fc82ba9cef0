//! The composition root: builds the application from its modules (routes, background work, the
//! worker mode) and starts it. Nothing imports this file but the command line.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_session::SessionMiddleware;
use actix_session::config::{BrowserSession, CookieContentSecurity};
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::{Server, ServerHandle};
use actix_web::http::Method;
use actix_web::middleware::{self, DefaultHeaders, Logger, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use utoipa_actix_web::AppExt;

use crate::admin::session_store::DbSessionStore;
use crate::background::BackgroundTasks;
use crate::catalog::cache::{self, CatalogCache, Invalidator};
use crate::config::{Config, NotificationsConsumer, SeedMode};
use crate::db::{self, Db};
use crate::error::{AppError, extractors};
use crate::http::methods::RouteTable;
use crate::http::state::Keys;
use crate::http::{AppState, asyncapi, hardening, health, methods, openapi, static_files};
use crate::kernel::Module;
use crate::outbox::relay::{BrokerHealth, Relay};
use crate::payments::CardGateway;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] db::SetupError),
    #[error("cannot prepare the database: {0}")]
    Bootstrap(#[from] AppError),
    #[error(transparent)]
    Privileges(#[from] crate::architecture::privileges::PrivilegeError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(
        "notifications has moved to a database of its own ({0}): start agora with AGORA_NOTIFICATIONS_URL (and \
         AGORA_BROKER_URL) pointing at `agora notifications-service`, or move it back with `agora split \
         notifications --rollback`"
    )]
    Moved(String),
}

impl StartupError {
    /// Whether waiting may cure it: the database cannot be reached (yet), as opposed to a
    /// database that refuses what agora asks of it.
    pub fn is_database_unreachable(&self) -> bool {
        matches!(
            self,
            StartupError::Database(db::SetupError::Connect { .. } | db::SetupError::Pool(_))
                | StartupError::Bootstrap(AppError::Unavailable(_))
        )
    }
}

/// The running application: an HTTP server plus its background work.
pub struct Application {
    port: u16,
    server: Server,
    background: BackgroundTasks,
}

/// What serving needs from the database before it starts: a pool, and the secrets that sign
/// cookies and cursors (shared by every agora process through the database).
pub struct Prepared {
    db: Db,
    secrets: crate::admin::auth::Secrets,
}

/// Creates and migrates the database, creates the first admin and the demo data if needed.
pub fn prepare(config: &Config) -> Result<Prepared, StartupError> {
    prepare_database(config)?;
    let mut db = Db::connect(&config.database_url, &config.pool);
    if let Some(replica) = &config.replica {
        db = db.with_replica(replica, &config.pool);
    }
    let secrets = db.run_blocking(Module::Admin.op("bootstrap"), |conn| crate::admin::auth::bootstrap(conn, config))?;
    let moved = db.run_blocking(Module::Notifications.op("move_state"), crate::notifications::split::state)?;
    if let Some(moved) = moved.filter(|moved| moved.has_cut_over())
        && config.notifications_consumer != NotificationsConsumer::Service
    {
        return Err(StartupError::Moved(moved.describe()));
    }
    let mut subscriptions = crate::outbox::subscriptions(config);
    if let Some(broker) = config.broker.as_ref().filter(|_| config.notifications_consumer.uses_queue())
        && let Err(error) = crate::notifications::declare_queue_now(broker)
    {
        if config.notifications_consumer == NotificationsConsumer::Service {
            // The service declares it too when it starts; until one of them has, the relay's
            // mandatory publishes of e-mail events come back unrouted and are retried.
            log::warn!("cannot declare the notifications service's queue on the broker yet: {error}");
        } else {
            // Without its queue, the events the relay publishes would not reach notifications: the
            // in-process e-mails stay subscribed. An event the consumer takes as well finds its
            // e-mail written already (one per event), so none is sent twice.
            log::warn!(
                "cannot declare notifications' queue on the broker ({error}): e-mails stay with the outbox handler \
                 until a start finds the broker"
            );
            subscriptions.push(crate::events::ORDER_EMAILS_SUBSCRIPTION);
        }
    }
    db.run_blocking(Module::Outbox.op("subscribe"), |conn| crate::outbox::subscribe(conn, &subscriptions))?;
    if config.seed == SeedMode::Demo {
        crate::seed::seed_demo_if_empty(&db, config)?;
    }
    Ok(Prepared { db, secrets })
}

fn bind(config: &Config) -> Result<TcpListener, StartupError> {
    TcpListener::bind(&config.bind).map_err(|source| StartupError::Bind { address: config.bind.clone(), source })
}

impl Application {
    /// Prepares the database (create, migrate, first admin, demo data) and starts serving.
    /// Must be called from within an actix system.
    pub fn build(config: Config) -> Result<Application, StartupError> {
        let prepared = prepare(&config)?;
        let listener = bind(&config)?;
        Self::start(config, listener, prepared)
    }

    /// Starts serving on `listener` with a prepared database.
    pub fn start(mut config: Config, listener: TcpListener, prepared: Prepared) -> Result<Application, StartupError> {
        let Prepared { db, secrets } = prepared;
        let keys = Arc::new(Keys {
            cookies: Key::from(&secrets.cookies),
            cursors: crate::pagination::CursorKey::new(&secrets.cursors),
        });
        let port = listener.local_addr()?.port();
        // Without AGORA_PUBLIC_URL, e-mails link to the address this process serves: the port
        // it was given (AGORA_BIND may ask for any free one), on a host a browser can open.
        if config.public_url == format!("http://{}", config.bind) {
            config.public_url = format!("http://{}", local_address(&config.bind, port));
        }
        let catalog = CatalogCache::new(&config.catalog_cache);
        let broker = config.broker.as_ref().filter(|_| config.outbox.run_in_server).map(BrokerHealth::new);
        let state = AppState {
            db: db.clone(),
            config: Arc::new(config.clone()),
            openapi: openapi_document(),
            asyncapi: crate::http::asyncapi::rendered(
                config.broker.as_ref().map_or(crate::config::DEFAULT_BROKER_EXCHANGE, |broker| &broker.exchange),
            ),
            catalog: catalog.clone(),
            shop: crate::storefront::ShopCache::new(config.catalog_cache.capacity, config.shop.availability_max_age),
            keys,
            experiments: crate::experiment::RunLimit::new(config.experiment.max_runs),
            broker: broker.clone(),
            mailroom: crate::notifications::Mailroom::new(&config, &db),
        };
        let gateway: Arc<dyn CardGateway> = Arc::new(crate::payments::SimulatedGateway);
        let server = HttpServer::new(move || build_app(state.clone(), gateway.clone()))
            // Stop signals are for whoever runs the application ([`Application::run_until`]).
            .disable_signals()
            .listen(listener)?
            .run();

        let mut background = if config.outbox.run_in_server {
            start_background_work(&db, &config, broker)
        } else {
            BackgroundTasks::default()
        };
        if config.catalog_cache.capacity > 0 {
            let mut invalidator = Invalidator { cache: catalog, track_position: db.has_replica() };
            let url = config.direct_database_url.clone();
            background.spawn("catalog-cache-listener", move |stop| {
                crate::db::listen::listen(&url, cache::CHANNEL, cache::LISTEN_POLL, &stop, &mut invalidator)
            });
        }
        Ok(Application { port, server, background })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped ([`ServerHandle::stop`]), then stops the background
    /// work, letting work in flight finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until the server is stopped or `stop` completes (naming why), then stops the
    /// background work. Requests in flight are finished, up to the server's shutdown timeout.
    pub async fn run_until(self, stop: impl Future<Output = &'static str>) -> std::io::Result<()> {
        crate::lifecycle::serve_until(self.server, self.background, stop).await
    }
}

/// `agora migrate`, and the first step of `serve` and `worker`: creates the database if needed,
/// applies the migrations, then gives each module's role the privileges its declaration names.
pub fn prepare_database(config: &Config) -> Result<(), StartupError> {
    db::prepare_database(&config.direct_database_url)?;
    if config.pool.module_roles {
        let mut conn = db::connect(&config.direct_database_url)?;
        crate::architecture::privileges::apply(&mut conn)?;
    }
    Ok(())
}

/// The background work `agora serve` and `agora worker` run: the outbox dispatcher (e-mails, and
/// the relay to the broker when there is one), notifications' broker consumer and sender when it
/// consumes from the broker, and the payment-timeout sweeper. `broker` is the health the relay is
/// to keep, when the caller shows it (`/readyz`); else the relay keeps its own.
pub fn start_background_work(db: &Db, config: &Config, broker: Option<BrokerHealth>) -> BackgroundTasks {
    let mut tasks = BackgroundTasks::default();
    let emails = Arc::new(crate::notifications::OrderEmails::new(config));
    // Registered in either in-process mode: deliveries made before a switch to the broker still
    // complete. With notifications in its service, this process writes no e-mail at all.
    let mut handlers: Vec<Arc<dyn crate::outbox::dispatcher::Handler>> = Vec::new();
    if config.notifications_consumer != NotificationsConsumer::Service {
        handlers.push(emails.clone());
    }
    if let Some(settings) = &config.broker {
        let health = broker.unwrap_or_else(|| BrokerHealth::new(settings));
        handlers.push(Relay::start(&mut tasks, settings, health, confirm_timeout(config)));
    }
    crate::outbox::dispatcher::start(&mut tasks, db, config, handlers);
    if let (NotificationsConsumer::Broker, Some(broker)) = (config.notifications_consumer, &config.broker) {
        crate::notifications::start_consuming(
            &mut tasks,
            db,
            broker,
            &config.outbox,
            emails,
            crate::notifications::Fence::None,
        );
    }
    crate::orders::timeout::start(&mut tasks, db, config);
    crate::idempotency::start_purging(&mut tasks, db);
    crate::admin::session_store::start_pruning(&mut tasks, db, config.session);
    crate::storefront::start_removing_idle_carts(&mut tasks, db, config.shop.cart_idle);
    crate::architecture::locks::start(&mut tasks, db, config.lock_sample_interval);
    tasks
}

/// How long the relay waits for the broker's confirms of a batch. The batch's transaction stays
/// open meanwhile, so well within the idle-in-transaction timeout, which would end it.
fn confirm_timeout(config: &Config) -> Duration {
    (config.pool.idle_in_transaction_timeout / 2).min(Duration::from_secs(5))
}

/// Start-up retries: quick at first, then once a second, so that the process is ready within
/// about a second of the database coming up.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// `agora serve`. Listens at once: while the database is being prepared (or cannot be reached),
/// `/healthz` answers 200 and everything else 503 with the reason; then the application takes
/// over the same socket. SIGINT or SIGTERM ends it in every phase: waiting, migrating, serving.
pub async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let admin_api = config.admin_token.is_some();
    let bind = config.bind.clone();
    let listener = self::bind(&config)?;
    let mut stop = std::pin::pin!(crate::lifecycle::termination());
    let starting = NotReady::serve(&listener)?;
    let starting_up = async {
        let prepared = prepare_until_done(&config, &starting).await?;
        // Scratch databases of checkout races whose process died: no live run owns them.
        let leftovers = config.clone();
        let _ =
            actix_web::rt::task::spawn_blocking(move || crate::experiment::remove_leftovers_at_start(&leftovers)).await;
        Ok::<_, StartupError>(prepared)
    };
    let prepared = tokio::select! {
        prepared = starting_up => prepared?,
        signal = &mut stop => {
            // A start-up step still running in a blocking thread (a migration waiting for a lock,
            // say) is abandoned with the process; its transaction rolls back.
            log::info!("{signal}: stopping before Agora was ready");
            return Ok(());
        }
    };
    starting.hand_over().await;
    let application = Application::start(config, listener, prepared)?;
    let base = format!("http://{}", local_address(&bind, application.port()));
    log::info!("Agora is serving the API at {base}/api (OpenAPI: {base}/api/openapi.json)");
    log::info!("admin pages at {base}/admin");
    if !admin_api {
        log::warn!("AGORA_ADMIN_TOKEN is not set: the admin API (/api endpoints marked admin) is disabled");
    }
    application.run_until(stop).await?;
    log::info!("stopped");
    Ok(())
}

/// Where a person on this machine reaches the server: the bound host, or loopback when bound
/// to every interface.
fn local_address(bind: &str, port: u16) -> String {
    let host = bind.rsplit_once(':').map_or(bind, |(host, _)| host);
    let host = if matches!(host, "0.0.0.0" | "[::]" | "") { "127.0.0.1" } else { host };
    format!("{host}:{port}")
}

/// How long the "not ready" server keeps serving what it accepted before it stops.
const HANDOFF_DRAIN: Duration = Duration::from_millis(100);

/// The server that answers while the application cannot yet: 200 on `/healthz`, 503 with the
/// reason on everything else.
struct NotReady {
    handle: ServerHandle,
    reason: Arc<std::sync::Mutex<String>>,
}

impl NotReady {
    fn serve(listener: &TcpListener) -> Result<NotReady, StartupError> {
        let reason = Arc::new(std::sync::Mutex::new("starting: preparing the database".to_owned()));
        let shown = reason.clone();
        let server = HttpServer::new(move || {
            let shown = shown.clone();
            App::new().service(health::healthz).default_service(web::to(move |request: actix_web::HttpRequest| {
                let reason = shown.lock().map(|reason| reason.clone()).unwrap_or_default();
                async move {
                    if request.path().starts_with("/admin") {
                        use actix_web::ResponseError;
                        crate::admin::page::PageError(AppError::Unavailable(reason)).error_response()
                    } else {
                        health::unready(&reason)
                    }
                }
            }))
        })
        .workers(1)
        // The stop signals are `serve`'s to handle, in every phase.
        .disable_signals()
        .listen(listener.try_clone()?)?
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Ok(NotReady { handle, reason })
    }

    fn tell(&self, reason: String) {
        if let Ok(mut shown) = self.reason.lock() {
            *shown = reason;
        }
    }

    /// Stops, leaving the socket to the application.
    async fn hand_over(self) {
        // A stopping actix worker drops the connections still queued to it, unserved: a client
        // polling /readyz then sees its connection reset. So accepting stops first (new
        // connections wait in the listener's backlog for the real server), the worker is given a
        // moment to take up what was already accepted, and only then stops, finishing those
        // gracefully.
        self.handle.pause().await;
        actix_web::rt::time::sleep(HANDOFF_DRAIN).await;
        self.handle.stop(true).await;
    }
}

/// Retries [`prepare`] until it succeeds, or fails for a reason waiting cannot cure.
async fn prepare_until_done(config: &Config, starting: &NotReady) -> Result<Prepared, StartupError> {
    let mut delay = RETRY_FIRST;
    let mut first_failure = true;
    loop {
        let attempt = config.clone();
        match actix_web::rt::task::spawn_blocking(move || prepare(&attempt)).await {
            Ok(Ok(prepared)) => {
                if !first_failure {
                    log::info!("the database is available: starting");
                }
                return Ok(prepared);
            }
            Ok(Err(error)) if error.is_database_unreachable() => {
                let text = error.to_string();
                if first_failure {
                    log::error!("cannot prepare the database: {text}; serving 503 (and /healthz) while retrying");
                    first_failure = false;
                } else {
                    log::warn!("still waiting for the database: {text}");
                }
                starting.tell(format!("starting: {text}"));
            }
            Ok(Err(other)) => return Err(other),
            Err(panicked) => return Err(StartupError::Io(std::io::Error::other(panicked.to_string()))),
        }
        actix_web::rt::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_MAX);
    }
}

/// `agora worker`: the background work alone, until SIGINT or SIGTERM. It waits for the
/// database and for its schema (which `agora serve` or `agora migrate` brings up to date).
pub async fn work(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let mut stop = std::pin::pin!(crate::lifecycle::termination());
    tokio::select! {
        () = wait_for_schema(&config) => {}
        signal = &mut stop => {
            log::info!("{signal}: stopping before the database was ready");
            return Ok(());
        }
    }
    let db = Db::connect(&config.database_url, &config.pool);
    let tasks = start_background_work(&db, &config, None);
    log::info!("worker running: dispatching events and cancelling unpaid orders; stop with Ctrl-C or SIGTERM");
    let signal = stop.await;
    log::info!("{signal}: stopping, finishing work in flight");
    actix_web::rt::task::spawn_blocking(move || tasks.shutdown()).await?;
    log::info!("stopped");
    Ok(())
}

async fn wait_for_schema(config: &Config) {
    let mut delay = RETRY_FIRST;
    loop {
        let url = config.direct_database_url.clone();
        match actix_web::rt::task::spawn_blocking(move || db::schema_is_current(&url)).await {
            Ok(Ok(true)) => return,
            Ok(Ok(false)) => log::warn!("waiting for the schema: run `agora migrate` or start `agora serve`"),
            Ok(Err(error)) => log::warn!("waiting for the database: {error}"),
            Err(panicked) => log::error!("checking the schema failed: {panicked}"),
        }
        actix_web::rt::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_MAX);
    }
}

fn build_app(
    state: AppState,
    gateway: Arc<dyn CardGateway>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let cookie_secure = state.config.cookie_secure;
    let store = DbSessionStore::new(state.db.clone(), state.config.session);
    let sessions = SessionMiddleware::builder(store, state.keys.cookies.clone())
        .cookie_name("agora_admin".into())
        .cookie_path("/admin".into())
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_secure(cookie_secure)
        .cookie_content_security(CookieContentSecurity::Signed)
        .session_lifecycle(BrowserSession::default())
        .build();

    let routes = RouteTable::from_openapi(
        &state.openapi,
        &[("/api/openapi.json", Method::GET), ("/api/asyncapi.json", Method::GET), ("/metrics", Method::GET)],
    );
    App::new()
        .into_utoipa_app()
        .app_data(web::Data::new(routes))
        .app_data(web::Data::new(state))
        .app_data(web::Data::from(gateway))
        .app_data(extractors::json_config())
        .app_data(extractors::query_config())
        .app_data(extractors::path_config())
        .service(health::healthz)
        .service(health::readyz)
        .service(
            utoipa_actix_web::scope("/api")
                .configure(configure_api)
                .route("/openapi.json", web::get().to(openapi::serve_document))
                .route("/asyncapi.json", web::get().to(asyncapi::serve_document)),
        )
        .map(|app| {
            app.service(static_files::scope())
                .route("/metrics", web::get().to(crate::architecture::prometheus::scrape))
                .service(crate::admin::scope(sessions, configure_pages))
                .configure(crate::storefront::pages::configure)
                .default_service(web::to(|request: actix_web::HttpRequest| async move {
                    Err::<HttpResponse, _>(AppError::not_found(format!("Nothing exists at {}.", request.path())))
                }))
        })
        .into_app()
        .wrap(
            DefaultHeaders::new()
                .add(("X-Content-Type-Options", "nosniff"))
                .add(("X-Frame-Options", "DENY"))
                .add(("Referrer-Policy", "same-origin")),
        )
        .wrap(from_fn(methods::conform))
        .wrap(from_fn(hardening::harden))
        .wrap(middleware::NormalizePath::trim())
        .wrap(from_fn(crate::architecture::prometheus::record))
        // The access log costs a formatted line per request even when nothing prints it.
        .wrap(middleware::Condition::new(access_log_enabled(), Logger::new("%a \"%r\" %s %b %Dms")))
}

/// Whether `RUST_LOG` lets actix-web's access log through.
fn access_log_enabled() -> bool {
    log::log_enabled!(target: "actix_web::middleware::logger", log::Level::Info)
}

/// Every admin page under `/admin`, module by module.
fn configure_pages(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("").route(web::get().to(crate::dashboard::show)))
        .configure(crate::catalog::pages::configure)
        .configure(crate::inventory::pages::configure)
        .configure(crate::orders::pages::configure)
        .configure(crate::payments::pages::configure)
        .configure(crate::notifications::pages::configure)
        .configure(crate::outbox::pages::configure)
        .configure(crate::architecture::pages::configure)
        .configure(crate::experiment::pages::configure);
}

/// The OpenAPI document of every endpoint [`configure_api`] registers.
pub fn openapi_document() -> Arc<str> {
    openapi::document(configure_api)
}

/// Every JSON endpoint under `/api`, module by module. The OpenAPI document is collected from
/// the same registrations, so an endpoint cannot exist without being documented.
pub fn configure_api(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.configure(crate::catalog::api::configure)
        .configure(crate::inventory::api::configure)
        .configure(crate::orders::api::configure)
        .configure(crate::notifications::api::configure)
        .configure(crate::architecture::api::configure);
}

#[cfg(test)]
mod tests {
    #[test]
    fn logged_addresses_are_reachable_from_this_machine() {
        assert_eq!(super::local_address("0.0.0.0:8080", 8080), "127.0.0.1:8080");
        assert_eq!(super::local_address("127.0.0.1:0", 41234), "127.0.0.1:41234");
        assert_eq!(super::local_address("[::]:8080", 8080), "127.0.0.1:8080");
    }
}
