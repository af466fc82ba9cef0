//! Finds, in Rust source text, which schema tables and columns the code names, which tables it
//! writes, and which modules it refers to. Used at build time by `build.rs` (on every file under
//! `src/`) and by the tests (on fixtures), so it depends on nothing but `std`.
//!
//! Test code is not the module's code: every item under `#[cfg(test)]` (or a `cfg` that implies
//! `test`) is removed before anything is looked for, wherever it sits in the file.
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
//!
//! A file refers to another module when its code names any path into it, resolved like the
//! compiler does for `crate::`, `super::` and `self::`: `crate::inventory::reserve(..)`,
//! `use crate::{inventory, outbox}`, `use crate::inventory::{self, StockLine}`, a type such as
//! `crate::payments::Card`, or `super::super::inventory` from a module's submodule.

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
    /// Other modules whose items this file's code names (`crate::inventory::reserve`,
    /// `use crate::payments::Card`).
    pub calls: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableUse {
    pub written: bool,
    pub columns: BTreeSet<String>,
}

/// The folders and files that are modules; everything else under `src/` is infrastructure.
pub const MODULES: &[&str] =
    &["catalog", "inventory", "orders", "payments", "notifications", "outbox", "idempotency", "admin", "storefront"];

pub fn module_of(path: &str) -> Option<String> {
    let first = path.split('/').next().unwrap_or_default();
    let name = first.strip_suffix(".rs").unwrap_or(first);
    MODULES.contains(&name).then(|| name.to_owned())
}

