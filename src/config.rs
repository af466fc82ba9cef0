//! Configuration, read once from the environment (and a `.env` file, as the diesel CLI does).
//!
//! Every variable is documented in the README's configuration table; invalid values stop the
//! process at start-up with a message naming the variable, rather than surfacing later.

use std::time::Duration;

use crate::catalog::cache::CacheSettings;
use crate::db::ReplicaSettings;
use crate::money::Currency;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/agora";

#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    /// PostgreSQL itself, when `database_url` names a pooler (`AGORA_DB_DIRECT_URL`): LISTEN,
    /// migrations, grants and the session advisory locks need a session of their own.
    pub direct_database_url: String,
    pub bind: String,
    /// Bearer token of the admin API; `None` disables the admin API.
    pub admin_token: Option<String>,
    /// Password for the first admin user, used only when no admin user exists yet.
    pub admin_password: Option<String>,
    pub currency: Currency,
    pub smtp_url: Option<String>,
    pub mail_from: String,
    pub seed: SeedMode,
    pub payment_timeout: Duration,
    pub pool: PoolSettings,
    pub outbox: OutboxSettings,
    /// Mark the admin session cookie `Secure` (set it when serving behind HTTPS).
    pub cookie_secure: bool,
    /// The shop's address as shoppers reach it, without a trailing slash, for links in e-mails
    /// (`AGORA_PUBLIC_URL`).
    pub public_url: String,
    /// The storefront's limits (`AGORA_SHOP_*`).
    pub shop: ShopSettings,
    /// Load balancers whose `X-Forwarded-For` names the client (`AGORA_TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How often lock waits are sampled from `pg_stat_activity`.
    pub lock_sample_interval: Duration,
    /// When admin sessions end on the server.
    pub session: SessionLifetime,
    /// A streaming replica for reads that may be a little behind.
    pub replica: Option<ReplicaSettings>,
    pub catalog_cache: CacheSettings,
    pub experiment: ExperimentSettings,
    /// RabbitMQ, when events leave the process (`AGORA_BROKER_URL`).
    pub broker: Option<BrokerSettings>,
    /// Where the notifications module takes its events from.
    pub notifications_consumer: NotificationsConsumer,
    /// The notifications service, when notifications runs out of this process
    /// (`AGORA_NOTIFICATIONS_URL`); then `notifications_consumer` is `Service`.
    pub notifications_service: Option<ServiceLink>,
    /// The notifications service's own database (`AGORA_NOTIFICATIONS_DATABASE_URL`): where
    /// `agora notifications-service` keeps e-mails, and where `agora split notifications` moves them.
    pub notifications_database_url: Option<String>,
}

/// The storefront's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShopSettings {
    /// Checkout attempts one address may make per minute (`AGORA_SHOP_CHECKOUTS_PER_MINUTE`).
    pub checkouts_per_minute: u32,
    /// Carts untouched this long are removed (`AGORA_SHOP_CART_IDLE_DAYS`).
    pub cart_idle: Duration,
    /// How old the availability a grid or product page shows may be: its cached copy is used
    /// this long at most (`AGORA_SHOP_AVAILABILITY_MAX_AGE_MS`).
    pub availability_max_age: Duration,
}

/// How the main process reaches the notifications service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceLink {
    /// Its base URL, e.g. `http://127.0.0.1:8081`.
    pub url: String,
    /// Each call to it gives up after this long (`AGORA_NOTIFICATIONS_TIMEOUT_MS`).
    pub timeout: Duration,
}

/// The exchange events are published to unless `AGORA_BROKER_EXCHANGE` names another.
pub const DEFAULT_BROKER_EXCHANGE: &str = "agora.events";

/// The broker the outbox relays events to (`AGORA_BROKER_URL`, `AGORA_BROKER_EXCHANGE`,
/// `AGORA_NOTIFICATIONS_QUEUE`).
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerSettings {
    /// An `amqp://` (or `amqps://`) URL; it may hold a password, so it is never logged whole.
    pub url: String,
    /// The durable topic exchange every event is published to.
    pub exchange: String,
    /// The durable queue of the notifications module's own, bound to the exchange.
    pub notifications_queue: String,
}

