//! The admin pages in a real browser: headless Debian Chromium driven over WebDriver against a
//! real `agora` process, at a phone's width and a desktop's, checked for sideways scrolling and
//! with axe-core for accessibility.
//!
//! Needs Debian's `chromium` and `chromium-driver`, and axe-core from tests/browser (installed
//! with npm on first use); `cargo xtask test` installs all three. Run alone with
//! `cargo test --test api browser:: -- --nocapture`.

mod axe;
mod chrome;
mod flows;
mod shop;

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use crate::helpers::{ADMIN_PASSWORD, AgoraProcess, TestDatabase};
use chrome::{Chrome, DESKTOP, PHONE, Viewport};

/// Where a page's `{id}` comes from: the first link of the form `link` on the page `on`, as a
/// person would follow it.
#[derive(Clone, Copy, Debug)]
pub struct Linked {
    pub on: &'static str,
    pub link: &'static str,
}

const PRODUCT: Linked = Linked { on: "/admin/products", link: "/admin/products/{id}" };
const STOCK: Linked = Linked { on: "/admin/inventory", link: "/admin/inventory/{id}" };
const ORDER: Linked = Linked { on: "/admin/orders", link: "/admin/orders/{id}" };
/// An order that can be refunded in part: a paid one.
const PAID_ORDER: Linked = Linked { on: "/admin/orders?status=paid", link: "/admin/orders/{id}" };
const NOTIFICATION: Linked = Linked { on: "/admin/notifications", link: "/admin/notifications/{id}" };

/// A page of the admin as the browser tests visit it.
#[derive(Clone, Copy, Debug)]
pub struct AdminPage {
    /// With `{id}` where the id of one of the demo data's things goes.
    pub path: &'static str,
    pub id: Option<Linked>,
    pub signed_in: bool,
    /// The status its document is served with.
    pub status: u16,
}

impl AdminPage {
    const fn at(path: &'static str) -> AdminPage {
        AdminPage { path, id: None, signed_in: true, status: 200 }
    }

    const fn signed_out(path: &'static str) -> AdminPage {
        AdminPage { signed_in: false, ..AdminPage::at(path) }
    }

    const fn of(self, id: Linked) -> AdminPage {
        AdminPage { id: Some(id), ..self }
    }

    const fn status(self, status: u16) -> AdminPage {
        AdminPage { status, ..self }
    }
}

/// Every admin page: a new page belongs here, so that it is held to a phone's width and to axe.
pub const ADMIN_PAGES: &[AdminPage] = &[
    AdminPage::signed_out("/admin/login"),
    AdminPage::at("/admin"),
    AdminPage::at("/admin/products"),
    AdminPage::at("/admin/products/new"),
    AdminPage::at("/admin/products/{id}").of(PRODUCT),
    AdminPage::at("/admin/products/{id}/edit").of(PRODUCT),
    AdminPage::at("/admin/products/{id}/deactivate").of(PRODUCT),
    AdminPage::at("/admin/categories"),
    AdminPage::at("/admin/inventory"),
    AdminPage::at("/admin/inventory/{id}").of(STOCK),
    AdminPage::at("/admin/orders"),
    AdminPage::at("/admin/orders/{id}").of(ORDER),
    AdminPage::at("/admin/orders/{id}/refunds/new").of(PAID_ORDER),
    AdminPage::at("/admin/customers"),
    AdminPage::at("/admin/payments"),
    AdminPage::at("/admin/notifications"),
    AdminPage::at("/admin/notifications/{id}").of(NOTIFICATION),
    AdminPage::at("/admin/events"),
    AdminPage::at("/admin/architecture"),
    AdminPage::at("/admin/account"),
    AdminPage::at("/admin/experiments/checkout-race"),
    AdminPage::at("/admin/nope").status(404),
];

/// A page with its id filled in.
struct Visit {
    path: String,
    status: u16,
}

/// Fills in each page's id by following a link to one; the e-mails are written by the outbox
/// dispatcher after the demo orders, so their list is reloaded until one shows.
fn resolve(chrome: &Chrome, pages: &[AdminPage]) -> Vec<Visit> {
    pages
        .iter()
        .map(|page| {
            let path = match page.id {
                None => page.path.to_owned(),
                Some(Linked { on, link }) => {
                    let deadline = Instant::now() + Duration::from_secs(30);
                    let id = loop {
                        chrome.goto(on);
                        if let Some(id) = chrome.first_id_linked_as(link) {
                            break id;
                        }
                        assert!(Instant::now() < deadline, "{on} shows no link like {link} after 30 s");
                        std::thread::sleep(Duration::from_millis(250));
                    };
                    page.path.replace("{id}", &id)
                }
            };
            Visit { path, status: page.status }
        })
        .collect()
}

/// Visits every page at each width; what does not fit or fails axe is added to `failures`, the
/// axe figures of every page to `figures`. Landing anywhere but on the page is no finding but a
/// broken test, and panics at once.
fn check(chrome: &Chrome, pages: &[Visit], failures: &mut Vec<String>, figures: &mut Vec<String>) {
    for viewport in [PHONE, DESKTOP] {
        chrome.resize(viewport);
        for page in pages {
            chrome.goto(&page.path);
            assert_eq!(chrome.current_path(), page.path, "the browser did not stay on {}", page.path);
            assert_eq!(chrome.status(), page.status, "{}: {}", page.path, chrome.text());
            assert_eq!(chrome.viewport_size(), (viewport.width, viewport.height), "{}", page.path);
            let mut found = Vec::new();
            if let Err(report) = chrome.check_fits() {
                found.push(format!("  does not fit: {report}"));
            }
            let report = chrome.axe();
            let rules: Vec<String> =
                report.violations.iter().map(|violation| format!("{} ({})", violation.id, violation.impact)).collect();
            let rules = if rules.is_empty() { String::new() } else { format!(": {}", rules.join(", ")) };
            figures.push(format!("{:<7} {:<58} {}{rules}", viewport.name, page.path, report.counts()));
            found.extend(report.serious_or_worse().iter().map(|violation| format!("  {violation}")));
            if !found.is_empty() {
                failures.push(format!("{} {}:\n{}", describe(viewport), page.path, found.join("\n")));
            }
        }
    }
}

