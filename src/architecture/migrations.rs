//! Migrations keep to their module: a migration folder is named
//! `YYYY-MM-DD-HHMMSS_<owner>_<what>`, and its `up.sql` and `down.sql` may create, alter, index,
//! drop, put triggers on, comment on and write only tables that `<owner>` owns (by the modules'
//! `TABLES`). Otherwise one module's migration would change the structure another module's code
//! depends on, which nobody reviewing that module would see.
//!
//! Pure: the caller reads the folders. The SQL is tokenized, not parsed: comments and string
//! contents are skipped (except the table named to `diesel_manage_updated_at('..')`), and
//! dollar-quoted bodies are read as SQL, since a `DO $$ .. $$` block runs when migrating.

use std::collections::{BTreeMap, BTreeSet};

use crate::kernel::Module;

/// diesel's own first migration: it creates helper functions and no table.
pub const DIESEL_SETUP: &str = "00000000000000_diesel_initial_setup";

/// One migration folder.
#[derive(Debug, Clone)]
pub struct MigrationScripts {
    /// The folder's name, e.g. `2026-11-28-120300_catalog_products`.
    pub name: String,
    pub up: String,
    pub down: String,
}

/// What a statement does to a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Creates,
    Alters,
    Indexes,
    Drops,
    Triggers,
    Comments,
    ManagesUpdatedAt,
    Writes,
}

impl Action {
    pub fn verb(self) -> &'static str {
        match self {
            Action::Creates => "creates",
            Action::Alters => "alters",
            Action::Indexes => "indexes",
            Action::Drops => "drops",
            Action::Triggers => "changes a trigger on",
            Action::Comments => "comments on",
            Action::ManagesUpdatedAt => "hands diesel_manage_updated_at",
            Action::Writes => "writes rows of",
        }
    }
}

/// A table a script touches, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Touch {
    pub table: String,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MigrationViolation {
    /// The folder's name does not say which module the migration belongs to.
    BadName { migration: String },
    /// A script touches a table its folder's module does not own. `folder_owner` is `None` for
    /// diesel's setup; `owner` is `None` for a table no module owns.
    NotItsTable {
        migration: String,
        script: &'static str,
        action: Action,
        table: String,
        owner: Option<Module>,
        folder_owner: Option<Module>,
    },
    /// A migration creates a table that no module declares owning (and no later migration drops).
    Undeclared { migration: String, table: String, folder_owner: Module },
}

impl std::fmt::Display for MigrationViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrationViolation::BadName { migration } => write!(
                f,
                "migration {migration} is not named YYYY-MM-DD-HHMMSS_<owner>_<what>, with <owner> one of {}: rename \
                 the folder, keeping its timestamp (diesel's version of the migration)",
                Module::ALL.map(Module::name).join(", ")
            ),
            MigrationViolation::NotItsTable { migration, script, action, table, owner, folder_owner } => {
                let verb = action.verb();
                match folder_owner {
                    Some(folder_owner) => {
                        write!(f, "migration {migration} belongs to {folder_owner}, but its {script} {verb} {table}")?
                    }
                    None => write!(f, "migration {migration} is diesel's setup, but its {script} {verb} {table}")?,
                }
                match owner {
                    Some(owner) => write!(
                        f,
                        ", which {owner} owns: a migration may change only its own module's tables; do this in a \
                         migration of {owner} (YYYY-MM-DD-HHMMSS_{owner}_<what>), or agree with {owner} to move the table"
                    ),
                    None => write!(
                        f,
                        ", which no module owns: add {table} to `owns` in the TABLES of the module it belongs to, and \
                         change it in that module's migrations"
                    ),
                }
            }
            MigrationViolation::Undeclared { migration, table, folder_owner } => write!(
                f,
                "migration {migration} creates {table}, which no module declares: add {table} to `owns` in \
                 {folder_owner}'s TABLES"
            ),
        }
    }
}