/// Scans one file. `path` is relative to `src/`.
pub fn scan_file(path: &str, source: &str, schema: &[SchemaTable]) -> FileScan {
    let lexed = lex(&without_test_code(source));
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
    let sql: Vec<&str> = lexed.strings.iter().map(|(_, text)| text.as_str()).filter(|text| is_sql(text)).collect();
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

    for top in referenced_top_level_items(path, &lexed.code) {
        if MODULES.contains(&top.as_str()) && Some(top.as_str()) != module.as_deref() {
            scan.calls.insert(top);
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
    /// Each string literal's content, with where its `""` placeholder starts in `code`.
    strings: Vec<(usize, String)>,
    /// For each byte of `code`, the byte of the source it came from.
    origins: Vec<usize>,
}

impl Lexed {
    fn emit(&mut self, text: &str, origin: usize) {
        self.code.push_str(text);
        self.origins.extend(std::iter::repeat_n(origin, text.len()));
    }
}

fn lex(source: &str) -> Lexed {
    let indexed: Vec<(usize, char)> = source.char_indices().collect();
    let chars: Vec<char> = indexed.iter().map(|(_, c)| *c).collect();
    let byte = |index: usize| indexed.get(index).map_or(source.len(), |(offset, _)| *offset);
    let mut lexed = Lexed { code: String::with_capacity(source.len()), strings: Vec::new(), origins: Vec::new() };
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        let next = chars.get(index + 1).copied();
        if c == '/' && next == Some('/') {
            while index < chars.len() && chars[index] != '\n' {
                index += 1;
            }
        } else if c == '/' && next == Some('*') {
            index = after_block_comment(&chars, index);
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !previous_is_word(&chars, index) {
            // Raw string: r"..." or r#"..."#.
            let mut hashes = 0;
            let mut cursor = index + 1;
            while chars.get(cursor) == Some(&'#') {
                hashes += 1;
                cursor += 1;
            }
            if chars.get(cursor) != Some(&'"') {
                lexed.emit("r", byte(index));
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
            lexed.strings.push((lexed.code.len(), content));
            lexed.emit("\"\"", byte(index));
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
            lexed.strings.push((lexed.code.len(), content));
            lexed.emit("\"\"", byte(index));
            index = cursor + 1;
        } else if c == '\'' && chars.get(index + 2) == Some(&'\'') {
            // A char literal such as '"'; lifetimes ('a) are left alone.
            lexed.emit("' '", byte(index));
            index += 3;
        } else if c == '\'' && next == Some('\\') {
            let mut cursor = index + 2;
            while cursor < chars.len() && chars[cursor] != '\'' {
                cursor += 1;
            }
            lexed.emit("' '", byte(index));
            index = cursor + 1;
        } else {
            lexed.emit(c.encode_utf8(&mut [0; 4]), byte(index));
            index += 1;
        }
    }
    lexed
}

/// The index just past the `/* .. */` comment that opens at `start`. Block comments nest, in
/// Rust as in PostgreSQL's SQL; an unclosed one runs to the end.
pub fn after_block_comment(chars: &[char], start: usize) -> usize {
    let (mut index, mut depth) = (start, 0);
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
    index
}

fn previous_is_word(chars: &[char], index: usize) -> bool {
    index > 0 && (chars[index - 1].is_ascii_alphanumeric() || chars[index - 1] == '_')
}

/// `source` without its test code: every item whose attributes include `#[cfg(test)]` (or a
/// `cfg` that implies `test`, such as `cfg(all(test, unix))`) is cut out, with its other
/// attributes; an inner `#![cfg(test)]` takes its whole block, or at the top the whole file.
pub fn without_test_code(source: &str) -> String {
    let lexed = lex(source);
    let mut kept = String::with_capacity(source.len());
    let mut from = 0;
    for item in test_items(&lexed.code) {
        let start = lexed.origins.get(item.range.start).copied().unwrap_or(source.len());
        let end = lexed.origins.get(item.range.end).copied().unwrap_or(source.len());
        if start >= from {
            kept.push_str(&source[from..start]);
            from = end;
        }
    }
    kept.push_str(&source[from..]);
    kept
}

/// Paths under `src/` that are test code by what `path` declares: the file of a
/// `#[cfg(test)] mod name;` (`name.rs`, or a `#[path]`), and the folder of the submodules of
/// any test module (ending in `/`). A file that is itself `#![cfg(test)]` gives the folder of
/// its submodules.
pub fn test_only_files(path: &str, source: &str) -> Vec<String> {
    let lexed = lex(source);
    let directory = match path.rfind('/') {
        Some(slash) => &path[..=slash],
        None => "",
    };
    let stem = path.strip_suffix(".rs").unwrap_or(path);
    let file_name = stem.rsplit('/').next().unwrap_or_default();
    // Submodules of `mod.rs`, `lib.rs` and `main.rs` live beside them; those of `name.rs` in `name/`.
    let children = if matches!(file_name, "mod" | "lib" | "main") { directory.to_owned() } else { format!("{stem}/") };
    let mut files = Vec::new();
    for item in test_items(&lexed.code) {
        if item.whole_file {
            files.push(children.clone());
            continue;
        }
        let Some(name) = &item.module else { continue };
        // An inline `mod name { .. }` has no file of its own, only its submodules' folder.
        if lexed.code.as_bytes()[item.range.end - 1] != b';' {
            files.push(format!("{children}{name}/"));
            continue;
        }
        let attributes = &lexed.code[item.range.start..item.body_start];
        let custom_path = attributes.find("path").and_then(|at| {
            let placeholder = at + attributes[at..].find('"')?;
            let position = item.range.start + placeholder;
            lexed.strings.iter().find(|(start, _)| *start == position).map(|(_, text)| text.clone())
        });
        match custom_path {
            Some(custom) => files.push(format!("{directory}{custom}")),
            None => files.push(format!("{children}{name}.rs")),
        }
        files.push(format!("{children}{name}/"));
    }
    files
}

/// One item of test code, as a byte range of the lexed code.
struct TestItem {
    range: std::ops::Range<usize>,
    /// Where the item itself starts, after its attributes.
    body_start: usize,
    /// The name of a module the item declares (`mod name;` or `mod name { .. }`).
    module: Option<String>,
    /// Whether an inner `#![cfg(test)]` at the top made the whole file test code.
    whole_file: bool,
}

fn test_items(code: &str) -> Vec<TestItem> {
    let bytes = code.as_bytes();
    let mut items = Vec::new();
    let mut open_braces: Vec<usize> = Vec::new();
    // Where the attributes before the current item started.
    let mut attributes_start: Option<usize> = None;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'#'
            && let Some(attribute) = attribute_at(code, index)
        {
            let start = *attributes_start.get_or_insert(index);
            if !cfg_implies_test(attribute.content) {
                index = attribute.end;
                continue;
            }
            attributes_start = None;
            if attribute.inner {
                // `#![cfg(test)]` applies to what encloses it: the block, or the whole file.
                match open_braces.pop() {
                    Some(open) => {
                        let close = matching_close(bytes, open).unwrap_or(bytes.len());
                        items.push(TestItem {
                            range: open + 1..close,
                            body_start: open + 1,
                            module: None,
                            whole_file: false,
                        });
                        // Past the closing brace too: its opening one is popped already.
                        index = close + 1;
                    }
                    None => {
                        return vec![TestItem { range: 0..bytes.len(), body_start: 0, module: None, whole_file: true }];
                    }
                }
                continue;
            }
            let body_start = skip_attributes(code, attribute.end);
            let (end, module) = item_end(code, body_start);
            items.push(TestItem { range: start..end, body_start, module, whole_file: false });
            index = end;
            continue;
        }
        if !byte.is_ascii_whitespace() {
            attributes_start = None;
        }
        match byte {
            b'{' => open_braces.push(index),
            b'}' => {
                open_braces.pop();
            }
            _ => {}
        }
        index += 1;
    }
    items
}

struct Attribute<'a> {
    inner: bool,
    /// Between the brackets.
    content: &'a str,
    end: usize,
}

/// The attribute `#[..]` or `#![..]` starting at `start`, if one does.
fn attribute_at(code: &str, start: usize) -> Option<Attribute<'_>> {
    let bytes = code.as_bytes();
    let mut cursor = start + 1;
    let skip_whitespace = |mut cursor: usize| {
        while bytes.get(cursor).is_some_and(u8::is_ascii_whitespace) {
            cursor += 1;
        }
        cursor
    };
    cursor = skip_whitespace(cursor);
    let inner = bytes.get(cursor) == Some(&b'!');
    if inner {
        cursor = skip_whitespace(cursor + 1);
    }
    if bytes.get(cursor) != Some(&b'[') {
        return None;
    }
    let close = matching_close(bytes, cursor)?;
    Some(Attribute { inner, content: &code[cursor + 1..close], end: close + 1 })
}

