//! Signing in and out of the admin pages: argon2 password hashes, a rate limit on failures that
//! holds across processes, and a middleware that sends everyone else to the login page.

use std::sync::OnceLock;

use actix_session::SessionExt;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, CookieJar, Key, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use askama::Template;
use chrono::Utc;
use diesel::{Connection, PgConnection};
use rand::{Rng, RngCore};
use serde::Deserialize;

use super::page::{PageError, render_with_status};
use super::session::{self, ButtonForm, CsrfForm};
use super::store;
use crate::admin::page::see_other;
use crate::config::Config;
use crate::error::AppError;
use crate::http::admin_token::constant_time_eq;
use crate::http::state::AppState;
use crate::kernel::Module;

/// At most this many failed sign-ins per user name within [`FAILURE_WINDOW_MINUTES`]...
const MAX_FAILURES_PER_USER: i64 = 5;
/// ...and this many from one client address, whatever names it tries.
const MAX_FAILURES_PER_CLIENT: i64 = 20;
const FAILURE_WINDOW_MINUTES: i64 = 15;

pub const FIRST_ADMIN: &str = "admin";

/// The same answer for an unknown name and a wrong password: it does not tell which names exist.
const WRONG: &str = "Unknown user name or wrong password.";

pub fn hash_password(password: &str) -> Result<String, AppError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|error| AppError::internal(error.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| AppError::internal(error.to_string()))
}

fn verify_password(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .map(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
        .unwrap_or(false)
}

/// A hash to verify against when the user name is unknown, so that the answer takes as long as
/// for a known user and does not reveal which names exist.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password that matches nothing").unwrap_or_default())
}

/// The server's secrets, shared by every agora process on one database.
pub struct Secrets {
    /// Signs the admin cookies.
    pub cookies: Vec<u8>,
    /// Signs the API's keyset cursors.
    pub cursors: Vec<u8>,
}

/// First start: creates the `admin` user when there is none, and returns the server's secrets,
/// created the first time.
pub fn bootstrap(conn: &mut PgConnection, config: &Config) -> Result<Secrets, AppError> {
    if !store::any_user_exists(conn)? {
        let (password, generated) = match &config.admin_password {
            Some(password) => (password.clone(), false),
            None => (generate_password(), true),
        };
        let created = store::create_user(conn, FIRST_ADMIN, &hash_password(&password)?)?;
        if created && generated {
            // Printed once, by design: this is how the operator learns the first password.
            log::warn!(
                "created admin user \"{FIRST_ADMIN}\" with the generated password: {password} \
                 (shown only now; set AGORA_ADMIN_PASSWORD before the first start to choose it)"
            );
        } else if created {
            log::info!("created admin user \"{FIRST_ADMIN}\" with the password from AGORA_ADMIN_PASSWORD");
        }
    }
    let random = || {
        let mut key = vec![0u8; 64];
        rand::rng().fill_bytes(&mut key);
        key
    };
    Ok(Secrets {
        cookies: store::secret(conn, "session_key", random)?,
        cursors: store::secret(conn, "cursor_key", random)?,
    })
}

fn generate_password() -> String {
    rand::rng().sample_iter(rand::distr::Alphanumeric).take(20).map(char::from).collect()
}

#[derive(Template)]
#[template(path = "admin/templates/login.html")]
struct LoginPage<'a> {
    csrf_token: &'a str,
    username: &'a str,
    next: &'a str,
    message: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf_token: String,
    username: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// Only local admin paths are followed after sign-in, never another site.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with("/admin")
                && !path.contains("//")
                && !path.contains('\\')
                && path.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            path
        }
        _ => "/admin",
    }
}

/// The sign-in form's CSRF token lives in a signed cookie of its own, not in a session: a
/// visitor who is not signed in costs no stored row, however many times the form is asked for.
/// The form must send back the token the cookie holds; only Agora can sign such a cookie, and
/// another site can neither read the token nor set the cookie.
const LOGIN_CSRF_COOKIE: &str = "agora_login_csrf";

