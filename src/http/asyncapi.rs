//! The AsyncAPI 3.0 document of the events on the broker: the exchange, one channel per routing
//! key, and each event's payload schema. The schemas come from the same Rust types that
//! serialize the events (`utoipa::ToSchema` on `crate::events`), as the OpenAPI document's come
//! from the handlers, so a payload cannot change shape without its contract changing with it.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use super::state::AppState;
use crate::events::{self, EventType};

/// AMQP bindings of the AsyncAPI bindings specification this document follows.
const AMQP_BINDING_VERSION: &str = "0.3.0";

type Schemas = Vec<(String, RefOr<Schema>)>;

/// The payload schema of `T` and every schema it refers to, into `schemas`; a reference to it.
fn payload<T: ToSchema>(schemas: &mut Schemas) -> Value {
    T::schemas(schemas);
    schemas.push((T::name().into_owned(), T::schema()));
    json!({ "$ref": format!("#/components/schemas/{}", T::name()) })
}

/// What each event says, and the reference to its payload schema. The match is exhaustive: an
/// event type cannot be added without its contract.
fn event_contract(event_type: EventType, schemas: &mut Schemas) -> (&'static str, Value) {
    match event_type {
        EventType::OrderPlaced => (
            "Checkout committed an order and reserved its stock; the order awaits payment.",
            payload::<events::OrderPlaced>(schemas),
        ),
        EventType::PaymentSucceeded => {
            ("The order's card was charged: the order is paid.", payload::<events::PaymentSucceeded>(schemas))
        }
        EventType::PaymentFailed => {
            ("A card was declined; the order can still be paid.", payload::<events::PaymentFailed>(schemas))
        }
        EventType::OrderCancelled => {
            ("An unpaid order was cancelled and its stock released.", payload::<events::OrderCancelled>(schemas))
        }
        EventType::OrderRefunded => (
            "One refund of an order's payment: the whole order, an amount, or chosen lines.",
            payload::<events::OrderRefunded>(schemas),
        ),
        EventType::OrderShipped => ("The order left the warehouse.", payload::<events::OrderShipped>(schemas)),
        EventType::StockLow => (
            "A product's available stock fell to or below its low-stock threshold.",
            payload::<events::StockLow>(schemas),
        ),
    }
}

/// The document for events published to `exchange`.
pub fn document(exchange: &str) -> Value {
    let mut schemas = Schemas::new();
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for event_type in EventType::ALL {
        let name = event_type.as_str();
        let (summary, payload) = event_contract(event_type, &mut schemas);
        let routing_key = event_type.routing_key();
        messages.insert(
            name.to_owned(),
            json!({
                "name": name,
                "title": name,
                "summary": summary,
                "contentType": "application/json",
                "headers": { "$ref": "#/components/schemas/MessageHeaders" },
                "payload": payload,
                "bindings": { "amqp": { "messageType": name, "bindingVersion": AMQP_BINDING_VERSION } },
            }),
        );
        channels.insert(
            name.to_owned(),
            json!({
                "address": routing_key,
                "title": format!("{name} events"),
                "description": format!(
                    "Messages published to the topic exchange `{exchange}` with the routing key `{routing_key}`."
                ),
                "messages": { name: { "$ref": format!("#/components/messages/{name}") } },
                "bindings": { "amqp": {
                    "is": "routingKey",
                    "exchange": { "name": exchange, "type": "topic", "durable": true, "autoDelete": false },
                    "bindingVersion": AMQP_BINDING_VERSION,
                } },
            }),
        );
        operations.insert(
            format!("publish{name}"),
            json!({
                "action": "send",
                "title": format!("Agora publishes {name}"),
                "description": "The outbox's relay publishes each event once it is committed, at least once, \
                                in commit order for one aggregate, as a persistent message confirmed by the broker.",
                "channel": { "$ref": format!("#/channels/{name}") },
                "messages": [{ "$ref": format!("#/channels/{name}/messages/{name}") }],
                "bindings": { "amqp": {
                    "deliveryMode": 2,
                    "mandatory": true,
                    "timestamp": true,
                    "bindingVersion": AMQP_BINDING_VERSION,
                } },
            }),
        );
    }
    let mut components_schemas: Map<String, Value> = schemas
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(schema).expect("schemas serialize")))
        .collect();
    components_schemas.insert("MessageHeaders".to_owned(), message_headers());
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Agora events",
            "version": events::PayloadVersion::CURRENT.number().to_string(),
            "description": "The events Agora's modules publish through the transactional outbox, relayed to \
                            RabbitMQ when AGORA_BROKER_URL is set. Each message is persistent; its AMQP \
                            `message_id` is the event's id in the outbox (consumers drop duplicates by it), \
                            `type` the event type, `timestamp` when the event was committed, and its body the \
                            payload below, which carries a `version`.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "{host}",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The broker AGORA_BROKER_URL names.",
                "variables": { "host": { "default": "127.0.0.1:5672", "description": "host:port of the broker" } },
            }
        },
        "channels": channels,
        "operations": operations,
        "components": { "messages": messages, "schemas": components_schemas },
    })
}

/// The application headers every message carries besides the AMQP properties.
fn message_headers() -> Value {
    json!({
        "type": "object",
        "description": "What the event is about.",
        "required": ["aggregate_type", "aggregate_id"],
        "properties": {
            "aggregate_type": { "type": "string", "enum": ["order", "product"], "description": "The kind of aggregate." },
            "aggregate_id": { "type": "string", "format": "uuid", "description": "The id of the order or product." },
        },
    })
}

/// `GET /api/asyncapi.json`.
pub async fn serve_document(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(state.asyncapi.to_string())
}

pub fn rendered(exchange: &str) -> Arc<str> {
    document(exchange).to_string().into()
}
