//! The published language: the events modules publish through the outbox, and which handler
//! subscribes to which. It sits in the shared kernel, beside the typed ids, so that publishers,
//! consumers and the outbox all depend on it and it depends on none of them.
//!
//! Ids are the shared kernel's typed ids; they serialize as bare UUID strings, so the stored
//! payloads read the same as the plain UUIDs they once were.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{OrderId, PaymentId, ProductId, RefundId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    OrderPlaced,
    PaymentSucceeded,
    PaymentFailed,
    OrderCancelled,
    OrderRefunded,
    OrderShipped,
    StockLow,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        EventType::OrderPlaced,
        EventType::PaymentSucceeded,
        EventType::PaymentFailed,
        EventType::OrderCancelled,
        EventType::OrderRefunded,
        EventType::OrderShipped,
        EventType::StockLow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderPlaced => "OrderPlaced",
            EventType::PaymentSucceeded => "PaymentSucceeded",
            EventType::PaymentFailed => "PaymentFailed",
            EventType::OrderCancelled => "OrderCancelled",
            EventType::OrderRefunded => "OrderRefunded",
            EventType::OrderShipped => "OrderShipped",
            EventType::StockLow => "StockLow",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|event_type| event_type.as_str() == name)
    }
}

/// Why an order was cancelled: the orders module's word, carried in `OrderCancelled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelledBy {
    Customer,
    Admin,
    PaymentTimeout,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum DomainEvent {
    OrderPlaced {
        order_id: OrderId,
        number: String,
        total_minor: i64,
        currency: String,
    },
    PaymentSucceeded {
        order_id: OrderId,
        payment_id: PaymentId,
        amount_minor: i64,
        currency: String,
    },
    PaymentFailed {
        order_id: OrderId,
        payment_id: PaymentId,
        decline_code: String,
    },
    OrderCancelled {
        order_id: OrderId,
        cancelled_by: CancelledBy,
    },
    /// One refund of an order's payment: the whole order, an amount, or chosen lines. Events stored
    /// before refunds came in parts carry only the first three fields (and were whole refunds).
    OrderRefunded {
        order_id: OrderId,
        payment_id: PaymentId,
        /// This refund's amount.
        amount_minor: i64,
        #[serde(default)]
        refund_id: Option<RefundId>,
        /// What has been refunded of the order in all, this refund included.
        #[serde(default)]
        refunded_minor: Option<i64>,
        /// The units this refund gave back, line by line; none for an amount or the whole order.
        #[serde(default)]
        lines: Vec<RefundedLine>,
    },
    OrderShipped {
        order_id: OrderId,
    },
    StockLow {
        product_id: ProductId,
        sku: String,
        available: i32,
        threshold: i32,
    },
}

/// Units of one order line given back by a refund, as `OrderRefunded` carries them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundedLine {
    pub product_id: ProductId,
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    pub amount_minor: i64,
}

/// What an event is about. The outbox stores it in two columns, `aggregate_type` (the kind) and
/// `aggregate_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    Order(OrderId),
    Product(ProductId),
}

impl Aggregate {
    /// The kind, as stored in `events.aggregate_type`.
    pub fn kind(self) -> &'static str {
        match self {
            Aggregate::Order(_) => "order",
            Aggregate::Product(_) => "product",
        }
    }

    /// The id as stored in `events.aggregate_id`: one column holds ids of every kind, so it
    /// takes the bare UUID.
    pub fn uuid(self) -> Uuid {
        match self {
            Aggregate::Order(id) => id.0,
            Aggregate::Product(id) => id.0,
        }
    }

    /// Reads the two stored columns back; `None` for a kind this version does not know.
    pub fn from_stored(kind: &str, id: Uuid) -> Option<Aggregate> {
        match kind {
            "order" => Some(Aggregate::Order(OrderId(id))),
            "product" => Some(Aggregate::Product(ProductId(id))),
            _ => None,
        }
    }
}

impl DomainEvent {
    pub fn event_type(&self) -> EventType {
        match self {
            DomainEvent::OrderPlaced { .. } => EventType::OrderPlaced,
            DomainEvent::PaymentSucceeded { .. } => EventType::PaymentSucceeded,
            DomainEvent::PaymentFailed { .. } => EventType::PaymentFailed,
            DomainEvent::OrderCancelled { .. } => EventType::OrderCancelled,
            DomainEvent::OrderRefunded { .. } => EventType::OrderRefunded,
            DomainEvent::OrderShipped { .. } => EventType::OrderShipped,
            DomainEvent::StockLow { .. } => EventType::StockLow,
        }
    }

    /// The aggregate the event is about.
    pub fn aggregate(&self) -> Aggregate {
        match self {
            DomainEvent::OrderPlaced { order_id, .. }
            | DomainEvent::PaymentSucceeded { order_id, .. }
            | DomainEvent::PaymentFailed { order_id, .. }
            | DomainEvent::OrderCancelled { order_id, .. }
            | DomainEvent::OrderRefunded { order_id, .. }
            | DomainEvent::OrderShipped { order_id } => Aggregate::Order(*order_id),
            DomainEvent::StockLow { product_id, .. } => Aggregate::Product(*product_id),
        }
    }

    /// The payload as stored in `events.payload` (the variant's fields).
    pub fn payload(&self) -> serde_json::Value {
        let mut tagged = serde_json::to_value(self).expect("events serialize");
        tagged["payload"].take()
    }

