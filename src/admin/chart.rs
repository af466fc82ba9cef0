//! Geometry for small server-rendered SVG charts: columns, lines and horizontal bars over a value
//! axis with round ticks. Nothing here writes markup: a template draws the shapes from these
//! numbers, so every label it prints is escaped by askama like any other text on the page.
//!
//! Every chart is [`WIDTH`] units wide; the stylesheet draws it at the width of its box (height
//! following), so it shrinks to a phone's width instead of scrolling sideways. [`FONT`] is a
//! thirtieth of the width: about 11 px on a 390 px phone, where a chart gets some 340 px, and
//! 18 px at the 34rem the stylesheet lets a chart grow to.

/// The width of every chart's viewBox.
pub const WIDTH: f64 = 480.0;
/// The font size of all chart text, in viewBox units (the stylesheet sets the same).
pub const FONT: f64 = 16.0;
/// Interval count asked of [`nice_ticks`]: four or five grid lines fit a small chart.
const INTERVALS: u32 = 4;

/// Round tick values from 0 up to at least `max`: steps of 1, 2 or 5 times a power of ten, at most
/// `intervals` of them. An axis needs a height, so a `max` of 0 or less gives `[0, 1]`.
pub fn nice_ticks(max: i128, intervals: u32) -> Vec<i128> {
    let max = max.max(1);
    let intervals = i128::from(intervals.max(1));
    let mut magnitude: i128 = 1;
    loop {
        for factor in [1, 2, 5] {
            let Some(step) = magnitude.checked_mul(factor) else { return vec![0, max] };
            if step.checked_mul(intervals).is_none_or(|reach| reach >= max) {
                let steps = max / step + i128::from(max % step != 0);
                return (0..=steps).map(|n| n.saturating_mul(step)).collect();
            }
        }
        let Some(next) = magnitude.checked_mul(10) else { return vec![0, max] };
        magnitude = next;
    }
}

/// Where `value` sits between 0 and `top`, as a fraction (0 for an axis without height).
pub fn fraction(value: i128, top: i128) -> f64 {
    if top <= 0 { 0.0 } else { (value.clamp(0, top) as f64) / (top as f64) }
}

/// A coordinate to a tenth of a unit: finer is invisible, and the markup stays short.
fn tenth(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// About how wide `text` is drawn at [`FONT`]: enough to keep labels clear of the plot.
pub fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * FONT * 0.62
}

/// A grid line across the plot at `at` (y for vertical charts, x for horizontal ones), labelled.
#[derive(Debug, Clone, PartialEq)]
pub struct GridLine {
    pub at: f64,
    pub label: String,
}

/// A label on the category or time axis at `x`: centred on it, unless that would cut it off at
/// an edge of the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisLabel {
    pub x: f64,
    pub text: String,
    /// The SVG `text-anchor`.
    pub anchor: &'static str,
}

impl AxisLabel {
    /// Where the label is drawn, left to right.
    fn extent(&self) -> (f64, f64) {
        let width = text_width(&self.text);
        match self.anchor {
            "start" => (self.x, self.x + width),
            "end" => (self.x - width, self.x),
            _ => (self.x - width / 2.0, self.x + width / 2.0),
        }
    }

    /// The labels that fit side by side, the rightmost (the latest, usually) first: a label that
    /// would touch the one kept to its right is left out.
    fn spaced(mut labels: Vec<AxisLabel>) -> Vec<AxisLabel> {
        labels.sort_by(|a, b| a.x.total_cmp(&b.x));
        let mut kept: Vec<AxisLabel> = Vec::new();
        for label in labels.into_iter().rev() {
            if kept.last().is_none_or(|right| label.extent().1 + FONT / 2.0 <= right.extent().0) {
                kept.push(label);
            }
        }
        kept.reverse();
        kept
    }

    fn new(x: f64, text: String) -> AxisLabel {
        let half = text_width(&text) / 2.0;
        let anchor = if x - half < 0.0 {
            "start"
        } else if x + half > WIDTH {
            "end"
        } else {
            "middle"
        };
        AxisLabel { x: tenth(x), text, anchor }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// Shown as the column's tooltip.
    pub title: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dot {
    pub x: f64,
    pub y: f64,
    pub title: String,
}

/// One series drawn as a line through its dots.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The CSS class that colours it.
    pub class: &'static str,
    /// `x,y x,y ...`, for a `<polyline points>`.
    pub points: String,
    pub dots: Vec<Dot>,
}

/// What a line series is made of: its class, and per point its value and tooltip.
pub struct LineSeries {
    pub class: &'static str,
    pub values: Vec<(i128, String)>,
}

/// A chart with a vertical value axis: columns (one per category) or lines (at positions).
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    pub height: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
    pub grid: Vec<GridLine>,
    pub x_labels: Vec<AxisLabel>,
    pub columns: Vec<Column>,
    pub lines: Vec<Line>,
}

