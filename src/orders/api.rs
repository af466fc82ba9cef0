//! JSON handlers for checkout, the order lifecycle and card payments.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Customer, Order, OrderDetails, OrderFilter, OrderLine, OrderStatus, PaymentAttempt, PlaceOrder};
use crate::architecture::Module;
use crate::error::{AppError, ProblemDetails};
use crate::http::admin_token::AdminToken;
use crate::http::state::AppState;
use crate::idempotency::{self, Answer, Guard, IdempotencyKey};
use crate::ids::{OrderId, PaymentId, ProductId};
use crate::outbox::CancelledBy;
use crate::pagination::{Page, PageQuery};
use crate::payments::{Card, Payment, Refund};

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(place_order)
        .service(list_orders)
        .service(get_order)
        .service(cancel_order)
        .service(pay_order)
        .service(ship_order)
        .service(refund_order);
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerView {
    pub email: String,
    pub name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemView {
    pub product_id: ProductId,
    /// SKU, name and unit price as they were when the order was placed.
    pub sku: String,
    pub name: String,
    pub unit_price_minor: i64,
    pub quantity: i32,
    pub line_total_minor: i64,
}

impl From<OrderLine> for ItemView {
    fn from(line: OrderLine) -> Self {
        ItemView {
            product_id: line.product_id,
            sku: line.sku,
            name: line.name,
            unit_price_minor: line.unit_price_minor,
            quantity: line.quantity,
            line_total_minor: line.line_total_minor,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    pub id: OrderId,
    /// Human-readable and sequential, e.g. `AG-000042`.
    pub number: String,
    pub status: OrderStatus,
    pub customer: CustomerView,
    pub items: Vec<ItemView>,
    pub total_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl OrderView {
    pub fn new(order: Order, customer: Customer, lines: Vec<OrderLine>) -> Self {
        OrderView {
            id: order.id,
            number: order.display_number(),
            status: order.status(),
            customer: CustomerView { email: customer.email, name: customer.name },
            items: lines.into_iter().map(ItemView::from).collect(),
            total_minor: order.total_minor,
            currency: order.currency,
            created_at: order.created_at,
            updated_at: order.updated_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CardView {
    pub brand: String,
    pub last4: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefundView {
    pub amount_minor: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentView {
    pub id: PaymentId,
    pub order_id: Uuid,
    /// `succeeded` or `failed`.
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
    pub card: CardView,
    /// Why the gateway declined: `card_declined`, `insufficient_funds`, `expired_card`.
    pub decline_code: Option<String>,
    pub refund: Option<RefundView>,
    pub created_at: DateTime<Utc>,
}

impl PaymentView {
    pub fn new(payment: Payment, refund: Option<Refund>) -> Self {
        PaymentView {
            id: payment.id,
            order_id: payment.order_id,
            status: payment.status,
            amount_minor: payment.amount_minor,
            currency: payment.currency,
            card: CardView { brand: payment.card_brand, last4: payment.card_last4 },
            decline_code: payment.decline_code,
            refund: refund
                .map(|refund| RefundView { amount_minor: refund.amount_minor, created_at: refund.created_at }),
            created_at: payment.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    pub id: Uuid,
    pub order_id: Uuid,
    pub kind: String,
    pub to: String,
    pub subject: String,
    /// `pending`, `sent` (accepted by the SMTP server), `stored` (no SMTP configured) or `failed`.
    pub status: String,
    pub attempts: i32,
    pub sent_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub id: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// The order with everything other modules know about it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderDetailsView {
    #[serde(flatten)]
    pub order: OrderView,
    pub payments: Vec<PaymentView>,
    pub notifications: Vec<NotificationView>,
    pub events: Vec<EventView>,
}

impl From<OrderDetails> for OrderDetailsView {
    fn from(details: OrderDetails) -> Self {
        let order_id = details.order.id.0;
        OrderDetailsView {
            order: OrderView::new(details.order, details.customer, details.lines),
            payments: details.payments.into_iter().map(|(payment, refund)| PaymentView::new(payment, refund)).collect(),
            notifications: details
                .notifications
                .into_iter()
                .map(|n| NotificationView {
                    id: n.id,
                    order_id,
                    kind: n.kind,
                    to: n.recipient,
                    subject: n.subject,
                    status: n.status,
                    attempts: n.attempts,
                    sent_at: n.sent_at,
                })
                .collect(),
            events: details
                .events
                .into_iter()
                .map(|e| EventView { id: e.id, event_type: e.event_type, payload: e.payload, created_at: e.created_at })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerRequest {
    /// Identifies the customer (case-insensitive).
    email: String,
    name: String,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    product_id: ProductId,
    /// 1..=1000; lines naming the same product are merged.
    quantity: i64,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    customer: CustomerRequest,
    /// 1..=50 lines.
    items: Vec<ItemRequest>,
}

/// Turns an operation's answer into the HTTP response, the same for a first answer and a replay.
fn respond(answer: Answer) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    response.content_type(if status.is_success() { "application/json" } else { "application/problem+json" });
    if answer.replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    if status == StatusCode::CREATED
        && let Some(id) = answer.body["id"].as_str()
        && answer.body["number"].is_string()
    {
        response.insert_header(("Location", format!("/api/orders/{id}")));
    }
    response.body(answer.body.to_string())
}

fn to_json(view: impl Serialize) -> Result<serde_json::Value, AppError> {
    serde_json::to_value(view).map_err(AppError::internal)
}

/// Places an order in one transaction: prices every line from the catalog, reserves all the
/// stock or none (409 naming the short SKU and what is available), records `OrderPlaced`.
#[utoipa::path(
    tag = "orders",
    params(("Idempotency-Key" = Option<String>, Header, description = "1..=255 characters; a retry with the same key and body returns the first response")),
    request_body = PlaceOrderRequest,
    responses(
        (status = 201, description = "Placed, pending payment", body = OrderView),
        (status = 400, description = "Malformed JSON or header", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "Not enough stock, or the key was used for another request", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid e-mail, quantities, unknown or inactive products", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
#[post("/orders")]
pub async fn place_order(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Json<PlaceOrderRequest>,
) -> Result<HttpResponse, AppError> {
    let key = IdempotencyKey::from_request(&request)?;
    let body = body.into_inner();
    let items: Vec<(ProductId, i64)> = body.items.iter().map(|item| (item.product_id, item.quantity)).collect();
    let command = PlaceOrder::new(&body.customer.email, &body.customer.name, &items).map_err(AppError::validation)?;
    let fingerprint = idempotency::fingerprint(&body);
    let currency = state.config.currency;
    let answer = state
        .db
        .run(Module::Orders.op("place_order"), move |conn| {
            let guard = key.as_ref().map(|key| Guard { scope: "POST /api/orders".into(), key, fingerprint });
            idempotency::run(conn, guard, |conn| {
                let placed = super::place_order(conn, &command, currency)?;
                Ok(Answer::new(201, to_json(OrderView::new(placed.order, placed.customer, placed.lines))?))
            })
        })
        .await?;
    Ok(respond(answer))
}

/// The order aggregated: items, customer, payment attempts, e-mails and events, read from the
/// shared tables in a fixed number of queries.
#[utoipa::path(
    tag = "orders",
    params(("id" = OrderId, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderDetailsView),
        (status = 404, description = "No such order", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
#[get("/orders/{id}")]
pub async fn get_order(
    state: web::Data<AppState>,
    id: web::Path<OrderId>,
) -> Result<web::Json<OrderDetailsView>, AppError> {
    Ok(web::Json(details(&state, id.into_inner()).await?))
}

async fn details(state: &AppState, id: OrderId) -> Result<OrderDetailsView, AppError> {
    let details = state.db.run(Module::Orders.op("order_details"), move |conn| super::order_details(conn, id)).await?;
    Ok(details.into())
}

/// Cancels an unpaid order and releases its stock.
#[utoipa::path(
    tag = "orders",
    params(("id" = OrderId, Path, description = "Order id")),
    responses(
        (status = 200, description = "Cancelled", body = OrderDetailsView),
        (status = 404, description = "No such order", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The order is not pending payment (the problem names its status)", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
#[post("/orders/{id}/cancel")]
pub async fn cancel_order(
    state: web::Data<AppState>,
    id: web::Path<OrderId>,
) -> Result<web::Json<OrderDetailsView>, AppError> {
    let id = id.into_inner();
    state.db.run(Module::Orders.op("cancel_order"), move |conn| super::cancel(conn, id, CancelledBy::Customer)).await?;
    Ok(web::Json(details(&state, id).await?))
}

/// Ships a paid order: its reserved stock leaves the warehouse.
#[utoipa::path(
    tag = "orders",
    security(("admin_token" = [])),
    params(("id" = OrderId, Path, description = "Order id")),
    responses(
        (status = 200, description = "Shipped", body = OrderDetailsView),
        (status = 401, description = "Missing or wrong admin token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The order is not paid", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
#[post("/orders/{id}/ship")]
pub async fn ship_order(
    _admin: AdminToken,
    state: web::Data<AppState>,
    id: web::Path<OrderId>,
) -> Result<web::Json<OrderDetailsView>, AppError> {
    let id = id.into_inner();
    state.db.run(Module::Orders.op("ship_order"), move |conn| super::ship(conn, id)).await?;
    Ok(web::Json(details(&state, id).await?))
}

/// Refunds a paid or shipped order in full; stock not yet shipped is released.
#[utoipa::path(
    tag = "orders",
    security(("admin_token" = [])),
    params(("id" = OrderId, Path, description = "Order id")),
    responses(
        (status = 200, description = "Refunded", body = OrderDetailsView),
        (status = 401, description = "Missing or wrong admin token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The order is neither paid nor shipped", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
#[post("/orders/{id}/refund")]
pub async fn refund_order(
    _admin: AdminToken,
    state: web::Data<AppState>,
    id: web::Path<OrderId>,
) -> Result<web::Json<OrderDetailsView>, AppError> {
    let id = id.into_inner();
    state.db.run(Module::Orders.op("refund_order"), move |conn| super::refund(conn, id)).await?;
    Ok(web::Json(details(&state, id).await?))
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardRequest {
    /// 12 to 19 digits (spaces allowed), passing the Luhn check.
    number: String,
    exp_month: i64,
    /// Four digits (or two).
    exp_year: i64,
    cvc: String,
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
        ("Idempotency-Key" = Option<String>, Header, description = "1..=255 characters; a retry with the same key and body returns the first response and charges nothing"),
    ),
    request_body = PaymentRequest,
    responses(
        (status = 201, description = "Paid", body = PaymentResult),
        (status = 400, description = "Malformed JSON or header", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 402, description = "Declined: decline_code is card_declined, insufficient_funds or expired_card", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The order is not pending payment, or the key was used for another request", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid card (Luhn check, expiry month, CVC)", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
#[post("/orders/{id}/payments")]
pub async fn pay_order(
    state: web::Data<AppState>,
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
    let fingerprint = idempotency::fingerprint(&serde_json::json!({
        "order_id": id,
        "brand": card.number.brand().as_str(),
        "last4": card.number.last4(),
        "digits": card.number.digits().len(),
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "cvc_digits": card.cvc_len(),
    }));
    let gateway = state.gateway.clone();
    let answer = state
        .db
        .run(Module::Orders.op("pay_order"), move |conn| {
            let guard =
                key.as_ref().map(|key| Guard { scope: format!("POST /api/orders/{id}/payments"), key, fingerprint });
            idempotency::run(conn, guard, |conn| match super::pay(conn, gateway.as_ref(), id, &card)? {
                PaymentAttempt::Succeeded { payment, order } => Ok(Answer::new(
                    201,
                    to_json(PaymentResult { payment: PaymentView::new(payment, None), order_status: order.status() })?,
                )),
                PaymentAttempt::Declined { payment, .. } => {
                    let code = payment.decline_code.clone().unwrap_or_default();
                    let message = crate::payments::DeclineCode::describe(&code);
                    let problem = AppError::payment_required("card-declined", message)
                        .with("decline_code", code)
                        .with("payment_id", payment.id.to_string())
                        .with("order_id", id.to_string());
                    Ok(Answer::new(402, problem.problem_json()))
                }
            })
        })
        .await?;
    Ok(respond(answer))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderListFilter {
    /// One of pending_payment, paid, shipped, cancelled, refunded.
    status: Option<String>,
    /// The customer's e-mail (exact, case-insensitive).
    email: Option<String>,
}

/// An order in a list (without its lines: fetch the order for those).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderListItem {
    pub id: OrderId,
    pub number: String,
    pub status: OrderStatus,
    pub customer: CustomerView,
    pub total_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Orders, newest first.
#[utoipa::path(
    tag = "orders",
    security(("admin_token" = [])),
    params(OrderListFilter, PageQuery),
    responses(
        (status = 200, description = "A page of orders", body = Page<OrderListItem>),
        (status = 400, description = "Malformed query or cursor", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong admin token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Unknown status or limit out of range", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
#[get("/orders")]
pub async fn list_orders(
    _admin: AdminToken,
    state: web::Data<AppState>,
    query: web::Query<OrderListFilter>,
    page: web::Query<PageQuery>,
) -> Result<web::Json<Page<OrderListItem>>, AppError> {
    let query = query.into_inner();
    let (limit, after) = (page.limit()?, page.cursor::<super::ListCursor>()?);
    let status = match query.status.as_deref().filter(|status| !status.is_empty()) {
        None => None,
        Some(text) => Some(OrderStatus::parse(text).ok_or_else(|| {
            AppError::invalid("status", "must be one of pending_payment, paid, shipped, cancelled, refunded")
        })?),
    };
    let filter = OrderFilter { status, email: query.email.filter(|email| !email.is_empty()), number: None };
    let orders = state
        .db
        .run(Module::Orders.op("list_orders"), move |conn| super::list_orders(conn, filter, after, limit))
        .await?;
    Ok(web::Json(orders.map(|(order, customer)| OrderListItem {
        id: order.id,
        number: order.display_number(),
        status: order.status(),
        customer: CustomerView { email: customer.email, name: customer.name },
        total_minor: order.total_minor,
        currency: order.currency,
        created_at: order.created_at,
        updated_at: order.updated_at,
    })))
}
