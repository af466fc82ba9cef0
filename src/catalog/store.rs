//! Diesel queries on `products` and `categories`.

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text, Uuid as SqlUuid};

use super::model::{Category, NewCategory, NewProduct, Product, ProductChanges, ProductWithCategory};
use crate::ids::{CategoryId, ProductId};

pub fn insert(conn: &mut PgConnection, product: &NewProduct) -> QueryResult<Product> {
    use crate::schema::products::dsl::*;
    diesel::insert_into(products).values(product).returning(Product::as_returning()).get_result(conn)
}

pub fn find(conn: &mut PgConnection, product_id: ProductId) -> QueryResult<Option<Product>> {
    use crate::schema::products::dsl::*;
    products.find(product_id).select(Product::as_select()).first(conn).optional()
}

pub fn find_with_category(conn: &mut PgConnection, product_id: ProductId) -> QueryResult<Option<ProductWithCategory>> {
    use crate::schema::{categories, products};
    products::table
        .left_join(categories::table)
        .filter(products::id.eq(product_id))
        .select((Product::as_select(), Option::<Category>::as_select()))
        .first(conn)
        .optional()
        .map(|found| found.map(with_category))
}

fn with_category((product, category): (Product, Option<Category>)) -> ProductWithCategory {
    ProductWithCategory { product, category }
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
    /// Only the products of the category with this slug (none, for a slug no category has).
    pub category: Option<&'a str>,
}

/// Products by (name, id), from just after `after`: one index range scan per page.
pub fn list(
    conn: &mut PgConnection,
    filter: &ListFilter<'_>,
    after: Option<(String, ProductId)>,
    limit: i64,
) -> QueryResult<Vec<ProductWithCategory>> {
    use crate::schema::categories;
    use crate::schema::products::dsl::*;
    let mut query = products
        .left_join(categories::table)
        .select((Product::as_select(), Option::<Category>::as_select()))
        .order((name.asc(), id.asc()))
        .limit(limit)
        .into_boxed();
    if !filter.include_inactive {
        query = query.filter(active.eq(true));
    }
    if let Some(text) = filter.query.map(str::trim).filter(|text| !text.is_empty()) {
        let pattern = crate::input::like_containing(text);
        query = query.filter(name.ilike(pattern.clone()).or(sku.ilike(pattern)));
    }
    if let Some(wanted) = filter.category {
        query = query.filter(categories::slug.eq(wanted));
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
    Ok(query.load(conn)?.into_iter().map(with_category).collect())
}

pub fn insert_category(conn: &mut PgConnection, category: &NewCategory) -> QueryResult<Category> {
    use crate::schema::categories::dsl::*;
    diesel::insert_into(categories).values(category).returning(Category::as_returning()).get_result(conn)
}

/// Every category by name (there are few: the shop's aisles, not its products).
pub fn categories(conn: &mut PgConnection) -> QueryResult<Vec<Category>> {
    use crate::schema::categories::dsl::*;
    categories.select(Category::as_select()).order((name.asc(), slug.asc())).load(conn)
}

pub fn category_by_slug(conn: &mut PgConnection, wanted: &str) -> QueryResult<Option<Category>> {
    use crate::schema::categories::dsl::*;
    categories.filter(slug.eq(wanted)).select(Category::as_select()).first(conn).optional()
}

pub fn category_id_by_slug(conn: &mut PgConnection, wanted: &str) -> QueryResult<Option<CategoryId>> {
    use crate::schema::categories::dsl::*;
    categories.filter(slug.eq(wanted)).select(id).first(conn).optional()
}

pub fn find_category(conn: &mut PgConnection, category_id: CategoryId) -> QueryResult<Option<Category>> {
    use crate::schema::categories::dsl::*;
    categories.find(category_id).select(Category::as_select()).first(conn).optional()
}
