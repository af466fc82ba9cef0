//! `Idempotency-Key` (shared infrastructure): a retried request with the same key and the same
//! body gets the first response again, and nothing is performed twice.
//!
//! The key is claimed by inserting its row in the same transaction as the work it protects.
//! A second request with the same key, arriving while the first is still running, blocks on
//! that row (PostgreSQL's unique index makes it wait for the first transaction), then reads the
//! committed response. If the first transaction fails, the row vanishes with it and the second
//! request does the work itself. Keys expire after [`KEY_LIFETIME`].

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamptz};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::AppError;
use crate::kernel::{Call, Module, TableAccess};

pub const TABLES: TableAccess =
    TableAccess { module: Module::Idempotency, owns: &["idempotency_keys"], reads: &[], writes: &[] };

/// Shared infrastructure under the modules that use it: it calls none of them.
pub const CALLS: &[Call] = &[];

pub const HEADER: &str = "Idempotency-Key";
pub const KEY_LIFETIME: chrono::Duration = chrono::Duration::hours(24);

/// A validated `Idempotency-Key` header value: 1 to 255 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(value: &str) -> Result<IdempotencyKey, AppError> {
        let valid = (1..=255).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic());
        if valid {
            Ok(IdempotencyKey(value.to_owned()))
        } else {
            Err(AppError::bad_request(format!("{HEADER} must be 1 to 255 visible ASCII characters.")))
        }
    }

    /// The key of a request, if it carries one.
    pub fn from_request(request: &HttpRequest) -> Result<Option<IdempotencyKey>, AppError> {
        match request.headers().get(HEADER) {
            None => Ok(None),
            Some(value) => {
                let text = value.to_str().map_err(|_| AppError::bad_request(format!("{HEADER} must be ASCII.")))?;
                Self::parse(text).map(Some)
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 of the canonical JSON of `request` (object keys sorted), so that whitespace and key
/// order do not make two equal requests different.
pub fn fingerprint(request: &impl Serialize) -> String {
    let canonical = serde_json::to_value(request).and_then(|value| serde_json::to_vec(&value)).unwrap_or_default();
    Sha256::digest(&canonical).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What an operation answered, as stored for replays: the status, the JSON body and the
/// `Location` header.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub location: Option<String>,
    /// True when this is a stored answer given again.
    pub replayed: bool,
}

impl Answer {
    /// A success with `body` as JSON.
    pub fn json(status: StatusCode, body: &impl Serialize) -> Result<Answer, AppError> {
        let body = serde_json::to_value(body).map_err(AppError::internal)?;
        Ok(Answer { status: status.as_u16(), body, location: None, replayed: false })
    }

    /// `201 Created` of the resource at `location`.
    pub fn created(location: String, body: &impl Serialize) -> Result<Answer, AppError> {
        Ok(Answer { location: Some(location), ..Answer::json(StatusCode::CREATED, body)? })
    }

    /// A client problem (4xx) as an answer to remember.
    pub fn problem(error: &AppError) -> Answer {
        Answer { status: error.status().as_u16(), body: error.problem_json(), location: None, replayed: false }
    }

    /// The HTTP response, the same for a first answer and a replay.
    pub fn into_response(self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = HttpResponse::build(status);
        response.content_type(if status.is_success() { "application/json" } else { "application/problem+json" });
        if self.replayed {
            response.insert_header(("Idempotent-Replayed", "true"));
        }
        if let Some(location) = self.location {
            response.insert_header(("Location", location));
        }
        response.body(self.body.to_string())
    }
}

/// The protected operation, its request's scope (e.g. `POST /api/orders`) and fingerprint.
pub struct Guard<'a> {
    pub scope: String,
    pub key: &'a IdempotencyKey,
    pub fingerprint: String,
}

/// Runs `work` at most once per key and turns what it returns into the answer with `answer`,
/// inside the same transaction, so the stored answer commits with the work. `work` must be a
/// transaction of its own, as every module operation that writes is (a savepoint here, inside
/// the key's transaction): when it refuses the request (a 4xx), its partial changes are undone
/// but the refusal is remembered like a success would be; a server failure (5xx) rolls
/// everything back, key included, so a retry may succeed. Without a key the work's transaction is
/// the only one: no savepoint costs a round trip while the work's row locks are held. Modules
/// return their own values; only `answer`, a plain function of the handler, knows HTTP.
pub fn run<T, E: Into<AppError>>(
    conn: &mut PgConnection,
    guard: Option<Guard<'_>>,
    work: impl FnOnce(&mut PgConnection) -> Result<T, E>,
    answer: impl FnOnce(T) -> Result<Answer, AppError>,
) -> Result<Answer, AppError> {
    let Some(guard) = guard else {
        return work(conn).map_err(Into::into).and_then(answer);
    };
    conn.transaction(|conn| {
        match claim(conn, &guard)? {
            Claim::Owned => {}
            Claim::Answered(answer) => return Ok(answer),
            Claim::OtherRequest => {
                return Err(AppError::conflict(
                    "idempotency-key-reused",
                    format!("This {HEADER} was used for a different request; use a new key for a new request."),
                ));
            }
        }
        let answered = work(conn).map_err(Into::into).and_then(answer);
        let answer = match answered {
            Ok(answer) => answer,
            Err(error @ AppError::Client(_)) => Answer::problem(&error),
            Err(error) => return Err(error),
        };
        store_answer(conn, &guard, &answer)?;
        Ok(answer)
    })
}

enum Claim {
    Owned,
    Answered(Answer),
    OtherRequest,
}

fn claim(conn: &mut PgConnection, guard: &Guard<'_>) -> QueryResult<Claim> {
    crate::as_module!(conn, Module::Idempotency);
    use crate::schema::idempotency_keys::dsl::*;
    let now = Utc::now();
    // Inserts, or takes over an expired key; waits while another transaction holds the key.
    let claimed = diesel::sql_query(
        "INSERT INTO idempotency_keys (scope, idempotency_key, request_fingerprint, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (scope, idempotency_key) DO UPDATE
            SET request_fingerprint = EXCLUDED.request_fingerprint,
                response_status = NULL,
                response_body = NULL,
                response_location = NULL,
                created_at = EXCLUDED.created_at,
                expires_at = EXCLUDED.expires_at
          WHERE idempotency_keys.expires_at <= EXCLUDED.created_at",
    )
    .bind::<Text, _>(&guard.scope)
    .bind::<Text, _>(guard.key.as_str())
    .bind::<Text, _>(&guard.fingerprint)
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(now + KEY_LIFETIME)
    .execute(conn)?;
    if claimed == 1 {
        return Ok(Claim::Owned);
    }
    let (stored_fingerprint, status, body, location): (String, Option<i16>, Option<Value>, Option<String>) =
        idempotency_keys
            .filter(scope.eq(&guard.scope))
            .filter(idempotency_key.eq(guard.key.as_str()))
            .select((request_fingerprint, response_status, response_body, response_location))
            .first(conn)?;
    if stored_fingerprint != guard.fingerprint {
        return Ok(Claim::OtherRequest);
    }
    match (status, body) {
        (Some(status), Some(body)) => {
            Ok(Claim::Answered(Answer { status: status as u16, body, location, replayed: true }))
        }
        // Unreachable by construction: answers are stored in the claiming transaction.
        _ => Err(diesel::result::Error::NotFound),
    }
}

fn store_answer(conn: &mut PgConnection, guard: &Guard<'_>, answer: &Answer) -> QueryResult<()> {
    crate::as_module!(conn, Module::Idempotency);
    use crate::schema::idempotency_keys::dsl::*;
    diesel::update(idempotency_keys.filter(scope.eq(&guard.scope)).filter(idempotency_key.eq(guard.key.as_str())))
        .set((
            response_status.eq(answer.status as i16),
            response_body.eq(&answer.body),
            response_location.eq(answer.location.as_deref()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Deletes keys that expired before `now`; returns how many.
pub fn purge_expired(conn: &mut PgConnection, now: DateTime<Utc>) -> QueryResult<usize> {
    use crate::schema::idempotency_keys::dsl::*;
    diesel::delete(idempotency_keys.filter(expires_at.le(now))).execute(conn)
}

/// Deletes expired keys now and then, so the table holds about a day of keys.
pub fn start_purging(tasks: &mut crate::background::BackgroundTasks, db: &crate::db::Db) {
    let db = db.clone();
    tasks.spawn("idempotency-purge", move |stop| {
        loop {
            let purged =
                db.run_blocking(Module::Idempotency.op("purge_expired"), |conn| purge_expired(conn, Utc::now()));
            match purged {
                Ok(0) => {}
                Ok(count) => log::info!("purged {count} expired idempotency key(s)"),
                Err(error) => log::warn!("purging expired idempotency keys failed, will retry: {error}"),
            }
            if stop.wait(std::time::Duration::from_secs(600)) {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_visible_characters() {
        assert!(IdempotencyKey::parse("order-7f3a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("with space").is_err());
    }

    #[test]
    fn fingerprints_ignore_key_order() {
        let a: Value = serde_json::from_str(r#"{"a": 1, "b": {"c": 2, "d": 3}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b": {"d": 3, "c": 2}, "a": 1}"#).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        let c: Value = serde_json::from_str(r#"{"a": 2, "b": {"c": 2, "d": 3}}"#).unwrap();
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }
}
