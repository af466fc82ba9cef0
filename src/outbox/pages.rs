//! The admin events page: work of the outbox that is waiting, failing or dead (with its error),
//! filtered by status, handler and event type; the latest events, page by page; and retrying
//! dead work, one delivery or all of it, each behind a confirmation step.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use chrono::{DateTime, Utc};

use super::listing::{DeadSeen, Figures, LatestEvent, OpenStatus, RetryAll, Work, WorkFilter};
use crate::admin::listing::{COUNT_CAP, ListQuery, Numbered, PER_PAGE};
use crate::admin::page::{Confirmation, Layout, PageError, Section, render, see_other};
use crate::admin::session::{Admin, CsrfForm, CsrfProtected};
use crate::error::AppError;
use crate::events::{self, EventType};
use crate::http::state::AppState;
use crate::input::Pattern;
use crate::kernel::Module;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The bulk retry before the per-delivery routes: the paths differ in length and cannot
    // collide today, but a literal segment should win over a parameter should they ever meet.
    cfg.service(web::resource("/events").route(web::get().to(show)))
        .service(
            web::resource("/events/retry-dead")
                .route(web::get().to(confirm_retry_all))
                .route(web::post().to(retry_all)),
        )
        .service(
            web::resource("/events/{event_id}/{handler}/retry")
                .route(web::get().to(confirm_retry))
                .route(web::post().to(retry)),
        );
}

const BASE: &str = "/admin/events";

/// Open work shown at most: the filters narrow it down beyond that.
const OPEN_LIMIT: i64 = 200;

/// Handler names as subscriptions spell them (`notifications.order_emails`).
static HANDLER: Pattern = Pattern::new(r"^[a-z][a-z0-9_.]*$", 100, "must be a handler name");
/// As the `events.event_type` CHECK admits them; a type this version no longer publishes can
/// still be looked for.
static EVENT_TYPE: Pattern = Pattern::new(r"^[A-Z][A-Za-z]*$", 100, "must be an event type such as OrderPlaced");

/// `?status=&handler=&type=` of the events page.
#[derive(Debug, Default, Deserialize)]
struct FilterQuery {
    status: Option<String>,
    handler: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
}

fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|value| !value.is_empty())
}

fn handler_of(value: Option<&str>) -> Result<Option<String>, AppError> {
    given(value)
        .map(|handler| {
            HANDLER.check(handler).map(str::to_owned).map_err(|message| AppError::bad_query("handler", message))
        })
        .transpose()
}

impl FilterQuery {
    fn filter(&self) -> Result<WorkFilter, AppError> {
        let status = given(self.status.as_deref())
            .map(|word| {
                OpenStatus::parse(word).ok_or_else(|| AppError::bad_query("status", "must be waiting, failing or dead"))
            })
            .transpose()?;
        let event_type = given(self.event_type.as_deref())
            .map(|name| {
                EVENT_TYPE.check(name).map(str::to_owned).map_err(|message| AppError::bad_query("type", message))
            })
            .transpose()?;
        Ok(WorkFilter { status, handler: handler_of(self.handler.as_deref())?, event_type })
    }
}

/// An event type in words, "OrderPlaced" -> "Order placed".
fn type_words(event_type: &str) -> String {
    let mut words = String::with_capacity(event_type.len() + 4);
    for (index, c) in event_type.chars().enumerate() {
        if index > 0 && c.is_ascii_uppercase() {
            words.push(' ');
            words.push(c.to_ascii_lowercase());
        } else {
            words.push(c);
        }
    }
    words
}

fn deliveries(count: i64) -> String {
    match count {
        1 => "1 dead delivery".to_owned(),
        count => format!("{} dead deliveries", crate::money::grouped(count)),
    }
}

#[derive(Template)]
#[template(path = "outbox/templates/events.html")]
struct EventsPage {
    layout: Layout,
    filter: WorkFilter,
    figures: Figures,
    open: Vec<Work>,
    latest: Numbered<LatestEvent>,
    handlers: Vec<String>,
    event_types: Vec<String>,
}

impl EventsPage {
    fn status(&self) -> &str {
        self.filter.status.map_or("", OpenStatus::as_str)
    }

