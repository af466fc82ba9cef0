//! The two topologies Agora runs in, so that what involves e-mails or the order view is tested
//! in both, as GitLab's CI runs its single-database and multi-database jobs:
//!
//! - **shared**: notifications in process, on the shared database (the default);
//! - **split**: notifications as its own service (`agora notifications-service`, in process here)
//!   on a second database, fed through RabbitMQ by the outbox relay, and the main process with
//!   `AGORA_NOTIFICATIONS_URL`. The shared database has had its e-mail tables dropped (`--contract`'s
//!   migration): were the main process to touch them, the test would fail loudly.
//!
//! [`Shop::spawn`] builds either from the same configuration, so the same test runs on both.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use agora::config::{Config, NotificationsConsumer, ServiceLink};
use agora::notifications::service::NotificationsService;
use diesel_migrations::MigrationHarness;

use crate::helpers::{AgoraProcess, TestApp, TestDatabase, TestResponse, eventually, test_config};
use crate::rabbit::{TestExchange, amqp_url};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    Shared,
    Split,
}

/// Writes each test of the block twice, as modules `name::shared` and `name::split`.
#[macro_export]
macro_rules! in_both_topologies {
    ($($(#[$meta:meta])* fn $name:ident($topology:ident) $body:block)*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                fn run($topology: $crate::topology::Topology) $body
                #[test]
                fn shared() {
                    run($crate::topology::Topology::Shared)
                }
                #[test]
                fn split() {
                    run($crate::topology::Topology::Split)
                }
            }
        )*
    };
}

/// Agora in either topology; dereferences to the main process. Dropped in order: Agora, the
/// service, the broker's names, the databases.
pub struct Shop {
    pub app: TestApp,
    pub split: Option<SplitParts>,
}

/// What the split topology adds: the service, its database, and the test's own exchange.
pub struct SplitParts {
    pub service: Option<ServiceProcess>,
    pub service_database: Arc<TestDatabase>,
    /// The configuration the service was started with, to start it again.
    pub service_config: Config,
    /// Held for its drop, which deletes the exchange and the service's queues.
    _exchange: TestExchange,
}

impl std::ops::Deref for Shop {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl Shop {
    /// Agora configured by `customize` (background work on, as e-mails need), in `topology`.
    pub fn spawn(topology: Topology, customize: impl FnOnce(&mut Config)) -> Shop {
        match topology {
            Topology::Shared => Shop { app: TestApp::spawn_with(customize), split: None },
            Topology::Split => Self::spawn_split(customize),
        }
    }

    fn spawn_split(customize: impl FnOnce(&mut Config)) -> Shop {
        let exchange = TestExchange::new();
        let shared = contracted_database();
        let service_database = Arc::new(TestDatabase::empty());
        // It holds no events: nothing there for the contract check to read.
        service_database.holds_hand_made_events();
        let mut config = test_config(&shared.url);
        customize(&mut config);
        exchange.relaying(&amqp_url())(&mut config);
        let mut service_config = config.clone();
        service_config.notifications_database_url = Some(service_database.url.clone());
        let service = ServiceProcess::start(service_config.clone());
        served_by(&mut config, &service.address);
        let app = TestApp::spawn_configured(shared, config);
        Shop {
            app,
            split: Some(SplitParts { service: Some(service), service_database, service_config, _exchange: exchange }),
        }
    }

    pub fn parts(&self) -> &SplitParts {
        self.split.as_ref().expect("a split shop")
    }

