//! What the admin events page reads, and its bulk retry: open work and the latest events,
//! filtered, each named by what it is about ("Order AG-000017"), and every dead delivery put back
//! in the queue at once.
//!
//! The name of an aggregate is found in the outbox's own rows, never in another module's table:
//! the first event of an aggregate carries it (`OrderPlaced` its order number, `StockLow` its
//! SKU). A lateral join finds it through `events_aggregate_idx (aggregate_id, id)`, for the rows
//! of one page only: it runs after the page's LIMIT, so skipped rows never pay for it.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};

use super::DeliveryStatus;
use crate::events::Aggregate;
use crate::kernel::Module;

/// Where open work stands, as an operator sorts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenStatus {
    /// Due, not yet tried.
    Waiting,
    /// Tried and failed; will be tried again.
    Failing,
    /// Given up on until an admin retries it.
    Dead,
}

impl OpenStatus {
    pub const ALL: [OpenStatus; 3] = [OpenStatus::Waiting, OpenStatus::Failing, OpenStatus::Dead];

    /// The word in the page's query string.
    pub fn as_str(self) -> &'static str {
        match self {
            OpenStatus::Waiting => "waiting",
            OpenStatus::Failing => "failing",
            OpenStatus::Dead => "dead",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            OpenStatus::Waiting => "Waiting",
            OpenStatus::Failing => "Failing",
            OpenStatus::Dead => "Dead",
        }
    }

    /// The badge class of the admin stylesheet that colours it.
    pub fn badge(self) -> &'static str {
        match self {
            OpenStatus::Waiting => "pending",
            OpenStatus::Failing => "failed",
            OpenStatus::Dead => "dead",
        }
    }

    pub fn parse(word: &str) -> Option<OpenStatus> {
        OpenStatus::ALL.into_iter().find(|status| status.as_str() == word)
    }

    /// The condition on `event_deliveries d`: each form matches the predicate of a partial index
    /// (`status = 'pending'` or `status = 'dead'`), so completed rows, nearly all of them, are
    /// never read.
    fn condition(status: Option<OpenStatus>) -> &'static str {
        match status {
            None => "(d.status = 'pending' OR d.status = 'dead')",
            Some(OpenStatus::Waiting) => "d.status = 'pending' AND d.attempts = 0",
            Some(OpenStatus::Failing) => "d.status = 'pending' AND d.attempts > 0",
            Some(OpenStatus::Dead) => "d.status = 'dead'",
        }
    }
}

/// What the open-work list is narrowed to; `None` lets everything through.
#[derive(Clone, Debug, Default)]
pub struct WorkFilter {
    pub status: Option<OpenStatus>,
    pub handler: Option<String>,
    pub event_type: Option<String>,
}

/// What an event is about, with the name its first event gave it.
#[derive(Clone, Debug)]
pub struct About {
    pub aggregate: Aggregate,
    /// The order number or SKU; `None` when no event of the aggregate carries one.
    pub name: Option<String>,
}

impl About {
    /// "Order AG-000017", "Product MUG-001", or the kind and the start of the id.
    pub fn text(&self) -> String {
        let kind = match self.aggregate {
            Aggregate::Order(_) => "Order",
            Aggregate::Product(_) => "Product",
        };
        match &self.name {
            Some(name) => format!("{kind} {name}"),
            None => format!("{kind} {}", &self.aggregate.uuid().simple().to_string()[..8]),
        }
    }

    pub fn href(&self) -> String {
        match self.aggregate {
            Aggregate::Order(id) => format!("/admin/orders/{id}"),
            Aggregate::Product(id) => format!("/admin/products/{id}"),
        }
    }
}

/// One handler's delivery of one event, with the event.
#[derive(Debug)]
pub struct Work {
    pub event_id: i64,
    pub handler: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub event_type: String,
    pub about: About,
    /// For a pending delivery of an ordered handler: the earlier event of the same aggregate
    /// whose delivery it waits for (see [`super::ORDERED_HANDLERS`]).
    pub waits_for: Option<i64>,
}

impl Work {
    /// `None` for completed work.
    pub fn open_status(&self) -> Option<OpenStatus> {
        match self.status {
            DeliveryStatus::Completed => None,
            DeliveryStatus::Dead => Some(OpenStatus::Dead),
            DeliveryStatus::Pending if self.attempts > 0 => Some(OpenStatus::Failing),
            DeliveryStatus::Pending => Some(OpenStatus::Waiting),
        }
    }

