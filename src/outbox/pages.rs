//! The admin events page: work of the outbox that is waiting, failing or dead (with its error),
//! a retry button for dead work, and the latest events.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::{DeliveryStatus, OpenDelivery, RecentEvent};
use crate::admin::page::see_other;
use crate::admin::page::{Layout, PageError, Section, render};
use crate::admin::session::{Admin, ButtonForm, CsrfForm};
use crate::error::AppError;
use crate::events::Aggregate;
use crate::http::state::AppState;
use crate::kernel::Module;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::get().to(show)).route("/events/{event_id}/{handler}/retry", web::post().to(retry));
}

#[derive(Template)]
#[template(path = "outbox/templates/events.html")]
struct EventsPage {
    layout: Layout,
    open: Vec<OpenDelivery>,
    recent: Vec<RecentEvent>,
}

impl EventsPage {
    fn count(&self, which: &str) -> usize {
        self.open
            .iter()
            .filter(|delivery| match which {
                "dead" => delivery.is_dead(),
                "failing" => delivery.is_failing(),
                _ => delivery.status == DeliveryStatus::Pending && delivery.attempts == 0,
            })
            .count()
    }
}

async fn show(state: web::Data<AppState>, admin: Admin) -> Result<HttpResponse, PageError> {
    let (open, recent) = state
        .db
        .run(Module::Outbox.op("events_page"), |conn| -> Result<_, AppError> {
            Ok((super::open_deliveries(conn, 200)?, super::recent_events(conn, 30)?))
        })
        .await?;
    render(&EventsPage { layout: admin.layout(Section::Events), open, recent })
}

async fn retry(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<(i64, String)>,
    _: CsrfForm<ButtonForm>,
) -> Result<HttpResponse, PageError> {
    let (event_id, handler) = path.into_inner();
    let name = handler.clone();
    let revived =
        state.db.run(Module::Outbox.op("retry_dead"), move |conn| super::retry_dead(conn, event_id, &name)).await?;
    if !revived {
        return Err(AppError::conflict(
            "not-dead",
            format!("Event {event_id} is not dead for {handler}; nothing to retry."),
        )
        .into());
    }
    admin.flash(format!("Event {event_id} queued again for {handler}."));
    Ok(see_other("/admin/events"))
}
