//! The outbox's backlog over the last hours, reconstructed from the deliveries' own timestamps:
//! no history is recorded for it.
//!
//! A delivery waits from `created_at` until it completes (`completed_at`) or is given up on. A
//! dead delivery has no `completed_at`; its `updated_at` is when it died, because nothing updates
//! a dead row except [`super::retry_dead`], which makes it pending again. What the rows cannot
//! tell is a past death that an admin has since retried: such a delivery counts as waiting
//! throughout, from its creation.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Timestamptz};

use crate::kernel::Module;

/// How many deliveries were waiting for a handler, and how many were dead, at one moment.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct BacklogPoint {
    #[diesel(sql_type = Timestamptz)]
    pub at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub waiting: i64,
    #[diesel(sql_type = BigInt)]
    pub dead: i64,
}

/// The backlog at every full UTC hour of the last `hours` hours, oldest first, and now.
///
/// Only deliveries still open, or completed inside the window, can have been waiting at one of
/// its points. Each adds +1 waiting when created and -1 when it ended (+1 dead if it died); a
/// running sum over those changes and the points, in time order, is the backlog at each point.
/// That is one sort, where joining every point to every delivery would grow with their product.
/// Pending and dead rows come from their partial indexes, but finding the recently completed ones
/// reads the whole table: no index covers `completed_at`. The three statuses are tested apart so
/// that a partial index on `completed_at WHERE status = 'completed'` would serve the query as is.
pub fn backlog_history(conn: &mut PgConnection, hours: u32) -> QueryResult<Vec<BacklogPoint>> {
    crate::as_module!(conn, Module::Outbox);
    // `bounds` is computed once: in a WHERE clause `date_trunc(.., 'UTC')` would run per row.
    // Within one instant, changes sort before the point (false < true): a delivery created at
    // the point was waiting then, one that ended at it no longer was.
    diesel::sql_query(
        "WITH bounds AS MATERIALIZED (
             SELECT date_trunc('hour', now(), 'UTC') - $1 * interval '1 hour' AS since, now() AS until
         ), points AS (
             SELECT generate_series(since, until, interval '1 hour') AS at FROM bounds
              UNION
             SELECT until FROM bounds
         ), spans AS (
             SELECT created_at,
                    CASE status WHEN 'completed' THEN completed_at WHEN 'dead' THEN updated_at END AS ended_at,
                    status = 'dead' AS died
               FROM event_deliveries
              WHERE status = 'pending' OR status = 'dead'
                 OR (status = 'completed' AND completed_at > (SELECT since FROM bounds))
         ), timeline AS (
             SELECT created_at AS at, false AS is_point, 1 AS waiting, 0 AS dead FROM spans
              UNION ALL
             SELECT ended_at, false, -1, died::int FROM spans WHERE ended_at IS NOT NULL
              UNION ALL
             SELECT at, true, 0, 0 FROM points
         )
         SELECT at, waiting, dead
           FROM (SELECT at, is_point, sum(waiting) OVER running AS waiting, sum(dead) OVER running AS dead
                   FROM timeline
                 WINDOW running AS (ORDER BY at, is_point)) AS running_totals
          WHERE is_point
          ORDER BY at",
    )
    .bind::<Integer, _>(i32::try_from(hours).unwrap_or(i32::MAX))
    .load(conn)
}
