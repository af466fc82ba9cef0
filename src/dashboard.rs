//! `/admin`: the last 24 hours of orders and the outbox's backlog at a glance, orders and revenue
//! per day over the last 30 days, the emptiest shelves, and the backlog over the last day. A page
//! over several modules, so it sits above them all, beside the composition root, and no module
//! (nor the admin shell the modules' pages use) depends on it.
//!
//! Every chart is drawn by the template from geometry computed here (`admin::chart`), says what it
//! shows in one sentence that the SVG is labelled by, and has its data as a table below it.

use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Timelike, Utc};

use crate::admin::chart::{self, Bars, LineSeries, Plot, RowInput};
use crate::admin::page::{Layout, PageError, Section, render};
use crate::admin::session::Admin;
use crate::error::AppError;
use crate::http::state::AppState;
use crate::inventory::StockLevel;
use crate::kernel::Module;
use crate::money::{Currency, grouped};
use crate::orders::Dashboard;
use crate::orders::sales::SalesDay;
use crate::outbox::Backlog;
use crate::outbox::history::BacklogPoint;

/// Days of the sales charts, today (UTC) included.
const DAYS: u32 = 30;
/// Products in the stock chart.
const LOWEST: i64 = 10;
/// Hours of the backlog chart, before the current one.
const HOURS: u32 = 24;

#[derive(Template)]
#[template(path = "templates/dashboard.html")]
struct DashboardPage {
    layout: Layout,
    orders: Dashboard,
    outbox: Backlog,
    low_stock: i64,
    currency: Currency,
    sales: Sales,
    stock: Stock,
    backlog: BacklogHistory,
}

pub async fn show(state: web::Data<AppState>, admin: Admin) -> Result<HttpResponse, PageError> {
    let after = admin.read_after();
    let today = Utc::now().date_naive();
    // Three modules' reads, each on a connection of its own, at the same time.
    let orders = state.db.read(Module::Orders.op("dashboard"), after, move |conn| -> Result<_, AppError> {
        Ok((crate::orders::dashboard(conn)?, crate::orders::sales::daily_sales(conn, today, DAYS)?))
    });
    let stock = state.db.read(Module::Inventory.op("dashboard"), after, |conn| -> Result<_, AppError> {
        Ok((crate::inventory::stock_levels(conn, false, None, LOWEST)?.items, crate::inventory::low_stock_count(conn)?))
    });
    let outbox = state.db.read(Module::Outbox.op("dashboard"), after, |conn| -> Result<_, AppError> {
        Ok((crate::outbox::backlog(conn)?, crate::outbox::history::backlog_history(conn, HOURS)?))
    });
    let (orders, stock, outbox) = tokio::join!(orders, stock, outbox);
    let ((orders, days), (levels, low_stock), (outbox, history)) = (orders?, stock?, outbox?);
    let currency = state.config.currency;
    render(&DashboardPage {
        layout: admin.layout(Section::Dashboard),
        orders,
        outbox,
        low_stock,
        currency,
        sales: Sales::new(days, currency),
        stock: Stock::new(levels),
        backlog: BacklogHistory::new(history),
    })
}

/// `n` and the noun, singular or plural: "1 order", "1,204 orders".
fn count_of(n: i64, singular: &str, plural: &str) -> String {
    format!("{} {}", grouped(n), if n == 1 { singular } else { plural })
}

/// An amount for an axis: `€1,500` rather than `€1,500.00`, cents kept where there are any.
fn axis_amount(currency: Currency, amount_minor: i128) -> String {
    let text = currency.format(amount_minor);
    match text.rsplit_once('.') {
        Some((whole, fraction)) if fraction.bytes().all(|digit| digit == b'0') => whole.to_owned(),
        _ => text,
    }
}

/// Orders and revenue per day.
struct Sales {
    days: Vec<SalesDay>,
    orders_chart: Plot,
    revenue_chart: Plot,
    orders_summary: String,
    revenue_summary: String,
}

impl Sales {
    fn new(days: Vec<SalesDay>, currency: Currency) -> Sales {
        let orders: i64 = days.iter().map(|day| day.orders).sum();
        let revenue: i128 = days.iter().map(|day| day.revenue_minor).sum();
        let period = format!("in the last {} days", days.len());
        // The most recent of equally busy days: `max_by_key` keeps the last maximum.
        let busiest = days.iter().filter(|day| day.orders > 0).max_by_key(|day| day.orders);
        let orders_summary = match busiest {
            Some(busiest) => format!(
                "{} {period}; busiest day {} with {}.",
                count_of(orders, "order", "orders"),
                busiest.day,
                count_of(busiest.orders, "order", "orders")
            ),
            None => format!("No orders {period}."),
        };
        let best = days.iter().filter(|day| day.revenue_minor > 0).max_by_key(|day| day.revenue_minor);
        let revenue_summary = match best {
            Some(best) => format!(
                "{} revenue from paid and shipped orders {period}; best day {} with {}.",
                currency.format(revenue),
                best.day,
                currency.format(best.revenue_minor)
            ),
            None => format!("No revenue from paid or shipped orders {period}."),
        };
        // Every seventh day back from today, so that today is always labelled.
        let labelled: Vec<(usize, String)> = (0..days.len())
            .rev()
            .step_by(7)
            .map(|index| (index, days[index].day.format("%b %-d").to_string()))
            .collect();
        let order_columns: Vec<(i128, String)> = days
            .iter()
            .map(|day| (i128::from(day.orders), format!("{}: {}", day.day, count_of(day.orders, "order", "orders"))))
            .collect();
        let revenue_columns: Vec<(i128, String)> = days
            .iter()
            .map(|day| (day.revenue_minor, format!("{}: {}", day.day, currency.format(day.revenue_minor))))
            .collect();
        Sales {
            orders_chart: Plot::columns(&order_columns, &labelled, &|value| grouped(value)),
            revenue_chart: Plot::columns(&revenue_columns, &labelled, &|value| axis_amount(currency, value)),
            orders_summary,
            revenue_summary,
            days,
        }
    }
}

