//! `/admin`: the last 24 hours of orders and the outbox's backlog, at a glance.
//!
//! Outside every module on purpose: it reads from orders and the outbox, whose pages use the admin
//! shell, so inside the shell it would make admin and those modules depend on each other.

use actix_web::{HttpResponse, web};
use askama::Template;

use crate::admin::page::{Layout, PageError, Section, render};
use crate::admin::session::Admin;
use crate::architecture::Module;
use crate::http::state::AppState;
use crate::money::Currency;
use crate::orders::Dashboard;
use crate::outbox::Backlog;

#[derive(Template)]
#[template(path = "templates/dashboard.html")]
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
