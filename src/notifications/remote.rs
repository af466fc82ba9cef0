//! The main process's client of the notifications service (`AGORA_NOTIFICATIONS_URL`): blocking
//! HTTP calls, each bounded by `AGORA_NOTIFICATIONS_TIMEOUT_MS`, made from the blocking thread pool.
//! What the service cannot answer in time is an error here, never a hang of the caller.

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{EmailPage, ListCursor, Notification, NotificationFilter, NotificationSort, Resend, SeenEmail};
use crate::config::{Config, ServiceLink};
use crate::ids::OrderId;

/// How every [`RemoteError`] begins, so that a 503 can say which dependency failed.
pub const UNAVAILABLE: &str = "the notifications service";

/// Why a call to the service gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("the notifications service did not answer: {0}")]
    Unreachable(String),
    #[error("the notifications service answered {status}: {detail}")]
    Refused { status: u16, detail: String },
    #[error("the notifications service's answer cannot be read: {0}")]
    Unreadable(String),
}

/// Idle connections to the service kept for the next calls. ureq keeps 3 per host by default:
/// with more calls in flight than that (one per order view being served), every connection
/// beyond the third was closed after its call, and the next calls connected anew.
const IDLE_CONNECTIONS: usize = 64;

pub struct Remote {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Remote {
    pub fn new(link: &ServiceLink, config: &Config) -> Remote {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(link.timeout))
            .max_idle_connections(IDLE_CONNECTIONS)
            .max_idle_connections_per_host(IDLE_CONNECTIONS)
            .build()
            .new_agent();
        Remote { base: link.url.clone(), token: config.admin_token.clone(), agent }
    }

    fn authorization(&self) -> String {
        format!("Bearer {}", self.token.as_deref().unwrap_or_default())
    }

    /// GET `path`; `None` for a 404.
    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, RemoteError> {
        let response = self
            .agent
            .get(&format!("{}{path}", self.base))
            .header("Authorization", &self.authorization())
            .call()
            .map_err(|error| RemoteError::Unreachable(error.to_string()))?;
        Self::read(response)
    }

    fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<Option<T>, RemoteError> {
        let response = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("Authorization", &self.authorization())
            .send_json(body)
            .map_err(|error| RemoteError::Unreachable(error.to_string()))?;
        Self::read(response)
    }

    fn read<T: DeserializeOwned>(mut response: ureq::http::Response<ureq::Body>) -> Result<Option<T>, RemoteError> {
        let status = response.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        if status != 200 {
            let detail = response
                .body_mut()
                .read_json::<serde_json::Value>()
                .ok()
                .and_then(|problem| problem.get("detail").and_then(|detail| detail.as_str()).map(str::to_owned))
                .unwrap_or_default();
            return Err(RemoteError::Refused { status, detail });
        }
        response.body_mut().read_json::<T>().map(Some).map_err(|error| RemoteError::Unreadable(error.to_string()))
    }

    /// Whether the service is ready, and holds the e-mails of record.
    pub fn readiness(&self) -> Result<bool, String> {
        let answer: serde_json::Value =
            self.get("/readyz").map_err(|error| error.to_string())?.ok_or("no /readyz (404)")?;
        Ok(answer.get("holds_records").and_then(serde_json::Value::as_bool).unwrap_or(false))
    }

    /// An order's e-mails, oldest first, without bodies.
    pub fn order_emails(&self, order_id: OrderId) -> Result<Vec<Notification>, RemoteError> {
        Ok(self.get(&format!("/api/orders/{order_id}/emails"))?.unwrap_or_default())
    }

    /// Up to `limit` e-mails newest first, optionally of one order, after `after`.
    pub fn list(
        &self,
        order_id: Option<OrderId>,
        after: Option<ListCursor>,
        limit: i64,
    ) -> Result<Vec<Notification>, RemoteError> {
        let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
        if let Some(order_id) = order_id {
            query.push(("order_id", order_id.to_string()));
        }
        if let Some((created, id)) = after {
            query.push(("after_created", created.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)));
            query.push(("after_id", id.to_string()));
        }
        Ok(self.get(&format!("/api/emails?{}", encode(&query)))?.unwrap_or_default())
    }

    /// The admin list's page.
    pub fn search(
        &self,
        filter: &NotificationFilter,
        sort: NotificationSort,
        descending: bool,
        page: i64,
    ) -> Result<EmailPage, RemoteError> {
        let mut query: Vec<(&str, String)> = vec![
            ("sort", if sort == NotificationSort::Attempts { "attempts" } else { "created" }.to_owned()),
            ("direction", if descending { "desc" } else { "asc" }.to_owned()),
            ("page", page.to_string()),
        ];
        if let Some(status) = filter.status {
            query.push(("status", status.as_str().to_owned()));
        }
        if let Some(kind) = filter.kind {
            query.push(("kind", kind.as_str().to_owned()));
        }
        if let Some(to) = &filter.recipient {
            query.push(("to", to.clone()));
        }
        self.get(&format!("/api/emails/search?{}", encode(&query)))?
            .ok_or_else(|| RemoteError::Unreadable("no search endpoint (404)".into()))
    }

    /// One e-mail with its bodies; `None` if there is no such e-mail.
    pub fn email(&self, id: Uuid) -> Result<Option<Notification>, RemoteError> {
        self.get(&format!("/api/emails/{id}"))
    }

    pub fn resend(&self, id: Uuid, seen: SeenEmail) -> Result<Option<Resend>, RemoteError> {
        self.post(&format!("/api/emails/{id}/resend"), &seen)
    }
}

fn encode(pairs: &[(&str, String)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}
