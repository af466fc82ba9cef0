//! The state every handler can reach.

use std::sync::Arc;

use actix_web::cookie::Key;

use crate::catalog::cache::CatalogCache;
use crate::config::Config;
use crate::db::Db;
use crate::experiment::RunLimit;
use crate::outbox::relay::BrokerHealth;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    /// The OpenAPI document, rendered once at start-up.
    pub openapi: Arc<str>,
    /// The AsyncAPI document of the events on the broker, rendered once at start-up.
    pub asyncapi: Arc<str>,
    /// This process's copy of the public catalog answers.
    pub catalog: Arc<CatalogCache>,
    /// This process's copy of the shop's grid and product pages' data.
    pub shop: Arc<crate::storefront::ShopCache>,
    pub keys: Arc<Keys>,
    /// The checkout races this process runs at once, at most.
    pub experiments: Arc<RunLimit>,
    /// The link to the broker, when this process relays events to one.
    pub broker: Option<BrokerHealth>,
    /// Where the e-mails are: this database, or the notifications service.
    pub mailroom: crate::notifications::Mailroom,
}

/// What the server signs with: the same in every process on one database.
pub struct Keys {
    /// Signs the admin session cookie and the sign-in form's CSRF cookie.
    pub cookies: Key,
    pub cursors: crate::pagination::CursorKey,
}
