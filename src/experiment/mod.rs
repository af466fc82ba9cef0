//! `agora experiment checkout-race`: the same buyers race for the same stock three ways, each
//! on scratch databases of its own (created, then dropped; never the shop's data):
//!
//! 1. **Shared transaction**: Agora's own checkout ([`crate::orders::place_order`]), unchanged.
//! 2. **Separate services**: inventory, orders and payments each with a database of their own.
//!    A checkout reserves stock in one transaction, creates the order in a second and charges
//!    in a third; a failure after the reservation runs a compensating release (a saga). With a
//!    failure rate, some steps fail and some "processes" die between steps, leaving reservations
//!    that only a recovery sweep, run after the race, finds and releases.
//! 3. **Naive read-then-write**: read the stock level, check it, write the order, then write back
//!    the level computed from what was read. Every buyer reads before any buyer writes (they meet
//!    at a barrier in between), which makes the lost update certain rather than a matter of timing.
//!
//! Every buyer is a thread of its own with real connections and real transactions; each buyer
//! takes one unit of each of `lines` products, every product stocked with `stock` units.
//!
//! A run is bounded (see [`run`]): buyers that wait for each other are released when one of them
//! fails, the run has a deadline (`AGORA_EXPERIMENT_DEADLINE_SECS`), and its scratch databases
//! are dropped however it ends, or at the next start-up if its process died (see [`scratch`]).

pub mod pages;
mod run;
mod scratch;

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::ConnectionManager;
use diesel::sql_types::{BigInt, Integer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::catalog::{self, ProductDraft};
use crate::config::Config;
use crate::db::Db;
use crate::error::AppError;
use crate::ids::ProductId;
use crate::inventory::{self, InventoryError, MovementKind};
use crate::kernel::Module;
use crate::orders::{OrdersError, PlaceOrder};
use run::{Run, StopOnPanic};
pub use run::{RunLimit, RunPermit};
use scratch::{Owner, Pool};
pub use scratch::{remove_leftovers, remove_leftovers_at_start};

/// Connections each pool shares among the buyers: few, so that the experiment (up to three
/// pools at once) stays far below PostgreSQL's `max_connections` beside a running shop.
const CONNECTIONS: u32 = 8;

/// How long a buyer waits for a pooled connection at most (and never past the run's deadline).
const POOL_WAIT: Duration = Duration::from_secs(30);

/// The advisory lock (`pg_advisory_lock(OWNER_LOCK_CLASS, token)`, on the server's `postgres`
/// database) that a live run holds for its scratch databases, named `agora_race_<variant>_<token>`.
pub const OWNER_LOCK_CLASS: i32 = 0x5241_4345; // "RACE"

#[derive(Clone, Debug, PartialEq)]
pub struct RaceOptions {
    pub buyers: u32,
    /// Units of each product in stock.
    pub stock: u32,
    /// Products per order, one unit each.
    pub lines: u32,
    pub seed: u64,
    /// Share of separate-services checkouts in which a step fails or the process dies.
    pub failure_rate: f64,
}

impl RaceOptions {
    pub fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if !(1..=2000).contains(&self.buyers) {
            problems.push("buyers must be between 1 and 2,000");
        }
        if !(1..=100_000).contains(&self.stock) {
            problems.push("stock must be between 1 and 100,000 units");
        }
        if !(1..=5).contains(&self.lines) {
            problems.push("lines must be between 1 and 5");
        }
        if !(0.0..=1.0).contains(&self.failure_rate) {
            problems.push("the failure rate must be between 0 and 1");
        }
        if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
    }
}

impl Default for RaceOptions {
    fn default() -> Self {
        RaceOptions { buyers: 200, stock: 10, lines: 1, seed: 42, failure_rate: 0.1 }
    }
}

/// What one way of checking out did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub variant: &'static str,
    pub accepted: u32,
    pub refused: u32,
    /// Units sold, over every product.
    pub units_sold: u64,
    pub units_in_stock: u64,
    pub oversold: u64,
    pub compensations: u32,
    /// Reservations left behind by a process that died between steps.
    pub orphaned: u32,
    /// How long the oldest orphan lived until the sweep released it.
    pub orphan_lived_ms: f64,
    /// From the last buyer's answer until stock and orders agreed; `None`: they never do.
    pub consistent_after_ms: Option<f64>,
    pub checkouts_per_second: f64,
    pub p99_ms: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("invalid options: {0}")]
    Options(String),
    #[error(transparent)]
    Setup(#[from] crate::startup::StartupError),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    #[error("cannot connect: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error(transparent)]
    App(#[from] AppError),
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("a buyer failed: {0}")]
    Buyer(String),
    #[error("the race did not finish within {}", duration_text(.0))]
    Deadline(Duration),
}