impl std::fmt::Debug for BrokerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerSettings")
            .field("url", &redact_url_password(&self.url))
            .field("exchange", &self.exchange)
            .field("notifications_queue", &self.notifications_queue)
            .finish()
    }
}

/// `AGORA_NOTIFICATIONS_CONSUMER`: how order events reach the notifications module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationsConsumer {
    /// The in-process outbox handler (the default).
    Outbox,
    /// Its own queue on the broker, fed by the outbox's relay.
    Broker,
    /// Its own service (`agora notifications-service`) on a database of its own, consuming that
    /// queue: this process writes and reads no e-mail.
    Service,
}

impl NotificationsConsumer {
    /// Whether order events reach notifications through its queue on the broker.
    pub fn uses_queue(self) -> bool {
        matches!(self, NotificationsConsumer::Broker | NotificationsConsumer::Service)
    }
}

/// Bounds on the checkout-race experiment (`AGORA_EXPERIMENT_DEADLINE_SECS`,
/// `AGORA_EXPERIMENT_MAX_RUNS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExperimentSettings {
    /// A run still going after this long is stopped, and its scratch databases dropped.
    pub deadline: Duration,
    /// Runs one process performs at once; the admin page refuses more at once.
    pub max_runs: usize,
}

/// When admin sessions end on the server (`AGORA_SESSION_IDLE_MINUTES`, `AGORA_SESSION_MAX_HOURS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLifetime {
    /// Ends a session this long after its last request.
    pub idle: Duration,
    /// Ends a session this long after it began, however active.
    pub absolute: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedMode {
    /// Demo data on first start, when the catalog is empty.
    Demo,
    None,
}

#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub max_size: u32,
    /// How long a request waits for a free connection before it is answered with 503.
    pub acquire_timeout: Duration,
    /// Upper bound for any one statement, so a stuck query cannot hold a connection forever.
    pub statement_timeout: Duration,
    /// Upper bound for waiting on a lock (`lock_timeout`).
    pub lock_timeout: Duration,
    /// A transaction left idle this long is ended by PostgreSQL.
    pub idle_in_transaction_timeout: Duration,
    /// libpq's `connect_timeout` (at least 2 s, libpq's own floor).
    pub connect_timeout: Duration,
    /// How long a request waits for its database work before it is answered 503. Against a
    /// frozen server nothing else ends the wait: the server that would enforce
    /// `statement_timeout` is frozen too.
    pub request_timeout: Duration,
    /// Run each module's work as its own PostgreSQL role (`AGORA_DB_ROLES`, on by default).
    pub module_roles: bool,
    /// What a pooled connection may keep between units of work (`AGORA_DB_POOL_MODE`).
    pub mode: PoolMode,
}

/// Whether Agora's pooled connections are PostgreSQL sessions of their own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PoolMode {
    /// Each pooled connection is one PostgreSQL session: roles, timeouts and prepared statements
    /// are set once per session and kept.
    #[default]
    Session,
    /// `DATABASE_URL` is a pooler in transaction mode (PgBouncer's `pool_mode = transaction`):
    /// consecutive transactions may run on different server sessions, so nothing may outlive a
    /// transaction. Every unit of work runs in one transaction that sets its role and timeouts
    /// with `SET LOCAL`, and no statement is prepared by name.
    Transaction,
}

#[derive(Clone, Debug)]
pub struct OutboxSettings {
    pub workers: usize,
    pub max_attempts: i32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Fallback poll interval, for notifications missed while the LISTEN connection was down.
    pub poll_interval: Duration,
    /// Whether `agora serve` runs the dispatcher and the payment-timeout sweeper itself.
    pub run_in_server: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    variable: &'static str,
    message: String,
}

