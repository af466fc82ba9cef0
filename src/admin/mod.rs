//! The admin shell: sign-in, the layout every admin page shares, and the dashboard. Each module
//! adds its own pages (`catalog::pages`, `orders::pages`, ...); they are wired here, behind the
//! sign-in middleware.

pub mod auth;
pub mod page;
pub mod session;
pub mod store;

use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use askama::Template;

pub use auth::bootstrap;
pub use page::{Layout, PageError, Section, render};
pub use session::{Admin, ButtonForm, CsrfForm, CsrfProtected};

/// Routes under `/admin`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/login").route(web::get().to(auth::login_form)).route(web::post().to(auth::login)))
        .route("/logout", web::post().to(auth::logout))
        .service(web::scope("").wrap(from_fn(auth::require_signed_in)).route("", web::get().to(dashboard)));
}

#[derive(Template)]
#[template(path = "admin/templates/dashboard.html")]
struct DashboardPage {
    layout: Layout,
}

async fn dashboard(admin: Admin) -> Result<HttpResponse, PageError> {
    render(&DashboardPage { layout: admin.layout(Section::Dashboard) })
}
