//! JSON handlers for products and categories.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use utoipa::openapi::schema::Object;

use super::cache::{Change, ListKey};
use super::{Category, CategoryDraft, ListCursor, ProductDraft, ProductPatch, ProductWithCategory, model};
use crate::error::{AppError, ProblemDetails};
use crate::http::admin_token::AdminToken;
use crate::http::problems::{
    InvalidFields, InvalidQuery, MalformedJson, MalformedQuery, ProductNotFound, Unauthorized, Unavailable,
};
use crate::http::state::AppState;
use crate::http::validators::{self, Representation};
use crate::ids::ProductId;
use crate::input::{self, whole_number};
use crate::kernel::Module;
use crate::money::Currency;
use crate::pagination::{List, Page, PageQuery};

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_products)
        .service(get_product)
        .service(create_product)
        .service(update_product)
        .service(list_categories)
        .service(create_category);
}

/// A product as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProductView {
    pub id: ProductId,
    pub sku: String,
    pub name: String,
    pub description: String,
    /// Price in minor units of `currency` (e.g. cents).
    pub price_minor: i64,
    pub currency: &'static str,
    /// Inactive products are hidden from the list and cannot be ordered.
    pub active: bool,
    pub low_stock_threshold: i32,
    /// The slug of the category the product sits in; `null` for none.
    #[schema(schema_with = optional_slug_schema, required = true)]
    pub category: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ProductView {
    pub fn new(ProductWithCategory { product, category }: ProductWithCategory, currency: Currency) -> Self {
        ProductView {
            id: product.id,
            sku: product.sku,
            name: product.name,
            description: product.description,
            price_minor: product.price_minor,
            currency: currency.code(),
            active: product.active,
            low_stock_threshold: product.low_stock_threshold,
            category: category.map(|category| category.slug),
            created_at: product.created_at,
            updated_at: product.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductSearch {
    /// Case-insensitive substring of the name or the SKU; empty means every product.
    #[param(schema_with = search_schema)]
    q: Option<String>,
    /// Only the products of the category with this slug; a slug no category has lists none.
    #[param(schema_with = slug_schema)]
    category: Option<String>,
}

fn search_schema() -> Object {
    input::SEARCH.schema()
}

fn slug_schema() -> Object {
    model::SLUG.schema()
}

/// Active products by name; `q` searches name and SKU, `category` picks one category's.
#[utoipa::path(
    tag = "catalog",
    params(ProductSearch, PageQuery, IfNoneMatch),
    responses(
        (status = 200, description = "A page of active products", body = Page<ProductView>, headers(
            ("ETag" = String, description = "Changes whenever the page does"),
            ("Last-Modified" = String, description = "The latest change to any product"),
            ("Cache-Control" = String, description = "How long a copy may be used without asking again"),
        )),
        (status = 304, description = "The copy named by `If-None-Match` is current"),
        MalformedQuery,
        InvalidQuery,
        Unavailable,
    )
)]
#[get("/products")]
pub async fn list_products(
    request: HttpRequest,
    state: web::Data<AppState>,
    search: web::Query<ProductSearch>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let (limit, after) = (page.limit()?, page.cursor::<ListCursor>(&state.keys.cursors, List::Products)?);
    let ProductSearch { q, category } = search.into_inner();
    let search = match q {
        None => None,
        Some(q) => Some(input::SEARCH.check(&q).map_err(|message| AppError::invalid("q", message))?.to_owned()),
    };
    if let Some(slug) = &category {
        model::SLUG.check(slug).map_err(|message| AppError::invalid("category", message))?;
    }
    let key = ListKey { query: search.clone(), category: category.clone(), cursor: page.into_inner().cursor, limit };
    let (db, currency, keys) = (state.db.clone(), state.config.currency, state.keys.clone());
    let representation = state
        .catalog
        .list(key, |read_after| async move {
            let (products, last_change) = db
                .read(Module::Catalog.op("list_products"), read_after, move |conn| {
                    // The date first: a change committing in between makes the page newer than
                    // its date, which costs a client a full answer, never a stale 304.
                    let last_change = super::last_change(conn)?;
                    let page = super::list_products(
                        conn,
                        search.as_deref(),
                        category.as_deref(),
                        false,
                        after.clone(),
                        limit,
                    )?;
                    Ok::<_, super::CatalogError>((page, last_change))
                })
                .await?;
            let page =
                products.map(|product| ProductView::new(product, currency)).signed(&keys.cursors, List::Products);
            let body = serde_json::to_vec(&page).map_err(AppError::internal)?;
            Ok(Representation::new(body, last_change.map_or(std::time::UNIX_EPOCH, Into::into)))
        })
        .await?;
    Ok(validators::respond(&request, &representation, &state.catalog.cache_control))
}

/// `If-None-Match`: the `ETag` of the copy the client holds.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfNoneMatch {
    /// An `ETag` from an earlier answer; a match answers 304 without a body.
    #[serde(rename = "If-None-Match")]
    #[param(rename = "If-None-Match")]
    _if_none_match: Option<String>,
}

