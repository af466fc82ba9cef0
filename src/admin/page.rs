//! The admin layout, template rendering, and the HTML face of errors.

use actix_session::SessionExt;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::error::AppError;

/// The admin sections, in navigation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Dashboard,
    Products,
    Categories,
    Inventory,
    Orders,
    Customers,
    Payments,
    Notifications,
    Events,
    Architecture,
    /// The signed-in admin's own account (reached from the user name in the top bar).
    Account,
}

impl Section {
    const NAVIGATION: [Section; 9] = [
        Section::Products,
        Section::Categories,
        Section::Inventory,
        Section::Orders,
        Section::Customers,
        Section::Payments,
        Section::Notifications,
        Section::Events,
        Section::Architecture,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Section::Dashboard => "Dashboard",
            Section::Products => "Products",
            Section::Categories => "Categories",
            Section::Inventory => "Inventory",
            Section::Orders => "Orders",
            Section::Customers => "Customers",
            Section::Payments => "Payments",
            Section::Notifications => "Notifications",
            Section::Events => "Events",
            Section::Architecture => "Architecture",
            Section::Account => "Your account",
        }
    }

    pub fn href(self) -> &'static str {
        match self {
            Section::Dashboard => "/admin",
            Section::Products => "/admin/products",
            Section::Categories => "/admin/categories",
            Section::Inventory => "/admin/inventory",
            Section::Orders => "/admin/orders",
            Section::Customers => "/admin/customers",
            Section::Payments => "/admin/payments",
            Section::Notifications => "/admin/notifications",
            Section::Events => "/admin/events",
            Section::Architecture => "/admin/architecture",
            Section::Account => "/admin/account",
        }
    }
}

impl Section {
    /// The section a path under `/admin` belongs to, for pages built outside any handler (errors).
    pub fn of_path(path: &str) -> Section {
        let first = path.trim_start_matches("/admin").trim_start_matches('/').split('/').next().unwrap_or("");
        match first {
            "products" => Section::Products,
            "categories" => Section::Categories,
            "inventory" => Section::Inventory,
            "orders" => Section::Orders,
            "customers" => Section::Customers,
            "payments" => Section::Payments,
            "notifications" => Section::Notifications,
            "events" => Section::Events,
            "architecture" | "experiments" => Section::Architecture,
            "account" => Section::Account,
            _ => Section::Dashboard,
        }
    }
}

pub struct NavItem {
    pub label: &'static str,
    pub href: &'static str,
    pub active: bool,
}

/// What the base layout (`admin/templates/base.html`) shows around every page.
pub struct Layout {
    pub username: String,
    pub csrf_token: String,
    pub section: Section,
    pub flash: Option<String>,
    /// Something asked for did not happen (a conflict), said on the page it returned to.
    pub warning: Option<String>,
}

impl Layout {
    pub fn nav(&self) -> Vec<NavItem> {
        Section::NAVIGATION
            .iter()
            .map(|&section| NavItem { label: section.label(), href: section.href(), active: section == self.section })
            .collect()
    }
}

pub use crate::input::FormErrors;

/// 303 See Other to `location`: where a form post sends the browser next.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("Location", location)).finish()
}

pub fn render(template: &impl Template) -> Result<HttpResponse, PageError> {
    render_with_status(StatusCode::OK, template)
}

pub fn render_with_status(status: StatusCode, template: &impl Template) -> Result<HttpResponse, PageError> {
    let html = template.render().map_err(AppError::internal)?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(html))
}

/// Bad paths and query strings under `/admin` get an HTML page too, not problem+json.
pub fn path_config() -> actix_web::web::PathConfig {
    actix_web::web::PathConfig::default().error_handler(|_error, request| {
        PageError(AppError::not_found(format!("Nothing exists at {}.", request.path()))).into()
    })
}

pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default().error_handler(|error, _request| {
        PageError(AppError::bad_request(format!("Invalid query string: {error}"))).into()
    })
}