/// The token of the visitor's sign-in cookie, if it carries one Agora signed.
fn login_csrf_token(request: &HttpRequest, key: &Key) -> Option<String> {
    let mut jar = CookieJar::new();
    jar.add_original(request.cookie(LOGIN_CSRF_COOKIE)?);
    jar.signed(key).get(LOGIN_CSRF_COOKIE).map(|cookie| cookie.value().to_owned())
}

fn login_csrf_cookie(token: &str, key: &Key, secure: bool) -> Cookie<'static> {
    let mut jar = CookieJar::new();
    let cookie = Cookie::build(LOGIN_CSRF_COOKIE, token.to_owned())
        .path("/admin/login")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .finish();
    jar.signed_mut(key).add(cookie);
    jar.get(LOGIN_CSRF_COOKIE).cloned().expect("the cookie just added")
}

/// The sign-in form, with the visitor's token (or a new one) in the form and in the cookie.
fn login_page(
    state: &AppState,
    request: &HttpRequest,
    status: StatusCode,
    username: &str,
    next: &str,
    message: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let key = &state.keys.cookies;
    let csrf_token = login_csrf_token(request, key).unwrap_or_else(session::new_token);
    let mut response = render_with_status(status, &LoginPage { csrf_token: &csrf_token, username, next, message })?;
    response
        .add_cookie(&login_csrf_cookie(&csrf_token, key, state.config.cookie_secure))
        .map_err(AppError::internal)?;
    Ok(response)
}

pub async fn login_form(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(query.next.as_deref());
    // Reading a session that the request has no cookie for costs nothing; only a cookie's is looked up.
    if session::signed_in(&request.get_session()).is_some() {
        return Ok(see_other(next));
    }
    login_page(&state, &request, StatusCode::OK, "", next, None)
}

pub enum Attempt {
    /// Refused unchecked: too many recent failures for the name or the address.
    Limited { retry_after_seconds: i64 },
    /// Checked: the user when the password was right, `None` when wrong (or no such user).
    Check { user: Option<store::AdminUser> },
}

/// Decides whether this attempt may have its password checked, and if so counts it as a
/// failure at once, in one transaction under the name's and the address's locks: however many
/// attempts arrive together, at most the limit of them are ever evaluated.
fn claim_attempt(conn: &mut PgConnection, name: &str, ip: &str) -> Result<Attempt, AppError> {
    conn.transaction(|conn| {
        store::lock_sign_in_attempts(conn, name, ip)?;
        let now = Utc::now();
        let window = chrono::Duration::minutes(FAILURE_WINDOW_MINUTES);
        let (by_user, by_ip) = store::recent_failures(conn, name, ip, now - window)?;
        let limited_by = if by_user.count >= MAX_FAILURES_PER_USER {
            Some(by_user)
        } else if by_ip.count >= MAX_FAILURES_PER_CLIENT {
            Some(by_ip)
        } else {
            None
        };
        if let Some(failures) = limited_by {
            let retry_at = failures.oldest.unwrap_or(now) + window;
            return Ok(Attempt::Limited { retry_after_seconds: (retry_at - now).num_seconds().max(1) });
        }
        store::record_failure(conn, name, ip)?;
        Ok(Attempt::Check { user: store::find_user(conn, name)? })
    })
}

