//! Admin sessions kept in PostgreSQL (`admin_sessions`), behind actix-session's `SessionStore`.
//!
//! The cookie carries only a random key, signed; the table keeps its SHA-256, so neither a copy
//! of the table nor of old logs lets anyone in. A session ends on the server: at sign-out, when
//! the password changes, when revoked from the account page, after the idle lifetime without a
//! request and the absolute lifetime after it began ([`SessionLifetime`]). A copied cookie is
//! worthless from then on.

use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration as CookieDuration;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::store;
use crate::config::SessionLifetime;
use crate::db::Db;
use crate::kernel::Module;

/// The state key whose value names the row (so the account page can tell the current session).
pub const SESSION_ID: &str = "session_id";
/// The state key holding the signed-in user's id, mirrored in the `user_id` column.
pub const USER_ID: &str = "user_id";

#[derive(Clone)]
pub struct DbSessionStore {
    db: Db,
    lifetime: SessionLifetime,
}

impl DbSessionStore {
    pub fn new(db: Db, lifetime: SessionLifetime) -> Self {
        DbSessionStore { db, lifetime }
    }
}

fn key_hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

fn new_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// actix-session keeps each value as JSON text; the row mirrors two of them in columns.
fn json_value<T: serde::de::DeserializeOwned>(state: &HashMap<String, String>, key: &str) -> Option<T> {
    state.get(key).and_then(|text| serde_json::from_str(text).ok())
}

fn to_json(state: &HashMap<String, String>) -> serde_json::Value {
    serde_json::to_value(state).unwrap_or_default()
}

impl SessionStore for DbSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<HashMap<String, String>>, LoadError> {
        let hash = key_hash(session_key.as_ref());
        let lifetime = self.lifetime;
        let state = self
            .db
            .run(Module::Admin.op("load_session"), move |conn| store::touch_session(conn, &hash, lifetime))
            .await
            .map_err(|error| LoadError::Other(anyhow::Error::new(error)))?;
        match state {
            None => Ok(None),
            Some(state) => serde_json::from_value(state)
                .map(Some)
                .map_err(|error| LoadError::Deserialization(anyhow::Error::new(error))),
        }
    }

    async fn save(&self, state: HashMap<String, String>, _ttl: &CookieDuration) -> Result<SessionKey, SaveError> {
        let key = new_key();
        let row = store::NewSession {
            id: json_value::<Uuid>(&state, SESSION_ID).unwrap_or_else(Uuid::new_v4),
            key_hash: key_hash(&key),
            user_id: json_value::<Uuid>(&state, USER_ID),
            state: to_json(&state),
        };
        self.db
            .run(Module::Admin.op("save_session"), move |conn| store::insert_session(conn, &row))
            .await
            .map_err(|error| SaveError::Other(anyhow::Error::new(error)))?;
        SessionKey::try_from(key).map_err(|error| SaveError::Other(anyhow::Error::new(error)))
    }

    async fn update(
        &self,
        session_key: SessionKey,
        state: HashMap<String, String>,
        _ttl: &CookieDuration,
    ) -> Result<SessionKey, UpdateError> {
        let hash = key_hash(session_key.as_ref());
        let (user_id, state) = (json_value::<Uuid>(&state, USER_ID), to_json(&state));
        // A session ended while this request ran stays ended: nothing is written back, and the
        // cookie's key names no row.
        self.db
            .run(Module::Admin.op("update_session"), move |conn| store::update_session(conn, &hash, user_id, &state))
            .await
            .map_err(|error| UpdateError::Other(anyhow::Error::new(error)))?;
        Ok(session_key)
    }

    async fn update_ttl(&self, _session_key: &SessionKey, _ttl: &CookieDuration) -> Result<(), anyhow::Error> {
        // Every load already records the request; the lifetimes are the server's, not the cookie's.
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        let hash = key_hash(session_key.as_ref());
        self.db
            .run(Module::Admin.op("end_session"), move |conn| store::delete_session(conn, &hash))
            .await
            .map_err(anyhow::Error::new)
    }
}

/// Removes ended sessions now and then, in the background: a session past its lifetime no longer
/// loads anyway, so nothing waits for this, and no request pays for it.
pub fn start_pruning(tasks: &mut crate::background::BackgroundTasks, db: &Db, lifetime: SessionLifetime) {
    let db = db.clone();
    tasks.spawn("admin-session-prune", move |stop| {
        loop {
            match db.run_blocking(Module::Admin.op("prune_sessions"), |conn| store::prune_sessions(conn, lifetime)) {
                Ok(0) => {}
                Ok(count) => log::info!("removed {count} ended admin session(s)"),
                Err(error) => log::warn!("removing ended admin sessions failed, will retry: {error}"),
            }
            if stop.wait(PRUNE_EVERY) {
                return;
            }
        }
    });
}

const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(300);
