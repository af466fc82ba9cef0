//! How much database work each module does, and which tables each named operation actually
//! touched: the runtime evidence of the coupling.
//!
//! [`crate::db::Db::run`] wraps every unit of work in [`measure`], which marks the current thread
//! with the operation; a diesel [`Instrumentation`] installed on every pooled connection times each
//! query and notes the tables named in its SQL. Nothing here adds a round trip to the database.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use diesel::connection::{Instrumentation, InstrumentationEvent};

use super::{Module, Operation};

struct ModuleCounters {
    operations: AtomicU64,
    failures: AtomicU64,
    operation_micros: AtomicU64,
    queries: AtomicU64,
    query_micros: AtomicU64,
}

impl ModuleCounters {
    const fn new() -> Self {
        ModuleCounters {
            operations: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            operation_micros: AtomicU64::new(0),
            queries: AtomicU64::new(0),
            query_micros: AtomicU64::new(0),
        }
    }
}

static MODULE_COUNTERS: [ModuleCounters; Module::ALL.len()] = [const { ModuleCounters::new() }; Module::ALL.len()];

#[derive(Default)]
struct OperationStats {
    count: u64,
    failures: u64,
    queries: u64,
    total_micros: u64,
    max_micros: u64,
    tables: BTreeSet<&'static str>,
}

fn operation_stats() -> &'static Mutex<BTreeMap<Operation, OperationStats>> {
    static STATS: OnceLock<Mutex<BTreeMap<Operation, OperationStats>>> = OnceLock::new();
    STATS.get_or_init(Default::default)
}

/// What the current thread is doing for which operation.
struct Current {
    operation: Operation,
    queries: u64,
    tables: BTreeSet<&'static str>,
    /// Whether to read table names out of this run's SQL (see [`samples_tables`]).
    sample_tables: bool,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
    static RUNS: RefCell<HashMap<Operation, u64>> = RefCell::new(HashMap::new());
}

/// The tables an operation touches hardly change from one run to the next, while rendering SQL
/// text costs time inside transactions that may hold hot locks. So table names are read from the
/// first runs of each operation on each thread and from every 64th run after that; counts and
/// timings cover every run.
fn samples_tables(operation: Operation) -> bool {
    RUNS.with(|runs| {
        let mut runs = runs.borrow_mut();
        let run = runs.entry(operation).or_insert(0);
        *run += 1;
        *run <= 32 || *run % 64 == 0
    })
}

/// Runs `work` as `operation`, counting it and the queries it issues.
pub fn measure<T, E>(operation: Operation, work: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let outermost = CURRENT.with(|current| {
        let mut current = current.borrow_mut();
        if current.is_some() {
            return false;
        }
        *current =
            Some(Current { operation, queries: 0, tables: BTreeSet::new(), sample_tables: samples_tables(operation) });
        true
    });
    if !outermost {
        return work();
    }
    let started = Instant::now();
    let result = work();
    let micros = started.elapsed().as_micros() as u64;
    let finished = CURRENT.with(|current| current.borrow_mut().take());
    let counters = &MODULE_COUNTERS[operation.module.index()];
    counters.operations.fetch_add(1, Ordering::Relaxed);
    counters.operation_micros.fetch_add(micros, Ordering::Relaxed);
    if result.is_err() {
        counters.failures.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(finished) = finished {
        let mut stats = operation_stats().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = stats.entry(operation).or_default();
        entry.count += 1;
        entry.failures += u64::from(result.is_err());
        entry.queries += finished.queries;
        entry.total_micros += micros;
        entry.max_micros = entry.max_micros.max(micros);
        entry.tables.extend(finished.tables);
    }
    result
}

/// Which operation each of this process's database sessions (by backend pid) last worked for,
/// so that a lock wait seen in `pg_stat_activity` can be put down to a module.
fn backends() -> &'static Mutex<HashMap<i32, Operation>> {
    static BACKENDS: OnceLock<Mutex<HashMap<i32, Operation>>> = OnceLock::new();
    BACKENDS.get_or_init(Default::default)
}

/// The operation this process last ran on the database session `pid`, if it is ours.
pub fn operation_of_backend(pid: i32) -> Option<Operation> {
    backends().lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&pid).copied()
}

/// Installed on every pooled connection: times queries and notes the tables they name.
#[derive(Default)]
pub struct QueryInstrumentation {
    query_started: Option<Instant>,
    backend_pid: Option<i32>,
    last_operation: Option<Operation>,
}

