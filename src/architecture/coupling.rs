//! Declared coupling (what each module says it uses of other modules' tables and code, and why)
//! held against derived coupling (what its code actually names, found at build time).

use std::collections::{BTreeMap, BTreeSet};

use super::scan::{FileScan, TableUse};
use crate::kernel::{Call, Module, TableAccess, Use};

/// Every module's declaration.
pub fn declarations() -> [&'static TableAccess; 9] {
    [
        &crate::catalog::TABLES,
        &crate::inventory::TABLES,
        &crate::orders::TABLES,
        &crate::payments::TABLES,
        &crate::notifications::TABLES,
        &crate::outbox::TABLES,
        &crate::idempotency::TABLES,
        &crate::admin::TABLES,
        &crate::storefront::TABLES,
    ]
}

/// Every module's declaration of the other modules whose code it calls.
pub fn dependency_declarations() -> [(Module, &'static [Call]); 9] {
    [
        (Module::Catalog, crate::catalog::CALLS),
        (Module::Inventory, crate::inventory::CALLS),
        (Module::Orders, crate::orders::CALLS),
        (Module::Payments, crate::payments::CALLS),
        (Module::Notifications, crate::notifications::CALLS),
        (Module::Outbox, crate::outbox::CALLS),
        (Module::Idempotency, crate::idempotency::CALLS),
        (Module::Admin, crate::admin::CALLS),
        (Module::Storefront, crate::storefront::CALLS),
    ]
}

/// The SQL functions modules own (by signature), which the modules that may call the owner may
/// execute: a module's way to let others write its tables through one narrow door.
pub fn function_declarations() -> [(Module, &'static [&'static str]); 2] {
    [(Module::Outbox, crate::outbox::FUNCTIONS), (Module::Inventory, crate::inventory::FUNCTIONS)]
}

/// One scanned file, as `build.rs` writes it.
#[derive(Debug)]
pub struct ScannedFile {
    pub path: &'static str,
    pub module: Option<&'static str>,
    pub tables: &'static [ScannedTable],
    pub calls: &'static [&'static str],
}

#[derive(Debug)]
pub struct ScannedTable {
    pub table: &'static str,
    pub written: bool,
    pub columns: &'static [&'static str],
}

include!(concat!(env!("OUT_DIR"), "/coupling.rs"));

/// The build-time scan of `src/`, in the scanner's own form.
pub fn scanned() -> Vec<FileScan> {
    SCANNED
        .iter()
        .map(|file| FileScan {
            path: file.path.to_owned(),
            module: file.module.map(str::to_owned),
            tables: file
                .tables
                .iter()
                .map(|table| {
                    let columns = table.columns.iter().map(|column| column.to_string()).collect();
                    (table.table.to_owned(), TableUse { written: table.written, columns })
                })
                .collect(),
            calls: file.calls.iter().map(|call| call.to_string()).collect(),
        })
        .collect()
}

/// A difference between what the code does and what the modules declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A module's code uses another module's table without declaring it.
    Undeclared { module: String, table: String, access: &'static str, files: Vec<String> },
    /// A module declares a use its code no longer has.
    Stale { module: String, table: String, access: &'static str },
    /// Code outside every module names a table.
    OutsideModules { path: String, table: String },
    /// A table of the schema that no module owns, or that several claim.
    Ownership { table: String, owners: Vec<String> },
    /// A declaration names a table the schema does not have.
    UnknownTable { module: String, table: String },
    /// A module's code calls another module without declaring it.
    UndeclaredCall { module: String, callee: String, files: Vec<String> },
    /// A module declares a call its code no longer makes.
    StaleCall { module: String, callee: String },
    /// Declared calls that lead from a module back to itself: `[orders, admin, orders]`.
    Cycle { path: Vec<String> },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::Undeclared { module, table, access, files } => write!(
                f,
                "{module} {access} {table} (in {}) without declaring it: add it to `{access}` in {module}'s TABLES, with a reason",
                files.join(", ")
            ),
            Violation::Stale { module, table, access } => {
                write!(
                    f,
                    "{module} declares that it {access} {table}, but its code no longer does: remove the declaration"
                )
            }
            Violation::OutsideModules { path, table } => {
                write!(f, "{path} is outside every module but names {table}: move the access into the owning module")
            }
            Violation::Ownership { table, owners } if owners.is_empty() => write!(f, "no module owns {table}"),
            Violation::Ownership { table, owners } => write!(f, "{table} is owned by {}", owners.join(" and ")),
            Violation::UnknownTable { module, table } => {
                write!(f, "{module} declares {table}, which the schema does not have")
            }
            Violation::UndeclaredCall { module, callee, files } => write!(
                f,
                "{module} calls {callee} (in {}) without declaring it: add {callee} to {module}'s `CALLS` (beside its \
                 TABLES), with a reason, or stop calling it",
                files.join(", ")
            ),
            Violation::StaleCall { module, callee } => write!(
                f,
                "{module} declares that it calls {callee}, but its code no longer does: remove {callee} from \
                 {module}'s `CALLS`"
            ),
            Violation::Cycle { path } => write!(
                f,
                "the declared module dependencies form a cycle, {}: modules in a cycle cannot be understood, tested \
                 or changed apart; break it by removing one of these calls (move what both sides need into one of \
                 them or out of the modules, or let one side react to an outbox event instead)",
                path.join(" -> ")
            ),
        }
    }
}

