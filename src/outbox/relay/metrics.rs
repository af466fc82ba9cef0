//! What the relay counts, for `/metrics` and the architecture page. Process-wide, as the relay's
//! work is: with several processes, Prometheus sums them.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntCounter};

struct RelayMetrics {
    published: IntCounter,
    confirmed: IntCounter,
    nacked: IntCounter,
    returned: IntCounter,
    /// From the event's `created_at` (its transaction's start, which is at most that
    /// transaction's length before its commit) to the broker's confirm.
    lag: Histogram,
}

static METRICS: LazyLock<RelayMetrics> = LazyLock::new(|| {
    let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
    RelayMetrics {
        published: counter("agora_relay_messages_published_total", "Events the relay handed to the broker"),
        confirmed: counter(
            "agora_relay_messages_confirmed_total",
            "Messages the broker confirmed, routed to at least one queue (their deliveries complete)",
        ),
        nacked: counter("agora_relay_messages_nacked_total", "Messages the broker refused (nack); they are retried"),
        returned: counter(
            "agora_relay_messages_returned_total",
            "Messages returned as unroutable (no queue bound for their routing key); they are retried",
        ),
        lag: Histogram::with_opts(
            HistogramOpts::new(
                "agora_relay_lag_seconds",
                "From an event's commit to the broker's confirm of its message",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0]),
        )
        .expect("valid metric"),
    }
});

pub(super) fn published(count: u64) {
    METRICS.published.inc_by(count);
}

pub(super) fn confirmed(lag_seconds: f64) {
    METRICS.confirmed.inc();
    METRICS.lag.observe(lag_seconds.max(0.0));
}

pub(super) fn nacked() {
    METRICS.nacked.inc();
}

pub(super) fn returned() {
    METRICS.returned.inc();
}

/// The collectors for `/metrics`.
pub fn collectors() -> Vec<Box<dyn prometheus::core::Collector>> {
    vec![
        Box::new(METRICS.published.clone()),
        Box::new(METRICS.confirmed.clone()),
        Box::new(METRICS.nacked.clone()),
        Box::new(METRICS.returned.clone()),
        Box::new(METRICS.lag.clone()),
    ]
}

/// The figures the architecture page shows.
#[derive(Clone, Debug, Default)]
pub struct RelayFigures {
    pub published: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub returned: u64,
    /// Commit to confirm, p50 and p99 in ms (upper bounds of the histogram's buckets).
    pub lag_ms: Option<(f64, f64)>,
}

pub fn figures() -> RelayFigures {
    RelayFigures {
        published: METRICS.published.get(),
        confirmed: METRICS.confirmed.get(),
        nacked: METRICS.nacked.get(),
        returned: METRICS.returned.get(),
        lag_ms: crate::kernel::measure::percentiles_ms(&METRICS.lag),
    }
}
