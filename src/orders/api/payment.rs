//! Paying an order by card. The handler lives with the order because paying is a transition of
//! the order's status machine, which calls into the payments module (the gateway, the charge);
//! payments never calls back into orders.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{Object, Schema};

use crate::error::{AppError, ProblemDetails};
use crate::http::problems::{MalformedJsonOrHeader, OrderNotFound, Unavailable};
use crate::http::state::AppState;
use crate::idempotency::{self, Answer, Guard, IdempotencyKey};
use crate::ids::OrderId;
use crate::input::{Whole, whole_number};
use crate::kernel::Module;
use crate::orders::{self, OrderStatus, PaymentAttempt};
use crate::payments::views::PaymentView;
use crate::payments::{Card, CardGateway, DeclineCode, card};

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardRequest {
    /// 12 to 19 digits (spaces and dashes allowed between them), passing the Luhn check.
    #[schema(schema_with = number_schema)]
    number: String,
    #[serde(deserialize_with = "whole_number::required")]
    #[schema(schema_with = month_schema)]
    exp_month: i64,
    /// Four digits (or two).
    #[serde(deserialize_with = "whole_number::required")]
    #[schema(schema_with = year_schema)]
    exp_year: i64,
    #[schema(schema_with = cvc_schema)]
    cvc: String,
}

fn number_schema() -> Object {
    card::NUMBER.schema()
}

fn month_schema() -> Object {
    card::EXP_MONTH.schema()
}

fn year_schema() -> Schema {
    Whole::either_schema(card::EXP_YEAR_SHORT, card::EXP_YEAR)
}

fn cvc_schema() -> Object {
    card::CVC.schema()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    card: CardRequest,
}

/// A succeeded payment with the order's new status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentResult {
    #[serde(flatten)]
    pub payment: PaymentView,
    pub order_status: OrderStatus,
}

/// Pays a `pending_payment` order with a card; the amount is the order's total. A decline is
/// recorded (`PaymentFailed`) and answered with 402; the order stays payable.
#[utoipa::path(
    tag = "payments",
    params(
        ("id" = OrderId, Path, description = "Order id"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1 to 255 visible ASCII characters; a retry with the same key and body returns the first response and charges nothing"),
    ),
    request_body = PaymentRequest,
    responses(
        (status = 201, description = "Paid", body = PaymentResult),
        MalformedJsonOrHeader,
        (status = 402, description = "Declined: decline_code is card_declined, insufficient_funds or expired_card", body = ProblemDetails, content_type = "application/problem+json"),
        OrderNotFound,
        (status = 409, description = "The order is not pending payment, or the key was used for another request", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid card (Luhn check, expiry month, CVC)", body = ProblemDetails, content_type = "application/problem+json"),
        Unavailable,
    )
)]
#[post("/orders/{id}/payments")]
pub async fn pay_order(
    state: web::Data<AppState>,
    gateway: web::Data<dyn CardGateway>,
    request: HttpRequest,
    id: web::Path<OrderId>,
    body: web::Json<PaymentRequest>,
) -> Result<HttpResponse, AppError> {
    let key = IdempotencyKey::from_request(&request)?;
    let id = id.into_inner();
    let raw = body.into_inner().card;
    let card = Card::parse(&raw.number, raw.exp_month, raw.exp_year, &raw.cvc).map_err(AppError::validation)?;
    // The full card number never reaches the database, not even hashed: the fingerprint uses
    // what may be stored anyway.
    let fingerprint = key.is_some().then(|| {
        idempotency::fingerprint(&serde_json::json!({
            "order_id": id,
            "brand": card.number.brand().as_str(),
            "last4": card.number.last4(),
            "digits": card.number.digits().len(),
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
            "cvc_digits": card.cvc_len(),
        }))
    });
    let gateway = gateway.into_inner();
    let answer = state
        .db
        .run(Module::Orders.op("pay_order"), move |conn| {
            let guard = key.as_ref().zip(fingerprint).map(|(key, fingerprint)| Guard {
                scope: format!("POST /api/orders/{id}/payments"),
                key,
                fingerprint,
            });
            idempotency::run(conn, guard, |conn| orders::pay(conn, gateway.as_ref(), id, &card), payment_answer)
        })
        .await?;
    Ok(answer.into_response())
}

/// A succeeded payment is a 201; a declined one a 402 problem, remembered like a success.
fn payment_answer(attempt: PaymentAttempt) -> Result<Answer, AppError> {
    match attempt {
        PaymentAttempt::Succeeded { payment, order } => Answer::json(
            StatusCode::CREATED,
            &PaymentResult { payment: PaymentView::new(payment, Vec::new()), order_status: order.status },
        ),
        PaymentAttempt::Declined { payment, .. } => {
            let code = payment.decline_code.clone().unwrap_or_default();
            let problem = AppError::payment_required("card-declined", DeclineCode::describe(&code))
                .with("decline_code", code)
                .with("payment_id", payment.id.to_string())
                .with("order_id", payment.order_id.to_string());
            Ok(Answer::problem(&problem))
        }
    }
}
