//! How e-mails leave: over SMTP (lettre) when `AGORA_SMTP_URL` is set, or not at all: in
//! store-only mode they are kept in the database and shown in the admin pages, like a mail
//! catcher, so a new user sees every e-mail without running a mail server.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{Message, SmtpTransport, Transport as _};

use super::model::{Notification, NotificationStatus};

/// How long an SMTP conversation may stall before the attempt counts as failed.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

pub enum Transport {
    Store,
    Smtp { mailer: Box<SmtpTransport>, from: Mailbox },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Accepted by the SMTP server.
    Sent,
    /// Kept in the database only.
    Stored,
}

impl Delivered {
    pub fn status(self) -> NotificationStatus {
        match self {
            Delivered::Sent => NotificationStatus::Sent,
            Delivered::Stored => NotificationStatus::Stored,
        }
    }
}

impl Transport {
    pub fn new(smtp_url: Option<&str>, mail_from: &str) -> Result<Transport, String> {
        let Some(url) = smtp_url else { return Ok(Transport::Store) };
        let mailer =
            SmtpTransport::from_url(url).map_err(|error| error.to_string())?.timeout(Some(SMTP_TIMEOUT)).build();
        let from = mail_from.parse::<Mailbox>().map_err(|error| error.to_string())?;
        Ok(Transport::Smtp { mailer: Box::new(mailer), from })
    }

    pub fn deliver(&self, notification: &Notification) -> Result<Delivered, String> {
        let Transport::Smtp { mailer, from } = self else { return Ok(Delivered::Stored) };
        let to = notification.recipient.parse::<Mailbox>().map_err(|error| format!("bad recipient: {error}"))?;
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(notification.subject.clone())
            .message_id(Some(notification.message_id.clone()))
            .multipart(MultiPart::alternative_plain_html(
                notification.text_body.clone(),
                notification.html_body.clone(),
            ))
            .map_err(|error| format!("cannot build the message: {error}"))?;
        mailer.send(&message).map(|_| Delivered::Sent).map_err(|error| format!("SMTP: {error}"))
    }
}
