//! Catalog rows, the values they are built from, and the rules those values obey.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::error::FieldError;
use crate::ids::{CategoryId, ProductId};
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
    pub category_id: Option<CategoryId>,
}

/// A product with the category it sits in, as the API and the admin pages show it.
#[derive(Clone, Debug)]
pub struct ProductWithCategory {
    pub product: Product,
    pub category: Option<Category>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = crate::schema::products)]
pub struct NewProduct {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price_minor: i64,
    pub low_stock_threshold: i32,
    pub category_id: Option<CategoryId>,
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
    /// `Some(None)` takes the product out of its category.
    pub category_id: Option<Option<CategoryId>>,
}

impl ProductChanges {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.price_minor.is_none()
            && self.active.is_none()
            && self.low_stock_threshold.is_none()
            && self.category_id.is_none()
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

#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = crate::schema::categories)]
pub struct Category {
    pub id: CategoryId,
    pub slug: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = crate::schema::categories)]
pub struct NewCategory {
    pub slug: String,
    pub name: String,
}

/// Lower-case words of letters and digits joined by single dashes, as in a link: `desk-lamps`
/// (the database checks the same).
pub static SLUG: Pattern = Pattern::new(
    "^[a-z0-9]+(-[a-z0-9]+)*$",
    40,
    "must be at most 40 lower-case letters or digits, in words joined by single dashes",
);
pub const CATEGORY_NAME: Text = Text::line(80);

/// What a client may send to create a category, before validation.
#[derive(Debug, Default)]
pub struct CategoryDraft {
    pub slug: String,
    pub name: String,
}

impl CategoryDraft {
    /// Checks both fields and reports every problem at once.
    pub fn validate(self) -> Result<NewCategory, Vec<FieldError>> {
        let mut errors = Vec::new();
        let slug = check(&mut errors, "slug", parse_slug(&self.slug));
        let name = check(&mut errors, "name", parse_category_name(&self.name));
        match (slug, name) {
            (Some(slug), Some(name)) => Ok(NewCategory { slug, name }),
            _ => Err(errors),
        }
    }
}

/// What a client may send to create a product, before validation.
#[derive(Debug, Default)]
pub struct ProductDraft {
    pub sku: String,
    pub name: String,
    pub description: Option<String>,
    pub price_minor: i64,
    pub low_stock_threshold: Option<i64>,
    /// The slug of the category to put it in; `None` for none.
    pub category: Option<String>,
}

