//! The tables and columns of `src/schema.rs`, read from the file that `diesel print-schema`
//! generates, so that nothing here has to be kept in step with the migrations by hand.

use std::sync::OnceLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub columns: Vec<&'static str>,
}

const SCHEMA_RS: &str = include_str!("../schema.rs");

pub fn tables() -> &'static [Table] {
    static TABLES: OnceLock<Vec<Table>> = OnceLock::new();
    TABLES.get_or_init(|| parse_schema(SCHEMA_RS))
}

pub fn table(name: &str) -> Option<&'static Table> {
    tables().iter().find(|table| table.name == name)
}

/// Parses the `diesel::table!` blocks of a print-schema output.
pub fn parse_schema(source: &'static str) -> Vec<Table> {
    let mut tables = Vec::new();
    let mut lines = source.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if !line.starts_with("diesel::table!") {
            continue;
        }
        let mut current: Option<Table> = None;
        for line in lines.by_ref() {
            if line.is_empty() || line.starts_with("//") || line.starts_with('#') || line.starts_with("use ") {
                continue;
            }
            match &mut current {
                None => {
                    let name = line.split_whitespace().next().unwrap_or_default();
                    current = Some(Table { name, columns: Vec::new() });
                }
                Some(table) => {
                    if line.starts_with('}') {
                        break;
                    }
                    if let Some((column, _type)) = line.split_once("->") {
                        table.columns.push(column.trim());
                    }
                }
            }
        }
        tables.extend(current);
    }
    tables
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_print_schema_output() {
        let parsed = parse_schema(
            "// @generated automatically by Diesel CLI.\n\n\
             diesel::table! {\n    products (id) {\n        id -> Uuid,\n        \
             price_minor -> Int8,\n    }\n}\n\n\
             diesel::table! {\n    use diesel::sql_types::*;\n\n    orders (id) {\n        id -> Uuid,\n    }\n}\n\n\
             diesel::joinable!(order_lines -> orders (order_id));\n",
        );
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].name, "products");
        assert_eq!(parsed[0].columns, vec!["id", "price_minor"]);
        assert_eq!(parsed[1].name, "orders");
    }

    #[test]
    fn knows_the_real_schema() {
        assert!(table("products").is_some_and(|products| products.columns.contains(&"price_minor")));
    }
}
