//! The e-mails of an order, for admins.

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{EmailKind, ListCursor, Notification, NotificationStatus};
use crate::error::AppError;
use crate::http::admin_token::AdminToken;
use crate::http::problems::{InvalidQuery, MalformedQuery, Unauthorized, Unavailable};
use crate::http::state::AppState;
use crate::ids::OrderId;
use crate::pagination::{List, Page, PageQuery};

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_notifications);
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationItem {
    pub id: Uuid,
    pub order_id: OrderId,
    pub kind: EmailKind,
    pub to: String,
    pub subject: String,
    pub status: NotificationStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub message_id: String,
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<Notification> for NotificationItem {
    fn from(n: Notification) -> Self {
        NotificationItem {
            id: n.id,
            order_id: n.order_id,
            kind: n.kind,
            to: n.recipient,
            subject: n.subject,
            status: n.status,
            attempts: n.attempts,
            last_error: n.last_error,
            message_id: n.message_id,
            sent_at: n.sent_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationFilter {
    /// Only the e-mails of this order.
    order_id: Option<OrderId>,
}

/// Customer e-mails, newest first; `order_id` narrows them to one order.
#[utoipa::path(
    tag = "notifications",
    security(("admin_token" = [])),
    params(NotificationFilter, PageQuery),
    responses(
        (status = 200, description = "A page of e-mails", body = Page<NotificationItem>),
        MalformedQuery,
        Unauthorized,
        InvalidQuery,
        Unavailable,
    )
)]
#[get("/notifications")]
pub async fn list_notifications(
    _admin: AdminToken,
    state: web::Data<AppState>,
    filter: web::Query<NotificationFilter>,
    page: web::Query<PageQuery>,
) -> Result<web::Json<Page<NotificationItem>>, AppError> {
    let (limit, after) = (page.limit()?, page.cursor::<ListCursor>(&state.keys.cursors, List::Notifications)?);
    let notifications = state.mailroom.list(filter.order_id, after, limit).await?;
    Ok(web::Json(notifications.map(NotificationItem::from).signed(&state.keys.cursors, List::Notifications)))
}
