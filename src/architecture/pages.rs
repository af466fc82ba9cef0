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
    render(&ArchitecturePage {
        layout: admin.layout(Section::Architecture),
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
