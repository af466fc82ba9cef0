//! Finds, in Rust source text, which schema tables and columns the code names and which tables
//! it writes. Used at build time by `build.rs` (on every file under `src/`) and by the tests (on
//! fixtures), so it depends on nothing but `std`.
//!
//! What counts as naming a table:
//! - diesel paths through the schema module: `use crate::schema::{orders, customers as c}`,
//!   `crate::schema::products::table`, `#[diesel(table_name = crate::schema::products)]`;
//! - SQL in string literals (a literal with `SELECT `, `INSERT INTO `, `UPDATE ` or `DELETE FROM `)
//!   naming the table anywhere.
//!
//! Comments and other strings are ignored. A table is *written* when it is the target of
//! diesel's `insert_into(..)`, `update(..)` or `delete(..)`, or of `INSERT INTO`, `UPDATE` or
//! `DELETE FROM` in SQL. The columns of a table a file names are the table's columns that occur
//! as words in the file's code or SQL: a conservative answer (it may list a column a file does
//! not use, such as a common `id`, but never misses one it does).

use std::collections::{BTreeMap, BTreeSet};

/// A table of `src/schema.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaTable {
    pub name: String,
    pub columns: Vec<String>,
}

/// Parses the `diesel::table!` blocks of `diesel print-schema` output.
pub fn parse_schema(source: &str) -> Vec<SchemaTable> {
    let mut tables = Vec::new();
    let mut lines = source.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if !line.starts_with("diesel::table!") {
            continue;
        }
        let mut current: Option<SchemaTable> = None;
        for line in lines.by_ref() {
            if line.is_empty() || line.starts_with("//") || line.starts_with('#') || line.starts_with("use ") {
                continue;
            }
            match &mut current {
                None => {
                    let name = line.split_whitespace().next().unwrap_or_default().to_owned();
                    current = Some(SchemaTable { name, columns: Vec::new() });
                }
                Some(table) => {
                    if line.starts_with('}') {
                        break;
                    }
                    if let Some((column, _type)) = line.split_once("->") {
                        table.columns.push(column.trim().to_owned());
                    }
                }
            }
        }
        tables.extend(current);
    }
    tables
}

/// What one source file names of the schema.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileScan {
    /// Path relative to `src/`, with `/` separators.
    pub path: String,
    /// The module the file belongs to (`orders` for `orders/store.rs`, `idempotency` for
    /// `idempotency.rs`), or `None` for shared infrastructure outside any module.
    pub module: Option<String>,
    /// Table -> (written?, columns named).
    pub tables: BTreeMap<String, TableUse>,
    /// Other modules whose code this file calls (`crate::inventory::reserve`).
    pub calls: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableUse {
    pub written: bool,
    pub columns: BTreeSet<String>,
}

/// The folders and files that are modules; everything else under `src/` is infrastructure.
pub const MODULES: &[&str] =
    &["catalog", "inventory", "orders", "payments", "notifications", "outbox", "idempotency", "admin"];

pub fn module_of(path: &str) -> Option<String> {
    let first = path.split('/').next().unwrap_or_default();
    let name = first.strip_suffix(".rs").unwrap_or(first);
    MODULES.contains(&name).then(|| name.to_owned())
}

/// Scans one file. `path` is relative to `src/`.
pub fn scan_file(path: &str, source: &str, schema: &[SchemaTable]) -> FileScan {
    let lexed = lex(source);
    let module = module_of(path);
    let mut scan = FileScan { path: path.to_owned(), module: module.clone(), ..FileScan::default() };
    let table_names: BTreeSet<&str> = schema.iter().map(|table| table.name.as_str()).collect();

    // Names by which this file can refer to a table: the table's own name and `use` aliases.
    let mut aliases: BTreeMap<String, String> = BTreeMap::new();
    for (table, alias) in schema_imports(&lexed.code) {
        if table_names.contains(table.as_str()) {
            aliases.insert(alias, table.clone());
            scan.tables.entry(table).or_default();
        }
    }
    for table in schema_paths(&lexed.code) {
        if table_names.contains(table.as_str()) {
            aliases.entry(table.clone()).or_insert_with(|| table.clone());
            scan.tables.entry(table).or_default();
        }
    }
    let sql: Vec<&str> = lexed.strings.iter().map(String::as_str).filter(|text| is_sql(text)).collect();
    for statement in &sql {
        for word in words(statement) {
            if table_names.contains(word) {
                scan.tables.entry(word.to_owned()).or_default();
            }
        }
        for table in sql_write_targets(statement) {
            if table_names.contains(table.as_str()) {
                scan.tables.entry(table).or_default().written = true;
            }
        }
    }
    for argument in diesel_write_arguments(&lexed.code) {
        for word in words(&argument) {
            if let Some(table) = aliases.get(word) {
                scan.tables.entry(table.clone()).or_default().written = true;
            }
        }
    }

    let mut vocabulary: BTreeSet<&str> = words(&lexed.code).collect();
    for statement in &sql {
        vocabulary.extend(words(statement));
    }
    for (name, usage) in scan.tables.iter_mut() {
        if let Some(table) = schema.iter().find(|table| &table.name == name) {
            usage.columns =
                table.columns.iter().filter(|column| vocabulary.contains(column.as_str())).cloned().collect();
        }
    }

    for module_name in MODULES {
        let called = lexed.code.contains(&format!("crate::{module_name}::"))
            || lexed.code.contains(&format!("crate::{module_name}}}"));
        if called && Some(*module_name) != module.as_deref() {
            scan.calls.insert((*module_name).to_owned());
        }
    }
    scan
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|word| !word.is_empty())
}

