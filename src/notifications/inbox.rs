//! The inbox: how a message from the broker becomes an e-mail, once.
//!
//! The broker delivers at least once (the relay publishes again after a crash between the
//! broker's confirm and its own commit; an unacknowledged message is redelivered), so every
//! message is taken in the same transaction that records its event id in `notifications_inbox`
//! and writes the event's e-mail. A message whose id is there already writes nothing.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::{Fence, OrderEmails, Written};
use crate::events::{DomainEvent, EventType};
use crate::outbox::dispatcher::EventRecord;

/// Why a message went to the dead-letter queue: a bounded set, as it labels a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadReason {
    /// The body is not JSON.
    NotJson,
    /// No `type`, or one this build does not know.
    UnknownType,
    /// A payload `version` this build does not read.
    UnsupportedVersion,
    /// JSON of a known type and version that is not such an event (a field missing or of the
    /// wrong type), no usable `message_id`, or an event that refers to nothing known here.
    Invalid,
}

impl DeadReason {
    pub const ALL: [DeadReason; 4] =
        [DeadReason::NotJson, DeadReason::UnknownType, DeadReason::UnsupportedVersion, DeadReason::Invalid];

    /// The word in the dead letter's header and in the metric's label.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::NotJson => "not_json",
            DeadReason::UnknownType => "unknown_type",
            DeadReason::UnsupportedVersion => "unsupported_version",
            DeadReason::Invalid => "invalid",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DeadReason::NotJson => "Not JSON",
            DeadReason::UnknownType => "Unknown type",
            DeadReason::UnsupportedVersion => "Unsupported version",
            DeadReason::Invalid => "Invalid",
        }
    }
}

/// A message that cannot be processed, ever: it goes to the dead-letter queue with the reason.
#[derive(Debug, PartialEq, Eq)]
pub struct Dead {
    pub reason: DeadReason,
    pub detail: String,
}

impl Dead {
    fn new(reason: DeadReason, detail: impl Into<String>) -> Dead {
        Dead { reason, detail: detail.into() }
    }
}

/// What a message carries, as read from its AMQP properties and body.
#[derive(Debug, Default)]
pub struct Envelope<'a> {
    /// `message_id`: the event id.
    pub message_id: Option<&'a str>,
    /// `type`: the event type.
    pub event_type: Option<&'a str>,
    /// `timestamp`: seconds since the epoch, when published.
    pub timestamp: Option<u64>,
    pub body: &'a [u8],
}

/// A message read as an event.
#[derive(Debug)]
pub struct Received {
    pub event_type: EventType,
    pub record: EventRecord,
}

/// Reads a message as the event it carries, or says why it never will be one. The checks run from
/// the outside in, so that the reason names the first thing wrong.
pub fn read(envelope: &Envelope) -> Result<Received, Dead> {
    let payload: serde_json::Value = serde_json::from_slice(envelope.body)
        .map_err(|error| Dead::new(DeadReason::NotJson, format!("the body is not JSON: {error}")))?;
    let type_name = envelope.event_type.ok_or_else(|| Dead::new(DeadReason::UnknownType, "the message has no type"))?;
    let event_type = EventType::parse(type_name)
        .ok_or_else(|| Dead::new(DeadReason::UnknownType, format!("{type_name:?} is not an event type")))?;
    crate::events::check_version(&payload).map_err(|reason| Dead::new(DeadReason::UnsupportedVersion, reason))?;
    let event = DomainEvent::from_stored(type_name, &payload)
        .map_err(|error| Dead::new(DeadReason::Invalid, format!("not a {type_name} payload: {error}")))?;
    let id = envelope.message_id.and_then(|id| id.parse::<i64>().ok()).filter(|id| *id > 0).ok_or_else(|| {
        Dead::new(DeadReason::Invalid, format!("message_id {:?} is not an event id", envelope.message_id))
    })?;
    let created_at = envelope
        .timestamp
        .and_then(|seconds| DateTime::<Utc>::from_timestamp(i64::try_from(seconds).ok()?, 0))
        .unwrap_or_else(Utc::now);
    Ok(Received { event_type, record: EventRecord { id, created_at, event, payload } })
}

/// What taking a message came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// Recorded for the first time; `pending`: an e-mail waits for the sender.
    New { pending: bool },
    /// The inbox had it: nothing was written.
    Duplicate,
    /// It can never be taken; nothing was written.
    Dead(Dead),
    /// This process does not hold the e-mails of record (a move under way or rolled back):
    /// nothing was written, and the message goes back to the queue for the holder.
    NotHolder,
}

enum Failure {
    Database(DieselError),
    Dead(Dead),
}

impl From<DieselError> for Failure {
    fn from(error: DieselError) -> Failure {
        Failure::Database(error)
    }
}

