use std::process::Command;

use agora::config::SeedMode;

use crate::helpers::{TestApp, assert_ledger_matches_levels};

#[test]
fn the_first_start_seeds_products_with_stock_and_orders_in_every_status() {
    let app = TestApp::spawn_with(|config| config.seed = SeedMode::Demo);
    assert_eq!(app.count("SELECT count(*) FROM products"), 24);
    assert_eq!(app.count("SELECT count(*) FROM categories"), 5);
    assert_eq!(app.count("SELECT count(*) FROM products WHERE category_id IS NULL"), 0, "every product in a category");
    assert_eq!(app.count("SELECT count(DISTINCT status) FROM orders"), 6, "every status");
    assert!(app.count("SELECT count(*) FROM inventory_levels l JOIN products p ON p.id = l.product_id WHERE l.on_hand - l.reserved <= p.low_stock_threshold") >= 3, "some low stock");
    assert!(app.count("SELECT count(*) FROM inventory_levels WHERE on_hand - reserved > 20") >= 10, "most in stock");
    assert!(app.count("SELECT count(*) FROM payments WHERE status = 'failed'") >= 1);
    assert_ledger_matches_levels(&mut app.connect());
    assert_eq!(app.get("/api/products?limit=100").ok_json(200)["items"].as_array().unwrap().len(), 24);

    // A second process starting on the seeded database adds nothing.
    let _again = app.spawn_beside(|config| config.seed = SeedMode::Demo);
    assert_eq!(app.count("SELECT count(*) FROM products"), 24);
}

#[test]
fn agora_seed_adds_more_demo_data_beside_what_is_there() {
    let app = TestApp::spawn_with(|config| config.seed = SeedMode::Demo);
    let output = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["seed", "--products", "30", "--customers", "5", "--orders", "12"])
        .env("DATABASE_URL", &app.database.url)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("30 products with stock, 5 customers, 12 orders"));
    assert_eq!(app.count("SELECT count(*) FROM products"), 54);
    assert_eq!(app.count("SELECT count(*) FROM categories"), 5, "the categories found are kept");
    assert_eq!(app.count("SELECT count(*) FROM products WHERE category_id IS NULL"), 0);
    assert_eq!(app.count("SELECT count(*) FROM orders"), 30 + 12);
    assert_ledger_matches_levels(&mut app.connect());
}

/// Few products and many orders: stock runs out again and again, and the seed still places
/// exactly the orders asked for, quietly (no line per payment), saying what it did.
#[test]
fn agora_seed_places_exactly_the_orders_asked_for_and_logs_little() {
    let app = TestApp::spawn();
    let output = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["seed", "--products", "6", "--customers", "3", "--orders", "300"])
        .env("DATABASE_URL", &app.database.url)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("seeded 6 products with stock, 3 customers, 300 orders in every status in "), "{stdout}");
    assert_eq!(app.count("SELECT count(*) FROM orders"), 300);
    assert!(
        app.count("SELECT count(*) FROM inventory_movements WHERE reason = 'restock (demo data)'") > 0,
        "stock ran out"
    );
    assert!(stderr.lines().count() < 5, "no line per order or payment: {stderr}");
    assert_ledger_matches_levels(&mut app.connect());
}

#[test]
fn the_first_start_seeds_with_a_pool_of_one_connection() {
    let app = TestApp::spawn_with(|config| {
        config.seed = SeedMode::Demo;
        config.pool.max_size = 1;
    });
    assert_eq!(app.count("SELECT count(*) FROM products"), 24);
    assert_eq!(app.count("SELECT count(DISTINCT status) FROM orders"), 6);
}
