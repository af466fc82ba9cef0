//! Orders and revenue per UTC day, for the dashboard's charts.

use chrono::{DateTime, Days, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text, Timestamptz};

use super::OrdersError;
use super::store::NET_REVENUE_SQL;
use crate::kernel::Module;

/// One UTC day's orders (every status) and revenue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesDay {
    pub day: NaiveDate,
    pub orders: i64,
    pub revenue_minor: i128,
}

#[derive(QueryableByName)]
struct DayRow {
    #[diesel(sql_type = Timestamptz)]
    starts: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    orders: i64,
    /// A `sum()` of bigints is `numeric`; as text it becomes an `i128` instead of overflowing.
    #[diesel(sql_type = Text)]
    revenue_minor: String,
}

/// The last `days` UTC days up to and including `today`, oldest first, days without orders
/// included. One range of the `orders (created_at)` index per day.
pub fn daily_sales(conn: &mut PgConnection, today: NaiveDate, days: u32) -> Result<Vec<SalesDay>, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    let days = days.max(1);
    let first = today.checked_sub_days(Days::new(u64::from(days - 1))).unwrap_or(NaiveDate::MIN);
    // Steps of 24 hours, not '1 day': a day interval follows the session's time zone across
    // daylight-saving changes, and these are UTC days. Revenue is money taken and not given back,
    // as [`super::dashboard`] counts it.
    let rows: Vec<DayRow> = diesel::sql_query(format!(
        "SELECT days.starts,
                count(o.id) AS orders,
                coalesce(sum({NET_REVENUE_SQL}), 0)::text AS revenue_minor
           FROM generate_series($1, $1 + ($2 - 1) * interval '24 hours', interval '24 hours') AS days (starts)
           LEFT JOIN orders o ON o.created_at >= days.starts AND o.created_at < days.starts + interval '24 hours'
          GROUP BY days.starts
          ORDER BY days.starts"
    ))
    .bind::<Timestamptz, _>(first.and_time(chrono::NaiveTime::MIN).and_utc())
    .bind::<Integer, _>(i32::try_from(days).unwrap_or(i32::MAX))
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|row| SalesDay {
            day: row.starts.date_naive(),
            orders: row.orders,
            revenue_minor: row.revenue_minor.parse().unwrap_or(i128::MAX),
        })
        .collect())
}
