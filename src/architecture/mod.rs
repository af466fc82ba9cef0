//! The coupling made visible: which module owns, reads and writes which table, which modules'
//! code it calls, and which tables its migrations may touch; checked against the code. The top
//! floor: it reads every module's declaration in `crate::kernel` terms, and no module imports it.

pub mod api;
pub mod coupling;
mod diagram;
pub mod locks;
pub mod migrations;
pub mod pages;
pub mod privileges;
pub mod prometheus;
pub mod scan;
pub mod schema_map;
pub mod statements;
