//! The order's lifecycle after checkout: cancel, ship, refund.

use actix_web::{post, web};
use diesel::PgConnection;

use super::checkout::details;
use super::views::OrderDetailsView;
use crate::error::{AppError, ProblemDetails};
use crate::events::CancelledBy;
use crate::http::admin_token::AdminToken;
use crate::http::problems::{OrderNotFound, Unauthorized, Unavailable};
use crate::http::state::AppState;
use crate::ids::OrderId;
use crate::kernel::Module;
use crate::orders::{self, Order, OrdersError};

/// Cancels an unpaid order and releases its stock.
#[utoipa::path(
    tag = "orders",
    params(("id" = OrderId, Path, description = "Order id")),
    responses(
        (status = 200, description = "Cancelled", body = OrderDetailsView),
        OrderNotFound,
        (status = 409, description = "The order is not pending payment (the problem names its status)", body = ProblemDetails, content_type = "application/problem+json"),
        Unavailable,
    )
)]
#[post("/orders/{id}/cancel")]
pub async fn cancel_order(
    state: web::Data<AppState>,
    id: web::Path<OrderId>,
) -> Result<web::Json<OrderDetailsView>, AppError> {
    transition(&state, "cancel_order", id.into_inner(), |conn, id| orders::cancel(conn, id, CancelledBy::Customer))
        .await
}

/// Ships a paid order, or a partially refunded one that has not shipped (it stays partially
/// refunded): its reserved stock, less refunded units, leaves the warehouse.
#[utoipa::path(
    tag = "orders",
    security(("admin_token" = [])),
    params(("id" = OrderId, Path, description = "Order id")),
    responses(
        (status = 200, description = "Shipped", body = OrderDetailsView),
        Unauthorized,
        OrderNotFound,
        (status = 409, description = "The order is neither paid nor partially refunded and still in the warehouse", body = ProblemDetails, content_type = "application/problem+json"),
        Unavailable,
    )
)]
#[post("/orders/{id}/ship")]
pub async fn ship_order(
    _admin: AdminToken,
    state: web::Data<AppState>,
    id: web::Path<OrderId>,
) -> Result<web::Json<OrderDetailsView>, AppError> {
    transition(&state, "ship_order", id.into_inner(), orders::ship).await
}

/// Refunds what is left of a paid, shipped or partially refunded order's payment (all of it, if
/// nothing was refunded before); stock not yet shipped is released.
#[utoipa::path(
    tag = "orders",
    security(("admin_token" = [])),
    params(("id" = OrderId, Path, description = "Order id")),
    responses(
        (status = 200, description = "Refunded", body = OrderDetailsView),
        Unauthorized,
        OrderNotFound,
        (status = 409, description = "The order is neither paid, shipped nor partially refunded", body = ProblemDetails, content_type = "application/problem+json"),
        Unavailable,
    )
)]
#[post("/orders/{id}/refund")]
pub async fn refund_order(
    _admin: AdminToken,
    state: web::Data<AppState>,
    id: web::Path<OrderId>,
) -> Result<web::Json<OrderDetailsView>, AppError> {
    transition(&state, "refund_order", id.into_inner(), orders::refund).await
}

/// Moves the order through `change`, then answers with the order as it now stands.
async fn transition(
    state: &AppState,
    operation: &'static str,
    id: OrderId,
    change: fn(&mut PgConnection, OrderId) -> Result<Order, OrdersError>,
) -> Result<web::Json<OrderDetailsView>, AppError> {
    state.db.run(Module::Orders.op(operation), move |conn| change(conn, id)).await?;
    Ok(web::Json(details(state, id).await?))
}
