//! What every answer carries, whichever handler (or none) produced it: a body on every error,
//! a strict Content-Security-Policy on every page, HSTS behind HTTPS, and a bound on the length
//! of the address.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};

use crate::admin::page::PageError;
use crate::error::AppError;
use crate::http::state::AppState;

/// Longer addresses are refused with 414 before any handler reads them. (Beyond 64 KiB the HTTP
/// parser itself refuses them, before this middleware runs.)
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Pages load their style sheet and icons from this server and nothing else; nothing inline, no
/// script, no framing by other sites, forms post only back here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub async fn harden(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let face = Face::of(request.path());
    let hsts = request.app_data::<web::Data<AppState>>().is_some_and(|state| state.config.cookie_secure);
    let uri_bytes = request.uri().path_and_query().map_or(0, |target| target.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        let response = error_response(face, AppError::uri_too_long());
        return Ok(request.into_response(response));
    }
    let is_head = request.method() == Method::HEAD;
    let mut response = next.call(request).await?.map_into_boxed_body();

    let status = response.status();
    let empty = matches!(
        response.response().body().size(),
        actix_web::body::BodySize::None | actix_web::body::BodySize::Sized(0)
    );
    if (status.is_client_error() || status.is_server_error()) && empty && !is_head {
        let (request, old) = response.into_parts();
        let mut filled = error_response(face, AppError::for_status(status));
        for (name, value) in old.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                filled.headers_mut().insert(name.clone(), value.clone());
            }
        }
        response = ServiceResponse::new(request, filled);
    }

    let headers = response.headers_mut();
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    if is_html && !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, header::HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    }
    if hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, header::HeaderValue::from_static("max-age=31536000"));
    }
    Ok(response)
}

/// Who reads an answer: an admin's browser, a shopper's, or a program.
#[derive(Clone, Copy)]
enum Face {
    Admin,
    Shop,
    Api,
}

impl Face {
    fn of(path: &str) -> Face {
        if path.starts_with("/admin") {
            Face::Admin
        } else if crate::storefront::pages::is_shop_path(path) {
            Face::Shop
        } else {
            Face::Api
        }
    }
}

fn error_response(face: Face, error: AppError) -> HttpResponse {
    match face {
        Face::Admin => PageError(error).error_response(),
        Face::Shop => crate::storefront::ShopError(error).error_response(),
        Face::Api => error.error_response(),
    }
}
