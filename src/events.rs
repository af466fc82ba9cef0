//! The published language: the events modules publish through the outbox, and which handler
//! subscribes to which. It sits in the shared kernel, beside the typed ids, so that publishers,
//! consumers and the outbox all depend on it and it depends on none of them.
//!
//! Each event's payload is a struct of its own, named after the event type, with a `version`
//! and a schema (`utoipa::ToSchema`): the contract with every consumer, in process or over a
//! broker. Events that lead to a customer e-mail carry the order itself ([`OrderSnapshot`]), so
//! their consumers need the event alone, never the publisher's tables.
//!
//! Ids are the shared kernel's typed ids; they serialize as bare UUID strings, so the stored
//! payloads read the same as the plain UUIDs they once were.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ids::{OrderId, PaymentId, ProductId, RefundId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
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

    /// The kind of aggregate events of this type are about (`Aggregate::kind`).
    pub fn aggregate_kind(self) -> &'static str {
        match self {
            EventType::StockLow => "product",
            _ => "order",
        }
    }

    /// The routing key of this type's messages on the broker: `order.OrderPlaced`, ...
    pub fn routing_key(self) -> String {
        format!("{}.{}", self.aggregate_kind(), self.as_str())
    }

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelledBy {
    Customer,
    Admin,
    PaymentTimeout,
}

/// The version of an event's payload, stored in it as `"version": 1`. A payload changes shape
/// only under a new version; this build writes version 1 and reads no other, so a payload of an
/// unknown version is refused when read, naming its version, instead of being half understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u32", try_from = "u32")]
pub struct PayloadVersion(u32);

impl PayloadVersion {
    /// The version this build writes, and the only one it reads.
    pub const CURRENT: PayloadVersion = PayloadVersion(1);

    pub fn number(self) -> u32 {
        self.0
    }
}

impl From<PayloadVersion> for u32 {
    fn from(version: PayloadVersion) -> u32 {
        version.0
    }
}

/// A stored payload of a version this build does not read.
#[derive(Debug, thiserror::Error)]
#[error("payload version {0} is not one this build reads (it reads version {current})", current = PayloadVersion::CURRENT.0)]
pub struct UnknownVersion(pub u32);

impl TryFrom<u32> for PayloadVersion {
    type Error = UnknownVersion;

    fn try_from(number: u32) -> Result<PayloadVersion, UnknownVersion> {
        if number == PayloadVersion::CURRENT.0 { Ok(PayloadVersion::CURRENT) } else { Err(UnknownVersion(number)) }
    }
}

impl utoipa::PartialSchema for PayloadVersion {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .enum_values(Some([PayloadVersion::CURRENT.0]))
            .description(Some("The payload's version: its shape changes only under a new version."))
            .into()
    }
}

impl ToSchema for PayloadVersion {}

/// An order as the events about it describe it, as of the event's transaction: everything a
/// message to its customer says, so that a consumer (the e-mails) reads no table of the orders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderSnapshot {
    /// The order number as people see it, e.g. `AG-000017`.
    pub number: String,
    /// When the order was placed.
    pub placed_at: DateTime<Utc>,
    pub customer: CustomerSnapshot,
    /// The lines, in the order they were placed.
    pub lines: Vec<LineSnapshot>,
    /// What the order costs, in minor units (cents): the sum of its lines' totals.
    pub total_minor: i64,
    /// ISO 4217 code of the order's currency, e.g. `EUR`.
    pub currency: String,
    /// Opens the order's status page, `<shop>/orders/<status_token>`, which its e-mails link to.
    /// Absent from events written before status pages existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_token: Option<String>,
}

/// Who placed an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CustomerSnapshot {
    /// The customer's name, as given last.
    pub name: String,
    /// The customer's e-mail address, lower-cased.
    pub email: String,
}

