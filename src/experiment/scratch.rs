//! The experiment's scratch databases, and who owns them.
//!
//! A run takes a random token and holds `pg_advisory_lock(OWNER_LOCK_CLASS, token)` on the
//! server's `postgres` database, from before it creates its first scratch database until it has
//! dropped its last; every one of them is named `agora_race_<variant>_<token>`. The lock ends
//! with the run's session, however the run ends: a process that is killed loses it at once. So
//! a scratch database whose lock is free belongs to no live run, and start-up drops it
//! ([`remove_leftovers`]); one whose lock is held belongs to a run in progress, in this process or
//! in another agora on the same server, and is left alone.

use std::sync::Mutex;

use diesel::prelude::*;
use diesel::r2d2::ConnectionManager;
use diesel::sql_types::{Bool, Integer, Text};
use rand::Rng;

use super::{CONNECTIONS, ExperimentError, OWNER_LOCK_CLASS};
use crate::config::Config;
use crate::db;

const PREFIX: &str = "agora_race_";

/// libpq's `connect_timeout` for the scratch databases: a run never waits unboundedly to connect.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A run's claim on its scratch databases: the session holding the owner lock.
pub(super) struct Owner {
    token: u32,
    /// The server's maintenance database (`postgres`), where the lock lives.
    maintenance_url: String,
    /// The shop's database URL, whose server and parameters the scratch databases share.
    database_url: String,
    /// Who made the scratch databases, in their comments: the shop's database and this process.
    provenance: String,
    session: Mutex<PgConnection>,
}

#[derive(QueryableByName)]
struct Answer {
    #[diesel(sql_type = Bool)]
    answer: bool,
}

fn try_lock(conn: &mut PgConnection, token: u32) -> QueryResult<bool> {
    Ok(diesel::sql_query("SELECT pg_try_advisory_lock($1, $2) AS answer")
        .bind::<Integer, _>(OWNER_LOCK_CLASS)
        .bind::<Integer, _>(token as i32)
        .get_result::<Answer>(conn)?
        .answer)
}

fn unlock(conn: &mut PgConnection, token: u32) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_unlock($1, $2) AS answer")
        .bind::<Integer, _>(OWNER_LOCK_CLASS)
        .bind::<Integer, _>(token as i32)
        .get_result::<Answer>(conn)?;
    Ok(())
}

/// The owner's token of a scratch database's name: its last 8 hexadecimal digits.
fn token_of(name: &str) -> Option<u32> {
    let (_, token) = name.strip_prefix(PREFIX)?.rsplit_once('_')?;
    (token.len() == 8).then(|| u32::from_str_radix(token, 16).ok()).flatten()
}

/// `'text'` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl Owner {
    /// Takes a token no live run holds, and holds it.
    pub fn claim(config: &Config) -> Result<Owner, ExperimentError> {
        let (maintenance_url, shop) = db::split_database_url(&config.direct_database_url)?;
        let mut session = db::connect(&maintenance_url)?;
        let token = loop {
            let token = rand::rng().random::<u32>();
            if try_lock(&mut session, token)? {
                break token;
            }
        };
        let mut provenance =
            format!("checkout-race scratch database of {shop}, made by agora process {}", std::process::id());
        if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            provenance.push_str(&format!(" on {}", host.trim()));
        }
        Ok(Owner {
            token,
            maintenance_url,
            database_url: config.direct_database_url.clone(),
            provenance,
            session: Mutex::new(session),
        })
    }

    /// Creates the run's scratch database for `variant`; it is dropped with the value returned.
    pub fn scratch(&self, variant: &str) -> Result<Scratch, ExperimentError> {
        let name = format!("{PREFIX}{variant}_{:08x}", self.token);
        let url = db::with_database_name(&self.database_url, &name)?;
        let mut session = self.session.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        diesel::sql_query(format!("CREATE DATABASE {}", db::quote_identifier(&name))).execute(&mut *session)?;
        // From here on the value exists and drops the database, whatever fails next.
        let scratch = Scratch {
            url: db::with_connection_options(&url, CONNECT_TIMEOUT),
            maintenance_url: self.maintenance_url.clone(),
            name,
        };
        let comment =
            format!("COMMENT ON DATABASE {} IS {}", db::quote_identifier(&scratch.name), literal(&self.provenance));
        diesel::sql_query(comment).execute(&mut *session)?;
        Ok(scratch)
    }

    /// Ends every session on the run's scratch databases, so that whatever the run still waits
    /// for there (a statement, a lock) fails at once.
    pub fn end_sessions(&self) {
        let ended = db::connect(&self.maintenance_url).map_err(ExperimentError::from).and_then(|mut conn| {
            diesel::sql_query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname LIKE $1 AND pid <> pg_backend_pid()",
            )
            .bind::<Text, _>(format!("agora\\_race\\_%\\_{:08x}", self.token))
            .execute(&mut conn)
            .map_err(ExperimentError::from)
        });
        if let Err(error) = ended {
            log::warn!("could not end the sessions of the experiment's scratch databases: {error}");
        }
    }
}

