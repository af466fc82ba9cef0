//! `GET /api/metrics`: the runtime evidence of the coupling, as JSON.

use std::collections::BTreeMap;

use actix_web::{get, web};
use serde::Serialize;

use super::locks::{self, LockWait};
use super::statements::RoleStatements;
use crate::error::AppError;
use crate::http::admin_token::AdminToken;
use crate::http::problems::Unauthorized;
use crate::http::state::AppState;
use crate::kernel::measure::{self, AccessDenial, ModuleRuntime, OperationRuntime};

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(metrics);
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OperationMetrics {
    #[serde(flatten)]
    pub runtime: OperationRuntime,
    /// The tables the operation touched, grouped by the module that owns them.
    pub tables_by_owner: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PoolMetrics {
    pub connections: u32,
    pub idle: u32,
}

/// Counters since this process started.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Metrics {
    /// Database work per module: operations (units of work through `Db::run`), queries, time.
    pub modules: Vec<ModuleRuntime>,
    pub operations: Vec<OperationMetrics>,
    /// Sessions seen waiting for a lock held by another, by (waiting, blocking) operation.
    pub lock_waits: Vec<LockWait>,
    pub pool: PoolMetrics,
    pub enforcement: Enforcement,
}

/// Whether PostgreSQL enforces the module-to-table map, and what it refused.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Enforcement {
    /// Each module's work runs as its own role (`AGORA_DB_ROLES`).
    pub module_roles: bool,
    /// Accesses PostgreSQL refused a module's role since this process started.
    pub denials: Vec<AccessDenial>,
    /// `pg_stat_statements` per module role, where the server collects it (null otherwise).
    pub statements_by_role: Option<Vec<RoleStatements>>,
}

pub async fn collect(state: &AppState) -> Metrics {
    let pool = state.db.pool_state();
    let db = state.db.clone();
    // Statistics are a nice-to-have on this page: a failure leaves them out rather than failing it.
    let statements_by_role = web::block(move || {
        let mut conn = db.get().ok()?;
        super::statements::by_role(&mut conn).ok().flatten()
    })
    .await
    .ok()
    .flatten();
    Metrics {
        modules: measure::module_snapshot(),
        operations: measure::operation_snapshot()
            .into_iter()
            .map(|runtime| {
                let mut tables_by_owner: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for table in &runtime.tables {
                    let owner = super::coupling::owner_of(table).map_or("(none)", |module| module.name());
                    tables_by_owner.entry(owner.to_owned()).or_default().push(table.clone());
                }
                OperationMetrics { runtime, tables_by_owner }
            })
            .collect(),
        lock_waits: locks::summary(),
        pool: PoolMetrics { connections: pool.connections, idle: pool.idle_connections },
        enforcement: Enforcement {
            module_roles: state.db.enforces_module_roles(),
            denials: measure::access_denials(),
            statements_by_role,
        },
    }
}

/// Database work per module and per operation, the tables each operation touched, and lock
/// waits between modules' transactions.
#[utoipa::path(
    tag = "architecture",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Counters since the process started", body = Metrics),
        Unauthorized,
    )
)]
#[get("/metrics")]
pub async fn metrics(_admin: AdminToken, state: web::Data<AppState>) -> Result<web::Json<Metrics>, AppError> {
    Ok(web::Json(collect(&state).await))
}