/// Takes the messages at hand in one transaction, each under a savepoint of its own: its event
/// id into the inbox and its e-mail written, or neither. One commit for the lot is what lets the
/// consumer keep up with checkout; what happens to one message (a dead one, a copy) is its own.
/// A database error is returned, and nothing is taken (the messages must come again).
pub fn take_all(
    conn: &mut PgConnection,
    emails: &OrderEmails,
    messages: &[Received],
    fence: Fence,
) -> QueryResult<Vec<Taken>> {
    conn.transaction(|conn| {
        if !fence.admits(conn)? {
            return Ok(messages.iter().map(|_| Taken::NotHolder).collect());
        }
        messages.iter().map(|received| take_one(conn, emails, received)).collect()
    })
}

fn take_one(conn: &mut PgConnection, emails: &OrderEmails, received: &Received) -> QueryResult<Taken> {
    let taken = conn.transaction(|conn| {
        if !record(conn, received.record.id, received.event_type)? {
            return Ok(Taken::Duplicate);
        }
        match emails.write(conn, &received.record)? {
            Written::NoEmail => Ok(Taken::New { pending: false }),
            Written::Email(email) => Ok(Taken::New { pending: !email.is_done() }),
            Written::Unwritable(reason) => Err(Failure::Dead(Dead::new(DeadReason::Invalid, reason))),
        }
    });
    match taken {
        Ok(taken) => Ok(taken),
        Err(Failure::Dead(dead)) => Ok(Taken::Dead(dead)),
        // The e-mail refers to its event and order: a message naming either of another database
        // would fail the same way each time it came back.
        Err(Failure::Database(DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info))) => {
            Ok(Taken::Dead(Dead::new(
                DeadReason::Invalid,
                format!("event {} refers to what this database does not have: {}", received.record.id, info.message()),
            )))
        }
        // The shared database's tables after a move (`agora split notifications`): the e-mails
        // are the service's now, and the message goes back for it.
        Err(Failure::Database(DieselError::DatabaseError(_, info))) if info.message().contains("write-locked") => {
            Ok(Taken::NotHolder)
        }
        Err(Failure::Database(error)) => Err(error),
    }
}

/// Records the event id; `false` if it was recorded before. A second transaction recording the
/// same id waits for the first one's outcome, so two copies of a message taken at once by two
/// consumers write one e-mail.
fn record(conn: &mut PgConnection, event: i64, of_type: EventType) -> QueryResult<bool> {
    use crate::schema::notifications_inbox::dsl::*;
    let inserted = diesel::insert_into(notifications_inbox)
        .values((event_id.eq(event), event_type.eq(of_type.as_str())))
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(inserted == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(body: &str) -> Envelope<'_> {
        Envelope {
            message_id: Some("42"),
            event_type: Some("OrderShipped"),
            timestamp: Some(1_800_000_000),
            body: body.as_bytes(),
        }
    }

    fn reason(envelope: &Envelope) -> DeadReason {
        read(envelope).unwrap_err().reason
    }

    const SHIPPED: &str = r#"{"version": 1, "order_id": "00000000-0000-0000-0000-000000000001",
        "order": {"number": "AG-000001", "placed_at": "2026-12-06T14:00:00Z",
                  "customer": {"name": "Ada", "email": "ada@example.com"},
                  "lines": [{"product_id": "00000000-0000-0000-0000-000000000009", "sku": "MUG-001",
                             "name": "Mug", "description": "", "quantity": 1, "unit_price_minor": 900,
                             "line_total_minor": 900}],
                  "total_minor": 900, "currency": "EUR"}}"#;

    #[test]
    fn a_message_of_the_contract_reads_as_its_event() {
        let received = read(&envelope(SHIPPED)).unwrap();
        assert_eq!(received.event_type, EventType::OrderShipped);
        assert_eq!(received.record.id, 42);
        assert_eq!(received.record.created_at.timestamp(), 1_800_000_000);
        let unversioned = SHIPPED.replacen(r#""version": 1, "#, "", 1);
        assert!(read(&envelope(&unversioned)).unwrap_err().detail.contains("missing field `version`"));
    }

    #[test]
    fn each_way_a_message_can_be_broken_has_its_reason() {
        assert_eq!(reason(&envelope("not json {")), DeadReason::NotJson);
        assert_eq!(reason(&envelope("{}")), DeadReason::Invalid, "order_id missing");
        assert!(read(&envelope("{}")).unwrap_err().detail.contains("missing field"));
        assert_eq!(reason(&envelope(r#"{"order_id": 7}"#)), DeadReason::Invalid);
        let future = r#"{"version": 99, "order_id": "00000000-0000-0000-0000-000000000001"}"#;
        assert_eq!(reason(&envelope(future)), DeadReason::UnsupportedVersion);
        assert_eq!(reason(&Envelope { event_type: Some("OrderLost"), ..envelope(SHIPPED) }), DeadReason::UnknownType);
        assert_eq!(reason(&Envelope { event_type: None, ..envelope(SHIPPED) }), DeadReason::UnknownType);
        for id in [None, Some("abc"), Some("0"), Some("-3")] {
            assert_eq!(reason(&Envelope { message_id: id, ..envelope(SHIPPED) }), DeadReason::Invalid, "{id:?}");
        }
    }
}
