//! The bearer token that guards the admin API.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::error::AppError;
use crate::http::state::AppState;

/// Proof that the request carried `Authorization: Bearer $AGORA_ADMIN_TOKEN`. Taking it as a
/// handler argument is what makes an endpoint an admin endpoint.
#[derive(Debug, Clone, Copy)]
pub struct AdminToken;

impl FromRequest for AdminToken {
    type Error = AppError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(check(request))
    }
}

fn check(request: &HttpRequest) -> Result<AdminToken, AppError> {
    let state =
        request.app_data::<web::Data<AppState>>().ok_or_else(|| AppError::internal("application state is missing"))?;
    check_bearer(request, state.config.admin_token.as_deref())
}

/// Whether `request` carries `Authorization: Bearer <expected>`; `expected` absent, the API is off.
/// The notifications service's API holds to the same rules.
pub fn check_bearer(request: &HttpRequest, expected: Option<&str>) -> Result<AdminToken, AppError> {
    let Some(expected) = expected else {
        return Err(AppError::forbidden(
            "The admin API is disabled: start agora with AGORA_ADMIN_TOKEN set to enable it.",
        ));
    };
    let presented = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        None => Err(AppError::unauthorized("This endpoint needs Authorization: Bearer <admin token>.")),
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(AdminToken),
        Some(_) => Err(AppError::unauthorized("The admin token is not valid.")),
    }
}

/// Compares without an early exit, so response timing does not reveal how much of a guess matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |difference, (x, y)| difference | (x ^ y)) == 0
}