/// Every admin form body that cannot be read (the sign-in form's, and those
/// [`super::session::CsrfForm`] reads) gets a 400 page saying so.
pub fn form_config() -> actix_web::web::FormConfig {
    actix_web::web::FormConfig::default().error_handler(|error, _request| {
        PageError(AppError::bad_request(format!("The form could not be read: {error}"))).into()
    })
}

pub async fn not_found(request: actix_web::HttpRequest) -> Result<HttpResponse, PageError> {
    Err(PageError(AppError::not_found(format!("Nothing exists at {}.", request.path()))))
}

/// An [`AppError`] answered as a readable HTML page rather than problem+json.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PageError(#[from] pub AppError);

/// What an error page says, whoever is looking.
#[derive(Clone, Debug)]
struct ErrorText {
    status: u16,
    title: String,
    detail: String,
}

impl PageError {
    fn text(&self) -> ErrorText {
        let problem = self.0.problem_json();
        ErrorText {
            status: self.0.status().as_u16(),
            title: problem["title"].as_str().unwrap_or("Error").to_owned(),
            detail: problem["detail"].as_str().unwrap_or_default().to_owned(),
        }
    }
}

/// The error page for someone not signed in: no menu to offer.
#[derive(Template)]
#[template(path = "admin/templates/error.html")]
struct ErrorPage {
    error: ErrorText,
}

/// The error page for a signed-in admin: inside the layout, with the menu and a way back.
#[derive(Template)]
#[template(path = "admin/templates/error_in_layout.html")]
struct ErrorInLayout {
    layout: Layout,
    error: ErrorText,
    /// The list the failed page belongs to (plain, without whatever query failed).
    back: Option<Section>,
}

/// Re-renders the error pages of signed-in admins inside the layout. Errors are answered by
/// [`PageError::error_response`], which sees no request and so no session; this middleware sees both.
pub async fn errors_inside_layout<B: MessageBody + 'static>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B, String>>, actix_web::Error> {
    let response = next.call(request).await?;
    let Some(error) = response.response().error().and_then(|error| error.as_error::<PageError>()).map(PageError::text)
    else {
        return Ok(response.map_into_left_body());
    };
    let Some(user) = super::session::signed_in(&response.request().get_session()) else {
        return Ok(response.map_into_left_body());
    };
    let section = Section::of_path(response.request().path());
    let back = (section != Section::Dashboard).then_some(section);
    let page = ErrorInLayout {
        layout: Layout { username: user.username, csrf_token: user.csrf_token, section, flash: None, warning: None },
        error,
        back,
    };
    let Ok(html) = page.render() else {
        return Ok(response.map_into_left_body());
    };
    Ok(response.map_body(|_head, _body| html).map_into_right_body())
}

/// A confirmation step before an irreversible action: a page that says exactly what will happen
/// and posts the action only when the operator presses the button. Works without script.
#[derive(Template)]
#[template(path = "admin/templates/confirm.html")]
pub struct Confirmation {
    pub layout: Layout,
    /// The question, naming the thing and the consequence: "Refund €101.40 to visa •••• 4242?"
    pub question: String,
    /// What else happens, one sentence each.
    pub consequences: Vec<String>,
    pub action: String,
    /// Hidden fields posted with the action besides the CSRF token (e.g. the status seen).
    pub fields: Vec<(&'static str, String)>,
    pub button: String,
    pub danger: bool,
    /// Where "Keep it" leads: the page the operator came from.
    pub back: String,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.0.log();
        let status = self.0.status();
        let page = ErrorPage { error: self.text() };
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header(("Retry-After", crate::error::RETRY_AFTER_SECONDS.to_string()));
        }
        match page.render() {
            Ok(html) => response.content_type("text/html; charset=utf-8").body(html),
            Err(_) => HttpResponse::build(status).content_type("text/plain; charset=utf-8").body(page.error.detail),
        }
    }
}
