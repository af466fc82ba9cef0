//! Which handler reacts to which event type. Publishing an event creates one delivery row per
//! subscribed handler in the same transaction, so work for a handler exists from the moment the
//! change commits, and each handler progresses (or fails) on its own.

use super::events::EventType;

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
