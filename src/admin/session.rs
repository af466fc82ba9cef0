//! The admin session, its CSRF token, and the extractors admin pages use.
//!
//! The session's state lives in PostgreSQL ([`super::session_store`]); the cookie carries only
//! its key. Ending a session there (sign-out, password change, revocation, expiry) ends it for
//! every copy of the cookie.

use std::future::Future;
use std::pin::Pin;

use actix_session::{Session, SessionExt};
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpRequest, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::page::{Layout, PageError, Section};
use crate::db::Lsn;
use crate::error::AppError;
use crate::http::admin_token::constant_time_eq;
use crate::http::state::AppState;

use super::session_store::{SESSION_ID, USER_ID};

const USERNAME: &str = "username";
/// Where and with what the session was signed in, for the account page.
pub const SIGNED_IN_FROM: &str = "signed_in_from";
pub const USER_AGENT: &str = "user_agent";
const CSRF: &str = "csrf";
const FLASH: &str = "flash";
/// A one-time message that something did not happen as asked (shown as an alert).
const WARNING: &str = "warning";

#[derive(Clone, Debug)]
pub struct SignedIn {
    pub user_id: Uuid,
    pub username: String,
    /// The `admin_sessions` row of this session.
    pub session_id: Uuid,
    pub csrf_token: String,
}

/// The signed-in admin, if the session holds one. (Expired and ended sessions do not load.)
pub fn signed_in(session: &Session) -> Option<SignedIn> {
    let user_id = session.get::<Uuid>(USER_ID).ok().flatten()?;
    let username = session.get::<String>(USERNAME).ok().flatten()?;
    let session_id = session.get::<Uuid>(SESSION_ID).ok().flatten()?;
    Some(SignedIn { user_id, username, session_id, csrf_token: csrf_token(session) })
}

/// Starts a fresh session for `username`: a new key, a new row and a new CSRF token, so
/// nothing an attacker planted before sign-in survives it.
pub fn sign_in(
    session: &Session,
    user_id: Uuid,
    username: &str,
    client_ip: &str,
    user_agent: &str,
) -> Result<(), AppError> {
    session.renew();
    session.clear();
    let insert = |key: &str, value: serde_json::Value| session.insert(key, value).map_err(AppError::internal);
    insert(SESSION_ID, Uuid::new_v4().to_string().into())?;
    insert(USER_ID, user_id.to_string().into())?;
    insert(USERNAME, username.into())?;
    insert(SIGNED_IN_FROM, client_ip.into())?;
    insert(USER_AGENT, user_agent.chars().take(200).collect::<String>().into())?;
    insert(CSRF, new_token().into())?;
    Ok(())
}

/// The session's CSRF token, set at sign-in (created here for a session that lost it).
pub fn csrf_token(session: &Session) -> String {
    if let Ok(Some(token)) = session.get::<String>(CSRF) {
        return token;
    }
    let token = new_token();
    // Failing to store it only means the next form post is refused; no reason to fail the page.
    let _ = session.insert(CSRF, &token);
    token
}

pub fn verify_csrf(session: &Session, presented: &str) -> bool {
    match session.get::<String>(CSRF) {
        Ok(Some(expected)) => constant_time_eq(expected.as_bytes(), presented.as_bytes()),
        _ => false,
    }
}

/// A one-time message shown on the next page, after a redirect.
pub fn set_flash(session: &Session, message: impl Into<String>) {
    let _ = session.insert(FLASH, message.into());
}

fn take_flash(session: &Session) -> Option<String> {
    session.remove_as::<String>(FLASH).and_then(Result::ok)
}

fn take_warning(session: &Session) -> Option<String> {
    session.remove_as::<String>(WARNING).and_then(Result::ok)
}

/// What a form post with a missing or wrong CSRF token is told.
pub const EXPIRED_FORM: &str =
    "This form has expired or did not come from Agora's admin pages. Go back, reload the page and try again.";

pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Extractor for admin pages: the signed-in admin (the middleware has already turned everyone
/// else away) and what the page layout needs.
pub struct Admin {
    pub user: SignedIn,
    pub session: Session,
    flash: Option<String>,
    warning: Option<String>,
}

impl Admin {
    pub fn layout(&self, section: Section) -> Layout {
        Layout {
            username: self.user.username.clone(),
            csrf_token: self.user.csrf_token.clone(),
            section,
            flash: self.flash.clone(),
            warning: self.warning.clone(),
        }
    }

    pub fn flash(&self, message: impl Into<String>) {
        set_flash(&self.session, message);
    }

    /// Tells the next page that what was asked did not happen, and why.
    pub fn warn(&self, message: impl Into<String>) {
        let _ = self.session.insert(WARNING, message.into());
    }

    /// How far a replica must have replayed before it may answer this admin's reads: past
    /// this session's last write (see [`remember_write_position`]).
    pub fn read_after(&self) -> Lsn {
        self.session.get::<Lsn>(READ_AFTER).ok().flatten().unwrap_or(0)
    }
}

const READ_AFTER: &str = "read_after";

/// Read-your-writes with a replica: after any form post (every admin write is one), remember
/// the primary's position in the session; list pages then read from the replica only once it
/// has replayed that far. Without a replica this costs nothing.
pub async fn remember_write_position(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // A visitor who is not signed in has no session to remember it in, and must not get one.
    let writes = request.method() == Method::POST && signed_in(&request.get_session()).is_some();
    let state = request.app_data::<web::Data<AppState>>().cloned();
    let response = next.call(request).await?;
    if let Some(state) = state.filter(|state| writes && state.db.has_replica()) {
        let session = response.request().get_session();
        match state.db.position_after_write().await {
            Ok(position) => session.insert(READ_AFTER, position)?,
            // Unknown: this session reads from the primary until its next write.
            Err(_) => session.insert(READ_AFTER, Lsn::MAX)?,
        }
    }
    Ok(response)
}

impl FromRequest for Admin {
    type Error = PageError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let session = request.get_session();
        let result = match signed_in(&session) {
            Some(user) => {
                let flash = take_flash(&session);
                let warning = take_warning(&session);
                Ok(Admin { user, session, flash, warning })
            }
            None => Err(PageError::from(AppError::unauthorized("Please sign in again."))),
        };
        std::future::ready(result)
    }
}

/// A form that carries the session's CSRF token.
pub trait CsrfProtected {
    fn csrf_token(&self) -> &str;
}

/// An urlencoded form whose CSRF token has been checked against the session. Every admin form
/// POST takes its form through this extractor. (A body that cannot be read is answered by the
/// admin scope's [`super::page::form_config`].)
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned + CsrfProtected + 'static> FromRequest for CsrfForm<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let form = web::Form::<T>::from_request(request, payload);
        let session = request.get_session();
        Box::pin(async move {
            let form = form.await?.into_inner();
            if !verify_csrf(&session, form.csrf_token()) {
                return Err(PageError::from(AppError::forbidden(EXPIRED_FORM)).into());
            }
            Ok(CsrfForm(form))
        })
    }
}

/// A form with nothing but the CSRF token (buttons such as "Sign out" or "Deactivate").
#[derive(serde::Deserialize)]
pub struct ButtonForm {
    pub csrf_token: String,
}

impl CsrfProtected for ButtonForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}
