//! The module kernel: what a module of Agora is, how it declares its tables, and how each unit
//! of its database work is named and measured. Every module imports this; it imports no module.
//! The checks and the page built on these declarations live higher up, in `architecture/`.

pub mod measure;
pub mod roles;

use diesel::pg::PgConnection;

/// Whether `conn` is inside a transaction (functions that lock rows require one, and the role
/// switch uses `SET LOCAL` there).
pub fn in_transaction(conn: &mut PgConnection) -> bool {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    matches!(AnsiTransactionManager::transaction_manager_status_mut(conn).transaction_depth(), Ok(Some(_)))
}

/// The units of Agora that own tables: the five business modules and the shared infrastructure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Module {
    Catalog,
    Inventory,
    Orders,
    Payments,
    Notifications,
    Outbox,
    Idempotency,
    Admin,
    /// The shop's pages for shoppers: carts, and checkout through the orders module.
    Storefront,
}

impl Module {
    pub const ALL: [Module; 9] = [
        Module::Catalog,
        Module::Inventory,
        Module::Orders,
        Module::Payments,
        Module::Notifications,
        Module::Outbox,
        Module::Idempotency,
        Module::Admin,
        Module::Storefront,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Module::Catalog => "catalog",
            Module::Inventory => "inventory",
            Module::Orders => "orders",
            Module::Payments => "payments",
            Module::Notifications => "notifications",
            Module::Outbox => "outbox",
            Module::Idempotency => "idempotency",
            Module::Admin => "admin",
            Module::Storefront => "storefront",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Names a unit of database work of this module, for [`crate::db::Db::run`].
    pub const fn op(self, name: &'static str) -> Operation {
        Operation { module: self, name }
    }
}

impl std::fmt::Display for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A named unit of database work of one module, e.g. `orders.place_order`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Operation {
    pub module: Module,
    pub name: &'static str,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.module, self.name)
    }
}

/// Another module's table that a module uses, and why.
#[derive(Debug)]
pub struct Use {
    pub table: &'static str,
    pub reason: &'static str,
}

/// Another module whose code a module calls, and why.
#[derive(Debug)]
pub struct Call {
    pub module: Module,
    pub reason: &'static str,
}

/// A module's one declaration of its tables: those it owns, and those of other modules it reads
/// or writes. Adding a cross-module read is a change to this declaration, visible in review.
#[derive(Debug)]
pub struct TableAccess {
    pub module: Module,
    pub owns: &'static [&'static str],
    pub reads: &'static [Use],
    pub writes: &'static [Use],
}
