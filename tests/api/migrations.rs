use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use agora::architecture::coupling;
use agora::architecture::migrations::{
    Action, DIESEL_SETUP, MigrationScripts, MigrationViolation, check_migrations, touched_tables,
};
use agora::db::MIGRATIONS;
use agora::inventory::MovementKind;
use agora::kernel::Module;
use agora::notifications::{EmailKind, NotificationStatus};
use agora::orders::OrderStatus;
use agora::outbox::DeliveryStatus;
use agora::payments::PaymentStatus;
use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_migrations::MigrationHarness;

use crate::helpers::{TestDatabase, database_url, drop_database, maintenance_connection};

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// Every object a migration can create in the public schema, as sorted text lines.
fn schema_snapshot(conn: &mut PgConnection) -> Vec<String> {
    diesel::sql_query(
        r#"
        SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' null=' || is_nullable
               || ' default=' || coalesce(column_default, '') AS line
          FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'
        UNION ALL
        SELECT 'index ' || indexdef FROM pg_indexes
         WHERE schemaname = 'public' AND tablename <> '__diesel_schema_migrations'
        UNION ALL
        SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
          FROM pg_constraint
         WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> '__diesel_schema_migrations'
        UNION ALL
        SELECT 'function ' || proname || '(' || pg_get_function_identity_arguments(oid) || ')'
          FROM pg_proc WHERE pronamespace = 'public'::regnamespace
        UNION ALL
        SELECT 'trigger ' || tgname || ' on ' || tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal
        UNION ALL
        SELECT 'sequence ' || sequence_name FROM information_schema.sequences WHERE sequence_schema = 'public'
        UNION ALL
        SELECT 'extension ' || extname FROM pg_extension
        UNION ALL
        SELECT 'type ' || typname FROM pg_type
         WHERE typnamespace = 'public'::regnamespace AND typtype IN ('b', 'd', 'e', 'r', 'm') AND typcategory <> 'A'
        ORDER BY line
        "#,
    )
    .load::<Line>(conn)
    .unwrap()
    .into_iter()
    .map(|line| line.line)
    .collect()
}

/// Migrations that change rows and no schema object; their own tests check what they do.
const DATA_MIGRATIONS: &[&str] = &[
    // Stored event payloads get a version and their order (tests/api/email_golden.rs).
    "2026-12-06-140000_outbox_event_payload_snapshots",
];

#[test]
fn every_migration_applies_reverts_and_reapplies_on_a_fresh_database() {
    let database = TestDatabase::empty();
    let mut conn = database.connect();
    let empty = schema_snapshot(&mut conn);
    let migrations = MigrationSource::<Pg>::migrations(&MIGRATIONS).unwrap();
    assert!(migrations.len() >= 9);

    for migration in &migrations {
        let name = migration.name().to_string();
        let before = schema_snapshot(&mut conn);
        conn.run_next_migration(MIGRATIONS).unwrap();
        let after = schema_snapshot(&mut conn);
        if DATA_MIGRATIONS.contains(&name.as_str()) {
            assert_eq!(before, after, "{name} is listed as changing rows only, yet changes the schema");
        } else {
            assert_ne!(before, after, "{name} changes nothing (if it only changes rows, list it in DATA_MIGRATIONS)");
        }
        conn.revert_last_migration(MIGRATIONS).unwrap();
        let reverted = schema_snapshot(&mut conn);
        let leftovers: Vec<_> = reverted.iter().filter(|line| !before.contains(line)).collect();
        let lost: Vec<_> = before.iter().filter(|line| !reverted.contains(line)).collect();
        assert!(
            leftovers.is_empty() && lost.is_empty(),
            "down.sql of {} does not revert its up.sql: left {leftovers:?}, lost {lost:?}",
            migration.name()
        );
        conn.run_next_migration(MIGRATIONS).unwrap();
        assert_eq!(schema_snapshot(&mut conn), after, "{} re-applies differently", migration.name());
    }

    conn.revert_all_migrations(MIGRATIONS).unwrap();
    assert_eq!(schema_snapshot(&mut conn), empty, "reverting everything leaves the database as it was");
    conn.run_pending_migrations(MIGRATIONS).unwrap();
    let migrated = TestDatabase::migrated();
    assert_eq!(schema_snapshot(&mut conn), schema_snapshot(&mut migrated.connect()));
}