impl From<db::SetupError> for ExperimentError {
    fn from(error: db::SetupError) -> Self {
        ExperimentError::Setup(error.into())
    }
}

/// A database created for the experiment and dropped with this value.
pub(super) struct Scratch {
    pub url: String,
    maintenance_url: String,
    pub name: String,
}

pub(super) type Pool = r2d2::Pool<ConnectionManager<PgConnection>>;

impl Scratch {
    pub fn connect(&self) -> Result<PgConnection, ExperimentError> {
        Ok(PgConnection::establish(&self.url)?)
    }

    /// Connections the buyers share: far fewer than buyers, as a service's pool would be.
    pub fn pool(&self) -> Result<Pool, ExperimentError> {
        r2d2::Pool::builder()
            .max_size(CONNECTIONS)
            .min_idle(Some(0))
            .connection_timeout(super::POOL_WAIT)
            .build(ConnectionManager::new(&self.url))
            .map_err(ExperimentError::from)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // WITH (FORCE): buyers' sessions still open (a failed run) end with it.
        let dropped = db::connect(&self.maintenance_url).map_err(ExperimentError::from).and_then(|mut conn| {
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db::quote_identifier(&self.name)))
                .execute(&mut conn)
                .map_err(ExperimentError::from)
        });
        if let Err(error) = dropped {
            log::warn!("could not drop the experiment's database {}: {error}", self.name);
        }
    }
}

#[derive(QueryableByName)]
struct Named {
    #[diesel(sql_type = Text)]
    datname: String,
}

/// Drops the scratch databases on `database_url`'s server that no live run owns: those a run
/// left behind when its process died. Run at start-up (`agora serve`, `agora experiment`).
/// Returns the names dropped.
///
/// A database is dropped only while its owner's lock is free, and without `FORCE`: one that
/// someone is connected to (a run of an agora from before owners took the lock) is left.
pub fn remove_leftovers(database_url: &str) -> Result<Vec<String>, ExperimentError> {
    let (maintenance_url, _) = db::split_database_url(database_url)?;
    let mut conn = db::connect(&maintenance_url)?;
    let names: Vec<String> = diesel::sql_query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'agora\\_race\\_%' AND NOT datistemplate ORDER BY datname",
    )
    .load::<Named>(&mut conn)?
    .into_iter()
    .map(|row| row.datname)
    .collect();
    let mut removed = Vec::new();
    for name in names {
        let token = token_of(&name);
        if let Some(token) = token
            && !try_lock(&mut conn, token)?
        {
            continue; // a live run's
        }
        let dropped =
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {}", db::quote_identifier(&name))).execute(&mut conn);
        if let Some(token) = token {
            unlock(&mut conn, token)?;
        }
        match dropped {
            Ok(_) => removed.push(name),
            Err(error) => log::warn!("left the experiment's database {name} in place: {error}"),
        }
    }
    Ok(removed)
}

/// [`remove_leftovers`] at start-up: says what it dropped, and never stops the start.
pub fn remove_leftovers_at_start(config: &Config) {
    match remove_leftovers(&config.direct_database_url) {
        Ok(removed) if removed.is_empty() => {}
        Ok(removed) => log::info!(
            "dropped {} scratch database(s) of checkout races that ended without cleaning up: {}",
            removed.len(),
            removed.join(", ")
        ),
        Err(error) => log::warn!("could not look for scratch databases left by checkout races: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_token_is_read_from_the_name() {
        assert_eq!(token_of("agora_race_naive_0badf00d"), Some(0x0bad_f00d));
        assert_eq!(token_of("agora_race_inventory_deadbeef"), Some(0xdead_beef));
        assert_eq!(token_of("agora_race_naive"), None);
        assert_eq!(token_of("agora_race_naive_0badf00d1"), None);
        assert_eq!(token_of("shop_naive_0badf00d"), None);
    }

    #[test]
    fn comments_are_quoted() {
        assert_eq!(literal("it's"), "'it''s'");
    }
}
