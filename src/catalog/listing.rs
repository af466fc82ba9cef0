//! The admin's product list: searched, filtered by status, sorted, numbered page by page.

use diesel::prelude::*;

use super::{Category, Product, ProductWithCategory};
use crate::admin::listing::{COUNT_CAP, Column, Numbered, PER_PAGE, Sort};
use crate::kernel::Module;

pub const PRODUCT_COLUMNS: [Column; 3] = [Column::asc("name"), Column::asc("sku"), Column::desc("price")];

/// Which products the list shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Shown {
    #[default]
    All,
    Active,
    Inactive,
}

impl Shown {
    pub fn parse(text: &str) -> Option<Shown> {
        match text {
            "" | "all" => Some(Shown::All),
            "active" => Some(Shown::Active),
            "inactive" => Some(Shown::Inactive),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Shown::All => "",
            Shown::Active => "active",
            Shown::Inactive => "inactive",
        }
    }
}

macro_rules! matching {
    ($query:expr, $text:expr, $shown:expr) => {{
        use crate::schema::products;
        let mut query = $query;
        match $shown {
            Shown::All => {}
            Shown::Active => query = query.filter(products::active.eq(true)),
            Shown::Inactive => query = query.filter(products::active.eq(false)),
        }
        if let Some(text) = $text.map(str::trim).filter(|text| !text.is_empty()) {
            let pattern = crate::input::like_containing(text);
            query = query.filter(products::name.ilike(pattern.clone()).or(products::sku.ilike(pattern)));
        }
        query
    }};
}

pub fn admin_products(
    conn: &mut PgConnection,
    text: Option<&str>,
    shown: Shown,
    sort: Sort,
    page: i64,
) -> QueryResult<Numbered<ProductWithCategory>> {
    crate::as_module!(conn, Module::Catalog);
    use crate::schema::{categories, products};
    let counted = matching!(products::table.select(products::id).into_boxed(), text, shown)
        .limit(COUNT_CAP + 1)
        .load::<uuid::Uuid>(conn)?
        .len() as i64;
    let query = matching!(
        products::table
            .left_join(categories::table)
            .select((Product::as_select(), Option::<Category>::as_select()))
            .limit(PER_PAGE)
            .offset(Numbered::<()>::offset(page))
            .into_boxed(),
        text,
        shown
    );
    let query = match (sort.key, sort.descending) {
        ("sku", false) => query.order(products::sku.asc()),
        ("sku", true) => query.order(products::sku.desc()),
        ("price", false) => query.order((products::price_minor.asc(), products::name.asc(), products::id.asc())),
        ("price", true) => query.order((products::price_minor.desc(), products::name.asc(), products::id.asc())),
        (_, true) => query.order((products::name.desc(), products::id.desc())),
        (_, false) => query.order((products::name.asc(), products::id.asc())),
    };
    let rows: Vec<(Product, Option<Category>)> = query.load(conn)?;
    let products = rows.into_iter().map(|(product, category)| ProductWithCategory { product, category }).collect();
    Ok(Numbered::new(products, page, counted))
}
