//! Refunding part of an order: an amount, or lines with quantities.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, Object, ObjectBuilder, OneOfBuilder, Schema};

use super::views::RefundResult;
use crate::error::{AppError, ProblemDetails};
use crate::http::admin_token::AdminToken;
use crate::http::problems::{MalformedJsonOrHeader, OrderNotFound, Unauthorized, Unavailable};
use crate::http::state::AppState;
use crate::idempotency::{self, Answer, Guard, IdempotencyKey};
use crate::ids::{OrderId, ProductId};
use crate::input::whole_number;
use crate::kernel::Module;
use crate::orders::{self, RefundRequest};

fn quantity_schema() -> Object {
    orders::REFUND_QUANTITY.schema()
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundLineRequest {
    /// A product of the order.
    product_id: ProductId,
    /// Units to refund: no more than ordered less those refunded before. Lines naming the same
    /// product add up.
    #[serde(deserialize_with = "whole_number::required")]
    #[schema(schema_with = quantity_schema)]
    quantity: i64,
}

/// An amount, or lines with quantities: exactly one of the two.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RefundOrderRequest {
    #[serde(default, deserialize_with = "whole_number::optional", skip_serializing_if = "Option::is_none")]
    amount_minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lines: Option<Vec<RefundLineRequest>>,
}

// Written by hand: "exactly one of" is a `oneOf` of two closed objects, which no derive spells.
impl utoipa::PartialSchema for RefundOrderRequest {
    fn schema() -> RefOr<Schema> {
        let amount = ObjectBuilder::new()
            .title(Some("An amount"))
            .description(Some("Refunds this much of what is left of the captured amount; no goods go back."))
            .property("amount_minor", orders::REFUND_AMOUNT.schema())
            .required("amount_minor")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let lines = ObjectBuilder::new()
            .title(Some("Lines"))
            .description(Some("Refunds these units at the prices on the order; before shipping they go back to stock."))
            .property(
                "lines",
                ArrayBuilder::new()
                    .items(<RefundLineRequest as utoipa::PartialSchema>::schema())
                    .min_items(Some(1))
                    .max_items(Some(orders::MAX_REFUND_LINES)),
            )
            .required("lines")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        Schema::OneOf(OneOfBuilder::new().item(amount).item(lines).build()).into()
    }
}

impl utoipa::ToSchema for RefundOrderRequest {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("RefundOrderRequest")
    }
}

/// Refunds part of a paid, shipped or partially refunded order: an amount, or lines with
/// quantities, up to what was captured in all. Refunded lines of an order that has not shipped go
/// back to stock. The order is `partially_refunded` until the refunds reach what was captured,
/// then `refunded`. Each refund publishes `OrderRefunded` and e-mails the customer its amount.
#[utoipa::path(
    tag = "orders",
    security(("admin_token" = [])),
    params(
        ("id" = OrderId, Path, description = "Order id"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1 to 255 visible ASCII characters; a retry with the same key and body returns the first response and refunds nothing more"),
    ),
    request_body = RefundOrderRequest,
    responses(
        (status = 201, description = "Refunded, with the order's new status and what is left to refund", body = RefundResult),
        MalformedJsonOrHeader,
        Unauthorized,
        OrderNotFound,
        (status = 409, description = "The order is neither paid, shipped nor partially refunded (`order_status`), the refund exceeds what is left of the captured amount (`requested_minor`, `remaining_minor`), or the key was used for another request", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Neither or both of amount_minor and lines, values out of range, a product not in the order, or more units than are left to refund of a line", body = ProblemDetails, content_type = "application/problem+json"),
        Unavailable,
    )
)]
#[post("/orders/{id}/refunds")]
pub async fn refund_order_part(
    _admin: AdminToken,
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<OrderId>,
    body: web::Json<RefundOrderRequest>,
) -> Result<HttpResponse, AppError> {
    let key = IdempotencyKey::from_request(&request)?;
    let id = id.into_inner();
    let body = body.into_inner();
    let lines: Option<Vec<(ProductId, i64)>> =
        body.lines.as_ref().map(|lines| lines.iter().map(|line| (line.product_id, line.quantity)).collect());
    let refund = RefundRequest::parse(body.amount_minor, lines.as_deref()).map_err(AppError::validation)?;
    let fingerprint =
        key.is_some().then(|| idempotency::fingerprint(&serde_json::json!({ "order_id": id, "request": body })));
    let answer = state
        .db
        .run(Module::Orders.op("refund_order_part"), move |conn| {
            let guard = key.as_ref().zip(fingerprint).map(|(key, fingerprint)| Guard {
                scope: format!("POST /api/orders/{id}/refunds"),
                key,
                fingerprint,
            });
            idempotency::run(
                conn,
                guard,
                |conn| orders::refund_part(conn, id, &refund),
                |outcome| Answer::json(StatusCode::CREATED, &RefundResult::from(outcome)),
            )
        })
        .await?;
    Ok(answer.into_response())
}