/// One product, inactive ones included (flagged by `active`).
#[utoipa::path(
    tag = "catalog",
    params(("id" = ProductId, Path, description = "Product id"), IfNoneMatch),
    responses(
        (status = 200, description = "The product", body = ProductView, headers(
            ("ETag" = String, description = "Changes whenever the product does"),
            ("Last-Modified" = String, description = "When the product last changed"),
            ("Cache-Control" = String, description = "How long a copy may be used without asking again"),
        )),
        (status = 304, description = "The copy named by `If-None-Match` is current"),
        ProductNotFound,
        Unavailable,
    )
)]
#[get("/products/{id}")]
pub async fn get_product(
    request: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<ProductId>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let (db, currency) = (state.db.clone(), state.config.currency);
    let representation = state
        .catalog
        .product(id, |read_after| async move {
            let product = db
                .read(Module::Catalog.op("get_product"), read_after, move |conn| {
                    super::get_product_with_category(conn, id)
                })
                .await?;
            product_representation(product, currency)
        })
        .await?;
    Ok(validators::respond(&request, &representation, &state.catalog.cache_control))
}

fn product_representation(product: ProductWithCategory, currency: Currency) -> Result<Representation, AppError> {
    let last_modified = product.product.updated_at.into();
    let body = serde_json::to_vec(&ProductView::new(product, currency)).map_err(AppError::internal)?;
    Ok(Representation::new(body, last_modified))
}

/// Drops this process's cached copies at once (every other process hears of the change from
/// the database) and remembers where a replica must be before it may answer for the catalog.
pub(super) async fn forget_cached(state: &AppState, change: Change) {
    // Unknown, the position cannot hold reads back; the change's notification brings it anyway.
    let position = state.db.position_after_write().await.unwrap_or(0);
    state.catalog.changed(&change, position, "local");
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    /// 3 to 32 upper-case letters, digits or dashes; unique.
    #[schema(schema_with = sku_schema)]
    sku: String,
    /// One line, 1 to 200 characters, trimmed.
    #[schema(schema_with = name_schema)]
    name: String,
    /// Up to 10,000 characters; line breaks and tabs are kept.
    #[serde(default)]
    #[schema(schema_with = description_schema)]
    description: Option<String>,
    /// Minor units of the shop currency.
    #[serde(deserialize_with = "whole_number::required")]
    #[schema(schema_with = price_schema)]
    price_minor: i64,
    /// Available stock at or below this writes a `StockLow` event (default 5).
    #[serde(default, deserialize_with = "whole_number::optional")]
    #[schema(schema_with = threshold_schema)]
    low_stock_threshold: Option<i64>,
    /// The slug of an existing category to put the product in; absent or `null` for none.
    #[serde(default)]
    #[schema(schema_with = optional_slug_schema)]
    category: Option<String>,
}

fn optional_slug_schema() -> Object {
    input::or_null(model::SLUG.schema())
}

fn sku_schema() -> Object {
    model::SKU.schema()
}

fn name_schema() -> Object {
    model::NAME.schema()
}

fn optional_name_schema() -> Object {
    input::or_null(model::NAME.schema())
}

fn description_schema() -> Object {
    input::or_null(model::DESCRIPTION.schema())
}

fn price_schema() -> Object {
    model::PRICE_MINOR.schema()
}

fn optional_price_schema() -> Object {
    input::or_null(model::PRICE_MINOR.schema())
}

fn threshold_schema() -> Object {
    input::or_null(model::LOW_STOCK_THRESHOLD.schema())
}

