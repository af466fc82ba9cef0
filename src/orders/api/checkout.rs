//! Checkout, the aggregated order view and the order list.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::Object;

use super::views::{CustomerView, OrderDetailsView, OrderListItem, OrderView};
use crate::error::{AppError, ProblemDetails};
use crate::http::admin_token::AdminToken;
use crate::http::problems::{
    InvalidQuery, MalformedJsonOrHeader, MalformedQuery, OrderNotFound, Unauthorized, Unavailable,
};
use crate::http::state::AppState;
use crate::idempotency::{self, Answer, Guard, IdempotencyKey};
use crate::ids::{OrderId, ProductId};
use crate::input::{self, whole_number};
use crate::kernel::Module;
use crate::orders::{self, OrderFilter, OrderStatus, PlaceOrder, PlacedOrder};
use crate::pagination::{List, Page, PageQuery};

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerRequest {
    /// Identifies the customer (case-insensitive).
    #[schema(schema_with = email_schema)]
    email: String,
    /// One line, trimmed.
    #[schema(schema_with = name_schema)]
    name: String,
}

fn email_schema() -> Object {
    orders::EMAIL.schema()
}

fn name_schema() -> Object {
    orders::CUSTOMER_NAME.schema()
}

fn quantity_schema() -> Object {
    orders::QUANTITY.schema()
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    product_id: ProductId,
    /// Lines naming the same product are merged.
    #[serde(deserialize_with = "whole_number::required")]
    #[schema(schema_with = quantity_schema)]
    quantity: i64,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    customer: CustomerRequest,
    /// `orders::MAX_LINES` lines at most.
    #[schema(min_items = 1, max_items = 50)]
    items: Vec<ItemRequest>,
}

/// Places an order in one transaction: prices every line from the catalog, reserves all the
/// stock or none (409 naming the short SKU and what is available), records `OrderPlaced`.
#[utoipa::path(
    tag = "orders",
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1 to 255 visible ASCII characters; a retry with the same key and body returns the first response")),
    request_body = PlaceOrderRequest,
    responses(
        (status = 201, description = "Placed, pending payment", body = OrderView),
        MalformedJsonOrHeader,
        (status = 404, description = "A line names a product that does not exist (`errors` names the lines)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "Not enough stock, a product no longer sold, or the key was used for another request", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid e-mail, name or quantities", body = ProblemDetails, content_type = "application/problem+json"),
        Unavailable,
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
    // Without a key nothing is remembered, so there is nothing to fingerprint: canonicalising and
    // hashing the body would be a noticeable share of a checkout's CPU.
    let fingerprint = key.is_some().then(|| idempotency::fingerprint(&body));
    let currency = state.config.currency;
    let answer = state
        .db
        .run(Module::Orders.op("place_order"), move |conn| {
            let guard = key.as_ref().zip(fingerprint).map(|(key, fingerprint)| Guard {
                scope: "POST /api/orders".into(),
                key,
                fingerprint,
            });
            idempotency::run(conn, guard, |conn| orders::place_order(conn, &command, currency), placed_answer)
        })
        .await?;
    Ok(answer.into_response())
}

fn placed_answer(placed: PlacedOrder) -> Result<Answer, AppError> {
    let view = OrderView::new(placed.order, placed.customer, placed.lines);
    Answer::created(format!("/api/orders/{}", view.id), &view)
}

/// The order aggregated: items, customer, payment attempts, e-mails and events, read from the
/// shared tables in a fixed number of queries.
#[utoipa::path(
    tag = "orders",
    params(("id" = OrderId, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderDetailsView),
        OrderNotFound,
        Unavailable,
    )
)]
#[get("/orders/{id}")]
pub async fn get_order(
    state: web::Data<AppState>,
    id: web::Path<OrderId>,
) -> Result<web::Json<OrderDetailsView>, AppError> {
    Ok(web::Json(details(&state, id.into_inner()).await?))
}

pub(super) async fn details(state: &AppState, id: OrderId) -> Result<OrderDetailsView, AppError> {
    // The e-mails come from the notifications service when it holds them: asked at once, beside
    // the database's snapshot, so the view waits for the slower of the two, not for both.
    let emails_here = !state.mailroom.is_service();
    let (details, emails) = tokio::join!(
        state.db.run(Module::Orders.op("order_details"), move |conn| orders::order_details(conn, id, emails_here)),
        state.mailroom.order_emails(id),
    );
    Ok(details?.with_emails(emails).into())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderListFilter {
    status: Option<OrderStatus>,
    /// The customer's e-mail (exact, case-insensitive); empty means any.
    #[param(schema_with = email_filter_schema)]
    email: Option<String>,
}

fn email_filter_schema() -> Object {
    // A filter, not an address to write to: any one line will do, it simply matches nothing.
    input::SEARCH.schema()
}

/// Orders, newest first.
#[utoipa::path(
    tag = "orders",
    security(("admin_token" = [])),
    params(OrderListFilter, PageQuery),
    responses(
        (status = 200, description = "A page of orders", body = Page<OrderListItem>),
        MalformedQuery,
        Unauthorized,
        InvalidQuery,
        Unavailable,
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
    let (limit, after) = (page.limit()?, page.cursor::<orders::ListCursor>(&state.keys.cursors, List::Orders)?);
    let email = match query.email.as_deref().map(|email| input::SEARCH.check(email)) {
        None => None,
        Some(Ok(email)) => Some(email.to_owned()).filter(|email| !email.is_empty()),
        Some(Err(message)) => return Err(AppError::invalid("email", message)),
    };
    let filter = OrderFilter { status: query.status, email, number: None };
    let orders = state
        .db
        .run(Module::Orders.op("list_orders"), move |conn| orders::list_orders(conn, filter, after, limit))
        .await?;
    Ok(web::Json(
        orders
            .map(|(order, customer)| OrderListItem {
                id: order.id,
                number: order.display_number(),
                status: order.status,
                customer: CustomerView { email: customer.email, name: customer.name },
                total_minor: order.total_minor,
                currency: order.currency,
                created_at: order.created_at,
                updated_at: order.updated_at,
            })
            .signed(&state.keys.cursors, List::Orders),
    ))
}
