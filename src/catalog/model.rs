//! Catalog rows, the values they are built from, and the rules those values obey.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::error::FieldError;
use crate::ids::ProductId;

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

pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
pub const DEFAULT_LOW_STOCK_THRESHOLD: i32 = 5;

/// What a client may send to create a product, before validation.
#[derive(Debug, Default)]
pub struct ProductDraft {
    pub sku: String,
    pub name: String,
    pub description: Option<String>,
    pub price_minor: i64,
    pub low_stock_threshold: Option<i32>,
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
            parse_threshold(self.low_stock_threshold.unwrap_or(DEFAULT_LOW_STOCK_THRESHOLD)),
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
    pub low_stock_threshold: Option<i32>,
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

/// SKUs: 3 to 32 upper-case letters, digits and dashes (the database checks the same).
pub fn parse_sku(sku: &str) -> Result<String, String> {
    let valid =
        (3..=32).contains(&sku.len()) && sku.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
    if valid { Ok(sku.to_owned()) } else { Err("must be 3 to 32 upper-case letters, digits or dashes".into()) }
}

pub fn parse_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    match name.chars().count() {
        0 => Err("must not be empty".into()),
        1..=200 => Ok(name.to_owned()),
        _ => Err("must be at most 200 characters".into()),
    }
}

fn parse_description(description: &str) -> Result<String, String> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!("must be at most {MAX_DESCRIPTION_CHARS} characters"));
    }
    Ok(description.trim().to_owned())
}

pub fn parse_price(price_minor: i64) -> Result<i64, String> {
    if price_minor > 0 { Ok(price_minor) } else { Err("must be greater than 0 (minor units, e.g. cents)".into()) }
}

fn parse_threshold(threshold: i32) -> Result<i32, String> {
    if threshold >= 0 { Ok(threshold) } else { Err("must not be negative".into()) }
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
