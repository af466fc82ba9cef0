//! Liveness and readiness, for load balancers and orchestrators.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use serde::Serialize;

use crate::error::AppError;
use crate::http::problems::Unavailable;
use crate::http::state::AppState;

/// How long readiness waits for the database before answering 503. Never a hang.
const READINESS_BUDGET: Duration = Duration::from_secs(3);

#[derive(Serialize, utoipa::ToSchema)]
pub struct Status {
    /// `ok` (process alive) or `ready` (database answers).
    status: &'static str,
}

/// Liveness: 200 while the process runs.
#[utoipa::path(tag = "health", responses((status = 200, description = "The process is running", body = Status)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// Readiness: 200 when the database answers, 503 otherwise (within a few seconds).
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "The database answers", body = Status),
        Unavailable,
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let db = state.db.clone();
    let ping = web::block(move || db.ping(READINESS_BUDGET - Duration::from_millis(500)));
    match tokio::time::timeout(READINESS_BUDGET, ping).await {
        Ok(Ok(Ok(()))) => Ok(HttpResponse::Ok().json(Status { status: "ready" })),
        Ok(Ok(Err(error))) => Err(AppError::Unavailable(format!("readiness check failed: {error}"))),
        Ok(Err(blocking)) => Err(AppError::internal(blocking)),
        Err(_elapsed) => Err(AppError::Unavailable("readiness check timed out".into())),
    }
}