#[test]
fn schema_rs_matches_the_migrated_database() {
    // CI also diffs `diesel print-schema` against src/schema.rs; this catches drift without the CLI.
    let database = TestDatabase::migrated();
    #[derive(QueryableByName)]
    struct Column {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        column_name: String,
    }
    let columns = diesel::sql_query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
          WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'
          ORDER BY table_name, ordinal_position",
    )
    .load::<Column>(&mut database.connect())
    .unwrap();
    let mut in_database: Vec<(String, Vec<String>)> = Vec::new();
    for column in columns {
        match in_database.last_mut() {
            Some((table, names)) if *table == column.table_name => names.push(column.column_name),
            _ => in_database.push((column.table_name, vec![column.column_name])),
        }
    }
    let in_schema_rs: Vec<(String, Vec<String>)> = agora::architecture::schema_map::tables()
        .iter()
        .map(|table| (table.name.to_owned(), table.columns.iter().map(|c| c.to_string()).collect()))
        .collect();
    assert_eq!(in_schema_rs, in_database, "run `diesel print-schema > src/schema.rs`");
}

/// A database name that does not exist yet, dropped at the end of the test if it was created.
struct FreshName(String);

impl Drop for FreshName {
    fn drop(&mut self) {
        drop_database(&mut maintenance_connection(), &self.0);
    }
}

#[test]
fn agora_migrate_creates_and_migrates_a_missing_database() {
    let name = FreshName(format!("agora_test_{}", uuid::Uuid::new_v4().simple()));
    let url = database_url(&name.0);
    let output = Command::new(env!("CARGO_BIN_EXE_agora"))
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains(&format!("created database {}", name.0)), "{log}");
    assert!(log.contains("applied"), "{log}");

    let mut conn = PgConnection::establish(&url).unwrap();
    assert!(!conn.has_pending_migration(MIGRATIONS).unwrap());

    let again = Command::new(env!("CARGO_BIN_EXE_agora")).arg("migrate").env("DATABASE_URL", &url).output().unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("database schema is up to date"));
}

#[test]
fn agora_help_lists_the_commands() {
    let output = Command::new(env!("CARGO_BIN_EXE_agora")).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for command in ["serve", "migrate", "seed", "worker"] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
}

#[test]
fn an_invalid_setting_stops_agora_with_a_message_naming_it() {
    let output =
        Command::new(env!("CARGO_BIN_EXE_agora")).arg("migrate").env("AGORA_CURRENCY", "DOLLARS").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("AGORA_CURRENCY"));
}

/// The folders under migrations/, oldest first, as diesel runs them.
fn real_migrations() -> Vec<MigrationScripts> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().unwrap().is_dir())
        .map(|entry| entry.file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| MigrationScripts {
            up: std::fs::read_to_string(root.join(&name).join("up.sql")).unwrap(),
            down: std::fs::read_to_string(root.join(&name).join("down.sql")).unwrap_or_default(),
            name,
        })
        .collect()
}

/// The real migrations followed by fixtures (name, up.sql, down.sql), checked against the
/// modules' real declarations.
fn check_with(fixtures: &[(&str, &str, &str)]) -> Vec<MigrationViolation> {
    let mut migrations = real_migrations();
    migrations.extend(fixtures.iter().map(|(name, up, down)| MigrationScripts {
        name: (*name).to_owned(),
        up: (*up).to_owned(),
        down: (*down).to_owned(),
    }));
    check_migrations(&migrations, coupling::owner_of)
}

fn explained(violations: &[MigrationViolation]) -> Vec<String> {
    violations.iter().map(ToString::to_string).collect()
}

#[test]
fn migrations_change_only_their_own_modules_tables() {
    let violations = check_with(&[]);
    assert!(violations.is_empty(), "{:#?}", explained(&violations));

    // The check reads what the migrations do: between them they create every table of the schema.
    let created: BTreeSet<String> = real_migrations()
        .iter()
        .flat_map(|migration| touched_tables(&migration.up))
        .filter(|touch| touch.action == Action::Creates)
        .map(|touch| touch.table)
        .collect();
    let schema: BTreeSet<String> =
        agora::architecture::schema_map::tables().iter().map(|table| table.name.to_owned()).collect();
    assert_eq!(created, schema);
    assert_eq!(real_migrations()[0].name, DIESEL_SETUP);
}