/// "300 ms", "120 s".
pub fn duration_text(duration: &Duration) -> String {
    if duration.subsec_millis() == 0 && duration.as_secs() > 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

/// Runs the three variants one after the other and returns what each did. The run ends at
/// `config.experiment.deadline` at the latest: then the sessions on its scratch databases are
/// ended, so that nothing it waits for in the database outlives the deadline.
pub fn checkout_race(config: &Config, options: &RaceOptions) -> Result<Vec<Outcome>, ExperimentError> {
    options.check().map_err(ExperimentError::Options)?;
    let run = Run::new(config.experiment.deadline);
    // Dropped last: the scratch databases go first, each with the variant that made it.
    let owner = Owner::claim(config)?;
    let outcomes = std::thread::scope(|scope| {
        scope.spawn(|| run.watch(|| owner.end_sessions()));
        // However the variants end, a panic included, the watchdog is let go with them.
        let _ending = run.ending();
        (|| {
            Ok(vec![
                shared_transaction(config, options, &run, &owner)?,
                separate_services(options, &run, &owner)?,
                naive(options, &run, &owner)?,
            ])
        })()
    });
    // A stop explains whatever error it caused: the deadline, or the buyer that failed first.
    outcomes.map_err(|error| run.stopped().unwrap_or(error))
}

/// A pooled connection, unless the run has stopped; waiting for one ends at the deadline.
fn take(run: &Run, pool: &Pool) -> Result<r2d2::PooledConnection<ConnectionManager<PgConnection>>, ExperimentError> {
    run.check()?;
    Ok(pool.get_timeout(run.remaining().min(POOL_WAIT))?)
}

/// Each buyer's time from the start signal to its answer, and the wall time of the race.
struct Race<T> {
    results: Vec<(T, Duration)>,
    elapsed: Duration,
}

impl<T> Race<T> {
    fn throughput(&self) -> f64 {
        self.results.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn p99_ms(&self) -> f64 {
        let mut latencies: Vec<Duration> = self.results.iter().map(|(_, latency)| *latency).collect();
        latencies.sort();
        let index = ((latencies.len() as f64 - 1.0) * 0.99).round() as usize;
        latencies.get(index).map_or(0.0, |latency| latency.as_secs_f64() * 1000.0)
    }
}

/// Every buyer on a thread of its own, all let go at once. The first buyer to fail stops the
/// run: the others, whether waiting to start, waiting at a gate or about to begin, give up, and
/// the race answers that failure.
fn race<T: Send>(
    run: &Run,
    buyers: u32,
    buy: impl Fn(u32) -> Result<T, ExperimentError> + Sync,
) -> Result<Race<T>, ExperimentError> {
    let start = run.gate(buyers as usize + 1);
    let (results, elapsed) = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(buyers as usize);
        for buyer in 0..buyers {
            let (start, buy) = (&start, &buy);
            let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                let _stop = StopOnPanic(run);
                run.wait(start)?;
                let began = Instant::now();
                let result = run.check().and_then(|()| buy(buyer));
                if let Err(error) = &result {
                    run.fail(format!("buyer {buyer}: {error}"));
                }
                result.map(|answer| (answer, began.elapsed()))
            });
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(error) => {
                    run.fail(format!("cannot start buyer {buyer}'s thread: {error}"));
                    break;
                }
            }
        }
        // The start signal; should the run have stopped already, the buyers are released anyway.
        let _ = run.wait(&start);
        let began = Instant::now();
        let results: Vec<Result<(T, Duration), ExperimentError>> = handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_else(|_| Err(ExperimentError::Buyer("a buyer panicked".into()))))
            .collect();
        (results, began.elapsed())
    });
    run.check()?;
    Ok(Race { results: results.into_iter().collect::<Result<_, _>>()?, elapsed })
}

fn buyer_email(buyer: u32) -> String {
    format!("buyer{buyer}@race.example")
}

