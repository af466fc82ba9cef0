//! The notifications service's HTTP API: what the main process's order view and admin pages ask
//! of it, with the same token rules as Agora's admin API (`Authorization: Bearer
//! $AGORA_ADMIN_TOKEN`; without a token configured, the API is off), plus `/healthz`, `/readyz`
//! and `/metrics`.
//!
//! - `GET /api/orders/{order_id}/emails`: an order's e-mails, oldest first, without bodies.
//! - `GET /api/emails?order_id=&after=&limit=`: e-mails newest first, keyset pages.
//! - `GET /api/emails/search?status=&kind=&to=&sort=&direction=&page=`: the admin list's page.
//! - `GET /api/emails/{id}`: one e-mail, with its text and HTML.
//! - `POST /api/emails/{id}/resend` `{"status", "attempts"}`: resend a failed e-mail as seen.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use prometheus::{Encoder, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use serde::Deserialize;
use uuid::Uuid;

use super::super::{EmailKind, NotificationFilter, NotificationSort, NotificationStatus, SeenEmail};
use crate::config::{Config, NotificationsConsumer};
use crate::db::Db;
use crate::error::AppError;
use crate::http::admin_token::check_bearer;
use crate::ids::OrderId;
use crate::kernel::Module;

#[derive(Clone)]
pub struct ServiceState {
    pub db: Db,
    pub config: Arc<Config>,
    pub starting: Arc<Starting>,
}

/// Whether the service's database is prepared (migrated) yet, and if not, why.
#[derive(Default)]
pub struct Starting {
    prepared: std::sync::atomic::AtomicBool,
    reason: std::sync::Mutex<String>,
}

impl Starting {
    pub fn prepared(&self) {
        self.prepared.store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn waiting(&self, reason: String) {
        *self.reason.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = reason;
    }

    /// `Err(why)` until the database is prepared.
    fn check(&self) -> Result<(), String> {
        if self.prepared.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let reason = self.reason.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        Err(if reason.is_empty() { "preparing its database".to_owned() } else { reason })
    }
}

const READINESS_BUDGET: Duration = Duration::from_secs(2);
/// The most e-mails one keyset page gives.
const MAX_LIMIT: i64 = 100;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/api/orders/{order_id}/emails", web::get().to(order_emails))
        .route("/api/emails", web::get().to(list))
        .route("/api/emails/search", web::get().to(search))
        .route("/api/emails/{id}", web::get().to(one))
        .route("/api/emails/{id}/resend", web::post().to(resend))
        .default_service(web::to(|request: HttpRequest| async move {
            Err::<HttpResponse, _>(AppError::not_found(format!("Nothing exists at {}.", request.path())))
        }));
}

/// The admin token, as Agora's admin API checks it; then a 503 while the database is not prepared.
fn authorize(request: &HttpRequest, state: &ServiceState) -> Result<(), AppError> {
    check_bearer(request, state.config.admin_token.as_deref())?;
    state
        .starting
        .check()
        .map_err(|reason| AppError::Unavailable(format!("the notifications service is starting: {reason}")))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok", "service": "notifications"}))
}

/// Ready when its database answers; says whether it holds the e-mails of record (it consumes only then).
async fn readyz(state: web::Data<ServiceState>) -> HttpResponse {
    if let Err(reason) = state.starting.check() {
        return crate::http::health::unready(&format!("starting: {reason}"));
    }
    let db = state.db.clone();
    let check = web::block(move || {
        db.ping(READINESS_BUDGET - Duration::from_millis(500))?;
        db.run_blocking(Module::Notifications.op("holds_records"), super::holds_records)
    });
    match tokio::time::timeout(READINESS_BUDGET, check).await {
        Ok(Ok(Ok(holds))) => HttpResponse::Ok().json(serde_json::json!({
            "status": "ready",
            "service": "notifications",
            "holds_records": holds,
        })),
        Ok(Ok(Err(error))) => crate::http::health::unready(&crate::error::CauseChain(&error).to_string()),
        Ok(Err(blocking)) => crate::http::health::unready(&blocking.to_string()),
        Err(_elapsed) => {
            crate::http::health::unready("the notifications database did not answer within the readiness budget")
        }
    }
}

