//! Notifications: the customer e-mails for an order's life (received, confirmed, cancelled,
//! refunded, shipped). The module's public face.
//!
//! Both *when* to write and *what* come from the outbox: the events that lead to an e-mail are
//! committed with the change they describe and carry the order as of that change (number, date,
//! customer, lines with their products' descriptions, total). The module therefore reads no other
//! module's table, and could take its events from a broker as well. Each e-mail is rendered once
//! into `notifications`, whose unique event makes a second e-mail for one event impossible (and a
//! unique (order, kind) a second of each kind, but for refunds: each refund of an order has an
//! e-mail of its own), and is sent with a Message-ID derived from its event, so that a resend
//! after a crash is recognisable as the same message.
//!
//! With `AGORA_NOTIFICATIONS_CONSUMER=broker` the events come instead from a queue of the
//! module's own on the broker (`consumer.rs`), through an inbox that drops the copies an
//! at-least-once broker delivers (`inbox.rs`), and the e-mails are sent by a sender of the
//! module's own (`sender.rs`) rather than within outbox deliveries.

pub mod api;
mod consumer;
mod inbox;
pub mod mailroom;
mod model;
pub mod pages;
pub mod remote;
mod render;
mod sender;
pub mod service;
pub mod split;
mod store;
mod transport;

use std::sync::Arc;

use diesel::prelude::*;
use uuid::Uuid;

pub use consumer::{DEAD_DETAIL_HEADER, DEAD_REASON_HEADER, dead_letter_name};
pub use inbox::DeadReason;
pub use mailroom::Mailroom;
pub use model::{EmailKind, Notification, NotificationStatus};
pub use transport::{Delivered, Transport};

use crate::background::BackgroundTasks;
use crate::config::{BrokerSettings, Config, NotificationsConsumer, OutboxSettings};
use crate::db::Db;
use crate::events::ORDER_EMAILS;
use crate::ids::OrderId;
use crate::kernel::{Call, Module, TableAccess};
use crate::money::Currency;
use crate::outbox::dispatcher::{Attempt, EventRecord, Handler, Outcome};
use crate::pagination::Keyset;

/// No read of another module's table: everything an e-mail says comes with its event.
pub const TABLES: TableAccess = TableAccess {
    module: Module::Notifications,
    owns: &["notifications", "notifications_inbox", "notifications_move", "notifications_delta"],
    reads: &[],
    writes: &[],
};

pub const CALLS: &[Call] = &[
    Call { module: Module::Outbox, reason: "it is an outbox handler: order events are what make it write e-mails" },
    Call { module: Module::Admin, reason: "its admin pages use the admin layout, session and CSRF token" },
];

/// The outbox handler that turns order events into e-mails.
pub struct OrderEmails {
    transport: Transport,
    currency: Currency,
    /// Right-hand side of Message-IDs: the sender's domain.
    message_id_domain: String,
    /// The shop's address, for the link to the order's status page.
    public_url: String,
}

impl OrderEmails {
    pub fn new(config: &Config) -> OrderEmails {
        // The configuration was validated at start-up, SMTP URL included.
        let transport = Transport::new(config.smtp_url.as_deref(), &config.mail_from).unwrap_or_else(|error| {
            log::error!("cannot use AGORA_SMTP_URL ({error}); e-mails are stored only");
            Transport::Store
        });
        let message_id_domain = config
            .mail_from
            .parse::<lettre::message::Mailbox>()
            .map(|mailbox| mailbox.email.domain().to_owned())
            .unwrap_or_else(|_| "agora.localhost".into());
        OrderEmails { transport, currency: config.currency, message_id_domain, public_url: config.public_url.clone() }
    }
}

impl Handler for OrderEmails {
    fn name(&self) -> &'static str {
        ORDER_EMAILS
    }

    fn module(&self) -> Module {
        Module::Notifications
    }

    fn has_external_effects(&self) -> bool {
        matches!(self.transport, Transport::Smtp { .. })
    }

    fn handle(&self, conn: &mut PgConnection, record: &EventRecord, attempt: Attempt) -> QueryResult<Outcome> {
        // The dispatcher switches to the notifications' role for a whole batch; this is a no-op
        // then, and the switch when anything else calls the handler.
        crate::as_module!(conn, Module::Notifications);
        let notification = match self.write(conn, record)? {
            Written::NoEmail => return Ok(Outcome::Done),
            Written::Unwritable(reason) => return Ok(Outcome::Retry(reason)),
            Written::Email(notification) => notification,
        };
        if notification.is_done() {
            return Ok(Outcome::Done);
        }
        // The outbox schedules the retry of the whole delivery itself.
        match self.send(conn, &notification, attempt.is_last, None)? {
            Ok(_) => Ok(Outcome::Done),
            Err(error) => Ok(Outcome::Retry(error)),
        }
    }
}