/// The index of the bracket closing the one at `open`.
fn matching_close(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (index, byte) in bytes.iter().enumerate().skip(open) {
        match byte {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(index);
                }
            }
            _ => {}
        }
    }
    None
}

fn skip_attributes(code: &str, mut cursor: usize) -> usize {
    loop {
        while code.as_bytes().get(cursor).is_some_and(u8::is_ascii_whitespace) {
            cursor += 1;
        }
        match attribute_at(code, cursor) {
            Some(attribute) if code.as_bytes()[cursor] == b'#' => cursor = attribute.end,
            _ => return cursor,
        }
    }
}

/// Whether an attribute is a `cfg` that holds only in test builds: `cfg(test)`, or an `all(..)`
/// with such a part, or an `any(..)` whose every part is. `not(..)` and anything else may hold
/// outside tests, so that code is kept.
fn cfg_implies_test(attribute: &str) -> bool {
    let compact: String = attribute.chars().filter(|c| !c.is_whitespace()).collect();
    compact.strip_prefix("cfg(").and_then(|rest| rest.strip_suffix(')')).is_some_and(predicate_implies_test)
}

fn predicate_implies_test(predicate: &str) -> bool {
    if predicate == "test" {
        return true;
    }
    let arguments = |name: &str| predicate.strip_prefix(name).and_then(|rest| rest.strip_suffix(')'));
    if let Some(parts) = arguments("all(") {
        return top_level_parts(parts).any(predicate_implies_test);
    }
    if let Some(parts) = arguments("any(") {
        let parts: Vec<&str> = top_level_parts(parts).collect();
        return !parts.is_empty() && parts.into_iter().all(predicate_implies_test);
    }
    false
}