    pub fn is_dead(&self) -> bool {
        self.status == DeliveryStatus::Dead
    }
}

#[derive(QueryableByName)]
struct WorkRow {
    #[diesel(sql_type = BigInt)]
    event_id: i64,
    #[diesel(sql_type = Text)]
    handler: String,
    #[diesel(sql_type = Text)]
    status: DeliveryStatus,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    next_attempt_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Text)]
    aggregate_type: String,
    #[diesel(sql_type = SqlUuid)]
    aggregate_id: uuid::Uuid,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    waits_for: Option<i64>,
}

impl TryFrom<WorkRow> for Work {
    type Error = diesel::result::Error;

    fn try_from(row: WorkRow) -> QueryResult<Work> {
        Ok(Work {
            about: about(&row.aggregate_type, row.aggregate_id, row.name)?,
            event_id: row.event_id,
            handler: row.handler,
            status: row.status,
            attempts: row.attempts,
            last_error: row.last_error,
            next_attempt_at: row.next_attempt_at,
            updated_at: row.updated_at,
            event_type: row.event_type,
            waits_for: row.waits_for,
        })
    }
}

#[derive(Debug)]
pub struct LatestEvent {
    pub id: i64,
    pub event_type: String,
    pub about: About,
    pub created_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct EventRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Text)]
    aggregate_type: String,
    #[diesel(sql_type = SqlUuid)]
    aggregate_id: uuid::Uuid,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
}

fn about(kind: &str, id: uuid::Uuid, name: Option<String>) -> QueryResult<About> {
    let aggregate = Aggregate::from_stored(kind, id).ok_or_else(|| {
        diesel::result::Error::DeserializationError(format!("unknown aggregate type {kind:?}").into())
    })?;
    Ok(About { aggregate, name })
}

/// The lateral join that names the aggregate of each row of `shown`: from its first event,
/// found by an ordered scan of `events_aggregate_idx` that stops at the first entry. Filtering
/// on the event type here would let the planner read every event of a busy aggregate and sort.
const NAMED: &str = "LEFT JOIN LATERAL (
         SELECT coalesce(f.payload ->> 'number', f.payload ->> 'sku') AS name
           FROM events f
          WHERE f.aggregate_id = shown.aggregate_id
          ORDER BY f.id
          LIMIT 1
     ) named ON true";

/// The lateral join that finds, for a pending delivery of an ordered handler shown, the
/// delivery of the aggregate's previous event when it is not completed: the one it waits for.
/// One step back along `events_aggregate_idx`, as the dispatcher's claim looks.
fn waiting(ordered: &str) -> String {
    format!(
        "LEFT JOIN LATERAL (
             SELECT previous.event_id, previous.status
               FROM events earlier
               JOIN event_deliveries previous
                 ON previous.event_id = earlier.id AND previous.handler = shown.handler
              WHERE shown.status = 'pending' AND shown.handler = ANY({ordered})
                AND earlier.aggregate_id = shown.aggregate_id
                AND earlier.aggregate_type = shown.aggregate_type
                AND earlier.id < shown.event_id
              ORDER BY earlier.id DESC
              LIMIT 1
         ) waiting ON waiting.status <> 'completed'"
    )
}

/// A statement's parameters, numbered `$1`, `$2`, ... in the order they are added, so that only
/// the conditions a filter asks for are written into the SQL.
#[derive(Default)]
struct Params(Vec<Param>);

enum Param {
    Text(String),
    Texts(Vec<String>),
    BigInt(i64),
}

impl Params {
    fn text(&mut self, value: &str) -> String {
        self.0.push(Param::Text(value.to_owned()));
        format!("${}", self.0.len())
    }

    fn texts(&mut self, values: &[&str]) -> String {
        self.0.push(Param::Texts(values.iter().map(|value| (*value).to_owned()).collect()));
        format!("${}", self.0.len())
    }

    fn bigint(&mut self, value: i64) -> String {
        self.0.push(Param::BigInt(value));
        format!("${}", self.0.len())
    }

