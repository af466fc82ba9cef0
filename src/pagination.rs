//! Keyset pagination: `?limit=` (1..=100, default 20) and an opaque `?cursor=`, answered as
//! `{"items": [...], "next_cursor": "..." | null}`. A cursor is the sort key of the last item
//! seen, signed by the server, so a page costs an index range scan however deep it is (no
//! OFFSET, no COUNT(*)) and nothing but a cursor the server handed out reaches a query.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use sha2::Sha256;
use utoipa::openapi::schema::Object;

use crate::error::AppError;
use crate::input::{Pattern, Whole, whole_number};

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

const LIMIT: Whole = Whole::between(1, MAX_LIMIT);
/// Cursors are unpadded base64url; a page key never needs more.
static CURSOR: Pattern = Pattern::new("^[A-Za-z0-9_-]{0,1024}$", 1024, "is not a cursor this API handed out");
/// Bytes of the MAC a cursor starts with: 128 bits, as many as forging one would have to guess.
const TAG_BYTES: usize = 16;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (default 20).
    #[serde(default, deserialize_with = "whole_number::optional_in_query")]
    #[param(schema_with = limit_schema)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = cursor_schema)]
    pub cursor: Option<String>,
}

fn limit_schema() -> Object {
    LIMIT.schema()
}

fn cursor_schema() -> Object {
    CURSOR.schema()
}

impl PageQuery {
    pub fn limit(&self) -> Result<i64, AppError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(limit) => LIMIT.check(limit).map_err(|message| AppError::invalid("limit", message)),
        }
    }

    /// The key of the cursor handed out for `list`, if one was sent.
    pub fn cursor<K: DeserializeOwned>(&self, key: &CursorKey, list: List) -> Result<Option<K>, AppError> {
        self.cursor.as_deref().filter(|cursor| !cursor.is_empty()).map(|cursor| key.open(list, cursor)).transpose()
    }
}

/// The lists that hand out cursors. A cursor is signed for its list, so that one handed out by
/// one list is refused by another even where their keys have the same shape.
#[derive(Clone, Copy, Debug)]
pub enum List {
    Products,
    Orders,
    Notifications,
    StockMovements,
}

impl List {
    fn name(self) -> &'static [u8] {
        match self {
            List::Products => b"products",
            List::Orders => b"orders",
            List::Notifications => b"notifications",
            List::StockMovements => b"stock movements",
        }
    }
}

/// The server's key for cursors. A cursor is the MAC of its list and sort key followed by the
/// key, so the server reads only what it handed out: any other cursor, whatever it decodes to
/// (text with a NUL byte, a date PostgreSQL cannot store), is refused before it is decoded, and
/// never reaches a query. Every process on one database shares the key (`admin_secrets`), so a
/// cursor from one works on all.
#[derive(Clone)]
pub struct CursorKey(Vec<u8>);

impl CursorKey {
    pub fn new(secret: &[u8]) -> CursorKey {
        CursorKey(secret.to_vec())
    }

    fn mac(&self, list: List, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(list.name());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    pub fn seal(&self, list: List, payload: &[u8]) -> String {
        let tag = self.mac(list, payload).finalize().into_bytes();
        let mut bytes = Vec::with_capacity(TAG_BYTES + payload.len());
        bytes.extend_from_slice(&tag[..TAG_BYTES]);
        bytes.extend_from_slice(payload);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A cursor's key; a cursor this API did not hand out for `list` is a 400.
    pub fn open<K: DeserializeOwned>(&self, list: List, cursor: &str) -> Result<K, AppError> {
        let refused = || AppError::bad_request("The cursor is not one this API handed out.");
        CURSOR.check(cursor).map_err(|_| refused())?;
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| refused())?;
        if bytes.len() < TAG_BYTES {
            return Err(refused());
        }
        let (tag, payload) = bytes.split_at(TAG_BYTES);
        self.mac(list, payload).verify_truncated_left(tag).map_err(|_| refused())?;
        serde_json::from_slice(payload).map_err(|_| refused())
    }
}

/// A page as a module reads it: the rows, and the sort key of the last one when more follow.
/// Only the HTTP edge turns the key into a cursor ([`Keyset::signed`]).
#[derive(Debug)]
pub struct Keyset<T> {
    pub items: Vec<T>,
    next_key: Option<Vec<u8>>,
}

impl<T> Keyset<T> {
    /// Builds a page from up to `limit + 1` rows fetched in order: the extra row only tells that
    /// there is more, and the next page starts after the key of the last row kept.
    pub fn from_rows<K: Serialize>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> K) -> Keyset<T> {
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_key = if has_more {
            rows.last().map(|last| serde_json::to_vec(&key(last)).expect("cursor keys serialize"))
        } else {
            None
        };
        Keyset { items: rows, next_key }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Keyset<U> {
        Keyset { items: self.items.into_iter().map(f).collect(), next_key: self.next_key }
    }

    /// The page as the API answers it, its next cursor signed for `list`.
    pub fn signed(self, key: &CursorKey, list: List) -> Page<T> {
        Page { next_cursor: self.next_key.map(|next| key.seal(list, &next)), items: self.items }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CursorKey {
        CursorKey::new(b"a test key")
    }

    #[test]
    fn a_page_keeps_limit_rows_and_points_past_the_last() {
        let page = Keyset::from_rows(vec![1, 2, 3], 2, |n| *n).signed(&key(), List::Orders);
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(key().open::<i32>(List::Orders, page.next_cursor.as_deref().unwrap()).unwrap(), 2);
        let last = Keyset::from_rows(vec![1, 2], 2, |n| *n).signed(&key(), List::Orders);
        assert!(last.next_cursor.is_none());
    }

    #[test]
    fn limits_outside_the_range_are_refused() {
        let query = |limit| PageQuery { limit: Some(limit), cursor: None };
        assert!(query(0).limit().is_err());
        assert!(query(101).limit().is_err());
        assert_eq!(query(100).limit().unwrap(), 100);
        assert_eq!(PageQuery::default().limit().unwrap(), DEFAULT_LIMIT);
    }

    #[test]
    fn only_cursors_handed_out_for_the_list_by_this_key_are_read() {
        let cursor = key().seal(List::Orders, br#"["2026-01-01T00:00:00Z","6f1d6f5e-0000-4000-8000-000000000000"]"#);
        assert!(key().open::<(String, String)>(List::Orders, &cursor).is_ok());
        assert!(key().open::<(String, String)>(List::Notifications, &cursor).is_err(), "another list");
        assert!(CursorKey::new(b"another key").open::<(String, String)>(List::Orders, &cursor).is_err());
        // The same sort key unsigned, or with one bit of it changed.
        let unsigned = URL_SAFE_NO_PAD.encode(br#"["-5000-01-01T00:00:00Z","6f1d6f5e-0000-4000-8000-000000000000"]"#);
        assert!(key().open::<(String, String)>(List::Orders, &unsigned).is_err());
        let mut bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        assert!(key().open::<(String, String)>(List::Orders, &URL_SAFE_NO_PAD.encode(bytes)).is_err());
        assert!(key().open::<(String, i64)>(List::Orders, "bm9wZQ").is_err());
        assert!(key().open::<(String, i64)>(List::Orders, "!!!").is_err());
    }
}