/// What a module's code uses of tables it does not own: table -> (written?, files).
pub fn foreign_uses(module: &str, owned: &[&str], scans: &[FileScan]) -> BTreeMap<String, (bool, Vec<String>)> {
    let mut uses: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
    for file in scans.iter().filter(|file| file.module.as_deref() == Some(module)) {
        for (table, usage) in &file.tables {
            if owned.contains(&table.as_str()) {
                continue;
            }
            let entry = uses.entry(table.clone()).or_default();
            entry.0 |= usage.written;
            entry.1.push(file.path.clone());
        }
    }
    uses
}

/// Every difference between the declarations and the scanned code.
pub fn check(declarations: &[&TableAccess], scans: &[FileScan], schema_tables: &[&str]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for table in schema_tables {
        let owners: Vec<String> = declarations
            .iter()
            .filter(|declaration| declaration.owns.contains(table))
            .map(|declaration| declaration.module.name().to_owned())
            .collect();
        if owners.len() != 1 {
            violations.push(Violation::Ownership { table: table.to_string(), owners });
        }
    }
    for declaration in declarations {
        let module = declaration.module.name();
        let declared = declaration
            .owns
            .iter()
            .chain(declaration.reads.iter().map(|u| &u.table))
            .chain(declaration.writes.iter().map(|u| &u.table));
        for table in declared {
            if !schema_tables.contains(table) {
                violations.push(Violation::UnknownTable { module: module.to_owned(), table: table.to_string() });
            }
        }
        let uses = foreign_uses(module, declaration.owns, scans);
        let declares = |list: &[Use], table: &str| list.iter().any(|u| u.table == table);
        for (table, (written, files)) in &uses {
            if *written && !declares(declaration.writes, table) {
                violations.push(Violation::Undeclared {
                    module: module.to_owned(),
                    table: table.clone(),
                    access: "writes",
                    files: files.clone(),
                });
            } else if !*written && !declares(declaration.reads, table) && !declares(declaration.writes, table) {
                violations.push(Violation::Undeclared {
                    module: module.to_owned(),
                    table: table.clone(),
                    access: "reads",
                    files: files.clone(),
                });
            }
        }
        for declared in declaration.reads {
            if !uses.contains_key(declared.table) {
                violations.push(Violation::Stale {
                    module: module.to_owned(),
                    table: declared.table.to_owned(),
                    access: "reads",
                });
            }
        }
        for declared in declaration.writes {
            if !uses.get(declared.table).is_some_and(|(written, _)| *written) {
                violations.push(Violation::Stale {
                    module: module.to_owned(),
                    table: declared.table.to_owned(),
                    access: "writes",
                });
            }
        }
    }
    for file in scans.iter().filter(|file| file.module.is_none()) {
        for table in file.tables.keys() {
            violations.push(Violation::OutsideModules { path: file.path.clone(), table: table.clone() });
        }
    }
    violations
}

/// How a module relates to a table, as the matrix shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    Owns,
    Reads,
    Writes,
    None,
}

impl Relation {
    pub fn label(self) -> &'static str {
        match self {
            Relation::Owns => "owner",
            Relation::Reads => "reads",
            Relation::Writes => "writes",
            Relation::None => "",
        }
    }
}

/// The module x table matrix, from the declarations (which the coupling test holds equal to
/// the code).
pub struct Matrix {
    pub modules: Vec<Module>,
    /// (table, owner, one relation per module in `modules` order)
    pub rows: Vec<(String, Module, Vec<Relation>)>,
}

pub fn matrix() -> Matrix {
    let declarations = declarations();
    let modules: Vec<Module> = declarations.iter().map(|declaration| declaration.module).collect();
    let mut rows = Vec::new();
    for owner in &declarations {
        for table in owner.owns {
            let relations = declarations
                .iter()
                .map(|declaration| {
                    if declaration.owns.contains(table) {
                        Relation::Owns
                    } else if declaration.writes.iter().any(|u| u.table == *table) {
                        Relation::Writes
                    } else if declaration.reads.iter().any(|u| u.table == *table) {
                        Relation::Reads
                    } else {
                        Relation::None
                    }
                })
                .collect();
            rows.push((table.to_string(), owner.module, relations));
        }
    }
    Matrix { modules, rows }
}

