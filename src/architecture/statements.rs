//! PostgreSQL's own attribution of work to modules: with each module running as its own role,
//! `pg_stat_statements` (where the server loads it) sums calls, time and rows per role, beside
//! Agora's own per-module measurements.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Double, Text};

#[derive(Clone, Debug, QueryableByName, serde::Serialize, utoipa::ToSchema)]
pub struct RoleStatements {
    #[diesel(sql_type = Text)]
    pub role: String,
    #[diesel(sql_type = BigInt)]
    pub calls: i64,
    #[diesel(sql_type = Double)]
    pub total_time_ms: f64,
    #[diesel(sql_type = BigInt)]
    pub rows: i64,
}

#[derive(QueryableByName)]
struct Available {
    #[diesel(sql_type = Bool)]
    available: bool,
}

/// The module roles' statement statistics in this database, or `None` where the server does not
/// collect them.
pub fn by_role(conn: &mut PgConnection) -> QueryResult<Option<Vec<RoleStatements>>> {
    let available = diesel::sql_query(
        "SELECT to_regclass('pg_stat_statements') IS NOT NULL
                AND 'pg_stat_statements' = ANY(string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
                AS available",
    )
    .get_result::<Available>(conn)?
    .available;
    if !available {
        return Ok(None);
    }
    diesel::sql_query(
        "SELECT r.rolname::text AS role, sum(s.calls)::bigint AS calls,
                sum(s.total_exec_time)::float8 AS total_time_ms, sum(s.rows)::bigint AS rows
           FROM pg_stat_statements s
           JOIN pg_roles r ON r.oid = s.userid
          WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND r.rolname LIKE 'agora\\_%'
          GROUP BY r.rolname
          ORDER BY r.rolname",
    )
    .load(conn)
    .map(Some)
}
