//! The account page: change the password, see and end one's sessions.

use actix_session::SessionExt;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::auth::{self, Attempt};
use super::page::{FormErrors, Layout, PageError, Section, render_with_status, see_other};
use super::session::{Admin, ButtonForm, CsrfForm, CsrfProtected, SIGNED_IN_FROM, USER_AGENT};
use super::store;
use crate::error::AppError;
use crate::http::state::AppState;
use crate::kernel::Module;

pub const MIN_PASSWORD_CHARS: usize = 12;
/// Argon2 reads any length, but hashing megabytes on request is an easy way to burn CPU.
const MAX_PASSWORD_CHARS: usize = 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/account").route(web::get().to(show)))
        .service(web::resource("/account/password").route(web::post().to(change_password)))
        .service(web::resource("/account/sessions/{id}/revoke").route(web::post().to(revoke)));
}

struct SessionRow {
    id: Uuid,
    created_at: String,
    last_seen_at: String,
    from: String,
    user_agent: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "admin/templates/account.html")]
struct AccountPage {
    layout: Layout,
    errors: FormErrors,
    sessions: Vec<SessionRow>,
    min_length: usize,
    idle_minutes: u64,
    max_hours: u64,
}

async fn page(
    state: &AppState,
    admin: &Admin,
    status: StatusCode,
    errors: FormErrors,
) -> Result<HttpResponse, PageError> {
    let (user, lifetime) = (admin.user.user_id, state.config.session);
    let sessions =
        state.db.run(Module::Admin.op("list_sessions"), move |conn| store::sessions_of(conn, user, lifetime)).await?;
    let text = |state: &serde_json::Value, key: &str| {
        state[key].as_str().and_then(|json| serde_json::from_str::<String>(json).ok()).unwrap_or_default()
    };
    let sessions = sessions
        .into_iter()
        .map(|session| SessionRow {
            id: session.id,
            created_at: session.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            last_seen_at: session.last_seen_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            from: text(&session.state, SIGNED_IN_FROM),
            user_agent: text(&session.state, USER_AGENT),
            current: session.id == admin.user.session_id,
        })
        .collect();
    render_with_status(
        status,
        &AccountPage {
            layout: admin.layout(Section::Account),
            errors,
            sessions,
            min_length: MIN_PASSWORD_CHARS,
            idle_minutes: state.config.session.idle.as_secs() / 60,
            max_hours: state.config.session.absolute.as_secs() / 3600,
        },
    )
}

async fn show(state: web::Data<AppState>, admin: Admin) -> Result<HttpResponse, PageError> {
    page(&state, &admin, StatusCode::OK, FormErrors::default()).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf_token: String,
    current_password: String,
    new_password: String,
    confirm_password: String,
}

impl CsrfProtected for PasswordForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

async fn change_password(
    state: web::Data<AppState>,
    admin: Admin,
    request: HttpRequest,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<HttpResponse, PageError> {
    let mut errors = FormErrors::default();
    let length = form.new_password.chars().count();
    if length < MIN_PASSWORD_CHARS {
        errors.push("new_password", format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    } else if length > MAX_PASSWORD_CHARS {
        errors.push("new_password", format!("must be at most {MAX_PASSWORD_CHARS} characters"));
    } else if form.new_password.chars().any(char::is_control) {
        errors.push("new_password", "must not contain control characters");
    } else if form.new_password == form.current_password {
        errors.push("new_password", "must differ from the current password");
    }
    if form.confirm_password != form.new_password {
        errors.push("confirm_password", "does not match the new password");
    }

    // The current password is checked like a sign-in, under the same limit: a stolen session
    // must not become a way to guess the password.
    let client_ip = crate::http::client::client_address(&request, &state.config.trusted_proxies);
    match auth::check_password(&state, &admin.user.username, &client_ip, form.current_password).await? {
        Attempt::Limited { .. } => {
            errors.push("current_password", "too many wrong passwords; try again later");
        }
        Attempt::Check { user: Some(_) } => {}
        Attempt::Check { user: None } => errors.push("current_password", "is not your current password"),
    }
    if !errors.is_empty() {
        return page(&state, &admin, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
    }

    let hash = web::block(move || auth::hash_password(&form.new_password)).await.map_err(AppError::from)??;
    let (user, keep) = (admin.user.user_id, admin.user.session_id);
    let ended = state
        .db
        .run(Module::Admin.op("change_password"), move |conn| store::change_password(conn, user, &hash, Some(keep)))
        .await?;
    log::info!("admin {} changed their password; {ended} other session(s) ended", admin.user.username);
    admin
        .flash(format!("Password changed. {ended} other session{} ended.", if ended == 1 { " was" } else { "s were" }));
    Ok(see_other("/admin/account"))
}

async fn revoke(
    state: web::Data<AppState>,
    admin: Admin,
    request: HttpRequest,
    id: web::Path<Uuid>,
    CsrfForm(_): CsrfForm<ButtonForm>,
) -> Result<HttpResponse, PageError> {
    let (user, session_id) = (admin.user.user_id, id.into_inner());
    let ended = state
        .db
        .run(Module::Admin.op("revoke_session"), move |conn| store::revoke_session(conn, user, session_id))
        .await?;
    if session_id == admin.user.session_id {
        request.get_session().purge();
        return Ok(see_other("/admin/login"));
    }
    admin.flash(if ended { "The session was ended." } else { "That session had already ended." });
    Ok(see_other("/admin/account"))
}