    fn handler(&self) -> &str {
        self.filter.handler.as_deref().unwrap_or("")
    }

    fn event_type(&self) -> &str {
        self.filter.event_type.as_deref().unwrap_or("")
    }

    fn is_filtered(&self) -> bool {
        self.filter.status.is_some() || self.filter.handler.is_some() || self.filter.event_type.is_some()
    }

    fn href(&self, status: &str, page: i64) -> String {
        crate::admin::listing::href(
            BASE,
            &[("status", status), ("handler", self.handler()), ("type", self.event_type())],
            None,
            page,
        )
    }

    /// A figure's link: open work of that status, the other filters kept.
    fn figure_href(&self, status: &OpenStatus) -> String {
        self.href(status.as_str(), 1)
    }

    fn figure(&self, status: &OpenStatus) -> String {
        let count = match status {
            OpenStatus::Waiting => self.figures.waiting,
            OpenStatus::Failing => self.figures.failing,
            OpenStatus::Dead => self.figures.dead,
        };
        crate::money::grouped(count)
    }

    fn page_href(&self, page: i64) -> String {
        format!("{}#latest", self.href(self.status(), page))
    }

    fn open_is_cut(&self) -> bool {
        self.open.len() as i64 >= OPEN_LIMIT
    }

    fn open_limit(&self) -> String {
        crate::money::grouped(OPEN_LIMIT)
    }

    fn retry_all_href(&self) -> String {
        crate::admin::listing::href(&format!("{BASE}/retry-dead"), &[("handler", self.handler())], None, 1)
    }

    fn retry_all_text(&self) -> String {
        format!("Retry all {}…", deliveries(self.figures.dead))
    }

    fn words(&self, event_type: &str) -> String {
        type_words(event_type)
    }

    fn selected(&self, current: &str, option: &str) -> bool {
        current == option
    }
}

/// The handlers that subscribe to something, and `current` if it no longer does: dead work
/// of a retired handler can still be found.
fn handler_options(current: Option<&str>) -> Vec<String> {
    let mut handlers: Vec<String> = events::HANDLERS.iter().map(|handler| (*handler).to_owned()).collect();
    handlers.extend(current.filter(|current| !handlers.iter().any(|handler| handler == current)).map(str::to_owned));
    handlers.sort();
    handlers.dedup();
    handlers
}

fn event_type_options(current: Option<&str>) -> Vec<String> {
    let mut types: Vec<String> = EventType::ALL.iter().map(|event_type| event_type.as_str().to_owned()).collect();
    types.extend(current.filter(|current| EventType::parse(current).is_none()).map(str::to_owned));
    types
}

async fn show(
    state: web::Data<AppState>,
    admin: Admin,
    query: web::Query<FilterQuery>,
    list: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let filter = query.filter()?;
    let page = list.page()?;
    let work_filter = filter.clone();
    let (figures, open, (events, counted)) = state
        .db
        .run(Module::Outbox.op("events_page"), move |conn| -> Result<_, AppError> {
            let figures = super::listing::figures(conn, work_filter.handler.as_deref())?;
            let open = super::listing::open_work(conn, &work_filter, OPEN_LIMIT)?;
            let latest = super::listing::latest_events(
                conn,
                work_filter.event_type.as_deref(),
                PER_PAGE,
                Numbered::<LatestEvent>::offset(page),
                COUNT_CAP + 1,
            )?;
            Ok((figures, open, latest))
        })
        .await?;
    render(&EventsPage {
        layout: admin.layout(Section::Events),
        handlers: handler_options(filter.handler.as_deref()),
        event_types: event_type_options(filter.event_type.as_deref()),
        filter,
        figures,
        open,
        latest: Numbered::new(events, page, counted),
    })
}

/// What retrying makes a handler do again, for the confirmation page.
fn consequence_of_running(handler: &str) -> String {
    if handler == events::ORDER_EMAILS {
        format!("{handler} runs again from its first attempt: an e-mail may be sent to the customer.")
    } else {
        format!("{handler} runs again from its first attempt.")
    }
}

