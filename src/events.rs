//! The published language: the events modules publish through the outbox, and which handler
//! subscribes to which. It sits in the shared kernel, beside the typed ids, so that publishers,
//! consumers and the outbox all depend on it and it depends on none of them.
//!
//! Ids are plain UUIDs here; each module turns them back into its own typed ids.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
    OrderPlaced { order_id: Uuid, number: String, total_minor: i64, currency: String },
    PaymentSucceeded { order_id: Uuid, payment_id: Uuid, amount_minor: i64, currency: String },
    PaymentFailed { order_id: Uuid, payment_id: Uuid, decline_code: String },
    OrderCancelled { order_id: Uuid, cancelled_by: CancelledBy },
    OrderRefunded { order_id: Uuid, payment_id: Uuid, amount_minor: i64 },
    OrderShipped { order_id: Uuid },
    StockLow { product_id: Uuid, sku: String, available: i32, threshold: i32 },
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

    /// The aggregate the event is about: its kind and id.
    pub fn aggregate(&self) -> (&'static str, Uuid) {
        match self {
            DomainEvent::OrderPlaced { order_id, .. }
            | DomainEvent::PaymentSucceeded { order_id, .. }
            | DomainEvent::PaymentFailed { order_id, .. }
            | DomainEvent::OrderCancelled { order_id, .. }
            | DomainEvent::OrderRefunded { order_id, .. }
            | DomainEvent::OrderShipped { order_id } => ("order", *order_id),
            DomainEvent::StockLow { product_id, .. } => ("product", *product_id),
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
// change commits, and each handler progresses (or fails) on its own.
pub struct Subscription {
    pub handler: &'static str,
    pub events: &'static [EventType],
}

/// The notifications module's customer e-mails.
pub const ORDER_EMAILS: &str = "notifications.order_emails";

pub const SUBSCRIPTIONS: &[Subscription] = &[Subscription {
    handler: ORDER_EMAILS,
    events: &[
        EventType::OrderPlaced,
        EventType::PaymentSucceeded,
        EventType::OrderCancelled,
        EventType::OrderRefunded,
        EventType::OrderShipped,
    ],
}];

pub fn handlers_for(event_type: EventType) -> Vec<&'static str> {
    SUBSCRIPTIONS
        .iter()
        .filter(|subscription| subscription.events.contains(&event_type))
        .map(|subscription| subscription.handler)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_stored_form() {
        let event = DomainEvent::StockLow { product_id: Uuid::nil(), sku: "MUG-1".into(), available: 2, threshold: 5 };
        let payload = event.payload();
        assert_eq!(payload["sku"], "MUG-1");
        assert_eq!(DomainEvent::from_stored(event.event_type().as_str(), &payload).unwrap(), event);
        for event_type in EventType::ALL {
            assert_eq!(EventType::parse(event_type.as_str()), Some(event_type));
        }
    }
}