/// 1. Agora's checkout: one transaction reserves the stock, writes the order and its event.
fn shared_transaction(
    config: &Config,
    options: &RaceOptions,
    run: &Run,
    owner: &Owner,
) -> Result<Outcome, ExperimentError> {
    let scratch = owner.scratch("shared")?;
    let mut scratch_config = config.clone();
    // The scratch database is reached directly, in sessions of its own, whatever the shop's pooler.
    scratch_config.database_url = scratch.url.clone();
    scratch_config.direct_database_url = scratch.url.clone();
    scratch_config.pool.mode = crate::config::PoolMode::Session;
    crate::startup::prepare_database(&scratch_config)?;
    run.check()?;
    let mut settings = scratch_config.pool.clone();
    settings.max_size = CONNECTIONS;
    let db = Db::connect(&scratch.url, &settings);
    let mut products = Vec::new();
    for line in 0..options.lines {
        run.check()?;
        let draft = ProductDraft {
            sku: format!("RACE-{line:03}"),
            name: format!("Contested product {line}"),
            description: None,
            price_minor: 1000,
            low_stock_threshold: Some(0),
            category: None,
        };
        let product =
            db.run_blocking(Module::Catalog.op("experiment_product"), |conn| catalog::create_product(conn, draft))?;
        db.run_blocking(Module::Inventory.op("experiment_stock"), |conn| {
            inventory::adjust(conn, product.id, i64::from(options.stock), MovementKind::Receipt, "experiment stock")
        })?;
        products.push(product.id);
    }
    let items: Vec<(ProductId, i64)> = products.iter().map(|id| (*id, 1)).collect();
    let race = race(run, options.buyers, |buyer| {
        let request = PlaceOrder::new(&buyer_email(buyer), "Racing Buyer", &items).map_err(AppError::validation)?;
        Ok(db.run_blocking(Module::Orders.op("experiment_checkout"), |conn| {
            match crate::orders::place_order(conn, &request, config.currency) {
                Ok(_) => Ok(true),
                Err(OrdersError::Stock(InventoryError::Insufficient(_))) => Ok(false),
                Err(other) => Err(AppError::from(other)),
            }
        })?)
    })?;
    let mut outcome = tally("shared transaction", &race);
    for product in &products {
        let level =
            db.run_blocking(Module::Inventory.op("experiment_level"), |conn| inventory::stock_level(conn, *product))?;
        outcome.units_sold += level.reserved.max(0) as u64;
    }
    finish(&mut outcome, options, &race);
    // Stock and orders never disagree: they commit together.
    outcome.consistent_after_ms = Some(0.0);
    Ok(outcome)
}

/// Buyers accepted (`true`) and refused.
fn tally(variant: &'static str, race: &Race<bool>) -> Outcome {
    let accepted = race.results.iter().filter(|(accepted, _)| *accepted).count() as u32;
    Outcome { variant, accepted, refused: race.results.len() as u32 - accepted, ..Outcome::default() }
}

fn finish<T>(outcome: &mut Outcome, options: &RaceOptions, race: &Race<T>) {
    outcome.units_in_stock = u64::from(options.stock) * u64::from(options.lines);
    outcome.oversold = outcome.units_sold.saturating_sub(outcome.units_in_stock);
    outcome.checkouts_per_second = race.throughput();
    outcome.p99_ms = race.p99_ms();
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(conn: &mut PgConnection, sql: &str) -> Result<i64, ExperimentError> {
    Ok(diesel::sql_query(sql).get_result::<Count>(conn)?.n)
}

/// What befalls one separate-services checkout, drawn from the seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Completes,
    /// The process dies between the reservation and the order: nothing compensates.
    DiesAfterReserving,
    /// The orders service fails the order: the reservation is released.
    OrderFails,
    /// The charge is declined: the order is cancelled and the reservation released.
    ChargeFails,
}

fn fate(seed: u64, buyer: u32, failure_rate: f64) -> Fate {
    let draw: f64 = StdRng::seed_from_u64(seed ^ (u64::from(buyer) << 20)).random();
    let third = failure_rate / 3.0;
    if draw < third {
        Fate::DiesAfterReserving
    } else if draw < 2.0 * third {
        Fate::OrderFails
    } else if draw < failure_rate {
        Fate::ChargeFails
    } else {
        Fate::Completes
    }
}