    fn bind(self, sql: String) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
        self.0.into_iter().fold(diesel::sql_query(sql).into_boxed(), |query, param| match param {
            Param::Text(value) => query.bind::<Text, _>(value),
            Param::Texts(values) => query.bind::<diesel::sql_types::Array<Text>, _>(values),
            Param::BigInt(value) => query.bind::<BigInt, _>(value),
        })
    }
}

/// The open work the filter lets through, dead first, then by when it falls due; at most `limit`.
pub fn open_work(conn: &mut PgConnection, filter: &WorkFilter, limit: i64) -> QueryResult<Vec<Work>> {
    crate::as_module!(conn, Module::Outbox);
    let mut params = Params::default();
    let mut conditions = vec![OpenStatus::condition(filter.status).to_owned()];
    if let Some(handler) = &filter.handler {
        conditions.push(format!("d.handler = {}", params.text(handler)));
    }
    if let Some(event_type) = &filter.event_type {
        conditions.push(format!("e.event_type = {}", params.text(event_type)));
    }
    let limit = params.bigint(limit);
    load_work(conn, &conditions.join(" AND "), &limit, params)
}

/// One delivery, whatever its status.
pub fn work(conn: &mut PgConnection, event_id: i64, handler: &str) -> QueryResult<Option<Work>> {
    crate::as_module!(conn, Module::Outbox);
    let mut params = Params::default();
    let conditions = format!("d.event_id = {} AND d.handler = {}", params.bigint(event_id), params.text(handler));
    let limit = params.bigint(1);
    Ok(load_work(conn, &conditions, &limit, params)?.into_iter().next())
}

fn load_work(conn: &mut PgConnection, conditions: &str, limit: &str, mut params: Params) -> QueryResult<Vec<Work>> {
    let waiting = waiting(&params.texts(super::ORDERED_HANDLERS));
    let sql = format!(
        "SELECT shown.*, named.name, waiting.event_id AS waits_for
           FROM (SELECT d.event_id, d.handler, d.status, d.attempts, d.last_error, d.next_attempt_at,
                        d.updated_at, e.event_type, e.aggregate_type, e.aggregate_id
                   FROM event_deliveries d
                   JOIN events e ON e.id = d.event_id
                  WHERE {conditions}
                  ORDER BY d.status, d.next_attempt_at, d.event_id, d.handler
                  LIMIT {limit}) shown
           {NAMED}
           {waiting}
          ORDER BY shown.status, shown.next_attempt_at, shown.event_id, shown.handler"
    );
    params.bind(sql).load::<WorkRow>(conn)?.into_iter().map(Work::try_from).collect()
}

/// Open work by where it stands (of one handler, or of all).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct Figures {
    #[diesel(sql_type = BigInt)]
    pub waiting: i64,
    #[diesel(sql_type = BigInt)]
    pub failing: i64,
    #[diesel(sql_type = BigInt)]
    pub dead: i64,
}

/// Counted through the partial indexes on pending and dead deliveries, so the count costs what
/// is open, however many deliveries have completed.
pub fn figures(conn: &mut PgConnection, handler: Option<&str>) -> QueryResult<Figures> {
    crate::as_module!(conn, Module::Outbox);
    let mut params = Params::default();
    let of_handler = handler.map(|handler| format!(" AND d.handler = {}", params.text(handler))).unwrap_or_default();
    let sql = format!(
        "SELECT count(*) FILTER (WHERE d.status = 'pending' AND d.attempts = 0) AS waiting,
                count(*) FILTER (WHERE d.status = 'pending' AND d.attempts > 0) AS failing,
                count(*) FILTER (WHERE d.status = 'dead') AS dead
           FROM event_deliveries d
          WHERE (d.status = 'pending' OR d.status = 'dead'){of_handler}"
    );
    params.bind(sql).get_result(conn)
}