const PLOT_HEIGHT: f64 = 220.0;

impl Plot {
    pub fn width(&self) -> f64 {
        WIDTH
    }

    /// Where tick labels end, just left of the plot.
    pub fn tick_label_x(&self) -> f64 {
        self.left - 6.0
    }

    /// The baseline of the category labels, under the plot.
    pub fn x_label_y(&self) -> f64 {
        self.bottom + FONT + 6.0
    }

    /// An empty plot whose value axis reaches `max`, with tick labels from `tick_label`.
    fn frame(max: i128, tick_label: &dyn Fn(i128) -> String) -> (Plot, i128) {
        let ticks = nice_ticks(max, INTERVALS);
        let labels: Vec<String> = ticks.iter().map(|tick| tick_label(*tick)).collect();
        let widest = labels.iter().map(|label| text_width(label)).fold(0.0, f64::max);
        let (top, bottom) = (FONT, PLOT_HEIGHT - FONT - 12.0);
        let top_value = *ticks.last().unwrap_or(&1);
        let grid = ticks
            .iter()
            .zip(labels)
            .map(|(tick, label)| GridLine { at: tenth(bottom - fraction(*tick, top_value) * (bottom - top)), label })
            .collect();
        let plot = Plot {
            height: PLOT_HEIGHT,
            left: (widest + 12.0).ceil(),
            right: WIDTH - 8.0,
            top,
            bottom,
            grid,
            x_labels: Vec::new(),
            columns: Vec::new(),
            lines: Vec::new(),
        };
        (plot, top_value)
    }

    fn y(&self, value: i128, top_value: i128) -> f64 {
        tenth(self.bottom - fraction(value, top_value) * (self.bottom - self.top))
    }

    /// One column per `(value, tooltip)`, left to right; `labelled` are (column index, axis label).
    pub fn columns(
        values: &[(i128, String)],
        labelled: &[(usize, String)],
        tick_label: &dyn Fn(i128) -> String,
    ) -> Plot {
        let max = values.iter().map(|(value, _)| *value).max().unwrap_or(0);
        let (mut plot, top_value) = Plot::frame(max, tick_label);
        let slot = (plot.right - plot.left) / values.len().max(1) as f64;
        let gap = (slot * 0.2).min(6.0);
        plot.columns = values
            .iter()
            .enumerate()
            .map(|(index, (value, title))| {
                let y = plot.y(*value, top_value);
                Column {
                    x: tenth(plot.left + slot * index as f64 + gap / 2.0),
                    y,
                    width: tenth(slot - gap),
                    height: tenth(plot.bottom - y),
                    title: title.clone(),
                }
            })
            .collect();
        plot.x_labels = AxisLabel::spaced(
            labelled
                .iter()
                .map(|(index, text)| AxisLabel::new(plot.left + slot * (*index as f64 + 0.5), text.clone()))
                .collect(),
        );
        plot
    }

    /// Lines through points at `positions` (0 = the left edge, 1 = the right edge), one per series;
    /// `labelled` are (position, axis label).
    pub fn lines(
        positions: &[f64],
        series: Vec<LineSeries>,
        labelled: &[(f64, String)],
        tick_label: &dyn Fn(i128) -> String,
    ) -> Plot {
        let max = series.iter().flat_map(|line| line.values.iter().map(|(value, _)| *value)).max().unwrap_or(0);
        let (mut plot, top_value) = Plot::frame(max, tick_label);
        let span = plot.right - plot.left;
        plot.lines = series
            .into_iter()
            .map(|line| {
                let dots: Vec<Dot> = positions
                    .iter()
                    .zip(line.values)
                    .map(|(position, (value, title))| Dot {
                        x: tenth(plot.left + position.clamp(0.0, 1.0) * span),
                        y: plot.y(value, top_value),
                        title,
                    })
                    .collect();
                let points = dots.iter().map(|dot| format!("{},{}", dot.x, dot.y)).collect::<Vec<_>>().join(" ");
                Line { class: line.class, points, dots }
            })
            .collect();
        plot.x_labels = AxisLabel::spaced(
            labelled
                .iter()
                .map(|(position, text)| AxisLabel::new(plot.left + position.clamp(0.0, 1.0) * span, text.clone()))
                .collect(),
        );
        plot
    }
}

/// One row of a horizontal bar chart, as the caller describes it.
pub struct RowInput {
    pub label: String,
    pub value: i128,
    /// A reference value drawn as a tick across the bar (a threshold, a target).
    pub marker: Option<i128>,
    pub class: &'static str,
    pub title: String,
}

