//! The numbered admin lists stop where their count stops: no page past the first 1,000 rows is
//! served (it would cost an OFFSET scan as deep as the page), and no pager links there.

use diesel::RunQueryDsl;

use crate::helpers::TestApp;

/// Every numbered admin list, the uncounted low-stock list included.
const LISTS: [&str; 8] = [
    "/admin/products",
    "/admin/inventory",
    "/admin/inventory?low=1",
    "/admin/orders",
    "/admin/customers",
    "/admin/payments",
    "/admin/notifications",
    "/admin/events",
];

fn with_page(list: &str, page: &str) -> String {
    let separator = if list.contains('?') { '&' } else { '?' };
    format!("{list}{separator}page={page}")
}

#[test]
fn no_admin_list_serves_a_page_past_the_rows_it_counts() {
    let app = TestApp::spawn();
    let mut browser = app.signed_in_browser();
    for list in LISTS {
        let deepest = browser.get(&with_page(list, "20"));
        assert_eq!(deepest.status, 200, "{list}: the 20th page is the last one shown: {}", deepest.body);
        for (page, words) in [("21", "Page 21"), ("1000000", "Page 1,000,000")] {
            let refused = browser.get(&with_page(list, page));
            assert_eq!(refused.status, 400, "{list}?page={page}: {}", refused.body);
            assert!(refused.body.contains(&format!("{words} is past the last page a list shows")), "{}", refused.body);
            assert!(
                refused.body.contains("Lists show their first 1,000 rows")
                    && refused.body.contains("narrow the list with its search or filters"),
                "{list}: says how to reach the rows further on: {}",
                refused.body
            );
            assert!(
                refused.body.contains("aria-label=\"Sections\""),
                "{list}: an error page inside the layout: {}",
                refused.body
            );
        }
    }
}

#[test]
fn the_pager_of_a_list_longer_than_its_count_stops_at_the_last_counted_page() {
    let app = TestApp::spawn();
    // Payloads cut down to what the page shows: not the contract's.
    app.database.holds_hand_made_events();
    // 1,060 events, published as the modules publish them (no handler subscribed).
    diesel::sql_query(
        "SELECT outbox_publish('StockLow', 'product', gen_random_uuid(), jsonb_build_object('sku', 'SKU-' || n))
           FROM generate_series(1, 1060) n",
    )
    .execute(&mut app.connect())
    .unwrap();
    let mut browser = app.signed_in_browser();

    let nineteenth = browser.get("/admin/events?page=19");
    assert!(nineteenth.body.contains("more than 1,000 events, newest first. Page 19 of more than 20."));
    assert!(nineteenth.body.contains("href=\"/admin/events?page=20#latest\">Older →"), "{}", nineteenth.body);

    let twentieth = browser.get("/admin/events?page=20");
    assert_eq!(twentieth.status, 200);
    assert!(twentieth.body.contains("Page 20 of more than 20."), "{}", twentieth.body);
    assert_eq!(twentieth.body.matches("<tr><td>").count(), 50, "rows 951 to 1,000");
    assert!(!twentieth.body.contains("Older →"), "no link past the counted rows: {}", twentieth.body);
    assert!(twentieth.body.contains("Lists show their first 1,000 rows"), "{}", twentieth.body);

    assert_eq!(browser.get("/admin/events?page=21").status, 400);
}