/// The consumer's counters and the e-mails by status, in Prometheus' text format.
async fn metrics(request: HttpRequest, state: web::Data<ServiceState>) -> Result<HttpResponse, AppError> {
    authorize(&request, &state)?;
    let registry = Registry::new();
    for collector in super::super::collectors() {
        registry.register(collector).map_err(AppError::internal)?;
    }
    registry.register(Box::new(crate::db::POOL_ACQUIRE_SECONDS.clone())).map_err(AppError::internal)?;
    let up = IntGauge::new("agora_db_up", "1 while the notifications database answers").map_err(AppError::internal)?;
    let counts = state.db.run(Module::Notifications.op("count_emails"), super::super::counts_by_status).await;
    up.set(i64::from(counts.is_ok()));
    registry.register(Box::new(up)).map_err(AppError::internal)?;
    if let Ok(counts) = counts {
        let emails = IntGaugeVec::new(Opts::new("agora_emails", "E-mails by status"), &["status"])
            .map_err(AppError::internal)?;
        for status in NotificationStatus::ALL {
            emails.with_label_values(&[status.as_str()]).set(0);
        }
        for (status, count) in counts {
            emails.with_label_values(&[status.as_str()]).set(count);
        }
        registry.register(Box::new(emails)).map_err(AppError::internal)?;
    }
    let mut body = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut body).map_err(AppError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(body))
}

async fn order_emails(
    request: HttpRequest,
    state: web::Data<ServiceState>,
    order_id: web::Path<OrderId>,
) -> Result<HttpResponse, AppError> {
    authorize(&request, &state)?;
    let order_id = order_id.into_inner();
    let emails = state
        .db
        .run(Module::Notifications.op("order_emails"), move |conn| super::super::of_order(conn, order_id))
        .await?;
    Ok(HttpResponse::Ok().json(emails))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    order_id: Option<OrderId>,
    /// The last e-mail of the previous page: `{created_at},{id}` as this API gives them.
    after_created: Option<DateTime<Utc>>,
    after_id: Option<Uuid>,
    limit: Option<i64>,
}

async fn list(
    request: HttpRequest,
    state: web::Data<ServiceState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    authorize(&request, &state)?;
    let ListQuery { order_id, after_created, after_id, limit } = query.into_inner();
    let limit = limit.unwrap_or(20);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::bad_query("limit", format!("must be between 1 and {MAX_LIMIT}")));
    }
    let after = match (after_created, after_id) {
        (Some(created), Some(id)) => Some((created, id)),
        (None, None) => None,
        _ => return Err(AppError::bad_query("after_created", "after_created and after_id go together")),
    };
    // One more than asked: the caller learns whether there is a next page.
    let rows = state
        .db
        .run(Module::Notifications.op("list_notifications"), move |conn| {
            super::super::list_rows(conn, order_id, after, limit + 1)
        })
        .await?;
    Ok(HttpResponse::Ok().json(rows))
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    status: Option<NotificationStatus>,
    kind: Option<EmailKind>,
    to: Option<String>,
    sort: Option<String>,
    direction: Option<String>,
    page: Option<i64>,
}

async fn search(
    request: HttpRequest,
    state: web::Data<ServiceState>,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, AppError> {
    authorize(&request, &state)?;
    let query = query.into_inner();
    let sort = match query.sort.as_deref() {
        None | Some("created") => NotificationSort::CreatedAt,
        Some("attempts") => NotificationSort::Attempts,
        Some(_) => return Err(AppError::bad_query("sort", "must be created or attempts")),
    };
    let descending = match query.direction.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(AppError::bad_query("direction", "must be asc or desc")),
    };
    let page = query.page.unwrap_or(1);
    if !(1..=1_000_000).contains(&page) {
        return Err(AppError::bad_query("page", "must be between 1 and 1000000"));
    }
    let recipient = query.to.filter(|to| !to.is_empty());
    if let Some(to) = &recipient {
        crate::input::SEARCH.check(to).map_err(|message| AppError::bad_query("to", message))?;
    }
    let filter = NotificationFilter { status: query.status, kind: query.kind, recipient };
    let page = state
        .db
        .run(Module::Notifications.op("list_notifications"), move |conn| {
            super::super::email_page(conn, &filter, sort, descending, page)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

async fn one(
    request: HttpRequest,
    state: web::Data<ServiceState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, AppError> {
    authorize(&request, &state)?;
    let id = id.into_inner();
    let email = state
        .db
        .run(Module::Notifications.op("get_notification"), move |conn| super::super::get_notification(conn, id))
        .await?;
    let email = email.ok_or_else(|| AppError::not_found(format!("No e-mail with id {id}.")))?;
    Ok(HttpResponse::Ok().json(email))
}

async fn resend(
    request: HttpRequest,
    state: web::Data<ServiceState>,
    id: web::Path<Uuid>,
    seen: web::Json<SeenEmail>,
) -> Result<HttpResponse, AppError> {
    authorize(&request, &state)?;
    let (id, seen) = (id.into_inner(), seen.into_inner());
    if seen.attempts < 0 {
        return Err(AppError::invalid("attempts", "must be a count, 0 or more"));
    }
    let outcome = state
        .db
        .run(Module::Notifications.op("resend_notification"), move |conn| {
            super::super::resend(conn, id, seen, NotificationsConsumer::Service)
        })
        .await?;
    let outcome = outcome.ok_or_else(|| AppError::not_found(format!("No e-mail with id {id}.")))?;
    Ok(HttpResponse::Ok().json(outcome))
}