#[derive(QueryableByName)]
struct Counted {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Events newest first, of one type or all: `limit` from `offset` on, and how many match,
/// counted up to `count_cap` rows (a bounded scan however many events there are).
pub fn latest_events(
    conn: &mut PgConnection,
    event_type: Option<&str>,
    limit: i64,
    offset: i64,
    count_cap: i64,
) -> QueryResult<(Vec<LatestEvent>, i64)> {
    crate::as_module!(conn, Module::Outbox);
    let mut params = Params::default();
    let of_type = event_type.map(|event_type| format!("WHERE event_type = {}", params.text(event_type)));
    let of_type = of_type.unwrap_or_default();
    let (limit, offset) = (params.bigint(limit), params.bigint(offset));
    let sql = format!(
        "SELECT shown.*, named.name
           FROM (SELECT id, event_type, aggregate_type, aggregate_id, created_at
                   FROM events {of_type}
                  ORDER BY id DESC
                  LIMIT {limit} OFFSET {offset}) shown
           {NAMED}
          ORDER BY shown.id DESC"
    );
    let events = params
        .bind(sql)
        .load::<EventRow>(conn)?
        .into_iter()
        .map(|row| {
            Ok(LatestEvent {
                about: about(&row.aggregate_type, row.aggregate_id, row.name)?,
                id: row.id,
                event_type: row.event_type,
                created_at: row.created_at,
            })
        })
        .collect::<QueryResult<Vec<_>>>()?;

    let mut params = Params::default();
    let of_type = event_type.map(|event_type| format!("WHERE event_type = {}", params.text(event_type)));
    let of_type = of_type.unwrap_or_default();
    let cap = params.bigint(count_cap);
    let sql = format!("SELECT count(*) AS n FROM (SELECT 1 FROM events {of_type} LIMIT {cap}) capped");
    let counted = params.bind(sql).get_result::<Counted>(conn)?.n;
    Ok((events, counted))
}

/// Dead deliveries of one handler: how many, and when the last of them died.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct DeadOfHandler {
    #[diesel(sql_type = Text)]
    pub handler: String,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
    #[diesel(sql_type = Timestamptz)]
    pub newest: DateTime<Utc>,
}

/// Dead deliveries by handler (of one handler, or of all), by handler name.
pub fn dead_by_handler(conn: &mut PgConnection, handler_name: Option<&str>) -> QueryResult<Vec<DeadOfHandler>> {
    crate::as_module!(conn, Module::Outbox);
    let mut params = Params::default();
    let of_handler = handler_name.map(|name| format!(" AND handler = {}", params.text(name))).unwrap_or_default();
    let sql = format!(
        "SELECT handler, count(*) AS count, max(updated_at) AS newest
           FROM event_deliveries
          WHERE status = 'dead'{of_handler}
          GROUP BY handler
          ORDER BY handler"
    );
    params.bind(sql).load(conn)
}

/// What a confirmation to retry every dead delivery showed: how many there were, and when the
/// last of them died. A dead row changes only when it is retried (see [`super::history`]), so
/// the pair tells the set shown from any later one: one retried meanwhile, even if it has died
/// again since (it died later), one that died since, or one that completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeadSeen {
    pub count: i64,
    pub newest: Option<DateTime<Utc>>,
}

impl DeadSeen {
    pub fn of(dead: &[DeadOfHandler]) -> DeadSeen {
        DeadSeen {
            count: dead.iter().map(|of_handler| of_handler.count).sum(),
            newest: dead.iter().map(|of_handler| of_handler.newest).max(),
        }
    }
}

/// What came of retrying every dead delivery as a confirmation showed them.
#[derive(Debug, PartialEq, Eq)]
pub enum RetryAll {
    /// They were the ones shown: all of them are queued again (possibly none, if none was shown).
    Retried(usize),
    /// They changed since (retried, completed, or more died): nothing was retried.
    Changed { now: i64 },
}

#[derive(QueryableByName)]
struct RetriedAll {
    #[diesel(sql_type = BigInt)]
    now: i64,
    #[diesel(sql_type = BigInt)]
    revived: i64,
}

