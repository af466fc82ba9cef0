use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, TestApp};

#[test]
fn creating_a_product_answers_201_with_the_product_and_its_location() {
    let app = TestApp::spawn();
    let response = app.admin_post_json(
        "/api/products",
        &json!({"sku": "MUG-001", "name": "Mug", "description": "Stoneware", "price_minor": 1290}),
    );
    let product = response.ok_json(201);
    let id = product["id"].as_str().unwrap();
    assert_eq!(response.header("location"), Some(format!("/api/products/{id}").as_str()));
    assert_eq!(product["sku"], "MUG-001");
    assert_eq!(product["price_minor"], 1290);
    assert_eq!(product["currency"], "EUR");
    assert_eq!(product["active"], true);
    assert_eq!(product["low_stock_threshold"], 5);

    let fetched = app.get(&format!("/api/products/{id}")).ok_json(200);
    assert_eq!(fetched, product);
    let stock = app.stock(id);
    assert_eq!((stock["on_hand"].as_i64(), stock["reserved"].as_i64()), (Some(0), Some(0)), "stock starts at zero");
}

#[test]
fn invalid_products_are_refused_with_every_field_named_and_nothing_created() {
    let app = TestApp::spawn();
    let problem =
        app.admin_post_json("/api/products", &json!({"sku": "mug 1", "name": "", "price_minor": -5})).problem(422);
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["sku", "name", "price_minor"]);

    app.admin_post_json("/api/products", &json!({"sku": "AB", "name": "x", "price_minor": 1})).problem(422);
    app.admin_post_json("/api/products", &json!({"sku": "ZERO-1", "name": "x", "price_minor": 0})).problem(422);
    let negative = app.admin_post_json("/api/products", &json!({"sku": "NEG-1", "name": "x", "price_minor": -100}));
    assert_eq!(negative.problem(422)["errors"][0]["field"], "price_minor");

    assert_eq!(app.get("/api/products").ok_json(200)["items"].as_array().unwrap().len(), 0);
}

#[test]
fn a_duplicate_sku_is_a_conflict() {
    let app = TestApp::spawn();
    app.create_product("MUG-001", 1290);
    let problem = app
        .admin_post_json("/api/products", &json!({"sku": "MUG-001", "name": "Another", "price_minor": 990}))
        .problem(409);
    assert_eq!(problem["type"], "/problems/duplicate-sku");
    assert_eq!(problem["sku"], "MUG-001");
}

#[test]
fn malformed_requests_get_400_problems() {
    let app = TestApp::spawn();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let headers = [("Authorization", auth.as_str())];
    let response =
        app.post_json_with("/api/products", &headers, &json!({"sku": "MUG-1", "name": "x", "price_minor": "12"}));
    response.problem(400);
    let response = app.post_json_with(
        "/api/products",
        &headers,
        &json!({"sku": "MUG-1", "name": "x", "price_minor": 1, "colour": "red"}),
    );
    assert!(response.problem(400)["detail"].as_str().unwrap().contains("colour"));
    let response = app.post_raw("/api/products", "application/json", "{not json");
    assert_eq!(response.status, 401, "authentication comes first");
}

#[test]
fn admin_endpoints_need_the_right_token() {
    let app = TestApp::spawn();
    let body = json!({"sku": "MUG-001", "name": "Mug", "price_minor": 1290});
    let missing = app.post_json("/api/products", &body).problem(401);
    assert!(missing["detail"].as_str().unwrap().contains("Bearer"));
    app.post_json_with("/api/products", &[("Authorization", "Bearer wrong-token-0000000000")], &body).problem(401);
    app.post_json_with("/api/products", &[("Authorization", ADMIN_TOKEN)], &body).problem(401);
    assert_eq!(app.get("/api/products").ok_json(200)["items"].as_array().unwrap().len(), 0);
}

