//! `GET /metrics`: what an operator's Prometheus scrapes, in its text format (the `prometheus`
//! crate writes it). Behind the admin bearer token, as Prometheus sends it with
//! `authorization: {credentials: ...}`.
//!
//! HTTP requests are counted as they happen; everything else is read at scrape time, into the
//! fresh metrics of a registry made for the scrape (a counter is set by adding its total once),
//! from the counters agora keeps anyway (per-module database work, lock waits, the pool, the database's
//! health) and from the shared tables (the outbox backlog, e-mails by status), so that several
//! processes on one database report the same backlog.

use std::sync::LazyLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use prometheus::{
    CounterVec, Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::locks;
use crate::db::HealthState;
use crate::error::AppError;
use crate::http::admin_token::AdminToken;
use crate::http::state::AppState;
use crate::kernel::{Module, measure};

/// Requests by route pattern (`/api/products/:id`, never the raw path: ids would make a series
/// each), method and status, and their latency. Every label comes from a bounded set, since
/// anyone can send a request: a series never freed per made-up method or path would let a
/// client grow the scrape and the process's memory without end.
struct HttpMetrics {
    requests: IntCounterVec,
    latency: HistogramVec,
}

static HTTP: LazyLock<HttpMetrics> = LazyLock::new(|| HttpMetrics {
    requests: IntCounterVec::new(
        Opts::new("agora_http_requests_total", "HTTP requests answered, by route, method and status"),
        &["route", "method", "status"],
    )
    .expect("valid metric"),
    latency: HistogramVec::new(
        HistogramOpts::new(
            "agora_http_request_duration_seconds",
            "Time to answer an HTTP request, by route and method",
        )
        .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        &["route", "method"],
    )
    .expect("valid metric"),
});

/// Middleware for the whole application: counts every answer, those of other middleware too.
pub async fn record(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(request.method());
    let response = next.call(request).await?;
    let route =
        response.request().match_pattern().map_or_else(|| UNMATCHED.to_owned(), |pattern| route_label(&pattern));
    HTTP.requests.with_label_values(&[&route, method, response.status().as_str()]).inc();
    HTTP.latency.with_label_values(&[&route, method]).observe(started.elapsed().as_secs_f64());
    Ok(response)
}

/// The route label of a request that matched no route pattern.
const UNMATCHED: &str = "(unmatched)";

/// The methods of RFC 9110 and PATCH by name; any other token a client makes up, as one label.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "(other)",
    }
}

/// `/api/products/{id}` as `/api/products/:id`: braces are legal inside a quoted label value,
/// but several text-format parsers stop a label set at the first `}`.
fn route_label(pattern: &str) -> String {
    pattern.replace('{', ":").replace('}', "")
}

pub async fn scrape(_admin: AdminToken, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let registry = Registry::new();
    let register = |collector: Box<dyn prometheus::core::Collector>| {
        registry.register(collector).map_err(|error| AppError::internal(error.to_string()))
    };
    register(Box::new(HTTP.requests.clone()))?;
    register(Box::new(HTTP.latency.clone()))?;
    register(Box::new(crate::db::POOL_ACQUIRE_SECONDS.clone()))?;
    register(Box::new(crate::db::POOL_TIMEOUTS.clone()))?;
    if state.config.notifications_consumer == crate::config::NotificationsConsumer::Broker {
        for collector in crate::notifications::collectors() {
            register(collector)?;
        }
    }

    let pool = state.db.pool_state();
    let pool_connections = IntGaugeVec::new(
        Opts::new("agora_db_pool_connections", "Connections of this process's pool, by state"),
        &["state"],
    )
    .map_err(AppError::internal)?;
    pool_connections.with_label_values(&["idle"]).set(i64::from(pool.idle_connections));
    pool_connections.with_label_values(&["in_use"]).set(i64::from(pool.connections - pool.idle_connections));
    register(Box::new(pool_connections))?;
    let pool_max =
        IntGauge::new("agora_db_pool_max_connections", "Size limit of the pool").map_err(AppError::internal)?;
    pool_max.set(i64::from(state.config.pool.max_size));
    register(Box::new(pool_max))?;

    let health = state.db.health();
    let up = IntGauge::new("agora_db_up", "1 while the database answers, 0 while it is known down")
        .map_err(AppError::internal)?;
    let down_for = Gauge::new("agora_db_down_seconds", "How long the database has been down (0 while up)")
        .map_err(AppError::internal)?;
    match health.state() {
        HealthState::Up => up.set(1),
        HealthState::Down { for_ms, .. } => {
            up.set(0);
            down_for.set(for_ms as f64 / 1000.0);
        }
    }
    let outages = IntCounter::new("agora_db_outages_total", "Times this process has seen the database go down")
        .map_err(AppError::internal)?;
    outages.inc_by(health.outages());
    register(Box::new(up))?;
    register(Box::new(down_for))?;
    register(Box::new(outages))?;

    register_module_work(&registry)?;
    register_lock_waits(&registry)?;
    register_read_path(&registry, &state)?;
    register_relay(&registry, &state).await?;
    register_shared_tables(&registry, &state).await?;

    let mut text = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut text).map_err(AppError::internal)?;
    Ok(HttpResponse::Ok().insert_header((CONTENT_TYPE, prometheus::TEXT_FORMAT)).body(text))
}

