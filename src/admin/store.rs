//! The admin shell's tables: `admin_users`, `admin_login_failures`, `admin_secrets`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::config::SessionLifetime;

/// The rule `admin_users.username` is checked against in the database.
pub static USERNAME: crate::input::Pattern = crate::input::Pattern::new(
    "^[a-z0-9_.-]{1,64}$",
    64,
    "must be 1 to 64 lower-case letters, digits, dots, dashes or underscores",
);

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = crate::schema::admin_users)]
pub struct AdminUser {
    pub id: Uuid,
    pub username: String,
    pub password_hash: String,
}

pub fn find_user(conn: &mut PgConnection, name: &str) -> QueryResult<Option<AdminUser>> {
    use crate::schema::admin_users::dsl::*;
    admin_users.filter(username.eq(name)).select(AdminUser::as_select()).first(conn).optional()
}

pub fn any_user_exists(conn: &mut PgConnection) -> QueryResult<bool> {
    use crate::schema::admin_users::dsl::*;
    diesel::select(diesel::dsl::exists(admin_users.select(id))).get_result(conn)
}

/// Creates the user unless one of that name exists; returns whether it was created.
pub fn create_user(conn: &mut PgConnection, name: &str, hash: &str) -> QueryResult<bool> {
    use crate::schema::admin_users::dsl::*;
    let inserted = diesel::insert_into(admin_users)
        .values((username.eq(name), password_hash.eq(hash)))
        .on_conflict(username)
        .do_nothing()
        .execute(conn)?;
    Ok(inserted == 1)
}

/// Serializes sign-in attempts for one user name and for one client address until the
/// transaction ends, so that counting the recent failures and recording a new one are one step.
/// Every attempt takes the name's lock before the address's: a fixed order, no deadlock.
pub fn lock_sign_in_attempts(conn: &mut PgConnection, name: &str, ip: &str) -> QueryResult<()> {
    diesel::sql_query(
        "SELECT pg_advisory_xact_lock(hashtextextended('admin sign-in by name: ' || $1, 0)), \
                pg_advisory_xact_lock(hashtextextended('admin sign-in from: ' || $2, 0))",
    )
    .bind::<diesel::sql_types::Text, _>(name)
    .bind::<diesel::sql_types::Text, _>(ip)
    .execute(conn)?;
    Ok(())
}

/// Failures since `since`, counted for a user name or a client address.
pub struct RecentFailures {
    pub count: i64,
    pub oldest: Option<DateTime<Utc>>,
}

pub fn recent_failures(
    conn: &mut PgConnection,
    name: &str,
    ip: &str,
    since: DateTime<Utc>,
) -> QueryResult<(RecentFailures, RecentFailures)> {
    use crate::schema::admin_login_failures::dsl::*;
    let (by_user, oldest_by_user): (i64, Option<DateTime<Utc>>) = admin_login_failures
        .filter(username.eq(name))
        .filter(failed_at.gt(since))
        .select((diesel::dsl::count_star(), diesel::dsl::min(failed_at)))
        .get_result(conn)?;
    let (by_ip, oldest_by_ip): (i64, Option<DateTime<Utc>>) = admin_login_failures
        .filter(client_ip.eq(ip))
        .filter(failed_at.gt(since))
        .select((diesel::dsl::count_star(), diesel::dsl::min(failed_at)))
        .get_result(conn)?;
    Ok((
        RecentFailures { count: by_user, oldest: oldest_by_user },
        RecentFailures { count: by_ip, oldest: oldest_by_ip },
    ))
}

/// Records an attempt as failed before its password is checked; a right password removes it.
pub fn record_failure(conn: &mut PgConnection, name: &str, ip: &str) -> QueryResult<i64> {
    use crate::schema::admin_login_failures::dsl::*;
    diesel::insert_into(admin_login_failures)
        .values((username.eq(name), client_ip.eq(ip)))
        .returning(id)
        .get_result(conn)
}

/// After a successful sign-in the user's earlier failures no longer count (the attempt's own
/// row among them); old rows of anyone are pruned on the way.
pub fn clear_failures(conn: &mut PgConnection, name: &str, older_than: DateTime<Utc>) -> QueryResult<()> {
    use crate::schema::admin_login_failures::dsl::*;
    diesel::delete(admin_login_failures.filter(username.eq(name).or(failed_at.lt(older_than)))).execute(conn)?;
    Ok(())
}

/// The secret called `secret_name`, created from `generate` the first time. Several processes
/// starting at once agree on one value: the first insert wins, everyone reads it back.
pub fn secret(conn: &mut PgConnection, secret_name: &str, generate: impl FnOnce() -> Vec<u8>) -> QueryResult<Vec<u8>> {
    use crate::schema::admin_secrets::dsl::*;
    diesel::insert_into(admin_secrets)
        .values((name.eq(secret_name), value.eq(generate())))
        .on_conflict(name)
        .do_nothing()
        .execute(conn)?;
    admin_secrets.filter(name.eq(secret_name)).select(value).first(conn)
}

pub struct NewSession {
    pub id: Uuid,
    pub key_hash: Vec<u8>,
    pub user_id: Option<Uuid>,
    pub state: serde_json::Value,
}