/// Each service's pool of connections to its own database.
struct Services {
    inventory: Pool,
    orders: Pool,
    payments: Pool,
}

enum SagaEnd {
    Sold,
    Refused,
    Compensated,
    Orphaned,
}

/// 2. Inventory, orders and payments with a database each, and a saga between them.
fn separate_services(options: &RaceOptions, run: &Run, owner: &Owner) -> Result<Outcome, ExperimentError> {
    let (inventory_db, orders_db, payments_db) =
        (owner.scratch("inventory")?, owner.scratch("orders")?, owner.scratch("payments")?);
    run.check()?;
    inventory_db.connect()?.batch_execute(&format!(
        "CREATE TABLE stock (product integer PRIMARY KEY, on_hand integer NOT NULL, reserved integer NOT NULL DEFAULT 0,
                             CHECK (reserved BETWEEN 0 AND on_hand));
         CREATE TABLE reservations (buyer integer NOT NULL, product integer NOT NULL,
                                    created_at timestamptz NOT NULL DEFAULT clock_timestamp(), released_at timestamptz,
                                    PRIMARY KEY (buyer, product));
         INSERT INTO stock (product, on_hand) SELECT line, {} FROM generate_series(1, {}) AS line;",
        options.stock, options.lines
    ))?;
    orders_db.connect()?.batch_execute(
        "CREATE TABLE placed_orders (buyer integer PRIMARY KEY, status text NOT NULL, created_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    )?;
    payments_db
        .connect()?
        .batch_execute("CREATE TABLE charges (buyer integer PRIMARY KEY, amount_minor bigint NOT NULL)")?;

    let services =
        Services { inventory: inventory_db.pool()?, orders: orders_db.pool()?, payments: payments_db.pool()? };
    let race = race(run, options.buyers, |buyer| {
        saga(run, &services, buyer, options.lines, fate(options.seed, buyer, options.failure_rate))
    })?;
    let finished = Instant::now();
    let mut outcome = Outcome { variant: "separate services (saga)", ..Outcome::default() };
    for (end, _) in race.results.iter() {
        match end {
            SagaEnd::Sold => outcome.accepted += 1,
            SagaEnd::Refused => outcome.refused += 1,
            SagaEnd::Compensated => {
                outcome.refused += 1;
                outcome.compensations += 1;
            }
            // The buyer got no answer: its process died.
            SagaEnd::Orphaned => outcome.refused += 1,
        }
    }
    run.check()?;
    let (mut inventory_conn, mut orders_conn) = (inventory_db.connect()?, orders_db.connect()?);
    let (orphaned, oldest) = sweep(&mut inventory_conn, &mut orders_conn)?;
    outcome.orphaned = orphaned;
    outcome.orphan_lived_ms = oldest;
    outcome.consistent_after_ms = Some(finished.elapsed().as_secs_f64() * 1000.0);
    outcome.units_sold = count(&mut orders_conn, "SELECT count(*) AS n FROM placed_orders WHERE status = 'paid'")?
        as u64
        * u64::from(options.lines);
    let reserved = count(&mut inventory_conn, "SELECT coalesce(sum(reserved), 0)::bigint AS n FROM stock")? as u64;
    if reserved != outcome.units_sold {
        outcome.consistent_after_ms = None;
    }
    finish(&mut outcome, options, &race);
    Ok(outcome)
}

