//! The admin shell's tables: `admin_users`, `admin_login_failures`, `admin_secrets`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

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

/// Failed sign-ins since `since`, for this user name and for this client address.
pub fn recent_failures(
    conn: &mut PgConnection,
    name: &str,
    ip: &str,
    since: DateTime<Utc>,
) -> QueryResult<(i64, i64, Option<DateTime<Utc>>)> {
    use crate::schema::admin_login_failures::dsl::*;
    let (by_user, oldest): (i64, Option<DateTime<Utc>>) = admin_login_failures
        .filter(username.eq(name))
        .filter(failed_at.gt(since))
        .select((diesel::dsl::count_star(), diesel::dsl::min(failed_at)))
        .get_result(conn)?;
    let by_ip: i64 =
        admin_login_failures.filter(client_ip.eq(ip)).filter(failed_at.gt(since)).count().get_result(conn)?;
    Ok((by_user, by_ip, oldest))
}

pub fn record_failure(conn: &mut PgConnection, name: &str, ip: &str) -> QueryResult<()> {
    use crate::schema::admin_login_failures::dsl::*;
    diesel::insert_into(admin_login_failures).values((username.eq(name), client_ip.eq(ip))).execute(conn)?;
    Ok(())
}

/// After a successful sign-in the user's earlier failures no longer count; old rows of anyone
/// are pruned on the way.
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