    /// How many e-mails were recorded, wherever notifications keeps them.
    pub fn emails_recorded(&self) -> i64 {
        match &self.split {
            None => self.app.count("SELECT count(*) FROM notifications"),
            Some(parts) => crate::helpers::count_in(&parts.service_database.url, "SELECT count(*) FROM notifications"),
        }
    }
}

/// A migrated shared database without notifications' tables (`--contract`'s migration): were
/// the main process to touch them, the test would fail loudly.
pub fn contracted_database() -> Arc<TestDatabase> {
    let shared = Arc::new(TestDatabase::migrated());
    shared
        .connect()
        .run_pending_migrations(agora::notifications::split::CONTRACT_MIGRATIONS)
        .expect("the contract migration applies");
    shared
}

/// The main process of the split topology: e-mails are the service's at `address`.
pub fn served_by(config: &mut Config, address: &str) {
    config.notifications_consumer = NotificationsConsumer::Service;
    config.notifications_service = Some(ServiceLink { url: address.to_owned(), timeout: Duration::from_millis(1_000) });
}

/// `agora notifications-service` in this process, on a port of its own, until dropped.
pub struct ServiceProcess {
    pub address: String,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServiceProcess {
    pub fn start(mut config: Config) -> ServiceProcess {
        config.bind = "127.0.0.1:0".to_owned();
        Self::start_on(config)
    }

    /// The service on the address `config.bind` names (again after a stop, say).
    pub fn start_on(config: Config) -> ServiceProcess {
        let (started, receive_start) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match NotificationsService::build(config).await {
                    Ok(service) => {
                        started.send(Ok((service.port(), service.handle()))).unwrap();
                        service.run_until(std::future::pending()).await.unwrap();
                    }
                    Err(error) => started.send(Err(error.to_string())).unwrap(),
                }
            })
        });
        let (port, handle) = receive_start
            .recv_timeout(Duration::from_secs(60))
            .expect("the service starts within a minute")
            .unwrap_or_else(|error| panic!("the notifications service failed to start: {error}"));
        let service = ServiceProcess { address: format!("http://127.0.0.1:{port}"), handle, thread: Some(thread) };
        // It serves at once and prepares its database meanwhile: ready means migrated and consuming.
        let readyz = format!("{}/readyz", service.address);
        eventually("the notifications service ready", Duration::from_secs(30), || {
            ureq::get(&readyz).call().is_ok_and(|response| response.status() == 200)
        });
        service
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        drop(self.handle.stop(true));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `agora notifications-service` as a process of its own (the real binary), for tests that stop
/// or kill it. Its port stays its own across restarts, as the main process's
/// `AGORA_NOTIFICATIONS_URL` names it; killed on drop.
pub struct ServiceBinary {
    pub port: u16,
    env: Vec<(&'static str, String)>,
    process: Option<AgoraProcess>,
}

impl ServiceBinary {
    /// Starts the service with `env` (its database, broker, SMTP server...) on a free port, and
    /// waits until it is ready (its database migrated).
    pub fn start(env: &[(&'static str, String)]) -> ServiceBinary {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut service = ServiceBinary { port, env: env.to_vec(), process: None };
        service.restart();
        service
    }

    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts it again, on its port and with its settings, and waits until it is ready.
    pub fn restart(&mut self) {
        self.restart_unready();
        eventually("the service ready", Duration::from_secs(30), || self.get("/readyz").status == 200);
    }

    /// Starts it again and waits only for `/healthz`, which answers before its database does.
    pub fn restart_unready(&mut self) {
        assert!(self.process.is_none(), "the service is running already");
        let env: Vec<(&str, &str)> = self.env.iter().map(|(name, value)| (*name, value.as_str())).collect();
        self.process = Some(AgoraProcess::spawn("notifications-service", self.port, &env));
    }

    /// SIGTERM, as a service manager stops it; returns how it exited and how long it took.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        self.take().terminate()
    }

    /// SIGKILL: the work in flight is cut off, no shutdown runs.
    pub fn kill(&mut self) {
        self.take().kill();
    }

    pub fn get(&self, path: &str) -> TestResponse {
        self.running().get(path)
    }

    pub fn admin_get(&self, path: &str) -> TestResponse {
        self.running().admin_get(path)
    }

    fn running(&self) -> &AgoraProcess {
        self.process.as_ref().expect("the service is running")
    }

    fn take(&mut self) -> AgoraProcess {
        self.process.take().expect("the service is running")
    }
}