/// The module a migration folder belongs to: `2026-11-28-120300_catalog_products` is the
/// catalog's; diesel's setup is nobody's (`Ok(None)`); a name without an owner is an error.
pub fn folder_owner(name: &str) -> Result<Option<Module>, MigrationViolation> {
    if name == DIESEL_SETUP {
        return Ok(None);
    }
    let bad = || MigrationViolation::BadName { migration: name.to_owned() };
    let (timestamp, rest) = name.split_once('_').ok_or_else(bad)?;
    let timestamp_shape = timestamp.len() == 17
        && timestamp
            .char_indices()
            .all(|(index, c)| if [4, 7, 10].contains(&index) { c == '-' } else { c.is_ascii_digit() });
    let (owner, what) = rest.split_once('_').ok_or_else(bad)?;
    let owner = Module::ALL.into_iter().find(|module| module.name() == owner).ok_or_else(bad)?;
    if !timestamp_shape || what.is_empty() {
        return Err(bad());
    }
    Ok(Some(owner))
}

/// Checks migrations, oldest first (in the order given). A table's owner is the module whose
/// `TABLES` owns it (`owner_of`); a table no module owns any more, because a later migration
/// drops it, belongs to the module whose migration created it.
pub fn check_migrations(
    migrations: &[MigrationScripts],
    owner_of: impl Fn(&str) -> Option<Module>,
) -> Vec<MigrationViolation> {
    let scripts: Vec<(Vec<Touch>, Vec<Touch>)> =
        migrations.iter().map(|migration| (touched_tables(&migration.up), touched_tables(&migration.down))).collect();
    let mut violations = Vec::new();
    let mut created_by: BTreeMap<String, Option<Module>> = BTreeMap::new();
    for (index, (migration, (up, down))) in migrations.iter().zip(&scripts).enumerate() {
        let folder_owner = match folder_owner(&migration.name) {
            Ok(owner) => owner,
            Err(violation) => {
                violations.push(violation);
                continue;
            }
        };
        let dropped_later: BTreeSet<&str> = scripts[index + 1..]
            .iter()
            .flat_map(|(up, _)| up.iter().filter(|touch| touch.action == Action::Drops))
            .map(|touch| touch.table.as_str())
            .collect();
        for (script, touches) in [("up.sql", up), ("down.sql", down)] {
            for touch in touches {
                let declared = owner_of(&touch.table);
                if script == "up.sql" && touch.action == Action::Creates && declared.is_none() {
                    // Whoever creates a table nobody declares owns it until it is dropped; recorded
                    // even when that is a violation, so that the table's indexes add none.
                    created_by.insert(touch.table.clone(), folder_owner);
                    if let Some(folder_owner) = folder_owner
                        && !dropped_later.contains(touch.table.as_str())
                    {
                        violations.push(MigrationViolation::Undeclared {
                            migration: migration.name.clone(),
                            table: touch.table.clone(),
                            folder_owner,
                        });
                        continue;
                    }
                }
                let owner = declared.or_else(|| created_by.get(&touch.table).copied().flatten());
                if folder_owner.is_none() || owner != folder_owner {
                    violations.push(MigrationViolation::NotItsTable {
                        migration: migration.name.clone(),
                        script,
                        action: touch.action,
                        table: touch.table.clone(),
                        owner,
                        folder_owner,
                    });
                }
            }
        }
    }
    violations
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// An identifier or keyword, lower-cased unless it was quoted.
    Word {
        text: String,
        quoted: bool,
    },
    /// The content of a string literal.
    Str(String),
    Punct(char),
}

impl Token {
    fn is(&self, keyword: &str) -> bool {
        matches!(self, Token::Word { text, quoted: false } if text == keyword)
    }
}