fn describe(viewport: Viewport) -> String {
    format!("{} {}x{}", viewport.name, viewport.width, viewport.height)
}

#[test]
fn every_admin_page_fits_a_phone_and_passes_axe() {
    let started = Instant::now();
    let database = TestDatabase::migrated();
    let agora = AgoraProcess::start(&database, &[("AGORA_SEED", "demo")]);
    let chrome = Chrome::start(&agora.address);
    let (mut failures, mut figures) = (Vec::new(), Vec::new());

    let (signed_in, signed_out): (Vec<AdminPage>, Vec<AdminPage>) = ADMIN_PAGES.iter().partition(|page| page.signed_in);
    check(&chrome, &resolve(&chrome, &signed_out), &mut failures, &mut figures);
    chrome.resize(DESKTOP);
    chrome.sign_in_through_form("admin", ADMIN_PASSWORD);
    check(&chrome, &resolve(&chrome, &signed_in), &mut failures, &mut figures);

    println!("axe violations by impact (rules, and the elements breaking them):");
    for line in &figures {
        println!("  {line}");
    }
    println!("{} page visits in {:.1} s", figures.len(), started.elapsed().as_secs_f64());
    assert!(
        failures.is_empty(),
        "{} of {} page visits scroll sideways or have serious or critical axe violations:\n\n{}",
        failures.len(),
        figures.len(),
        failures.join("\n\n")
    );
}

/// The checks above can fail: on a real admin page, under its Content-Security-Policy, they see
/// what is wrong with a page and no more.
#[test]
fn the_checks_see_a_page_that_scrolls_sideways_and_an_image_without_alt_text() {
    let database = TestDatabase::migrated();
    let agora = AgoraProcess::start(&database, &[]);
    let chrome = Chrome::start(&agora.address);
    chrome.goto("/admin/login");
    assert_eq!(chrome.h1(), "Agora admin");

    let inline_script_ran = chrome.execute(
        "const script = document.createElement('script');
         script.textContent = 'window.inlineScriptRan = true';
         document.body.append(script);
         return window.inlineScriptRan === true;",
        vec![],
    );
    assert_eq!(inline_script_ran, false, "the page's policy blocks inline scripts");
    let before = chrome.axe();
    assert!(!before.violations.iter().any(|violation| violation.id == "image-alt"), "{:?}", before.violations);
    chrome.assert_fits(DESKTOP.width);

    // Styled whole from here, so that the page's own rules (which may wrap any word) do not matter.
    chrome.execute(
        "const main = document.querySelector('main');
         const wide = document.createElement('div');
         wide.id = 'too-wide';
         Object.assign(wide.style, { display: 'block', width: '2000px', maxWidth: 'none' });
         wide.textContent = 'wide';
         const word = document.createElement('div');
         word.id = 'long-word';
         Object.assign(word.style, { display: 'block', width: '100px', whiteSpace: 'nowrap', overflowWrap: 'normal' });
         word.textContent = 'W'.repeat(400);
         const image = document.createElement('img');
         image.id = 'no-alt';
         image.src = '/static/favicon.svg';
         main.append(wide, word, image);",
        vec![],
    );
    let report = chrome.check_fits().expect_err("a 2000 px wide element makes the page scroll sideways");
    assert!(report.contains("/admin/login: the page is "), "{report}");
    assert!(report.contains("in a 1366 px viewport"), "{report}");
    assert!(report.contains("div#too-wide — right edge "), "{report}");
    assert!(report.contains("div#long-word (its text) — right edge "), "{report}");
    let after = chrome.axe();
    let missing_alt = after.violations.iter().find(|violation| violation.id == "image-alt").expect("image-alt");
    assert_eq!(missing_alt.impact, "critical");
    assert!(missing_alt.nodes.iter().any(|node| node.target == "#no-alt"), "{missing_alt}");
    assert!(after.serious_or_worse().iter().any(|violation| violation.id == "image-alt"));
    assert_eq!(after.counts().serious_or_worse(), before.counts().serious_or_worse() + 1);
    let failure = std::panic::catch_unwind(AssertUnwindSafe(|| chrome.assert_accessible()))
        .expect_err("assert_accessible fails on an image without alt text");
    let message = failure.downcast_ref::<String>().expect("a formatted panic message");
    assert!(message.starts_with("/admin/login: axe finds serious or critical violations:"), "{message}");
    assert!(message.contains("axe image-alt (critical): "), "{message}");
    assert!(message.contains("\n        #no-alt — "), "{message}");

    // What sticks out inside a box that scrolls sideways itself does not widen the page.
    chrome.execute(
        "const scroller = document.createElement('div');
         Object.assign(scroller.style, { display: 'block', overflowX: 'auto', maxWidth: '100%' });
         scroller.append(document.getElementById('too-wide'), document.getElementById('long-word'));
         document.querySelector('main').append(scroller);",
        vec![],
    );
    chrome.assert_fits(DESKTOP.width);
}