/// Puts every dead delivery (of one handler, or of all) back in the queue from its first
/// attempt, as [`super::retry_dead`] does for one, and wakes the dispatchers once; but only if
/// they are still the ones `seen` describes. One statement locks them, compares and revives:
/// a second retry of the same confirmation waits for the first, then finds them revived (or
/// dead again, later) and retries nothing.
pub fn retry_all_dead(conn: &mut PgConnection, handler_name: Option<&str>, seen: DeadSeen) -> QueryResult<RetryAll> {
    crate::as_module!(conn, Module::Outbox);
    conn.transaction(|conn| {
        let outcome = diesel::sql_query(
            "WITH dead AS (
                 SELECT event_id, handler, updated_at FROM event_deliveries
                  WHERE status = 'dead' AND ($1::text IS NULL OR handler = $1)
                    FOR UPDATE
             ), agreed AS (
                 SELECT count(*) AS now, count(*) = $2 AND max(updated_at) IS NOT DISTINCT FROM $3 AS same FROM dead
             ), revived AS (
                 UPDATE event_deliveries d
                    SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL
                   FROM dead, agreed
                  WHERE agreed.same AND d.event_id = dead.event_id AND d.handler = dead.handler AND d.status = 'dead'
              RETURNING 1
             )
             SELECT (SELECT now FROM agreed) AS now, (SELECT count(*) FROM revived) AS revived",
        )
        .bind::<Nullable<Text>, _>(handler_name)
        .bind::<BigInt, _>(seen.count)
        .bind::<Nullable<Timestamptz>, _>(seen.newest)
        .get_result::<RetriedAll>(conn)?;
        if outcome.now != seen.count || outcome.revived != outcome.now {
            return Ok(RetryAll::Changed { now: outcome.now });
        }
        if outcome.revived > 0 {
            diesel::sql_query(format!("NOTIFY {}", super::dispatcher::CHANNEL)).execute(conn)?;
        }
        Ok(RetryAll::Retried(outcome.revived as usize))
    })
}

/// Puts one dead delivery back in the queue, as [`super::retry_dead`] does, but only if it is
/// still the death the operator saw (`died_at`, its `updated_at` then): a second post of the
/// same confirmation finds it revived, or dead again since, and retries nothing.
pub fn retry_dead_as_seen(
    conn: &mut PgConnection,
    event: i64,
    handler_name: &str,
    died_at: DateTime<Utc>,
) -> QueryResult<bool> {
    crate::as_module!(conn, Module::Outbox);
    Ok(revive(conn, Some(event), Some(handler_name), Some(died_at))? == 1)
}

/// Puts dead deliveries (of one event, of one handler, or all; of one moment of death, if
/// given) back in the queue from their first attempt, in one statement, and wakes the
/// dispatchers once if any was revived.
pub(super) fn revive(
    conn: &mut PgConnection,
    event: Option<i64>,
    handler_name: Option<&str>,
    died_at: Option<DateTime<Utc>>,
) -> QueryResult<usize> {
    use crate::schema::event_deliveries::dsl::*;
    conn.transaction(|conn| {
        let mut revive = diesel::update(event_deliveries).filter(status.eq(DeliveryStatus::Dead)).into_boxed();
        if let Some(event) = event {
            revive = revive.filter(event_id.eq(event));
        }
        if let Some(name) = handler_name {
            revive = revive.filter(handler.eq(name.to_owned()));
        }
        if let Some(died_at) = died_at {
            revive = revive.filter(updated_at.eq(died_at));
        }
        let revived = revive
            .set((
                status.eq(DeliveryStatus::Pending),
                attempts.eq(0),
                next_attempt_at.eq(diesel::dsl::now),
                last_error.eq(None::<String>),
            ))
            .execute(conn)?;
        if revived > 0 {
            diesel::sql_query(format!("NOTIFY {}", super::dispatcher::CHANNEL)).execute(conn)?;
        }
        Ok(revived)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{OrderId, ProductId};

    #[test]
    fn an_aggregate_is_named_by_its_number_or_sku_else_by_the_start_of_its_id() {
        let id = uuid::Uuid::parse_str("1a2b3c4d-0000-4000-8000-000000000000").unwrap();
        let order = About { aggregate: Aggregate::Order(OrderId(id)), name: Some("AG-000017".into()) };
        assert_eq!(order.text(), "Order AG-000017");
        assert_eq!(order.href(), format!("/admin/orders/{id}"));
        let product = About { aggregate: Aggregate::Product(ProductId(id)), name: None };
        assert_eq!(product.text(), "Product 1a2b3c4d");
        assert_eq!(product.href(), format!("/admin/products/{id}"));
    }

    #[test]
    fn open_statuses_read_back_from_their_words() {
        for status in OpenStatus::ALL {
            assert_eq!(OpenStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OpenStatus::parse("completed"), None);
    }
}
