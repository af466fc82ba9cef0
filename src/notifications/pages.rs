//! Admin pages for e-mails: the list, and each e-mail as its customer sees it (HTML in a
//! sandboxed frame, the text version beside it).

use actix_web::{HttpResponse, web};
use askama::Template;
use uuid::Uuid;

use super::{ListCursor, Notification};
use crate::admin::page::{Layout, PageError, Section, render};
use crate::admin::session::Admin;
use crate::error::AppError;
use crate::http::state::AppState;
use crate::kernel::Module;
use crate::pagination::{Page, PageQuery};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/notifications", web::get().to(list))
        .route("/notifications/{id}", web::get().to(show))
        .route("/notifications/{id}/html", web::get().to(html_body));
}

#[derive(Template)]
#[template(path = "notifications/templates/list.html")]
struct ListPage {
    layout: Layout,
    page: Page<Notification>,
    store_only: bool,
}

async fn list(
    state: web::Data<AppState>,
    admin: Admin,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    let after = page.cursor::<ListCursor>()?;
    let page = state
        .db
        .read(Module::Notifications.op("list_notifications"), admin.read_after(), move |conn| {
            super::list_notifications(conn, None, after, 50)
        })
        .await?;
    render(&ListPage {
        layout: admin.layout(Section::Notifications),
        page,
        store_only: state.config.smtp_url.is_none(),
    })
}

#[derive(Template)]
#[template(path = "notifications/templates/show.html")]
struct ShowPage {
    layout: Layout,
    notification: Notification,
}

async fn find(state: &AppState, id: Uuid) -> Result<Notification, PageError> {
    let notification = state
        .db
        .run(Module::Notifications.op("get_notification"), move |conn| super::get_notification(conn, id))
        .await?;
    Ok(notification.ok_or_else(|| AppError::not_found(format!("No e-mail with id {id}.")))?)
}

async fn show(state: web::Data<AppState>, admin: Admin, id: web::Path<Uuid>) -> Result<HttpResponse, PageError> {
    let notification = find(&state, id.into_inner()).await?;
    render(&ShowPage { layout: admin.layout(Section::Notifications), notification })
}

/// What the e-mail's own HTML may do inside the preview frame: its inline styles and embedded
/// images, nothing else (no script, no requests, no navigation), and only inside our own pages.
const PREVIEW_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; frame-ancestors 'self'";

/// The e-mail's HTML, alone, for the sandboxed frame on the e-mail's page. A document of its
/// own because the pages' policy allows no inline style, which e-mail HTML is made of.
async fn html_body(state: web::Data<AppState>, _admin: Admin, id: web::Path<Uuid>) -> Result<HttpResponse, PageError> {
    let notification = find(&state, id.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", PREVIEW_POLICY))
        .insert_header(("X-Frame-Options", "SAMEORIGIN"))
        .insert_header(("Cache-Control", "no-store"))
        .body(notification.html_body))
}
