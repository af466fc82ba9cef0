//! Diesel queries on `products`.

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text, Uuid as SqlUuid};

use super::model::{NewProduct, Product, ProductChanges};
use crate::ids::ProductId;

pub fn insert(conn: &mut PgConnection, product: &NewProduct) -> QueryResult<Product> {
    use crate::schema::products::dsl::*;
    diesel::insert_into(products).values(product).returning(Product::as_returning()).get_result(conn)
}

pub fn find(conn: &mut PgConnection, product_id: ProductId) -> QueryResult<Option<Product>> {
    use crate::schema::products::dsl::*;
    products.find(product_id).select(Product::as_select()).first(conn).optional()
}

pub fn last_change(conn: &mut PgConnection) -> QueryResult<Option<chrono::DateTime<chrono::Utc>>> {
    use crate::schema::products::dsl::*;
    products.select(diesel::dsl::max(updated_at)).get_result(conn)
}

pub fn sku_taken(conn: &mut PgConnection, wanted: &str) -> QueryResult<bool> {
    use crate::schema::products::dsl::*;
    diesel::select(diesel::dsl::exists(products.filter(sku.eq(wanted)))).get_result(conn)
}

pub fn is_empty(conn: &mut PgConnection) -> QueryResult<bool> {
    use crate::schema::products::dsl::*;
    diesel::select(diesel::dsl::not(diesel::dsl::exists(products.select(id)))).get_result(conn)
}

pub fn update(
    conn: &mut PgConnection,
    product_id: ProductId,
    changes: &ProductChanges,
) -> QueryResult<Option<Product>> {
    use crate::schema::products::dsl::*;
    diesel::update(products.find(product_id))
        .set(changes)
        .returning(Product::as_returning())
        .get_result(conn)
        .optional()
}

pub struct ListFilter<'a> {
    /// Substring of the name or the SKU, case-insensitive.
    pub query: Option<&'a str>,
    pub include_inactive: bool,
}

/// Products by (name, id), from just after `after`: one index range scan per page.
pub fn list(
    conn: &mut PgConnection,
    filter: &ListFilter<'_>,
    after: Option<(String, ProductId)>,
    limit: i64,
) -> QueryResult<Vec<Product>> {
    use crate::schema::products::dsl::*;
    let mut query = products.select(Product::as_select()).order((name.asc(), id.asc())).limit(limit).into_boxed();
    if !filter.include_inactive {
        query = query.filter(active.eq(true));
    }
    if let Some(text) = filter.query.map(str::trim).filter(|text| !text.is_empty()) {
        let pattern = crate::input::like_containing(text);
        query = query.filter(name.ilike(pattern.clone()).or(sku.ilike(pattern)));
    }
    if let Some((after_name, after_id)) = after {
        // A row comparison, which PostgreSQL answers from the (name, id) index directly.
        query = query.filter(
            sql::<Bool>("(products.name, products.id) > (")
                .bind::<Text, _>(after_name)
                .sql(", ")
                .bind::<SqlUuid, _>(after_id)
                .sql(")"),
        );
    }
    query.load(conn)
}
