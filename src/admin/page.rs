//! The admin layout, template rendering, and the HTML face of errors.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::error::AppError;

/// The admin sections, in navigation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Dashboard,
    Products,
    Inventory,
    Orders,
    Payments,
    Notifications,
    Events,
    Architecture,
    /// The signed-in admin's own account (reached from the user name in the top bar).
    Account,
}

impl Section {
    const NAVIGATION: [Section; 7] = [
        Section::Products,
        Section::Inventory,
        Section::Orders,
        Section::Payments,
        Section::Notifications,
        Section::Events,
        Section::Architecture,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Section::Dashboard => "Dashboard",
            Section::Products => "Products",
            Section::Inventory => "Inventory",
            Section::Orders => "Orders",
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
            Section::Inventory => "/admin/inventory",
            Section::Orders => "/admin/orders",
            Section::Payments => "/admin/payments",
            Section::Notifications => "/admin/notifications",
            Section::Events => "/admin/events",
            Section::Architecture => "/admin/architecture",
            Section::Account => "/admin/account",
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
}

impl Layout {
    pub fn nav(&self) -> Vec<NavItem> {
        Section::NAVIGATION
            .iter()
            .map(|&section| NavItem { label: section.label(), href: section.href(), active: section == self.section })
            .collect()
    }
}

/// Field messages of a form that did not validate, for re-rendering it.
#[derive(Debug, Default)]
pub struct FormErrors(pub Vec<crate::error::FieldError>);

impl FormErrors {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.iter().find(|error| error.field == field).map(|error| error.message.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(crate::error::FieldError::new(field, message));
    }
}

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

pub async fn not_found(request: actix_web::HttpRequest) -> Result<HttpResponse, PageError> {
    Err(PageError(AppError::not_found(format!("Nothing exists at {}.", request.path()))))
}

/// An [`AppError`] answered as a readable HTML page rather than problem+json.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PageError(#[from] pub AppError);

#[derive(Template)]
#[template(path = "admin/templates/error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    detail: &'a str,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.0.log();
        let problem = self.0.problem_json();
        let status = self.0.status();
        let page = ErrorPage {
            status: status.as_u16(),
            title: problem["title"].as_str().unwrap_or("Error"),
            detail: problem["detail"].as_str().unwrap_or_default(),
        };
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header(("Retry-After", crate::error::RETRY_AFTER_SECONDS.to_string()));
        }
        match page.render() {
            Ok(html) => response.content_type("text/html; charset=utf-8").body(html),
            Err(_) => {
                HttpResponse::build(status).content_type("text/plain; charset=utf-8").body(page.detail.to_owned())
            }
        }
    }
}
