//! Catalog: products (SKU, name, description, price, active) and the categories they sit in.
//! The module's public face.
//!
//! Other modules read `products` directly (orders prices lines from it; inventory and
//! notifications read names and SKUs; the storefront reads `categories` too): that is the
//! shared-database pattern, declared in [`crate::architecture::declarations`].

pub mod api;
pub mod cache;
pub mod category_pages;
pub mod listing;
mod model;
pub mod pages;
mod store;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

pub use model::{
    Category, CategoryDraft, DEFAULT_LOW_STOCK_THRESHOLD, NewProduct, Product, ProductChanges, ProductDraft,
    ProductPatch, ProductWithCategory,
};

use crate::error::{AppError, FieldError};
use crate::ids::ProductId;
use crate::kernel::{Call, Module, TableAccess};
use crate::pagination::Keyset;

/// The catalog's tables. No other module's table is read: the catalog is the most depended-on
/// module and depends on nobody's data.
pub const TABLES: TableAccess =
    TableAccess { module: Module::Catalog, owns: &["products", "categories"], reads: &[], writes: &[] };

pub const CALLS: &[Call] = &[
    Call {
        module: Module::Inventory,
        reason: "a new product starts with its stock tracked, in the same transaction; the product page shows its stock",
    },
    Call { module: Module::Admin, reason: "its admin pages use the admin layout, session and CSRF token" },
];

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("no product with id {0}")]
    NotFound(ProductId),
    #[error("a product with SKU {0} already exists")]
    DuplicateSku(String),
    #[error("a category with slug {0} already exists")]
    DuplicateCategorySlug(String),
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Database(#[from] DieselError),
}

impl From<CatalogError> for AppError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::NotFound(id) => AppError::not_found(format!("No product with id {id}.")),
            CatalogError::DuplicateSku(sku) => {
                AppError::conflict("duplicate-sku", format!("A product with SKU {sku} already exists."))
                    .with("sku", sku)
            }
            CatalogError::DuplicateCategorySlug(slug) => {
                AppError::conflict("duplicate-category-slug", format!("A category with slug {slug} already exists."))
                    .with("slug", slug)
            }
            CatalogError::Invalid(errors) => AppError::validation(errors),
            CatalogError::Database(error) => error.into(),
        }
    }
}

/// Creates a product and starts tracking its stock (at zero), in one transaction.
pub fn create_product(conn: &mut PgConnection, draft: ProductDraft) -> Result<Product, CatalogError> {
    crate::as_module!(conn, Module::Catalog);
    let new_product = draft.validate(|slug| store::category_id_by_slug(conn, slug))?.map_err(CatalogError::Invalid)?;
    conn.transaction(|conn| {
        let product = store::insert(conn, &new_product).map_err(|error| match error {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                CatalogError::DuplicateSku(new_product.sku.clone())
            }
            other => other.into(),
        })?;
        crate::inventory::track_product(conn, product.id)?;
        Ok(product)
    })
}

pub fn update_product(conn: &mut PgConnection, id: ProductId, patch: ProductPatch) -> Result<Product, CatalogError> {
    crate::as_module!(conn, Module::Catalog);
    let changes = patch.validate(|slug| store::category_id_by_slug(conn, slug))?.map_err(CatalogError::Invalid)?;
    if changes.is_empty() {
        return get_product(conn, id);
    }
    store::update(conn, id, &changes)?.ok_or(CatalogError::NotFound(id))
}

/// The product with its category, as the API and the admin pages show it.
pub fn get_product_with_category(conn: &mut PgConnection, id: ProductId) -> Result<ProductWithCategory, CatalogError> {
    crate::as_module!(conn, Module::Catalog);
    store::find_with_category(conn, id)?.ok_or(CatalogError::NotFound(id))
}

/// A product just written, with its category: one lookup by key, none without a category.
pub fn with_category(conn: &mut PgConnection, product: Product) -> Result<ProductWithCategory, CatalogError> {
    crate::as_module!(conn, Module::Catalog);
    let category = match product.category_id {
        None => None,
        Some(category_id) => store::find_category(conn, category_id)?,
    };
    Ok(ProductWithCategory { product, category })
}

/// Every category, by name.
pub fn categories(conn: &mut PgConnection) -> QueryResult<Vec<Category>> {
    crate::as_module!(conn, Module::Catalog);
    store::categories(conn)
}

pub fn category_by_slug(conn: &mut PgConnection, slug: &str) -> QueryResult<Option<Category>> {
    crate::as_module!(conn, Module::Catalog);
    // A slug that breaks the rule names no category; asking would only cost a round trip, or an
    // error for text PostgreSQL cannot store.
    if model::parse_slug(slug).is_err() {
        return Ok(None);
    }
    store::category_by_slug(conn, slug)
}

/// Creates a category; its slug is unique.
pub fn create_category(conn: &mut PgConnection, draft: CategoryDraft) -> Result<Category, CatalogError> {
    crate::as_module!(conn, Module::Catalog);
    let new_category = draft.validate().map_err(CatalogError::Invalid)?;
    store::insert_category(conn, &new_category).map_err(|error| match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            CatalogError::DuplicateCategorySlug(new_category.slug.clone())
        }
        other => other.into(),
    })
}

/// Whether some category already has this slug (the form says so with the other messages).
pub fn slug_taken(conn: &mut PgConnection, slug: &str) -> QueryResult<bool> {
    crate::as_module!(conn, Module::Catalog);
    Ok(model::parse_slug(slug).is_ok() && store::category_id_by_slug(conn, slug)?.is_some())
}

/// Whether some product already has this SKU (the form says so before anything is saved).
pub fn sku_taken(conn: &mut PgConnection, sku: &str) -> QueryResult<bool> {
    crate::as_module!(conn, Module::Catalog);
    store::sku_taken(conn, sku)
}

/// Whether the catalog has no product yet (a fresh database).
pub fn is_empty(conn: &mut PgConnection) -> QueryResult<bool> {
    crate::as_module!(conn, Module::Catalog);
    store::is_empty(conn)
}

pub fn get_product(conn: &mut PgConnection, id: ProductId) -> Result<Product, CatalogError> {
    crate::as_module!(conn, Module::Catalog);
    store::find(conn, id)?.ok_or(CatalogError::NotFound(id))
}

/// When any product last changed: the `Last-Modified` of the product list.
pub fn last_change(conn: &mut PgConnection) -> Result<Option<chrono::DateTime<chrono::Utc>>, CatalogError> {
    crate::as_module!(conn, Module::Catalog);
    Ok(store::last_change(conn)?)
}

/// Sort key of the product list, carried in cursors.
pub type ListCursor = (String, ProductId);

/// A page of products by name; `category` is a category's slug (a slug no category has lists none).
pub fn list_products(
    conn: &mut PgConnection,
    query: Option<&str>,
    category: Option<&str>,
    include_inactive: bool,
    after: Option<ListCursor>,
    limit: i64,
) -> Result<Keyset<ProductWithCategory>, CatalogError> {
    crate::as_module!(conn, Module::Catalog);
    let filter = store::ListFilter { query, include_inactive, category };
    let rows = store::list(conn, &filter, after, limit + 1)?;
    Ok(Keyset::from_rows(rows, limit, |listed| (listed.product.name.clone(), listed.product.id)))
}
