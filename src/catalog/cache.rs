//! The catalog cache: each agora process keeps the public product answers (a product by id, a
//! page of the product list) ready to send, body and validators included.
//!
//! This is the caching pattern of sharing data, with the database telling every process what to
//! forget: a trigger on `products` NOTIFYs `agora_catalog` from the transaction that changes a
//! product, so the message arrives when (and only if) it commits, whoever made the change; one on
//! `categories` tells every process to forget everything, since cached pages name categories. Each
//! process LISTENs and drops what changed; the process that made a change also drops it at once,
//! so that it reads its own writes. Entries also expire after a TTL, the safety net for a bug in
//! this scheme. While the listener is not connected the cache is bypassed: nothing tells it
//! what changed meanwhile.
//!
//! What decides money or stock never reads from here: checkout prices lines from `products`
//! inside its own transaction, and inventory and payments read their rows as they lock them.

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::HeaderValue;
use moka::notification::RemovalCause;
use moka::sync::Cache;

use crate::db::Lsn;
use crate::error::AppError;
use crate::http::validators::Representation;
use crate::ids::ProductId;

/// The channel the `products` triggers notify (migration `catalog_change_notifications`).
pub const CHANNEL: &str = "agora_catalog";

/// How often the listener reads its socket for notifications: the floor of the staleness window.
pub const LISTEN_POLL: Duration = Duration::from_millis(5);

#[derive(Clone, Debug)]
pub struct CacheSettings {
    /// Entries per kind (products, list pages); 0 turns the cache off.
    pub capacity: u64,
    /// An entry is dropped this long after it was loaded, whatever the notifications said.
    pub ttl: Duration,
    /// What `Cache-Control: max-age` allows clients and shared caches.
    pub client_max_age: Duration,
}

/// A page of the public product list: search text, category, cursor and page size, as asked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListKey {
    pub query: Option<String>,
    /// A category's slug.
    pub category: Option<String>,
    pub cursor: Option<String>,
    pub limit: i64,
}

struct Metrics {
    lookups: prometheus::IntCounterVec,
    invalidations: prometheus::IntCounterVec,
    evictions: prometheus::IntCounterVec,
    /// From the statement that changed a product to the moment this process dropped its copy.
    invalidation_delay: prometheus::Histogram,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    lookups: prometheus::IntCounterVec::new(
        prometheus::Opts::new("agora_catalog_cache_lookups_total", "Catalog cache lookups by kind and outcome"),
        &["kind", "outcome"],
    )
    .expect("valid metric"),
    invalidations: prometheus::IntCounterVec::new(
        prometheus::Opts::new(
            "agora_catalog_cache_invalidations_total",
            "Catalog changes that dropped cached entries, by where the news came from",
        ),
        &["source"],
    )
    .expect("valid metric"),
    evictions: prometheus::IntCounterVec::new(
        prometheus::Opts::new("agora_catalog_cache_evictions_total", "Entries dropped for room or age"),
        &["cause"],
    )
    .expect("valid metric"),
    invalidation_delay: prometheus::Histogram::with_opts(
        prometheus::HistogramOpts::new(
            "agora_catalog_cache_invalidation_delay_seconds",
            "From the statement that changed a product to this process dropping its cached copy",
        )
        .buckets(vec![0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0]),
    )
    .expect("valid metric"),
});

/// What changed in the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// New products: only list pages can differ.
    Added,
    Products(Vec<ProductId>),
    Everything,
}

impl Change {
    /// Reads a notification payload: `<microseconds since the epoch> <what>`.
    pub fn parse(payload: &str) -> Option<(Change, Option<u64>)> {
        let (micros, what) = payload.split_once(' ')?;
        let change = match what {
            "lists" => Change::Added,
            "*" => Change::Everything,
            ids => Change::Products(ids.split(',').map(|id| id.parse().ok()).collect::<Option<_>>()?),
        };
        Some((change, micros.parse().ok()))
    }
}

/// The figures the architecture page shows.
#[derive(Clone, Debug, Default)]
pub struct CacheFigures {
    pub enabled: bool,
    pub listening: bool,
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
    pub invalidations: u64,
    pub evictions: u64,
    /// Invalidation delay (from the changing statement to the drop here), p50 and p99 in ms.
    pub delay_ms: Option<(f64, f64)>,
    pub delay_samples: u64,
    pub ttl: Duration,
}