fn not_its_table(
    migration: &str,
    script: &'static str,
    action: Action,
    table: &str,
    owner: Module,
    folder_owner: Module,
) -> MigrationViolation {
    MigrationViolation::NotItsTable {
        migration: migration.into(),
        script,
        action,
        table: table.into(),
        owner: Some(owner),
        folder_owner: Some(folder_owner),
    }
}

#[test]
fn migrations_altering_another_modules_table_fail() {
    let name = "2026-12-01-090000_payments_paid_at";
    let violations = check_with(&[(
        name,
        "ALTER TABLE orders ADD COLUMN paid_at timestamptz;",
        "alter table Orders drop column paid_at;",
    )]);
    assert_eq!(
        violations,
        vec![
            not_its_table(name, "up.sql", Action::Alters, "orders", Module::Orders, Module::Payments),
            not_its_table(name, "down.sql", Action::Alters, "orders", Module::Orders, Module::Payments),
        ]
    );
    let message = violations[0].to_string();
    for part in [name, "belongs to payments", "up.sql alters orders", "which orders owns", "_orders_<what>"] {
        assert!(message.contains(part), "{part} not in: {message}");
    }
}

#[test]
fn migrations_creating_another_modules_table_or_an_undeclared_one_fail() {
    let name = "2026-12-01-090100_orders_wishlists";
    let up = "CREATE TABLE IF NOT EXISTS public.products (id uuid PRIMARY KEY);\n\
              CREATE TABLE wishlists (customer_id uuid REFERENCES customers (id), product_id uuid REFERENCES products (id));";
    let violations = check_with(&[(name, up, "DROP TABLE wishlists;")]);
    assert_eq!(
        violations,
        vec![
            not_its_table(name, "up.sql", Action::Creates, "products", Module::Catalog, Module::Orders),
            MigrationViolation::Undeclared {
                migration: name.into(),
                table: "wishlists".into(),
                folder_owner: Module::Orders
            },
        ]
    );
    let message = violations[1].to_string();
    assert!(message.contains(name) && message.contains("add wishlists to `owns` in orders's TABLES"), "{message}");
}

#[test]
fn migrations_indexing_triggering_commenting_or_dropping_another_modules_table_fail() {
    let name = "2026-12-01-090200_inventory_tidy_up";
    let up = r#"
        CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS products_lower_sku_idx ON ONLY products (lower(sku));
        CREATE INDEX inventory_levels_on_hand_idx ON inventory_levels (on_hand);
        CREATE TRIGGER payments_audit AFTER INSERT OR UPDATE OF status ON payments
            FOR EACH ROW EXECUTE FUNCTION audit();
        COMMENT ON COLUMN public.customers.email IS 'lower-cased';
        SELECT diesel_manage_updated_at('Order_Lines');
        DROP TABLE IF EXISTS inventory_movements, payment_refunds CASCADE;
    "#;
    let violations = check_with(&[(name, up, "")]);
    let found: Vec<(String, Action, Option<Module>)> = violations
        .iter()
        .map(|violation| match violation {
            MigrationViolation::NotItsTable { table, action, owner, .. } => (table.clone(), *action, *owner),
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("products".to_owned(), Action::Indexes, Some(Module::Catalog)),
            ("payments".to_owned(), Action::Triggers, Some(Module::Payments)),
            ("customers".to_owned(), Action::Comments, Some(Module::Orders)),
            ("order_lines".to_owned(), Action::ManagesUpdatedAt, Some(Module::Orders)),
            ("payment_refunds".to_owned(), Action::Drops, Some(Module::Payments)),
        ]
    );
    assert!(violations[4].to_string().contains("up.sql drops payment_refunds, which payments owns"));
}

#[test]
fn migrations_may_mention_other_tables_in_comments_strings_and_references() {
    let up = r#"
        -- ALTER TABLE orders ADD COLUMN x int;
        /* DROP TABLE payments; */
        COMMENT ON TABLE products IS 'unlike ALTER TABLE orders, this is the catalog''s own';
        ALTER TABLE products ADD COLUMN brand_id uuid REFERENCES products (id) ON DELETE SET NULL;
    "#;
    let violations =
        check_with(&[("2026-12-01-090300_catalog_brands", up, "ALTER TABLE products DROP COLUMN brand_id;")]);
    assert!(violations.is_empty(), "{:#?}", explained(&violations));
}

