//! Agora: an e-commerce modular monolith over one shared PostgreSQL database.
//!
//! Five business modules (`catalog`, `inventory`, `orders`, `payments`, `notifications`) and the
//! shop's pages for shoppers (`storefront`) share one schema. The shared infrastructure around them lives beside them: configuration, database
//! access, errors, HTTP wiring, the admin shell, the event outbox and idempotency keys.

pub mod admin;
pub mod architecture;
pub mod background;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod error;
pub mod events;
pub mod experiment;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod input;
pub mod inventory;
pub mod kernel;
pub mod lifecycle;
pub mod money;
pub mod notifications;
pub mod orders;
pub mod outbox;
pub mod pagination;
pub mod payments;
pub mod schema;
pub mod seed;
pub mod startup;
pub mod storefront;
pub mod text_enum;