/// What writing the e-mail of an event came to.
pub(crate) enum Written {
    /// The event calls for no e-mail.
    NoEmail,
    /// The event's e-mail: written now, or found as it was written before.
    Email(Notification),
    /// The e-mail cannot be written, for this reason.
    Unwritable(String),
}

/// Writing and sending, shared by the outbox handler, the broker consumer and the sender, so that
/// an event's e-mail is the same however the event arrived.
impl OrderEmails {
    /// The e-mail of `record`, rendered and kept if it was not before: `stored` at once in
    /// store-only mode, otherwise `pending`, to be sent.
    fn write(&self, conn: &mut PgConnection, record: &EventRecord) -> QueryResult<Written> {
        let Some((kind, order_id, order)) = EmailKind::for_event(&record.event) else { return Ok(Written::NoEmail) };
        if let Some(existing) = store::find_for_update(conn, record.id)? {
            return Ok(Written::Email(existing));
        }
        let refund = render::RefundFacts::of(&record.event);
        let email = match render::render(kind, order, refund.as_ref(), self.currency, &self.public_url) {
            Ok(email) => email,
            Err(error) => {
                return Ok(Written::Unwritable(format!("cannot render the {} e-mail: {error}", kind.as_str())));
            }
        };
        // Without SMTP, keeping the e-mail is all there is to do: one statement.
        let stored = matches!(self.transport, Transport::Store);
        let inserted = store::insert(
            conn,
            &model::NewNotification {
                event_id: record.id,
                order_id,
                kind,
                recipient: email.recipient,
                subject: email.subject,
                text_body: email.text,
                html_body: email.html,
                message_id: format!("<event-{}.{}@{}>", record.id, kind.as_str(), self.message_id_domain),
                status: if stored { NotificationStatus::Stored } else { NotificationStatus::Pending },
                attempts: i32::from(stored),
                sent_at: stored.then(chrono::Utc::now),
            },
        )?;
        if stored {
            log::debug!("e-mail {} for order {order_id} stored", kind.as_str());
        }
        Ok(Written::Email(inserted))
    }

    /// One attempt to send a pending e-mail, recorded: delivered, or a failed attempt (the last,
    /// when `is_last`; else pending again, due at `retry_at` if given). The error is the attempt's.
    fn send(
        &self,
        conn: &mut PgConnection,
        notification: &Notification,
        is_last: bool,
        retry_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> QueryResult<Result<Delivered, String>> {
        let (kind, order_id) = (notification.kind.as_str(), notification.order_id);
        match self.transport.deliver(notification) {
            Ok(delivered) => {
                store::mark_delivered(conn, notification.id, delivered.status())?;
                log::info!("e-mail {kind} for order {order_id} {}", delivered.status());
                Ok(Ok(delivered))
            }
            Err(error) => {
                store::mark_failed_attempt(conn, notification.id, &error, is_last, retry_at)?;
                Ok(Err(error))
            }
        }
    }
}

/// Takes the order events from the broker queue of notifications' own (`broker`), writing each
/// event's e-mail with `emails`, the handler the outbox would use, and sends them from a sender of
/// its own.
/// Declares the queue notifications consumes from the broker, now: see [`consumer::declare_now`].
pub fn declare_queue_now(broker: &BrokerSettings) -> Result<(), String> {
    consumer::declare_now(broker)
}

pub fn start_consuming(
    tasks: &mut BackgroundTasks,
    db: &Db,
    broker: &BrokerSettings,
    retries: &OutboxSettings,
    emails: Arc<OrderEmails>,
    fence: Fence,
) {
    let wakeup = crate::background::Doorbell::default();
    sender::start(tasks, db, emails.clone(), retries, wakeup.clone(), fence);
    consumer::start(tasks, db, broker, emails, wakeup, fence);
}

/// What the consumer and the sender check before writing: nothing in the shared database (its
/// write lock refuses writes once notifications has moved), the holder of the e-mails of record in
/// the service's ([`service::holds_records`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fence {
    None,
    Holder,
}