#[test]
fn a_dropped_table_stays_its_creators() {
    let violations = check_with(&[
        ("2026-12-01-090400_inventory_holds", "CREATE TABLE stock_holds (id int);", "DROP TABLE stock_holds;"),
        ("2026-12-01-090500_orders_hold_index", "CREATE INDEX stock_holds_idx ON stock_holds (id);", ""),
        ("2026-12-01-090600_inventory_no_holds", "DROP TABLE stock_holds;", "CREATE TABLE stock_holds (id int);"),
    ]);
    assert_eq!(
        violations,
        vec![not_its_table(
            "2026-12-01-090500_orders_hold_index",
            "up.sql",
            Action::Indexes,
            "stock_holds",
            Module::Inventory,
            Module::Orders
        )]
    );
}

#[test]
fn migration_folders_name_their_module() {
    let violations = check_with(&[
        ("2026-12-01-090700_shipping_labels", "CREATE TABLE labels (id int);", ""),
        ("2026-12-01-090800_orders", "SELECT 1;", ""),
    ]);
    assert_eq!(
        violations,
        vec![
            MigrationViolation::BadName { migration: "2026-12-01-090700_shipping_labels".into() },
            MigrationViolation::BadName { migration: "2026-12-01-090800_orders".into() },
        ]
    );
    assert!(violations[0].to_string().contains("keeping its timestamp"));

    let mut migrations = real_migrations();
    migrations[0].up.push_str("\nCREATE TABLE helpers (id int);");
    let violations = check_migrations(&migrations, coupling::owner_of);
    assert!(
        matches!(&violations[..], [MigrationViolation::NotItsTable { folder_owner: None, owner: None, table, .. }] if table == "helpers"),
        "{violations:?}"
    );
}

/// The words the CHECK constraint on `table.column` admits (`column IN ('a', 'b')`).
fn admitted_words(conn: &mut PgConnection, table: &str, column: &str) -> BTreeSet<String> {
    let definitions = diesel::sql_query(
        "SELECT pg_get_constraintdef(oid) AS line FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c'",
    )
    .bind::<Text, _>(table)
    .load::<Line>(conn)
    .unwrap();
    // PostgreSQL prints `IN (...)` back as `= ANY (ARRAY['a'::text, 'b'::text])`.
    let start = format!("({column} = ANY (ARRAY[");
    let list = definitions
        .iter()
        .find_map(|definition| definition.line.split_once(start.as_str()))
        .and_then(|(_, rest)| rest.split_once("])"))
        .map(|(list, _)| list)
        .unwrap_or_else(|| panic!("no CHECK constraint lists the values of {table}.{column}"));
    list.split('\'').skip(1).step_by(2).map(str::to_owned).collect()
}

fn words<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> BTreeSet<String> {
    all.iter().map(|value| as_str(*value).to_owned()).collect()
}

#[test]
fn every_status_enum_has_exactly_the_words_its_check_constraint_admits() {
    let database = TestDatabase::migrated();
    let mut conn = database.connect();
    let expected = [
        ("orders", "status", words(&OrderStatus::ALL, OrderStatus::as_str)),
        ("payments", "status", words(&PaymentStatus::ALL, PaymentStatus::as_str)),
        ("notifications", "status", words(&NotificationStatus::ALL, NotificationStatus::as_str)),
        ("notifications", "kind", words(&EmailKind::ALL, EmailKind::as_str)),
        ("event_deliveries", "status", words(&DeliveryStatus::ALL, DeliveryStatus::as_str)),
        ("inventory_movements", "kind", words(&MovementKind::ALL, MovementKind::as_str)),
    ];
    for (table, column, words) in expected {
        assert_eq!(admitted_words(&mut conn, table, column), words, "{table}.{column}");
    }
}

#[test]
fn a_status_the_code_does_not_know_is_a_deserialization_error_not_a_panic() {
    let database = TestDatabase::migrated();
    let mut conn = database.connect();
    let known = diesel::select(diesel::dsl::sql::<Text>("'failed'")).get_result::<PaymentStatus>(&mut conn);
    assert_eq!(known.unwrap(), PaymentStatus::Failed);
    let unknown = diesel::select(diesel::dsl::sql::<Text>("'refused'")).get_result::<PaymentStatus>(&mut conn);
    match unknown {
        Err(diesel::result::Error::DeserializationError(error)) => {
            assert!(format!("{error:?}").contains("not a known PaymentStatus"), "{error:?}")
        }
        other => panic!("expected a deserialization error, got {other:?}"),
    }
}