fn is_sql(text: &str) -> bool {
    ["SELECT ", "INSERT INTO ", "UPDATE ", "DELETE FROM "].iter().any(|keyword| text.contains(keyword))
}

/// Tables after `INSERT INTO`, `UPDATE` and `DELETE FROM`.
fn sql_write_targets(sql: &str) -> Vec<String> {
    let tokens: Vec<&str> = sql.split_whitespace().collect();
    let mut targets = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        let target = match *token {
            "INTO" if index > 0 && tokens[index - 1] == "INSERT" => tokens.get(index + 1),
            "UPDATE" => tokens.get(index + 1),
            "FROM" if index > 0 && tokens[index - 1] == "DELETE" => tokens.get(index + 1),
            _ => None,
        };
        if let Some(target) = target {
            targets.push(target.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).to_owned());
        }
    }
    targets
}

/// `(table, name used in this file)` for every table brought in by `use crate::schema::...`.
fn schema_imports(code: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(start) = rest.find("use crate::schema::") {
        let after = &rest[start + "use crate::schema::".len()..];
        let end = after.find(';').unwrap_or(after.len());
        let tree = &after[..end];
        let items: Vec<&str> = match tree.trim().strip_prefix('{') {
            Some(group) => group.trim_end().trim_end_matches('}').split(',').collect(),
            None => vec![tree],
        };
        for item in items {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (path, alias) = match item.split_once(" as ") {
                Some((path, alias)) => (path.trim(), Some(alias.trim())),
                None => (item, None),
            };
            let table = path.split("::").next().unwrap_or_default().trim().to_owned();
            let alias = alias.filter(|_| !path.contains("::")).unwrap_or(table.as_str()).to_owned();
            found.push((table, alias));
        }
        rest = &after[end..];
    }
    found
}

