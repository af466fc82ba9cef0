//! The application-wide error type.
//!
//! Modules have their own `thiserror` enums with domain variants; each converts into
//! [`AppError`], which knows how to answer: as `application/problem+json` (RFC 9457) on the API,
//! and through [`crate::admin::PageError`] as a readable HTML page in the admin. Internal errors
//! are logged with their cause chain and answered with a generic message: no SQL, no internals.

use std::fmt;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Map, Value};

pub type AppResult<T> = Result<T, AppError>;

/// What a 503 tells clients to wait before retrying.
pub const RETRY_AFTER_SECONDS: u32 = 2;

/// One invalid field of a request, as listed in a validation problem's `errors` array.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

/// The shape of every error body (`application/problem+json`, RFC 9457), for the OpenAPI document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProblemDetails {
    /// `/problems/{kind}`, e.g. `/problems/insufficient-stock`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Present on validation problems (422): one entry per invalid field.
    pub errors: Option<Vec<FieldError>>,
}

/// A client-facing problem: what went wrong with the request, in terms the client can act on.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    /// Short slug; the problem's `type` is `/problems/{kind}`.
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Extension members (RFC 9457 section 3.2), e.g. the SKU that is out of stock.
    pub extensions: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request cannot succeed as it is (4xx).
    #[error("{}", .0.detail)]
    Client(Box<Problem>),
    /// A dependency (the database) is unavailable or overloaded right now (503).
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure (500). The source is logged, never shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    fn client(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        AppError::Client(Box::new(Problem {
            status,
            kind,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            extensions: Map::new(),
        }))
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::client(StatusCode::BAD_REQUEST, "bad-request", "Malformed request", detail)
    }

    /// 400 for a query parameter that cannot be understood (a page, a sort, a filter).
    pub fn bad_query(parameter: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::bad_request(format!("The query parameter {parameter} {message}."))
            .with_field_errors(vec![FieldError::new(parameter, message)])
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::client(StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::client(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::client(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::client(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed", detail)
    }

    /// A problem for a status some layer answered without a body (a resource's 405, an
    /// extractor's 413), worded from the status alone.
    pub fn for_status(status: StatusCode) -> Self {
        let title = status.canonical_reason().unwrap_or("Error");
        match status {
            StatusCode::NOT_FOUND => Self::not_found("Nothing exists at this address."),
            StatusCode::METHOD_NOT_ALLOWED => Self::method_not_allowed("This address does not take that method."),
            StatusCode::PAYLOAD_TOO_LARGE => {
                Self::client(status, "payload-too-large", "Payload too large", "The request body is too large.")
            }
            StatusCode::URI_TOO_LONG => Self::uri_too_long(),
            StatusCode::SERVICE_UNAVAILABLE => AppError::Unavailable("answered 503 without a body".into()),
            status if status.is_client_error() => Self::client(status, "client-error", "Client error", title),
            _ => AppError::internal(format!("answered {status} without a body")),
        }
    }

    pub fn uri_too_long() -> Self {
        Self::client(
            StatusCode::URI_TOO_LONG,
            "uri-too-long",
            "URI too long",
            "The address with its query is longer than this server reads; send less in the query string.",
        )
    }

    /// 409: the request is fine, but the current state of the resource does not allow it.
    pub fn conflict(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::client(StatusCode::CONFLICT, kind, "Conflict with the current state", detail)
    }

    /// 422 with one message per invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [single] => format!("{}: {}", single.field, single.message),
            _ => format!("{} fields are invalid", errors.len()),
        };
        let mut error =
            Self::client(StatusCode::UNPROCESSABLE_ENTITY, "validation", "The request breaks a rule", detail);
        if let AppError::Client(problem) = &mut error {
            problem.errors = errors;
        }
        error
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// 422 for a rule that is not about a single field.
    pub fn unprocessable(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::client(StatusCode::UNPROCESSABLE_ENTITY, kind, "The request breaks a rule", detail)
    }

    pub fn payment_required(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::client(StatusCode::PAYMENT_REQUIRED, kind, "Payment declined", detail)
    }

    pub fn too_many_requests(detail: impl Into<String>) -> Self {
        Self::client(StatusCode::TOO_MANY_REQUESTS, "too-many-requests", "Too many requests", detail)
    }

    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        AppError::Internal(source.into())
    }

    /// Lists the fields a client problem is about (as validation problems do).
    pub fn with_field_errors(mut self, errors: Vec<FieldError>) -> Self {
        if let AppError::Client(problem) = &mut self {
            problem.errors = errors;
        }
        self
    }

    /// Adds an extension member to a client problem (ignored for other errors).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        debug_assert!(
            !matches!(key, "type" | "title" | "status" | "detail" | "instance" | "errors"),
            "extension {key:?} would replace a standard problem member"
        );
        if let AppError::Client(problem) = &mut self {
            problem.extensions.insert(key.to_owned(), value.into());
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Client(problem) => problem.status,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem document, with internals replaced by a generic message.
    pub fn problem_json(&self) -> Value {
        let mut body = Map::new();
        let status = self.status();
        let (kind, title, detail) = match self {
            AppError::Client(problem) => (problem.kind, problem.title, problem.detail.clone()),
            AppError::Unavailable(reason) => (
                "unavailable",
                "Service unavailable",
                if reason.starts_with(crate::notifications::remote::UNAVAILABLE) {
                    "The notifications service is unavailable; try again shortly.".to_owned()
                } else {
                    "The database is unavailable or overloaded; try again shortly.".to_owned()
                },
            ),
            AppError::Internal(_) => (
                "internal",
                "Internal server error",
                "Something went wrong on our side. It has been logged.".to_owned(),
            ),
        };
        body.insert("type".into(), format!("/problems/{kind}").into());
        body.insert("title".into(), title.into());
        body.insert("status".into(), status.as_u16().into());
        body.insert("detail".into(), detail.into());
        if let AppError::Client(problem) = self {
            if !problem.errors.is_empty() {
                body.insert("errors".into(), serde_json::to_value(&problem.errors).unwrap_or_default());
            }
            for (key, value) in &problem.extensions {
                body.insert(key.clone(), value.clone());
            }
        }
        Value::Object(body)
    }

    /// Logs server-side failures once, with their whole cause chain.
    pub fn log(&self) {
        match self {
            AppError::Client(_) => {}
            AppError::Unavailable(reason) => log::warn!("answering 503: {reason}"),
            AppError::Internal(_) => log::error!("answering 500: {}", CauseChain(self)),
        }
    }
}

/// Formats an error and all its sources: `outer: middle: root`.
pub struct CauseChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for CauseChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.log();
        let mut response = HttpResponse::build(self.status());
        response.content_type("application/problem+json");
        match self.status() {
            // RFC 9110: a 401 names the scheme that would succeed.
            StatusCode::UNAUTHORIZED => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string()));
            }
            _ => {}
        }
        response.body(self.problem_json().to_string())
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(error: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match error {
            Error::NotFound => AppError::not_found("No such resource."),
            // Serialization failures and deadlocks are transient: the client may simply retry.
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                AppError::Unavailable("transaction conflict, retry".into())
            }
            Error::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if info.message().contains("canceling statement due to statement timeout") =>
            {
                AppError::Unavailable("statement timeout".into())
            }
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
                AppError::Unavailable("database connection lost".into())
            }
            other => AppError::internal(other),
        }
    }
}

