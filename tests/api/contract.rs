//! The event contract: `GET /api/asyncapi.json`, and every event the application stores (the
//! body of the message the relay publishes) checked against the payload schema the document
//! gives its type. Every test's database is checked when it is dropped ([`TestDatabase`]), so
//! the whole test run is held to the contract, not one scenario.
//!
//! [`TestDatabase`]: crate::helpers::TestDatabase

use std::collections::HashMap;
use std::sync::OnceLock;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Text};
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// One validator per event type, from the document the application serves.
fn validators() -> &'static HashMap<String, jsonschema::Validator> {
    static VALIDATORS: OnceLock<HashMap<String, jsonschema::Validator>> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        let document = agora::http::asyncapi::document("agora.events");
        let schemas = document["components"]["schemas"].clone();
        document["components"]["messages"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(event_type, message)| {
                let root = json!({ "components": { "schemas": schemas }, "$ref": message["payload"]["$ref"] });
                let validator = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&root)
                    .unwrap_or_else(|error| panic!("the schema of {event_type} does not compile: {error}"));
                (event_type.clone(), validator)
            })
            .collect()
    })
}

/// Why `payload` breaks the contract of `event_type`, if it does.
pub fn contract_violations(event_type: &str, payload: &Value) -> Vec<String> {
    match validators().get(event_type) {
        None => vec![format!("the document has no message {event_type}")],
        Some(validator) => {
            validator.iter_errors(payload).map(|error| format!("{} at {}", error, error.instance_path())).collect()
        }
    }
}

#[derive(QueryableByName)]
struct StoredEvent {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Jsonb)]
    payload: Value,
}

/// Panics, naming each, if a stored event breaks the contract of its type.
pub fn assert_events_match_the_asyncapi_document(conn: &mut PgConnection) {
    // A database a test left without the outbox's tables has nothing to check.
    let Ok(events) =
        diesel::sql_query("SELECT id, event_type, payload FROM events ORDER BY id").load::<StoredEvent>(conn)
    else {
        return;
    };
    let broken: Vec<String> = events
        .iter()
        .flat_map(|event| {
            contract_violations(&event.event_type, &event.payload)
                .into_iter()
                .map(move |violation| format!("event {} ({}): {violation}", event.id, event.event_type))
        })
        .collect();
    assert!(broken.is_empty(), "stored events break the AsyncAPI contract:\n{}", broken.join("\n"));
}

#[test]
fn the_asyncapi_document_names_the_exchange_every_routing_key_and_each_payloads_schema() {
    let app = TestApp::spawn();
    let response = app.get("/api/asyncapi.json");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let document = response.json();
    assert_eq!(document["asyncapi"], "3.0.0");
    let addresses: Vec<&str> = document["channels"]
        .as_object()
        .unwrap()
        .values()
        .map(|channel| channel["address"].as_str().unwrap())
        .collect();
    for key in [
        "order.OrderPlaced",
        "order.PaymentSucceeded",
        "order.PaymentFailed",
        "order.OrderCancelled",
        "order.OrderRefunded",
        "order.OrderShipped",
        "product.StockLow",
    ] {
        assert!(addresses.contains(&key), "{key} in {addresses:?}");
    }
    let exchange = &document["channels"]["OrderPlaced"]["bindings"]["amqp"]["exchange"];
    assert_eq!((exchange["name"].as_str(), exchange["type"].as_str()), (Some("agora.events"), Some("topic")));
    let placed = &document["components"]["schemas"]["OrderPlaced"];
    let required: Vec<&str> =
        placed["required"].as_array().unwrap().iter().map(|field| field.as_str().unwrap()).collect();
    assert!(required.contains(&"version") && required.contains(&"order"), "{required:?}");
    assert_eq!(document["components"]["schemas"]["PayloadVersion"]["enum"], json!([1]));
    assert_eq!(app.request("HEAD", "/api/asyncapi.json", &[]).status, 200);
    assert_eq!(app.request("DELETE", "/api/asyncapi.json", &[]).status, 405);
}

#[test]
fn the_document_names_the_configured_exchange() {
    let app = TestApp::spawn_with(|config| {
        let with_broker = agora::config::Config::from_lookup(|name| match name {
            "AGORA_BROKER_URL" => Some("amqp://guest:guest@127.0.0.1:5672/%2f".into()),
            "AGORA_BROKER_EXCHANGE" => Some("shop.events".into()),
            _ => None,
        })
        .unwrap();
        config.broker = with_broker.broker;
    });
    let document = app.get("/api/asyncapi.json").json();
    assert_eq!(document["channels"]["StockLow"]["bindings"]["amqp"]["exchange"]["name"], "shop.events");
}

#[test]
fn a_payload_that_breaks_the_contract_is_caught() {
    // The check every test's events go through fails where it should: a missing field, a
    // version this build does not write, a wrong type, an unknown event type.
    let app = TestApp::spawn();
    let product = app.product_with_stock("CONTRACT-1", 1250, 10);
    let order = app.placed_order("contract@example.com", &[(&product, 2)]);
    let mut conn = app.connect();
    let stored: StoredEvent = diesel::sql_query(
        "SELECT id, event_type, payload FROM events WHERE event_type = 'OrderPlaced' AND aggregate_id = $1::uuid",
    )
    .bind::<Text, _>(order["id"].as_str().unwrap())
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(contract_violations("OrderPlaced", &stored.payload), Vec::<String>::new());

    let mut missing = stored.payload.clone();
    missing["order"].as_object_mut().unwrap().remove("customer");
    assert!(contract_violations("OrderPlaced", &missing).iter().any(|violation| violation.contains("customer")));
    let mut future = stored.payload.clone();
    future["version"] = json!(99);
    assert!(!contract_violations("OrderPlaced", &future).is_empty());
    let mut wrong = stored.payload.clone();
    wrong["order"]["lines"][0]["quantity"] = json!("two");
    assert!(!contract_violations("OrderPlaced", &wrong).is_empty());
    assert!(!contract_violations("OrderVanished", &stored.payload).is_empty());
}