fn top_level_parts(list: &str) -> impl Iterator<Item = &str> {
    let mut depth = 0i32;
    list.split(move |c: char| {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        c == ',' && depth == 0
    })
    .filter(|part| !part.is_empty())
}

/// Where the item starting at `start` (after its attributes) ends, and the module it declares.
fn item_end(code: &str, start: usize) -> (usize, Option<String>) {
    #[derive(PartialEq)]
    enum Shape {
        /// Ends at its `;`, whatever braces it holds: `use a::{b, c};`, `const X: S = S { .. };`.
        Statement,
        /// Ends at its `;` or at the brace closing its body: `mod m;`, `fn f() {..}`.
        Item,
        /// A field, variant, match arm or expression: also ends at a `,`.
        Other,
    }
    // Visibility first: `pub(in crate::orders)` holds words that are not the item's keyword.
    let mut after_visibility = code[start..].trim_start();
    if let Some(rest) = after_visibility.strip_prefix("pub")
        && rest.trim_start().starts_with('(')
    {
        let open = code.len() - rest.trim_start().len();
        after_visibility = matching_close(code.as_bytes(), open).map_or("", |close| &code[close + 1..]);
    }
    let words: Vec<&str> = after_visibility
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .take(8)
        .collect();
    let qualifiers = ["pub", "unsafe", "safe", "async", "default", "auto", "extern"];
    let mut keywords = words.iter().copied().skip_while(|word| qualifiers.contains(word));
    let keyword = keywords.next().unwrap_or_default();
    let shape = match keyword {
        "use" | "static" | "type" | "let" => Shape::Statement,
        "const" if !matches!(keywords.next(), Some("fn" | "unsafe" | "async" | "extern")) => Shape::Statement,
        "const" | "mod" | "fn" | "impl" | "struct" | "enum" | "trait" | "union" | "macro_rules" => Shape::Item,
        // `extern crate x;` and `extern "C" { .. }`: the qualifier was the keyword.
        _ if words.first() == Some(&"extern") => Shape::Item,
        _ => Shape::Other,
    };
    let module = (keyword == "mod").then(|| keywords.next().unwrap_or_default().to_owned());
    let bytes = code.as_bytes();
    let mut depth = 0usize;
    for (index, byte) in bytes.iter().enumerate().skip(start) {
        match byte {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                // A closer of the enclosing block: the item (a last field, say) ended before it.
                if depth == 0 {
                    return (index, module);
                }
                depth -= 1;
                if *byte == b'}' && depth == 0 && shape != Shape::Statement {
                    return (index + 1, module);
                }
            }
            b';' if depth == 0 => return (index + 1, module),
            b',' if depth == 0 && shape == Shape::Other => return (index + 1, module),
            _ => {}
        }
    }
    (bytes.len(), module)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    /// `::`
    PathSeparator,
    Punct(u8),
}

fn tokens(code: &str) -> Vec<Token<'_>> {
    let bytes = code.as_bytes();
    let is_word = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_' || byte >= 0x80;
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte.is_ascii_whitespace() {
            index += 1;
        } else if is_word(byte) {
            let start = index;
            while index < bytes.len() && is_word(bytes[index]) {
                index += 1;
            }
            tokens.push(Token::Word(&code[start..index]));
        } else if byte == b':' && bytes.get(index + 1) == Some(&b':') {
            tokens.push(Token::PathSeparator);
            index += 2;
        } else {
            tokens.push(Token::Punct(byte));
            index += 1;
        }
    }
    tokens
}

