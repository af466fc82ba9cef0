//! Admin pages for e-mails: the list (filters, sortable columns, numbered pages, totals per
//! status), each e-mail as its customer sees it (HTML in a sandboxed frame, the text version
//! beside it), and sending a failed e-mail again.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::{
    DeadReason, EmailKind, Notification, NotificationFilter, NotificationSort, NotificationStatus, Resend, SeenEmail,
};
use crate::admin::listing::{COUNT_CAP, Column, ListQuery, Numbered, Sort, href};
use crate::admin::page::{Confirmation, Layout, PageError, Section, render, see_other};
use crate::admin::session::{Admin, CsrfForm, CsrfProtected};
use crate::config::{Config, NotificationsConsumer};
use crate::error::AppError;
use crate::http::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/notifications").route(web::get().to(list)))
        .service(web::resource("/notifications/{id}").route(web::get().to(show)))
        .service(web::resource("/notifications/{id}/html").route(web::get().to(html_body)))
        .service(
            web::resource("/notifications/{id}/resend")
                .route(web::get().to(confirm_resend))
                .route(web::post().to(resend)),
        );
}

const BASE: &str = "/admin/notifications";

/// Newest first by default; most attempts first when first chosen (the troubled ones).
const COLUMNS: [Column; 2] = [Column::desc("created"), Column::desc("attempts")];

#[derive(Debug, Default, Deserialize)]
struct FilterQuery {
    status: Option<String>,
    kind: Option<String>,
    to: Option<String>,
}

/// The filters as typed, echoed back into the form and into every link of the page.
#[derive(Debug, Default)]
struct FilterForm {
    status: String,
    kind: String,
    to: String,
}

impl FilterForm {
    fn pairs(&self) -> [(&'static str, &str); 3] {
        [("status", self.status.as_str()), ("kind", self.kind.as_str()), ("to", self.to.as_str())]
    }

    fn is_empty(&self) -> bool {
        self.pairs().iter().all(|(_, value)| value.is_empty())
    }
}

/// How many e-mails of the filter are in one status.
struct StatusTotal {
    status: NotificationStatus,
    counted: i64,
}

#[derive(Template)]
#[template(path = "notifications/templates/list.html")]
struct ListPage {
    layout: Layout,
    statuses: [NotificationStatus; 4],
    kinds: [EmailKind; 5],
    form: FilterForm,
    sort: Sort,
    page: Numbered<Notification>,
    totals: Vec<StatusTotal>,
    store_only: bool,
    /// Where events come from when notifications consumes from the broker.
    broker: Option<BrokerFigures>,
}

/// The broker queue notifications consumes, and what this process sent to its dead letters.
struct BrokerFigures {
    queue: String,
    dead_queue: String,
    dead_letters: Vec<(DeadReason, i64)>,
}

impl BrokerFigures {
    fn new(config: &Config) -> Option<BrokerFigures> {
        let broker =
            config.broker.as_ref().filter(|_| config.notifications_consumer == NotificationsConsumer::Broker)?;
        Some(BrokerFigures {
            queue: broker.notifications_queue.clone(),
            dead_queue: super::dead_letter_name(&broker.notifications_queue),
            dead_letters: super::dead_letters()
                .into_iter()
                .map(|(reason, count)| (reason, i64::try_from(count).unwrap_or(i64::MAX)))
                .collect(),
        })
    }

    fn total(&self) -> i64 {
        self.dead_letters.iter().map(|(_, count)| count).sum()
    }
}

impl ListPage {
    fn sort_href(&self, key: &str) -> String {
        href(BASE, &self.form.pairs(), self.sort.toggled(key), 1)
    }

    fn page_href(&self, page: i64) -> String {
        href(BASE, &self.form.pairs(), self.sort.kept(), page)
    }

    fn numbered(&self) -> &Numbered<Notification> {
        &self.page
    }

    /// The list narrowed to one status, the other filters kept.
    fn status_href(&self, status: &NotificationStatus) -> String {
        let mut pairs = self.form.pairs();
        pairs[0].1 = status.as_str();
        href(BASE, &pairs, self.sort.kept(), 1)
    }