/// The catalog cache and the replica: what served the reads.
fn register_read_path(registry: &Registry, state: &AppState) -> Result<(), AppError> {
    let register =
        |collector: Box<dyn prometheus::core::Collector>| registry.register(collector).map_err(AppError::internal);
    for collector in crate::catalog::cache::collectors() {
        register(collector)?;
    }
    let figures = state.catalog.figures();
    let entries = IntGauge::new("agora_catalog_cache_entries", "Entries in this process's catalog cache")
        .map_err(AppError::internal)?;
    entries.set(figures.entries as i64);
    register(Box::new(entries))?;
    let listening = IntGauge::new(
        "agora_catalog_cache_listening",
        "1 while the cache hears of catalog changes (and is used), 0 while it is bypassed",
    )
    .map_err(AppError::internal)?;
    listening.set(i64::from(figures.enabled && figures.listening));
    register(Box::new(listening))?;
    let Some(replica) = state.db.replica_status() else { return Ok(()) };
    register(Box::new(crate::db::replica::READS.clone()))?;
    register(Box::new(crate::db::replica::FALLBACKS.clone()))?;
    let in_use = IntGauge::new("agora_db_replica_in_use", "1 while reads may go to the replica, 0 while it is skipped")
        .map_err(AppError::internal)?;
    in_use.set(i64::from(replica.reason.is_none()));
    let lag = Gauge::new("agora_db_replica_lag_seconds", "How far the replica was behind the primary at the last look")
        .map_err(AppError::internal)?;
    lag.set(replica.lag_ms as f64 / 1000.0);
    register(Box::new(in_use))?;
    register(Box::new(lag))
}

/// The relay to the broker, when one is configured: what this process published and how the
/// broker answered, its link, and the relay's backlog (from the shared table, left out while the
/// database is down).
async fn register_relay(registry: &Registry, state: &AppState) -> Result<(), AppError> {
    if state.config.broker.is_none() {
        return Ok(());
    }
    let register =
        |collector: Box<dyn prometheus::core::Collector>| registry.register(collector).map_err(AppError::internal);
    for collector in crate::outbox::relay::metrics::collectors() {
        register(collector)?;
    }
    if let Some(broker) = &state.broker {
        let up = IntGauge::new(
            "agora_relay_broker_up",
            "1 while this process's relay is connected to the broker, 0 while it connects or reconnects",
        )
        .map_err(AppError::internal)?;
        up.set(i64::from(broker.is_connected()));
        register(Box::new(up))?;
    }
    if let Ok(pending) = state.db.run(Module::Outbox.op("relay_backlog"), crate::outbox::relay::backlog).await {
        let backlog =
            IntGauge::new("agora_relay_backlog", "Events the relay has yet to publish (pending relay deliveries)")
                .map_err(AppError::internal)?;
        backlog.set(pending);
        register(Box::new(backlog))?;
    }
    Ok(())
}