/// The emptiest shelves.
struct Stock {
    levels: Vec<StockLevel>,
    chart: Bars,
    summary: String,
}

impl Stock {
    fn new(levels: Vec<StockLevel>) -> Stock {
        let rows = levels
            .iter()
            .map(|level| {
                let available = level.available();
                let low = if level.is_low() { ", low" } else { "" };
                let mut label = format!("{}: {} available{low}", level.sku, grouped(available));
                // The longest SKUs leave no room for the word.
                if chart::text_width(&label) > chart::WIDTH - 16.0 {
                    label = format!("{}: {}{low}", level.sku, grouped(available));
                }
                RowInput {
                    label,
                    value: i128::from(available),
                    marker: Some(i128::from(level.low_stock_threshold)),
                    class: Stock::class(level),
                    title: format!(
                        "{} ({}): {} available, low-stock threshold {}",
                        level.sku,
                        level.name,
                        grouped(available),
                        grouped(level.low_stock_threshold)
                    ),
                }
            })
            .collect();
        let low = levels.iter().filter(|level| level.is_low()).count();
        let summary = match levels.first() {
            Some(emptiest) => format!(
                "The {} with the least available stock, emptiest first: {} has {} available (threshold {}); {} of \
                 them at or below their low-stock threshold.",
                count_of(levels.len() as i64, "product", "products"),
                emptiest.sku,
                grouped(emptiest.available()),
                grouped(emptiest.low_stock_threshold),
                grouped(low as i64),
            ),
            None => "No products are stocked yet.".to_owned(),
        };
        Stock { chart: Bars::new(rows, &|value| grouped(value)), levels, summary }
    }

    /// Out of stock is bad, low is a warning; the labels say so in words too.
    fn class(level: &StockLevel) -> &'static str {
        if level.available() <= 0 {
            "stock-out"
        } else if level.is_low() {
            "stock-low"
        } else {
            "stock-ok"
        }
    }
}

/// Deliveries waiting (and dead) at each hour of the last day, and now.
struct BacklogHistory {
    points: Vec<BacklogPoint>,
    chart: Plot,
    summary: String,
}

impl BacklogHistory {
    fn new(points: Vec<BacklogPoint>) -> BacklogHistory {
        let (first, last) = match (points.first(), points.last()) {
            (Some(first), Some(last)) => (first.at, last.at),
            _ => (Utc::now(), Utc::now()),
        };
        let span = (last - first).num_seconds().max(1) as f64;
        let position = |at: DateTime<Utc>| (at - first).num_seconds() as f64 / span;
        let now = points.last();
        // Every sixth hour; the chart leaves out one too close to "now".
        let mut labelled: Vec<(f64, String)> = points
            .iter()
            .filter(|point| point.at.minute() == 0 && point.at.second() == 0 && point.at.hour().is_multiple_of(6))
            .map(|point| (position(point.at), point.at.format("%H:%M").to_string()))
            .collect();
        if now.is_some() {
            labelled.push((1.0, "now".to_owned()));
        }
        let positions: Vec<f64> = points.iter().map(|point| position(point.at)).collect();
        let series = |class, value: fn(&BacklogPoint) -> i64, noun: &'static str| LineSeries {
            class,
            values: points
                .iter()
                .map(|point| {
                    (
                        i128::from(value(point)),
                        format!("{}: {} {noun}", BacklogHistory::time(point, last), grouped(value(point))),
                    )
                })
                .collect(),
        };
        let chart = Plot::lines(
            &positions,
            vec![
                series("backlog-waiting", |point| point.waiting, "waiting"),
                series("backlog-dead", |point| point.dead, "dead"),
            ],
            &labelled,
            &|value| grouped(value),
        );
        let most = points.iter().filter(|point| point.waiting > 0).max_by_key(|point| point.waiting);
        let summary = match (now, most) {
            (Some(now), Some(most)) => format!(
                "Deliveries waiting for a handler over the last {HOURS} hours: {} now, at most {} at {}; {} dead now.",
                grouped(now.waiting),
                grouped(most.waiting),
                BacklogHistory::time(most, last),
                grouped(now.dead),
            ),
            (Some(now), None) => {
                format!("No delivery waited for a handler in the last {HOURS} hours; {} dead now.", grouped(now.dead))
            }
            _ => "No backlog history.".to_owned(),
        };
        BacklogHistory { points, chart, summary }
    }

    /// "2026-12-01 14:00 UTC", or "now (14:37 UTC)" for the last point.
    fn time(point: &BacklogPoint, now: DateTime<Utc>) -> String {
        if point.at == now {
            format!("now ({} UTC)", point.at.format("%H:%M"))
        } else {
            point.at.format("%Y-%m-%d %H:%M UTC").to_string()
        }
    }

    fn hours(&self) -> u32 {
        HOURS
    }

    fn label(&self, point: &BacklogPoint) -> String {
        BacklogHistory::time(point, self.points.last().map_or(point.at, |last| last.at))
    }
}
