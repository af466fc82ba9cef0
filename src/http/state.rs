//! The state every handler can reach.

use std::sync::Arc;

use crate::catalog::cache::CatalogCache;
use crate::config::Config;
use crate::db::Db;
use crate::experiment::RunLimit;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    /// The OpenAPI document, rendered once at start-up.
    pub openapi: Arc<str>,
    /// This process's copy of the public catalog answers.
    pub catalog: Arc<CatalogCache>,
    /// The checkout races this process runs at once, at most.
    pub experiments: Arc<RunLimit>,
}
