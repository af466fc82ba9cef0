//! The module-to-table map, enforced by PostgreSQL: one NOLOGIN role per module (see
//! [`crate::kernel::roles`]), with privileges derived from the modules' `TABLES` declarations.
//! The owner may read and write its tables and use their sequences; a declared reader may only
//! SELECT the declared tables; a declared writer may also change them; nobody gets anything else.
//!
//! [`apply`] runs after the migrations (`agora migrate`, `agora serve`), idempotently: it creates
//! missing roles, and rewrites a role's grants only when they differ from the declarations.

use std::collections::BTreeSet;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Array, Bool, Text};

use super::coupling;
use crate::db::quote_identifier;
use crate::kernel::{Module, TableAccess};

/// Any fixed number; the same in every agora process.
const PRIVILEGES_LOCK_KEY: i64 = 0x4147_4f52_415f_5052; // "AGORA_PR"

const OWNER_PRIVILEGES: &[&str] = &["SELECT", "INSERT", "UPDATE", "DELETE"];
const SEQUENCE_PRIVILEGES: &str = "USAGE, SELECT, UPDATE";

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error(
        "cannot create the module role {role}: {source} (the login user needs CREATEROLE; set AGORA_DB_ROLES=off to run \
         without per-module roles)"
    )]
    CreateRole {
        role: &'static str,
        #[source]
        source: DieselError,
    },
    #[error("cannot grant the module roles their privileges: {0}")]
    Grant(#[source] DieselError),
}

/// One privilege of one role on one table, as `information_schema.role_table_grants` lists it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, QueryableByName)]
pub struct TableGrant {
    #[diesel(sql_type = Text)]
    pub role: String,
    #[diesel(sql_type = Text)]
    pub table: String,
    #[diesel(sql_type = Text)]
    pub privilege: String,
}

/// The table privileges the declarations give each module role.
pub fn declared_grants(declarations: &[&TableAccess]) -> BTreeSet<TableGrant> {
    let mut grants = BTreeSet::new();
    let mut grant = |module: Module, table: &str, privileges: &[&str]| {
        for privilege in privileges {
            grants.insert(TableGrant {
                role: module.role().to_owned(),
                table: table.to_owned(),
                privilege: (*privilege).to_owned(),
            });
        }
    };
    for declaration in declarations {
        for table in declaration.owns {
            grant(declaration.module, table, OWNER_PRIVILEGES);
        }
        for used in declaration.reads {
            grant(declaration.module, used.table, &["SELECT"]);
        }
        for used in declaration.writes {
            grant(declaration.module, used.table, OWNER_PRIVILEGES);
        }
    }
    grants
}

/// The table privileges the module roles hold in the connected database.
pub fn actual_grants(conn: &mut PgConnection) -> QueryResult<BTreeSet<TableGrant>> {
    let roles: Vec<&str> = Module::ALL.iter().map(|module| module.role()).collect();
    let rows: Vec<TableGrant> = diesel::sql_query(
        "SELECT grantee::text AS role, table_name::text AS table, privilege_type::text AS privilege
           FROM information_schema.role_table_grants
          WHERE table_schema = 'public' AND grantee = ANY($1)",
    )
    .bind::<Array<Text>, _>(roles)
    .load(conn)?;
    Ok(rows.into_iter().collect())
}

#[derive(QueryableByName)]
struct TableName {
    #[diesel(sql_type = Text)]
    name: String,
}

fn existing_tables(conn: &mut PgConnection) -> QueryResult<BTreeSet<String>> {
    let rows: Vec<TableName> =
        diesel::sql_query("SELECT tablename::text AS name FROM pg_tables WHERE schemaname = 'public'").load(conn)?;
    Ok(rows.into_iter().map(|row| row.name).collect())
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    flag: bool,
}

fn flag(conn: &mut PgConnection, sql: &str, role: &str) -> QueryResult<bool> {
    Ok(diesel::sql_query(sql).bind::<Text, _>(role).get_result::<Flag>(conn)?.flag)
}