impl Fence {
    /// Whether this process may write e-mails now; under the fence's share lock until the
    /// caller's transaction ends.
    fn admits(self, conn: &mut PgConnection) -> QueryResult<bool> {
        match self {
            Fence::None => Ok(true),
            Fence::Holder => service::holds_records(conn),
        }
    }
}

/// The metrics of the broker consumer, for `/metrics`; every dead-letter reason is listed, at 0
/// until it happens.
pub fn collectors() -> Vec<Box<dyn prometheus::core::Collector>> {
    consumer::dead_letters();
    vec![Box::new(consumer::DEAD_LETTERS.clone()), Box::new(consumer::MESSAGES.clone())]
}

/// Messages this process sent to the dead-letter queue, by reason (every reason listed).
pub fn dead_letters() -> Vec<(DeadReason, u64)> {
    consumer::dead_letters()
}

/// How many e-mails are in each status (sent, stored, failed...), for the metrics.
pub fn counts_by_status(conn: &mut PgConnection) -> QueryResult<Vec<(NotificationStatus, i64)>> {
    crate::as_module!(conn, Module::Notifications);
    use crate::schema::notifications::dsl::*;
    notifications.group_by(status).select((status, diesel::dsl::count_star())).load(conn)
}

pub fn get_notification(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<Notification>> {
    crate::as_module!(conn, Module::Notifications);
    store::find(conn, id)
}

pub type ListCursor = (chrono::DateTime<chrono::Utc>, Uuid);

/// An order's e-mails in the order of their events, without their bodies: what the order view shows.
pub fn of_order(conn: &mut PgConnection, order: OrderId) -> QueryResult<Vec<Notification>> {
    crate::as_module!(conn, Module::Notifications);
    store::of_order(conn, order)
}

/// Up to `limit` e-mails newest first, optionally of one order, from just after `after`.
pub fn list_rows(
    conn: &mut PgConnection,
    order_id: Option<OrderId>,
    after: Option<ListCursor>,
    limit: i64,
) -> QueryResult<Vec<Notification>> {
    crate::as_module!(conn, Module::Notifications);
    store::list(conn, order_id, after, limit)
}

pub fn list_notifications(
    conn: &mut PgConnection,
    order_id: Option<OrderId>,
    after: Option<ListCursor>,
    limit: i64,
) -> QueryResult<Keyset<Notification>> {
    crate::as_module!(conn, Module::Notifications);
    let rows = store::list(conn, order_id, after, limit + 1)?;
    Ok(Keyset::from_rows(rows, limit, |notification| (notification.created_at, notification.id)))
}

/// What the admin list of e-mails is narrowed to; `None` is "any".
#[derive(Clone, Debug, Default)]
pub struct NotificationFilter {
    pub status: Option<NotificationStatus>,
    pub kind: Option<EmailKind>,
    /// Part of the recipient's address, matched without regard to case.
    pub recipient: Option<String>,
}

/// The column the admin list of e-mails sorts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationSort {
    CreatedAt,
    Attempts,
}

/// The e-mails matching `filter` in each status (all four, or the one the filter names), each
/// counted up to `cap + 1`: a status past the cap costs no more than the cap.
pub fn count_by_status_matching(
    conn: &mut PgConnection,
    filter: &NotificationFilter,
    cap: i64,
) -> QueryResult<Vec<(NotificationStatus, i64)>> {
    crate::as_module!(conn, Module::Notifications);
    let statuses: Vec<NotificationStatus> = match filter.status {
        Some(status) => vec![status],
        None => NotificationStatus::ALL.to_vec(),
    };
    statuses.into_iter().map(|status| Ok((status, store::count_matching(conn, filter, status, cap + 1)?))).collect()
}

/// One page of the e-mails matching `filter`.
pub fn find_notifications(
    conn: &mut PgConnection,
    filter: &NotificationFilter,
    sort: NotificationSort,
    descending: bool,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<Notification>> {
    crate::as_module!(conn, Module::Notifications);
    store::filtered(conn, filter, sort, descending, offset, limit)
}

/// One numbered page of the admin list of e-mails, with the totals per status it shows.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct EmailPage {
    pub items: Vec<Notification>,
    /// The page shown: the one asked for, or the last one when asked past it.
    pub page: i64,
    /// The matching e-mails, counted up to `cap + 1`.
    pub counted: i64,
    pub totals: Vec<(NotificationStatus, i64)>,
}