    /// "3", or "more than 1,000" past the counting cap.
    fn total_text(&self, total: &StatusTotal) -> String {
        if total.counted > COUNT_CAP {
            format!("more than {}", crate::money::grouped(COUNT_CAP))
        } else {
            crate::money::grouped(total.counted)
        }
    }
}

async fn list(
    state: web::Data<AppState>,
    admin: Admin,
    filters: web::Query<FilterQuery>,
    list: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let sort = list.sort(&COLUMNS)?;
    let requested = list.page()?;
    let (form, filter) = read_filters(filters.into_inner())?;
    let order = if sort.key == "attempts" { NotificationSort::Attempts } else { NotificationSort::CreatedAt };
    let descending = sort.descending;
    let found = state.mailroom.page(filter, order, descending, requested, admin.read_after()).await?;
    let page = Numbered::new(found.items, found.page, found.counted);
    let totals = found.totals;
    render(&ListPage {
        layout: admin.layout(Section::Notifications),
        statuses: NotificationStatus::ALL,
        kinds: EmailKind::ALL,
        form,
        sort,
        page,
        totals: totals.into_iter().map(|(status, counted)| StatusTotal { status, counted }).collect(),
        // With notifications in its service, whether it sends is the service's setting, not ours.
        store_only: !state.mailroom.is_service() && state.config.smtp_url.is_none(),
        broker: BrokerFigures::new(&state.config),
    })
}

/// The filters as typed and the filter they make. A status or kind no form offers (made up in
/// the address bar) is a bad request rather than silently ignored.
fn read_filters(query: FilterQuery) -> Result<(FilterForm, NotificationFilter), AppError> {
    let text = |field: &str, value: Option<String>| -> Result<String, AppError> {
        let value = value.unwrap_or_default();
        crate::input::SEARCH.check(&value).map(str::to_owned).map_err(|message| AppError::bad_query(field, message))
    };
    let form = FilterForm {
        status: text("status", query.status)?,
        kind: text("kind", query.kind)?,
        to: text("to", query.to)?,
    };
    let status = match form.status.as_str() {
        "" => None,
        word => Some(
            NotificationStatus::parse(word)
                .ok_or_else(|| AppError::bad_query("status", one_of(NotificationStatus::ALL.map(|s| s.as_str()))))?,
        ),
    };
    let kind = match form.kind.as_str() {
        "" => None,
        word => Some(
            EmailKind::parse(word)
                .ok_or_else(|| AppError::bad_query("kind", one_of(EmailKind::ALL.map(|k| k.as_str()))))?,
        ),
    };
    let recipient = (!form.to.is_empty()).then(|| form.to.clone());
    Ok((form, NotificationFilter { status, kind, recipient }))
}

fn one_of<const N: usize>(words: [&str; N]) -> String {
    format!("must be one of {}", words.join(", "))
}

#[derive(Template)]
#[template(path = "notifications/templates/show.html")]
struct ShowPage {
    layout: Layout,
    notification: Notification,
}

async fn find(state: &AppState, id: Uuid) -> Result<Notification, PageError> {
    let notification = state.mailroom.email(id).await?;
    Ok(notification.ok_or_else(|| AppError::not_found(format!("No e-mail with id {id}.")))?)
}

async fn show(state: web::Data<AppState>, admin: Admin, id: web::Path<Uuid>) -> Result<HttpResponse, PageError> {
    let notification = find(&state, id.into_inner()).await?;
    render(&ShowPage { layout: admin.layout(Section::Notifications), notification })
}

/// Why an e-mail that has not failed is not sent again.
fn not_failed(notification: &Notification) -> String {
    let to = &notification.recipient;
    let why = match notification.status {
        NotificationStatus::Sent => match notification.sent_at {
            Some(sent) => format!("it was sent on {} (UTC)", sent.format("%Y-%m-%d %H:%M")),
            None => "it was sent".to_owned(),
        },
        NotificationStatus::Stored => "it is stored here, not sent: no SMTP server is configured".to_owned(),
        NotificationStatus::Pending => {
            "it has not failed: Agora is still trying to send it, and will until its last attempt".to_owned()
        }
        NotificationStatus::Failed => "it failed".to_owned(),
    };
    format!("The e-mail to {to} was not sent again: {why}. Nothing was done.")
}

/// The confirmation step: sending an e-mail cannot be taken back, so the operator sees what
/// goes to whom before it does.
async fn confirm_resend(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, PageError> {
    let notification = find(&state, id.into_inner()).await?;
    let back = format!("{BASE}/{}", notification.id);
    if notification.status != NotificationStatus::Failed {
        admin.warn(not_failed(&notification));
        return Ok(see_other(&back));
    }
    let mut consequences = vec![format!(
        "The e-mail written on {} (UTC) is sent again as it was, with the same Message-ID, so the customer's mail \
         program can tell it is the same message.",
        notification.created_at.format("%Y-%m-%d %H:%M")
    )];
    let attempts = attempts_text(notification.attempts);
    consequences.push(match &notification.last_error {
        Some(error) => format!("It was given up on after {attempts}; the last error was: {error}"),
        None => format!("It was given up on after {attempts}."),
    });
    consequences.push(
        "If the mail server refuses it again, Agora retries it as before and shows it as failed after the last \
         attempt."
            .to_owned(),
    );
    render(&Confirmation {
        layout: admin.layout(Section::Notifications),
        question: format!("Resend “{}” to {}?", notification.subject, notification.recipient),
        consequences,
        action: format!("{back}/resend"),
        // What is shown is what is posted: a second post of this page, or one after a resend
        // that failed again, finds more attempts than it saw and sends nothing.
        fields: vec![
            ("status", notification.status.as_str().to_owned()),
            ("attempts", notification.attempts.to_string()),
        ],
        button: "Resend the e-mail".to_owned(),
        danger: false,
        back,
    })
}

/// A resend: the CSRF token and the e-mail's status and attempts as the confirmation showed them.
#[derive(Deserialize)]
struct ResendForm {
    csrf_token: String,
    status: String,
    attempts: String,
}

impl CsrfProtected for ResendForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

impl ResendForm {
    fn seen(&self) -> Result<SeenEmail, AppError> {
        let status = NotificationStatus::parse(self.status.trim())
            .ok_or_else(|| AppError::invalid("status", format!("{:?} is not an e-mail status", self.status)))?;
        let attempts = self
            .attempts
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|attempts| *attempts >= 0)
            .ok_or_else(|| AppError::invalid("attempts", "must be a count as the confirmation page gives it"))?;
        Ok(SeenEmail { status, attempts })
    }
}

fn attempts_text(count: i32) -> String {
    match count {
        1 => "1 attempt".to_owned(),
        count => format!("{} attempts", crate::money::grouped(count)),
    }
}

async fn resend(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<Uuid>,
    CsrfForm(form): CsrfForm<ResendForm>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let seen = form.seen()?;
    let outcome = state.mailroom.resend(id, seen).await?;
    let outcome = outcome.ok_or_else(|| AppError::not_found(format!("No e-mail with id {id}.")))?;
    match &outcome {
        Resend::Queued(notification) => admin.flash(format!("E-mail to {} queued again.", notification.recipient)),
        Resend::NotFailed(notification) => admin.warn(not_failed(notification)),
        Resend::AlreadyQueued(notification) => admin.warn(format!(
            "The e-mail to {} was not queued again: it is queued already (retried from the Events page) and is \
             about to be sent. Nothing was done.",
            notification.recipient
        )),
        Resend::Changed { notification, seen } => admin.warn(format!(
            "The e-mail to {} was not sent again: it changed since you looked: it failed again after {}, where you \
             saw {}. Nothing was done; check it below and decide again.",
            notification.recipient,
            attempts_text(notification.attempts),
            attempts_text(seen.attempts),
        )),
    }
    Ok(see_other(&format!("{BASE}/{}", outcome.notification().id)))
}

/// What the e-mail's own HTML may do inside the preview frame: its inline styles and embedded
/// images, nothing else (no script, no requests, no navigation), and only inside our own pages.
const PREVIEW_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; frame-ancestors 'self'";

/// The e-mail's HTML, alone, for the sandboxed frame on the e-mail's page. A document of its
/// own because the pages' policy allows no inline style, which e-mail HTML is made of.
async fn html_body(state: web::Data<AppState>, _admin: Admin, id: web::Path<Uuid>) -> Result<HttpResponse, PageError> {
    let notification = find(&state, id.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", PREVIEW_POLICY))
        .insert_header(("X-Frame-Options", "SAMEORIGIN"))
        .insert_header(("Cache-Control", "no-store"))
        .body(notification.html_body))
}