/// The event and handler an address names; a handler segment no handler can have (a NUL byte,
/// say) is a bad request, under the same rule as the `handler` filter.
fn delivery_of(path: web::Path<(i64, String)>) -> Result<(i64, String), AppError> {
    let (event_id, handler) = path.into_inner();
    HANDLER
        .check(&handler)
        .map_err(|message| AppError::bad_request(format!("The handler in the address {message}.")))?;
    Ok((event_id, handler))
}

/// The confirmation step before retrying one dead delivery.
async fn confirm_retry(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<(i64, String)>,
) -> Result<HttpResponse, PageError> {
    let (event_id, handler) = delivery_of(path)?;
    let name = handler.clone();
    let work = state
        .db
        .run(Module::Outbox.op("retry_confirmation"), move |conn| super::listing::work(conn, event_id, &name))
        .await?
        .ok_or_else(|| AppError::not_found(format!("Event #{event_id} has no delivery to {handler}.")))?;
    if !work.is_dead() {
        admin.warn(format!("Event #{event_id} is not dead for {handler}; there is nothing to retry."));
        return Ok(see_other(BASE));
    }
    let mut consequences = vec![format!("It is about {}.", work.about.text()), consequence_of_running(&handler)];
    if let Some(error) = &work.last_error {
        let attempts = if work.attempts == 1 { "1 attempt".to_owned() } else { format!("{} attempts", work.attempts) };
        consequences.push(format!("It was given up on after {attempts}; the last error was: {error}"));
    }
    render(&Confirmation {
        layout: admin.layout(Section::Events),
        question: format!("Retry {} #{event_id} for {handler}?", work.event_type),
        consequences,
        action: format!("{BASE}/{event_id}/{handler}/retry"),
        // The death shown: a second post of this page finds it retried, or dead again later.
        fields: vec![("died", moment(work.updated_at))],
        button: "Retry".to_owned(),
        danger: false,
        back: BASE.to_owned(),
    })
}

/// A moment as a form carries it: microseconds since the epoch, PostgreSQL's own precision,
/// so that it compares equal to the stored value.
fn moment(at: DateTime<Utc>) -> String {
    at.timestamp_micros().to_string()
}

fn read_moment(field: &str, text: &str) -> Result<DateTime<Utc>, AppError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| AppError::invalid(field, "must be a moment as the confirmation page gives it"))
}

/// A retry of one delivery: the CSRF token and when the delivery died, as the confirmation showed.
#[derive(Deserialize)]
struct RetryForm {
    csrf_token: String,
    died: String,
}

impl CsrfProtected for RetryForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

async fn retry(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<(i64, String)>,
    CsrfForm(form): CsrfForm<RetryForm>,
) -> Result<HttpResponse, PageError> {
    let (event_id, handler) = delivery_of(path)?;
    let name = handler.clone();
    let died = read_moment("died", &form.died)?;
    let revived = state
        .db
        .run(Module::Outbox.op("retry_dead"), move |conn| {
            super::listing::retry_dead_as_seen(conn, event_id, &name, died)
        })
        .await?;
    if revived {
        admin.flash(format!("Event #{event_id} queued again for {handler}."));
    } else {
        // Someone else retried it, or it is not the death the operator saw: a stale page.
        admin.warn(format!(
            "Event #{event_id} was not retried for {handler}: it is not dead as you saw it (it was retried already, \
             and may have completed or died again since). Nothing was done; check it below and decide again."
        ));
    }
    Ok(see_other(BASE))
}

/// The events page a bulk retry returns to: the handler it was about, if any.
fn back_to(handler: Option<&str>) -> String {
    crate::admin::listing::href(BASE, &[("handler", handler.unwrap_or(""))], None, 1)
}

