//! The admin shell: sign-in, the session and its CSRF token, and the layout every admin page
//! shares. Modules add their own pages (`catalog::pages`, `orders::pages`, ...); the composition
//! root (`crate::startup`) mounts them, and the dashboard, inside [`scope`], behind the sign-in
//! middleware.

pub mod account;
pub mod auth;
pub mod chart;
pub mod listing;
pub mod page;
pub mod session;
pub mod session_store;
pub mod store;

use actix_web::middleware::from_fn;
use actix_web::web;

use crate::kernel::{Call, Module, TableAccess};

pub const TABLES: TableAccess = TableAccess {
    module: Module::Admin,
    owns: &["admin_users", "admin_login_failures", "admin_secrets", "admin_sessions"],
    reads: &[],
    writes: &[],
};

/// Every module's pages use the shell, so the shell calls no module: a call back would be a cycle.
pub const CALLS: &[Call] = &[];

/// The `/admin` scope: sessions, the sign-in middleware, sign-in and sign-out, and the pages
/// that `pages` mounts.
pub fn scope(
    sessions: actix_session::SessionMiddleware<session_store::DbSessionStore>,
    pages: fn(&mut web::ServiceConfig),
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
    web::scope("/admin")
        .wrap(from_fn(page::errors_inside_layout))
        .wrap(from_fn(session::remember_write_position))
        .wrap(from_fn(auth::require_signed_in))
        .wrap(sessions)
        .app_data(page::path_config())
        .app_data(page::query_config())
        .app_data(page::form_config())
        .service(web::resource("/login").route(web::get().to(auth::login_form)).route(web::post().to(auth::login)))
        .service(web::resource("/logout").route(web::post().to(auth::logout)))
        .configure(account::configure)
        .configure(pages)
        .default_service(web::to(page::not_found))
}