impl ProductDraft {
    /// Checks every field and reports every problem at once. A well-formed category slug is
    /// looked up with `find_category`, the one check that needs the database.
    pub fn validate(
        self,
        find_category: impl FnOnce(&str) -> QueryResult<Option<CategoryId>>,
    ) -> QueryResult<Result<NewProduct, Vec<FieldError>>> {
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
        let category_id = match self.category {
            None => Some(None),
            Some(slug) => check(&mut errors, "category", parse_category(&slug, find_category)?).map(Some),
        };
        match (sku, name, description, price_minor, low_stock_threshold, category_id) {
            (
                Some(sku),
                Some(name),
                Some(description),
                Some(price_minor),
                Some(low_stock_threshold),
                Some(category_id),
            ) if errors.is_empty() => {
                Ok(Ok(NewProduct { sku, name, description, price_minor, low_stock_threshold, category_id }))
            }
            _ => Ok(Err(errors)),
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
    /// `Some(None)` takes the product out of its category; a slug puts it in that one.
    pub category: Option<Option<String>>,
}

impl ProductPatch {
    /// Checks every field and reports every problem at once; a category slug is looked up with
    /// `find_category`, as for [`ProductDraft::validate`].
    pub fn validate(
        self,
        find_category: impl FnOnce(&str) -> QueryResult<Option<CategoryId>>,
    ) -> QueryResult<Result<ProductChanges, Vec<FieldError>>> {
        let mut errors = Vec::new();
        let changes = ProductChanges {
            name: self.name.and_then(|name| check(&mut errors, "name", parse_name(&name))),
            description: self.description.and_then(|text| check(&mut errors, "description", parse_description(&text))),
            price_minor: self.price_minor.and_then(|price| check(&mut errors, "price_minor", parse_price(price))),
            active: self.active,
            low_stock_threshold: self
                .low_stock_threshold
                .and_then(|threshold| check(&mut errors, "low_stock_threshold", parse_threshold(threshold))),
            category_id: match self.category {
                None => None,
                Some(None) => Some(None),
                Some(Some(slug)) => check(&mut errors, "category", parse_category(&slug, find_category)?).map(Some),
            },
        };
        Ok(if errors.is_empty() { Ok(changes) } else { Err(errors) })
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

pub fn parse_slug(slug: &str) -> Result<String, String> {
    SLUG.check(slug).map(str::to_owned)
}

pub fn parse_category_name(name: &str) -> Result<String, String> {
    CATEGORY_NAME.check(name).map(str::to_owned)
}

/// The category a product is to be put in: only a well-formed slug is looked up.
fn parse_category(
    slug: &str,
    find_category: impl FnOnce(&str) -> QueryResult<Option<CategoryId>>,
) -> QueryResult<Result<CategoryId, String>> {
    let slug = match parse_slug(slug) {
        Ok(slug) => slug,
        Err(message) => return Ok(Err(message)),
    };
    Ok(find_category(&slug)?.ok_or_else(|| format!("no category has the slug {slug}")))
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

    /// A catalog holding one category, `kitchen`.
    fn kitchen_only(slug: &str) -> QueryResult<Option<CategoryId>> {
        Ok((slug == "kitchen").then_some(kitchen()))
    }

    fn kitchen() -> CategoryId {
        CategoryId("0b5f7a53-3f5c-4a8e-9d53-6c2b1f0c9e11".parse().unwrap())
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|error| error.field.as_str()).collect()
    }

    #[test]
    fn a_draft_reports_every_invalid_field() {
        let errors = ProductDraft {
            sku: "x".into(),
            name: " ".into(),
            price_minor: -5,
            category: Some("garden".into()),
            ..Default::default()
        }
        .validate(kitchen_only)
        .unwrap()
        .unwrap_err();
        assert_eq!(fields(&errors), vec!["sku", "name", "price_minor", "category"]);
    }

    #[test]
    fn a_valid_draft_gets_defaults() {
        let product =
            ProductDraft { sku: "MUG-1".into(), name: " Mug ".into(), price_minor: 1200, ..Default::default() }
                .validate(kitchen_only)
                .unwrap()
                .unwrap();
        assert_eq!(product.name, "Mug");
        assert_eq!(product.description, "");
        assert_eq!(product.low_stock_threshold, DEFAULT_LOW_STOCK_THRESHOLD);
        assert_eq!(product.category_id, None);
    }

    #[test]
    fn slugs_are_lower_case_words_joined_by_single_dashes() {
        for slug in ["kitchen", "desk-lamps", "a", "2026", "a-b-c", &"a".repeat(40)] {
            assert_eq!(parse_slug(slug).as_deref(), Ok(slug), "{slug}");
        }
        for slug in [
            "",
            "Kitchen",
            "desk lamps",
            "-desk",
            "desk-",
            "desk--lamps",
            "desk_lamps",
            "küche",
            "desk\n",
            &"a".repeat(41),
        ] {
            assert!(parse_slug(slug).is_err(), "{slug:?}");
        }
    }

    #[test]
    fn category_names_are_one_line_of_at_most_80_characters() {
        assert_eq!(parse_category_name(" Desk lamps ").as_deref(), Ok("Desk lamps"));
        assert!(parse_category_name(" ").is_err());
        assert!(parse_category_name("Desk\nlamps").is_err());
        assert!(parse_category_name(&"é".repeat(80)).is_ok());
        assert!(parse_category_name(&"é".repeat(81)).is_err());
    }

    #[test]
    fn a_category_draft_reports_both_invalid_fields() {
        let errors = CategoryDraft { slug: "Desk Lamps".into(), name: String::new() }.validate().unwrap_err();
        assert_eq!(fields(&errors), vec!["slug", "name"]);
        let category = CategoryDraft { slug: "desk-lamps".into(), name: " Desk lamps ".into() }.validate().unwrap();
        assert_eq!((category.slug.as_str(), category.name.as_str()), ("desk-lamps", "Desk lamps"));
    }

    #[test]
    fn a_product_is_put_in_a_category_named_by_an_existing_slug() {
        let draft = |category: &str| ProductDraft {
            sku: "MUG-1".into(),
            name: "Mug".into(),
            price_minor: 1200,
            category: Some(category.into()),
            ..Default::default()
        };
        assert_eq!(draft("kitchen").validate(kitchen_only).unwrap().unwrap().category_id, Some(kitchen()));
        let unknown = draft("garden").validate(kitchen_only).unwrap().unwrap_err();
        assert_eq!(unknown[0].message, "no category has the slug garden");
        let malformed =
            draft("Kitchen").validate(|_| panic!("a malformed slug is not looked up")).unwrap().unwrap_err();
        assert_eq!(fields(&malformed), vec!["category"]);
        let failing = draft("kitchen").validate(|_| Err(diesel::result::Error::BrokenTransactionManager));
        assert!(failing.is_err(), "a failed lookup is an error, not an invalid field");
    }

    #[test]
    fn a_patch_can_move_a_product_take_it_out_of_its_category_or_leave_it() {
        let patch = |category| ProductPatch { category, ..Default::default() };
        let moved = patch(Some(Some("kitchen".into()))).validate(kitchen_only).unwrap().unwrap();
        assert_eq!(moved.category_id, Some(Some(kitchen())));
        assert!(!moved.is_empty(), "a change of category alone is a change");
        let taken_out = patch(Some(None)).validate(|_| panic!("nothing to look up")).unwrap().unwrap();
        assert_eq!(taken_out.category_id, Some(None));
        assert!(!taken_out.is_empty());
        let left = patch(None).validate(|_| panic!("nothing to look up")).unwrap().unwrap();
        assert!(left.is_empty());
        let unknown = patch(Some(Some("garden".into()))).validate(kitchen_only).unwrap().unwrap_err();
        assert_eq!(fields(&unknown), vec!["category"]);
    }
}