pub async fn login(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let signed = login_csrf_token(&request, &state.keys.cookies);
    if !signed.is_some_and(|token| constant_time_eq(token.as_bytes(), form.csrf_token.as_bytes())) {
        return Err(PageError::from(AppError::forbidden(session::EXPIRED_FORM)));
    }
    let session = request.get_session();
    let username = form.username.trim().to_lowercase();
    let client_ip = crate::http::client::client_address(&request, &state.config.trusted_proxies);
    let next = safe_next(Some(&form.next)).to_owned();

    // No user has a name outside the rule `admin_users` checks; such a name reaches no query.
    if store::USERNAME.check(&username).is_err() {
        log::warn!("failed admin sign-in with a malformed user name");
        return login_page(&state, &request, StatusCode::UNAUTHORIZED, "", &next, Some(WRONG));
    }
    let attempt = check_password(&state, &username, &client_ip, form.password).await?;
    match attempt {
        Attempt::Limited { retry_after_seconds } => {
            let minutes = (retry_after_seconds + 59) / 60;
            let message = format!(
                "Too many failed sign-ins. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            );
            log::warn!("admin sign-in refused while limited, for user name {username:?}");
            let mut response =
                login_page(&state, &request, StatusCode::TOO_MANY_REQUESTS, &username, &next, Some(&message))?;
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(retry_after_seconds),
            );
            Ok(response)
        }
        Attempt::Check { user: Some(user) } => {
            session::sign_in(&session, user.id, &user.username, &client_ip, user_agent(&request))?;
            log::info!("admin {} signed in", user.username);
            let mut response = see_other(&next);
            // The session carries a CSRF token of its own from now on.
            let mut spent = login_csrf_cookie("", &state.keys.cookies, state.config.cookie_secure);
            spent.make_removal();
            response.add_cookie(&spent).map_err(AppError::internal)?;
            Ok(response)
        }
        Attempt::Check { user: None } => {
            log::warn!("failed admin sign-in for user name {username:?}");
            login_page(&state, &request, StatusCode::UNAUTHORIZED, &username, &next, Some(WRONG))
        }
    }
}

/// Checks a password of `username`, sent from `client_ip`, within the failure limits.
pub async fn check_password(
    state: &AppState,
    username: &str,
    client_ip: &str,
    password: String,
) -> Result<Attempt, AppError> {
    let (name, ip) = (username.to_owned(), client_ip.to_owned());
    let attempt =
        state.db.run(Module::Admin.op("claim_sign_in_attempt"), move |conn| claim_attempt(conn, &name, &ip)).await?;
    let Attempt::Check { user } = attempt else {
        return Ok(attempt);
    };
    // Hashing is deliberately slow: keep it off the async executor.
    let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
    let verified = web::block(move || verify_password(&password, stored_hash.as_deref().unwrap_or(decoy_hash())))
        .await
        .map_err(AppError::from)?;
    match user {
        Some(user) if verified => {
            let name = username.to_owned();
            state
                .db
                .run(Module::Admin.op("record_sign_in"), move |conn| {
                    let prune_before = Utc::now() - chrono::Duration::days(1);
                    store::clear_failures(conn, &name, prune_before)
                })
                .await?;
            Ok(Attempt::Check { user: Some(user) })
        }
        // The failure was recorded when the attempt was claimed.
        _ => Ok(Attempt::Check { user: None }),
    }
}

fn user_agent(request: &HttpRequest) -> &str {
    request.headers().get(actix_web::http::header::USER_AGENT).and_then(|value| value.to_str().ok()).unwrap_or("")
}

pub async fn logout(request: HttpRequest, CsrfForm(_): CsrfForm<ButtonForm>) -> HttpResponse {
    let session = request.get_session();
    if let Some(user) = session::signed_in(&session) {
        log::info!("admin {} signed out", user.username);
    }
    session.purge();
    see_other("/admin/login")
}

/// Middleware for every admin page but sign-in and sign-out: signed-in admins pass, everyone else is
/// sent to the login page, which brings them back afterwards.
pub async fn require_signed_in(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let open_to_everyone = matches!(request.path(), "/admin/login" | "/admin/logout");
    if open_to_everyone || session::signed_in(&request.get_session()).is_some() {
        return next.call(request).await.map(ServiceResponse::map_into_left_body);
    }
    let target = request.uri().path_and_query().map_or("/admin", |path| path.as_str()).to_owned();
    let query = serde_urlencoded::to_string([("next", target)]).unwrap_or_default();
    let response = see_other(&format!("/admin/login?{query}"));
    Ok(request.into_response(response).map_into_right_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("anything", "not a hash"));
    }

    #[test]
    fn only_local_admin_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/admin/orders?status=paid")), "/admin/orders?status=paid");
        assert_eq!(safe_next(Some("https://evil.example/admin")), "/admin");
        assert_eq!(safe_next(Some("//evil.example")), "/admin");
        assert_eq!(safe_next(Some("/admin//evil.example")), "/admin");
        assert_eq!(safe_next(None), "/admin");
        assert_eq!(safe_next(Some("/admin\r\nSet-Cookie: x=1")), "/admin");
    }
}
