//! `GET /metrics`, read by a Prometheus text-format parser as Prometheus would.

use std::collections::HashMap;

use crate::helpers::{ADMIN_TOKEN, TestApp};

pub fn scrape(app: &TestApp) -> prometheus_parse::Scrape {
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

/// Sends `requests` on one kept-alive connection as raw HTTP/1.1, each answered in full before
/// the next; returns the statuses.
fn raw_requests(address: &str, requests: impl Iterator<Item = String>) -> Vec<u16> {
    use std::io::{BufRead, BufReader, Read, Write};
    let host = address.trim_start_matches("http://");
    let stream = std::net::TcpStream::connect(host).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut statuses = Vec::new();
    for request in requests {
        writer.write_all(request.as_bytes()).unwrap();
        let mut status_line = String::new();
        reader.read_line(&mut status_line).unwrap();
        let status = status_line.split_whitespace().nth(1).and_then(|code| code.parse().ok());
        statuses.push(status.unwrap_or_else(|| panic!("no status line: {status_line:?}")));
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
    }
    statuses
}

/// Made-up methods on known paths, and known methods on made-up paths (at the top, under the
/// API, the admin pages and the static files), each one new.
fn made_up_request(n: usize) -> String {
    let (method, path) = match n % 5 {
        0 => (format!("X{n:06}"), "/healthz".to_owned()),
        1 => (format!("Y{n:06}"), "/api/products".to_owned()),
        2 => ("GET".to_owned(), format!("/nothing-{n}")),
        3 => ("POST".to_owned(), format!("/api/nothing-{n}/x")),
        _ => ("GET".to_owned(), format!("/admin/nothing-{n}")),
    };
    format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

#[test]
fn made_up_methods_and_paths_neither_grow_the_scrape_nor_the_process() {
    let database = crate::helpers::TestDatabase::migrated();
    let agora = crate::helpers::AgoraProcess::start(&database, &[]);
    let scrape_size = || {
        let response = agora.admin_get("/metrics");
        assert_eq!(response.status, 200);
        response.body.len()
    };
    let flood = |count: usize, offset: usize| {
        let clients = 4;
        std::thread::scope(|scope| {
            for client in 0..clients {
                let agora = &agora;
                scope.spawn(move || {
                    let numbers = (0..count).filter(move |n| n % clients == client).map(move |n| n + offset);
                    let statuses = raw_requests(&agora.address, numbers.map(made_up_request));
                    let failed = statuses.iter().filter(|status| **status >= 500).count();
                    assert_eq!(failed, 0, "answers of 500 or more");
                });
            }
        });
    };
    // Every kind of request once, so that every series it may count exists before measuring.
    flood(1_000, 0);
    scrape_size();
    let (size_before, memory_before) = (scrape_size(), agora.resident_kib());
    flood(10_000, 1_000);
    let (size_after, memory_after) = (scrape_size(), agora.resident_kib());

    eprintln!("scrape {size_before} -> {size_after} bytes, resident {memory_before} -> {memory_after} KiB");
    // Counters gain digits, nothing else.
    assert!(size_after < size_before + 1_024, "the scrape grew from {size_before} to {size_after} bytes");
    assert!(memory_after < memory_before + 8 * 1024, "the process grew from {memory_before} KiB to {memory_after} KiB");
    let scrape =
        prometheus_parse::Scrape::parse(agora.admin_get("/metrics").body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let made_up = value(&scrape, "agora_http_requests_total", &[("method", "(other)"), ("route", "/healthz")]);
    assert!(made_up >= 2_000.0, "made-up methods are counted under one label: {made_up}");
    let unmatched = value(&scrape, "agora_http_requests_total", &[("route", "(unmatched)"), ("status", "404")]);
    assert!(unmatched >= 2_000.0, "made-up paths are counted under one label: {unmatched}");
}
