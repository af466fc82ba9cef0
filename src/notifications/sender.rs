//! The sender: with notifications consuming from the broker, a message is acknowledged as soon as
//! its e-mail is written, not once an SMTP server has taken it, so that a slow or refusing mail
//! server holds up neither the queue nor the broker. Pending e-mails are then sent from here,
//! with retries, by any number of processes side by side.
//!
//! Each e-mail is claimed with `FOR UPDATE SKIP LOCKED` and stays locked, in one transaction,
//! while it is handed to the SMTP server and its outcome recorded; one e-mail per transaction, so
//! that a process dying mid-send can repeat at most the one in flight (with the same Message-ID).
//! A failed attempt makes it due again after the outbox's backoff (`AGORA_OUTBOX_BACKOFF_MS`,
//! doubling up to `AGORA_OUTBOX_BACKOFF_MAX_SECS`); after `AGORA_OUTBOX_MAX_ATTEMPTS` attempts it
//! is failed, until an operator resends it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;

use super::{Fence, OrderEmails, store};
use crate::background::{BackgroundTasks, Doorbell};
use crate::config::OutboxSettings;
use crate::db::Db;
use crate::error::CauseChain;
use crate::kernel::Module;

/// The shortest wait before looking for due e-mails again, when none could be claimed.
const NEXT_LOOK_MIN: Duration = Duration::from_millis(100);

pub fn start(
    tasks: &mut BackgroundTasks,
    db: &Db,
    emails: Arc<OrderEmails>,
    settings: &OutboxSettings,
    wakeup: Doorbell,
    fence: Fence,
) {
    let (db, settings) = (db.clone(), settings.clone());
    tasks.spawn("notifications-sender", move |stop| {
        while !stop.is_stopped() {
            match db
                .run_blocking(Module::Notifications.op("send_email"), |conn| send_next(conn, &emails, &settings, fence))
            {
                Ok(true) => continue,
                Ok(false) => {}
                Err(error) => log::warn!("notifications sender: {}", CauseChain(&error)),
            }
            let next_due = db
                .run_blocking(Module::Notifications.op("next_email_due"), store::next_due)
                .ok()
                .flatten()
                .map_or(settings.poll_interval, |due| {
                    // An e-mail due now that could not be claimed is another sender's, in flight:
                    // no reason to ask again at once.
                    (due - Utc::now()).to_std().unwrap_or(Duration::ZERO).max(NEXT_LOOK_MIN).min(settings.poll_interval)
                });
            wakeup.wait(next_due, &stop);
        }
    });
}

/// Makes one attempt at the e-mail due longest; `false` if none is due.
fn send_next(
    conn: &mut PgConnection,
    emails: &OrderEmails,
    settings: &OutboxSettings,
    fence: Fence,
) -> QueryResult<bool> {
    conn.transaction(|conn| {
        if !fence.admits(conn)? {
            return Ok(false);
        }
        let Some(email) = store::claim_due(conn)? else { return Ok(false) };
        let attempt = email.round_attempts + 1;
        let is_last = attempt >= settings.max_attempts;
        let delay = crate::outbox::dispatcher::backoff(settings, attempt);
        let retry_at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        if let Err(error) = emails.send(conn, &email, is_last, Some(retry_at))? {
            let (kind, order_id) = (email.kind.as_str(), email.order_id);
            if is_last {
                log::error!("gave up on e-mail {kind} for order {order_id} after {attempt} attempts: {error}");
            } else {
                log::warn!(
                    "e-mail {kind} for order {order_id} failed (attempt {attempt}), retrying in {delay:?}: {error}"
                );
            }
        }
        Ok(true)
    })
}