fn interval(duration: std::time::Duration) -> diesel::pg::data_types::PgInterval {
    diesel::pg::data_types::PgInterval::from_microseconds(duration.as_micros().min(i64::MAX as u128) as i64)
}

/// The state of a live session, recording this request as its latest; `None` when the key
/// names no session or one past either lifetime.
pub fn touch_session(
    conn: &mut PgConnection,
    hash: &[u8],
    lifetime: SessionLifetime,
) -> QueryResult<Option<serde_json::Value>> {
    diesel::sql_query(
        "UPDATE admin_sessions SET last_seen_at = now()
          WHERE key_hash = $1 AND last_seen_at > now() - $2 AND created_at > now() - $3
         RETURNING state",
    )
    .bind::<diesel::sql_types::Bytea, _>(hash)
    .bind::<diesel::sql_types::Interval, _>(interval(lifetime.idle))
    .bind::<diesel::sql_types::Interval, _>(interval(lifetime.absolute))
    .get_result::<SessionState>(conn)
    .optional()
    .map(|row| row.map(|row| row.state))
}

#[derive(QueryableByName)]
struct SessionState {
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    state: serde_json::Value,
}

/// Stores a new session (only sign-in makes one).
pub fn insert_session(conn: &mut PgConnection, session: &NewSession) -> QueryResult<()> {
    use crate::schema::admin_sessions::dsl::*;
    diesel::insert_into(admin_sessions)
        .values((
            id.eq(session.id),
            key_hash.eq(&session.key_hash),
            user_id.eq(session.user_id),
            state.eq(&session.state),
        ))
        .execute(conn)?;
    Ok(())
}

/// Removes the sessions that have ended, past either lifetime; returns how many. Each condition
/// has an index of its own (PostgreSQL combines them in a bitmap), so the work is the ended rows,
/// not the table.
pub fn prune_sessions(conn: &mut PgConnection, lifetime: SessionLifetime) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM admin_sessions WHERE last_seen_at < now() - $1 OR created_at < now() - $2")
        .bind::<diesel::sql_types::Interval, _>(interval(lifetime.idle))
        .bind::<diesel::sql_types::Interval, _>(interval(lifetime.absolute))
        .execute(conn)
}

pub fn update_session(
    conn: &mut PgConnection,
    hash: &[u8],
    new_user_id: Option<Uuid>,
    new_state: &serde_json::Value,
) -> QueryResult<()> {
    use crate::schema::admin_sessions::dsl::*;
    diesel::update(admin_sessions.filter(key_hash.eq(hash)))
        .set((user_id.eq(new_user_id), state.eq(new_state)))
        .execute(conn)?;
    Ok(())
}

pub fn delete_session(conn: &mut PgConnection, hash: &[u8]) -> QueryResult<()> {
    use crate::schema::admin_sessions::dsl::*;
    diesel::delete(admin_sessions.filter(key_hash.eq(hash))).execute(conn)?;
    Ok(())
}

/// A signed-in session of a user, as the account page lists it.
#[derive(Debug, Queryable)]
pub struct UserSession {
    pub id: Uuid,
    pub state: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

pub fn sessions_of(conn: &mut PgConnection, user: Uuid, lifetime: SessionLifetime) -> QueryResult<Vec<UserSession>> {
    use crate::schema::admin_sessions::dsl::*;
    let now = Utc::now();
    let idle = chrono::Duration::from_std(lifetime.idle).unwrap_or(chrono::Duration::MAX);
    let absolute = chrono::Duration::from_std(lifetime.absolute).unwrap_or(chrono::Duration::MAX);
    admin_sessions
        .filter(user_id.eq(user))
        .filter(last_seen_at.gt(now.checked_sub_signed(idle).unwrap_or(DateTime::<Utc>::MIN_UTC)))
        .filter(created_at.gt(now.checked_sub_signed(absolute).unwrap_or(DateTime::<Utc>::MIN_UTC)))
        .order(last_seen_at.desc())
        .select((id, state, created_at, last_seen_at))
        .load(conn)
}

/// Ends one session of `user` (another user's session id changes nothing); returns whether it existed.
pub fn revoke_session(conn: &mut PgConnection, user: Uuid, session: Uuid) -> QueryResult<bool> {
    use crate::schema::admin_sessions::dsl::*;
    Ok(diesel::delete(admin_sessions.filter(id.eq(session)).filter(user_id.eq(user))).execute(conn)? == 1)
}

/// Sets a new password hash and ends every session of the user but `keep`.
pub fn change_password(conn: &mut PgConnection, user: Uuid, new_hash: &str, keep: Option<Uuid>) -> QueryResult<usize> {
    conn.transaction(|conn| {
        {
            use crate::schema::admin_users::dsl::*;
            diesel::update(admin_users.filter(id.eq(user))).set(password_hash.eq(new_hash)).execute(conn)?;
        }
        use crate::schema::admin_sessions::dsl::*;
        let sessions = admin_sessions.filter(user_id.eq(user));
        match keep {
            Some(current) => diesel::delete(sessions.filter(id.ne(current))).execute(conn),
            None => diesel::delete(sessions).execute(conn),
        }
    })
}