impl QueryInstrumentation {
    pub fn for_backend(pid: i32) -> Self {
        QueryInstrumentation { backend_pid: Some(pid), ..Default::default() }
    }

    /// Records the session's current operation, touching the shared map only when it changes.
    fn note_operation(&mut self) {
        let Some(pid) = self.backend_pid else { return };
        let current = CURRENT.with(|current| current.borrow().as_ref().map(|current| current.operation));
        if let Some(operation) = current
            && self.last_operation != Some(operation)
        {
            self.last_operation = Some(operation);
            backends().lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(pid, operation);
        }
    }
}

impl Drop for QueryInstrumentation {
    fn drop(&mut self) {
        if let Some(pid) = self.backend_pid {
            backends().lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&pid);
        }
    }
}

impl Instrumentation for QueryInstrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                self.note_operation();
                if let Some(module) = super::roles::handed_over() {
                    // Only the transaction's end may follow a last call; anything else would run
                    // with the privileges of the module the transaction was handed to.
                    let sql = query.to_string();
                    let keyword = sql.split_whitespace().next().unwrap_or_default().to_uppercase();
                    if !matches!(keyword.as_str(), "COMMIT" | "ROLLBACK" | "RELEASE" | "SET") {
                        log::error!(
                            "a statement ran after the transaction was handed to {module} by a last call, as {}: {sql}",
                            module.role()
                        );
                    }
                }
                self.query_started = Some(Instant::now());
            }
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                if let Some(denial) =
                    error.and_then(|error| AccessDenial::from_error(&error.to_string(), &query.to_string()))
                {
                    denial.record();
                }
                let micros = self.query_started.take().map_or(0, |started| started.elapsed().as_micros() as u64);
                CURRENT.with(|current| {
                    let mut current = current.borrow_mut();
                    let Some(current) = current.as_mut() else { return };
                    let counters = &MODULE_COUNTERS[current.operation.module.index()];
                    counters.queries.fetch_add(1, Ordering::Relaxed);
                    counters.query_micros.fetch_add(micros, Ordering::Relaxed);
                    current.queries += 1;
                    if current.sample_tables {
                        let sql = query.to_string();
                        let sql = sql.split_once("-- binds:").map_or(sql.as_str(), |(sql, _)| sql);
                        current.tables.extend(tables_named_in(sql));
                    }
                });
            }
            InstrumentationEvent::CommitTransaction { depth, .. } => super::roles::transaction_ended(depth.get(), true),
            InstrumentationEvent::RollbackTransaction { depth, .. } => {
                super::roles::transaction_ended(depth.get(), false)
            }
            _ => {}
        }
    }
}

/// The table names of `src/schema.rs`, read from the generated file itself so they never drift:
/// each `diesel::table!` block opens with the table's name.
pub fn schema_tables() -> &'static BTreeSet<&'static str> {
    static TABLES: OnceLock<BTreeSet<&'static str>> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut lines = include_str!("../schema.rs").lines().map(str::trim);
        let mut tables = BTreeSet::new();
        while let Some(line) = lines.next() {
            if line.starts_with("diesel::table!") {
                let name = lines.find(|line| !(line.is_empty() || line.starts_with("//") || line.starts_with('#')));
                tables.extend(name.and_then(|line| line.split_whitespace().next()));
            }
        }
        tables
    })
}

/// The schema tables an SQL text names, quoted (as diesel writes them) or not.
pub fn tables_named_in(sql: &str) -> impl Iterator<Item = &'static str> + '_ {
    let tables = schema_tables();
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter_map(move |word| tables.get(word).copied())
}

#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ModuleRuntime {
    pub module: String,
    pub operations: u64,
    pub failures: u64,
    pub operation_time_ms: f64,
    pub queries: u64,
    pub query_time_ms: f64,
}

#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OperationRuntime {
    pub operation: String,
    pub module: String,
    pub count: u64,
    pub failures: u64,
    pub queries: u64,
    pub mean_ms: f64,
    pub max_ms: f64,
    /// Every table the operation's queries named (read from a sample of its runs).
    pub tables: Vec<String>,
}

/// Counters since this process started.
pub fn module_snapshot() -> Vec<ModuleRuntime> {
    Module::ALL
        .iter()
        .map(|module| {
            let counters = &MODULE_COUNTERS[module.index()];
            ModuleRuntime {
                module: module.name().to_owned(),
                operations: counters.operations.load(Ordering::Relaxed),
                failures: counters.failures.load(Ordering::Relaxed),
                operation_time_ms: counters.operation_micros.load(Ordering::Relaxed) as f64 / 1000.0,
                queries: counters.queries.load(Ordering::Relaxed),
                query_time_ms: counters.query_micros.load(Ordering::Relaxed) as f64 / 1000.0,
            }
        })
        .collect()
}