fn sql_tokens(sql: &str, tokens: &mut Vec<Token>) {
    let chars: Vec<char> = sql.chars().collect();
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        let next = chars.get(index + 1).copied();
        if c.is_whitespace() {
            index += 1;
        } else if c == '-' && next == Some('-') {
            while index < chars.len() && chars[index] != '\n' {
                index += 1;
            }
        } else if c == '/' && next == Some('*') {
            index = super::scan::after_block_comment(&chars, index);
        } else if c == '\'' {
            // E'..' strings take backslash escapes; the E came as a word just before.
            let escapes = index > 0
                && matches!(chars[index - 1], 'e' | 'E')
                && tokens.last().is_some_and(|token| token.is("e"))
                && (index < 2 || !is_word(chars[index - 2]));
            if escapes {
                tokens.pop();
            }
            let mut content = String::new();
            index += 1;
            while index < chars.len() {
                match chars[index] {
                    '\\' if escapes => {
                        content.extend(chars.get(index + 1));
                        index += 2;
                    }
                    '\'' if chars.get(index + 1) == Some(&'\'') => {
                        content.push('\'');
                        index += 2;
                    }
                    '\'' => {
                        index += 1;
                        break;
                    }
                    other => {
                        content.push(other);
                        index += 1;
                    }
                }
            }
            tokens.push(Token::Str(content));
        } else if c == '$'
            && let Some(tag_end) = dollar_tag_end(&chars, index)
        {
            let tag: String = chars[index..=tag_end].iter().collect();
            let body_start = tag_end + 1;
            let tag_chars: Vec<char> = tag.chars().collect();
            let body_end =
                (body_start..chars.len()).find(|&at| chars[at..].starts_with(&tag_chars)).unwrap_or(chars.len());
            let body: String = chars[body_start..body_end].iter().collect();
            sql_tokens(&body, tokens);
            index = (body_end + tag_chars.len()).min(chars.len());
        } else if c == '"' {
            let mut text = String::new();
            index += 1;
            while index < chars.len() {
                if chars[index] == '"' {
                    if chars.get(index + 1) == Some(&'"') {
                        text.push('"');
                        index += 2;
                        continue;
                    }
                    index += 1;
                    break;
                }
                text.push(chars[index]);
                index += 1;
            }
            tokens.push(Token::Word { text, quoted: true });
        } else if is_word(c) {
            let start = index;
            while index < chars.len() && is_word(chars[index]) {
                index += 1;
            }
            let text: String = chars[start..index].iter().collect();
            tokens.push(Token::Word { text: text.to_lowercase(), quoted: false });
        } else {
            tokens.push(Token::Punct(c));
            index += 1;
        }
    }
}

/// The closing `$` of a dollar-quote tag starting at `start` (`$$`, `$body$`), if it is one and
/// not a parameter such as `$1`.
fn dollar_tag_end(chars: &[char], start: usize) -> Option<usize> {
    let mut index = start + 1;
    if chars.get(index).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    while let Some(&c) = chars.get(index) {
        match c {
            '$' => return Some(index),
            c if c.is_alphanumeric() || c == '_' => index += 1,
            _ => return None,
        }
    }
    None
}

