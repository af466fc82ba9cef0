//! Every unit of module work runs as its module's PostgreSQL role (`agora_orders`, ...), so that
//! PostgreSQL itself refuses an access the module's declaration does not allow.
//!
//! [`crate::db::Db::run`] sets the connection's session role to the operation's module and opens
//! a *role context* on the current thread. A module's public function that another module calls
//! starts with [`as_module!`]: inside a transaction it switches with `SET LOCAL ROLE` (undone by
//! PostgreSQL itself on commit or rollback, and by a rollback to a savepoint), outside one with
//! `SET ROLE`, and switches back when the function returns. When the caller already runs as that
//! module, or when no role context is open (enforcement off, or code that holds a raw connection,
//! such as start-up work and tests), nothing is sent to the database.
//!
//! This is a guard against mistakes in Agora's own code, not against hostile code: any code that
//! holds a connection could `SET ROLE` back to the login user.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::result::QueryResult;

use super::Module;

thread_local! {
    /// The modules the current thread's connection runs as, innermost last. Empty: no context.
    static STACK: RefCell<Vec<Module>> = const { RefCell::new(Vec::new()) };
}

impl Module {
    /// The module's PostgreSQL role (NOLOGIN; the login user switches to it).
    pub fn role(self) -> &'static str {
        match self {
            Module::Catalog => "agora_catalog",
            Module::Inventory => "agora_inventory",
            Module::Orders => "agora_orders",
            Module::Payments => "agora_payments",
            Module::Notifications => "agora_notifications",
            Module::Outbox => "agora_outbox",
            Module::Idempotency => "agora_idempotency",
            Module::Admin => "agora_admin",
        }
    }

    /// The module whose role is `role`.
    pub fn of_role(role: &str) -> Option<Module> {
        Module::ALL.into_iter().find(|module| module.role() == role)
    }
}

/// The module the current thread's database work runs as, if a role context is open.
pub fn current() -> Option<Module> {
    STACK.with(|stack| stack.borrow().last().copied())
}

/// Opens a role context for `module` on this thread while `work` runs. The caller has already
/// made `module`'s role the connection's session role.
pub fn in_context<T>(module: Module, work: impl FnOnce() -> T) -> T {
    STACK.with(|stack| stack.borrow_mut().push(module));
    // Popped by a guard so that a panic in `work` cannot leave a stale context on the thread.
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            STACK.with(|stack| stack.borrow_mut().pop());
        }
    }
    let _pop = Pop;
    work()
}

/// A connection switched to a module's role; switches back when dropped.
pub struct RoleGuard<'a> {
    conn: &'a mut PgConnection,
    /// The role to switch back to, and whether the switch was transaction-local.
    restore: Option<(Module, bool)>,
}

/// Switches `conn` to `module`'s role if a role context is open and it runs as another module.
pub fn enter(conn: &mut PgConnection, module: Module) -> QueryResult<RoleGuard<'_>> {
    let Some(previous) = current().filter(|previous| *previous != module) else {
        return Ok(RoleGuard { conn, restore: None });
    };
    let local = super::in_transaction(conn);
    conn.batch_execute(&set_role(module, local))?;
    STACK.with(|stack| stack.borrow_mut().push(module));
    Ok(RoleGuard { conn, restore: Some((previous, local)) })
}

fn set_role(module: Module, local: bool) -> String {
    format!("SET {}ROLE {}", if local { "LOCAL " } else { "" }, module.role())
}

impl Drop for RoleGuard<'_> {
    fn drop(&mut self) {
        let Some((previous, local)) = self.restore else { return };
        STACK.with(|stack| stack.borrow_mut().pop());
        // In a transaction that failed, this fails too; the rollback then undoes the switch.
        if let Err(error) = self.conn.batch_execute(&set_role(previous, local))
            && !local
        {
            log::warn!("could not switch back to {}: {error}", previous.role());
        }
    }
}

impl Deref for RoleGuard<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn
    }
}

impl DerefMut for RoleGuard<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
    }
}

/// Runs the rest of the enclosing function as `$module`: rebinds `$conn` to the switched
/// connection. Place it first in a module's public function that other modules call.
#[macro_export]
macro_rules! as_module {
    ($conn:ident, $module:expr) => {
        let mut role_guard = $crate::kernel::roles::enter($conn, $module)?;
        let $conn: &mut ::diesel::pg::PgConnection = &mut role_guard;
    };
}