/// Creates the module roles if missing, lets the login user switch to them, and makes their
/// privileges equal to the declarations.
pub fn apply(conn: &mut PgConnection) -> Result<(), PrivilegeError> {
    for module in Module::ALL {
        ensure_role(conn, module.role())?;
    }
    let mut wanted = declared_grants(&coupling::declarations());
    conn.transaction(|conn| {
        // A table a module moved out (`agora split notifications --contract`) has no grants.
        let existing = existing_tables(conn)?;
        wanted.retain(|grant| existing.contains(&grant.table));
        // Several agora processes may start at once; one rewrites the grants, the rest find them done.
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(PRIVILEGES_LOCK_KEY)
            .execute(conn)?;
        let functions = declared_function_grants();
        if actual_grants(conn)? != wanted || !sequences_granted(conn)? || actual_function_grants(conn)? != functions {
            let statements = grant_statements(conn, &wanted)?;
            conn.batch_execute(&statements)?;
            conn.batch_execute(&function_statements())?;
            log::info!("granted the module roles the privileges their declarations name");
        }
        enable_statement_statistics(conn)
    })
    .map_err(PrivilegeError::Grant)
}

fn ensure_role(conn: &mut PgConnection, role: &'static str) -> Result<(), PrivilegeError> {
    let fail = |source| PrivilegeError::CreateRole { role, source };
    // Roles belong to the whole server, so agora processes on other databases may create the
    // same role at the same moment: losing that race is fine.
    for _attempt in 0..5 {
        let exists =
            flag(conn, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS flag", role).map_err(fail)?;
        let created = if exists { Ok(()) } else { conn.batch_execute(&format!("CREATE ROLE {role} NOLOGIN")) };
        match created {
            Ok(()) => {}
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => continue,
            Err(error) if error.to_string().contains("already exists") => continue,
            Err(error) => return Err(fail(error)),
        }
        // A superuser may switch to any role; anyone else must be a member.
        let member = flag(
            conn,
            "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                    OR pg_has_role(current_user, $1, 'MEMBER') AS flag",
            role,
        )
        .map_err(fail)?;
        if member {
            return Ok(());
        }
        match conn.batch_execute(&format!("GRANT {role} TO CURRENT_USER")) {
            Ok(()) => return Ok(()),
            Err(error) if error.to_string().contains("concurrently") => continue,
            Err(error) => return Err(fail(error)),
        }
    }
    Err(fail(DieselError::RollbackTransaction))
}

#[derive(QueryableByName)]
struct OwnedSequence {
    #[diesel(sql_type = Text)]
    table: String,
    #[diesel(sql_type = Text)]
    sequence: String,
}

/// Each table's sequences (serial and identity columns, `OWNED BY` sequences).
fn owned_sequences(conn: &mut PgConnection) -> QueryResult<Vec<OwnedSequence>> {
    diesel::sql_query(
        "SELECT t.relname::text AS table, s.relname::text AS sequence
           FROM pg_class s
           JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid AND d.deptype IN ('a', 'i')
           JOIN pg_class t ON t.oid = d.refobjid
           JOIN pg_namespace n ON n.oid = t.relnamespace
          WHERE s.relkind = 'S' AND n.nspname = 'public'",
    )
    .load(conn)
}

/// Whether each owner may use its tables' sequences (sequences are not in `role_table_grants`).
fn sequences_granted(conn: &mut PgConnection) -> QueryResult<bool> {
    for owned in owned_sequences(conn)? {
        let Some(owner) = coupling::owner_of(&owned.table) else { continue };
        let granted = diesel::sql_query("SELECT has_sequence_privilege($1, $2, 'USAGE') AS flag")
            .bind::<Text, _>(owner.role())
            .bind::<Text, _>(quote_identifier(&owned.sequence))
            .get_result::<Flag>(conn)?
            .flag;
        if !granted {
            return Ok(false);
        }
    }
    Ok(true)
}

fn grant_statements(conn: &mut PgConnection, wanted: &BTreeSet<TableGrant>) -> QueryResult<String> {
    let mut sql = String::new();
    for module in Module::ALL {
        let role = module.role();
        sql.push_str(&format!(
            "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}; \
             REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role};\n"
        ));
    }
    for grant in wanted {
        sql.push_str(&format!("GRANT {} ON {} TO {};\n", grant.privilege, quote_identifier(&grant.table), grant.role));
    }
    for owned in owned_sequences(conn)? {
        if let Some(owner) = coupling::owner_of(&owned.table) {
            sql.push_str(&format!(
                "GRANT {SEQUENCE_PRIVILEGES} ON SEQUENCE {} TO {};\n",
                quote_identifier(&owned.sequence),
                owner.role()
            ));
        }
    }
    Ok(sql)
}

/// One SQL function a module role may execute, or owns (`privilege` = `OWNER`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, QueryableByName)]
pub struct FunctionGrant {
    #[diesel(sql_type = Text)]
    pub role: String,
    /// `name(argument types)`, as `regprocedure` prints it.
    #[diesel(sql_type = Text)]
    pub function: String,
    #[diesel(sql_type = Text)]
    pub privilege: String,
}

/// The owner of each module function, and EXECUTE for each module that may call the owner.
pub fn declared_function_grants() -> BTreeSet<FunctionGrant> {
    let mut grants = BTreeSet::new();
    for (owner, functions) in coupling::function_declarations() {
        for function in functions {
            let mut grant = |role: &str, privilege: &str| {
                grants.insert(FunctionGrant {
                    role: role.to_owned(),
                    function: (*function).to_owned(),
                    privilege: privilege.to_owned(),
                })
            };
            grant(owner.role(), "OWNER");
            grant(owner.role(), "EXECUTE");
            for (caller, calls) in coupling::dependency_declarations() {
                if calls.iter().any(|call| call.module == owner) {
                    grant(caller.role(), "EXECUTE");
                }
            }
        }
    }
    grants
}

/// The module roles' ownership of and EXECUTE on the declared functions, as the database has them.
pub fn actual_function_grants(conn: &mut PgConnection) -> QueryResult<BTreeSet<FunctionGrant>> {
    let functions: Vec<&str> =
        coupling::function_declarations().iter().flat_map(|(_, functions)| functions.iter().copied()).collect();
    let roles: Vec<&str> = Module::ALL.iter().map(|module| module.role()).collect();
    let rows: Vec<FunctionGrant> = diesel::sql_query(
        "SELECT r.rolname::text AS role, f.signature AS function, 'OWNER' AS privilege
           FROM unnest($1::text[]) AS f (signature)
           JOIN pg_proc p ON p.oid = to_regprocedure(f.signature)
           JOIN pg_roles r ON r.oid = p.proowner
          WHERE r.rolname = ANY($2)
         UNION ALL
         SELECT r.rolname::text, f.signature, 'EXECUTE'
           FROM unnest($1::text[]) AS f (signature)
          CROSS JOIN pg_roles r
          WHERE r.rolname = ANY($2) AND to_regprocedure(f.signature) IS NOT NULL
            AND has_function_privilege(r.oid, to_regprocedure(f.signature), 'EXECUTE')",
    )
    .bind::<Array<Text>, _>(functions)
    .bind::<Array<Text>, _>(roles)
    .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// Hands each function to its owner's role and lets exactly the declared callers execute it.
fn function_statements() -> String {
    let mut sql = String::new();
    for (owner, functions) in coupling::function_declarations() {
        for function in functions {
            // The new owner needs CREATE on the schema for the hand-over (superusers skip the
            // check); it keeps no such right afterwards.
            sql.push_str(&format!(
                "GRANT CREATE ON SCHEMA public TO {role}; ALTER FUNCTION {function} OWNER TO {role}; \
                 REVOKE CREATE ON SCHEMA public FROM {role}; REVOKE ALL ON FUNCTION {function} FROM PUBLIC;\n",
                role = owner.role()
            ));
            for module in Module::ALL {
                sql.push_str(&format!("REVOKE ALL ON FUNCTION {function} FROM {};\n", module.role()));
            }
        }
    }
    for grant in declared_function_grants().iter().filter(|grant| grant.privilege == "EXECUTE") {
        sql.push_str(&format!("GRANT EXECUTE ON FUNCTION {} TO {};\n", grant.function, grant.role));
    }
    sql
}

/// Where the server loads `pg_stat_statements`, makes its view available in this database, so
/// that the architecture page can show PostgreSQL's own figures per module role.
fn enable_statement_statistics(conn: &mut PgConnection) -> QueryResult<()> {
    let loaded = diesel::sql_query(
        "SELECT 'pg_stat_statements' = ANY(string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
                AS flag",
    )
    .get_result::<Flag>(conn)?
    .flag;
    if loaded {
        conn.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_get_select_and_owners_get_the_data_privileges() {
        let grants = declared_grants(&coupling::declarations());
        let has = |role: &str, table: &str, privilege: &str| {
            grants.contains(&TableGrant { role: role.into(), table: table.into(), privilege: privilege.into() })
        };
        assert!(has("agora_catalog", "products", "UPDATE"));
        assert!(has("agora_orders", "products", "SELECT"));
        assert!(!has("agora_orders", "products", "UPDATE"));
        assert!(!has("agora_notifications", "orders", "UPDATE"));
        assert!(!grants.iter().any(|grant| grant.privilege == "TRUNCATE"));
    }
}
