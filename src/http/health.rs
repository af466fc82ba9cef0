//! Liveness and readiness, for load balancers and orchestrators.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use serde::Serialize;

use crate::error::AppError;
use crate::http::problems::Unavailable;
use crate::http::state::AppState;

/// How long readiness waits for the database before answering 503. Never a hang.
const READINESS_BUDGET: Duration = Duration::from_secs(3);
/// With no pooled connection idle, work that succeeded this recently stands for a ping.
const BUSY_EVIDENCE: Duration = Duration::from_secs(1);

#[derive(Serialize, utoipa::ToSchema)]
pub struct Status {
    /// `ok` (process alive) or `ready` (database answers).
    status: &'static str,
    /// With `AGORA_REPLICA_URL`: whether reads go to the replica, and if not, why. A skipped
    /// replica does not make the process unready: its reads go to the primary.
    #[serde(skip_serializing_if = "Option::is_none")]
    replica: Option<crate::db::ReplicaStatus>,
    /// With `AGORA_BROKER_URL`, in a process that relays events: the link to the broker. A broker
    /// that is down does not make the process unready: events wait in the outbox, and checkout,
    /// payments and the pages never talk to the broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    broker: Option<crate::outbox::relay::BrokerStatus>,
}

/// Liveness: 200 while the process runs.
#[utoipa::path(tag = "health", responses((status = 200, description = "The process is running", body = Status)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok", replica: None, broker: None })
}

/// Readiness: 200 when the database answers, 503 otherwise (within a few seconds). The replica and
/// the broker are reported, never waited for.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "The database answers", body = Status),
        Unavailable,
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let ready = || {
        HttpResponse::Ok().json(Status {
            status: "ready",
            replica: state.db.replica_status(),
            broker: state.broker.as_ref().map(|broker| broker.status()),
        })
    };
    // Under load every pooled connection is busy, and a ping would queue behind the requests for
    // one, long enough for a load balancer to give up on a process that serves well. The work
    // those connections just finished shows that the database answers.
    if state.db.pool_state().idle_connections == 0 && state.db.health().answered_within(BUSY_EVIDENCE) {
        return ready();
    }
    let db = state.db.clone();
    let ping = web::block(move || db.ping(READINESS_BUDGET - Duration::from_millis(500)));
    let reason = match tokio::time::timeout(READINESS_BUDGET, ping).await {
        Ok(Ok(Ok(()))) => return ready(),
        Ok(Ok(Err(AppError::Unavailable(reason)))) => reason,
        Ok(Ok(Err(error))) => format!("readiness check failed: {}", crate::error::CauseChain(&error)),
        Ok(Err(blocking)) => format!("readiness check failed: {blocking}"),
        Err(_elapsed) => "the database did not answer within the readiness budget".to_owned(),
    };
    unready(&reason)
}

/// 503 problem+json naming why the process is not ready (a load balancer's log shows it).
pub fn unready(reason: &str) -> HttpResponse {
    let mut problem = AppError::Unavailable(reason.to_owned()).problem_json();
    problem["reason"] = reason.into();
    HttpResponse::ServiceUnavailable()
        .content_type("application/problem+json")
        .insert_header(("Retry-After", crate::error::RETRY_AFTER_SECONDS.to_string()))
        .body(problem.to_string())
}
