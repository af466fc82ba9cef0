use std::time::{Duration, Instant};

use crate::helpers::{TestApp, drop_database, maintenance_connection};

#[test]
fn liveness_answers_while_the_process_runs() {
    let app = TestApp::spawn();
    let body = app.get("/healthz").ok_json(200);
    assert_eq!(body["status"], "ok");
}

#[test]
fn readiness_answers_200_when_the_database_answers() {
    let app = TestApp::spawn();
    let body = app.get("/readyz").ok_json(200);
    assert_eq!(body["status"], "ready");
}

#[test]
fn readiness_does_not_queue_behind_requests_that_hold_every_pooled_connection() {
    let app = TestApp::spawn_with(|config| config.pool.max_size = 1);
    let product = app.product_with_stock("BUSY-1", 500, 10);
    // The one pooled connection is taken by a checkout that waits for the stock row's lock,
    // held here; the work just before it succeeded.
    let mut holder = app.connect();
    diesel::connection::SimpleConnection::batch_execute(
        &mut holder,
        &format!("BEGIN; SELECT * FROM inventory_levels WHERE product_id = '{product}' FOR UPDATE"),
    )
    .unwrap();
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| app.place_order("busy@example.com", &[(&product, 1)]).status);
        crate::helpers::eventually("the checkout to wait for the lock", Duration::from_secs(5), || {
            app.count("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'") == 1
        });
        let started = Instant::now();
        let ready = app.get("/readyz");
        let answered_in = started.elapsed();
        diesel::connection::SimpleConnection::batch_execute(&mut holder, "ROLLBACK").unwrap();
        assert_eq!(ready.status, 200, "{}", ready.body);
        assert!(answered_in < Duration::from_millis(500), "readiness waited {answered_in:?} for the busy pool");
        assert_eq!(waiting.join().unwrap(), 201);
    });
}

#[test]
fn readiness_answers_503_quickly_when_the_database_is_gone() {
    let app = TestApp::spawn();
    assert_eq!(app.get("/readyz").status, 200);

    // Terminates the pool's connections too: the next check has to reconnect, and cannot.
    drop_database(&mut maintenance_connection(), &app.database.name);

    let started = Instant::now();
    let problem = app.get("/readyz").problem(503);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(problem["type"], "/problems/unavailable");
    assert_eq!(app.get("/healthz").status, 200, "liveness does not depend on the database");
}

#[test]
fn the_openapi_document_describes_the_api() {
    let app = TestApp::spawn();
    let document = app.get("/api/openapi.json").ok_json(200);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    // Every endpoint of the public contract (API.md), with its method.
    for (method, path) in [
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/api/products"),
        ("post", "/api/products"),
        ("get", "/api/products/{id}"),
        ("patch", "/api/products/{id}"),
        ("get", "/api/inventory/{product_id}"),
        ("post", "/api/inventory/{product_id}/adjustments"),
        ("get", "/api/inventory/{product_id}/movements"),
        ("post", "/api/orders"),
        ("get", "/api/orders"),
        ("get", "/api/orders/{id}"),
        ("post", "/api/orders/{id}/cancel"),
        ("post", "/api/orders/{id}/payments"),
        ("post", "/api/orders/{id}/ship"),
        ("post", "/api/orders/{id}/refund"),
        ("post", "/api/orders/{id}/refunds"),
        ("get", "/api/notifications"),
        ("get", "/api/metrics"),
    ] {
        let operation = &paths.get(path).unwrap_or_else(|| panic!("{path} is missing from {:?}", paths.keys()))[method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let responses = operation["responses"].as_object().unwrap();
        if path.starts_with("/api/") {
            assert!(
                responses.keys().any(|status| status.starts_with('4')),
                "{method} {path} documents no error response"
            );
        }
    }
    assert!(document["components"]["securitySchemes"]["admin_token"].is_object());
    assert!(document["components"]["schemas"]["ProblemDetails"].is_object());
}

#[test]
fn unknown_paths_answer_a_404_problem() {
    let app = TestApp::spawn();
    let problem = app.get("/api/no-such-thing").problem(404);
    assert!(problem["detail"].as_str().unwrap().contains("/api/no-such-thing"));
}

#[test]
fn static_files_are_served_from_the_binary() {
    let app = TestApp::spawn();
    let css = app.get("/static/admin.css");
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(css.body.contains(".topbar"));
    assert_eq!(app.get("/static/nope.css").status, 404);
}
