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

use crate::architecture::Module;
use crate::architecture::coupling::TableAccess;

pub const TABLES: TableAccess = TableAccess {
    module: Module::Admin,
    owns: &["admin_users", "admin_login_failures", "admin_secrets"],
    reads: &[],
    writes: &[],
};
pub use page::{FormErrors, Layout, PageError, Section, render, render_with_status};
pub use session::{Admin, ButtonForm, CsrfForm, CsrfProtected};

/// Routes under `/admin`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/login").route(web::get().to(auth::login_form)).route(web::post().to(auth::login)))
        .route("/logout", web::post().to(auth::logout))
        .route("", web::get().to(dashboard))
        .configure(crate::catalog::pages::configure)
        .configure(crate::inventory::pages::configure)
        .configure(crate::orders::pages::configure)
        .configure(crate::payments::pages::configure)
        .configure(crate::notifications::pages::configure)
        .configure(crate::outbox::pages::configure)
        .configure(crate::architecture::pages::configure);
}

/// The `/admin` scope: sessions, the sign-in middleware, and every admin page.
pub fn scope(
    sessions: actix_session::SessionMiddleware<actix_session::storage::CookieSessionStore>,
) -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    // Middleware wrapped last runs first: the session must exist before sign-in is checked.
    web::scope("/admin").wrap(from_fn(auth::require_signed_in)).wrap(sessions).configure(configure)
}

#[derive(Template)]
#[template(path = "admin/templates/dashboard.html")]
struct DashboardPage {
    layout: Layout,
    orders: crate::orders::Dashboard,
    outbox: crate::outbox::Backlog,
    currency: crate::money::Currency,
}

async fn dashboard(state: web::Data<crate::http::AppState>, admin: Admin) -> Result<HttpResponse, PageError> {
    let orders = state.db.run(Module::Orders.op("dashboard"), crate::orders::dashboard).await?;
    let outbox = state.db.run(Module::Outbox.op("backlog"), crate::outbox::backlog).await?;
    render(&DashboardPage { layout: admin.layout(Section::Dashboard), orders, outbox, currency: state.config.currency })
}
