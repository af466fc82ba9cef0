//! Lock waits between modules, as PostgreSQL itself reports them.
//!
//! A background task samples `pg_stat_activity` with `pg_blocking_pids()`: every session of this
//! database that waits for a lock, and the session blocking it. Sessions of this process are put
//! down to the operation that last used them (say `orders.place_order` waiting behind another
//! `orders.place_order` on a hot product's stock row); others are shown by application name.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Double, Integer, Text};

use crate::background::{BackgroundTasks, StopSignal};
use crate::db::Db;
use crate::kernel::Module;
use crate::kernel::measure::{operation_of_backend, tables_named_in};

#[derive(Debug, QueryableByName)]
struct WaitRow {
    #[diesel(sql_type = Integer)]
    waiting_pid: i32,
    #[diesel(sql_type = Text)]
    waiting_application: String,
    #[diesel(sql_type = Text)]
    waiting_query: String,
    #[diesel(sql_type = Text)]
    wait_event: String,
    #[diesel(sql_type = Double)]
    waited_ms: f64,
    #[diesel(sql_type = Integer)]
    blocking_pid: i32,
    #[diesel(sql_type = Text)]
    blocking_application: String,
    #[diesel(sql_type = Text)]
    blocking_query: String,
}

const SAMPLE: &str = "
    SELECT waiting.pid AS waiting_pid,
           waiting.application_name AS waiting_application,
           left(waiting.query, 400) AS waiting_query,
           coalesce(waiting.wait_event, '') AS wait_event,
           (extract(epoch FROM clock_timestamp() - waiting.query_start) * 1000)::float8 AS waited_ms,
           blocking.pid AS blocking_pid,
           blocking.application_name AS blocking_application,
           left(blocking.query, 400) AS blocking_query
      FROM pg_stat_activity AS waiting
     CROSS JOIN LATERAL unnest(pg_blocking_pids(waiting.pid)) AS blocker (pid)
      JOIN pg_stat_activity AS blocking ON blocking.pid = blocker.pid
     WHERE waiting.datname = current_database()
       AND waiting.wait_event_type = 'Lock'";

/// Lock waits of one kind: who waited behind whom, on which tables.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LockWait {
    /// The waiting side: an operation of this process (`orders.place_order`) or an application.
    pub waiting: String,
    pub blocking: String,
    /// Modules owning the tables the waiting statement names.
    pub tables_of: Vec<String>,
    pub wait_event: String,
    /// How many samples caught such a wait.
    pub samples: u64,
    /// The longest wait seen, in milliseconds.
    pub max_wait_ms: f64,
    pub last_seen: DateTime<Utc>,
    /// What the waiting session was running.
    pub example_query: String,
    /// What the blocking session ran last (its transaction may have moved on since taking the lock).
    pub blocking_query: String,
}

#[derive(Default)]
struct Observed {
    by_pair: BTreeMap<(String, String), LockWait>,
    /// Most recent observations, newest last.
    recent: VecDeque<LockWait>,
}

fn observed() -> &'static Mutex<Observed> {
    static OBSERVED: OnceLock<Mutex<Observed>> = OnceLock::new();
    OBSERVED.get_or_init(Default::default)
}

fn label(pid: i32, application: &str) -> String {
    match operation_of_backend(pid) {
        Some(operation) => operation.to_string(),
        None if application.is_empty() => format!("session {pid}"),
        None => format!("{application} (pid {pid}, not this process)"),
    }
}

fn owners_of_tables(sql: &str) -> Vec<String> {
    let mut owners: Vec<String> = tables_named_in(sql)
        .filter_map(super::coupling::owner_of)
        .map(|module: Module| module.name().to_owned())
        .collect();
    owners.sort();
    owners.dedup();
    owners
}

/// Takes one sample; returns how many waiting sessions it saw.
pub fn sample(conn: &mut PgConnection) -> QueryResult<usize> {
    let rows: Vec<WaitRow> = diesel::sql_query(SAMPLE).load(conn)?;
    let now = Utc::now();
    let mut observed = observed().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for row in &rows {
        let wait = LockWait {
            waiting: label(row.waiting_pid, &row.waiting_application),
            blocking: label(row.blocking_pid, &row.blocking_application),
            tables_of: owners_of_tables(&row.waiting_query),
            wait_event: row.wait_event.clone(),
            samples: 1,
            max_wait_ms: row.waited_ms,
            last_seen: now,
            example_query: row.waiting_query.clone(),
            blocking_query: row.blocking_query.clone(),
        };
        observed
            .by_pair
            .entry((wait.waiting.clone(), wait.blocking.clone()))
            .and_modify(|known| {
                known.samples += 1;
                known.max_wait_ms = known.max_wait_ms.max(wait.max_wait_ms);
                known.last_seen = now;
            })
            .or_insert_with(|| wait.clone());
        observed.recent.push_back(wait);
        if observed.recent.len() > 50 {
            observed.recent.pop_front();
        }
    }
    Ok(rows.len())
}

/// Lock waits seen since start, most frequent first.
pub fn summary() -> Vec<LockWait> {
    let observed = observed().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut waits: Vec<LockWait> = observed.by_pair.values().cloned().collect();
    waits.sort_by_key(|wait| std::cmp::Reverse(wait.samples));
    waits
}

pub fn start(tasks: &mut BackgroundTasks, db: &Db, interval: Duration) {
    let db = db.clone();
    tasks.spawn("lock-sampler", move |stop: StopSignal| {
        loop {
            // Not counted as any module's work: it only reads PostgreSQL's own views.
            let sampled = db.get().and_then(|mut conn| sample(&mut conn).map_err(Into::into));
            if let Err(error) = sampled {
                log::debug!("lock-wait sample failed: {error}");
            }
            if stop.wait(interval) {
                return;
            }
        }
    });
}