/// One line of an order: the product as it was sold (SKU, name and price are copied at checkout
/// and never change; the description is the product's own).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LineSnapshot {
    pub product_id: ProductId,
    pub sku: String,
    pub name: String,
    /// The product's description; may be empty, and may span lines.
    pub description: String,
    pub quantity: i32,
    /// The price of one unit, in minor units.
    pub unit_price_minor: i64,
    /// `quantity` x `unit_price_minor`.
    pub line_total_minor: i64,
}

/// `OrderPlaced`: checkout committed an order and reserved its stock; it awaits payment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderPlaced {
    pub version: PayloadVersion,
    pub order_id: OrderId,
    /// The order number as people see it (also in `order`).
    pub number: String,
    /// The order's total in minor units (also in `order`).
    pub total_minor: i64,
    /// The order's currency (also in `order`).
    pub currency: String,
    pub order: OrderSnapshot,
}

/// `PaymentSucceeded`: the order's card was charged; the order is paid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PaymentSucceeded {
    pub version: PayloadVersion,
    pub order_id: OrderId,
    pub payment_id: PaymentId,
    /// What was charged, in minor units.
    pub amount_minor: i64,
    pub currency: String,
    pub order: OrderSnapshot,
}

/// `PaymentFailed`: the card was declined; the order stays payable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PaymentFailed {
    pub version: PayloadVersion,
    pub order_id: OrderId,
    pub payment_id: PaymentId,
    /// The gateway's reason, e.g. `card_declined`.
    pub decline_code: String,
}

/// `OrderCancelled`: an unpaid order was cancelled and its stock released.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderCancelled {
    pub version: PayloadVersion,
    pub order_id: OrderId,
    pub cancelled_by: CancelledBy,
    pub order: OrderSnapshot,
}

/// `OrderRefunded`: one refund of an order's payment: the whole order, an amount, or chosen
/// lines. Events stored before refunds came in parts have no `refund_id` nor `refunded_minor`
/// (and were whole refunds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderRefunded {
    pub version: PayloadVersion,
    pub order_id: OrderId,
    pub payment_id: PaymentId,
    /// This refund's amount, in minor units.
    pub amount_minor: i64,
    #[serde(default)]
    pub refund_id: Option<RefundId>,
    /// What has been refunded of the order in all, this refund included.
    #[serde(default)]
    pub refunded_minor: Option<i64>,
    /// The units this refund gave back, line by line; none for an amount or the whole order.
    #[serde(default)]
    pub lines: Vec<RefundedLine>,
    pub order: OrderSnapshot,
}

/// `OrderShipped`: the order (what refunds left of it) left the warehouse.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderShipped {
    pub version: PayloadVersion,
    pub order_id: OrderId,
    pub order: OrderSnapshot,
}

/// `StockLow`: a product's available stock fell to or below its threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StockLow {
    pub version: PayloadVersion,
    pub product_id: ProductId,
    pub sku: String,
    /// Units on hand and not reserved.
    pub available: i32,
    pub threshold: i32,
}

/// An event as modules publish it. Stored as its type (`events.event_type`) and its payload
/// (`events.payload`, the variant's struct as JSON): see [`DomainEvent::payload`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum DomainEvent {
    OrderPlaced(OrderPlaced),
    PaymentSucceeded(PaymentSucceeded),
    PaymentFailed(PaymentFailed),
    OrderCancelled(OrderCancelled),
    OrderRefunded(OrderRefunded),
    OrderShipped(OrderShipped),
    StockLow(StockLow),
}

macro_rules! from_payloads {
    ($($payload:ident),*) => {
        $(impl From<$payload> for DomainEvent {
            fn from(payload: $payload) -> DomainEvent {
                DomainEvent::$payload(payload)
            }
        })*
    };
}

from_payloads!(OrderPlaced, PaymentSucceeded, PaymentFailed, OrderCancelled, OrderRefunded, OrderShipped, StockLow);

