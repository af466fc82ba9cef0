//! Where the e-mails are, for the pages and the API of the main process: here, in the shared
//! database (notifications in process), or in the notifications service, over HTTP, when it runs
//! on a database of its own (`AGORA_NOTIFICATIONS_URL`). The callers ask the same questions
//! either way; only the service's answers can be missing, and they say why.

use std::sync::Arc;

use uuid::Uuid;

use super::remote::{Remote, RemoteError};
use super::{EmailPage, ListCursor, Notification, NotificationFilter, NotificationSort, Resend, SeenEmail};
use crate::config::{Config, NotificationsConsumer};
use crate::db::{Db, Lsn};
use crate::error::AppError;
use crate::ids::OrderId;
use crate::kernel::Module;
use crate::pagination::Keyset;

#[derive(Clone)]
pub enum Mailroom {
    /// In the shared database, read and written by this process.
    Here { db: Db, consumer: NotificationsConsumer },
    /// In the notifications service's database, reached over HTTP.
    Service(Arc<Remote>),
}

impl From<RemoteError> for AppError {
    fn from(error: RemoteError) -> AppError {
        AppError::Unavailable(error.to_string())
    }
}

impl Mailroom {
    pub fn new(config: &Config, db: &Db) -> Mailroom {
        match &config.notifications_service {
            Some(link) => Mailroom::Service(Arc::new(Remote::new(link, config))),
            None => Mailroom::Here { db: db.clone(), consumer: config.notifications_consumer },
        }
    }

    pub fn is_service(&self) -> bool {
        matches!(self, Mailroom::Service(_))
    }

    /// An order's e-mails from the service, or why they are unavailable; `None` when they are
    /// here (the order view reads them in its own snapshot).
    pub async fn order_emails(&self, order_id: OrderId) -> Option<Result<Vec<Notification>, String>> {
        let Mailroom::Service(remote) = self else { return None };
        let remote = remote.clone();
        Some(match actix_web::web::block(move || remote.order_emails(order_id)).await {
            Ok(Ok(emails)) => Ok(emails),
            Ok(Err(error)) => Err(error.to_string()),
            Err(blocking) => Err(blocking.to_string()),
        })
    }

    async fn remote<T: Send + 'static>(
        remote: &Arc<Remote>,
        call: impl FnOnce(&Remote) -> Result<T, RemoteError> + Send + 'static,
    ) -> Result<T, AppError> {
        let remote = remote.clone();
        Ok(actix_web::web::block(move || call(&remote)).await.map_err(AppError::internal)??)
    }

    /// The admin list's page (`read_after`: what the admin's own last write requires of a replica).
    pub async fn page(
        &self,
        filter: NotificationFilter,
        sort: NotificationSort,
        descending: bool,
        requested: i64,
        read_after: Lsn,
    ) -> Result<EmailPage, AppError> {
        match self {
            Mailroom::Here { db, .. } => {
                db.read(Module::Notifications.op("list_notifications"), read_after, move |conn| {
                    super::email_page(conn, &filter, sort, descending, requested)
                })
                .await
            }
            Mailroom::Service(remote) => {
                Self::remote(remote, move |remote| remote.search(&filter, sort, descending, requested)).await
            }
        }
    }

    /// One e-mail, bodies included.
    pub async fn email(&self, id: Uuid) -> Result<Option<Notification>, AppError> {
        match self {
            Mailroom::Here { db, .. } => {
                db.run(Module::Notifications.op("get_notification"), move |conn| super::get_notification(conn, id))
                    .await
            }
            Mailroom::Service(remote) => Self::remote(remote, move |remote| remote.email(id)).await,
        }
    }

    pub async fn resend(&self, id: Uuid, seen: SeenEmail) -> Result<Option<Resend>, AppError> {
        match self {
            Mailroom::Here { db, consumer } => {
                let consumer = *consumer;
                db.run(Module::Notifications.op("resend_notification"), move |conn| {
                    super::resend(conn, id, seen, consumer)
                })
                .await
            }
            Mailroom::Service(remote) => Self::remote(remote, move |remote| remote.resend(id, seen)).await,
        }
    }

    /// A keyset page of e-mails newest first, optionally of one order.
    pub async fn list(
        &self,
        order_id: Option<OrderId>,
        after: Option<ListCursor>,
        limit: i64,
    ) -> Result<Keyset<Notification>, AppError> {
        let rows = match self {
            Mailroom::Here { db, .. } => {
                db.run(Module::Notifications.op("list_notifications"), move |conn| {
                    super::list_rows(conn, order_id, after, limit + 1)
                })
                .await?
            }
            Mailroom::Service(remote) => {
                Self::remote(remote, move |remote| remote.list(order_id, after, limit + 1)).await?
            }
        };
        Ok(Keyset::from_rows(rows, limit, |notification| (notification.created_at, notification.id)))
    }
}
