use std::collections::BTreeSet;
use std::process::Command;

use agora::db::MIGRATIONS;
use agora::inventory::MovementKind;
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

#[test]
fn every_migration_applies_reverts_and_reapplies_on_a_fresh_database() {
    let database = TestDatabase::empty();
    let mut conn = database.connect();
    let empty = schema_snapshot(&mut conn);
    let migrations = MigrationSource::<Pg>::migrations(&MIGRATIONS).unwrap();
    assert!(migrations.len() >= 9);

    for migration in &migrations {
        let before = schema_snapshot(&mut conn);
        conn.run_next_migration(MIGRATIONS).unwrap();
        let after = schema_snapshot(&mut conn);
        assert_ne!(before, after, "{} changes nothing", migration.name());
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