fn saga(run: &Run, services: &Services, buyer: u32, lines: u32, fate: Fate) -> Result<SagaEnd, ExperimentError> {
    // Transaction 1, inventory: reserve every line or nothing.
    let reserved = take(run, &services.inventory)?.transaction(|conn| -> Result<bool, diesel::result::Error> {
        for product in 1..=lines as i32 {
            let taken = diesel::sql_query(
                "UPDATE stock SET reserved = reserved + 1 WHERE product = $1 AND on_hand - reserved >= 1",
            )
            .bind::<Integer, _>(product)
            .execute(conn)?;
            if taken == 0 {
                return Err(diesel::result::Error::RollbackTransaction);
            }
            diesel::sql_query("INSERT INTO reservations (buyer, product) VALUES ($1, $2)")
                .bind::<Integer, _>(buyer as i32)
                .bind::<Integer, _>(product)
                .execute(conn)?;
        }
        Ok(true)
    });
    match reserved {
        Ok(_) => {}
        Err(diesel::result::Error::RollbackTransaction) => return Ok(SagaEnd::Refused),
        Err(error) => return Err(error.into()),
    }
    if fate == Fate::DiesAfterReserving {
        return Ok(SagaEnd::Orphaned);
    }
    // Transaction 2, orders.
    if fate == Fate::OrderFails {
        release(&mut *take(run, &services.inventory)?, buyer)?;
        return Ok(SagaEnd::Compensated);
    }
    diesel::sql_query("INSERT INTO placed_orders (buyer, status) VALUES ($1, 'pending')")
        .bind::<Integer, _>(buyer as i32)
        .execute(&mut take(run, &services.orders)?)?;
    // Transaction 3, payments.
    if fate == Fate::ChargeFails {
        diesel::sql_query("UPDATE placed_orders SET status = 'cancelled' WHERE buyer = $1")
            .bind::<Integer, _>(buyer as i32)
            .execute(&mut take(run, &services.orders)?)?;
        release(&mut *take(run, &services.inventory)?, buyer)?;
        return Ok(SagaEnd::Compensated);
    }
    diesel::sql_query("INSERT INTO charges (buyer, amount_minor) VALUES ($1, $2)")
        .bind::<Integer, _>(buyer as i32)
        .bind::<BigInt, _>(1000 * i64::from(lines))
        .execute(&mut take(run, &services.payments)?)?;
    diesel::sql_query("UPDATE placed_orders SET status = 'paid' WHERE buyer = $1")
        .bind::<Integer, _>(buyer as i32)
        .execute(&mut take(run, &services.orders)?)?;
    Ok(SagaEnd::Sold)
}

