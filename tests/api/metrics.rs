//! `GET /metrics`, read by a Prometheus text-format parser as Prometheus would.

use std::collections::HashMap;

use crate::helpers::{ADMIN_TOKEN, TestApp};

fn scrape(app: &TestApp) -> prometheus_parse::Scrape {
    let response = app.request("GET", "/metrics", &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))]);
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(response.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    prometheus_parse::Scrape::parse(response.body.lines().map(|line| Ok(line.to_owned())))
        .expect("Prometheus text format")
}

/// The value, or 0 when the series does not exist yet.
pub fn value_or_zero(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let present = scrape.samples.iter().any(|sample| {
        sample.metric == name && labels.iter().all(|(key, value)| sample.labels.get(key) == Some(*value))
    });
    if present { value(scrape, name, labels) } else { 0.0 }
}

pub fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|sample| {
            sample.metric == name && labels.iter().all(|(key, value)| sample.labels.get(key) == Some(*value))
        })
        .unwrap_or_else(|| {
            let seen: Vec<_> =
                scrape.samples.iter().filter(|sample| sample.metric == name).map(|sample| &sample.labels).collect();
            panic!("no {name} {labels:?} in the scrape, only {seen:?}")
        });
    match sample.value {
        prometheus_parse::Value::Counter(value)
        | prometheus_parse::Value::Gauge(value)
        | prometheus_parse::Value::Untyped(value) => value,
        prometheus_parse::Value::Histogram(ref buckets) => buckets.last().map_or(0.0, |bucket| bucket.count),
        prometheus_parse::Value::Summary(_) => panic!("{name} is a summary"),
    }
}

#[test]
fn metrics_are_prometheus_text_behind_the_admin_token() {
    let app = TestApp::spawn_with(|config| {
        config.outbox.run_in_server = true;
        config.outbox.poll_interval = std::time::Duration::from_millis(200);
    });
    let unauthorized = app.get("/metrics");
    unauthorized.problem(401);
    assert_eq!(unauthorized.header("www-authenticate"), Some("Bearer"));

    let product = app.product_with_stock("MUG-001", 1290, 10);
    // HTTP counters belong to the process, which other tests' applications share: count the difference.
    let route = [("route", "/api/products/:id"), ("method", "GET")];
    let before = scrape(&app);
    let counted = |scrape: &prometheus_parse::Scrape, status: &str| {
        value_or_zero(scrape, "agora_http_requests_total", &[route[0], route[1], ("status", status)])
    };
    let (ok_before, missing_before) = (counted(&before, "200"), counted(&before, "404"));
    let timed_before = value_or_zero(&before, "agora_http_request_duration_seconds_count", &route);
    for _ in 0..3 {
        app.get(&format!("/api/products/{product}")).ok_json(200);
    }
    app.get("/api/products/6f1d6f5e-0000-4000-8000-000000000000").problem(404);
    app.placed_order("ada@example.com", &[(&product, 1)]);

    let scrape = scrape(&app);
    assert!(counted(&scrape, "200") - ok_before >= 3.0);
    assert!(counted(&scrape, "404") - missing_before >= 1.0);
    assert!(value(&scrape, "agora_http_request_duration_seconds_count", &route) - timed_before >= 4.0);
    assert_eq!(value(&scrape, "agora_db_up", &[]), 1.0);
    assert!(value(&scrape, "agora_db_pool_max_connections", &[]) >= 1.0);
    assert!(value(&scrape, "agora_db_pool_connections", &[("state", "idle")]) >= 0.0);
    assert!(value(&scrape, "agora_db_pool_acquire_seconds_count", &[]) >= 5.0);
    assert!(value(&scrape, "agora_module_queries_total", &[("module", "orders")]) >= 1.0);
    assert!(value(&scrape, "agora_module_query_seconds_total", &[("module", "catalog")]) > 0.0);
    assert!(value(&scrape, "agora_outbox_deliveries", &[("status", "pending")]) >= 0.0);
    assert!(value(&scrape, "agora_outbox_oldest_due_seconds", &[]) >= 0.0);

    // Every family has a HELP and a TYPE line, as Prometheus expects.
    let families: HashMap<&str, &str> = scrape.docs.iter().map(|(name, help)| (name.as_str(), help.as_str())).collect();
    for family in ["agora_http_requests_total", "agora_db_up", "agora_outbox_deliveries", "agora_module_queries_total"]
    {
        assert!(families.contains_key(family), "no HELP for {family}");
    }
    crate::helpers::eventually("the order's e-mail counted", std::time::Duration::from_secs(10), || {
        let scrape = self::scrape(&app);
        scrape.docs.contains_key("agora_emails")
            && scrape
                .samples
                .iter()
                .any(|sample| sample.metric == "agora_emails" && sample.labels.get("status") == Some("stored"))
    });
}
