//! The module diagram as inline SVG: modules across the top, each owner's tables beneath it,
//! and a line from a module to every table of another module it reads (orange) or writes (red);
//! grey arcs above show which modules call which, as declared (the check holds it equal to the code).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::kernel::{Call, Module, TableAccess};

const COLUMN: f64 = 156.0;
const BOX_WIDTH: f64 = 140.0;
const LEFT: f64 = 16.0;
const MODULE_TOP: f64 = 120.0;
const MODULE_HEIGHT: f64 = 44.0;
const TABLE_TOP: f64 = 250.0;
const TABLE_HEIGHT: f64 = 26.0;
const TABLE_GAP: f64 = 10.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn colour(module: Module) -> &'static str {
    match module {
        Module::Catalog => "#2f6f9f",
        Module::Inventory => "#3c8d5a",
        Module::Orders => "#8a5a9e",
        Module::Payments => "#b06a1f",
        Module::Notifications => "#a23d5b",
        Module::Outbox | Module::Idempotency | Module::Admin => "#5f6b7a",
    }
}

pub fn svg(declarations: &[&TableAccess], calls: &[(Module, &[Call])]) -> String {
    let column_of: BTreeMap<Module, usize> =
        declarations.iter().enumerate().map(|(index, declaration)| (declaration.module, index)).collect();
    let module_x = |module: Module| LEFT + column_of[&module] as f64 * COLUMN;
    let mut table_position: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    let mut deepest = 0usize;
    for declaration in declarations {
        for (row, table) in declaration.owns.iter().enumerate() {
            let y = TABLE_TOP + row as f64 * (TABLE_HEIGHT + TABLE_GAP);
            table_position.insert(table, (module_x(declaration.module), y));
            deepest = deepest.max(row + 1);
        }
    }
    let width = LEFT * 2.0 + declarations.len() as f64 * COLUMN;
    let height = TABLE_TOP + deepest as f64 * (TABLE_HEIGHT + TABLE_GAP) + 60.0;

    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg class="diagram" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" aria-label="Modules, the tables they own, and the tables of other modules they read">
<defs>
<marker id="arrow-read" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#d98a00"/></marker>
<marker id="arrow-write" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#c0392b"/></marker>
<marker id="arrow-call" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#9aa5b1"/></marker>
</defs>
<style>text {{ font: 12px system-ui, sans-serif; }} .module {{ font-weight: 700; fill: #fff; }} .table {{ font: 11px ui-monospace, monospace; }}</style>
"##
    );

    // Calls between modules, as arcs above the boxes.
    for (caller, calls) in calls {
        let caller = *caller;
        for call in *calls {
            let callee = call.module;
            // Every module's pages use the admin shell: drawing those arcs would hide the
            // dependencies between the modules themselves. The table below the diagram lists them.
            if callee == Module::Admin {
                continue;
            }
            if !column_of.contains_key(&caller) || !column_of.contains_key(&callee) {
                continue;
            }
            let (x1, x2) = (module_x(caller) + BOX_WIDTH / 2.0 - 8.0, module_x(callee) + BOX_WIDTH / 2.0 + 8.0);
            let lift = 18.0 + (x1 - x2).abs() / COLUMN * 12.0;
            let _ = writeln!(
                out,
                r##"<path d="M{x1:.0},{top:.0} C{x1:.0},{peak:.0} {x2:.0},{peak:.0} {x2:.0},{top:.0}" fill="none" stroke="#9aa5b1" stroke-width="1.2" marker-end="url(#arrow-call)"><title>{} calls {}: {}</title></path>"##,
                caller.name(),
                callee.name(),
                escape(call.reason),
                top = MODULE_TOP,
                peak = (MODULE_TOP - lift).max(8.0),
            );
        }
    }

    // Reads and writes of other modules' tables.
    for declaration in declarations {
        let from_x = module_x(declaration.module) + BOX_WIDTH / 2.0;
        let from_y = MODULE_TOP + MODULE_HEIGHT;
        for (uses, class, marker, stroke) in [
            (declaration.reads, "read", "arrow-read", "#d98a00"),
            (declaration.writes, "write", "arrow-write", "#c0392b"),
        ] {
            for used in uses {
                let Some(&(table_x, table_y)) = table_position.get(used.table) else { continue };
                let to_x = if table_x > from_x { table_x + 4.0 } else { table_x + BOX_WIDTH - 4.0 };
                let to_y = table_y + TABLE_HEIGHT / 2.0;
                let _ = writeln!(
                    out,
                    r##"<path class="{class}" d="M{from_x:.0},{from_y:.0} C{from_x:.0},{bend:.0} {mid:.0},{to_y:.0} {to_x:.0},{to_y:.0}" fill="none" stroke="{stroke}" stroke-width="1.4" stroke-opacity="0.8" marker-end="url(#{marker})"><title>{} {class}s {}: {}</title></path>"##,
                    declaration.module.name(),
                    used.table,
                    escape(used.reason),
                    bend = from_y + 60.0,
                    mid = (from_x + to_x) / 2.0,
                );
            }
        }
    }

    // Modules and their tables.
    for declaration in declarations {
        let x = module_x(declaration.module);
        let fill = colour(declaration.module);
        let _ = writeln!(
            out,
            r##"<rect x="{x:.0}" y="{MODULE_TOP}" width="{BOX_WIDTH}" height="{MODULE_HEIGHT}" rx="6" fill="{fill}"/><text class="module" x="{:.0}" y="{:.0}" text-anchor="middle">{}</text>"##,
            x + BOX_WIDTH / 2.0,
            MODULE_TOP + 27.0,
            declaration.module.name()
        );
        for table in declaration.owns {
            let (_, y) = table_position[table];
            let _ = writeln!(
                out,
                r##"<line x1="{cx:.0}" y1="{:.0}" x2="{cx:.0}" y2="{y:.0}" stroke="{fill}" stroke-width="1" stroke-dasharray="2,3"/><rect x="{x:.0}" y="{y:.0}" width="{BOX_WIDTH}" height="{TABLE_HEIGHT}" rx="4" fill="#fff" stroke="{fill}" stroke-width="1.5"/><text class="table" x="{cx:.0}" y="{:.0}" text-anchor="middle">{}</text>"##,
                MODULE_TOP + MODULE_HEIGHT,
                y + 17.0,
                escape(table),
                cx = x + BOX_WIDTH / 2.0,
            );
        }
    }

    let legend_y = height - 24.0;
    let _ = writeln!(
        out,
        r##"<g transform="translate({LEFT},{legend_y})"><line x1="0" y1="0" x2="30" y2="0" stroke="#d98a00" stroke-width="2"/><text x="36" y="4">reads another module's table</text><line x1="230" y1="0" x2="260" y2="0" stroke="#c0392b" stroke-width="2"/><text x="266" y="4">writes another module's table</text><line x1="460" y1="0" x2="490" y2="0" stroke="#9aa5b1" stroke-width="2"/><text x="496" y="4">calls another module's functions</text></g>"##
    );
    out.push_str("</svg>");
    out
}