/// Every table `sql` touches, in order.
pub fn touched_tables(sql: &str) -> Vec<Touch> {
    let mut tokens = Vec::new();
    sql_tokens(sql, &mut tokens);
    let mut touches = Vec::new();
    let mut touch = |table: Option<String>, action: Action| {
        if let Some(table) = table {
            touches.push(Touch { table, action });
        }
    };
    let at = |index: usize, keyword: &str| tokens.get(index).is_some_and(|token| token.is(keyword));
    // Skips the keywords of `words` that appear, in order, from `index`.
    let skip = |mut index: usize, words: &[&str]| {
        for word in words {
            if at(index, word) {
                index += 1;
            }
        }
        index
    };
    // The position of the first `on` within the statement from `index`.
    let on_after = |index: usize| {
        (index..tokens.len()).take_while(|&at| tokens[at] != Token::Punct(';')).find(|&position| at(position, "on"))
    };
    for index in 0..tokens.len() {
        let token = &tokens[index];
        if token.is("create") {
            let mut cursor = skip(index + 1, &["or", "replace", "global", "local", "temporary", "temp", "unlogged"]);
            cursor = skip(cursor, &["constraint", "unique"]);
            if at(cursor, "table") {
                let (table, after) = name_at(&tokens, skip(cursor + 1, &["if", "not", "exists"]));
                touch(table, Action::Creates);
                if at(after, "partition") && at(after + 1, "of") {
                    touch(name_at(&tokens, after + 2).0, Action::Alters);
                }
            } else if at(cursor, "index") {
                if let Some(on) = on_after(cursor) {
                    touch(name_at(&tokens, skip(on + 1, &["only"])).0, Action::Indexes);
                }
            } else if at(cursor, "trigger")
                && let Some(on) = on_after(cursor)
            {
                touch(name_at(&tokens, on + 1).0, Action::Triggers);
            }
        } else if token.is("alter") {
            if at(index + 1, "table") {
                let (table, _) = name_at(&tokens, skip(index + 2, &["if", "exists", "only"]));
                touch(table, Action::Alters);
                let statement = (index..tokens.len()).take_while(|&at| tokens[at] != Token::Punct(';'));
                if let Some(rename) =
                    statement.into_iter().find(|&position| at(position, "rename") && at(position + 1, "to"))
                {
                    touch(name_at(&tokens, rename + 2).0, Action::Creates);
                }
            } else if at(index + 1, "trigger")
                && let Some(on) = on_after(index + 1)
            {
                touch(name_at(&tokens, on + 1).0, Action::Triggers);
            }
        } else if token.is("drop") {
            if at(index + 1, "table") {
                let mut cursor = skip(index + 2, &["if", "exists"]);
                loop {
                    let (table, after) = name_at(&tokens, cursor);
                    touch(table, Action::Drops);
                    if tokens.get(after) != Some(&Token::Punct(',')) {
                        break;
                    }
                    cursor = after + 1;
                }
            } else if at(index + 1, "trigger")
                && let Some(on) = on_after(index + 1)
            {
                touch(name_at(&tokens, on + 1).0, Action::Triggers);
            }
        } else if token.is("comment") && at(index + 1, "on") {
            if at(index + 2, "table") {
                touch(name_at(&tokens, index + 3).0, Action::Comments);
            } else if at(index + 2, "column") {
                let (parts, _) = qualified_name(&tokens, index + 3);
                touch(parts.len().checked_sub(2).map(|table| parts[table].clone()), Action::Comments);
            } else if (at(index + 2, "constraint") || at(index + 2, "trigger"))
                && let Some(on) = on_after(index + 2)
                && !at(on + 1, "domain")
            {
                touch(name_at(&tokens, on + 1).0, Action::Comments);
            }
        } else if token.is("diesel_manage_updated_at")
            && tokens.get(index + 1) == Some(&Token::Punct('('))
            && let Some(Token::Str(regclass)) = tokens.get(index + 2)
        {
            touch(table_of_regclass(regclass), Action::ManagesUpdatedAt);
        } else if (token.is("insert") || token.is("merge")) && at(index + 1, "into") {
            touch(name_at(&tokens, index + 2).0, Action::Writes);
        } else if token.is("delete") && at(index + 1, "from") {
            touch(name_at(&tokens, skip(index + 2, &["only"])).0, Action::Writes);
        } else if token.is("update") {
            // `UPDATE [ONLY] t [*] [[AS] alias] SET`; not `BEFORE UPDATE ON`, `ON UPDATE CASCADE`.
            let (table, mut after) = name_at(&tokens, skip(index + 1, &["only"]));
            after = skip(after, &["*"]);
            let sets = at(after, "set")
                || (at(after + 1, "set") && !at(after, "as"))
                || (at(after, "as") && at(after + 2, "set"));
            if sets {
                touch(table, Action::Writes);
            }
        } else if token.is("truncate") && !at(index + 1, "on") && !at(index + 1, "or") {
            // Not `AFTER DELETE OR TRUNCATE ON t`: an event a trigger fires on, not a statement.
            let mut cursor = skip(index + 1, &["table", "only"]);
            loop {
                let (table, after) = name_at(&tokens, cursor);
                touch(table, Action::Writes);
                let after = if tokens.get(after) == Some(&Token::Punct('*')) { after + 1 } else { after };
                if tokens.get(after) != Some(&Token::Punct(',')) {
                    break;
                }
                cursor = skip(after + 1, &["only"]);
            }
        }
    }
    touches
}

/// The dotted name at `index` (`public.products`, `"Odd"`), its parts, and the index after it.
fn qualified_name(tokens: &[Token], mut index: usize) -> (Vec<String>, usize) {
    let mut parts = Vec::new();
    while let Some(Token::Word { text, .. }) = tokens.get(index) {
        parts.push(text.clone());
        index += 1;
        if tokens.get(index) != Some(&Token::Punct('.')) {
            break;
        }
        index += 1;
    }
    (parts, index)
}

/// The table named at `index` (the last part of a schema-qualified name), and the index after it.
fn name_at(tokens: &[Token], index: usize) -> (Option<String>, usize) {
    let (mut parts, after) = qualified_name(tokens, index);
    (parts.pop(), after)
}

