//! The operator's order search and the customers list: by number in any form, by any part of a
//! customer's name or e-mail address (trigram indexes serve `ILIKE '%…%'`), sorted, page by page,
//! with a bounded count and the totals of what matched.

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};

use super::{Customer, Order, OrderStatus, OrdersError};
use crate::admin::listing::{COUNT_CAP, Column, Numbered, PER_PAGE, Sort};
use crate::ids::{CustomerId, OrderNumber};
use crate::kernel::Module;

/// Fewer characters than a trigram cannot use the index; such a search would read every customer.
pub const MIN_TEXT_CHARS: usize = 3;

/// What the operator typed in the search box, understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Needle {
    Number(OrderNumber),
    /// Part of a name or an e-mail address, as typed (matched case-insensitively).
    Text(String),
}

impl Needle {
    /// `None` when the text is too short to search by (see [`MIN_TEXT_CHARS`]).
    pub fn parse(typed: &str) -> Option<Needle> {
        let typed = typed.trim();
        if let Some(number) = OrderNumber::parse_loosely(typed) {
            return Some(Needle::Number(number));
        }
        (typed.chars().count() >= MIN_TEXT_CHARS).then(|| Needle::Text(typed.to_owned()))
    }
}

#[derive(Clone, Debug, Default)]
pub struct OrderSearch {
    pub status: Option<OrderStatus>,
    pub needle: Option<Needle>,
    pub customer: Option<CustomerId>,
}

pub const ORDER_COLUMNS: [Column; 4] =
    [Column::desc("placed"), Column::desc("number"), Column::desc("total"), Column::asc("customer")];

/// A page of orders with what all the matching orders add up to.
pub struct OrderResults {
    pub page: Numbered<(Order, Customer)>,
    /// The sum of the matching orders' totals; `None` past the counting cap.
    pub total_minor: Option<i128>,
}

/// At most this many customers matching a text are fetched and their orders read by customer;
/// more, and the orders are walked in the list's order with the text as a join condition.
const FEW_CUSTOMERS: i64 = 1_000;

/// The customers a text search matched, as the queries use them.
enum Matched {
    /// No text to match.
    Everyone,
    /// Few enough to name: their orders come from the (customer_id, created_at) index.
    These(Vec<CustomerId>),
    /// Too many to name (a common surname, a shared domain): the pattern is matched in the join.
    Many(String),
}

/// Adds the search's conditions to a boxed query over `orders`, alone or (`joined`) with its
/// customer: the same conditions for the count, the sum and the page.
macro_rules! matching {
    ($query:expr, $search:expr, $matched:expr) => {
        // `= ANY(ARRAY(…))`, not `IN (…)`: the customers are read first and their orders probed
        // through (customer_id, created_at) until the count's limit; `IN` let the planner
        // hash-join a scan of every order instead.
        matching!($query, $search, $matched, |pattern: String| {
            diesel::dsl::sql::<diesel::sql_types::Bool>(
                "orders.customer_id = ANY(ARRAY(SELECT customers.id FROM customers WHERE customers.name ILIKE ",
            )
            .bind::<Text, _>(pattern.clone())
            .sql(" OR customers.email ILIKE ")
            .bind::<Text, _>(pattern)
            .sql("))")
        })
    };
    (joined $query:expr, $search:expr, $matched:expr) => {
        matching!($query, $search, $matched, |pattern: String| {
            crate::schema::customers::name.ilike(pattern.clone()).or(crate::schema::customers::email.ilike(pattern))
        })
    };
    ($query:expr, $search:expr, $matched:expr, $by_pattern:expr) => {{
        use crate::schema::orders;
        let mut query = $query;
        if let Some(status) = $search.status {
            query = query.filter(orders::status.eq(status));
        }
        if let Some(customer) = $search.customer {
            query = query.filter(orders::customer_id.eq(customer));
        }
        if let Some(Needle::Number(number)) = &$search.needle {
            query = query.filter(orders::number.eq(number.0));
        }
        match $matched {
            Matched::Everyone => {}
            Matched::These(ids) => query = query.filter(orders::customer_id.eq_any(ids.clone())),
            Matched::Many(pattern) => query = query.filter(($by_pattern)(pattern.clone())),
        }
        query
    }};
}

/// The customers a text names: from the trigram indexes on their names and addresses.
fn matched(conn: &mut PgConnection, search: &OrderSearch) -> QueryResult<Matched> {
    use crate::schema::customers;
    let Some(Needle::Text(text)) = &search.needle else {
        return Ok(Matched::Everyone);
    };
    let pattern = crate::input::like_containing(text);
    let ids = customers::table
        .filter(customers::name.ilike(pattern.clone()).or(customers::email.ilike(pattern.clone())))
        .select(customers::id)
        .limit(FEW_CUSTOMERS + 1)
        .load::<CustomerId>(conn)?;
    Ok(if ids.len() as i64 > FEW_CUSTOMERS { Matched::Many(pattern) } else { Matched::These(ids) })
}

