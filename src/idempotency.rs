//! `Idempotency-Key` (shared infrastructure): a retried request with the same key and the same
//! body gets the first response again, and nothing is performed twice.
//!
//! The key is claimed by inserting its row in the same transaction as the work it protects.
//! A second request with the same key, arriving while the first is still running, blocks on
//! that row (PostgreSQL's unique index makes it wait for the first transaction), then reads the
//! committed response. If the first transaction fails, the row vanishes with it and the second
//! request does the work itself. Keys expire after [`KEY_LIFETIME`].

use actix_web::HttpRequest;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamptz};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::AppError;

pub const TABLES: crate::architecture::TableAccess = crate::architecture::TableAccess {
    module: crate::architecture::Module::Idempotency,
    owns: &["idempotency_keys"],
    reads: &[],
    writes: &[],
};

/// Shared infrastructure under the modules that use it: it calls none of them.
pub const CALLS: &[crate::architecture::Call] = &[];

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

/// What an operation answered: the status and the JSON body, as stored for replays.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// True when this is a stored answer given again.
    pub replayed: bool,
}

impl Answer {
    pub fn new(status: u16, body: Value) -> Answer {
        Answer { status, body, replayed: false }
    }

    /// A client problem (4xx) as an answer to remember.
    fn from_problem(error: &AppError) -> Answer {
        Answer::new(error.status().as_u16(), error.problem_json())
    }
}

/// The protected operation, its request's scope (e.g. `POST /api/orders`) and fingerprint.
pub struct Guard<'a> {
    pub scope: String,
    pub key: &'a IdempotencyKey,
    pub fingerprint: String,
}

/// Runs `work` at most once per key. The work runs in a savepoint: when it refuses the request
/// (a 4xx), its partial changes are undone but the refusal is remembered like a success would
/// be; a server failure (5xx) rolls everything back, key included, so a retry may succeed.
pub fn run(
    conn: &mut PgConnection,
    guard: Option<Guard<'_>>,
    work: impl FnOnce(&mut PgConnection) -> Result<Answer, AppError>,
) -> Result<Answer, AppError> {
    let Some(guard) = guard else {
        return conn.transaction(work);
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
        let answer = match conn.transaction(work) {
            Ok(answer) => answer,
            Err(error @ AppError::Client(_)) => Answer::from_problem(&error),
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
    let (stored_fingerprint, status, body): (String, Option<i16>, Option<Value>) = idempotency_keys
        .filter(scope.eq(&guard.scope))
        .filter(idempotency_key.eq(guard.key.as_str()))
        .select((request_fingerprint, response_status, response_body))
        .first(conn)?;
    if stored_fingerprint != guard.fingerprint {
        return Ok(Claim::OtherRequest);
    }
    match (status, body) {
        (Some(status), Some(body)) => Ok(Claim::Answered(Answer { status: status as u16, body, replayed: true })),
        // Unreachable by construction: answers are stored in the claiming transaction.
        _ => Err(diesel::result::Error::NotFound),
    }
}

fn store_answer(conn: &mut PgConnection, guard: &Guard<'_>, answer: &Answer) -> QueryResult<()> {
    use crate::schema::idempotency_keys::dsl::*;
    diesel::update(idempotency_keys.filter(scope.eq(&guard.scope)).filter(idempotency_key.eq(guard.key.as_str())))
        .set((response_status.eq(answer.status as i16), response_body.eq(&answer.body)))
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
            let purged = db.run_blocking(crate::architecture::Module::Idempotency.op("purge_expired"), |conn| {
                purge_expired(conn, Utc::now())
            });
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
