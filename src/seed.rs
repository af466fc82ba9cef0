//! Demo data.

use crate::config::Config;
use crate::db::Db;
use crate::error::AppError;

pub struct SeedPlan {
    pub products: u32,
    pub customers: u32,
    pub orders: u32,
}

pub fn seed_demo_if_empty(_db: &Db, _config: &Config) -> Result<(), AppError> {
    Ok(())
}

pub fn seed(_db: &Db, _config: &Config, _plan: &SeedPlan) -> Result<String, AppError> {
    Ok(String::new())
}
