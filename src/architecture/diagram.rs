//! The module diagram as inline SVG: each module a box with its tables as rows inside it, an arrow
//! from a module to every table of another module it reads (orange) or writes (red), and a dashed
//! grey arrow to every module whose code it calls, as declared (the check holds it equal to the code).
//!
//! The boxes stand in two columns that read as one ring, down the left and up the right. Every arrow
//! runs either inside the ring (in the corridor between the columns) or outside it (beside a column,
//! or around the bottom from one column to the other). Two arrows on the same side of the ring must
//! cross when their ends interleave around it; otherwise one encloses the other or they lie apart,
//! and lanes can keep them apart. So the layout searches the order of the modules, the split between
//! the columns and the side of each arrow for the fewest interleaving pairs, then routes each arrow
//! orthogonally, in a lane of its own or shared with arrows far away, the enclosing ones outside the
//! enclosed, from a port on its module's header to a port on its target's border. Ports are spread
//! along each side of a header or row, which grows to hold them, so no two arrowheads meet.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};

use crate::kernel::{Call, Module, TableAccess};

const MARGIN: f64 = 10.0;
const TEXT_PADDING: f64 = 10.0;
const HEADER_MIN: f64 = 30.0;
const ROW_MIN: f64 = 24.0;
/// Between neighbouring ports on one side of a header or row: wider than an arrowhead.
const PORT_GAP: f64 = 10.0;
const MODULE_GAP: f64 = 20.0;
/// From a box to its nearest lane: an arrowhead and a little line behind it.
const STUB: f64 = 16.0;
const LANE: f64 = 8.0;
const CORRIDOR_MIN: f64 = 36.0;
const ARROW_LENGTH: f64 = 8.0;
const ARROW_HALF_WIDTH: f64 = 3.5;
const MODULE_FONT: f64 = 15.0;
const TABLE_FONT: f64 = 14.0;
const LEGEND_FONT: f64 = 14.0;
/// Advance of a character as a share of the font size, generous enough for the usual fonts: the
/// boxes are sized from it, since the server cannot measure the browser's text.
const MONO_ADVANCE: f64 = 0.62;
const SANS_ADVANCE: f64 = 0.62;
const LEGEND_SAMPLE: f64 = 28.0;
/// Orders of the modules tried at most: all of them for up to eight modules with arrows, which
/// takes well under a second once per process; beyond that, only the first ones.
const SEARCH_LIMIT: usize = 40_320;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Dark enough for white names on them, at 4.5:1 or more.
fn colour(module: Module) -> &'static str {
    match module {
        Module::Catalog => "#2f6f9f",
        Module::Inventory => "#327f50",
        Module::Orders => "#8a5a9e",
        Module::Payments => "#a3611b",
        Module::Notifications => "#a23d5b",
        Module::Storefront => "#1f6b6b",
        Module::Outbox | Module::Idempotency | Module::Admin => "#5f6b7a",
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Call,
    Read,
    Write,
}

impl Kind {
    /// At least 3:1 against the white background, as lines need.
    fn colour(self) -> &'static str {
        match self {
            Kind::Call => "#7b8794",
            Kind::Read => "#bf7a00",
            Kind::Write => "#c0392b",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Kind::Call => "calls",
            Kind::Read => "reads",
            Kind::Write => "writes",
        }
    }
}

/// One arrow: from the header of module `from` to slot `slot` of module `to` (0 its header, for a
/// call; 1 + i its i-th table, for a read or a write).
#[derive(Clone, Debug)]
struct Link {
    from: usize,
    to: usize,
    slot: usize,
    kind: Kind,
    title: String,
}

