//! JSON handlers for stock levels, adjustments and the ledger.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};

use super::{Movement, MovementKind, StockLevel};
use crate::error::{AppError, ProblemDetails};
use crate::http::admin_token::AdminToken;
use crate::http::problems::{InvalidQuery, MalformedJson, MalformedQuery, ProductNotFound, Unauthorized, Unavailable};
use crate::http::state::AppState;
use crate::ids::{OrderId, ProductId};
use crate::input::{Whole, whole_number};
use crate::kernel::Module;
use crate::pagination::{List, Page, PageQuery};

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(get_stock).service(adjust_stock).service(list_movements);
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StockView {
    pub product_id: ProductId,
    pub sku: String,
    /// Physically in the warehouse.
    pub on_hand: i32,
    /// Promised to orders that have not shipped.
    pub reserved: i32,
    /// `on_hand - reserved`: what new orders can get.
    pub available: i32,
    pub low_stock_threshold: i32,
}

impl From<StockLevel> for StockView {
    fn from(level: StockLevel) -> Self {
        StockView {
            product_id: level.product_id,
            available: level.available(),
            sku: level.sku,
            on_hand: level.on_hand,
            reserved: level.reserved,
            low_stock_threshold: level.low_stock_threshold,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MovementView {
    pub id: i64,
    pub product_id: ProductId,
    pub kind: MovementKind,
    pub on_hand_delta: i32,
    pub reserved_delta: i32,
    pub reason: String,
    pub order_id: Option<OrderId>,
    pub created_at: DateTime<Utc>,
}

impl From<Movement> for MovementView {
    fn from(movement: Movement) -> Self {
        MovementView {
            id: movement.id,
            product_id: movement.product_id,
            kind: movement.kind,
            on_hand_delta: movement.on_hand_delta,
            reserved_delta: movement.reserved_delta,
            reason: movement.reason,
            order_id: movement.order_id,
            created_at: movement.created_at,
        }
    }
}

/// Stock of one product.
#[utoipa::path(
    tag = "inventory",
    params(("product_id" = ProductId, Path, description = "Product id")),
    responses(
        (status = 200, description = "Current levels", body = StockView),
        ProductNotFound,
        Unavailable,
    )
)]
#[get("/inventory/{product_id}")]
pub async fn get_stock(
    state: web::Data<AppState>,
    product_id: web::Path<ProductId>,
) -> Result<web::Json<StockView>, AppError> {
    let product_id = product_id.into_inner();
    let level =
        state.db.run(Module::Inventory.op("stock_level"), move |conn| super::stock_level(conn, product_id)).await?;
    Ok(web::Json(level.into()))
}

/// Its schema is written by hand below: a receipt only ever adds stock, which a schema derived
/// from the fields could not say.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    #[serde(deserialize_with = "whole_number::required")]
    delta: i64,
    reason: String,
    #[serde(default)]
    kind: Option<MovementKind>,
}

impl utoipa::PartialSchema for AdjustmentRequest {
    fn schema() -> RefOr<Schema> {
        let variant = |kinds: &[Option<&str>], delta: Schema, description: &str| {
            let mut kind = ObjectBuilder::new()
                .schema_type(if kinds.contains(&None) {
                    SchemaType::from_iter([Type::String, Type::Null])
                } else {
                    SchemaType::Type(Type::String)
                })
                .enum_values(Some(kinds.iter().map(|kind| kind.map_or(serde_json::Value::Null, Into::into))));
            kind = kind.description(Some("`receipt` (goods arrived) or `adjustment` (the default)"));
            let object = ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some(description))
                .property("delta", delta)
                .required("delta")
                .property("reason", super::REASON.schema())
                .required("reason")
                .property("kind", kind)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)));
            if kinds.contains(&None) { object } else { object.required("kind") }.build()
        };
        let receipt = variant(
            &[Some("receipt")],
            Schema::Object(super::RECEIPT_DELTA.schema()),
            "Goods arrived: on_hand grows by delta",
        );
        let adjustment = variant(
            &[Some("adjustment"), None],
            Whole::either_schema(super::DECREASE_DELTA, super::RECEIPT_DELTA),
            "A correction after a count, damage or loss: on_hand changes by delta, which is not 0",
        );
        RefOr::T(Schema::OneOf(OneOfBuilder::new().item(receipt).item(adjustment).build()))
    }
}

impl utoipa::ToSchema for AdjustmentRequest {}

/// Changes `on_hand` by `delta`; refused with 409 (changing nothing) if it would fall below what
/// is reserved or below 0.
#[utoipa::path(
    tag = "inventory",
    security(("admin_token" = [])),
    params(("product_id" = ProductId, Path, description = "Product id")),
    request_body = AdjustmentRequest,
    responses(
        (status = 201, description = "The new levels", body = StockView),
        MalformedJson,
        Unauthorized,
        ProductNotFound,
        (status = 409, description = "on_hand would fall below reserved or 0", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "delta 0, missing reason, receipt with a negative delta", body = ProblemDetails, content_type = "application/problem+json"),
        Unavailable,
    )
)]
#[post("/inventory/{product_id}/adjustments")]
pub async fn adjust_stock(
    _admin: AdminToken,
    state: web::Data<AppState>,
    product_id: web::Path<ProductId>,
    body: web::Json<AdjustmentRequest>,
) -> Result<HttpResponse, AppError> {
    let (product_id, body) = (product_id.into_inner(), body.into_inner());
    let kind = body.kind.unwrap_or(MovementKind::Adjustment);
    let level = state
        .db
        .run(Module::Inventory.op("adjust_stock"), move |conn| {
            super::adjust(conn, product_id, body.delta, kind, &body.reason)
        })
        .await?;
    Ok(HttpResponse::Created().json(StockView::from(level)))
}

/// The stock ledger of one product, newest first.
#[utoipa::path(
    tag = "inventory",
    security(("admin_token" = [])),
    params(("product_id" = ProductId, Path, description = "Product id"), PageQuery),
    responses(
        (status = 200, description = "A page of movements", body = Page<MovementView>),
        MalformedQuery,
        Unauthorized,
        ProductNotFound,
        InvalidQuery,
        Unavailable,
    )
)]
#[get("/inventory/{product_id}/movements")]
pub async fn list_movements(
    _admin: AdminToken,
    state: web::Data<AppState>,
    product_id: web::Path<ProductId>,
    page: web::Query<PageQuery>,
) -> Result<web::Json<Page<MovementView>>, AppError> {
    let product_id = product_id.into_inner();
    let (limit, before) = (page.limit()?, page.cursor::<i64>(&state.keys.cursors, List::StockMovements)?);
    let movements = state
        .db
        .run(Module::Inventory.op("list_movements"), move |conn| super::movements(conn, product_id, before, limit))
        .await?;
    Ok(web::Json(movements.map(MovementView::from).signed(&state.keys.cursors, List::StockMovements)))
}
