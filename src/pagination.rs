//! Keyset pagination: `?limit=` (1..=100, default 20) and an opaque `?cursor=`, answered as
//! `{"items": [...], "next_cursor": "..." | null}`. A cursor is the sort key of the last item
//! seen, so a page costs an index range scan however deep it is: no OFFSET, no COUNT(*).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use utoipa::openapi::schema::Object;

use crate::error::AppError;
use crate::input::{Pattern, Whole, whole_number};

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

const LIMIT: Whole = Whole::between(1, MAX_LIMIT);
/// Cursors are unpadded base64url; a page key never needs more.
static CURSOR: Pattern = Pattern::new("^[A-Za-z0-9_-]{0,1024}$", 1024, "is not a cursor this API handed out");

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

    pub fn cursor<K: DeserializeOwned>(&self) -> Result<Option<K>, AppError> {
        self.cursor.as_deref().filter(|cursor| !cursor.is_empty()).map(decode_cursor).transpose()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in order: the extra row only tells that
    /// there is more, and the cursor is the key of the last row kept.
    pub fn from_rows<K: Serialize>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> K) -> Page<T> {
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if has_more { rows.last().map(|last| encode_cursor(&key(last))) } else { None };
        Page { items: rows, next_cursor }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}

pub fn encode_cursor<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).expect("cursor keys serialize"))
}

/// A cursor's key; a cursor this API did not hand out is a 400, whatever it decodes to (text
/// with a NUL byte included: it never reaches a query).
pub fn decode_cursor<K: DeserializeOwned>(cursor: &str) -> Result<K, AppError> {
    let refused = || AppError::bad_request("The cursor is not one this API handed out.");
    CURSOR.check(cursor).map_err(|_| refused())?;
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .filter(|bytes| !bytes.iter().any(|byte| byte.is_ascii_control()))
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_keeps_limit_rows_and_points_past_the_last() {
        let page = Page::from_rows(vec![1, 2, 3], 2, |n| *n);
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(decode_cursor::<i32>(page.next_cursor.as_deref().unwrap()).unwrap(), 2);
        let last = Page::from_rows(vec![1, 2], 2, |n| *n);
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
    fn foreign_cursors_are_refused() {
        assert!(decode_cursor::<(String, i64)>("bm9wZQ").is_err());
        assert!(decode_cursor::<(String, i64)>("!!!").is_err());
    }
}