    /// Rebuilds an event from its stored type and payload.
    pub fn from_stored(event_type: &str, payload: &serde_json::Value) -> Result<DomainEvent, serde_json::Error> {
        serde_json::from_value(serde_json::json!({ "type": event_type, "payload": payload }))
    }
}

// Which handler reacts to which event type. Publishing an event creates one delivery row per
// subscribed handler in the same transaction, so work for a handler exists from the moment the
// change commits, and each handler progresses (or fails) on its own. Which of these an
// installation runs is its configuration's (`crate::outbox::subscriptions`).
pub struct Subscription {
    pub handler: &'static str,
    pub events: &'static [EventType],
}

/// The notifications module's customer e-mails.
pub const ORDER_EMAILS: &str = "notifications.order_emails";

/// The outbox's relay to the message broker.
pub const BROKER_RELAY: &str = "outbox.broker_relay";

/// The notifications module's e-mails, in process.
pub const ORDER_EMAILS_SUBSCRIPTION: Subscription = Subscription {
    handler: ORDER_EMAILS,
    events: &[
        EventType::OrderPlaced,
        EventType::PaymentSucceeded,
        EventType::OrderCancelled,
        EventType::OrderRefunded,
        EventType::OrderShipped,
    ],
};

/// Every event, onto the broker.
pub const BROKER_RELAY_SUBSCRIPTION: Subscription = Subscription { handler: BROKER_RELAY, events: &EventType::ALL };

/// Every handler there is, subscribed or not: the events page filters by them.
pub const HANDLERS: &[&str] = &[ORDER_EMAILS, BROKER_RELAY];

/// The payload version this build reads, for consumers of events that left the process (a
/// broker's messages). Checked in one place, [`check_version`], so that a newer version is refused
/// as a whole rather than half read.
pub const SUPPORTED_VERSION: u64 = 1;

/// Whether a payload is of a version this build reads. A payload without `version` is read as
/// version 1 for as long as stored events from before versions exist; any other version, or a
/// `version` that is not a number, is refused with the reason.
pub fn check_version(payload: &serde_json::Value) -> Result<(), String> {
    match payload.get("version") {
        None => Ok(()),
        Some(version) if version.as_u64() == Some(SUPPORTED_VERSION) => Ok(()),
        Some(version) => {
            Err(format!("payload version {version} is not supported (this build reads {SUPPORTED_VERSION})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_stored_form() {
        let event = DomainEvent::StockLow {
            product_id: ProductId(Uuid::nil()),
            sku: "MUG-1".into(),
            available: 2,
            threshold: 5,
        };
        let payload = event.payload();
        assert_eq!(payload["sku"], "MUG-1");
        assert_eq!(DomainEvent::from_stored(event.event_type().as_str(), &payload).unwrap(), event);
        for event_type in EventType::ALL {
            assert_eq!(EventType::parse(event_type.as_str()), Some(event_type));
        }
    }

    #[test]
    fn typed_ids_are_stored_as_the_bare_uuid_strings_they_always_were() {
        let event = DomainEvent::OrderRefunded {
            order_id: OrderId(Uuid::from_u128(1)),
            payment_id: PaymentId(Uuid::from_u128(2)),
            amount_minor: 500,
            refund_id: Some(RefundId(Uuid::from_u128(3))),
            refunded_minor: Some(700),
            lines: Vec::new(),
        };
        assert_eq!(
            event.payload().to_string(),
            r#"{"amount_minor":500,"lines":[],"order_id":"00000000-0000-0000-0000-000000000001","payment_id":"00000000-0000-0000-0000-000000000002","refund_id":"00000000-0000-0000-0000-000000000003","refunded_minor":700}"#
        );
        assert_eq!(event.aggregate(), Aggregate::Order(OrderId(Uuid::from_u128(1))));
        let aggregate = event.aggregate();
        assert_eq!(Aggregate::from_stored(aggregate.kind(), aggregate.uuid()), Some(aggregate));
    }

    #[test]
    fn a_refund_event_stored_before_refunds_came_in_parts_still_reads() {
        let stored = serde_json::json!({
            "amount_minor": 500,
            "order_id": "00000000-0000-0000-0000-000000000001",
            "payment_id": "00000000-0000-0000-0000-000000000002",
        });
        let event = DomainEvent::from_stored("OrderRefunded", &stored).unwrap();
        assert_eq!(
            event,
            DomainEvent::OrderRefunded {
                order_id: OrderId(Uuid::from_u128(1)),
                payment_id: PaymentId(Uuid::from_u128(2)),
                amount_minor: 500,
                refund_id: None,
                refunded_minor: None,
                lines: Vec::new(),
            }
        );
    }

    #[test]
    fn version_1_is_read_and_any_other_refused() {
        assert_eq!(check_version(&serde_json::json!({"version": 1, "order_id": "x"})), Ok(()));
        assert_eq!(check_version(&serde_json::json!({"order_id": "x"})), Ok(()));
        for version in [serde_json::json!(99), serde_json::json!(0), serde_json::json!("1"), serde_json::json!(1.5)] {
            let refused = check_version(&serde_json::json!({ "version": version })).unwrap_err();
            assert!(refused.starts_with(&format!("payload version {version} is not supported")), "{refused}");
        }
    }
}