/// The confirmation step before retrying every dead delivery (of one handler, if filtered).
async fn confirm_retry_all(
    state: web::Data<AppState>,
    admin: Admin,
    query: web::Query<FilterQuery>,
) -> Result<HttpResponse, PageError> {
    let handler = handler_of(query.handler.as_deref())?;
    let of_handler = handler.clone();
    let dead = state
        .db
        .run(Module::Outbox.op("retry_all_confirmation"), move |conn| {
            super::listing::dead_by_handler(conn, of_handler.as_deref())
        })
        .await?;
    let back = back_to(handler.as_deref());
    let seen = DeadSeen::of(&dead);
    let Some(newest) = seen.newest else {
        admin.warn("No delivery is dead; there is nothing to retry.");
        return Ok(see_other(&back));
    };
    let mut consequences: Vec<String> =
        dead.iter().map(|of_handler| format!("{}: {}.", of_handler.handler, deliveries(of_handler.count))).collect();
    consequences.push("Each runs again from its first attempt, as if just published.".to_owned());
    if dead.iter().any(|of_handler| of_handler.handler == events::ORDER_EMAILS) {
        consequences.push("Customers may be sent the e-mails that failed.".to_owned());
    }
    // What is shown is what is posted: a delivery that dies after this page, or a second post of
    // it, finds the dead deliveries changed and retries nothing.
    let mut fields = vec![("dead", seen.count.to_string()), ("newest", moment(newest))];
    fields.extend(handler.map(|handler| ("handler", handler)));
    render(&Confirmation {
        layout: admin.layout(Section::Events),
        question: format!("Retry {}?", deliveries(seen.count)),
        consequences,
        action: format!("{BASE}/retry-dead"),
        fields,
        button: format!("Retry {}", deliveries(seen.count)),
        danger: false,
        back,
    })
}

/// A retry of every dead delivery: the CSRF token, the handler it is about (if any), and how
/// many were dead and when the last of them died, as the confirmation showed.
#[derive(Deserialize)]
struct RetryAllForm {
    csrf_token: String,
    handler: Option<String>,
    dead: String,
    #[serde(default)]
    newest: String,
}

impl CsrfProtected for RetryAllForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

impl RetryAllForm {
    fn seen(&self) -> Result<DeadSeen, AppError> {
        let count = self
            .dead
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|count| *count >= 0)
            .ok_or_else(|| AppError::invalid("dead", "must be a count as the confirmation page gives it"))?;
        let newest = match self.newest.trim() {
            "" => None,
            text => Some(read_moment("newest", text)?),
        };
        Ok(DeadSeen { count, newest })
    }
}

async fn retry_all(
    state: web::Data<AppState>,
    admin: Admin,
    CsrfForm(form): CsrfForm<RetryAllForm>,
) -> Result<HttpResponse, PageError> {
    let handler = handler_of(form.handler.as_deref())?;
    let seen = form.seen()?;
    let of_handler = handler.clone();
    let outcome = state
        .db
        .run(Module::Outbox.op("retry_all_dead"), move |conn| {
            super::listing::retry_all_dead(conn, of_handler.as_deref(), seen)
        })
        .await?;
    match outcome {
        RetryAll::Retried(0) => admin.warn("No delivery was dead; nothing was retried."),
        RetryAll::Retried(revived) => admin.flash(format!("{} queued again.", deliveries(revived as i64))),
        RetryAll::Changed { now } => admin.warn(format!(
            "Nothing was retried: the dead deliveries changed since you looked ({} when you confirmed, {} now: \
             retried by someone else, completed, or died since). Check them below and decide again.",
            crate::money::grouped(seen.count),
            crate::money::grouped(now),
        )),
    }
    Ok(see_other(&back_to(handler.as_deref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_read_as_words() {
        assert_eq!(type_words("OrderPlaced"), "Order placed");
        assert_eq!(type_words("StockLow"), "Stock low");
        assert_eq!(deliveries(1), "1 dead delivery");
        assert_eq!(deliveries(1200), "1,200 dead deliveries");
    }

    #[test]
    fn filters_refuse_what_no_handler_or_type_can_be() {
        let query = |status: &str, handler: &str, event_type: &str| FilterQuery {
            status: Some(status.into()),
            handler: Some(handler.into()),
            event_type: Some(event_type.into()),
        };
        let filter = query("dead", "notifications.order_emails", "OrderPlaced").filter().unwrap();
        assert_eq!(filter.status, Some(OpenStatus::Dead));
        assert_eq!(filter.handler.as_deref(), Some("notifications.order_emails"));
        assert!(query("", "", "").filter().unwrap().handler.is_none());
        assert!(query("completed", "", "").filter().is_err());
        assert!(query("", "a\u{0}b", "").filter().is_err());
        assert!(query("", "", "order placed").filter().is_err());
    }
}
