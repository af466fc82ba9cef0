//! The admin dashboard's charts, read through their text equivalents: the summary sentence each
//! SVG is labelled by, and the data tables below the charts.

use chrono::{DateTime, Days, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::Timestamptz;

use crate::helpers::TestApp;

/// The cells of the data-table row headed `heading`, as they appear in the page.
fn row(heading: &str, cells: &[&str]) -> String {
    let cells: String = cells.iter().map(|cell| format!("<td class=\"num\">{cell}</td>")).collect();
    format!("<tr><th scope=\"row\">{heading}</th>{cells}</tr>")
}

/// Waits, if need be, until the next full UTC hour (and so the next UTC day) is a minute away at
/// least, so that a test's hours and days do not turn under it.
fn clear_of_the_hour(app: &TestApp) {
    #[derive(QueryableByName)]
    struct Left {
        #[diesel(sql_type = diesel::sql_types::Double)]
        seconds: f64,
    }
    let left = diesel::sql_query(
        "SELECT extract(epoch FROM date_trunc('hour', now(), 'UTC') + interval '1 hour' - now())::float8 AS seconds",
    )
    .get_result::<Left>(&mut app.connect())
    .unwrap()
    .seconds;
    if left < 60.0 {
        std::thread::sleep(std::time::Duration::from_secs_f64(left + 1.0));
    }
}

fn execute(app: &TestApp, sql: &str) {
    diesel::sql_query(sql).execute(&mut app.connect()).unwrap_or_else(|error| panic!("{sql}: {error}"));
}

#[test]
fn orders_and_revenue_per_day_are_charted_with_every_day_of_the_last_thirty_in_the_table() {
    let app = TestApp::spawn();
    clear_of_the_hour(&app);
    let product = app.product_with_stock("DASH-1", 5_000_000, 50);
    let paid_today = app.placed_order("ada@example.com", &[(&product, 2)]);
    assert_eq!(app.pay(paid_today["id"].as_str().unwrap(), "4242424242424242").status, 201);
    app.placed_order("grace@example.com", &[(&product, 1)]);
    let paid_earlier = app.placed_order("alan@example.com", &[(&product, 3)]);
    assert_eq!(app.pay(paid_earlier["id"].as_str().unwrap(), "4242424242424242").status, 201);
    let long_ago = app.placed_order("edsger@example.com", &[(&product, 1)]);
    execute(
        &app,
        &format!(
            "UPDATE orders SET created_at = now() - interval '3 days' WHERE id = '{}'",
            paid_earlier["id"].as_str().unwrap()
        ),
    );
    execute(
        &app,
        &format!(
            "UPDATE orders SET created_at = now() - interval '40 days' WHERE id = '{}'",
            long_ago["id"].as_str().unwrap()
        ),
    );

    let page = app.signed_in_browser().get("/admin");
    assert_eq!(page.status, 200, "{}", page.body);
    let body = page.body;
    let today = Utc::now().date_naive();
    let day = |back: u64| today.checked_sub_days(Days::new(back)).unwrap();
    // Two orders today, one of them paid; a paid one three days ago; the one of 40 days ago is out.
    assert!(body.contains(&row(&today.to_string(), &["2", "€100,000.00"])), "{body}");
    assert!(body.contains(&row(&day(3).to_string(), &["1", "€150,000.00"])), "{body}");
    for back in [1, 2, 4, 29] {
        assert!(body.contains(&row(&day(back).to_string(), &["0", "€0.00"])), "day -{back} is listed empty: {body}");
    }
    assert!(!body.contains(&format!("<th scope=\"row\">{}</th>", day(30))), "30 days, today included");
    let table = &body[body.find("Data table: orders and revenue per day").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_eq!(table.matches("<tr><th scope=\"row\">").count(), 30, "one row per day");
    assert!(
        body.contains(&format!(
            "<figcaption id=\"orders-chart-summary\">3 orders in the last 30 days; busiest day {today} with 2 \
             orders.</figcaption>"
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "<figcaption id=\"revenue-chart-summary\">€250,000.00 revenue from paid and shipped orders in the last 30 \
             days; best day {} with €150,000.00.</figcaption>",
            day(3)
        )),
        "{body}"
    );
    for labelled_by in ["orders-chart-summary", "revenue-chart-summary", "backlog-chart-summary"] {
        assert!(body.contains(&format!("role=\"img\" aria-labelledby=\"{labelled_by}\"")), "{labelled_by}");
    }
    assert!(body.contains("<summary>Data table: orders and revenue per day</summary>"));
    assert!(body.contains(
        "<div class=\"table-scroll\" tabindex=\"0\" role=\"region\" aria-label=\"Orders and revenue per day\">"
    ));
    // Columns: a day's tooltip, and the tallest column reaching the plot's top (a grid line there).
    assert!(body.contains(&format!("<title>{today}: 2 orders</title>")), "{body}");
    assert!(body.contains(&format!("<title>{}: €150,000.00</title>", day(3))), "{body}");
    // Human status names on the 24-hour figures, the raw status in the link.
    assert!(body.contains("<a href=\"/admin/orders?status=pending_payment\">Pending payment</a>"), "{body}");
    assert!(!body.contains("http://") && !body.contains("style="), "no namespace URL, no inline style");
}

#[test]
fn the_emptiest_products_are_charted_first_and_counted_as_low_stock() {
    let app = TestApp::spawn();
    let empty = app.product_with_stock("LOW-0", 100, 0);
    let three = app.product_with_stock("LOW-3", 100, 3);
    let reserved = app.product_with_stock("MID-7", 100, 7);
    let plenty = app.product_with_stock("FULL-40", 100, 40);
    for n in 0..8 {
        app.product_with_stock(&format!("FILL-{n}"), 100, 100 + n);
    }
    // Reserved stock is not available: 7 on hand, 2 reserved leaves 5, the default threshold.
    app.placed_order("ada@example.com", &[(&reserved, 2)]);

    let body = app.signed_in_browser().get("/admin").body;
    let labels =
        ["LOW-0: 0 available, low", "LOW-3: 3 available, low", "MID-7: 5 available, low", "FULL-40: 40 available<"];
    let positions: Vec<usize> = labels
        .iter()
        .map(|label| body.find(label).unwrap_or_else(|| panic!("no bar labelled {label}: {body}")))
        .collect();
    assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "emptiest first: {positions:?}");
    // Each bar follows its label, coloured by how low it is; the links are in the table below.
    for (label, class) in labels.iter().zip(["stock-out", "stock-low", "stock-low", "stock-ok"]) {
        let bar = &body[body.find(label).unwrap()..];
        let bar = &bar[..bar.find("</g>").unwrap()];
        assert!(bar.contains(&format!("class=\"dash-bar {class}\"")), "{class}: {bar}");
    }
    for product in [&empty, &three, &reserved, &plenty] {
        assert!(body.contains(&format!("<a href=\"/admin/inventory/{product}\">")), "no link to {product}");
    }
    assert!(body.contains("FILL-5: 105 available"), "ten products: {body}");
    assert!(!body.contains("FILL-6:") && !body.contains("FILL-7:"), "only the ten emptiest: {body}");
    assert!(
        body.contains(
            "<figcaption id=\"stock-chart-summary\">The 10 products with the least available stock, emptiest first: \
             LOW-0 has 0 available (threshold 5); 3 of them at or below their low-stock threshold."
        ),
        "{body}"
    );
    assert!(body.contains("role=\"img\" aria-labelledby=\"stock-chart-summary\""));
    assert!(
        body.contains(&format!(
            "<th scope=\"row\" class=\"mono\"><a href=\"/admin/inventory/{empty}\">LOW-0</a></th><td>Product LOW-0</td>\
             <td class=\"num\">0</td><td class=\"num\">5</td>"
        )),
        "{body}"
    );
    assert!(
        body.contains(
            "<a href=\"/admin/inventory?low=1\">Low stock</a><strong><span class=\"badge low\">3</span></strong>"
        ),
        "the low-stock figure: {body}"
    );

    app.receive_stock(&empty, 50);
    let body = app.signed_in_browser().get("/admin").body;
    assert!(body.contains("<span class=\"badge low\">2</span>"), "restocked, one fewer is low: {body}");
    assert!(body.find("LOW-3: 3 available, low").unwrap() < body.find("LOW-0: 50 available<").unwrap());
}

#[test]
fn product_names_reach_the_chart_and_its_table_escaped() {
    let app = TestApp::spawn();
    let product = app.admin_post_json(
        "/api/products",
        &serde_json::json!({"sku": "ESC-1", "name": "<b>Mugs & \"cups\"</b>", "price_minor": 100}),
    );
    product.ok_json(201);
    let body = app.signed_in_browser().get("/admin").body;
    assert!(!body.contains("<b>Mugs"), "{body}");
    assert!(
        body.contains("<title>ESC-1 (&#60;b&#62;Mugs &#38; &#34;cups&#34;&#60;/b&#62;): 0 available"),
        "the bar's tooltip: {body}"
    );
    assert!(body.contains("<td>&#60;b&#62;Mugs &#38; &#34;cups&#34;&#60;/b&#62;</td>"), "the table: {body}");
}

#[derive(QueryableByName)]
struct Hour {
    #[diesel(sql_type = Timestamptz)]
    hour: DateTime<Utc>,
}

#[test]
fn the_outbox_backlog_is_charted_hour_by_hour_from_the_deliveries_timestamps() {
    let app = TestApp::spawn();
    clear_of_the_hour(&app);
    let product = app.product_with_stock("BACK-1", 100, 10);
    // Background work is off in tests: each order's OrderPlaced delivery stays pending.
    let order = app.placed_order("ada@example.com", &[(&product, 1)]);
    app.placed_order("grace@example.com", &[(&product, 1)]);
    let event =
        app.count(&format!("SELECT min(id) FROM events WHERE aggregate_id = '{}'", order["id"].as_str().unwrap()));

    let hour = diesel::sql_query("SELECT date_trunc('hour', now(), 'UTC') AS hour")
        .get_result::<Hour>(&mut app.connect())
        .unwrap()
        .hour;
    // One delivery waited from 5h10m to 2h10m before the hour and completed; one from 3h10m
    // before the hour until it died at 1h10m before.
    execute(
        &app,
        &format!(
            "INSERT INTO event_deliveries (event_id, handler, status, attempts, completed_at, created_at, updated_at)
             VALUES ({event}, 'history_done', 'completed', 1, '{hour}'::timestamptz - interval '130 minutes',
                     '{hour}'::timestamptz - interval '310 minutes', '{hour}'::timestamptz - interval '130 minutes'),
                    ({event}, 'history_dead', 'dead', 9, NULL,
                     '{hour}'::timestamptz - interval '190 minutes', '{hour}'::timestamptz - interval '70 minutes')"
        ),
    );
    let page = app.signed_in_browser().get("/admin");
    assert_eq!(page.status, 200, "{}", page.body);
    let body = page.body;
    let at = |back: i64| (hour - chrono::Duration::hours(back)).format("%Y-%m-%d %H:%M UTC").to_string();
    for (back, waiting, dead) in [
        (24, "0", "0"),
        (6, "0", "0"),
        (5, "1", "0"),
        (4, "1", "0"),
        (3, "2", "0"),
        (2, "1", "0"),
        (1, "0", "1"),
        (0, "0", "1"),
    ] {
        assert!(
            body.contains(&row(&at(back), &[waiting, dead])),
            "{back} hours back: {waiting} waiting, {dead} dead: {body}"
        );
    }
    assert!(!body.contains(&format!("<th scope=\"row\">{}</th>", at(25))), "24 hours back at most");
    let now = &body[body.find("<tr><th scope=\"row\">now (").expect("a row for now")..];
    let now = &now[..now.find("</tr>").unwrap()];
    assert!(
        now.ends_with(" UTC)</th><td class=\"num\">2</td><td class=\"num\">1</td>"),
        "2 waiting, 1 dead now: {now}"
    );
    assert!(
        body.contains(
            "<figcaption id=\"backlog-chart-summary\">Deliveries waiting for a handler over the last 24 hours: 2 now, \
             at most 2 at now ("
        ),
        "{body}"
    );
    assert!(body.contains("UTC); 1 dead now.</figcaption>"), "{body}");
    assert!(body.contains("<summary>Data table: outbox backlog</summary>"));
    assert!(body.contains("class=\"dash-line backlog-waiting\"") && body.contains("class=\"dash-line backlog-dead\""));
}

/// Orders per UTC day, counted here a different way than the dashboard's query does.
#[derive(QueryableByName)]
struct DayCount {
    #[diesel(sql_type = diesel::sql_types::Date)]
    day: NaiveDate,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    orders: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    revenue: i64,
}

#[test]
fn five_thousand_orders_are_counted_per_day_as_the_table_counts_them() {
    let app = TestApp::spawn();
    execute(
        &app,
        "INSERT INTO customers (email, name) SELECT 'c' || n || '@example.com', 'C' FROM generate_series(1, 50) n",
    );
    execute(
        &app,
        "INSERT INTO orders (customer_id, status, total_minor, currency, created_at)
         SELECT (SELECT id FROM customers ORDER BY email OFFSET n % 50 LIMIT 1),
                (ARRAY['pending_payment', 'paid', 'shipped', 'cancelled', 'refunded'])[1 + n % 5],
                100 + n, 'EUR', now() - (n * interval '8 minutes 40 seconds')
           FROM generate_series(1, 5000) n",
    );
    let expected: Vec<DayCount> = diesel::sql_query(
        "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS orders,
                coalesce(sum(total_minor) FILTER (WHERE status IN ('paid', 'shipped')), 0)::bigint AS revenue
           FROM orders GROUP BY 1",
    )
    .load(&mut app.connect())
    .unwrap();

    let mut browser = app.signed_in_browser();
    let started = std::time::Instant::now();
    let page = browser.get("/admin");
    let took = started.elapsed();
    assert_eq!(page.status, 200);
    let today = Utc::now().date_naive();
    let currency = |minor: i64| format!("€{}.{:02}", grouped(minor / 100), minor % 100);
    let mut listed = 0;
    for back in 0..30 {
        let day = today.checked_sub_days(Days::new(back)).unwrap();
        let (orders, revenue) =
            expected.iter().find(|count| count.day == day).map_or((0, 0), |count| (count.orders, count.revenue));
        listed += orders;
        let cells = [grouped(orders), currency(revenue)];
        assert!(page.body.contains(&row(&day.to_string(), &[&cells[0], &cells[1]])), "{day}: {cells:?}");
    }
    assert!(listed > 4000 && listed < 5000, "most, not all, of the orders are in the last 30 days: {listed}");
    eprintln!("dashboard with 5,000 orders answered in {took:?}");
}

fn grouped(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