#[test]
fn without_a_configured_token_the_admin_api_is_disabled() {
    let app = TestApp::spawn_with(|config| config.admin_token = None);
    let problem =
        app.admin_post_json("/api/products", &json!({"sku": "MUG-001", "name": "Mug", "price_minor": 1})).problem(403);
    assert!(problem["detail"].as_str().unwrap().contains("AGORA_ADMIN_TOKEN"));
}

#[test]
fn unknown_and_malformed_product_ids_are_404() {
    let app = TestApp::spawn();
    app.get("/api/products/6f1d6f5e-0000-4000-8000-000000000000").problem(404);
    app.get("/api/products/not-a-uuid").problem(404);
    app.admin_patch_json("/api/products/6f1d6f5e-0000-4000-8000-000000000000", &json!({"price_minor": 5})).problem(404);
}

#[test]
fn patching_changes_only_the_given_fields() {
    let app = TestApp::spawn();
    let product = app.create_product("MUG-001", 1290);
    let id = product["id"].as_str().unwrap();
    let patched = app.admin_patch_json(&format!("/api/products/{id}"), &json!({"price_minor": 1490})).ok_json(200);
    assert_eq!(patched["price_minor"], 1490);
    assert_eq!(patched["name"], product["name"]);
    assert_eq!(patched["sku"], "MUG-001");
    app.admin_patch_json(&format!("/api/products/{id}"), &json!({"price_minor": -1})).problem(422);
    app.admin_patch_json(&format!("/api/products/{id}"), &json!({"sku": "NEW-SKU"})).problem(400);
    assert_eq!(app.get(&format!("/api/products/{id}")).ok_json(200)["price_minor"], 1490);
}

#[test]
fn a_deactivated_product_leaves_the_list_but_can_still_be_fetched() {
    let app = TestApp::spawn();
    let keep = app.create_product("KEEP-1", 100);
    let hide = app.create_product("HIDE-1", 100);
    let hide_id = hide["id"].as_str().unwrap();
    app.admin_patch_json(&format!("/api/products/{hide_id}"), &json!({"active": false})).ok_json(200);

    let list = app.get("/api/products").ok_json(200);
    let skus: Vec<&str> = list["items"].as_array().unwrap().iter().map(|p| p["sku"].as_str().unwrap()).collect();
    assert_eq!(skus, vec![keep["sku"].as_str().unwrap()]);
    let fetched = app.get(&format!("/api/products/{hide_id}")).ok_json(200);
    assert_eq!(fetched["active"], false);
}

