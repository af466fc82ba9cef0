//! The tables and columns of `src/schema.rs`, read from the file that `diesel print-schema`
//! generates, so that nothing here has to be kept in step with the migrations by hand.

use std::sync::OnceLock;

use super::scan::{SchemaTable, parse_schema};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub columns: Vec<&'static str>,
}

pub fn tables() -> &'static [Table] {
    static TABLES: OnceLock<Vec<Table>> = OnceLock::new();
    TABLES.get_or_init(|| {
        static PARSED: OnceLock<Vec<SchemaTable>> = OnceLock::new();
        PARSED
            .get_or_init(|| parse_schema(include_str!("../schema.rs")))
            .iter()
            .map(|table| Table { name: &table.name, columns: table.columns.iter().map(String::as_str).collect() })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_real_schema() {
        let products = tables().iter().find(|table| table.name == "products").unwrap();
        assert!(products.columns.contains(&"price_minor"));
        assert!(tables().len() >= 15);
    }
}
