//! HTTP validators for cacheable answers: `ETag`, `Last-Modified`, `Cache-Control`, and the 304
//! that `If-None-Match` (or, without it, `If-Modified-Since`) earns.

use std::hash::{Hash, Hasher};
use std::time::{Duration, SystemTime};

use actix_web::http::header::{self, HeaderValue, HttpDate};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};

/// A cacheable answer (a product, a page of products), ready to send, headers included.
pub struct Representation {
    pub body: Bytes,
    /// A strong validator: a hash of the body.
    pub etag: HeaderValue,
    pub last_modified: SystemTime,
    pub last_modified_header: HeaderValue,
}

impl Representation {
    pub fn new(body: Vec<u8>, last_modified: SystemTime) -> Representation {
        Representation {
            etag: etag_of(&body),
            body: Bytes::from(body),
            last_modified,
            last_modified_header: http_date(last_modified),
        }
    }
}

/// A strong `ETag` of `body`. SipHash of the body and its length: a tenth of SHA-256's cost, and
/// a collision (a 304 for a changed body) is a 1-in-2^64 event. Processes built by another Rust
/// release may hash differently; that costs a 200 where a 304 would do, never a wrong answer.
pub fn etag_of(body: &[u8]) -> HeaderValue {
    let mut hasher = std::hash::DefaultHasher::new();
    body.hash(&mut hasher);
    let etag = format!("\"{:x}-{:016x}\"", body.len(), hasher.finish());
    HeaderValue::from_str(&etag).expect("hex digits are a valid header value")
}

/// `Cache-Control` for answers any cache may keep for `max_age`.
pub fn cache_control(max_age: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("public, max-age={}", max_age.as_secs())).expect("a valid header value")
}

/// `Last-Modified`, formatted once per representation rather than per answer.
fn http_date(time: SystemTime) -> HeaderValue {
    HeaderValue::from_str(&HttpDate::from(time).to_string()).expect("a valid header value")
}

/// The answer to `request` for `representation`: 304 when the client's copy is current.
pub fn respond(request: &HttpRequest, representation: &Representation, cache_control: &HeaderValue) -> HttpResponse {
    let headers = request.headers();
    // RFC 9110 §13.2.2: If-None-Match, when present, decides; If-Modified-Since is ignored.
    let current = match headers.get(header::IF_NONE_MATCH) {
        Some(tags) => any_tag_matches(tags, representation.etag.to_str().unwrap_or_default()),
        None => headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|value| value.to_str().ok()?.parse::<HttpDate>().ok())
            .is_some_and(|since| whole_seconds(representation.last_modified) <= SystemTime::from(since)),
    };
    let mut response = if current { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::ETAG, representation.etag.clone()))
        .insert_header((header::LAST_MODIFIED, representation.last_modified_header.clone()))
        .insert_header((header::CACHE_CONTROL, cache_control.clone()));
    if current {
        response.finish()
    } else {
        response.content_type("application/json").body(representation.body.clone())
    }
}

/// Weak comparison, as If-None-Match asks: `W/"x"` matches `"x"`; `*` matches anything.
pub fn any_tag_matches(tags: &HeaderValue, etag: &str) -> bool {
    let Ok(tags) = tags.to_str() else { return false };
    tags.split(',').map(str::trim).any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// `Last-Modified` carries whole seconds; compare at that precision.
fn whole_seconds(time: SystemTime) -> SystemTime {
    let since_epoch = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_is_a_hash_of_the_body() {
        let a = Representation::new(b"{\"a\":1}".to_vec(), SystemTime::UNIX_EPOCH);
        let b = Representation::new(b"{\"a\":2}".to_vec(), SystemTime::UNIX_EPOCH);
        assert_ne!(a.etag, b.etag);
        assert_eq!(a.etag.len(), 20, "{:?}", a.etag);
        assert_eq!(a.etag, Representation::new(b"{\"a\":1}".to_vec(), SystemTime::UNIX_EPOCH).etag);
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_stars() {
        let etag = "\"abc\"";
        let matches = |value: &'static str| any_tag_matches(&HeaderValue::from_static(value), etag);
        assert!(matches("\"abc\""));
        assert!(matches("W/\"abc\""));
        assert!(matches("\"x\", \"abc\""));
        assert!(matches("*"));
        assert!(!matches("\"abcd\""));
        assert!(!matches("abc"));
    }
}