/// The module path of a file: `orders/pages.rs` is `orders::pages`, `orders/mod.rs` is `orders`.
fn module_path_of(path: &str) -> Vec<String> {
    let stem = path.strip_suffix(".rs").unwrap_or(path);
    let mut segments: Vec<String> = stem.split('/').map(str::to_owned).collect();
    if segments.last().is_some_and(|last| last == "mod") || matches!(stem, "lib" | "main") {
        segments.pop();
    }
    segments
}

/// The first segment of every crate path the code names (`inventory` for
/// `crate::inventory::reserve`, for `use crate::{inventory, ..}` and, in `orders/pages.rs`, for
/// `super::super::inventory`). Paths that do not start at `crate`, `super` or `self` name
/// something imported, which its `use` already counted, or something outside the crate.
fn referenced_top_level_items(path: &str, code: &str) -> BTreeSet<String> {
    let tokens = tokens(code);
    let file_module = module_path_of(path);
    // Inline `mod name { .. }` blocks: each name, with the brace depth inside it.
    let mut inline_modules: Vec<(&str, usize)> = Vec::new();
    let here = |inline: &[(&str, usize)]| {
        let mut module = file_module.clone();
        module.extend(inline.iter().map(|(name, _)| (*name).to_owned()));
        module
    };
    let mut depth = 0usize;
    let mut found = BTreeSet::new();
    let mut index = 0;
    while index < tokens.len() {
        match tokens[index] {
            Token::Punct(b'{') => depth += 1,
            Token::Punct(b'}') => {
                depth = depth.saturating_sub(1);
                while inline_modules.last().is_some_and(|(_, inside)| *inside > depth) {
                    inline_modules.pop();
                }
            }
            Token::Word("mod") => {
                if let (Some(Token::Word(name)), Some(Token::Punct(b'{'))) =
                    (tokens.get(index + 1), tokens.get(index + 2))
                {
                    inline_modules.push((name, depth + 1));
                }
            }
            Token::Word("use") => {
                let mut paths = Vec::new();
                let mut cursor = index + 1;
                use_tree(&tokens, &mut cursor, Vec::new(), &mut paths);
                let module = here(&inline_modules);
                found.extend(paths.iter().filter_map(|path| resolve(path, &module)));
                index = cursor.max(index + 1);
                continue;
            }
            Token::Word("crate" | "super" | "self") if tokens.get(index + 1) == Some(&Token::PathSeparator) => {
                let mut path = Vec::new();
                let mut cursor = index;
                while let Some(Token::Word(segment)) = tokens.get(cursor) {
                    path.push(*segment);
                    if tokens.get(cursor + 1) != Some(&Token::PathSeparator) {
                        break;
                    }
                    cursor += 2;
                }
                found.extend(resolve(&path, &here(&inline_modules)));
                index = cursor + 1;
                continue;
            }
            _ => {}
        }
        index += 1;
    }
    found
}

/// Flattens the use tree at `cursor` into full paths: `crate::{a, b::{self, C}}` gives
/// `crate::a`, `crate::b::self` and `crate::b::C`. Leaves `cursor` after the tree.
fn use_tree<'a>(tokens: &[Token<'a>], cursor: &mut usize, mut prefix: Vec<&'a str>, paths: &mut Vec<Vec<&'a str>>) {
    loop {
        match tokens.get(*cursor) {
            Some(Token::PathSeparator) => *cursor += 1,
            Some(Token::Punct(b'{')) => {
                *cursor += 1;
                loop {
                    match tokens.get(*cursor) {
                        None => return,
                        Some(Token::Punct(b'}')) => {
                            *cursor += 1;
                            return;
                        }
                        Some(Token::Punct(b',')) => *cursor += 1,
                        Some(_) => {
                            let before = *cursor;
                            use_tree(tokens, cursor, prefix.clone(), paths);
                            if *cursor == before {
                                *cursor += 1;
                            }
                        }
                    }
                }
            }
            Some(Token::Punct(b'*')) => {
                *cursor += 1;
                paths.push(prefix);
                return;
            }
            Some(Token::Word(segment)) => {
                prefix.push(segment);
                *cursor += 1;
                if tokens.get(*cursor) == Some(&Token::PathSeparator) {
                    continue;
                }
                if tokens.get(*cursor) == Some(&Token::Word("as")) {
                    *cursor += 2;
                }
                paths.push(prefix);
                return;
            }
            _ => return,
        }
    }
}

