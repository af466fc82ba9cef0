//! `/admin/architecture`: the coupling, declared and derived from the code at build time, and
//! measured at run time.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::api::{Metrics, collect};
use super::coupling::{self, Matrix, TableDependents, Violation};
use crate::admin::page::{Layout, PageError, Section, render};
use crate::admin::session::Admin;
use crate::catalog::cache::CacheFigures;
use crate::db::ReplicaStatus;
use crate::http::state::AppState;
use crate::kernel::Module;
use crate::outbox::relay::BrokerStatus;
use crate::outbox::relay::metrics::RelayFigures;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/architecture").route(web::get().to(show)));
}

#[derive(Template)]
#[template(path = "architecture/templates/architecture.html")]
struct ArchitecturePage {
    layout: Layout,
    violations: Vec<Violation>,
    matrix: Matrix,
    reasons: Vec<(String, String, &'static str, String)>,
    dependency_violations: Vec<Violation>,
    /// (module, module it may call, why)
    dependencies: Vec<(&'static str, &'static str, &'static str)>,
    diagram: String,
    dependents: Vec<TableDependents>,
    metrics: Metrics,
    cache: CacheFigures,
    replica: Option<ReplicaFigures>,
    relay: Option<RelaySection>,
    topology: Topology,
}

/// Which module runs in which process, on which database, connected by what: read from this
/// process's configuration, the move's record and, when split, the service's own answer.
struct Topology {
    processes: Vec<ProcessRow>,
    /// Where `agora split notifications` left the move, if one was made.
    moved: Option<String>,
}

struct ProcessRow {
    process: String,
    modules: &'static str,
    database: String,
    connections: Vec<String>,
}

impl Topology {
    async fn of(state: &AppState) -> Topology {
        let config = &state.config;
        let database = crate::db::split_database_url(&config.database_url)
            .map(|(_, name)| format!("shared: {name}"))
            .unwrap_or_else(|_| "shared".to_owned());
        let exchange = config.broker.as_ref().map(|broker| broker.exchange.clone());
        let mut processes = Vec::new();
        let mut main = ProcessRow {
            process: "agora serve (this process)".to_owned(),
            modules: "catalog, inventory, orders, payments, outbox, admin",
            database: database.clone(),
            connections: Vec::new(),
        };
        if let Some(exchange) = &exchange {
            main.connections.push(format!("publishes every event to the RabbitMQ exchange {exchange} (outbox relay)"));
        }
        match (&config.notifications_service, config.notifications_consumer) {
            (Some(link), _) => {
                main.connections.push(format!(
                    "asks the notifications service over HTTP for e-mails (order view, e-mail pages), {} ms timeout",
                    link.timeout.as_millis()
                ));
                let answer = match &state.mailroom {
                    crate::notifications::Mailroom::Service(remote) => {
                        let remote = remote.clone();
                        web::block(move || remote.readiness()).await.map_err(|error| error.to_string()).and_then(|r| r)
                    }
                    crate::notifications::Mailroom::Here { .. } => Err("not configured".to_owned()),
                };
                let queue =
                    config.broker.as_ref().map_or_else(String::new, |broker| broker.notifications_queue.clone());
                processes.push(main);
                processes.push(ProcessRow {
                    process: format!("agora notifications-service at {}", link.url),
                    modules: "notifications",
                    database: match answer {
                        Ok(true) => "its own (AGORA_NOTIFICATIONS_DATABASE_URL): ready, holds the e-mails".to_owned(),
                        Ok(false) => "its own: ready, but the shared database holds the e-mails (a move under way or rolled back)".to_owned(),
                        Err(reason) => format!("its own: not answering ({reason})"),
                    },
                    connections: vec![
                        format!("consumes the RabbitMQ queue {queue}, bound to the e-mail events"),
                        "reads no table of another module; no query or transaction spans both databases".to_owned(),
                    ],
                });
            }
            (None, consumer) => {
                main.modules = "catalog, inventory, orders, payments, notifications, outbox, admin";
                main.connections.push(match consumer {
                    crate::config::NotificationsConsumer::Broker => {
                        "notifications consumes its RabbitMQ queue in this process, on the shared database".to_owned()
                    }
                    _ => "notifications writes e-mails in the outbox's transactions, on the shared database".to_owned(),
                });
                processes.push(main);
            }
        }
        let moved = state
            .db
            .run(Module::Notifications.op("move_state"), crate::notifications::split::state)
            .await
            .ok()
            .flatten()
            .map(|moved| moved.describe());
        Topology { processes, moved }
    }
}

/// The relay to the broker, when one is configured.
struct RelaySection {
    exchange: String,
    /// `None` when this process does not relay (`AGORA_BACKGROUND=off`: a worker does).
    link: Option<BrokerStatus>,
    figures: RelayFigures,
    /// `None` when the database did not answer.
    backlog: Option<i64>,
}

impl RelaySection {
    fn link_text(&self) -> String {
        match &self.link {
            None => "not relayed by this process (its background work is off; an agora worker relays)".to_owned(),
            Some(link) => match (link.state, &link.reason) {
                ("down", Some(reason)) => format!("down since {} UTC: {reason}", link.since.format("%H:%M:%S")),
                (state, _) => format!("{state} since {} UTC", link.since.format("%H:%M:%S")),
            },
        }
    }

    fn backlog_text(&self) -> String {
        match self.backlog {
            None => "unknown (the database did not answer)".to_owned(),
            Some(1) => "1 event waiting to be published".to_owned(),
            Some(count) => format!("{} events waiting to be published", crate::money::grouped(count)),
        }
    }
}

struct ReplicaFigures {
    status: ReplicaStatus,
    replica_reads: u64,
    primary_reads: u64,
    fallbacks: u64,
}

impl ArchitecturePage {
    fn hit_ratio(&self) -> String {
        percent(self.cache.hits, self.cache.hits + self.cache.misses)
    }

    fn replica_share(&self) -> String {
        self.replica.as_ref().map_or_else(String::new, |replica| {
            percent(replica.replica_reads, replica.replica_reads + replica.primary_reads)
        })
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 { "–".to_owned() } else { format!("{:.1} %", part as f64 * 100.0 / whole as f64) }
}

impl ArchitecturePage {
    fn owner_name(&self, dependents: &TableDependents) -> &'static str {
        dependents.owner.map_or("nobody", |module| module.name())
    }
}

async fn show(state: web::Data<AppState>, admin: Admin) -> Result<HttpResponse, PageError> {
    let declarations = coupling::declarations();
    let schema_tables: Vec<&str> = super::schema_map::tables().iter().map(|table| table.name).collect();
    let scans = coupling::scanned();
    let violations = coupling::check(&declarations, &scans, &schema_tables);
    let dependency_declarations = coupling::dependency_declarations();
    let dependency_violations = coupling::check_dependencies(&dependency_declarations, &scans);
    let dependencies = dependency_declarations
        .iter()
        .flat_map(|(module, calls)| calls.iter().map(|call| (module.name(), call.module.name(), call.reason)))
        .collect();
    let mut reasons = Vec::new();
    for declaration in &declarations {
        for (uses, access) in [(declaration.reads, "reads"), (declaration.writes, "writes")] {
            for used in uses {
                reasons.push((
                    declaration.module.name().to_owned(),
                    used.table.to_owned(),
                    access,
                    used.reason.to_owned(),
                ));
            }
        }
    }
    let relay = match &state.config.broker {
        None => None,
        Some(broker) => Some(RelaySection {
            exchange: broker.exchange.clone(),
            link: state.broker.as_ref().map(|health| health.status()),
            figures: crate::outbox::relay::metrics::figures(),
            backlog: state.db.run(Module::Outbox.op("relay_backlog"), crate::outbox::relay::backlog).await.ok(),
        }),
    };
    let topology = Topology::of(&state).await;
    render(&ArchitecturePage {
        layout: admin.layout(Section::Architecture),
        topology,
        relay,
        violations,
        matrix: coupling::matrix(),
        reasons,
        dependency_violations,
        dependencies,
        diagram: super::diagram::svg(&declarations, &dependency_declarations),
        dependents: coupling::dependents(),
        metrics: collect(&state).await,
        cache: state.catalog.figures(),
        replica: state.db.replica_status().map(|status| {
            let (replica_reads, primary_reads, fallbacks) = crate::db::replica::read_counts();
            ReplicaFigures { status, replica_reads, primary_reads, fallbacks }
        }),
    })
}
