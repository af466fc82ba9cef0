//! The admin list of payments, newest first.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::{ListCursor, PaymentListItem};
use crate::admin::page::{Layout, PageError, Section, render};
use crate::admin::session::Admin;
use crate::http::state::AppState;
use crate::ids::OrderNumber;
use crate::kernel::Module;
use crate::money::Currency;
use crate::pagination::{Page, PageQuery};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/payments", web::get().to(list));
}

#[derive(Template)]
#[template(path = "payments/templates/list.html")]
struct ListPage {
    layout: Layout,
    page: Page<PaymentListItem>,
    currency: Currency,
}

impl ListPage {
    fn number(&self, number: &i64) -> String {
        OrderNumber(*number).to_string()
    }
}

async fn list(
    state: web::Data<AppState>,
    admin: Admin,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    let after = page.cursor::<ListCursor>()?;
    let page = state
        .db
        .read(Module::Payments.op("list_payments"), admin.read_after(), move |conn| {
            super::list_payments(conn, after, 50)
        })
        .await?;
    render(&ListPage { layout: admin.layout(Section::Payments), page, currency: state.config.currency })
}