/// The owner of a table.
pub fn owner_of(table: &str) -> Option<Module> {
    declarations().iter().find(|declaration| declaration.owns.contains(&table)).map(|declaration| declaration.module)
}

/// For one table: each column, and every (module, file) whose code names it.
pub struct TableDependents {
    pub table: String,
    pub owner: Option<Module>,
    pub modules: BTreeSet<String>,
    pub columns: Vec<(String, Vec<(String, String)>)>,
}

pub fn dependents() -> Vec<TableDependents> {
    let scans = scanned();
    super::schema_map::tables()
        .iter()
        .map(|table| {
            let users: Vec<&FileScan> = scans.iter().filter(|file| file.tables.contains_key(table.name)).collect();
            let columns = table
                .columns
                .iter()
                .map(|column| {
                    let files = users
                        .iter()
                        .filter(|file| file.tables[table.name].columns.contains(*column))
                        .map(|file| {
                            (file.module.clone().unwrap_or_else(|| "(outside modules)".into()), file.path.clone())
                        })
                        .collect();
                    (column.to_string(), files)
                })
                .collect();
            TableDependents {
                table: table.name.to_owned(),
                owner: owner_of(table.name),
                modules: users.iter().filter_map(|file| file.module.clone()).collect(),
                columns,
            }
        })
        .collect()
}

/// Module -> module its code calls -> the files that do.
pub fn code_calls(scans: &[FileScan]) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut calls: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for file in scans {
        let Some(module) = &file.module else { continue };
        for callee in &file.calls {
            calls.entry(module.clone()).or_default().entry(callee.clone()).or_default().push(file.path.clone());
        }
    }
    calls
}

/// Every difference between the declared module dependencies and the calls in the scanned code,
/// and every cycle among the declared dependencies.
pub fn check_dependencies(declarations: &[(Module, &[Call])], scans: &[FileScan]) -> Vec<Violation> {
    let mut violations = Vec::new();
    let code = code_calls(scans);
    let no_calls = BTreeMap::new();
    for (module, calls) in declarations {
        let called = code.get(module.name()).unwrap_or(&no_calls);
        for (callee, files) in called {
            if !calls.iter().any(|call| call.module.name() == callee) {
                violations.push(Violation::UndeclaredCall {
                    module: module.name().to_owned(),
                    callee: callee.clone(),
                    files: files.clone(),
                });
            }
        }
        for call in *calls {
            if !called.contains_key(call.module.name()) {
                violations.push(Violation::StaleCall {
                    module: module.name().to_owned(),
                    callee: call.module.name().to_owned(),
                });
            }
        }
    }
    violations.extend(
        cycles(declarations)
            .into_iter()
            .map(|path| Violation::Cycle { path: path.iter().map(|module| module.name().to_owned()).collect() }),
    );
    violations
}

/// The shortest cycle through each module that has one, each cycle once, starting at its
/// module declared first. Every module in a cycle is thereby shown in one, so each of the calls
/// to break is named, not only the first found.
fn cycles(declarations: &[(Module, &[Call])]) -> Vec<Vec<Module>> {
    let position = |module: Module| declarations.iter().position(|(declared, _)| *declared == module);
    let callees = |module: Module| -> Vec<Module> {
        declarations
            .iter()
            .filter(|(caller, _)| *caller == module)
            .flat_map(|(_, calls)| calls.iter().map(|call| call.module))
            .collect()
    };
    let mut found: Vec<Vec<Module>> = Vec::new();
    for (start, _) in declarations {
        // Breadth first, so that the path back to `start` is a shortest one.
        let mut previous: BTreeMap<Module, Module> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([*start]);
        let mut cycle = None;
        'search: while let Some(current) = queue.pop_front() {
            for next in callees(current) {
                if next == *start {
                    let mut path = vec![current];
                    while let Some(step) = previous.get(path.last().unwrap()) {
                        path.push(*step);
                    }
                    path.reverse();
                    cycle = Some(path);
                    break 'search;
                }
                if let std::collections::btree_map::Entry::Vacant(entry) = previous.entry(next) {
                    entry.insert(current);
                    queue.push_back(next);
                }
            }
        }
        let Some(mut cycle) = cycle else { continue };
        let first = (0..cycle.len()).min_by_key(|&index| position(cycle[index])).unwrap_or(0);
        cycle.rotate_left(first);
        cycle.push(cycle[0]);
        if !found.contains(&cycle) {
            found.push(cycle);
        }
    }
    found
}