impl std::fmt::Debug for Config {
    // Hand-written so that secrets never reach a log line through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url_password(&self.database_url))
            .field("direct_database_url", &redact_url_password(&self.direct_database_url))
            .field("bind", &self.bind)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("admin_password", &self.admin_password.as_ref().map(|_| "<set>"))
            .field("currency", &self.currency.code())
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url_password))
            .field("mail_from", &self.mail_from)
            .field("seed", &self.seed)
            .field("payment_timeout", &self.payment_timeout)
            .field("pool", &self.pool)
            .field("outbox", &self.outbox)
            .field("public_url", &self.public_url)
            .field("shop", &self.shop)
            .field("lock_sample_interval", &self.lock_sample_interval)
            .field("session", &self.session)
            .field("replica", &self.replica.as_ref().map(|replica| redact_url_password(&replica.url)))
            .field("catalog_cache", &self.catalog_cache)
            .field("experiment", &self.experiment)
            .field("broker", &self.broker)
            .field("notifications_consumer", &self.notifications_consumer)
            .field("notifications_service", &self.notifications_service)
            .field("notifications_database_url", &self.notifications_database_url.as_deref().map(redact_url_password))
            .finish()
    }
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any source of variables; tests pass a map.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let parse_u64 = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(raw) => raw.trim().parse().map_err(|_| ConfigError {
                    variable: name,
                    message: format!("expected a whole number, got {raw:?}"),
                }),
            }
        };
        let parse_on_off = |name: &'static str, default: bool| -> Result<bool, ConfigError> {
            match get(name).as_deref().map(str::trim) {
                None => Ok(default),
                Some("on") => Ok(true),
                Some("off") => Ok(false),
                Some(other) => {
                    Err(ConfigError { variable: name, message: format!("expected \"on\" or \"off\", got {other:?}") })
                }
            }
        };

        let currency = match get("AGORA_CURRENCY") {
            None => Currency::parse("EUR").expect("EUR is a known currency"),
            Some(code) => Currency::parse(code.trim()).ok_or_else(|| ConfigError {
                variable: "AGORA_CURRENCY",
                message: format!("{code:?} is not a supported ISO 4217 currency code"),
            })?,
        };
        let seed = match get("AGORA_SEED").as_deref().map(str::trim) {
            None | Some("demo") => SeedMode::Demo,
            Some("none") => SeedMode::None,
            Some(other) => {
                return Err(ConfigError {
                    variable: "AGORA_SEED",
                    message: format!("expected \"demo\" or \"none\", got {other:?}"),
                });
            }
        };
        let admin_token = get("AGORA_ADMIN_TOKEN").map(|token| token.trim().to_owned());
        if let Some(token) = &admin_token
            && token.len() < 16
        {
            return Err(ConfigError {
                variable: "AGORA_ADMIN_TOKEN",
                message: "must be at least 16 characters long".into(),
            });
        }
        let admin_password = get("AGORA_ADMIN_PASSWORD");
        if let Some(password) = &admin_password
            && password.chars().count() < 8
        {
            return Err(ConfigError {
                variable: "AGORA_ADMIN_PASSWORD",
                message: "must be at least 8 characters long".into(),
            });
        }
        let mail_from = get("AGORA_MAIL_FROM").unwrap_or_else(|| "Agora <shop@agora.localhost>".into());
        if mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError {
                variable: "AGORA_MAIL_FROM",
                message: format!("{mail_from:?} is not a valid mailbox, e.g. \"Shop <shop@example.com>\""),
            });
        }
        let smtp_url = get("AGORA_SMTP_URL");
        if let Some(url) = &smtp_url {
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return Err(ConfigError {
                    variable: "AGORA_SMTP_URL",
                    message: "must start with smtp:// or smtps://".into(),
                });
            }
            if let Err(error) = lettre::SmtpTransport::from_url(url) {
                return Err(ConfigError { variable: "AGORA_SMTP_URL", message: error.to_string() });
            }
        }
        let payment_timeout = parse_u64("AGORA_PAYMENT_TIMEOUT_SECS", 1800)?;
        if payment_timeout == 0 {
            return Err(ConfigError { variable: "AGORA_PAYMENT_TIMEOUT_SECS", message: "must be at least 1".into() });
        }
        let pool_size = parse_u64("AGORA_DB_POOL_SIZE", 10)?;
        if !(1..=500).contains(&pool_size) {
            return Err(ConfigError { variable: "AGORA_DB_POOL_SIZE", message: "must be between 1 and 500".into() });
        }
        let workers = parse_u64("AGORA_OUTBOX_WORKERS", 2)?;
        let max_attempts = parse_u64("AGORA_OUTBOX_MAX_ATTEMPTS", 10)?;
        if max_attempts == 0 || max_attempts > 1000 {
            return Err(ConfigError {
                variable: "AGORA_OUTBOX_MAX_ATTEMPTS",
                message: "must be between 1 and 1000".into(),
            });
        }
        let run_in_server = parse_on_off("AGORA_BACKGROUND", true)?;
        let session_idle_minutes = parse_u64("AGORA_SESSION_IDLE_MINUTES", 30)?;
        if !(1..=10_080).contains(&session_idle_minutes) {
            return Err(ConfigError {
                variable: "AGORA_SESSION_IDLE_MINUTES",
                message: "must be between 1 and 10080 (a week)".into(),
            });
        }
        let session_max_hours = parse_u64("AGORA_SESSION_MAX_HOURS", 12)?;
        if !(1..=720).contains(&session_max_hours) {
            return Err(ConfigError {
                variable: "AGORA_SESSION_MAX_HOURS",
                message: "must be between 1 and 720 (30 days)".into(),
            });
        }
        let module_roles = parse_on_off("AGORA_DB_ROLES", true)?;
        let pool_mode = match get("AGORA_DB_POOL_MODE").as_deref().map(str::trim) {
            None | Some("session") => PoolMode::Session,
            Some("transaction") => PoolMode::Transaction,
            Some(_) => {
                return Err(ConfigError {
                    variable: "AGORA_DB_POOL_MODE",
                    message:
                        "must be session (PostgreSQL itself) or transaction (behind PgBouncer in transaction mode)"
                            .into(),
                });
            }
        };
        let trusted_proxies = match get("AGORA_TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(|entry| entry.parse::<std::net::IpAddr>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| ConfigError {
                    variable: "AGORA_TRUSTED_PROXIES",
                    message: "must be IP addresses separated by commas, e.g. 127.0.0.1,10.0.0.2".into(),
                })?,
        };
        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        let direct_database_url = get("AGORA_DB_DIRECT_URL").map(|url| url.trim().to_owned());
        if let Some(url) = &direct_database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError {
                variable: "AGORA_DB_DIRECT_URL",
                message:
                    "must be a postgres:// URL naming PostgreSQL itself, e.g. postgres://postgres@127.0.0.1:5432/agora"
                        .into(),
            });
        }
        let replica_max_lag = parse_u64("AGORA_REPLICA_MAX_LAG_MS", 1_000)?;
        if !(1..=3_600_000).contains(&replica_max_lag) {
            return Err(ConfigError {
                variable: "AGORA_REPLICA_MAX_LAG_MS",
                message: "must be between 1 and 3600000 (an hour)".into(),
            });
        }
        let replica = get("AGORA_REPLICA_URL")
            .map(|url| url.trim().to_owned())
            .map(|url| ReplicaSettings { url, max_lag: Duration::from_millis(replica_max_lag) });
        if let Some(replica) = &replica
            && !(replica.url.starts_with("postgres://") || replica.url.starts_with("postgresql://"))
        {
            return Err(ConfigError {
                variable: "AGORA_REPLICA_URL",
                message: "must be a postgres:// URL, e.g. postgres://postgres@replica:5432/agora".into(),
            });
        }
        let catalog_cache = CacheSettings {
            capacity: parse_u64("AGORA_CATALOG_CACHE_ENTRIES", 10_000)?,
            ttl: Duration::from_secs(parse_u64("AGORA_CATALOG_CACHE_TTL_SECS", 60)?.max(1)),
            client_max_age: Duration::from_secs(parse_u64("AGORA_CATALOG_MAX_AGE_SECS", 5)?),
        };
        let experiment_deadline = parse_u64("AGORA_EXPERIMENT_DEADLINE_SECS", 120)?;
        if !(1..=3600).contains(&experiment_deadline) {
            return Err(ConfigError {
                variable: "AGORA_EXPERIMENT_DEADLINE_SECS",
                message: "must be between 1 and 3600 (an hour)".into(),
            });
        }
        let experiment_runs = parse_u64("AGORA_EXPERIMENT_MAX_RUNS", 1)?;
        if !(1..=8).contains(&experiment_runs) {
            return Err(ConfigError {
                variable: "AGORA_EXPERIMENT_MAX_RUNS",
                message: "must be between 1 and 8".into(),
            });
        }
        let broker = match get("AGORA_BROKER_URL").map(|url| url.trim().to_owned()) {
            None => None,
            Some(url) => {
                if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
                    return Err(ConfigError {
                        variable: "AGORA_BROKER_URL",
                        message: "must be an amqp:// URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f".into(),
                    });
                }
                // Checked whole here, so that the relay never meets a URL it cannot use; the
                // parser's message is not repeated, as it may quote the password.
                if url.parse::<lapin::uri::AMQPUri>().is_err() {
                    return Err(ConfigError {
                        variable: "AGORA_BROKER_URL",
                        message: "is not a valid AMQP URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f".into(),
                    });
                }
                let name = |variable: &'static str, default: &str| -> Result<String, ConfigError> {
                    let name = get(variable).map_or_else(|| default.to_owned(), |name| name.trim().to_owned());
                    // AMQP short strings; RabbitMQ reserves the amq. prefix.
                    if name.len() > 255 || name.starts_with("amq.") {
                        return Err(ConfigError {
                            variable,
                            message: "must be at most 255 bytes and not start with \"amq.\"".into(),
                        });
                    }
                    Ok(name)
                };
                Some(BrokerSettings {
                    url,
                    exchange: name("AGORA_BROKER_EXCHANGE", DEFAULT_BROKER_EXCHANGE)?,
                    notifications_queue: name("AGORA_NOTIFICATIONS_QUEUE", "agora.notifications")?,
                })
            }
        };
        let notifications_consumer = match get("AGORA_NOTIFICATIONS_CONSUMER").as_deref().map(str::trim) {
            None | Some("outbox") => NotificationsConsumer::Outbox,
            Some("broker") if broker.is_some() => NotificationsConsumer::Broker,
            Some("broker") => {
                return Err(ConfigError {
                    variable: "AGORA_NOTIFICATIONS_CONSUMER",
                    message: "\"broker\" needs AGORA_BROKER_URL".into(),
                });
            }
            Some(other) => {
                return Err(ConfigError {
                    variable: "AGORA_NOTIFICATIONS_CONSUMER",
                    message: format!("expected \"outbox\" or \"broker\", got {other:?}"),
                });
            }
        };

        let notifications_service = match get("AGORA_NOTIFICATIONS_URL")
            .map(|url| url.trim().trim_end_matches('/').to_owned())
        {
            None => None,
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                return Err(ConfigError {
                    variable: "AGORA_NOTIFICATIONS_URL",
                    message: "must be an http:// URL, e.g. http://127.0.0.1:8081".into(),
                });
            }
            Some(_) if broker.is_none() => {
                return Err(ConfigError {
                    variable: "AGORA_NOTIFICATIONS_URL",
                    message: "needs AGORA_BROKER_URL: the service takes its events from the broker".into(),
                });
            }
            Some(_) if admin_token.is_none() => {
                return Err(ConfigError {
                    variable: "AGORA_NOTIFICATIONS_URL",
                    message: "needs AGORA_ADMIN_TOKEN, the same as the service's: agora calls its API with it".into(),
                });
            }
            Some(_) if notifications_consumer == NotificationsConsumer::Broker => {
                return Err(ConfigError {
                    variable: "AGORA_NOTIFICATIONS_CONSUMER",
                    message: "\"broker\" consumes in this process; with AGORA_NOTIFICATIONS_URL the service does"
                        .into(),
                });
            }
            Some(url) => Some(ServiceLink {
                url,
                timeout: Duration::from_millis(parse_u64("AGORA_NOTIFICATIONS_TIMEOUT_MS", 1_000)?.clamp(10, 60_000)),
            }),
        };
        let notifications_consumer =
            if notifications_service.is_some() { NotificationsConsumer::Service } else { notifications_consumer };
        let notifications_database_url = get("AGORA_NOTIFICATIONS_DATABASE_URL").map(|url| url.trim().to_owned());
        if let Some(url) = &notifications_database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError {
                variable: "AGORA_NOTIFICATIONS_DATABASE_URL",
                message: "must be a postgres:// URL, e.g. postgres://postgres@127.0.0.1:5432/agora_notifications"
                    .into(),
            });
        }

        let bind = get("AGORA_BIND").unwrap_or_else(|| "127.0.0.1:8080".into());
        let public_url = get("AGORA_PUBLIC_URL").unwrap_or_else(|| format!("http://{bind}"));
        let public_url = public_url.trim_end_matches('/').to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://"))
            || public_url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ConfigError {
                variable: "AGORA_PUBLIC_URL",
                message: "must be an http:// or https:// URL, e.g. https://shop.example.com".into(),
            });
        }
        let shop = ShopSettings {
            checkouts_per_minute: parse_u64("AGORA_SHOP_CHECKOUTS_PER_MINUTE", 20)?.clamp(1, 1_000_000) as u32,
            cart_idle: Duration::from_secs(86_400 * parse_u64("AGORA_SHOP_CART_IDLE_DAYS", 30)?.clamp(1, 3650)),
            availability_max_age: Duration::from_millis(
                parse_u64("AGORA_SHOP_AVAILABILITY_MAX_AGE_MS", 2_000)?.clamp(1, 3_600_000),
            ),
        };

        Ok(Config {
            direct_database_url: direct_database_url.unwrap_or_else(|| database_url.clone()),
            database_url,
            bind,
            admin_token,
            admin_password,
            currency,
            smtp_url,
            mail_from,
            seed,
            payment_timeout: Duration::from_secs(payment_timeout),
            pool: PoolSettings {
                max_size: pool_size as u32,
                acquire_timeout: Duration::from_millis(parse_u64("AGORA_DB_ACQUIRE_TIMEOUT_MS", 5000)?),
                statement_timeout: Duration::from_millis(parse_u64("AGORA_DB_STATEMENT_TIMEOUT_MS", 5_000)?.max(1)),
                lock_timeout: Duration::from_millis(parse_u64("AGORA_DB_LOCK_TIMEOUT_MS", 2_000)?.max(1)),
                idle_in_transaction_timeout: Duration::from_millis(
                    parse_u64("AGORA_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", 10_000)?.max(1),
                ),
                connect_timeout: Duration::from_secs(parse_u64("AGORA_DB_CONNECT_TIMEOUT_SECS", 2)?.max(2)),
                request_timeout: Duration::from_millis(parse_u64("AGORA_REQUEST_TIMEOUT_MS", 10_000)?.max(100)),
                module_roles,
                mode: pool_mode,
            },
            outbox: OutboxSettings {
                workers: workers.clamp(1, 32) as usize,
                max_attempts: max_attempts as i32,
                backoff_base: Duration::from_millis(parse_u64("AGORA_OUTBOX_BACKOFF_MS", 1000)?.max(1)),
                backoff_max: Duration::from_secs(parse_u64("AGORA_OUTBOX_BACKOFF_MAX_SECS", 600)?.max(1)),
                poll_interval: Duration::from_millis(parse_u64("AGORA_OUTBOX_POLL_MS", 5000)?.max(10)),
                run_in_server,
            },
            cookie_secure: matches!(get("AGORA_COOKIE_SECURE").as_deref(), Some("true" | "1" | "on")),
            trusted_proxies,
            public_url,
            shop,
            lock_sample_interval: Duration::from_millis(parse_u64("AGORA_LOCK_SAMPLE_MS", 500)?.max(10)),
            session: SessionLifetime {
                idle: Duration::from_secs(60 * session_idle_minutes),
                absolute: Duration::from_secs(3600 * session_max_hours),
            },
            replica,
            catalog_cache,
            experiment: ExperimentSettings {
                deadline: Duration::from_secs(experiment_deadline),
                max_runs: experiment_runs as usize,
            },
            broker,
            notifications_consumer,
            notifications_service,
            notifications_database_url,
        })
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config_from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_documented_table() {
        let config = config_from(&[]).unwrap();
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.bind, "127.0.0.1:8080");
        assert!(config.admin_token.is_none());
        assert_eq!(config.currency.code(), "EUR");
        assert_eq!(config.mail_from, "Agora <shop@agora.localhost>");
        assert_eq!(config.seed, SeedMode::Demo);
        assert_eq!(config.payment_timeout, Duration::from_secs(1800));
        assert_eq!(config.experiment, ExperimentSettings { deadline: Duration::from_secs(120), max_runs: 1 });
        assert!(config.broker.is_none());
        assert_eq!(config.notifications_consumer, NotificationsConsumer::Outbox);
    }

    #[test]
    fn a_broker_has_a_default_exchange_and_queue_and_the_broker_consumer_needs_one() {
        let config = config_from(&[
            ("AGORA_BROKER_URL", "amqp://agora:rabbit-secret@127.0.0.1:5672/%2f"),
            ("AGORA_NOTIFICATIONS_CONSUMER", "broker"),
        ])
        .unwrap();
        let broker = config.broker.as_ref().unwrap();
        assert_eq!(
            (broker.exchange.as_str(), broker.notifications_queue.as_str()),
            ("agora.events", "agora.notifications")
        );
        assert_eq!(config.notifications_consumer, NotificationsConsumer::Broker);
        assert!(!format!("{config:?}").contains("rabbit-secret"));
        let error = config_from(&[("AGORA_NOTIFICATIONS_CONSUMER", "broker")]).unwrap_err();
        assert!(error.to_string().starts_with("AGORA_NOTIFICATIONS_CONSUMER:"), "{error}");
        let error = config_from(&[("AGORA_BROKER_URL", "http://127.0.0.1:5672")]).unwrap_err();
        assert!(error.to_string().starts_with("AGORA_BROKER_URL:"), "{error}");
        let error =
            config_from(&[("AGORA_BROKER_URL", "amqp://agora:rabbit-secret@127.0.0.1:notaport/%2f")]).unwrap_err();
        assert!(error.to_string().starts_with("AGORA_BROKER_URL:"), "{error}");
        assert!(!error.to_string().contains("rabbit-secret"), "{error}");
        let error = config_from(&[("AGORA_BROKER_URL", "amqp://127.0.0.1"), ("AGORA_BROKER_EXCHANGE", "amq.topic")])
            .unwrap_err();
        assert!(error.to_string().starts_with("AGORA_BROKER_EXCHANGE:"), "{error}");
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let error = config_from(&[("AGORA_CURRENCY", "EURO")]).unwrap_err();
        assert!(error.to_string().starts_with("AGORA_CURRENCY:"), "{error}");
        let error = config_from(&[("AGORA_SEED", "lots")]).unwrap_err();
        assert!(error.to_string().starts_with("AGORA_SEED:"), "{error}");
        let error = config_from(&[("AGORA_PAYMENT_TIMEOUT_SECS", "soon")]).unwrap_err();
        assert!(error.to_string().starts_with("AGORA_PAYMENT_TIMEOUT_SECS:"), "{error}");
        let error = config_from(&[("AGORA_EXPERIMENT_MAX_RUNS", "0")]).unwrap_err();
        assert!(error.to_string().starts_with("AGORA_EXPERIMENT_MAX_RUNS:"), "{error}");
        let error = config_from(&[("AGORA_EXPERIMENT_DEADLINE_SECS", "0")]).unwrap_err();
        assert!(error.to_string().starts_with("AGORA_EXPERIMENT_DEADLINE_SECS:"), "{error}");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let config = config_from(&[
            ("DATABASE_URL", "postgres://agora:hunter22@db/agora"),
            ("AGORA_ADMIN_TOKEN", "a-very-secret-admin-token"),
            ("AGORA_ADMIN_PASSWORD", "correct horse"),
        ])
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter22"));
        assert!(!printed.contains("a-very-secret-admin-token"));
        assert!(!printed.contains("correct horse"));
        assert!(printed.contains("postgres://agora:***@db/agora"));
    }
}