pub fn operation_snapshot() -> Vec<OperationRuntime> {
    let stats = operation_stats().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    stats
        .iter()
        .map(|(operation, stats)| OperationRuntime {
            operation: operation.to_string(),
            module: operation.module.name().to_owned(),
            count: stats.count,
            failures: stats.failures,
            queries: stats.queries,
            mean_ms: stats.total_micros as f64 / stats.count.max(1) as f64 / 1000.0,
            max_ms: stats.max_micros as f64 / 1000.0,
            tables: stats.tables.iter().map(|table| table.to_string()).collect(),
        })
        .collect()
}

/// An access PostgreSQL refused because the module's role lacks the privilege: a use of a table
/// the module's declaration does not allow.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AccessDenial {
    /// The module whose role ran the statement.
    pub module: String,
    /// The operation it ran for, e.g. `notifications.list_notifications`.
    pub operation: String,
    /// SELECT, INSERT, UPDATE, DELETE, ...
    pub statement: String,
    /// The table refused, or another kind of object with its kind: `function outbox_publish`.
    pub table: String,
    pub count: u64,
}

impl AccessDenial {
    fn from_error(message: &str, sql: &str) -> Option<AccessDenial> {
        let denied = message.split("permission denied for ").nth(1)?;
        let (kind, name) = denied.split_once(' ')?;
        let name = name.split_whitespace().next()?.trim_matches('"');
        // A table keeps its bare name; anything else (a function, a sequence) says what it is.
        let table = if kind == "table" { name.to_owned() } else { format!("{kind} {name}") };
        let module = super::roles::current();
        let operation = CURRENT.with(|current| current.borrow().as_ref().map(|current| current.operation.to_string()));
        let statement =
            sql.trim_start().trim_start_matches('(').split_whitespace().next().unwrap_or("?").to_uppercase();
        // A `WITH` query names its real work later; the first data-changing keyword tells it.
        let statement = if kind == "function" {
            "EXECUTE".to_owned()
        } else if statement == "WITH" {
            ["INSERT", "UPDATE", "DELETE"]
                .into_iter()
                .find(|keyword| sql.to_uppercase().contains(keyword))
                .unwrap_or("SELECT")
                .to_owned()
        } else {
            statement
        };
        Some(AccessDenial {
            module: module.map_or_else(|| "(no module)".to_owned(), |module| module.name().to_owned()),
            operation: operation.unwrap_or_else(|| "(no operation)".to_owned()),
            statement,
            table,
            count: 1,
        })
    }

    fn record(self) {
        log::error!(
            "PostgreSQL refused module {} {} on table {} in operation {}: its role may not; declare the use in the \
             module's TABLES or call the owning module",
            self.module,
            self.statement,
            self.table,
            self.operation
        );
        let mut denials = denials().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match denials.iter_mut().find(|seen| {
            (&seen.module, &seen.operation, &seen.statement, &seen.table)
                == (&self.module, &self.operation, &self.statement, &self.table)
        }) {
            Some(seen) => seen.count += 1,
            None => denials.push(self),
        }
    }
}

fn denials() -> &'static Mutex<Vec<AccessDenial>> {
    static DENIALS: OnceLock<Mutex<Vec<AccessDenial>>> = OnceLock::new();
    DENIALS.get_or_init(Default::default)
}

/// Every refused access since this process started.
pub fn access_denials() -> Vec<AccessDenial> {
    denials().lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

/// p50 and p99 of a histogram, read off its buckets (the upper bound of the bucket that holds
/// the rank).
pub fn percentiles_ms(histogram: &prometheus::Histogram) -> Option<(f64, f64)> {
    use prometheus::core::Collector;
    let families = histogram.collect();
    let metric = families.first()?.get_metric().first()?;
    let histogram = metric.get_histogram();
    let total = histogram.get_sample_count();
    if total == 0 {
        return None;
    }
    let rank = |p: f64| {
        let wanted = (total as f64 * p).ceil() as u64;
        histogram
            .get_bucket()
            .iter()
            .find(|bucket| bucket.cumulative_count() >= wanted)
            .map_or(f64::INFINITY, |bucket| bucket.upper_bound() * 1000.0)
    };
    Some((rank(0.50), rank(0.99)))
}
