//! The HTTP pieces every module's handlers share: the application state, the admin bearer token,
//! health, the OpenAPI document and the static files. Routes are wired in `crate::startup`.

pub mod admin_token;
pub mod asyncapi;
pub mod client;
pub mod hardening;
pub mod health;
pub mod methods;
pub mod openapi;
pub mod problems;
pub mod state;
pub mod static_files;
pub mod validators;

pub use state::AppState;
