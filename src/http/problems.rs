//! The problem responses many operations share, for their `#[utoipa::path(responses(...))]`
//! lists: each is one status with the generic wording, answered as `application/problem+json`
//! with a [`ProblemDetails`] body. Responses whose wording says something about the operation
//! (which conflict, which rule) stay written out at the operation.

use crate::error::ProblemDetails;

#[derive(utoipa::IntoResponses)]
#[response(status = 400, description = "Malformed JSON", content_type = "application/problem+json")]
pub struct MalformedJson(pub ProblemDetails);

/// For operations that also read a header, such as `Idempotency-Key`.
#[derive(utoipa::IntoResponses)]
#[response(status = 400, description = "Malformed JSON or header", content_type = "application/problem+json")]
pub struct MalformedJsonOrHeader(pub ProblemDetails);

#[derive(utoipa::IntoResponses)]
#[response(status = 400, description = "Malformed query or cursor", content_type = "application/problem+json")]
pub struct MalformedQuery(pub ProblemDetails);

#[derive(utoipa::IntoResponses)]
#[response(
    status = 401,
    description = "Missing or wrong admin token",
    content_type = "application/problem+json",
    headers(("WWW-Authenticate" = String, description = "`Bearer`: the admin token goes in `Authorization: Bearer ...`"))
)]
pub struct Unauthorized(pub ProblemDetails);

/// Every operation that reads or writes the database can answer this.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 503,
    description = "The database is unavailable or overloaded; nothing was changed",
    content_type = "application/problem+json",
    headers(("Retry-After" = u32, description = "Seconds to wait before trying again"))
)]
pub struct Unavailable(pub ProblemDetails);

/// A query parameter that breaks its rule (`limit` out of range, a control character in a search).
#[derive(utoipa::IntoResponses)]
#[response(
    status = 422,
    description = "A query parameter out of range or with control characters",
    content_type = "application/problem+json"
)]
pub struct InvalidQuery(pub ProblemDetails);

#[derive(utoipa::IntoResponses)]
#[response(status = 404, description = "No such order", content_type = "application/problem+json")]
pub struct OrderNotFound(pub ProblemDetails);

#[derive(utoipa::IntoResponses)]
#[response(status = 404, description = "No such product", content_type = "application/problem+json")]
pub struct ProductNotFound(pub ProblemDetails);

#[derive(utoipa::IntoResponses)]
#[response(status = 422, description = "Invalid fields", content_type = "application/problem+json")]
pub struct InvalidFields(pub ProblemDetails);

#[cfg(test)]
mod tests {
    use utoipa::IntoResponses;

    #[test]
    fn a_shared_response_is_problem_json_with_a_problem_details_body() {
        let responses = serde_json::to_value(super::Unauthorized::responses()).unwrap();
        assert_eq!(responses["401"]["description"], "Missing or wrong admin token");
        let schema = &responses["401"]["content"]["application/problem+json"]["schema"];
        assert_eq!(schema["$ref"], "#/components/schemas/ProblemDetails");
    }
}
