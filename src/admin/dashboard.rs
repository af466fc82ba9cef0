//! `/admin`: the last 24 hours of orders and the outbox's backlog, at a glance.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::page::{Layout, PageError, Section, render};
use super::session::Admin;
use crate::architecture::Module;
use crate::http::state::AppState;
use crate::money::Currency;
use crate::orders::Dashboard;
use crate::outbox::Backlog;

#[derive(Template)]
#[template(path = "admin/templates/dashboard.html")]
struct DashboardPage {
    layout: Layout,
    orders: Dashboard,
    outbox: Backlog,
    currency: Currency,
}

pub async fn show(state: web::Data<AppState>, admin: Admin) -> Result<HttpResponse, PageError> {
    let orders = state.db.run(Module::Orders.op("dashboard"), crate::orders::dashboard).await?;
    let outbox = state.db.run(Module::Outbox.op("backlog"), crate::outbox::backlog).await?;
    render(&DashboardPage { layout: admin.layout(Section::Dashboard), orders, outbox, currency: state.config.currency })
}