/// The top-level item a path starting at `crate`, `super` or `self` leads to, from `module`.
fn resolve(path: &[&str], module: &[String]) -> Option<String> {
    let (mut absolute, rest): (Vec<String>, &[&str]) = match *path.first()? {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (module.to_vec(), &path[1..]),
        "super" => {
            let mut base = module.to_vec();
            let supers = path.iter().take_while(|segment| **segment == "super").count();
            for _ in 0..supers {
                base.pop()?;
            }
            (base, &path[supers..])
        }
        _ => return None,
    };
    absolute.extend(rest.iter().map(|segment| (*segment).to_owned()));
    absolute.into_iter().next().filter(|first| !matches!(first.as_str(), "self" | "super" | "crate"))
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

    fn calls(path: &str, source: &str) -> Vec<String> {
        scan_file(path, source, &schema()).calls.into_iter().collect()
    }

    #[test]
    fn calls_into_other_modules_are_noted() {
        let source = "fn f() { crate::inventory::reserve(conn); crate::orders::helper(); }";
        assert_eq!(calls("orders/checkout.rs", source), ["inventory"]);
    }

    #[test]
    fn every_form_of_use_and_path_names_a_module() {
        assert_eq!(calls("orders/a.rs", "use crate::inventory;"), ["inventory"]);
        assert_eq!(calls("orders/a.rs", "use crate::inventory::{self, StockLine};"), ["inventory"]);
        assert_eq!(
            calls("orders/a.rs", "use crate::{inventory, outbox::{self, DomainEvent}};"),
            ["inventory", "outbox"]
        );
        assert_eq!(calls("orders/a.rs", "pub use crate :: payments as pay;"), ["payments"]);
        assert_eq!(calls("orders/a.rs", "use crate::catalog::*;"), ["catalog"]);
        assert_eq!(calls("orders/a.rs", "fn f(card: &crate::payments::Card) {}"), ["payments"]);
        assert_eq!(calls("orders/a.rs", "struct S { events: Vec<crate::outbox::DomainEvent> }"), ["outbox"]);
        assert_eq!(
            calls("orders/a.rs", "macro_rules! m { () => { $crate::admin::page::see_other(\"/\") } }"),
            ["admin"]
        );
        // From orders/pages.rs, `super` is orders and `super::super` the crate root.
        assert_eq!(calls("orders/pages.rs", "use super::super::catalog::Product;"), ["catalog"]);
        assert_eq!(
            calls("orders/pages.rs", "use super::Customer; fn f() { super::super::inventory::ship(); }"),
            ["inventory"]
        );
        assert_eq!(calls("orders/mod.rs", "use super::payments;"), ["payments"]);
        assert_eq!(calls("idempotency.rs", "fn f(id: super::orders::OrderId) {}"), ["orders"]);
    }

    #[test]
    fn own_paths_infrastructure_comments_and_strings_are_not_calls() {
        let source = r#"
            //! Calls crate::payments::charge, as the docs say.
            use crate::orders::Customer;
            use crate::{db, error::AppError, ids::OrderId, schema::payments};
            use self::store::find;
            use super::Customer as C;
            pub(crate) fn f() {}
            pub(in crate::orders) fn g() {}
            /* crate::inventory::reserve(conn) */
            fn h() { log::info!("see crate::catalog::get_product"); payments::table; }
        "#;
        assert!(calls("orders/view.rs", source).is_empty());
    }

    #[test]
    fn inline_modules_move_super() {
        let source = "mod inner { use super::super::notifications; }";
        assert!(calls("orders/x.rs", source).is_empty(), "orders::x::inner -> orders::notifications");
        let source = "mod inner { use super::super::super::notifications; } use super::super::catalog;";
        assert_eq!(calls("orders/x.rs", source), ["catalog", "notifications"]);
    }

    #[test]
    fn test_code_is_cut_out_whatever_its_layout() {
        let source = r#"use crate::admin::page::Layout;
#[cfg(test)] use crate::payments::Card;
#[cfg(test)]
#[allow(dead_code)]
fn helper() { crate::orders::x(); }

#[allow(unused)] #[cfg( test )] impl Foo {
    fn f() { crate::notifications::y("}"); }
}
#[cfg(test)] mod fixtures;
#[cfg(test)]

// a comment between the attribute and the module
mod tests { use crate::catalog; #[test] fn t() { let _ = '{'; } }
#[cfg(all(test, feature = "slow"))] pub(in crate::outbox) mod more { use crate::inventory; }
pub fn real() { crate::outbox::publish(); }
#[cfg(not(test))] fn prod() { crate::idempotency::x() }
#[cfg(any(test, debug_assertions))] fn debug() { crate::idempotency::y() }
struct S { a: i32, #[cfg(test)] probe: crate::payments::Card, b: i32 }
fn g() { #[cfg(test)] { crate::payments::z(); } let x = 1; }
"#;
        let kept = without_test_code(source);
        for gone in ["Card;", "helper", "impl Foo", "fixtures", "mod tests", "mod more", "probe", "z()"] {
            assert!(!kept.contains(gone), "{gone} kept in:\n{kept}");
        }
        for stays in ["Layout", "fn real", "fn prod", "fn debug", "a: i32,", "b: i32 }", "let x = 1;"] {
            assert!(kept.contains(stays), "{stays} lost from:\n{kept}");
        }
        assert_eq!(calls("outbox/x.rs", source), ["admin", "idempotency"]);
    }

    #[test]
    fn test_code_names_no_tables() {
        let source = r#"
            pub fn f() {}
            #[cfg(test)]
            mod tests {
                fn t(conn: &mut PgConnection) {
                    diesel::sql_query("DELETE FROM orders").execute(conn);
                    crate::schema::events::table.count();
                }
            }
        "#;
        assert!(scan_file("catalog/store.rs", source, &schema()).tables.is_empty());
    }

    #[test]
    fn an_inner_cfg_test_takes_its_block_or_file() {
        assert_eq!(without_test_code("#![cfg(test)]\nuse crate::orders;\n").trim(), "");
        let kept = without_test_code("fn a() {}\nmod t {\n    #![cfg(test)]\n    use crate::orders;\n}\nfn b() {}");
        assert!(!kept.contains("orders") && kept.contains("fn a()") && kept.contains("fn b()"), "{kept}");
    }

    #[test]
    fn files_declared_as_test_modules_are_test_code() {
        let source = "mod store;\n#[cfg(test)]\nmod tests;\n#[cfg(test)] #[path = \"fixtures.rs\"] mod data;";
        assert_eq!(
            test_only_files("orders/mod.rs", source),
            ["orders/tests.rs", "orders/tests/", "orders/fixtures.rs", "orders/data/"]
        );
        assert_eq!(test_only_files("orders/mod.rs", "#[cfg(test)]\nmod tests { mod helpers; }"), ["orders/tests/"]);
        assert_eq!(
            test_only_files("orders/checkout.rs", "#[cfg(test)] mod tests;"),
            ["orders/checkout/tests.rs", "orders/checkout/tests/"]
        );
        assert_eq!(test_only_files("orders/helpers.rs", "#![cfg(test)]\nmod more;"), ["orders/helpers/"]);
        assert!(test_only_files("lib.rs", "pub mod orders;\n#[cfg(not(test))] mod real;").is_empty());
    }

    #[test]
    fn files_map_to_modules() {
        assert_eq!(module_of("orders/api.rs").as_deref(), Some("orders"));
        assert_eq!(module_of("idempotency.rs").as_deref(), Some("idempotency"));
        assert_eq!(module_of("http/mod.rs"), None);
        assert_eq!(module_of("seed.rs"), None);
    }
}