/// The table of a `regclass` literal: `products`, `public.products`, `"Products"`.
fn table_of_regclass(text: &str) -> Option<String> {
    let mut tokens = Vec::new();
    sql_tokens(text, &mut tokens);
    name_at(&tokens, 0).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touches(sql: &str) -> Vec<(String, Action)> {
        touched_tables(sql).into_iter().map(|touch| (touch.table, touch.action)).collect()
    }

    fn pairs(expected: &[(&str, Action)]) -> Vec<(String, Action)> {
        expected.iter().map(|(table, action)| ((*table).to_owned(), *action)).collect()
    }

    #[test]
    fn every_kind_of_statement_names_its_table() {
        let sql = r#"
            CREATE TABLE IF NOT EXISTS public.a (id int REFERENCES products (id));
            create unlogged table B (x int);
            CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS c_idx ON ONLY c USING gin (name);
            CREATE INDEX ON d ((lower(x)));
            ALTER TABLE IF EXISTS ONLY e ADD COLUMN y int;
            ALTER TABLE f RENAME TO g;
            DROP TABLE IF EXISTS h, public.i CASCADE;
            CREATE OR REPLACE TRIGGER t BEFORE INSERT OR UPDATE OF x, y ON j FOR EACH ROW EXECUTE FUNCTION f();
            DROP TRIGGER t ON k;
            CREATE TRIGGER u AFTER DELETE OR TRUNCATE ON k2 FOR EACH STATEMENT EXECUTE FUNCTION f();
            COMMENT ON TABLE l IS 'a table';
            COMMENT ON COLUMN public.m.x IS 'a column';
            SELECT diesel_manage_updated_at('n');
            INSERT INTO o (x) SELECT x FROM products;
            UPDATE p AS q SET x = 1;
            DELETE FROM ONLY r WHERE true;
            TRUNCATE s, ONLY t2;
            CREATE TABLE "Quoted" (x int);
        "#;
        use Action::*;
        assert_eq!(
            touches(sql),
            pairs(&[
                ("a", Creates),
                ("b", Creates),
                ("c", Indexes),
                ("d", Indexes),
                ("e", Alters),
                ("f", Alters),
                ("g", Creates),
                ("h", Drops),
                ("i", Drops),
                ("j", Triggers),
                ("k", Triggers),
                ("k2", Triggers),
                ("l", Comments),
                ("m", Comments),
                ("n", ManagesUpdatedAt),
                ("o", Writes),
                ("p", Writes),
                ("r", Writes),
                ("s", Writes),
                ("t2", Writes),
                ("Quoted", Creates),
            ])
        );
    }

    #[test]
    fn comments_strings_and_look_alikes_name_no_table() {
        let sql = r#"
            -- ALTER TABLE orders ADD COLUMN x int;
            /* DROP TABLE products; /* nested */ CREATE TABLE still_a_comment (x int); */
            COMMENT ON TABLE mine IS 'DROP TABLE orders; ALTER TABLE products';
            SELECT E'it\'s DROP TABLE orders';
            CREATE TABLE mine_too (
                order_id uuid REFERENCES orders (id) ON UPDATE CASCADE ON DELETE SET NULL,
                status text DEFAULT 'UPDATE orders SET x = 1'
            );
            SELECT id FROM orders FOR UPDATE OF orders SKIP LOCKED;
            ALTER SEQUENCE order_number_seq OWNED BY orders.number;
        "#;
        assert_eq!(touches(sql), pairs(&[("mine", Action::Comments), ("mine_too", Action::Creates)]));
    }

    #[test]
    fn dollar_quoted_bodies_are_read_as_sql() {
        let sql = "DO $$ BEGIN ALTER TABLE orders ADD COLUMN x int; END $$;\n\
                   CREATE FUNCTION f() RETURNS trigger AS $body$ BEGIN UPDATE stock SET n = $1; RETURN NEW; END; $body$ LANGUAGE plpgsql;";
        assert_eq!(touches(sql), pairs(&[("orders", Action::Alters), ("stock", Action::Writes)]));
    }

    #[test]
    fn folder_names_give_the_owner() {
        assert_eq!(folder_owner("2026-11-28-120300_catalog_products"), Ok(Some(Module::Catalog)));
        assert_eq!(folder_owner(DIESEL_SETUP), Ok(None));
        for bad in
            ["2026-11-28-120500_orders", "2026-11-28-120500_shipping_labels", "20261128120500_orders_x", "orders_x"]
        {
            assert_eq!(folder_owner(bad), Err(MigrationViolation::BadName { migration: bad.to_owned() }), "{bad}");
        }
    }
}