pub fn search_orders(
    conn: &mut PgConnection,
    search: &OrderSearch,
    sort: Sort,
    page: i64,
) -> Result<OrderResults, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    use crate::schema::{customers, orders};
    let matched = matched(conn, search)?;
    if matches!(&matched, Matched::These(ids) if ids.is_empty()) {
        return Ok(OrderResults { page: Numbered::new(Vec::new(), page, 0), total_minor: Some(0) });
    }
    let counted = matching!(orders::table.select(orders::id).into_boxed(), search, &matched)
        .limit(COUNT_CAP + 1)
        .load::<uuid::Uuid>(conn)?
        .len() as i64;
    let total_minor = if counted <= COUNT_CAP {
        let sum = orders::table.select(sql::<Nullable<Text>>("sum(orders.total_minor)::text")).into_boxed();
        let sum: Option<String> = matching!(sum, search, &matched).get_result(conn)?;
        Some(sum.and_then(|sum| sum.parse::<i128>().ok()).unwrap_or(0))
    } else {
        None
    };
    let query = matching!(
        joined orders::table
            .inner_join(customers::table)
            .select((Order::as_select(), Customer::as_select()))
            .limit(PER_PAGE)
            .offset(Numbered::<()>::offset(page))
            .into_boxed(),
        search,
        &matched
    );
    let query = match (sort.key, sort.descending) {
        ("number", true) => query.order(orders::number.desc()),
        ("number", false) => query.order(orders::number.asc()),
        ("total", true) => query.order((orders::total_minor.desc(), orders::id.desc())),
        ("total", false) => query.order((orders::total_minor.asc(), orders::id.asc())),
        ("customer", true) => query.order((customers::name.desc(), orders::created_at.desc(), orders::id.desc())),
        ("customer", false) => query.order((customers::name.asc(), orders::created_at.desc(), orders::id.desc())),
        (_, false) => query.order((orders::created_at.asc(), orders::id.asc())),
        (_, true) => query.order((orders::created_at.desc(), orders::id.desc())),
    };
    let rows = query.load(conn)?;
    Ok(OrderResults { page: Numbered::new(rows, page, counted), total_minor })
}

pub fn customer(conn: &mut PgConnection, id: CustomerId) -> QueryResult<Option<Customer>> {
    crate::as_module!(conn, Module::Orders);
    use crate::schema::customers;
    customers::table.find(id).select(Customer::as_select()).first(conn).optional()
}

/// A customer as the customers page lists them: what they ordered and spent.
#[derive(Debug, QueryableByName)]
pub struct CustomerSummary {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub email: String,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[diesel(sql_type = BigInt)]
    pub orders: i64,
    /// Paid and shipped orders, summed as `numeric` and read as text (see `StatusTotal`).
    #[diesel(sql_type = Text)]
    pub spent_minor: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_order_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl CustomerSummary {
    pub fn spent(&self) -> i128 {
        self.spent_minor.parse().unwrap_or(0)
    }
}

pub const CUSTOMER_COLUMNS: [Column; 3] = [Column::desc("since"), Column::asc("name"), Column::asc("email")];

/// Customers matching part of a name or address, a page at a time; each one's orders are
/// summed through (customer_id, created_at), so a page costs its 50 customers, not the table.
pub fn search_customers(
    conn: &mut PgConnection,
    text: Option<&str>,
    sort: Sort,
    page: i64,
) -> Result<Numbered<CustomerSummary>, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    use crate::schema::customers;
    let pattern = text.map(crate::input::like_containing);
    let mut matching = customers::table.select(customers::id).into_boxed();
    if let Some(pattern) = &pattern {
        matching = matching.filter(customers::name.ilike(pattern.clone()).or(customers::email.ilike(pattern.clone())));
    }
    let counted = matching.limit(COUNT_CAP + 1).load::<uuid::Uuid>(conn)?.len() as i64;
    let order_by = match (sort.key, sort.descending) {
        ("name", false) => "c.name ASC, c.id ASC",
        ("name", true) => "c.name DESC, c.id DESC",
        ("email", false) => "c.email ASC",
        ("email", true) => "c.email DESC",
        (_, false) => "c.created_at ASC, c.id ASC",
        (_, true) => "c.created_at DESC, c.id DESC",
    };
    // `order_by` is one of the fixed strings above, never text from the request.
    let rows = diesel::sql_query(format!(
        "SELECT c.id, c.name, c.email, c.created_at, o.orders, o.spent_minor, o.last_order_at
           FROM (SELECT * FROM customers c
                  WHERE $1::text IS NULL OR c.name ILIKE $1 OR c.email ILIKE $1
                  ORDER BY {order_by} LIMIT $2 OFFSET $3) c
           CROSS JOIN LATERAL (
             SELECT count(*) AS orders,
                    coalesce(sum({NET_REVENUE_SQL}), 0)::text AS spent_minor,
                    max(o.created_at) AS last_order_at
               FROM orders o WHERE o.customer_id = c.id) o
          ORDER BY {order_by}",
        NET_REVENUE_SQL = super::store::NET_REVENUE_SQL
    ))
    .bind::<Nullable<Text>, _>(pattern)
    .bind::<BigInt, _>(PER_PAGE)
    .bind::<BigInt, _>(Numbered::<()>::offset(page))
    .load::<CustomerSummary>(conn)?;
    Ok(Numbered::new(rows, page, counted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_is_a_number_or_at_least_three_characters() {
        assert_eq!(Needle::parse("AG000017"), Some(Needle::Number(OrderNumber(17))));
        assert_eq!(Needle::parse(" Lovelace "), Some(Needle::Text("Lovelace".into())));
        assert_eq!(Needle::parse("ad"), None);
    }
}