/// A kind's lookup counters, resolved once: a label lookup per request would cost a hash and a lock.
struct Lookups {
    hit: prometheus::IntCounter,
    miss: prometheus::IntCounter,
    bypass: prometheus::IntCounter,
}

impl Lookups {
    fn of(kind: &str) -> Lookups {
        let counter = |outcome: &str| METRICS.lookups.with_label_values(&[kind, outcome]);
        Lookups { hit: counter("hit"), miss: counter("miss"), bypass: counter("bypass") }
    }
}

pub struct CatalogCache {
    products: Cache<ProductId, Arc<Representation>>,
    product_lookups: Lookups,
    list_lookups: Lookups,
    lists: Cache<ListKey, Arc<Representation>>,
    enabled: bool,
    listening: AtomicBool,
    /// Bumped by every invalidation: a load that saw it change may hold an old value.
    epoch: AtomicU64,
    /// The primary's position at the last change: a replica must have replayed this far before
    /// a miss may read from it.
    read_after: AtomicU64,
    /// `Cache-Control` of every answer from here: how stale a client may let its copy get.
    pub cache_control: HeaderValue,
    ttl: Duration,
}

impl CatalogCache {
    pub fn new(settings: &CacheSettings) -> Arc<CatalogCache> {
        fn build<K: Hash + Eq + Send + Sync + 'static>(settings: &CacheSettings) -> Cache<K, Arc<Representation>> {
            Cache::builder()
                .max_capacity(settings.capacity.max(1))
                .time_to_live(settings.ttl)
                .eviction_listener(|_key, _value, cause| {
                    let cause = match cause {
                        RemovalCause::Expired => "expired",
                        RemovalCause::Size => "size",
                        RemovalCause::Explicit | RemovalCause::Replaced => return,
                    };
                    METRICS.evictions.with_label_values(&[cause]).inc();
                })
                .build()
        }
        Arc::new(CatalogCache {
            products: build(settings),
            product_lookups: Lookups::of("product"),
            list_lookups: Lookups::of("list"),
            lists: build(settings),
            enabled: settings.capacity > 0,
            listening: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            read_after: AtomicU64::new(0),
            cache_control: crate::http::validators::cache_control(settings.client_max_age),
            ttl: settings.ttl,
        })
    }

    /// Whether answers come from (and go into) the cache right now.
    fn active(&self) -> bool {
        self.enabled && self.listening.load(Ordering::Acquire)
    }

    /// The generation of the catalog as this process knows it: it changes with every change
    /// heard of. `None` while the cache is off or not listening: then nothing derived from the
    /// catalog may be kept. Views built elsewhere from catalog rows (the shop's pages) are kept
    /// only while the generation they were loaded in is current.
    pub fn generation(&self) -> Option<u64> {
        self.active().then(|| self.epoch.load(Ordering::SeqCst))
    }

    /// The product answer, from the cache or from `load` (given the position a replica must
    /// have replayed to serve it).
    pub async fn product<F>(&self, id: ProductId, load: impl FnOnce(Lsn) -> F) -> Result<Arc<Representation>, AppError>
    where
        F: Future<Output = Result<Representation, AppError>>,
    {
        self.get_or_load(&self.products, &self.product_lookups, id, load).await
    }

    pub async fn list<F>(&self, key: ListKey, load: impl FnOnce(Lsn) -> F) -> Result<Arc<Representation>, AppError>
    where
        F: Future<Output = Result<Representation, AppError>>,
    {
        self.get_or_load(&self.lists, &self.list_lookups, key, load).await
    }

    async fn get_or_load<K, F>(
        &self,
        cache: &Cache<K, Arc<Representation>>,
        lookups: &Lookups,
        key: K,
        load: impl FnOnce(Lsn) -> F,
    ) -> Result<Arc<Representation>, AppError>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        F: Future<Output = Result<Representation, AppError>>,
    {
        let active = self.active();
        if active && let Some(hit) = cache.get(&key) {
            lookups.hit.inc();
            return Ok(hit);
        }
        if active {
            lookups.miss.inc()
        } else {
            lookups.bypass.inc()
        }
        // Read before loading: a change that commits after this may not be in what we load.
        let epoch = self.epoch.load(Ordering::SeqCst);
        let loaded = Arc::new(load(self.read_after.load(Ordering::SeqCst)).await?);
        if active {
            cache.insert(key.clone(), loaded.clone());
            // An invalidation ran while loading: what was loaded may predate it.
            if self.epoch.load(Ordering::SeqCst) != epoch || !self.active() {
                cache.invalidate(&key);
            }
        }
        Ok(loaded)
    }

    /// Drops what `change` makes stale. `position` is the primary's position after the change
    /// (0 when unknown or without a replica).
    pub fn changed(&self, change: &Change, position: Lsn, source: &'static str) {
        self.read_after.fetch_max(position, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        match change {
            Change::Added => self.lists.invalidate_all(),
            Change::Products(ids) => {
                for id in ids {
                    self.products.invalidate(id);
                }
                self.lists.invalidate_all();
            }
            Change::Everything => self.forget_everything(),
        }
        METRICS.invalidations.with_label_values(&[source]).inc();
    }

    fn forget_everything(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.products.invalidate_all();
        self.lists.invalidate_all();
    }

    /// The listener is connected (`true`) or lost (`false`); either way, what is cached may have
    /// changed unseen.
    fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::SeqCst);
        self.forget_everything();
    }

    pub fn figures(&self) -> CacheFigures {
        let delay = &METRICS.invalidation_delay;
        CacheFigures {
            enabled: self.enabled,
            listening: self.listening.load(Ordering::Acquire),
            hits: self.product_lookups.hit.get() + self.list_lookups.hit.get(),
            misses: self.product_lookups.miss.get() + self.list_lookups.miss.get(),
            entries: self.products.entry_count() + self.lists.entry_count(),
            invalidations: ["local", "notified"]
                .iter()
                .map(|source| METRICS.invalidations.with_label_values(&[source]).get())
                .sum(),
            evictions: ["expired", "size"]
                .iter()
                .map(|cause| METRICS.evictions.with_label_values(&[cause]).get())
                .sum(),
            delay_ms: crate::kernel::measure::percentiles_ms(delay),
            delay_samples: delay.get_sample_count(),
            ttl: self.ttl,
        }
    }
}