/// The page `requested` of the e-mails matching `filter`, `per_page` to a page, totals counted up
/// to `cap`: what the admin list shows, read here or by the notifications service.
pub fn email_page(
    conn: &mut PgConnection,
    filter: &NotificationFilter,
    sort: NotificationSort,
    descending: bool,
    requested: i64,
) -> QueryResult<EmailPage> {
    use crate::admin::listing::{COUNT_CAP, Numbered, PER_PAGE};
    crate::as_module!(conn, Module::Notifications);
    let totals = count_by_status_matching(conn, filter, COUNT_CAP)?;
    // Any status past the cap puts the whole count past it.
    let counted = totals.iter().map(|(_, counted)| *counted).sum::<i64>().min(COUNT_CAP + 1);
    // Past the last page there is nothing to show: show the last one instead.
    let last = Numbered::<()>::new(Vec::new(), 1, counted).pages();
    let page = if counted > COUNT_CAP { requested } else { requested.min(last) };
    let offset = Numbered::<Notification>::offset(page);
    let items = find_notifications(conn, filter, sort, descending, offset, PER_PAGE)?;
    Ok(EmailPage { items, page, counted, totals })
}

/// What an operator saw of a failed e-mail when confirming its resend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeenEmail {
    pub status: NotificationStatus,
    /// Every attempt to send adds one, so a resend that has failed again since shows here.
    pub attempts: i32,
}

/// What came of asking to send an e-mail again.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Resend {
    /// It had failed: it is pending again (and so is its outbox delivery, when the outbox sends
    /// e-mails), and the stored e-mail is sent once more (same text, same Message-ID).
    Queued(Notification),
    /// It has not failed (sent, stored, or still being retried): nothing was done.
    NotFailed(Notification),
    /// It failed, but its delivery was put back in the queue already (from the events page):
    /// the handler is about to send it; a second revival would change nothing.
    AlreadyQueued(Notification),
    /// It failed, but not as the operator saw it: it was resent since and failed again (or
    /// changed otherwise). Nothing was done: the operator decides again on what it is now.
    Changed { notification: Notification, seen: SeenEmail },
}

impl Resend {
    pub fn notification(&self) -> &Notification {
        match self {
            Resend::Queued(notification)
            | Resend::NotFailed(notification)
            | Resend::AlreadyQueued(notification)
            | Resend::Changed { notification, .. } => notification,
        }
    }
}

/// Sends a failed e-mail again, if it is still as the operator `seen` it; `None` if there is no
/// such e-mail. Where the outbox sends e-mails (`consumer` is `Outbox`) its dead delivery is
/// revived; where notifications consumes from the broker, the e-mail is made pending for the
/// sender. The check and the change happen under the e-mail's row lock, so however many posts of
/// one confirmation arrive at once, the first acts and the others find it pending, sent, or
/// failed again with more attempts than they saw.
pub fn resend(
    conn: &mut PgConnection,
    id: Uuid,
    seen: SeenEmail,
    consumer: NotificationsConsumer,
) -> QueryResult<Option<Resend>> {
    crate::as_module!(conn, Module::Notifications);
    conn.transaction(|conn| {
        // Locked first: a second resend, or the handler, waits for this one's decision.
        let Some(notification) = store::find_by_id_for_update(conn, id)? else { return Ok(None) };
        if notification.status != NotificationStatus::Failed {
            return Ok(Some(Resend::NotFailed(notification)));
        }
        if notification.status != seen.status || notification.attempts != seen.attempts {
            return Ok(Some(Resend::Changed { notification, seen }));
        }
        if consumer.uses_queue() {
            store::mark_pending_again(conn, id)?;
            return Ok(Some(Resend::Queued(notification)));
        }
        if !crate::outbox::retry_dead(conn, notification.event_id, ORDER_EMAILS)? {
            return Ok(Some(Resend::AlreadyQueued(notification)));
        }
        store::mark_pending_again(conn, id)?;
        Ok(Some(Resend::Queued(notification)))
    })
}
