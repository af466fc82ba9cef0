//! The shop's layout, its HTML errors, and the form helpers its pages share.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::error::AppError;

/// What the shop's layout (`storefront/templates/base.html`) shows around every page.
#[derive(Debug, Default)]
pub struct ShopLayout {
    /// The search box's text.
    pub search: String,
}

/// An [`AppError`] answered as a page in the shop's layout.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ShopError(#[from] pub AppError);

impl From<diesel::result::Error> for ShopError {
    fn from(error: diesel::result::Error) -> Self {
        ShopError(AppError::from(error))
    }
}

#[derive(Template)]
#[template(path = "storefront/templates/error.html")]
struct ErrorPage {
    layout: ShopLayout,
    status: u16,
    title: String,
    detail: String,
}

impl ResponseError for ShopError {
    fn status_code(&self) -> StatusCode {
        self.0.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.0.log();
        let status = self.0.status();
        let problem = self.0.problem_json();
        let page = ErrorPage {
            layout: ShopLayout::default(),
            status: status.as_u16(),
            title: problem["title"].as_str().unwrap_or("Error").to_owned(),
            detail: problem["detail"].as_str().unwrap_or_default().to_owned(),
        };
        let mut response = HttpResponse::build(status);
        response.insert_header(("Cache-Control", "no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header(("Retry-After", crate::error::RETRY_AFTER_SECONDS.to_string()));
        }
        match page.render() {
            Ok(html) => response.content_type("text/html; charset=utf-8").body(html),
            Err(_) => response.content_type("text/plain; charset=utf-8").body(page.detail),
        }
    }
}

pub fn render_with_status(status: StatusCode, template: &impl Template) -> Result<HttpResponse, ShopError> {
    let html = template.render().map_err(AppError::internal)?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(html))
}

/// 303 See Other: where a form post sends the browser next.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("Location", location)).finish()
}

pub use crate::input::FormErrors;

/// Bad paths, query strings and form bodies on the shop's pages get a page in its layout.
pub fn path_config() -> actix_web::web::PathConfig {
    actix_web::web::PathConfig::default().error_handler(|_error, request| {
        ShopError(AppError::not_found(format!("Nothing exists at {}.", request.path()))).into()
    })
}

pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default().error_handler(|error, _request| {
        ShopError(AppError::bad_request(format!("This address has a query the shop cannot read: {error}"))).into()
    })
}

pub fn form_config() -> actix_web::web::FormConfig {
    actix_web::web::FormConfig::default().limit(16 * 1024).error_handler(|error, _request| {
        ShopError(AppError::bad_request(format!("The form could not be read: {error}"))).into()
    })
}