/// One row of a horizontal bar chart: its label above, its bar below.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub label: String,
    pub label_y: f64,
    pub bar_y: f64,
    pub bar_width: f64,
    pub marker_x: Option<f64>,
    pub class: &'static str,
    pub title: String,
}

/// Horizontal bars, one per row, labels above the bars so that long labels need no margin.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    pub height: f64,
    pub left: f64,
    pub right: f64,
    /// The top and bottom of the grid lines.
    pub top: f64,
    pub bottom: f64,
    pub grid: Vec<GridLine>,
    pub rows: Vec<Row>,
}

const ROW_HEIGHT: f64 = 42.0;
pub const BAR_HEIGHT: f64 = 14.0;

impl Row {
    /// The threshold tick reaches a little past the bar on both sides.
    pub fn marker_top(&self) -> f64 {
        self.bar_y - 4.0
    }

    pub fn marker_bottom(&self) -> f64 {
        self.bar_y + BAR_HEIGHT + 4.0
    }
}

impl Bars {
    pub fn new(rows: Vec<RowInput>, tick_label: &dyn Fn(i128) -> String) -> Bars {
        let max = rows.iter().map(|row| row.value.max(row.marker.unwrap_or(0))).max().unwrap_or(0);
        let ticks = nice_ticks(max, INTERVALS);
        let top_value = *ticks.last().unwrap_or(&1);
        let last_label = tick_label(top_value);
        // The last tick's label is centred on the right edge: leave it room.
        let (left, right) = (8.0, WIDTH - (text_width(&last_label) / 2.0).max(8.0).ceil());
        let x = |value: i128| tenth(left + fraction(value, top_value) * (right - left));
        let top = 4.0;
        let bottom = top + ROW_HEIGHT * rows.len() as f64;
        let rows = rows
            .into_iter()
            .enumerate()
            .map(|(index, row)| {
                let row_top = top + ROW_HEIGHT * index as f64;
                Row {
                    label_y: row_top + FONT + 2.0,
                    bar_y: row_top + FONT + 8.0,
                    bar_width: tenth(x(row.value) - left),
                    marker_x: row.marker.map(x),
                    label: row.label,
                    class: row.class,
                    title: row.title,
                }
            })
            .collect();
        let grid = ticks.iter().map(|tick| GridLine { at: x(*tick), label: tick_label(*tick) }).collect();
        Bars { height: bottom + FONT + 10.0, left, right, top, bottom, grid, rows }
    }

    pub fn width(&self) -> f64 {
        WIDTH
    }

    pub fn bar_height(&self) -> f64 {
        BAR_HEIGHT
    }