/// Creates a product (its stock starts at zero).
#[utoipa::path(
    tag = "catalog",
    security(("admin_token" = [])),
    request_body = CreateProduct,
    responses(
        (status = 201, description = "Created", body = ProductView),
        MalformedJson,
        Unauthorized,
        (status = 409, description = "The SKU exists already", body = ProblemDetails, content_type = "application/problem+json"),
        InvalidFields,
        Unavailable,
    )
)]
#[post("/products")]
pub async fn create_product(
    _admin: AdminToken,
    state: web::Data<AppState>,
    body: web::Json<CreateProduct>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let draft = ProductDraft {
        sku: body.sku,
        name: body.name,
        description: body.description,
        price_minor: body.price_minor,
        low_stock_threshold: body.low_stock_threshold,
        category: body.category,
    };
    let product = state
        .db
        .run(Module::Catalog.op("create_product"), move |conn| {
            let product = super::create_product(conn, draft)?;
            super::with_category(conn, product)
        })
        .await?;
    forget_cached(&state, Change::Added).await;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/products/{}", product.product.id)))
        .json(ProductView::new(product, state.config.currency)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProduct {
    #[serde(default)]
    #[schema(schema_with = optional_name_schema)]
    name: Option<String>,
    #[serde(default)]
    #[schema(schema_with = description_schema)]
    description: Option<String>,
    #[serde(default, deserialize_with = "whole_number::optional")]
    #[schema(schema_with = optional_price_schema)]
    price_minor: Option<i64>,
    /// `false` hides the product from the shop and from new orders; existing orders keep it.
    active: Option<bool>,
    #[serde(default, deserialize_with = "whole_number::optional")]
    #[schema(schema_with = threshold_schema)]
    low_stock_threshold: Option<i64>,
    /// The slug of an existing category to move the product to; `null` takes it out of its
    /// category; absent leaves it where it is.
    #[serde(default, deserialize_with = "input::present")]
    #[schema(schema_with = optional_slug_schema)]
    category: Option<Option<String>>,
}

/// Changes any of name, description, price, active, threshold, category. Products are never deleted.
#[utoipa::path(
    tag = "catalog",
    security(("admin_token" = [])),
    params(("id" = ProductId, Path, description = "Product id")),
    request_body = UpdateProduct,
    responses(
        (status = 200, description = "Updated", body = ProductView),
        MalformedJson,
        Unauthorized,
        ProductNotFound,
        InvalidFields,
        Unavailable,
    )
)]
#[patch("/products/{id}")]
pub async fn update_product(
    _admin: AdminToken,
    state: web::Data<AppState>,
    id: web::Path<ProductId>,
    body: web::Json<UpdateProduct>,
) -> Result<web::Json<ProductView>, AppError> {
    let (id, body) = (id.into_inner(), body.into_inner());
    let patch = ProductPatch {
        name: body.name,
        description: body.description,
        price_minor: body.price_minor,
        active: body.active,
        low_stock_threshold: body.low_stock_threshold,
        category: body.category,
    };
    let product = state
        .db
        .run(Module::Catalog.op("update_product"), move |conn| {
            let product = super::update_product(conn, id, patch)?;
            super::with_category(conn, product)
        })
        .await?;
    forget_cached(&state, Change::Products(vec![id])).await;
    Ok(web::Json(ProductView::new(product, state.config.currency)))
}

/// A category as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CategoryView {
    /// What products and links name the category by.
    #[schema(schema_with = slug_schema)]
    pub slug: String,
    #[schema(schema_with = category_name_schema)]
    pub name: String,
}

impl From<Category> for CategoryView {
    fn from(category: Category) -> Self {
        CategoryView { slug: category.slug, name: category.name }
    }
}

fn category_name_schema() -> Object {
    model::CATEGORY_NAME.schema()
}

/// Every category: there are few, so the list comes in one answer, without a cursor.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CategoryList {
    pub items: Vec<CategoryView>,
}

/// Every category, by name.
#[utoipa::path(
    tag = "catalog",
    responses(
        (status = 200, description = "Every category, by name", body = CategoryList),
        Unavailable,
    )
)]
#[get("/categories")]
pub async fn list_categories(state: web::Data<AppState>) -> Result<web::Json<CategoryList>, AppError> {
    let categories = state.db.run(Module::Catalog.op("list_categories"), super::categories).await?;
    Ok(web::Json(CategoryList { items: categories.into_iter().map(CategoryView::from).collect() }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCategory {
    /// At most 40 lower-case letters or digits, in words joined by single dashes; unique.
    #[schema(schema_with = slug_schema)]
    slug: String,
    /// One line, 1 to 80 characters, trimmed.
    #[schema(schema_with = category_name_schema)]
    name: String,
}

/// Creates a category.
#[utoipa::path(
    tag = "catalog",
    security(("admin_token" = [])),
    request_body = CreateCategory,
    responses(
        (status = 201, description = "Created", body = CategoryView),
        MalformedJson,
        Unauthorized,
        (status = 409, description = "The slug is taken by another category", body = ProblemDetails, content_type = "application/problem+json"),
        InvalidFields,
        Unavailable,
    )
)]
#[post("/categories")]
pub async fn create_category(
    _admin: AdminToken,
    state: web::Data<AppState>,
    body: web::Json<CreateCategory>,
) -> Result<HttpResponse, AppError> {
    let CreateCategory { slug, name } = body.into_inner();
    let draft = CategoryDraft { slug, name };
    let category =
        state.db.run(Module::Catalog.op("create_category"), move |conn| super::create_category(conn, draft)).await?;
    // Pages that name the categories (the shop's) are cached with the products.
    forget_cached(&state, Change::Everything).await;
    Ok(HttpResponse::Created().json(CategoryView::from(category)))
}