/// The compensating step: give back what `buyer` reserved.
fn release(inventory: &mut PgConnection, buyer: u32) -> Result<(), ExperimentError> {
    inventory.transaction(|conn| {
        diesel::sql_query(
            "UPDATE stock SET reserved = reserved - 1 FROM reservations r
              WHERE r.product = stock.product AND r.buyer = $1 AND r.released_at IS NULL",
        )
        .bind::<Integer, _>(buyer as i32)
        .execute(conn)?;
        diesel::sql_query(
            "UPDATE reservations SET released_at = clock_timestamp() WHERE buyer = $1 AND released_at IS NULL",
        )
        .bind::<Integer, _>(buyer as i32)
        .execute(conn)?;
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

#[derive(QueryableByName)]
struct Buyer {
    #[diesel(sql_type = Integer)]
    buyer: i32,
}

#[derive(QueryableByName)]
struct Orphan {
    #[diesel(sql_type = Integer)]
    buyer: i32,
    #[diesel(sql_type = diesel::sql_types::Double)]
    lived_ms: f64,
}

/// The recovery sweep: reservations with no live order in the orders service are released.
/// Returns how many buyers' reservations it released and how long the oldest had lived.
fn sweep(inventory: &mut PgConnection, orders: &mut PgConnection) -> Result<(u32, f64), ExperimentError> {
    let ordered: std::collections::HashSet<i32> =
        diesel::sql_query("SELECT buyer FROM placed_orders WHERE status <> 'cancelled'")
            .load::<Buyer>(orders)?
            .into_iter()
            .map(|row| row.buyer)
            .collect();
    let open = diesel::sql_query(
        "SELECT buyer, (extract(epoch FROM clock_timestamp() - min(created_at)) * 1000)::float8 AS lived_ms
           FROM reservations WHERE released_at IS NULL GROUP BY buyer",
    )
    .load::<Orphan>(inventory)?;
    let (mut released, mut oldest) = (0, 0.0_f64);
    for orphan in open.into_iter().filter(|open| !ordered.contains(&open.buyer)) {
        release(inventory, orphan.buyer as u32)?;
        released += 1;
        oldest = oldest.max(orphan.lived_ms);
    }
    Ok((released, oldest))
}

/// 3. Read the level, check it, write the order, write back the level computed from the read.
fn naive(options: &RaceOptions, run: &Run, owner: &Owner) -> Result<Outcome, ExperimentError> {
    let scratch = owner.scratch("naive")?;
    scratch.connect()?.batch_execute(&format!(
        "CREATE TABLE stock (product integer PRIMARY KEY, on_hand integer NOT NULL);
         CREATE TABLE placed_orders (buyer integer PRIMARY KEY);
         INSERT INTO stock (product, on_hand) SELECT line, {} FROM generate_series(1, {}) AS line;",
        options.stock, options.lines
    ))?;
    run.check()?;
    // Everyone reads before anyone writes: the window every such shop has, held open. A buyer
    // that fails before it gets there stops the run, which opens the gate for the others.
    let read_before_write = run.gate(options.buyers as usize);
    let pool = scratch.pool()?;
    let race = race(run, options.buyers, |buyer| -> Result<bool, ExperimentError> {
        let mut conn = take(run, &pool)?;
        let mut seen = Vec::new();
        for product in 1..=options.lines as i32 {
            #[derive(QueryableByName)]
            struct Level {
                #[diesel(sql_type = Integer)]
                on_hand: i32,
            }
            let level = diesel::sql_query("SELECT on_hand FROM stock WHERE product = $1")
                .bind::<Integer, _>(product)
                .get_result::<Level>(&mut conn)?;
            seen.push((product, level.on_hand));
        }
        // The connection goes back while waiting: the pool is smaller than the crowd.
        drop(conn);
        run.wait(&read_before_write)?;
        let mut conn = take(run, &pool)?;
        if seen.iter().any(|(_, on_hand)| *on_hand < 1) {
            return Ok(false);
        }
        diesel::sql_query("INSERT INTO placed_orders (buyer) VALUES ($1)")
            .bind::<Integer, _>(buyer as i32)
            .execute(&mut conn)?;
        for (product, on_hand) in seen {
            diesel::sql_query("UPDATE stock SET on_hand = $2 WHERE product = $1")
                .bind::<Integer, _>(product)
                .bind::<Integer, _>(on_hand - 1)
                .execute(&mut conn)?;
        }
        Ok(true)
    })?;
    let mut outcome = tally("naive read-then-write", &race);
    outcome.units_sold = u64::from(outcome.accepted) * u64::from(options.lines);
    finish(&mut outcome, options, &race);
    // The level says some units are left while more than the stock was sold: nothing reconciles them.
    outcome.consistent_after_ms = (outcome.oversold == 0).then_some(0.0);
    Ok(outcome)
}

/// The outcomes as a plain-text table, for the command line.
pub fn table(options: &RaceOptions, outcomes: &[Outcome]) -> String {
    let mut text = format!(
        "checkout race: {} buyers, {} units of each of {} product(s), seed {}, failure rate {}\n\n",
        options.buyers, options.stock, options.lines, options.seed, options.failure_rate
    );
    text.push_str(&format!(
        "{:<26} {:>8} {:>7} {:>6} {:>6} {:>8} {:>13} {:>8} {:>11} {:>14} {:>10} {:>8}\n",
        "variant",
        "accepted",
        "refused",
        "sold",
        "stock",
        "oversold",
        "compensations",
        "orphaned",
        "orphan ms",
        "consistent ms",
        "checkout/s",
        "p99 ms"
    ));
    for outcome in outcomes {
        text.push_str(&format!(
            "{:<26} {:>8} {:>7} {:>6} {:>6} {:>8} {:>13} {:>8} {:>11.0} {:>14} {:>10.0} {:>8.1}\n",
            outcome.variant,
            outcome.accepted,
            outcome.refused,
            outcome.units_sold,
            outcome.units_in_stock,
            outcome.oversold,
            outcome.compensations,
            outcome.orphaned,
            outcome.orphan_lived_ms,
            outcome.consistent_after_ms.map_or_else(|| "never".to_owned(), |ms| format!("{ms:.0}")),
            outcome.checkouts_per_second,
            outcome.p99_ms
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fates_follow_the_seed_and_the_rate() {
        let fates: Vec<Fate> = (0..1000).map(|buyer| fate(7, buyer, 0.3)).collect();
        assert_eq!(fates, (0..1000).map(|buyer| fate(7, buyer, 0.3)).collect::<Vec<_>>());
        let failing = fates.iter().filter(|fate| **fate != Fate::Completes).count();
        assert!((240..=360).contains(&failing), "{failing} of 1000 at a rate of 0.3");
        assert!(fates.contains(&Fate::DiesAfterReserving) && fates.contains(&Fate::ChargeFails));
        assert!((0..1000).all(|buyer| fate(7, buyer, 0.0) == Fate::Completes));
    }
}
