//! The grid's pages and the product pages' data, kept in each process as the catalog cache
//! keeps the API's answers, and forgotten with it: an entry is used only while the catalog's
//! generation it was loaded in is current (every catalog change any process commits moves it on)
//! and for at most the availability bound, since stock changes tell the catalog nothing.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use super::pages::GridView;
use super::store::{GridQuery, ProductPage};
use crate::catalog::cache::CatalogCache;
use crate::error::AppError;

pub struct ShopCache {
    grids: Cache<GridQuery, (u64, Arc<GridView>)>,
    products: Cache<String, (u64, Arc<Option<ProductPage>>)>,
    enabled: bool,
    /// The longest an entry is used: how stale the availability shown may be.
    pub max_age: Duration,
}

impl ShopCache {
    pub fn new(capacity: u64, max_age: Duration) -> Arc<ShopCache> {
        fn build<K: Hash + Eq + Send + Sync + 'static, V: Clone + Send + Sync + 'static>(
            capacity: u64,
            max_age: Duration,
        ) -> Cache<K, V> {
            Cache::builder().max_capacity(capacity.max(1)).time_to_live(max_age).build()
        }
        Arc::new(ShopCache {
            grids: build(capacity, max_age),
            products: build(capacity, max_age),
            enabled: capacity > 0,
            max_age,
        })
    }

    pub async fn grid<F>(
        &self,
        catalog: &CatalogCache,
        key: GridQuery,
        load: impl FnOnce() -> F,
    ) -> Result<Arc<GridView>, AppError>
    where
        F: Future<Output = Result<GridView, AppError>>,
    {
        self.get_or_load(&self.grids, catalog, key, load).await
    }

    /// A product's page data by SKU (`None`: no such product).
    pub async fn product<F>(
        &self,
        catalog: &CatalogCache,
        sku: String,
        load: impl FnOnce() -> F,
    ) -> Result<Arc<Option<ProductPage>>, AppError>
    where
        F: Future<Output = Result<Option<ProductPage>, AppError>>,
    {
        self.get_or_load(&self.products, catalog, sku, load).await
    }

    async fn get_or_load<K, V, F>(
        &self,
        cache: &Cache<K, (u64, Arc<V>)>,
        catalog: &CatalogCache,
        key: K,
        load: impl FnOnce() -> F,
    ) -> Result<Arc<V>, AppError>
    where
        K: Hash + Eq + Send + Sync + 'static,
        V: Send + Sync + 'static,
        F: Future<Output = Result<V, AppError>>,
    {
        // Read before loading: a change committed while loading moves the generation on, and
        // what was loaded is then never used again.
        let generation = catalog.generation().filter(|_| self.enabled);
        if let Some(generation) = generation
            && let Some((loaded_in, value)) = cache.get(&key)
            && loaded_in == generation
        {
            return Ok(value);
        }
        let value = Arc::new(load().await?);
        if let Some(generation) = generation {
            cache.insert(key, (generation, value.clone()));
        }
        Ok(value)
    }
}