/// Tables named by a `schema::<table>` path anywhere in the code.
fn schema_paths(code: &str) -> Vec<String> {
    code.match_indices("schema::")
        .map(|(index, _)| {
            let after = &code[index + "schema::".len()..];
            after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// The argument text of every diesel `insert_into(..)`, `update(..)` and `delete(..)` call.
fn diesel_write_arguments(code: &str) -> Vec<String> {
    let mut arguments = Vec::new();
    for call in ["insert_into(", "update(", "delete("] {
        for (index, _) in code.match_indices(call) {
            let preceded_by_word =
                code[..index].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if preceded_by_word {
                continue;
            }
            let mut depth = 1;
            let mut argument = String::new();
            for c in code[index + call.len()..].chars() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                argument.push(c);
            }
            arguments.push(argument);
        }
    }
    arguments
}

/// Source split into code (comments removed, string literals blanked) and string contents.
struct Lexed {
    code: String,
    strings: Vec<String>,
}

fn lex(source: &str) -> Lexed {
    let chars: Vec<char> = source.chars().collect();
    let mut code = String::with_capacity(source.len());
    let mut strings = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        let next = chars.get(index + 1).copied();
        if c == '/' && next == Some('/') {
            while index < chars.len() && chars[index] != '\n' {
                index += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while index < chars.len() {
                if chars[index] == '/' && chars.get(index + 1) == Some(&'*') {
                    depth += 1;
                    index += 2;
                } else if chars[index] == '*' && chars.get(index + 1) == Some(&'/') {
                    depth -= 1;
                    index += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    index += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !previous_is_word(&chars, index) {
            // Raw string: r"..." or r#"..."#.
            let mut hashes = 0;
            let mut cursor = index + 1;
            while chars.get(cursor) == Some(&'#') {
                hashes += 1;
                cursor += 1;
            }
            if chars.get(cursor) != Some(&'"') {
                code.push(c);
                index += 1;
                continue;
            }
            cursor += 1;
            let mut content = String::new();
            while cursor < chars.len() {
                if chars[cursor] == '"' && (0..hashes).all(|h| chars.get(cursor + 1 + h) == Some(&'#')) {
                    cursor += 1 + hashes;
                    break;
                }
                content.push(chars[cursor]);
                cursor += 1;
            }
            strings.push(content);
            code.push_str("\"\"");
            index = cursor;
        } else if c == '"' {
            let mut cursor = index + 1;
            let mut content = String::new();
            while cursor < chars.len() && chars[cursor] != '"' {
                if chars[cursor] == '\\' {
                    cursor += 1;
                    // A backslash at a line end continues the string without the line break.
                    if chars.get(cursor) == Some(&'\n') {
                        cursor += 1;
                        while chars.get(cursor).is_some_and(|c| c.is_whitespace()) {
                            cursor += 1;
                        }
                        content.push(' ');
                        continue;
                    }
                }
                if let Some(&escaped) = chars.get(cursor) {
                    content.push(escaped);
                }
                cursor += 1;
            }
            strings.push(content);
            code.push_str("\"\"");
            index = cursor + 1;
        } else if c == '\'' && chars.get(index + 2) == Some(&'\'') {
            // A char literal such as '"'; lifetimes ('a) are left alone.
            code.push_str("' '");
            index += 3;
        } else if c == '\'' && next == Some('\\') {
            let mut cursor = index + 2;
            while cursor < chars.len() && chars[cursor] != '\'' {
                cursor += 1;
            }
            code.push_str("' '");
            index = cursor + 1;
        } else {
            code.push(c);
            index += 1;
        }
    }
    Lexed { code, strings }
}

fn previous_is_word(chars: &[char], index: usize) -> bool {
    index > 0 && (chars[index - 1].is_ascii_alphanumeric() || chars[index - 1] == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Vec<SchemaTable> {
        parse_schema(
            "diesel::table! {\n    products (id) {\n        id -> Uuid,\n        sku -> Text,\n        price_minor -> Int8,\n    }\n}\n\
             diesel::table! {\n    orders (id) {\n        id -> Uuid,\n        status -> Text,\n    }\n}\n\
             diesel::table! {\n    events (id) {\n        id -> Int8,\n        payload -> Jsonb,\n    }\n}\n",
        )
    }

    #[test]
    fn diesel_paths_and_aliases_name_tables() {
        let source = r#"
            use crate::schema::{orders, products as p};
            fn f(conn: &mut PgConnection) {
                diesel::update(orders::table.find(id)).set(orders::status.eq("paid")).execute(conn);
                p::table.select(p::price_minor).load(conn);
            }
        "#;
        let scan = scan_file("orders/store.rs", source, &schema());
        assert_eq!(scan.module.as_deref(), Some("orders"));
        assert!(scan.tables["orders"].written);
        assert!(!scan.tables["products"].written);
        assert!(scan.tables["products"].columns.contains("price_minor"));
        assert!(!scan.tables.contains_key("events"));
    }

    #[test]
    fn sql_strings_name_tables_but_comments_and_prose_do_not() {
        let source = r#"
            // This comment mentions events and products.
            /// So does this doc comment: orders.
            fn f() {
                log::info!("orders and events are mentioned here, in prose");
                diesel::sql_query("INSERT INTO events (payload) SELECT sku FROM products").execute(conn);
                let url = "http://example.com/orders"; // not SQL
            }
        "#;
        let scan = scan_file("outbox/mod.rs", source, &schema());
        assert!(scan.tables["events"].written);
        assert!(!scan.tables["products"].written);
        assert!(scan.tables["products"].columns.contains("sku"));
        assert!(!scan.tables.contains_key("orders"));
    }

    #[test]
    fn dsl_imports_make_bare_names_refer_to_the_table() {
        let source =
            "use crate::schema::products::dsl::*;\nfn f() { diesel::insert_into(products).values(sku.eq(x)); }";
        let scan = scan_file("catalog/store.rs", source, &schema());
        assert!(scan.tables["products"].written);
        assert_eq!(scan.tables["products"].columns, BTreeSet::from(["sku".to_owned()]));
    }

    #[test]
    fn calls_into_other_modules_are_noted() {
        let source = "fn f() { crate::inventory::reserve(conn); crate::orders::helper(); }";
        let scan = scan_file("orders/checkout.rs", source, &schema());
        assert_eq!(scan.calls, BTreeSet::from(["inventory".to_owned()]));
    }

    #[test]
    fn files_map_to_modules() {
        assert_eq!(module_of("orders/api.rs").as_deref(), Some("orders"));
        assert_eq!(module_of("idempotency.rs").as_deref(), Some("idempotency"));
        assert_eq!(module_of("http/mod.rs"), None);
        assert_eq!(module_of("seed.rs"), None);
    }
}
