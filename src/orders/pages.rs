//! Admin pages for orders: the list (filter by status, search by number or e-mail), and each
//! order with everything the shared tables know about it and the actions its status allows.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{Action, ListCursor, Order, OrderDetails, OrderFilter, OrderStatus};
use crate::admin::page::see_other;
use crate::admin::page::{Layout, PageError, Section, render};
use crate::admin::session::{Admin, ButtonForm, CsrfForm};
use crate::error::AppError;
use crate::events::CancelledBy;
use crate::http::state::AppState;
use crate::ids::{OrderId, OrderNumber};
use crate::inventory::Movement;
use crate::kernel::Module;
use crate::money::Currency;
use crate::orders::Customer;
use crate::pagination::{Page, PageQuery};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/orders", web::get().to(list))
        .route("/orders/{id}", web::get().to(show))
        .route("/orders/{id}/cancel", web::post().to(cancel))
        .route("/orders/{id}/ship", web::post().to(ship))
        .route("/orders/{id}/refund", web::post().to(refund));
}

const PAGE_SIZE: i64 = 50;

#[derive(Template)]
#[template(path = "orders/templates/list.html")]
struct ListPage {
    layout: Layout,
    statuses: [OrderStatus; 5],
    status: Option<OrderStatus>,
    query: String,
    hint: Option<&'static str>,
    page: Page<(Order, Customer)>,
    currency: Currency,
}

impl ListPage {
    fn next_href(&self) -> Option<String> {
        let cursor = self.page.next_cursor.as_ref()?;
        let status = self.status.map_or("", |status| status.as_str());
        let query =
            serde_urlencoded::to_string([("status", status), ("q", self.query.as_str()), ("cursor", cursor)]).ok()?;
        Some(format!("/admin/orders?{query}"))
    }

    fn is_selected(&self, status: &OrderStatus) -> bool {
        self.status == Some(*status)
    }
}

#[derive(Deserialize)]
struct ListFilter {
    status: Option<String>,
    q: Option<String>,
}

async fn list(
    state: web::Data<AppState>,
    admin: Admin,
    query: web::Query<ListFilter>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    let query = query.into_inner();
    let after = page.cursor::<ListCursor>()?;
    let status = query.status.as_deref().and_then(OrderStatus::parse);
    let text = query.q.unwrap_or_default();
    let text = crate::input::SEARCH.check(&text).map_err(|message| AppError::invalid("q", message))?.to_owned();
    let mut filter = OrderFilter { status, ..Default::default() };
    let mut hint = None;
    if !text.is_empty() {
        if text.contains('@') {
            filter.email = Some(text.clone());
        } else if let Some(number) = OrderNumber::parse(&text) {
            filter.number = Some(number.0);
        } else {
            hint = Some("Search by order number (AG-000042 or 42) or by the customer's full e-mail address.");
        }
    }
    let page = if hint.is_some() {
        Page { items: Vec::new(), next_cursor: None }
    } else {
        state
            .db
            .read(Module::Orders.op("list_orders"), admin.read_after(), move |conn| {
                super::list_orders(conn, filter.clone(), after, PAGE_SIZE)
            })
            .await?
    };
    render(&ListPage {
        layout: admin.layout(Section::Orders),
        statuses: OrderStatus::ALL,
        status,
        query: text,
        hint,
        page,
        currency: state.config.currency,
    })
}

#[derive(Template)]
#[template(path = "orders/templates/show.html")]
struct ShowPage {
    layout: Layout,
    details: OrderDetails,
    movements: Vec<Movement>,
    currency: Currency,
}

impl ShowPage {
    fn can(&self, action: &str) -> bool {
        let action = match action {
            "cancel" => Action::Cancel,
            "ship" => Action::Ship,
            "refund" => Action::Refund,
            _ => return false,
        };
        self.details.order.status.allows(action)
    }

    fn number(&self) -> String {
        self.details.order.display_number()
    }
}

async fn show(state: web::Data<AppState>, admin: Admin, id: web::Path<OrderId>) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let (details, movements) = state
        .db
        .run(Module::Orders.op("order_page"), move |conn| -> Result<_, AppError> {
            let details = super::order_details(conn, id)?;
            let movements = crate::inventory::order_movements(conn, id)?;
            Ok((details, movements))
        })
        .await?;
    render(&ShowPage { layout: admin.layout(Section::Orders), details, movements, currency: state.config.currency })
}

async fn transition(
    state: web::Data<AppState>,
    admin: Admin,
    id: OrderId,
    action: Action,
) -> Result<HttpResponse, PageError> {
    let order = state
        .db
        .run(Module::Orders.op("admin_transition"), move |conn| match action {
            Action::Cancel => super::cancel(conn, id, CancelledBy::Admin),
            Action::Ship => super::ship(conn, id),
            Action::Refund => super::refund(conn, id),
            Action::Pay => unreachable!("admins do not pay orders"),
        })
        .await?;
    admin.flash(format!("Order {} {}.", order.display_number(), action.verb()));
    Ok(see_other(&format!("/admin/orders/{id}")))
}

async fn cancel(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<OrderId>,
    _: CsrfForm<ButtonForm>,
) -> Result<HttpResponse, PageError> {
    transition(state, admin, id.into_inner(), Action::Cancel).await
}

async fn ship(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<OrderId>,
    _: CsrfForm<ButtonForm>,
) -> Result<HttpResponse, PageError> {
    transition(state, admin, id.into_inner(), Action::Ship).await
}

async fn refund(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<OrderId>,
    _: CsrfForm<ButtonForm>,
) -> Result<HttpResponse, PageError> {
    transition(state, admin, id.into_inner(), Action::Refund).await
}