/// The collectors for `/metrics`.
pub fn collectors() -> Vec<Box<dyn prometheus::core::Collector>> {
    vec![
        Box::new(METRICS.lookups.clone()),
        Box::new(METRICS.invalidations.clone()),
        Box::new(METRICS.evictions.clone()),
        Box::new(METRICS.invalidation_delay.clone()),
    ]
}

/// Listens for catalog changes committed by any process.
pub struct Invalidator {
    pub cache: Arc<CatalogCache>,
    /// Whether to ask the primary for its position on each change (only a replica needs it).
    pub track_position: bool,
}

impl crate::db::listen::Subscriber for Invalidator {
    fn connected(&mut self, conn: &mut diesel::PgConnection) {
        if self.track_position {
            // Changes missed while not listening are at most this far along.
            let position = crate::db::replica::current_position(conn).unwrap_or(Lsn::MAX);
            self.cache.read_after.store(position, Ordering::SeqCst);
        }
        self.cache.set_listening(true);
    }

    fn notified(&mut self, conn: &mut diesel::PgConnection, payloads: Vec<String>) {
        // Delivered after the commit, so the primary is now at or past each change's position.
        let position =
            if self.track_position { crate::db::replica::current_position(conn).unwrap_or(Lsn::MAX) } else { 0 };
        for payload in payloads {
            let Some((change, changed_at)) = Change::parse(&payload) else {
                log::warn!("unreadable catalog notification {payload:?}: dropping every cached entry");
                self.cache.changed(&Change::Everything, position, "notified");
                continue;
            };
            self.cache.changed(&change, position, "notified");
            if let Some(changed_at) = changed_at {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_micros() as u64);
                METRICS.invalidation_delay.observe(now.saturating_sub(changed_at) as f64 / 1e6);
            }
        }
    }

    fn lost(&mut self) {
        self.cache.set_listening(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_payloads_name_what_changed() {
        assert_eq!(Change::parse("1795905043580973 lists"), Some((Change::Added, Some(1795905043580973))));
        assert_eq!(Change::parse("17 *"), Some((Change::Everything, Some(17))));
        let id: ProductId = "67c42641-a32f-4c23-9b7a-bf04eae7e7a5".parse().unwrap();
        assert_eq!(
            Change::parse("17 67c42641-a32f-4c23-9b7a-bf04eae7e7a5,67c42641-a32f-4c23-9b7a-bf04eae7e7a5"),
            Some((Change::Products(vec![id, id]), Some(17)))
        );
        assert_eq!(Change::parse("17 not-an-id"), None);
    }
}
