//! What the benchmarks need: where PostgreSQL is, their settings, their databases migrated.
// Each benchmark uses a part of it.
#![allow(dead_code)]

/// A whole-number setting from the environment.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// The maintenance database of the server named by AGORA_TEST_DATABASE_URL or DATABASE_URL.
pub fn server_url() -> String {
    let url = std::env::var("AGORA_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    agora::db::split_database_url(&url).map(|(maintenance, _)| maintenance).unwrap_or(url)
}

/// The URL of database `name` on that server.
pub fn database_url(name: &str) -> String {
    agora::db::with_database_name(&server_url(), name).expect("a server URL names its maintenance database")
}

/// Creates and migrates the bench database `name` on the bench's server.
pub fn migrate(name: &str) {
    migrate_at(&database_url(name));
}

/// Creates and migrates the database at `url` with the release `agora` (`agora migrate`).
pub fn migrate_at(url: &str) {
    let migrated = std::process::Command::new(env!("CARGO_BIN_EXE_agora"))
        .arg("migrate")
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .status()
        .unwrap();
    assert!(migrated.success(), "agora migrate failed");
}