/// Which side of the ring an arrow runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Inner,
    Outer,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Point {
    x: f64,
    y: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Rect {
    x: f64,
    y: f64,
    width: f64,
    height: f64,
}

impl Rect {
    fn right(&self) -> f64 {
        self.x + self.width
    }

    fn bottom(&self) -> f64 {
        self.y + self.height
    }
}

#[derive(Debug)]
struct PlacedModule {
    module: Module,
    rect: Rect,
    /// Its header, then a row for each table: the slots a link's `slot` counts.
    slots: Vec<Rect>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Font {
    Module,
    Table,
    Legend,
}

#[derive(Debug)]
struct Label {
    text: String,
    font: Font,
    /// The text's estimated extent: names are centred in it, the legend starts at its left.
    rect: Rect,
}

/// An arrow's path: axis-parallel segments from the source's border to the tip on the target's.
#[derive(Debug)]
struct Route {
    points: Vec<Point>,
}

impl Route {
    fn tip(&self) -> Point {
        self.points[self.points.len() - 1]
    }

    /// The arrowhead: its tip on the border, its base back along the last segment.
    fn arrowhead(&self) -> [Point; 3] {
        let tip = self.tip();
        let before = self.points[self.points.len() - 2];
        let (dx, dy) = (tip.x - before.x, tip.y - before.y);
        let length = dx.hypot(dy);
        let (ux, uy) = (dx / length, dy / length);
        let base = Point { x: tip.x - ux * ARROW_LENGTH, y: tip.y - uy * ARROW_LENGTH };
        [
            tip,
            Point { x: base.x - uy * ARROW_HALF_WIDTH, y: base.y + ux * ARROW_HALF_WIDTH },
            Point { x: base.x + uy * ARROW_HALF_WIDTH, y: base.y - ux * ARROW_HALF_WIDTH },
        ]
    }
}

#[derive(Debug)]
struct Layout {
    width: f64,
    height: f64,
    modules: Vec<PlacedModule>,
    /// One for each of the graph's links, in its order.
    routes: Vec<Route>,
    labels: Vec<Label>,
    /// Legend samples: the kind, the start of its line and its length.
    legend: Vec<(Kind, Point, f64)>,
    /// Pairs of arrows on the same side whose ends interleave: the crossings the routing cannot avoid.
    crossings: usize,
}

/// The drawing's input: modules with their tables, and the arrows between them.
#[derive(Debug)]
struct Graph {
    modules: Vec<Module>,
    tables: Vec<Vec<&'static str>>,
    links: Vec<Link>,
    box_width: f64,
}

impl Graph {
    fn new(declarations: &[&TableAccess], calls: &[(Module, &[Call])]) -> Graph {
        let modules: Vec<Module> = declarations.iter().map(|declaration| declaration.module).collect();
        let tables: Vec<Vec<&'static str>> = declarations.iter().map(|declaration| declaration.owns.to_vec()).collect();
        let index_of = |module: Module| modules.iter().position(|&known| known == module);
        let mut owner: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (index, owned) in tables.iter().enumerate() {
            for (row, table) in owned.iter().enumerate() {
                owner.entry(table).or_insert((index, row + 1));
            }
        }
        let mut links = Vec::new();
        for (caller, calls) in calls {
            for call in *calls {
                // Every module's pages use the admin shell: drawing those arrows would hide the
                // dependencies between the modules themselves. The table below the diagram lists them.
                if call.module == Module::Admin {
                    continue;
                }
                let (Some(from), Some(to)) = (index_of(*caller), index_of(call.module)) else { continue };
                if from != to {
                    let title = format!("{} calls {}: {}", caller.name(), call.module.name(), call.reason);
                    links.push(Link { from, to, slot: 0, kind: Kind::Call, title });
                }
            }
        }
        for (from, declaration) in declarations.iter().enumerate() {
            for (uses, kind) in [(declaration.reads, Kind::Read), (declaration.writes, Kind::Write)] {
                for used in uses {
                    let Some(&(to, slot)) = owner.get(used.table) else { continue };
                    if from != to {
                        let title =
                            format!("{} {} {}: {}", declaration.module.name(), kind.verb(), used.table, used.reason);
                        links.push(Link { from, to, slot, kind, title });
                    }
                }
            }
        }
        let widest = modules
            .iter()
            .map(|module| text_width(module.name(), Font::Module))
            .chain(tables.iter().flatten().map(|table| text_width(table, Font::Table)))
            .fold(0.0, f64::max);
        Graph { modules, tables, links, box_width: (widest + 2.0 * TEXT_PADDING).ceil() }
    }

    fn slots(&self, module: usize) -> usize {
        1 + self.tables[module].len()
    }
}

fn text_width(text: &str, font: Font) -> f64 {
    let (size, advance) = match font {
        Font::Module => (MODULE_FONT, SANS_ADVANCE),
        Font::Table => (TABLE_FONT, MONO_ADVANCE),
        Font::Legend => (LEGEND_FONT, SANS_ADVANCE),
    };
    text.chars().count() as f64 * size * advance
}

fn font_size(font: Font) -> f64 {
    match font {
        Font::Module => MODULE_FONT,
        Font::Table => TABLE_FONT,
        Font::Legend => LEGEND_FONT,
    }
}

/// The modules top to bottom in each column: the ring runs down `left`, then up `right`.
#[derive(Clone, Debug)]
struct Arrangement {
    left: Vec<usize>,
    right: Vec<usize>,
    is_left: Vec<bool>,
}

impl Arrangement {
    fn new(left: Vec<usize>, right: Vec<usize>, modules: usize) -> Arrangement {
        let mut is_left = vec![false; modules];
        for &module in &left {
            is_left[module] = true;
        }
        Arrangement { left, right, is_left }
    }

    fn in_left(&self, module: usize) -> bool {
        self.is_left[module]
    }
}

/// Each link's two ends (source, target) as ranks around the ring: by module, then by header or
/// row in the ring's direction, then, among the ends on one header or row, ordered so that links
/// sharing it nest rather than interleave: the end whose other end lies farther on around the ring
/// comes first, and links between the same two places nest by their index.
fn ring_places(graph: &Graph, arrangement: &Arrangement) -> Vec<[usize; 2]> {
    let mut slot_place = vec![Vec::new(); graph.modules.len()];
    let mut next = 0;
    for &module in &arrangement.left {
        slot_place[module] = (0..graph.slots(module)).map(|slot| next + slot).collect();
        next += graph.slots(module);
    }
    for &module in arrangement.right.iter().rev() {
        let slots = graph.slots(module);
        slot_place[module] = (0..slots).map(|slot| next + slots - 1 - slot).collect();
        next += slots;
    }
    let total = next;
    let mut ends = Vec::with_capacity(graph.links.len() * 2);
    for (index, link) in graph.links.iter().enumerate() {
        let source = slot_place[link.from][0];
        let target = slot_place[link.to][link.slot];
        for (end, here, there) in [(0, source, target), (1, target, source)] {
            let ahead = (there + total - here) % total;
            let tie = if here < there { index as i64 } else { -(index as i64) };
            ends.push((here, Reverse(ahead), tie, index, end));
        }
    }
    ends.sort_unstable();
    let mut places = vec![[0; 2]; graph.links.len()];
    for (rank, &(_, _, _, index, end)) in ends.iter().enumerate() {
        places[index][end] = rank;
    }
    places
}

fn span(places: [usize; 2]) -> (usize, usize) {
    (places[0].min(places[1]), places[0].max(places[1]))
}

fn interleave(a: [usize; 2], b: [usize; 2]) -> bool {
    let ((a0, a1), (b0, b1)) = (span(a), span(b));
    (a0 < b0 && b0 < a1 && a1 < b1) || (b0 < a0 && a0 < b1 && b1 < a1)
}

/// Puts each link inside or outside the ring so that as few interleaving pairs as possible share a
/// side: exactly, by two-colouring, wherever the pairs allow it (then nothing crosses), greedily in
/// the parts where they do not. Of the two colourings of a part, the one that keeps arrows off the
/// long way around the bottom and spreads the ends over both sides of each header and row wins.
/// Returns the sides and the number of interleaving pairs left on one side: the crossings.
fn assign_sides(graph: &Graph, arrangement: &Arrangement, places: &[[usize; 2]]) -> (Vec<Side>, usize) {
    let count = graph.links.len();
    let mut conflicts = vec![Vec::new(); count];
    for a in 0..count {
        for b in a + 1..count {
            if interleave(places[a], places[b]) {
                conflicts[a].push(b);
                conflicts[b].push(a);
            }
        }
    }
    // Around the bottom is a long way; otherwise the side that keeps headers and rows short wins.
    let preference = |link: usize, side: Side| -> usize {
        let link = &graph.links[link];
        let across = arrangement.in_left(link.from) != arrangement.in_left(link.to);
        if side == Side::Outer && across { 6 } else { 0 }
    };
    let mut slot_base = Vec::with_capacity(graph.modules.len());
    let mut slots = 0;
    for module in 0..graph.modules.len() {
        slot_base.push(slots);
        slots += graph.slots(module);
    }
    // Ends on the (west, east) side of every header and row: the busier side sets its height.
    let mut load = vec![[0usize; 2]; slots];
    let growth = |load: &mut [[usize; 2]], link: usize, side: Side| -> usize {
        let link = &graph.links[link];
        let mut grown = 0;
        for (module, slot) in [(link.from, 0), (link.to, link.slot)] {
            let ends = &mut load[slot_base[module] + slot];
            let before = ends[0].max(ends[1]);
            ends[usize::from(arrangement.in_left(module) == (side == Side::Inner))] += 1;
            grown += ends[0].max(ends[1]) - before;
        }
        grown
    };
    let mut sides: Vec<Option<Side>> = vec![None; count];
    let mut colour: Vec<Option<bool>> = vec![None; count];
    for start in 0..count {
        if sides[start].is_some() {
            continue;
        }
        colour[start] = Some(false);
        let mut part = vec![start];
        let mut bipartite = true;
        let mut next = 0;
        while let Some(&link) = part.get(next) {
            next += 1;
            let here = colour[link] == Some(true);
            for &other in &conflicts[link] {
                match colour[other] {
                    None => {
                        colour[other] = Some(!here);
                        part.push(other);
                    }
                    Some(seen) => bipartite &= seen != here,
                }
            }
        }
        part.sort_unstable();
        if bipartite {
            let side =
                |flip: bool, link: usize| if (colour[link] == Some(true)) != flip { Side::Outer } else { Side::Inner };
            let cost = |flip: bool| {
                let mut trial = load.clone();
                part.iter()
                    .map(|&link| preference(link, side(flip, link)) + growth(&mut trial, link, side(flip, link)))
                    .sum::<usize>()
            };
            let flip = cost(true) < cost(false);
            for &link in &part {
                sides[link] = Some(side(flip, link));
                growth(&mut load, link, side(flip, link));
            }
        } else {
            for &link in &part {
                let clashes = |side: Side| conflicts[link].iter().filter(|&&other| sides[other] == Some(side)).count();
                let best = [Side::Inner, Side::Outer]
                    .into_iter()
                    .min_by_key(|&side| (clashes(side), preference(link, side) + growth(&mut load.clone(), link, side)))
                    .unwrap_or(Side::Inner);
                sides[link] = Some(best);
                growth(&mut load, link, best);
            }
        }
    }
    let sides: Vec<Side> = sides.into_iter().map(|side| side.unwrap_or(Side::Inner)).collect();
    let crossings = (0..count).map(|a| conflicts[a].iter().filter(|&&b| b > a && sides[a] == sides[b]).count()).sum();
    (sides, crossings)
}

fn next_permutation(items: &mut [usize]) -> bool {
    let Some(pivot) = (1..items.len()).rev().find(|&i| items[i - 1] < items[i]) else { return false };
    let Some(swap) = (pivot..items.len()).rev().find(|&j| items[j] > items[pivot - 1]) else { return false };
    items.swap(pivot - 1, swap);
    items[pivot..].reverse();
    true
}

fn layout(graph: &Graph) -> Layout {
    let connected: Vec<usize> = (0..graph.modules.len())
        .filter(|&module| graph.links.iter().any(|link| link.from == module || link.to == module))
        .collect();
    let isolated: Vec<usize> = (0..graph.modules.len()).filter(|module| !connected.contains(module)).collect();
    let count = graph.modules.len();
    let mut order = connected.clone();
    let splits = |count: usize| if count < 2 { count..count + 1 } else { 1..count };
    // Every order and split, compared by the crossings they force, then by the drawing's size and
    // the length of its arrows; the first best wins, so the same declarations give the same drawing.
    let mut best: Option<((usize, u64), Layout)> = None;
    let mut tried = 0;
    loop {
        // An order read backwards, split as far from its end, is the same drawing mirrored.
        let mirrored = order.len() >= 2 && order[0] > order[order.len() - 1];
        for split in splits(order.len()).filter(|_| !mirrored) {
            let left = order[..split].to_vec();
            let arrangement = Arrangement::new(left, order[split..].iter().rev().copied().collect(), count);
            let places = ring_places(graph, &arrangement);
            let (sides, crossings) = assign_sides(graph, &arrangement, &places);
            if best.as_ref().is_some_and(|((fewest, _), _)| crossings > *fewest) {
                continue;
            }
            let arrangement = place_isolated(graph, arrangement, &isolated);
            let places = ring_places(graph, &arrangement);
            let placed = place(graph, &arrangement, &places, &sides, crossings);
            let score = (placed.crossings, cost(&placed));
            if best.as_ref().is_none_or(|(fewest, _)| score < *fewest) {
                best = Some((score, placed));
            }
        }
        tried += 1;
        if tried >= SEARCH_LIMIT || !next_permutation(&mut order) {
            break;
        }
    }
    match best {
        Some((_, placed)) => placed,
        None => {
            let arrangement = place_isolated(graph, Arrangement::new(Vec::new(), Vec::new(), count), &isolated);
            let places = ring_places(graph, &arrangement);
            place(graph, &arrangement, &places, &[], 0)
        }
    }
}

/// Modules without arrows go to the foot of the shorter column, where no lane needs to pass them.
fn place_isolated(graph: &Graph, arrangement: Arrangement, isolated: &[usize]) -> Arrangement {
    let Arrangement { mut left, mut right, .. } = arrangement;
    let height = |column: &[usize]| column.iter().map(|&module| graph.slots(module) + 2).sum::<usize>();
    for &module in isolated {
        if height(&left) <= height(&right) {
            left.push(module);
        } else {
            right.push(module);
        }
    }
    Arrangement::new(left, right, graph.modules.len())
}

/// What the search minimises once crossings tie: the area, and the length of the arrows.
fn cost(layout: &Layout) -> u64 {
    let length: f64 = layout
        .routes
        .iter()
        .flat_map(|route| {
            route.points.windows(2).map(|pair| (pair[1].x - pair[0].x).abs() + (pair[1].y - pair[0].y).abs())
        })
        .sum();
    (length + 2.0 * (layout.width + layout.height)).round() as u64
}

/// A lane user: a link on one side of the ring, its places, and the stretches of lane it runs along.
struct LaneUse {
    link: usize,
    low: usize,
    high: usize,
    /// (which lane set, from y, to y)
    runs: Vec<(u8, f64, f64)>,
}

/// Lane depths (1 nearest the boxes) for links on one side: a link lies outside every link it
/// encloses, and shares a depth only with links whose runs along the same lanes stay well apart.
fn nest(uses: &[LaneUse]) -> BTreeMap<usize, usize> {
    let mut order: Vec<&LaneUse> = uses.iter().collect();
    order.sort_by_key(|lane_use| (lane_use.high - lane_use.low, lane_use.link));
    let mut depth: BTreeMap<usize, usize> = BTreeMap::new();
    let mut done: Vec<&LaneUse> = Vec::new();
    for lane_use in order {
        let mut chosen = 1 + done
            .iter()
            .filter(|inner| inner.low > lane_use.low && inner.high < lane_use.high)
            .map(|inner| depth[&inner.link])
            .max()
            .unwrap_or(0);
        let near = |other: &LaneUse| {
            lane_use.runs.iter().any(|&(set, from, to)| {
                other.runs.iter().any(|&(other_set, other_from, other_to)| {
                    set == other_set && from < other_to + 2.0 * PORT_GAP && other_from < to + 2.0 * PORT_GAP
                })
            })
        };
        while done.iter().any(|other| depth[&other.link] == chosen && near(other)) {
            chosen += 1;
        }
        depth.insert(lane_use.link, chosen);
        done.push(lane_use);
    }
    depth
}

/// The ends of links on each side of each header and row, by (module, slot, on its east side), as
/// (place, link, end) in ring order.
type Ports = BTreeMap<(usize, usize, bool), Vec<(usize, usize, usize)>>;

const LEFT_OUTER: u8 = 0;
const RIGHT_OUTER: u8 = 1;

fn place(graph: &Graph, arrangement: &Arrangement, places: &[[usize; 2]], sides: &[Side], crossings: usize) -> Layout {
    let width = graph.box_width;
    let in_left = |module: usize| arrangement.in_left(module);
    // A link's end is on a module's east side if it runs inside the ring from the left column or
    // outside it from the right one.
    let east = |module: usize, side: Side| in_left(module) == (side == Side::Inner);
    let end_of = |link: &Link, end: usize| if end == 0 { (link.from, 0) } else { (link.to, link.slot) };

    let mut ports = Ports::new();
    for (index, link) in graph.links.iter().enumerate() {
        for (end, place) in places[index].into_iter().enumerate() {
            let (module, slot) = end_of(link, end);
            ports.entry((module, slot, east(module, sides[index]))).or_default().push((place, index, end));
        }
    }
    for ends in ports.values_mut() {
        ends.sort_unstable();
    }
    let port_count = |module: usize, slot: usize| {
        let count = |east: bool| ports.get(&(module, slot, east)).map_or(0, Vec::len);
        count(true).max(count(false))
    };
    let slot_height = |module: usize, slot: usize| {
        let least = if slot == 0 { HEADER_MIN } else { ROW_MIN };
        least.max((port_count(module, slot) + 1) as f64 * PORT_GAP)
    };

    // Heights and vertical positions; x comes once the lanes are counted.
    let mut slot_tops: Vec<Vec<(f64, f64)>> = vec![Vec::new(); graph.modules.len()];
    let mut column_bottom: f64 = MARGIN;
    for column in [&arrangement.left, &arrangement.right] {
        let mut y = MARGIN;
        for &module in column {
            for slot in 0..graph.slots(module) {
                let height = slot_height(module, slot);
                slot_tops[module].push((y, height));
                y += height;
            }
            column_bottom = column_bottom.max(y);
            y += MODULE_GAP;
        }
    }
    let mut port_y = vec![[0.0; 2]; graph.links.len()];
    for (&(module, slot, _), ends) in &ports {
        let (top, height) = slot_tops[module][slot];
        let count = ends.len();
        for (rank, &(_, index, end)) in ends.iter().enumerate() {
            // The ring runs down the left column and up the right.
            let step = if in_left(module) { rank + 1 } else { count - rank };
            port_y[index][end] = top + height * step as f64 / (count + 1) as f64;
        }
    }

    // Lanes outside the ring: beside either column, and beneath both for links between them.
    let outer: Vec<LaneUse> = (0..graph.links.len())
        .filter(|&index| sides[index] == Side::Outer)
        .map(|index| {
            let link = &graph.links[index];
            let (low, high) = span(places[index]);
            let [from_y, to_y] = port_y[index];
            let runs = match (in_left(link.from), in_left(link.to)) {
                (true, true) => vec![(LEFT_OUTER, from_y.min(to_y), from_y.max(to_y))],
                (false, false) => vec![(RIGHT_OUTER, from_y.min(to_y), from_y.max(to_y))],
                (from_left, _) => {
                    let (left_y, right_y) = if from_left { (from_y, to_y) } else { (to_y, from_y) };
                    vec![(LEFT_OUTER, left_y, f64::INFINITY), (RIGHT_OUTER, right_y, f64::INFINITY)]
                }
            };
            LaneUse { link: index, low, high, runs }
        })
        .collect();
    let outer_depth = nest(&outer);
    let deepest = |set: u8| {
        outer
            .iter()
            .filter(|lane_use| lane_use.runs.iter().any(|run| run.0 == set))
            .map(|lane_use| outer_depth[&lane_use.link])
            .max()
            .unwrap_or(0)
    };
    let (left_outer, right_outer) = (deepest(LEFT_OUTER), deepest(RIGHT_OUTER));
    let around = outer.iter().filter(|lane_use| lane_use.runs.len() == 2).map(|lane_use| outer_depth[&lane_use.link]);
    let bottom_lanes = around.max().unwrap_or(0);

    // Lanes inside the ring: links within the left column nearest it, within the right column
    // nearest that, and links across the corridor in between.
    let inner_within = |left: bool| -> Vec<LaneUse> {
        (0..graph.links.len())
            .filter(|&index| {
                let link = &graph.links[index];
                sides[index] == Side::Inner && in_left(link.from) == left && in_left(link.to) == left
            })
            .map(|index| {
                let (low, high) = span(places[index]);
                let [from_y, to_y] = port_y[index];
                LaneUse { link: index, low, high, runs: vec![(0, from_y.min(to_y), from_y.max(to_y))] }
            })
            .collect()
    };
    let (inner_left, inner_right) = (nest(&inner_within(true)), nest(&inner_within(false)));
    let across: Vec<usize> = (0..graph.links.len())
        .filter(|&index| {
            let link = &graph.links[index];
            sides[index] == Side::Inner && in_left(link.from) != in_left(link.to)
        })
        .collect();
    let tracks = order_tracks(graph, &across, places, &port_y, in_left);
    let left_inner = inner_left.values().copied().max().unwrap_or(0);
    let right_inner = inner_right.values().copied().max().unwrap_or(0);
    let corridor_lanes = left_inner + tracks.len() + right_inner;

    let lanes_width = |count: usize| if count == 0 { 0.0 } else { STUB + (count - 1) as f64 * LANE };
    let left_x = MARGIN + lanes_width(left_outer);
    let corridor = if arrangement.right.is_empty() {
        0.0
    } else {
        CORRIDOR_MIN.max(2.0 * STUB + corridor_lanes.saturating_sub(1) as f64 * LANE)
    };
    let right_x = left_x + width + corridor;
    let first_lane = left_x + width + (corridor - corridor_lanes.saturating_sub(1) as f64 * LANE) / 2.0;
    let corridor_x = |lane: usize| first_lane + lane as f64 * LANE;
    let column_right = if arrangement.right.is_empty() { left_x + width } else { right_x + width };
    let legend_widest = LEGEND.iter().map(|(_, text)| legend_entry_width(text)).fold(0.0, f64::max);
    let total_width = (column_right + lanes_width(right_outer) + MARGIN).max(2.0 * MARGIN + legend_widest);
    let left_lane = |depth: usize| left_x - STUB - (depth - 1) as f64 * LANE;
    let right_lane = |depth: usize| column_right + STUB + (depth - 1) as f64 * LANE;
    let bottom_lane = |depth: usize| column_bottom + STUB + (depth - 1) as f64 * LANE;

    let mut modules: Vec<PlacedModule> = Vec::new();
    let mut labels = Vec::new();
    for (index, &module) in graph.modules.iter().enumerate() {
        let x = if in_left(index) { left_x } else { right_x };
        let slots: Vec<Rect> = slot_tops[index].iter().map(|&(y, height)| Rect { x, y, width, height }).collect();
        let names = std::iter::once((module.name(), Font::Module))
            .chain(graph.tables[index].iter().map(|&table| (table, Font::Table)));
        for (slot, (name, font)) in slots.iter().zip(names) {
            labels.push(text_label(name, slot, font));
        }
        let (first, last) = (slots[0], slots[slots.len() - 1]);
        let rect = Rect { height: last.bottom() - first.y, ..first };
        modules.push(PlacedModule { module, rect, slots });
    }

    let mut routes = Vec::new();
    for (index, link) in graph.links.iter().enumerate() {
        let side = sides[index];
        let [from_y, to_y] = port_y[index];
        let border = |module: usize| {
            let rect = &modules[module].rect;
            if east(module, side) { rect.right() } else { rect.x }
        };
        let start = Point { x: border(link.from), y: from_y };
        let tip = Point { x: border(link.to), y: to_y };
        let through_lane = |x: f64| vec![start, Point { x, y: from_y }, Point { x, y: to_y }, tip];
        let (from_left, to_left) = (in_left(link.from), in_left(link.to));
        let points = match side {
            Side::Outer if from_left == to_left => {
                let depth = outer_depth[&index];
                through_lane(if from_left { left_lane(depth) } else { right_lane(depth) })
            }
            Side::Outer => {
                let depth = outer_depth[&index];
                let (near, far) = if from_left {
                    (left_lane(depth), right_lane(depth))
                } else {
                    (right_lane(depth), left_lane(depth))
                };
                let y = bottom_lane(depth);
                vec![
                    start,
                    Point { x: near, y: from_y },
                    Point { x: near, y },
                    Point { x: far, y },
                    Point { x: far, y: to_y },
                    tip,
                ]
            }
            Side::Inner if from_left && to_left => through_lane(corridor_x(inner_left[&index] - 1)),
            Side::Inner if !from_left && !to_left => through_lane(corridor_x(corridor_lanes - inner_right[&index])),
            Side::Inner => {
                let track = tracks.iter().position(|&other| other == index).unwrap_or(0);
                through_lane(corridor_x(left_inner + track))
            }
        };
        routes.push(Route { points: simplify(points) });
    }

    // The legend, in as many rows as the width needs.
    let mut legend = Vec::new();
    let legend_top = if bottom_lanes > 0 { bottom_lane(bottom_lanes) } else { column_bottom } + 24.0;
    let (mut x, mut y) = (MARGIN, legend_top);
    for (kind, text) in LEGEND {
        let entry = legend_entry_width(text);
        if x > MARGIN && x + entry > total_width - MARGIN {
            x = MARGIN;
            y += 22.0;
        }
        legend.push((kind, Point { x, y }, LEGEND_SAMPLE - ARROW_LENGTH));
        let text_x = x + LEGEND_SAMPLE + 6.0;
        let rect =
            Rect { x: text_x, y: y - LEGEND_FONT / 2.0, width: text_width(text, Font::Legend), height: LEGEND_FONT };
        labels.push(Label { text: text.to_owned(), font: Font::Legend, rect });
        x += entry + 24.0;
    }

    Layout { width: total_width.ceil(), height: (y + 16.0).ceil(), modules, routes, labels, legend, crossings }
}

const LEGEND: [(Kind, &str); 3] = [
    (Kind::Read, "reads another module's table"),
    (Kind::Write, "writes another module's table"),
    (Kind::Call, "calls another module's code"),
];

fn legend_entry_width(text: &str) -> f64 {
    LEGEND_SAMPLE + 6.0 + text_width(text, Font::Legend)
}

/// A name centred in its header or row.
fn text_label(text: &str, within: &Rect, font: Font) -> Label {
    let (size, width) = (font_size(font), text_width(text, font));
    let rect = Rect {
        x: within.x + (within.width - width) / 2.0,
        y: within.y + (within.height - size) / 2.0,
        width,
        height: size,
    };
    Label { text: text.to_owned(), font, rect }
}

/// Drops repeated points and points in the middle of a straight run.
fn simplify(points: Vec<Point>) -> Vec<Point> {
    let mut kept: Vec<Point> = Vec::with_capacity(points.len());
    for point in points {
        if kept.last() == Some(&point) {
            continue;
        }
        if kept.len() >= 2 {
            let (a, b) = (kept[kept.len() - 2], kept[kept.len() - 1]);
            if (a.x == b.x && b.x == point.x) || (a.y == b.y && b.y == point.y) {
                kept.pop();
            }
        }
        kept.push(point);
    }
    kept
}

/// Left-to-right order of the tracks of the links across the corridor. A link's vertical run must
/// lie right of every link whose stub from the left column it spans, and left of every link whose
/// stub into the right column it spans. Between links that do not interleave these demands never
/// contradict each other: a link going down only spans the stubs of lower links, which go down
/// too, so following the demands always leads downwards (upwards for links going up).
fn order_tracks(
    graph: &Graph,
    across: &[usize],
    places: &[[usize; 2]],
    port_y: &[[f64; 2]],
    in_left: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let ends = |index: usize| {
        let [from_y, to_y] = port_y[index];
        if in_left(graph.links[index].from) { (from_y, to_y) } else { (to_y, from_y) }
    };
    // A stub that passes just beyond the end of a vertical run would look like a junction: it
    // counts as spanned.
    let spans = |index: usize, y: f64| {
        let (left, right) = ends(index);
        left.min(right) - LANE < y && y < left.max(right) + LANE
    };
    let mut before: BTreeMap<usize, BTreeSet<usize>> = across.iter().map(|&index| (index, BTreeSet::new())).collect();
    for &a in across {
        for &b in across {
            // Interleaving links cross whatever the order; what they would ask for could only
            // make others cross too.
            if a == b || interleave(places[a], places[b]) {
                continue;
            }
            let (b_left, b_right) = ends(b);
            if spans(a, b_left) {
                before.entry(a).or_default().insert(b);
            }
            if spans(a, b_right) {
                before.entry(b).or_default().insert(a);
            }
        }
    }
    let mut order = Vec::with_capacity(across.len());
    while !before.is_empty() {
        // Only links that interleave can leave nothing ready (they cross anyway): then the one that
        // waits for the fewest goes first, which breaks the fewest promises.
        let Some(next) = before.iter().min_by_key(|(index, waiting)| (waiting.len(), **index)).map(|(&index, _)| index)
        else {
            break;
        };
        before.remove(&next);
        for waiting in before.values_mut() {
            waiting.remove(&next);
        }
        order.push(next);
    }
    order
}

fn number(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded == rounded.trunc() { format!("{rounded:.0}") } else { format!("{rounded:.1}") }
}

fn path(points: &[Point]) -> String {
    let mut d = String::new();
    for (index, point) in points.iter().enumerate() {
        let _ = write!(d, "{}{},{}", if index == 0 { "M" } else { " L" }, number(point.x), number(point.y));
    }
    d
}

/// The diagram in words, for whoever cannot see it: what each module owns, reads, writes and calls.
fn description(graph: &Graph) -> String {
    let mut sentences = Vec::new();
    for (index, module) in graph.modules.iter().enumerate() {
        let owns = &graph.tables[index];
        let mut parts =
            vec![if owns.is_empty() { "owns no table".to_owned() } else { format!("owns {}", owns.join(", ")) }];
        for kind in [Kind::Read, Kind::Write, Kind::Call] {
            let targets: Vec<String> = graph
                .links
                .iter()
                .filter(|link| link.from == index && link.kind == kind)
                .map(|link| match kind {
                    Kind::Call => graph.modules[link.to].name().to_owned(),
                    _ => format!("{} ({})", graph.tables[link.to][link.slot - 1], graph.modules[link.to].name()),
                })
                .collect();
            if !targets.is_empty() {
                parts.push(format!("{} {}", kind.verb(), targets.join(", ")));
            }
        }
        sentences.push(format!("{} {}.", module.name(), parts.join("; ")));
    }
    sentences.push("Calls into the admin shell, which every module with pages makes, are not drawn.".to_owned());
    sentences.join(" ")
}

pub fn svg(declarations: &[&TableAccess], calls: &[(Module, &[Call])]) -> String {
    // The declarations are constants of the build, and the search takes a while: it runs once per
    // process, and again only if what it draws were ever different.
    static DRAWN: Mutex<Option<(String, String)>> = Mutex::new(None);
    let graph = Graph::new(declarations, calls);
    let key = format!("{graph:?}");
    let mut drawn = DRAWN.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((known, svg)) = drawn.as_ref()
        && *known == key
    {
        return svg.clone();
    }
    let svg = render(&graph, &layout(&graph));
    *drawn = Some((key, svg.clone()));
    svg
}

fn render(graph: &Graph, layout: &Layout) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg class="diagram" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" role="img" aria-labelledby="architecture-diagram-title" aria-describedby="architecture-diagram-desc" font-family="system-ui, sans-serif">
<title id="architecture-diagram-title">Modules, the tables they own, the tables of other modules they read or write, and the modules they call</title>
<desc id="architecture-diagram-desc">{}</desc>
"##,
        number(layout.width),
        number(layout.height),
        escape(&description(graph)),
    );
    for placed in &layout.modules {
        let fill = colour(placed.module);
        let rect = &placed.rect;
        let _ = writeln!(
            out,
            r##"<rect x="{}" y="{}" width="{}" height="{}" rx="6" fill="{fill}"/>"##,
            number(rect.x),
            number(rect.y),
            number(rect.width),
            number(rect.height),
        );
        for row in &placed.slots[1..] {
            let _ = writeln!(
                out,
                r##"<rect x="{}" y="{}" width="{}" height="{}" rx="2" fill="#fff"/>"##,
                number(row.x + 2.0),
                number(row.y + 1.0),
                number(row.width - 4.0),
                number(row.height - 2.0),
            );
        }
    }
    for label in &layout.labels {
        // A label's box is one font size high: a baseline at 85 % of it centres the lower-case
        // letters and most capitals in it.
        let rect = &label.rect;
        let baseline = rect.y + rect.height * 0.85;
        let (x, attributes) = match label.font {
            Font::Module => (rect.x + rect.width / 2.0, r##"text-anchor="middle" font-weight="700" fill="#fff""##),
            Font::Table => (
                rect.x + rect.width / 2.0,
                r##"text-anchor="middle" font-family="ui-monospace, monospace" fill="#1d2430""##,
            ),
            Font::Legend => (rect.x, r##"fill="#1d2430""##),
        };
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{}" font-size="{}" {attributes}>{}</text>"##,
            number(x),
            number(baseline),
            number(font_size(label.font)),
            escape(&label.text)
        );
    }
    for (link, route) in graph.links.iter().zip(&layout.routes) {
        let stroke = link.kind.colour();
        let dash = if link.kind == Kind::Call { r##" stroke-dasharray="5 3""## } else { "" };
        let head = route.arrowhead();
        // The line stops at the arrowhead's base, so its end does not show beside the tip.
        let mut line = route.points.clone();
        let last = line.len() - 1;
        line[last] = Point { x: (head[1].x + head[2].x) / 2.0, y: (head[1].y + head[2].y) / 2.0 };
        let _ = writeln!(
            out,
            r##"<g><title>{}</title><path d="{}" fill="none" stroke="{stroke}" stroke-width="1.6"{dash}/><path d="{} z" fill="{stroke}"/></g>"##,
            escape(&link.title),
            path(&line),
            path(&head),
        );
    }
    for &(kind, start, length) in &layout.legend {
        let end = Point { x: start.x + length, y: start.y };
        let tip = Point { x: end.x + ARROW_LENGTH, y: end.y };
        let head = Route { points: vec![start, tip] }.arrowhead();
        let dash = if kind == Kind::Call { r##" stroke-dasharray="5 3""## } else { "" };
        let _ = writeln!(
            out,
            r##"<path d="{}" stroke="{}" stroke-width="1.6"{dash}/><path d="{} z" fill="{}"/>"##,
            path(&[start, end]),
            kind.colour(),
            path(&head),
            kind.colour(),
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;
    use crate::architecture::coupling;
    use crate::kernel::Use;

    type Segment = (Point, Point);

    /// The diagram of Agora's own declarations, laid out once for all the tests.
    fn current() -> &'static (Graph, Layout) {
        static CURRENT: OnceLock<(Graph, Layout)> = OnceLock::new();
        CURRENT.get_or_init(|| {
            let graph = Graph::new(&coupling::declarations(), &coupling::dependency_declarations());
            let layout = layout(&graph);
            (graph, layout)
        })
    }

    fn segments(route: &Route) -> Vec<Segment> {
        route.points.windows(2).map(|pair| (pair[0], pair[1])).collect()
    }

    fn bounds(points: &[Point]) -> Rect {
        let (mut low, mut high) = (points[0], points[0]);
        for point in points {
            low = Point { x: low.x.min(point.x), y: low.y.min(point.y) };
            high = Point { x: high.x.max(point.x), y: high.y.max(point.y) };
        }
        Rect { x: low.x, y: low.y, width: high.x - low.x, height: high.y - low.y }
    }

    /// Distance between two rectangles (0 if they touch or overlap); axis-parallel segments are
    /// rectangles without width, so this is also the distance between two segments.
    fn distance(a: &Rect, b: &Rect) -> f64 {
        let dx = (a.x.max(b.x) - a.right().min(b.right())).max(0.0);
        let dy = (a.y.max(b.y) - a.bottom().min(b.bottom())).max(0.0);
        dx.hypot(dy)
    }

    fn segment_distance(one: Segment, other: Segment) -> f64 {
        distance(&bounds(&[one.0, one.1]), &bounds(&[other.0, other.1]))
    }

    /// Whether a segment passes through the inside of a box (running along its border does not).
    fn enters(segment: Segment, rect: &Rect) -> bool {
        let line = bounds(&[segment.0, segment.1]);
        line.x < rect.right() && line.right() > rect.x && line.y < rect.bottom() && line.bottom() > rect.y
    }

    /// Pairs of arrows whose lines meet anywhere: cross, touch or overlap.
    fn crossing_pairs(layout: &Layout) -> Vec<(usize, usize)> {
        let mut pairs = Vec::new();
        for (a, first) in layout.routes.iter().enumerate() {
            for (b, second) in layout.routes.iter().enumerate().skip(a + 1) {
                let meet = segments(first)
                    .iter()
                    .any(|&one| segments(second).iter().any(|&other| segment_distance(one, other) == 0.0));
                if meet {
                    pairs.push((a, b));
                }
            }
        }
        pairs
    }

    /// The least distance between the lines of two arrows that do not cross.
    fn closest_lines(layout: &Layout) -> f64 {
        let crossing = crossing_pairs(layout);
        let mut closest = f64::INFINITY;
        for (a, first) in layout.routes.iter().enumerate() {
            for (b, second) in layout.routes.iter().enumerate().skip(a + 1) {
                if !crossing.contains(&(a, b)) {
                    for &one in &segments(first) {
                        for &other in &segments(second) {
                            closest = closest.min(segment_distance(one, other));
                        }
                    }
                }
            }
        }
        closest
    }

    /// Every line is orthogonal, inside the picture, and runs through no box, its own two
    /// included: it leaves its module's header from the border and ends on its target's border,
    /// beside the header (a call) or the row of the table it uses.
    fn assert_no_line_crosses_a_box(graph: &Graph, layout: &Layout) {
        assert_eq!(layout.routes.len(), graph.links.len());
        for (link, route) in graph.links.iter().zip(&layout.routes) {
            for (from, to) in segments(route) {
                assert!(from.x == to.x || from.y == to.y, "{}: a slanted segment", link.title);
                assert_ne!(from, to, "{}: an empty segment", link.title);
            }
            for point in &route.points {
                assert!(point.x >= 0.0 && point.x <= layout.width && point.y >= 0.0 && point.y <= layout.height);
            }
            for placed in &layout.modules {
                for segment in segments(route) {
                    assert!(!enters(segment, &placed.rect), "{} runs through {}", link.title, placed.module.name());
                }
            }
            let (start, source) = (route.points[0], &layout.modules[link.from]);
            let header = source.slots[0];
            assert!(start.x == source.rect.x || start.x == source.rect.right(), "{}", link.title);
            assert!(start.y > header.y && start.y < header.bottom(), "{}: starts beside the header", link.title);
            let (tip, target) = (route.tip(), &layout.modules[link.to]);
            let slot = target.slots[link.slot];
            assert!(tip.x == target.rect.x || tip.x == target.rect.right(), "{}: tip off the border", link.title);
            assert!(tip.y > slot.y && tip.y < slot.bottom(), "{}: tip beside another table", link.title);
        }
        for (a, placed) in layout.modules.iter().enumerate() {
            for other in layout.modules.iter().skip(a + 1) {
                assert!(distance(&placed.rect, &other.rect) >= MODULE_GAP - 1e-9);
            }
        }
    }

    /// Each arrowhead meets its border square on, at the end of a straight stretch long enough to
    /// hold it; arrowheads keep a port's distance from one another, and no other line touches one.
    fn assert_arrowheads_apart(graph: &Graph, layout: &Layout) {
        for (link, route) in graph.links.iter().zip(&layout.routes) {
            let (tip, before) = (route.tip(), route.points[route.points.len() - 2]);
            assert_eq!(before.y, tip.y, "{}: the arrow meets the border aslant", link.title);
            assert!((tip.x - before.x).abs() >= STUB, "{}: no room for the arrowhead", link.title);
            let inward = if tip.x == layout.modules[link.to].rect.x { 1.0 } else { -1.0 };
            assert!((tip.x - before.x) * inward > 0.0, "{}: the arrow points away from its target", link.title);
        }
        let heads: Vec<[Point; 3]> = layout.routes.iter().map(Route::arrowhead).collect();
        for (a, head) in heads.iter().enumerate() {
            for (b, other) in heads.iter().enumerate().skip(a + 1) {
                let gap = (head[0].x - other[0].x).hypot(head[0].y - other[0].y);
                assert!(gap >= PORT_GAP - 1e-9, "the tips of arrows {a} and {b} are {gap} apart");
                assert!(distance(&bounds(head), &bounds(other)) > 0.0, "arrowheads {a} and {b} overlap");
            }
            for (b, route) in layout.routes.iter().enumerate().filter(|&(b, _)| b != a) {
                for (from, to) in segments(route) {
                    assert!(distance(&bounds(head), &bounds(&[from, to])) > 0.0, "arrow {b} runs over arrowhead {a}");
                }
            }
        }
    }

    /// Names sit inside their header or row, one each, with the padding the box width allows for;
    /// no two texts overlap, and no line runs over one.
    fn assert_labels_clear(layout: &Layout) {
        for (a, label) in layout.labels.iter().enumerate() {
            for other in layout.labels.iter().skip(a + 1) {
                assert!(distance(&label.rect, &other.rect) > 0.0, "{} overlaps {}", label.text, other.text);
            }
            for route in &layout.routes {
                for (from, to) in segments(route) {
                    assert!(distance(&label.rect, &bounds(&[from, to])) > 0.0, "a line runs over {}", label.text);
                }
            }
            let rect = &label.rect;
            assert!(rect.x >= 0.0 && rect.right() <= layout.width && rect.y >= 0.0 && rect.bottom() <= layout.height);
        }
        for placed in &layout.modules {
            for slot in &placed.slots {
                let inside: Vec<&Label> =
                    layout.labels.iter().filter(|label| distance(&label.rect, slot) == 0.0).collect();
                assert_eq!(inside.len(), 1, "one name in each header and row of {}", placed.module.name());
                let rect = &inside[0].rect;
                assert!(rect.x >= slot.x + TEXT_PADDING - 1e-9 && rect.right() <= slot.right() - TEXT_PADDING + 1e-9);
                assert!(rect.y >= slot.y && rect.bottom() <= slot.bottom());
            }
        }
    }

    #[test]
    fn no_line_crosses_a_box() {
        let (graph, layout) = current();
        assert_no_line_crosses_a_box(graph, layout);
    }

    #[test]
    fn no_two_lines_cross_and_parallel_ones_keep_a_lane_apart() {
        let (_, layout) = current();
        assert_eq!(layout.crossings, 0, "the search found an order where no two arrows' ends interleave");
        assert_eq!(crossing_pairs(layout), Vec::new());
        assert!(closest_lines(layout) >= LANE, "two lines {} apart", closest_lines(layout));
    }

    #[test]
    fn arrowheads_end_on_the_border_apart_from_one_another() {
        let (graph, layout) = current();
        assert_arrowheads_apart(graph, layout);
    }

    #[test]
    fn names_do_not_overlap() {
        let (_, layout) = current();
        assert_labels_clear(layout);
    }

    #[test]
    fn draws_every_declared_read_write_and_call_but_the_admin_shell() {
        let declarations = coupling::declarations();
        let (graph, _) = current();
        let uses: usize =
            declarations.iter().map(|declaration| declaration.reads.len() + declaration.writes.len()).sum();
        let calls: usize = coupling::dependency_declarations()
            .iter()
            .map(|(_, calls)| calls.iter().filter(|call| call.module != Module::Admin).count())
            .sum();
        assert_eq!(graph.links.len(), uses + calls);
    }

    #[test]
    fn scales_to_a_phone_and_says_in_words_what_it_shows() {
        let drawn = svg(&coupling::declarations(), &coupling::dependency_declarations());
        let (graph, layout) = current();
        assert_eq!(drawn, render(graph, layout), "the same declarations draw the same diagram");
        let opening = &drawn[..drawn.find('>').unwrap_or(0)];
        assert!(opening.starts_with(r#"<svg class="diagram""#));
        assert!(opening.contains(&format!(r#"viewBox="0 0 {} {}""#, number(layout.width), number(layout.height))));
        assert!(!opening.contains(" width=") && !opening.contains(" height="), "the stylesheet sizes it");
        assert!(opening.contains(r#"role="img" aria-labelledby="architecture-diagram-title""#));
        assert!(opening.contains(r#"aria-describedby="architecture-diagram-desc""#));
        assert!(drawn.contains(r#"<title id="architecture-diagram-title">"#));
        assert!(!drawn.contains("style"), "the Content-Security-Policy refuses inline styles");
        let description = description(graph);
        assert!(drawn.contains(&format!(r#"<desc id="architecture-diagram-desc">{}</desc>"#, escape(&description))));
        for link in &graph.links {
            let (from, to) = (graph.modules[link.from].name(), graph.modules[link.to].name());
            let what =
                if link.slot == 0 { to.to_owned() } else { format!("{} ({to})", graph.tables[link.to][link.slot - 1]) };
            let sentence = description.split(". ").find(|sentence| sentence.starts_with(&format!("{from} owns")));
            assert!(sentence.is_some_and(
                |sentence| sentence.contains(&format!("{} ", link.kind.verb())) && sentence.contains(&what)
            ));
        }
        // A 360-pixel phone shows the page 334 pixels wide, within its margins and the border.
        let smallest = MODULE_FONT.min(TABLE_FONT).min(LEGEND_FONT) * 334.0 / layout.width;
        assert!(smallest >= 8.0, "the smallest text is {smallest} pixels high on a phone");
    }

    /// Other declarations, drawn by the same code, keep every promise above; their only crossings
    /// are between arrows whose ends interleave on the side the search gave them.
    #[test]
    fn other_couplings_draw_as_cleanly() {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound.max(1) as u64) as usize
        };
        let leak = |text: String| -> &'static str { Box::leak(text.into_boxed_str()) };
        for round in 0..60 {
            let modules = &Module::ALL[..3 + next(4)];
            let owns: Vec<Vec<&'static str>> = (0..modules.len())
                .map(|module| (0..next(4)).map(|table| leak(format!("t{round}_{module}_{table}"))).collect())
                .collect();
            let all: Vec<&'static str> = owns.iter().flatten().copied().collect();
            let mut declarations = Vec::new();
            let mut calls = Vec::new();
            for (index, &module) in modules.iter().enumerate() {
                let mut pick = |most: usize| -> &'static [Use] {
                    let mut uses: Vec<Use> = Vec::new();
                    for _ in 0..next(most + 1) {
                        if let Some(&table) = all.get(next(all.len()))
                            && !owns[index].contains(&table)
                            && uses.iter().all(|used| used.table != table)
                        {
                            uses.push(Use { table, reason: "test" });
                        }
                    }
                    Box::leak(uses.into_boxed_slice())
                };
                let (reads, writes) = (pick(4), pick(1));
                let owned: &'static [&'static str] = Box::leak(owns[index].clone().into_boxed_slice());
                declarations.push(&*Box::leak(Box::new(TableAccess { module, owns: owned, reads, writes })));
                let called: Vec<Call> = modules
                    .iter()
                    .filter(|&&other| other != module && next(4) == 0)
                    .map(|&other| Call { module: other, reason: "test" })
                    .collect();
                calls.push((module, &*Box::leak(called.into_boxed_slice())));
            }
            let graph = Graph::new(&declarations, &calls);
            let layout = layout(&graph);
            assert_no_line_crosses_a_box(&graph, &layout);
            assert_arrowheads_apart(&graph, &layout);
            assert_labels_clear(&layout);
            assert_eq!(crossing_pairs(&layout).len(), layout.crossings, "round {round}");
            assert!(closest_lines(&layout) >= LANE, "round {round}");
        }
    }

    /// `cargo test --lib architecture::diagram -- --ignored` writes the diagram, alone and inside
    /// the admin stylesheet, to look at in a browser.
    #[test]
    #[ignore = "writes files to look at"]
    fn write_svg() {
        let drawn = svg(&coupling::declarations(), &coupling::dependency_declarations());
        let directory = std::env::temp_dir();
        let page = format!(
            "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
             <link rel=stylesheet href=\"file://{}/static/admin.css\"><main>{drawn}</main>",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::write(directory.join("diagram.svg"), &drawn).unwrap();
        std::fs::write(directory.join("diagram.html"), page).unwrap();
    }
}
