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

use std::cell::{Cell, RefCell};
use std::ops::{Deref, DerefMut};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::result::QueryResult;

use super::Module;

thread_local! {
    /// The modules the current thread's connection runs as, innermost last. Empty: no context.
    static STACK: RefCell<Vec<Module>> = const { RefCell::new(Vec::new()) };
    /// Set by [`last_call_of_transaction`] for the next [`enter`].
    static HAND_OVER_NEXT: Cell<bool> = const { Cell::new(false) };
    /// The module whose role the connection was left in by a last call, and the transaction depth
    /// it was left at: the commit or rollback of that transaction switches back, not a statement.
    static HANDED_OVER: Cell<Option<(Module, u32)>> = const { Cell::new(None) };
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
            Module::Storefront => "agora_storefront",
        }
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
    let result = work();
    // Every transaction of the unit of work has ended by now, and with it any hand-over.
    HANDED_OVER.set(None);
    result
}

/// Runs `call`, a call into another module that is the last database work of the enclosing
/// transaction, so that the connection does not switch back to the caller's role afterwards: the
/// transaction's end undoes the switch anyway, and the round trip is saved (checkout's stock
/// reservation is such a call). The caller must run no statement of its own after it; one that
/// does is logged as an error (see [`handed_over`]).
pub fn last_call_of_transaction<T>(call: impl FnOnce() -> T) -> T {
    HAND_OVER_NEXT.set(true);
    let result = call();
    HAND_OVER_NEXT.set(false);
    result
}

/// The module a last call left the connection running as, while its transaction lasts.
pub fn handed_over() -> Option<Module> {
    HANDED_OVER.get().map(|(module, _)| module)
}

/// Called when a transaction (`depth` 1) or savepoint (`depth` > 1) ends: a commit of the whole
/// transaction, or a rollback at or above the level of a hand-over, ends the hand-over.
pub fn transaction_ended(depth: u32, committed: bool) {
    if let Some((module, at)) = HANDED_OVER.get() {
        if (committed && depth == 1) || (!committed && depth <= at) {
            HANDED_OVER.set(None);
        } else if committed && depth == at {
            // Released into the enclosing transaction, whose end now undoes it.
            HANDED_OVER.set(Some((module, at - 1)));
        }
    }
}

/// A connection switched to a module's role; switches back when dropped.
pub struct RoleGuard<'a> {
    conn: &'a mut PgConnection,
    /// What dropping the guard undoes; `None` when no context was entered.
    exit: Option<Exit>,
}

/// How a guard's call ends.
enum Exit {
    /// The role was already right: only the context is left.
    ContextOnly,
    /// Switch back to `previous` (`SET LOCAL ROLE` when `local`).
    SwitchBack { previous: Module, local: bool },
    /// A last call: stay in `module`'s role until the transaction at `depth` ends.
    HandOver { module: Module, depth: u32 },
}

/// Switches `conn` to `module`'s role if a role context is open and it runs as another module.
pub fn enter(conn: &mut PgConnection, module: Module) -> QueryResult<RoleGuard<'_>> {
    let last_call = HAND_OVER_NEXT.replace(false);
    let Some(previous) = current() else {
        return Ok(RoleGuard { conn, exit: None });
    };
    STACK.with(|stack| stack.borrow_mut().push(module));
    // A last call may have left the connection in another role than the context says.
    if handed_over().unwrap_or(previous) == module {
        return Ok(RoleGuard { conn, exit: Some(Exit::ContextOnly) });
    }
    let local = super::in_transaction(conn);
    if let Err(error) = conn.batch_execute(&set_role(module, local)) {
        STACK.with(|stack| stack.borrow_mut().pop());
        return Err(error);
    }
    HANDED_OVER.set(None);
    let exit = match transaction_depth(conn).filter(|_| last_call && local) {
        Some(depth) => Exit::HandOver { module, depth },
        None => Exit::SwitchBack { previous, local },
    };
    Ok(RoleGuard { conn, exit: Some(exit) })
}

fn transaction_depth(conn: &mut PgConnection) -> Option<u32> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let status = AnsiTransactionManager::transaction_manager_status_mut(conn);
    status.transaction_depth().ok().flatten().map(|depth| depth.get())
}

fn set_role(module: Module, local: bool) -> String {
    format!("SET {}ROLE {}", if local { "LOCAL " } else { "" }, module.role())
}

impl Drop for RoleGuard<'_> {
    fn drop(&mut self) {
        let Some(exit) = self.exit.take() else { return };
        STACK.with(|stack| stack.borrow_mut().pop());
        match exit {
            Exit::ContextOnly => {}
            Exit::HandOver { module, depth } => HANDED_OVER.set(Some((module, depth))),
            Exit::SwitchBack { previous, local } => {
                // In a transaction that failed, this fails too; the rollback then undoes the switch.
                if let Err(error) = self.conn.batch_execute(&set_role(previous, local))
                    && !local
                {
                    log::warn!("could not switch back to {}: {error}", previous.role());
                }
            }
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
