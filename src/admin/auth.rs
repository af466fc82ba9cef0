//! Signing in and out of the admin pages: argon2 password hashes, a rate limit on failures that
//! holds across processes, and a middleware that sends everyone else to the login page.

use std::sync::OnceLock;

use actix_session::{Session, SessionExt};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use askama::Template;
use chrono::Utc;
use diesel::PgConnection;
use rand::{Rng, RngCore};
use serde::Deserialize;

use super::page::{PageError, render_with_status};
use super::session::{self, ButtonForm, CsrfForm, CsrfProtected};
use super::store;
use crate::admin::page::see_other;
use crate::config::Config;
use crate::error::AppError;
use crate::http::state::AppState;
use crate::kernel::Module;

/// At most this many failed sign-ins per user name within [`FAILURE_WINDOW_MINUTES`]...
const MAX_FAILURES_PER_USER: i64 = 5;
/// ...and this many from one client address, whatever names it tries.
const MAX_FAILURES_PER_CLIENT: i64 = 20;
const FAILURE_WINDOW_MINUTES: i64 = 15;

pub const FIRST_ADMIN: &str = "admin";

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

/// First start: creates the `admin` user when there is none, and returns the key that signs
/// session cookies (shared by every agora process through the database).
pub fn bootstrap(conn: &mut PgConnection, config: &Config) -> Result<Vec<u8>, AppError> {
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
    Ok(store::secret(conn, "session_key", || {
        let mut key = vec![0u8; 64];
        rand::rng().fill_bytes(&mut key);
        key
    })?)
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

impl CsrfProtected for LoginForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// Only local admin paths are followed after sign-in, never another site.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(path) if path.starts_with("/admin") && !path.contains("//") && !path.contains('\\') => path,
        _ => "/admin",
    }
}

pub async fn login_form(request: HttpRequest, query: web::Query<LoginQuery>) -> Result<HttpResponse, PageError> {
    let session = request.get_session();
    let next = safe_next(query.next.as_deref());
    if session::signed_in(&session).is_some() {
        return Ok(see_other(next));
    }
    let csrf_token = session::csrf_token(&session);
    render_with_status(StatusCode::OK, &LoginPage { csrf_token: &csrf_token, username: "", next, message: None })
}

enum Attempt {
    Limited { retry_in_minutes: i64 },
    Check { user: Option<store::AdminUser> },
}

pub async fn login(
    state: web::Data<AppState>,
    request: HttpRequest,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<HttpResponse, PageError> {
    let session = request.get_session();
    let username = form.username.trim().to_lowercase();
    let client_ip = request.peer_addr().map(|address| address.ip().to_string()).unwrap_or_default();
    let next = safe_next(Some(&form.next)).to_owned();

    let (name, ip) = (username.clone(), client_ip.clone());
    let attempt = state
        .db
        .run(Module::Admin.op("check_sign_in"), move |conn| -> Result<Attempt, AppError> {
            let window_start = Utc::now() - chrono::Duration::minutes(FAILURE_WINDOW_MINUTES);
            let (by_user, by_ip, oldest) = store::recent_failures(conn, &name, &ip, window_start)?;
            if by_user >= MAX_FAILURES_PER_USER || by_ip >= MAX_FAILURES_PER_CLIENT {
                let retry_at = oldest.unwrap_or_else(Utc::now) + chrono::Duration::minutes(FAILURE_WINDOW_MINUTES);
                let retry_in_minutes = ((retry_at - Utc::now()).num_seconds() + 59).div_euclid(60).max(1);
                return Ok(Attempt::Limited { retry_in_minutes });
            }
            Ok(Attempt::Check { user: store::find_user(conn, &name)? })
        })
        .await?;

    let user = match attempt {
        Attempt::Limited { retry_in_minutes } => {
            let message = format!(
                "Too many failed sign-ins. Try again in {retry_in_minutes} minute{}.",
                if retry_in_minutes == 1 { "" } else { "s" }
            );
            return login_failed(&session, StatusCode::TOO_MANY_REQUESTS, &username, &next, &message);
        }
        Attempt::Check { user } => user,
    };

    // Hashing is deliberately slow: keep it off the async executor.
    let password = form.password;
    let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
    let verified = web::block(move || verify_password(&password, stored_hash.as_deref().unwrap_or(decoy_hash())))
        .await
        .map_err(AppError::from)?;

    match user {
        Some(user) if verified => {
            let name = username.clone();
            state
                .db
                .run(Module::Admin.op("record_sign_in"), move |conn| {
                    let prune_before = Utc::now() - chrono::Duration::days(1);
                    store::clear_failures(conn, &name, prune_before)
                })
                .await?;
            session::sign_in(&session, user.id, &user.username)?;
            log::info!("admin {} signed in", user.username);
            Ok(see_other(&next))
        }
        _ => {
            let (name, ip) = (username.clone(), client_ip);
            state
                .db
                .run(Module::Admin.op("record_failed_sign_in"), move |conn| store::record_failure(conn, &name, &ip))
                .await?;
            log::warn!("failed admin sign-in for user name {username:?}");
            login_failed(&session, StatusCode::UNAUTHORIZED, &username, &next, "Unknown user name or wrong password.")
        }
    }
}

fn login_failed(
    session: &Session,
    status: StatusCode,
    username: &str,
    next: &str,
    message: &str,
) -> Result<HttpResponse, PageError> {
    let csrf_token = session::csrf_token(session);
    render_with_status(status, &LoginPage { csrf_token: &csrf_token, username, next, message: Some(message) })
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
    }
}
