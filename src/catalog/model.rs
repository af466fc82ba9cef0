//! Catalog rows, the values they are built from, and the rules those values obey.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::error::FieldError;
use crate::ids::ProductId;
use crate::input::{Pattern, Text, Whole};

#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = crate::schema::products)]
pub struct Product {
    pub id: ProductId,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price_minor: i64,
    pub active: bool,
    pub low_stock_threshold: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = crate::schema::products)]
pub struct NewProduct {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price_minor: i64,
    pub low_stock_threshold: i32,
}

/// A partial update; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = crate::schema::products)]
pub struct ProductChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price_minor: Option<i64>,
    pub active: Option<bool>,
    pub low_stock_threshold: Option<i32>,
}

impl ProductChanges {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.price_minor.is_none()
            && self.active.is_none()
            && self.low_stock_threshold.is_none()
    }
}

pub const DEFAULT_LOW_STOCK_THRESHOLD: i32 = 5;

/// 3 to 32 upper-case letters, digits and dashes (the database checks the same).
pub static SKU: Pattern = Pattern::new("^[A-Z0-9-]{3,32}$", 32, "must be 3 to 32 upper-case letters, digits or dashes");
pub const NAME: Text = Text::line(200);
pub const DESCRIPTION: Text = Text::lines(10_000).optional();
/// Up to 10 million in a two-decimal currency: with at most 50 lines of 1,000 units, an order's
/// total stays below 2^53, and any sum of orders is computed as `numeric` anyway.
pub const PRICE_MINOR: Whole = Whole::between(1, 1_000_000_000);
pub const LOW_STOCK_THRESHOLD: Whole = Whole::between(0, 1_000_000);

/// What a client may send to create a product, before validation.
#[derive(Debug, Default)]
pub struct ProductDraft {
    pub sku: String,
    pub name: String,
    pub description: Option<String>,
    pub price_minor: i64,
    pub low_stock_threshold: Option<i64>,
}

impl ProductDraft {
    /// Checks every field and reports every problem at once.
    pub fn validate(self) -> Result<NewProduct, Vec<FieldError>> {
        let mut errors = Vec::new();
        let sku = check(&mut errors, "sku", parse_sku(&self.sku));
        let name = check(&mut errors, "name", parse_name(&self.name));
        let description =
            check(&mut errors, "description", parse_description(self.description.as_deref().unwrap_or("")));
        let price_minor = check(&mut errors, "price_minor", parse_price(self.price_minor));
        let low_stock_threshold = check(
            &mut errors,
            "low_stock_threshold",
            parse_threshold(self.low_stock_threshold.unwrap_or(i64::from(DEFAULT_LOW_STOCK_THRESHOLD))),
        );
        match (sku, name, description, price_minor, low_stock_threshold) {
            (Some(sku), Some(name), Some(description), Some(price_minor), Some(low_stock_threshold))
                if errors.is_empty() =>
            {
                Ok(NewProduct { sku, name, description, price_minor, low_stock_threshold })
            }
            _ => Err(errors),
        }
    }
}

/// What a client may send to change a product, before validation.
#[derive(Debug, Default)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price_minor: Option<i64>,
    pub active: Option<bool>,
    pub low_stock_threshold: Option<i64>,
}

impl ProductPatch {
    pub fn validate(self) -> Result<ProductChanges, Vec<FieldError>> {
        let mut errors = Vec::new();
        let changes = ProductChanges {
            name: self.name.and_then(|name| check(&mut errors, "name", parse_name(&name))),
            description: self.description.and_then(|text| check(&mut errors, "description", parse_description(&text))),
            price_minor: self.price_minor.and_then(|price| check(&mut errors, "price_minor", parse_price(price))),
            active: self.active,
            low_stock_threshold: self
                .low_stock_threshold
                .and_then(|threshold| check(&mut errors, "low_stock_threshold", parse_threshold(threshold))),
        };
        if errors.is_empty() { Ok(changes) } else { Err(errors) }
    }
}

fn check<T>(errors: &mut Vec<FieldError>, field: &str, result: Result<T, String>) -> Option<T> {
    result.map_err(|message| errors.push(FieldError::new(field, message))).ok()
}

pub fn parse_sku(sku: &str) -> Result<String, String> {
    SKU.check(sku).map(str::to_owned)
}

pub fn parse_name(name: &str) -> Result<String, String> {
    NAME.check(name).map(str::to_owned)
}

pub fn parse_description(description: &str) -> Result<String, String> {
    DESCRIPTION.check(description).map(str::to_owned)
}

pub fn parse_price(price_minor: i64) -> Result<i64, String> {
    PRICE_MINOR.check(price_minor)
}

pub fn parse_threshold(threshold: i64) -> Result<i32, String> {
    LOW_STOCK_THRESHOLD.check(threshold).map(|threshold| threshold as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_are_upper_case_letters_digits_and_dashes() {
        assert!(parse_sku("MUG-001").is_ok());
        assert!(parse_sku("AB").is_err());
        assert!(parse_sku("mug-001").is_err());
        assert!(parse_sku("MUG 001").is_err());
        assert!(parse_sku(&"A".repeat(33)).is_err());
        assert!(parse_sku(&"A".repeat(32)).is_ok());
    }

    #[test]
    fn a_draft_reports_every_invalid_field() {
        let errors = ProductDraft { sku: "x".into(), name: " ".into(), price_minor: -5, ..Default::default() }
            .validate()
            .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(fields, vec!["sku", "name", "price_minor"]);
    }

    #[test]
    fn a_valid_draft_gets_defaults() {
        let product =
            ProductDraft { sku: "MUG-1".into(), name: " Mug ".into(), price_minor: 1200, ..Default::default() }
                .validate()
                .unwrap();
        assert_eq!(product.name, "Mug");
        assert_eq!(product.description, "");
        assert_eq!(product.low_stock_threshold, DEFAULT_LOW_STOCK_THRESHOLD);
    }
}