/// What `/api/metrics` shows per module, as counters.
fn register_module_work(registry: &Registry) -> Result<(), AppError> {
    let counter =
        |name: &str, help: &str| CounterVec::new(Opts::new(name, help), &["module"]).map_err(AppError::internal);
    let operations = counter("agora_module_operations_total", "Units of database work, by module")?;
    let failures = counter("agora_module_operation_failures_total", "Units of database work that failed, by module")?;
    let queries = counter("agora_module_queries_total", "SQL statements, by module")?;
    let query_seconds = counter("agora_module_query_seconds_total", "Time in SQL statements, by module")?;
    let operation_seconds =
        counter("agora_module_operation_seconds_total", "Time in units of database work, by module")?;
    for runtime in measure::module_snapshot() {
        let module = [runtime.module.as_str()];
        operations.with_label_values(&module).inc_by(runtime.operations as f64);
        failures.with_label_values(&module).inc_by(runtime.failures as f64);
        queries.with_label_values(&module).inc_by(runtime.queries as f64);
        query_seconds.with_label_values(&module).inc_by(runtime.query_time_ms / 1000.0);
        operation_seconds.with_label_values(&module).inc_by(runtime.operation_time_ms / 1000.0);
    }
    for metric in [operations, failures, queries, query_seconds, operation_seconds] {
        registry.register(Box::new(metric)).map_err(AppError::internal)?;
    }
    Ok(())
}

fn register_lock_waits(registry: &Registry) -> Result<(), AppError> {
    let labels = ["waiting", "blocking"];
    let samples = CounterVec::new(
        Opts::new("agora_lock_wait_samples_total", "Samples that caught one operation waiting for another's lock"),
        &labels,
    )
    .map_err(AppError::internal)?;
    let longest = GaugeVec::new(
        Opts::new("agora_lock_wait_max_seconds", "The longest lock wait seen between two operations"),
        &labels,
    )
    .map_err(AppError::internal)?;
    for wait in locks::summary() {
        let pair = [wait.waiting.as_str(), wait.blocking.as_str()];
        samples.with_label_values(&pair).inc_by(wait.samples as f64);
        longest.with_label_values(&pair).set(wait.max_wait_ms / 1000.0);
    }
    registry.register(Box::new(samples)).map_err(AppError::internal)?;
    registry.register(Box::new(longest)).map_err(AppError::internal)
}

/// The outbox backlog and e-mails by status; left out (not failing the scrape) while the
/// database is down, when `agora_db_up` says why.
async fn register_shared_tables(registry: &Registry, state: &AppState) -> Result<(), AppError> {
    let backlog = state.db.run(Module::Outbox.op("backlog"), crate::outbox::backlog).await;
    // With notifications in its service, the e-mails are counted there (its own /metrics).
    let emails = if state.mailroom.is_service() {
        Err(AppError::Unavailable("counted by the notifications service".into()))
    } else {
        state.db.run(Module::Notifications.op("count_emails"), crate::notifications::counts_by_status).await
    };
    if let Ok(backlog) = backlog {
        let deliveries = IntGaugeVec::new(
            Opts::new("agora_outbox_deliveries", "Event deliveries not completed, by status"),
            &["status"],
        )
        .map_err(AppError::internal)?;
        deliveries.with_label_values(&["pending"]).set(backlog.pending);
        deliveries.with_label_values(&["dead"]).set(backlog.dead);
        let oldest = Gauge::new(
            "agora_outbox_oldest_due_seconds",
            "How long the longest-waiting due delivery has waited (0 when none is due)",
        )
        .map_err(AppError::internal)?;
        let waited = backlog
            .oldest_due_since
            .map_or(0.0, |since| (chrono::Utc::now() - since).num_milliseconds().max(0) as f64 / 1000.0);
        oldest.set(waited);
        registry.register(Box::new(deliveries)).map_err(AppError::internal)?;
        registry.register(Box::new(oldest)).map_err(AppError::internal)?;
    }
    if let Ok(counts) = emails {
        let gauge = IntGaugeVec::new(
            Opts::new("agora_emails", "Customer e-mails, by status (sent, stored, failed...)"),
            &["status"],
        )
        .map_err(AppError::internal)?;
        for (status, count) in counts {
            gauge.with_label_values(&[status.as_str()]).set(count);
        }
        registry.register(Box::new(gauge)).map_err(AppError::internal)?;
    }
    Ok(())
}