#[test]
fn the_product_list_searches_name_and_sku_case_insensitively() {
    let app = TestApp::spawn();
    for (sku, name) in
        [("MUG-001", "Blue mug"), ("TEE-001", "Mug print T-shirt"), ("CAP-001", "Cap"), ("PCT-001", "100% wool")]
    {
        app.admin_post_json("/api/products", &json!({"sku": sku, "name": name, "price_minor": 100})).ok_json(201);
    }
    let skus = |query: &str| -> Vec<String> {
        app.get(&format!("/api/products?q={query}")).ok_json(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["sku"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(skus("mug"), vec!["MUG-001", "TEE-001"]);
    assert_eq!(skus("cap-0"), vec!["CAP-001"]);
    assert_eq!(skus("100%25"), vec!["PCT-001"], "% is matched literally");
    assert_eq!(skus("_"), Vec::<String>::new(), "_ is matched literally");
}

#[test]
fn keyset_pagination_visits_every_product_once_in_name_order() {
    let app = TestApp::spawn();
    for n in 0..25 {
        app.admin_post_json(
            "/api/products",
            &json!({"sku": format!("P-{n:03}"), "name": format!("Item {:02}", (n * 7) % 25), "price_minor": 100}),
        )
        .ok_json(201);
    }
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/products?limit=10&cursor={cursor}"),
            None => "/api/products?limit=10".to_owned(),
        };
        let page = app.get(&path).ok_json(200);
        pages += 1;
        names.extend(page["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted, "in order, no duplicates");
    assert_eq!(names.len(), 25);
}

#[test]
fn list_parameters_out_of_range_are_refused() {
    let app = TestApp::spawn();
    app.get("/api/products?limit=0").problem(422);
    app.get("/api/products?limit=101").problem(422);
    app.get("/api/products?limit=ten").problem(400);
    app.get("/api/products?cursor=garbage").problem(400);
}

#[test]
fn admin_pages_create_edit_and_deactivate_products() {
    let app = TestApp::spawn();
    let mut browser = app.signed_in_browser();

    let invalid = browser.submit(
        "/admin/products/new",
        "/admin/products",
        &[("sku", "bad sku"), ("name", "Mug"), ("description", ""), ("price", "12,50"), ("low_stock_threshold", "5")],
    );
    assert_eq!(invalid.status, 422);
    assert!(invalid.body.contains("enter an amount such as 12.50"), "{}", invalid.body);
    assert!(invalid.body.contains("value=\"bad sku\""), "the form keeps what was typed");

    let invalid = browser.submit(
        "/admin/products/new",
        "/admin/products",
        &[("sku", "bad sku"), ("name", "Mug"), ("description", ""), ("price", "12.50"), ("low_stock_threshold", "5")],
    );
    assert_eq!(invalid.status, 422);
    assert!(invalid.body.contains("must be 3 to 32 upper-case letters"), "{}", invalid.body);

    let created = browser.submit(
        "/admin/products/new",
        "/admin/products",
        &[
            ("sku", "MUG-001"),
            ("name", "Mug"),
            ("description", "Blue"),
            ("price", "12.50"),
            ("low_stock_threshold", "3"),
        ],
    );
    assert_eq!(created.status, 303, "{}", created.body);
    let location = created.header("location").unwrap().to_owned();
    let page = browser.get(&location);
    assert!(page.body.contains("Product MUG-001 created"), "a flash message confirms it");
    assert!(page.body.contains("€12.50"));

    let duplicate = browser.submit(
        "/admin/products/new",
        "/admin/products",
        &[("sku", "MUG-001"), ("name", "Mug"), ("description", ""), ("price", "1"), ("low_stock_threshold", "3")],
    );
    assert_eq!(duplicate.status, 422);
    assert!(duplicate.body.contains("MUG-001 is taken by another product"));

    let id = location.rsplit('/').next().unwrap();
    let edited = browser.submit(
        &format!("/admin/products/{id}/edit"),
        &format!("/admin/products/{id}"),
        &[("name", "Big mug"), ("description", "Blue"), ("price", "14"), ("low_stock_threshold", "3")],
    );
    assert_eq!(edited.status, 303);
    assert_eq!(app.get(&format!("/api/products/{id}")).ok_json(200)["price_minor"], 1400);

    let deactivated = browser.submit(&location, &format!("/admin/products/{id}/active"), &[("active", "false")]);
    assert_eq!(deactivated.status, 303);
    assert_eq!(app.get(&format!("/api/products/{id}")).ok_json(200)["active"], false);

    let list = browser.get("/admin/products?q=big");
    assert!(list.body.contains("Big mug") && list.body.contains("inactive"), "{}", list.body);
}

/// The fields a 422 problem names, in order.
fn invalid_fields(problem: &serde_json::Value) -> Vec<&str> {
    problem["errors"].as_array().unwrap().iter().map(|error| error["field"].as_str().unwrap()).collect()
}

#[test]
fn a_created_category_answers_201_and_the_list_shows_every_category_by_name() {
    let app = TestApp::spawn();
    assert_eq!(app.get("/api/categories").ok_json(200), json!({"items": []}));
    let created = app.admin_post_json("/api/categories", &json!({"slug": "kitchen", "name": " Kitchen "})).ok_json(201);
    assert_eq!(created, json!({"slug": "kitchen", "name": "Kitchen"}), "the name is trimmed");
    app.admin_post_json("/api/categories", &json!({"slug": "desk-lamps", "name": "Desk lamps"})).ok_json(201);
    app.admin_post_json("/api/categories", &json!({"slug": "garden", "name": "Garden"})).ok_json(201);

    let list = app.get("/api/categories").ok_json(200);
    assert_eq!(
        list,
        json!({"items": [
            {"slug": "desk-lamps", "name": "Desk lamps"},
            {"slug": "garden", "name": "Garden"},
            {"slug": "kitchen", "name": "Kitchen"},
        ]})
    );
}

#[test]
fn a_taken_category_slug_is_a_conflict() {
    let app = TestApp::spawn();
    app.admin_post_json("/api/categories", &json!({"slug": "kitchen", "name": "Kitchen"})).ok_json(201);
    let problem = app.admin_post_json("/api/categories", &json!({"slug": "kitchen", "name": "Cooking"})).problem(409);
    assert_eq!(problem["type"], "/problems/duplicate-category-slug");
    assert_eq!(problem["slug"], "kitchen");
    assert_eq!(app.get("/api/categories").ok_json(200)["items"], json!([{"slug": "kitchen", "name": "Kitchen"}]));
}

#[test]
fn invalid_categories_are_refused_with_every_field_named_and_nothing_created() {
    let app = TestApp::spawn();
    let problem = app.admin_post_json("/api/categories", &json!({"slug": "Desk Lamps", "name": " "})).problem(422);
    assert_eq!(invalid_fields(&problem), vec!["slug", "name"]);
    for slug in ["desk--lamps", "-desk", "desk-", "küche", "", &"a".repeat(41)] {
        let problem = app.admin_post_json("/api/categories", &json!({"slug": slug, "name": "Desk"})).problem(422);
        assert_eq!(invalid_fields(&problem), vec!["slug"], "{slug:?}");
    }
    let problem = app.admin_post_json("/api/categories", &json!({"slug": "desk", "name": "x".repeat(81)})).problem(422);
    assert_eq!(invalid_fields(&problem), vec!["name"]);
    app.admin_post_json("/api/categories", &json!({"slug": "desk", "name": "Desk", "colour": "red"})).problem(400);
    app.post_json("/api/categories", &json!({"slug": "desk", "name": "Desk"})).problem(401);
    assert_eq!(app.get("/api/categories").ok_json(200)["items"], json!([]));
}

#[test]
fn a_product_is_put_in_a_category_when_created_and_moved_or_taken_out_by_a_patch() {
    let app = TestApp::spawn();
    app.admin_post_json("/api/categories", &json!({"slug": "kitchen", "name": "Kitchen"})).ok_json(201);
    app.admin_post_json("/api/categories", &json!({"slug": "travel", "name": "Travel"})).ok_json(201);
    let product = app
        .admin_post_json(
            "/api/products",
            &json!({"sku": "MUG-001", "name": "Mug", "price_minor": 1290, "category": "kitchen"}),
        )
        .ok_json(201);
    assert_eq!(product["category"], "kitchen");
    let id = product["id"].as_str().unwrap();
    let path = format!("/api/products/{id}");
    assert_eq!(app.get(&path).ok_json(200)["category"], "kitchen");

    let moved = app.admin_patch_json(&path, &json!({"category": "travel"})).ok_json(200);
    assert_eq!(moved["category"], "travel");
    assert_ne!(moved["updated_at"], product["updated_at"], "a change of category alone is saved");
    assert_eq!(app.get(&path).ok_json(200)["category"], "travel", "no cached copy shows the old category");

    let repriced = app.admin_patch_json(&path, &json!({"price_minor": 1490})).ok_json(200);
    assert_eq!(repriced["category"], "travel", "a patch without category leaves it");

    let taken_out = app.admin_patch_json(&path, &json!({"category": null})).ok_json(200);
    assert_eq!(taken_out["category"], json!(null));
    assert_eq!(app.get(&path).ok_json(200)["category"], json!(null));

    let uncategorised = app.create_product("CAP-001", 990);
    assert_eq!(uncategorised["category"], json!(null), "the category is optional");
    let explicit_null = app
        .admin_post_json(
            "/api/products",
            &json!({"sku": "CAP-002", "name": "Cap", "price_minor": 990, "category": null}),
        )
        .ok_json(201);
    assert_eq!(explicit_null["category"], json!(null));
}

#[test]
fn an_unknown_or_malformed_category_is_a_field_error_and_changes_nothing() {
    let app = TestApp::spawn();
    app.admin_post_json("/api/categories", &json!({"slug": "kitchen", "name": "Kitchen"})).ok_json(201);

    let problem = app
        .admin_post_json(
            "/api/products",
            &json!({"sku": "MUG-001", "name": "Mug", "price_minor": 1290, "category": "garden"}),
        )
        .problem(422);
    assert_eq!(invalid_fields(&problem), vec!["category"]);
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("garden"), "{problem}");
    let problem = app
        .admin_post_json(
            "/api/products",
            &json!({"sku": "MUG-001", "name": "", "price_minor": 0, "category": "garden"}),
        )
        .problem(422);
    assert_eq!(invalid_fields(&problem), vec!["name", "price_minor", "category"], "every field at once");
    let problem = app
        .admin_post_json(
            "/api/products",
            &json!({"sku": "MUG-001", "name": "Mug", "price_minor": 1, "category": "Kitchen"}),
        )
        .problem(422);
    assert_eq!(invalid_fields(&problem), vec!["category"]);
    assert_eq!(app.get("/api/products").ok_json(200)["items"], json!([]), "nothing created");

    let product = app
        .admin_post_json(
            "/api/products",
            &json!({"sku": "MUG-001", "name": "Mug", "price_minor": 1290, "category": "kitchen"}),
        )
        .ok_json(201);
    let path = format!("/api/products/{}", product["id"].as_str().unwrap());
    let problem = app.admin_patch_json(&path, &json!({"category": "garden", "price_minor": 1490})).problem(422);
    assert_eq!(invalid_fields(&problem), vec!["category"]);
    let problem = app.admin_patch_json(&path, &json!({"category": "a\u{0}b", "name": " "})).problem(422);
    assert_eq!(invalid_fields(&problem), vec!["name", "category"]);
    let unchanged = app.get(&path).ok_json(200);
    assert_eq!((unchanged["category"].as_str(), unchanged["price_minor"].as_i64()), (Some("kitchen"), Some(1290)));
}

#[test]
fn the_product_list_shows_one_categorys_products_when_asked() {
    let app = TestApp::spawn();
    app.admin_post_json("/api/categories", &json!({"slug": "kitchen", "name": "Kitchen"})).ok_json(201);
    app.admin_post_json("/api/categories", &json!({"slug": "travel", "name": "Travel"})).ok_json(201);
    for (sku, category) in [
        ("MUG-001", json!("kitchen")),
        ("BAG-001", json!("travel")),
        ("APRON-1", json!("kitchen")),
        ("CAP-001", json!(null)),
    ] {
        app.admin_post_json(
            "/api/products",
            &json!({"sku": sku, "name": sku, "price_minor": 100, "category": category}),
        )
        .ok_json(201);
    }
    let listed = |query: &str| -> Vec<(String, serde_json::Value)> {
        app.get(&format!("/api/products{query}")).ok_json(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|product| (product["sku"].as_str().unwrap().to_owned(), product["category"].clone()))
            .collect()
    };
    assert_eq!(
        listed("?category=kitchen"),
        vec![("APRON-1".into(), json!("kitchen")), ("MUG-001".into(), json!("kitchen"))]
    );
    assert_eq!(listed("").len(), 4, "every product without the filter, each with its category");
    assert!(listed("").contains(&("CAP-001".into(), json!(null))));
    assert_eq!(listed("?category=garden"), vec![], "a slug no category has lists nothing");
    assert_eq!(listed("?category=kitchen&q=mug"), vec![("MUG-001".into(), json!("kitchen"))]);
    let problem = app.get("/api/products?category=Kitchen").problem(422);
    assert_eq!(invalid_fields(&problem), vec!["category"]);
}

#[test]
fn admin_pages_create_categories_and_put_products_in_them() {
    let app = TestApp::spawn();
    let mut browser = app.signed_in_browser();
    let page = browser.get("/admin/categories");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("No categories yet") && page.body.contains(r#"href="/admin/categories""#));

    let invalid = browser.submit("/admin/categories", "/admin/categories", &[("slug", "Desk Lamps"), ("name", " ")]);
    assert_eq!(invalid.status, 422, "{}", invalid.body);
    assert!(invalid.body.contains("2 fields need correcting"), "{}", invalid.body);
    assert!(invalid.body.contains(r#"id="slug-error""#) && invalid.body.contains(r#"id="name-error""#));
    assert!(invalid.body.contains(r#"aria-invalid="true" aria-describedby="slug-error""#));
    assert!(invalid.body.contains(r#"value="Desk Lamps""#), "the form keeps what was typed");

    let created =
        browser.submit("/admin/categories", "/admin/categories", &[("slug", " kitchen "), ("name", "Kitchen")]);
    assert_eq!(created.status, 303, "{}", created.body);
    let page = browser.get("/admin/categories");
    assert!(page.body.contains("Category Kitchen (kitchen) created"), "{}", page.body);
    assert_eq!(app.get("/api/categories").ok_json(200)["items"], json!([{"slug": "kitchen", "name": "Kitchen"}]));

    let taken = browser.submit("/admin/categories", "/admin/categories", &[("slug", "kitchen"), ("name", "")]);
    assert_eq!(taken.status, 422);
    assert!(taken.body.contains("kitchen is taken by another category") && taken.body.contains(r#"id="name-error""#));

    let form = browser.get("/admin/products/new");
    assert!(
        form.body.contains(r#"<option value="">No category</option>"#)
            && form.body.contains(r#"<option value="kitchen">Kitchen</option>"#)
    );
    let fields = |price, category| {
        [
            ("sku", "MUG-001"),
            ("name", "Mug"),
            ("description", ""),
            ("price", price),
            ("low_stock_threshold", "3"),
            ("category", category),
        ]
    };
    let unknown = browser.submit("/admin/products/new", "/admin/products", &fields("x", "garden"));
    assert_eq!(unknown.status, 422);
    assert!(
        unknown.body.contains("choose one of the categories listed") && unknown.body.contains("enter an amount"),
        "every message at once"
    );
    assert!(unknown.body.contains(r#"aria-describedby="category-error""#));

    let created = browser.submit("/admin/products/new", "/admin/products", &fields("12.50", "kitchen"));
    assert_eq!(created.status, 303, "{}", created.body);
    let location = created.header("location").unwrap().to_owned();
    let id = location.rsplit('/').next().unwrap();
    assert_eq!(app.get(&format!("/api/products/{id}")).ok_json(200)["category"], "kitchen");
    assert!(browser.get(&location).body.contains("Kitchen"), "the product's page names its category");
    let edit = browser.get(&format!("/admin/products/{id}/edit"));
    assert!(edit.body.contains(r#"<option value="kitchen" selected>Kitchen</option>"#), "{}", edit.body);
    assert!(browser.get("/admin/products").body.contains("<td>Kitchen</td>"));

    let edited = browser.submit(
        &format!("/admin/products/{id}/edit"),
        &format!("/admin/products/{id}"),
        &[("name", "Mug"), ("description", ""), ("price", "12.50"), ("low_stock_threshold", "3"), ("category", "")],
    );
    assert_eq!(edited.status, 303, "{}", edited.body);
    assert_eq!(
        app.get(&format!("/api/products/{id}")).ok_json(200)["category"],
        json!(null),
        "No category takes it out"
    );
}