/// Units of one order line given back by a refund, as `OrderRefunded` carries them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefundedLine {
    pub product_id: ProductId,
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    /// What these units were refunded, in minor units.
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
            DomainEvent::OrderPlaced(_) => EventType::OrderPlaced,
            DomainEvent::PaymentSucceeded(_) => EventType::PaymentSucceeded,
            DomainEvent::PaymentFailed(_) => EventType::PaymentFailed,
            DomainEvent::OrderCancelled(_) => EventType::OrderCancelled,
            DomainEvent::OrderRefunded(_) => EventType::OrderRefunded,
            DomainEvent::OrderShipped(_) => EventType::OrderShipped,
            DomainEvent::StockLow(_) => EventType::StockLow,
        }
    }

    /// The aggregate the event is about.
    pub fn aggregate(&self) -> Aggregate {
        match self {
            DomainEvent::OrderPlaced(OrderPlaced { order_id, .. })
            | DomainEvent::PaymentSucceeded(PaymentSucceeded { order_id, .. })
            | DomainEvent::PaymentFailed(PaymentFailed { order_id, .. })
            | DomainEvent::OrderCancelled(OrderCancelled { order_id, .. })
            | DomainEvent::OrderRefunded(OrderRefunded { order_id, .. })
            | DomainEvent::OrderShipped(OrderShipped { order_id, .. }) => Aggregate::Order(*order_id),
            DomainEvent::StockLow(StockLow { product_id, .. }) => Aggregate::Product(*product_id),
        }
    }

    /// The order as the event describes it, for the events that carry one.
    pub fn order_snapshot(&self) -> Option<&OrderSnapshot> {
        match self {
            DomainEvent::OrderPlaced(OrderPlaced { order, .. })
            | DomainEvent::PaymentSucceeded(PaymentSucceeded { order, .. })
            | DomainEvent::OrderCancelled(OrderCancelled { order, .. })
            | DomainEvent::OrderRefunded(OrderRefunded { order, .. })
            | DomainEvent::OrderShipped(OrderShipped { order, .. }) => Some(order),
            DomainEvent::PaymentFailed(_) | DomainEvent::StockLow(_) => None,
        }
    }

    /// The payload as stored in `events.payload` (the variant's fields). It is also, byte for
    /// byte, the body of the event's message on a broker: one form, whoever reads it.
    pub fn payload(&self) -> serde_json::Value {
        let mut tagged = serde_json::to_value(self).expect("events serialize");
        tagged["payload"].take()
    }

    /// Rebuilds an event from its stored type and payload. A payload of another version, or
    /// missing a field this version requires, is an error that says which.
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