    /// The baseline of the tick labels, under the last row.
    pub fn tick_label_y(&self) -> f64 {
        self.bottom + FONT + 4.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(value: i128) -> String {
        value.to_string()
    }

    #[test]
    fn ticks_are_round_and_reach_the_maximum() {
        assert_eq!(nice_ticks(31, 4), [0, 10, 20, 30, 40]);
        assert_eq!(nice_ticks(40, 4), [0, 10, 20, 30, 40]);
        assert_eq!(nice_ticks(41, 4), [0, 20, 40, 60]);
        assert_eq!(nice_ticks(3, 4), [0, 1, 2, 3]);
        assert_eq!(nice_ticks(7, 4), [0, 2, 4, 6, 8]);
        assert_eq!(nice_ticks(12_345, 4), [0, 5_000, 10_000, 15_000]);
        assert_eq!(nice_ticks(20_302_460, 4), [0, 10_000_000, 20_000_000, 30_000_000]);
    }

    #[test]
    fn an_empty_axis_still_has_height() {
        assert_eq!(nice_ticks(0, 4), [0, 1]);
        assert_eq!(nice_ticks(-5, 4), [0, 1]);
        assert_eq!(fraction(0, 0), 0.0);
    }

    #[test]
    fn enormous_maxima_do_not_overflow() {
        let ticks = nice_ticks(i128::MAX, 4);
        assert!(ticks.last().copied().unwrap() >= i128::MAX / 2, "{ticks:?}");
        assert!(ticks.windows(2).all(|pair| pair[0] < pair[1]), "{ticks:?}");
    }

    #[test]
    fn columns_scale_to_the_top_tick_and_share_the_width() {
        let values: Vec<(i128, String)> = [10, 0, 40].iter().map(|v| (*v, format!("{v} orders"))).collect();
        let plot = Plot::columns(&values, &[(2, "today".into())], &plain);
        assert_eq!(plot.grid.iter().map(|line| line.label.as_str()).collect::<Vec<_>>(), ["0", "10", "20", "30", "40"]);
        let [ten, zero, forty] = [&plot.columns[0], &plot.columns[1], &plot.columns[2]];
        assert_eq!(forty.y, plot.top, "the largest value reaches the top tick");
        assert_eq!(forty.y + forty.height, plot.bottom);
        assert!((ten.height * 4.0 - forty.height).abs() < 0.5, "heights are proportional");
        assert_eq!(zero.height, 0.0);
        assert!(forty.x + forty.width <= plot.right && ten.x >= plot.left);
        assert!(ten.x < zero.x && zero.x < forty.x);
        assert!((plot.x_labels[0].x - (forty.x + forty.width / 2.0)).abs() < 0.1, "a label sits under its column");
        assert_eq!(plot.grid[0].at, plot.bottom);
        assert_eq!(plot.grid[4].at, plot.top);
    }

    #[test]
    fn axis_labels_at_the_edges_stay_inside_the_chart() {
        let values: Vec<(i128, String)> = (0..30).map(|n| (n, String::new())).collect();
        let labels = [(0, "Nov 1".to_owned()), (15, "Nov 16".to_owned()), (29, "Nov 30".to_owned())];
        let plot = Plot::columns(&values, &labels, &plain);
        let anchors: Vec<&str> = plot.x_labels.iter().map(|label| label.anchor).collect();
        assert_eq!(anchors, ["middle", "middle", "end"]);
        let lines = Plot::lines(&[0.0, 1.0], Vec::new(), &[(0.0, "12:00 UTC".into()), (1.0, "now".into())], &plain);
        assert_eq!(lines.x_labels[0].anchor, "start");
        assert_eq!(lines.x_labels[1].anchor, "end");
    }

    #[test]
    fn labels_that_would_overlap_give_way_to_the_one_on_their_right() {
        let labels =
            [(0.0, "00:00".to_owned()), (0.8, "18:00".to_owned()), (0.9, "19:00".to_owned()), (1.0, "now".to_owned())];
        let plot = Plot::lines(&[0.0, 1.0], Vec::new(), &labels, &plain);
        let texts: Vec<&str> = plot.x_labels.iter().map(|label| label.text.as_str()).collect();
        assert_eq!(texts, ["00:00", "18:00", "now"]);
        for pair in plot.x_labels.windows(2) {
            assert!(pair[0].extent().1 < pair[1].extent().0, "{pair:?}");
        }
    }

    #[test]
    fn the_value_axis_makes_room_for_its_widest_label() {
        let narrow = Plot::columns(&[(5, String::new())], &[], &plain);
        let wide = Plot::columns(&[(5, String::new())], &[], &|value| format!("€{value},000,000.00"));
        assert!(wide.left > narrow.left + text_width("€,000,000.00") - 1.0);
        assert!(wide.tick_label_x() > text_width("€5,000,000.00"));
    }

    #[test]
    fn lines_place_points_by_position() {
        let series =
            vec![LineSeries { class: "waiting", values: vec![(0, "a".into()), (8, "b".into()), (4, "c".into())] }];
        let plot = Plot::lines(&[0.0, 0.5, 1.0], series, &[(1.0, "now".into())], &plain);
        let line = &plot.lines[0];
        assert_eq!(line.dots[0].x, plot.left);
        assert_eq!(line.dots[2].x, plot.right);
        assert_eq!(line.dots[1].y, plot.top, "8 is the top tick");
        assert_eq!(line.dots[0].y, plot.bottom);
        assert_eq!(line.points.split(' ').count(), 3);
        assert_eq!(plot.x_labels[0].x, plot.right);
    }

    #[test]
    fn bars_scale_values_and_markers_alike() {
        let row = |label: &str, value, marker| RowInput {
            label: label.into(),
            value,
            marker: Some(marker),
            class: "ok",
            title: String::new(),
        };
        let bars = Bars::new(vec![row("A", 0, 5), row("B", 20, 5)], &plain);
        assert_eq!(bars.grid.last().unwrap().label, "20");
        assert_eq!(bars.rows[0].bar_width, 0.0);
        assert_eq!(bars.rows[1].bar_width, bars.right - bars.left);
        let marker = bars.rows[0].marker_x.unwrap();
        assert!((marker - bars.left - (bars.right - bars.left) / 4.0).abs() < 0.1, "5 of 20 is a quarter");
        assert!(bars.rows[0].bar_y < bars.rows[1].label_y, "rows do not overlap");
        assert!(bars.height > bars.tick_label_y());
        assert!(bars.right <= WIDTH);
    }

    #[test]
    fn labels_stay_raw_text_for_the_template_to_escape_once() {
        let hostile = "<b>&\"x\"</b>".to_owned();
        let plot = Plot::columns(&[(1, hostile.clone())], &[(0, hostile.clone())], &|_| hostile.clone());
        assert_eq!(plot.columns[0].title, hostile);
        assert_eq!(plot.x_labels[0].text, hostile);
        assert_eq!(plot.grid[0].label, hostile);
    }
}