impl From<r2d2::Error> for AppError {
    fn from(error: r2d2::Error) -> Self {
        AppError::Unavailable(format!("no database connection: {error}"))
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(error: actix_web::error::BlockingError) -> Self {
        AppError::internal(error)
    }
}

/// Maps the extractor errors of actix-web (bad JSON, bad query string, bad path) to problems, so
/// that a malformed request gets the same problem+json shape as every other error.
pub mod extractors {
    use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
    use actix_web::{HttpRequest, web};

    use super::AppError;

    pub fn json_config() -> web::JsonConfig {
        web::JsonConfig::default().limit(256 * 1024).error_handler(|error, _request: &HttpRequest| {
            let app_error = match &error {
                JsonPayloadError::ContentType => {
                    AppError::bad_request("Expected a JSON body with Content-Type: application/json.")
                }
                JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
                    AppError::bad_request(format!("The JSON body is larger than {limit} bytes."))
                }
                JsonPayloadError::Deserialize(inner) => AppError::bad_request(format!("Invalid JSON body: {inner}")),
                other => AppError::bad_request(format!("Invalid JSON body: {other}")),
            };
            app_error.into()
        })
    }

    pub fn query_config() -> web::QueryConfig {
        web::QueryConfig::default().error_handler(|error: QueryPayloadError, _request: &HttpRequest| {
            AppError::bad_request(format!("Invalid query string: {error}")).into()
        })
    }

    pub fn path_config() -> web::PathConfig {
        // A path segment that cannot be an id cannot name an existing resource.
        web::PathConfig::default().error_handler(|_error: PathError, request: &HttpRequest| {
            AppError::not_found(format!("Nothing exists at {}.", request.path())).into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_problems_list_every_field() {
        let error = AppError::validation(vec![
            FieldError::new("sku", "must be 3 to 32 upper-case letters, digits or dashes"),
            FieldError::new("price_minor", "must be greater than 0"),
        ]);
        let body = error.problem_json();
        assert_eq!(body["status"], 422);
        assert_eq!(body["type"], "/problems/validation");
        assert_eq!(body["errors"][1]["field"], "price_minor");
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let error = AppError::internal(std::io::Error::other("relation \"secret_table\" does not exist"));
        let body = error.problem_json().to_string();
        assert!(!body.contains("secret_table"));
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn extensions_are_top_level_members() {
        let body = AppError::conflict("insufficient-stock", "Only 2 left.").with("sku", "MUG-1").problem_json();
        assert_eq!(body["sku"], "MUG-1");
        assert_eq!(body["status"], 409);
    }
}