/// Whether a payload names a version this build reads, looked at before the payload is read, so
/// that a consumer of a broker's messages can tell a payload of another version (refused whole,
/// never half read) from a malformed one. A payload without `version` passes here and fails to
/// read like any payload missing a field.
pub fn check_version(payload: &serde_json::Value) -> Result<(), String> {
    let current = PayloadVersion::CURRENT.number();
    match payload.get("version") {
        None => Ok(()),
        Some(version) if version.as_u64() == Some(u64::from(current)) => Ok(()),
        Some(version) => Err(format!("payload version {version} is not supported (this build reads {current})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> OrderSnapshot {
        OrderSnapshot {
            number: "AG-000017".into(),
            placed_at: "2026-12-06T14:00:00.123456Z".parse().unwrap(),
            customer: CustomerSnapshot { name: "Zoë & Co".into(), email: "zoe@example.com".into() },
            lines: vec![LineSnapshot {
                product_id: ProductId(Uuid::from_u128(9)),
                sku: "MUG-001".into(),
                name: "Mug <large>".into(),
                description: "Stoneware.\nDishwasher-safe.".into(),
                quantity: 2,
                unit_price_minor: 1290,
                line_total_minor: 2580,
            }],
            total_minor: 2580,
            currency: "EUR".into(),
            status_token: Some("6Qf2xX9n".into()),
        }
    }

    #[test]
    fn events_round_trip_through_their_stored_form() {
        let event = DomainEvent::from(StockLow {
            version: PayloadVersion::CURRENT,
            product_id: ProductId(Uuid::nil()),
            sku: "MUG-1".into(),
            available: 2,
            threshold: 5,
        });
        let payload = event.payload();
        assert_eq!(payload["sku"], "MUG-1");
        assert_eq!(payload["version"], 1);
        assert_eq!(DomainEvent::from_stored(event.event_type().as_str(), &payload).unwrap(), event);
        for event_type in EventType::ALL {
            assert_eq!(EventType::parse(event_type.as_str()), Some(event_type));
        }
    }

    #[test]
    fn an_e_mail_event_carries_its_order_and_a_version_in_the_one_stored_form() {
        let event = DomainEvent::from(PaymentSucceeded {
            version: PayloadVersion::CURRENT,
            order_id: OrderId(Uuid::from_u128(1)),
            payment_id: PaymentId(Uuid::from_u128(2)),
            amount_minor: 2580,
            currency: "EUR".into(),
            order: snapshot(),
        });
        assert_eq!(
            event.payload(),
            serde_json::json!({
                "version": 1,
                "order_id": "00000000-0000-0000-0000-000000000001",
                "payment_id": "00000000-0000-0000-0000-000000000002",
                "amount_minor": 2580,
                "currency": "EUR",
                "order": {
                    "number": "AG-000017",
                    "placed_at": "2026-12-06T14:00:00.123456Z",
                    "customer": {"name": "Zoë & Co", "email": "zoe@example.com"},
                    "lines": [{
                        "product_id": "00000000-0000-0000-0000-000000000009",
                        "sku": "MUG-001",
                        "name": "Mug <large>",
                        "description": "Stoneware.\nDishwasher-safe.",
                        "quantity": 2,
                        "unit_price_minor": 1290,
                        "line_total_minor": 2580,
                    }],
                    "total_minor": 2580,
                    "currency": "EUR",
                    "status_token": "6Qf2xX9n",
                },
            })
        );
        let read = DomainEvent::from_stored("PaymentSucceeded", &event.payload()).unwrap();
        assert_eq!(read, event);
        assert_eq!(read.order_snapshot(), Some(&snapshot()));
        assert_eq!(read.aggregate(), Aggregate::Order(OrderId(Uuid::from_u128(1))));
    }

    #[test]
    fn typed_ids_are_stored_as_the_bare_uuid_strings_they_always_were() {
        let event = DomainEvent::from(OrderRefunded {
            version: PayloadVersion::CURRENT,
            order_id: OrderId(Uuid::from_u128(1)),
            payment_id: PaymentId(Uuid::from_u128(2)),
            amount_minor: 500,
            refund_id: Some(RefundId(Uuid::from_u128(3))),
            refunded_minor: Some(700),
            lines: Vec::new(),
            order: snapshot(),
        });
        let mut payload = event.payload();
        payload.as_object_mut().unwrap().remove("order");
        assert_eq!(
            payload.to_string(),
            r#"{"amount_minor":500,"lines":[],"order_id":"00000000-0000-0000-0000-000000000001","payment_id":"00000000-0000-0000-0000-000000000002","refund_id":"00000000-0000-0000-0000-000000000003","refunded_minor":700,"version":1}"#
        );
        assert_eq!(event.aggregate(), Aggregate::Order(OrderId(Uuid::from_u128(1))));
        let aggregate = event.aggregate();
        assert_eq!(Aggregate::from_stored(aggregate.kind(), aggregate.uuid()), Some(aggregate));
    }

    #[test]
    fn a_refund_event_stored_before_refunds_came_in_parts_still_reads() {
        let stored = serde_json::json!({
            "version": 1,
            "amount_minor": 500,
            "order_id": "00000000-0000-0000-0000-000000000001",
            "payment_id": "00000000-0000-0000-0000-000000000002",
            "order": serde_json::to_value(snapshot()).unwrap(),
        });
        let event = DomainEvent::from_stored("OrderRefunded", &stored).unwrap();
        assert_eq!(
            event,
            DomainEvent::from(OrderRefunded {
                version: PayloadVersion::CURRENT,
                order_id: OrderId(Uuid::from_u128(1)),
                payment_id: PaymentId(Uuid::from_u128(2)),
                amount_minor: 500,
                refund_id: None,
                refunded_minor: None,
                lines: Vec::new(),
                order: snapshot(),
            })
        );
    }

    #[test]
    fn the_payload_schemas_name_the_fields_the_payloads_carry() {
        use std::collections::BTreeSet;
        use utoipa::PartialSchema;
        let event = OrderRefunded {
            version: PayloadVersion::CURRENT,
            order_id: OrderId(Uuid::from_u128(1)),
            payment_id: PaymentId(Uuid::from_u128(2)),
            amount_minor: 500,
            refund_id: None,
            refunded_minor: None,
            lines: Vec::new(),
            order: snapshot(),
        };
        let schema = serde_json::to_value(OrderRefunded::schema()).unwrap();
        let properties: BTreeSet<&String> = schema["properties"].as_object().unwrap().keys().collect();
        let payload = DomainEvent::from(event).payload();
        assert_eq!(properties, payload.as_object().unwrap().keys().collect());
        // What events stored before refunds came in parts lack is optional; the order is not.
        let required: BTreeSet<&str> =
            schema["required"].as_array().unwrap().iter().map(|name| name.as_str().unwrap()).collect();
        assert_eq!(required, BTreeSet::from(["version", "order_id", "payment_id", "amount_minor", "order"]));
        let version = serde_json::to_value(PayloadVersion::schema()).unwrap();
        assert_eq!(version["enum"], serde_json::json!([1]));
        let snapshot = serde_json::to_value(OrderSnapshot::schema()).unwrap();
        assert_eq!(snapshot["properties"]["placed_at"]["format"], "date-time");
    }

    #[test]
    fn a_payload_of_another_version_or_without_its_order_is_refused_saying_why() {
        let shipped = DomainEvent::from(OrderShipped {
            version: PayloadVersion::CURRENT,
            order_id: OrderId(Uuid::from_u128(1)),
            order: snapshot(),
        })
        .payload();
        let refusal = |change: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>)| {
            let mut payload = shipped.clone();
            change(payload.as_object_mut().unwrap());
            DomainEvent::from_stored("OrderShipped", &payload).unwrap_err().to_string()
        };
        assert!(
            refusal(&|payload| {
                payload.insert("version".into(), 99.into());
            })
            .contains("payload version 99 is not one this build reads (it reads version 1)")
        );
        assert!(
            refusal(&|payload| {
                payload.remove("version");
            })
            .contains("missing field `version`")
        );
        assert!(
            refusal(&|payload| {
                payload.remove("order");
            })
            .contains("missing field `order`")
        );
        assert!(DomainEvent::from_stored("OrderShipped", &shipped).is_ok());
    }

    #[test]
    fn version_1_is_read_and_any_other_refused() {
        assert_eq!(check_version(&serde_json::json!({"version": 1, "order_id": "x"})), Ok(()));
        // Without a version a payload is not refused as another version's: it fails to read.
        assert_eq!(check_version(&serde_json::json!({"order_id": "x"})), Ok(()));
        for version in [serde_json::json!(99), serde_json::json!(0), serde_json::json!("1"), serde_json::json!(1.5)] {
            let refused = check_version(&serde_json::json!({ "version": version })).unwrap_err();
            assert!(refused.starts_with(&format!("payload version {version} is not supported")), "{refused}");
        }
    }
}
