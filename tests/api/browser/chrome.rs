//! Headless Debian Chromium driven through chromedriver over WebDriver (fantoccini).
//!
//! The tests around it are synchronous like the rest of the suite, so [`Chrome`] owns a
//! current-thread tokio runtime and blocks on each WebDriver command: a flow test reads as a
//! list of steps and can mix in the blocking database and HTTP helpers.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The size of the page's viewport in CSS pixels (`window.innerWidth` x `window.innerHeight`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Viewport {
    pub name: &'static str,
    pub width: u32,
    pub height: u32,
}

pub const DESKTOP: Viewport = Viewport { name: "desktop", width: 1366, height: 900 };
/// An iPhone 12 to 15 held upright.
pub const PHONE: Viewport = Viewport { name: "phone", width: 390, height: 844 };

/// Fails the test, not skips it: a missing browser would otherwise pass every browser test.
fn require_installed() {
    for binary in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(binary).exists(),
            "{binary} is missing: the browser tests need Debian's chromium and chromium-driver packages \
             (apt-get install chromium chromium-driver; `cargo xtask test` installs them)"
        );
    }
}

/// A chromedriver process, killed on drop (with the browsers it started).
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        require_installed();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {CHROMEDRIVER}: {error}"));
        let mut driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
        driver.wait_until_ready();
        driver
    }

    fn wait_until_ready(&mut self) {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .new_agent();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{CHROMEDRIVER} exited before it answered: {status}");
            }
            let ready = agent.get(&format!("{}/status", self.url)).call().ok().and_then(|mut response| {
                let status: Value = response.body_mut().read_json().ok()?;
                status["value"]["ready"].as_bool()
            });
            if ready == Some(true) {
                return;
            }
            assert!(Instant::now() < deadline, "{CHROMEDRIVER} did not answer {}/status within 20 s", self.url);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One headless Chromium window, pointed at the agora at `base_url`.
pub struct Chrome {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    base_url: String,
    // Declared last so that it is dropped after the session that needs it has been closed.
    _driver: Driver,
}

impl Chrome {
    /// Starts chromedriver and a headless Chromium at [`DESKTOP`] size.
    pub fn start(base_url: &str) -> Chrome {
        let driver = Driver::start();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    // Phones draw overlay scrollbars; a desktop scrollbar would take 15 px of the
                    // phone's 390 inside `innerWidth` and hide that much overflow from `assert_fits`.
                    "--hide-scrollbars",
                    // A phone-sized window cannot be asked for here: Chromium widens a new window
                    // to its 500 px minimum. Resizing afterwards is not clamped (see `resize`).
                    format!("--window-size={},{}", DESKTOP.width, DESKTOP.height),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else { unreachable!() };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = runtime
            .block_on(ClientBuilder::new(connector).capabilities(capabilities).connect(&driver.url))
            .unwrap_or_else(|error| panic!("chromedriver could not start {CHROMIUM}: {error}"));
        let timeouts = TimeoutConfiguration::new(
            Some(Duration::from_secs(60)),
            Some(Duration::from_secs(30)),
            Some(Duration::ZERO),
        );
        runtime.block_on(client.update_timeouts(timeouts)).unwrap();
        let chrome = Chrome { runtime, client: Some(client), base_url: base_url.to_owned(), _driver: driver };
        chrome.resize(DESKTOP);
        chrome
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open until drop")
    }

    fn run<T>(&self, what: &str, command: impl Future<Output = Result<T, fantoccini::error::CmdError>>) -> T {
        self.runtime.block_on(command).unwrap_or_else(|error| panic!("WebDriver: {what}: {error}"))
    }

    /// Runs `script` as the body of a function in the page; `arguments` holds `args`.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.run("execute script", self.client().execute(script, args))
    }

    /// Like [`Chrome::execute`], for a script that calls `arguments[arguments.length - 1]` with its result.
    pub fn execute_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.run("execute async script", self.client().execute_async(script, args))
    }

    /// The viewport the page has now.
    pub fn viewport_size(&self) -> (u32, u32) {
        let size = self.execute("return [window.innerWidth, window.innerHeight];", vec![]);
        let dimension = |index: usize| size[index].as_u64().expect("a whole number of CSS pixels") as u32;
        (dimension(0), dimension(1))
    }

    /// Gives the page exactly this viewport, and checks that it did.
    ///
    /// WebDriver sizes the window, not the viewport: headless Chromium keeps part of the window's
    /// height (143 px in Chromium 156) for browser UI it does not draw. The window is grown by whatever the viewport lacks,
    /// then the viewport measured again. A 390 px wide window is not widened to the 500 px
    /// minimum of a new one (its `outerWidth` says 500, but `innerWidth` and the layout say 390).
    pub fn resize(&self, viewport: Viewport) {
        let Viewport { width, height, .. } = viewport;
        self.run("set window size", self.client().set_window_size(width, height));
        let (inner_width, inner_height) = self.viewport_size();
        if (inner_width, inner_height) != (width, height) {
            let outer_width = (2 * width).saturating_sub(inner_width);
            let outer_height = (2 * height).saturating_sub(inner_height);
            self.run("set window size", self.client().set_window_size(outer_width, outer_height));
        }
        let measured = self.viewport_size();
        assert_eq!(
            measured,
            (width, height),
            "asked for a {width}x{height} viewport ({}), the page has {}x{}",
            viewport.name,
            measured.0,
            measured.1
        );
        let layout_width = self.execute("return document.documentElement.clientWidth;", vec![]);
        assert_eq!(layout_width, json!(width), "the layout viewport is not as wide as innerWidth");
    }

    /// Opens `path` on the agora under test and waits for it to load.
    pub fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base_url);
        self.run(&format!("go to {url}"), self.client().goto(&url));
    }

    /// The path of the page shown, with its query if it has one.
    pub fn current_path(&self) -> String {
        let url = self.run("current URL", self.client().current_url());
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The HTTP status the page's document was served with.
    pub fn status(&self) -> u16 {
        let status = self.execute("return performance.getEntriesByType('navigation')[0].responseStatus;", vec![]);
        status.as_u64().unwrap_or_else(|| panic!("no response status for {}: {status}", self.current_path())) as u16
    }

    /// The page's text as rendered (what a person reads, hidden elements left out).
    pub fn text(&self) -> String {
        let body = self.run("find body", self.client().find(Locator::Css("body")));
        self.run("body text", body.text())
    }

    /// The text of the page's first `h1`.
    pub fn h1(&self) -> String {
        let path = self.current_path();
        let heading = self.run(&format!("find the h1 of {path}"), self.client().find(Locator::Css("h1")));
        self.run("h1 text", heading.text())
    }

    /// Types `value` into the form field named `name`, replacing what it held.
    pub fn fill(&self, name: &str, value: &str) {
        let path = self.current_path();
        let selector = format!("[name={}]", json!(name));
        let field = self.run(&format!("find field {name:?} on {path}"), self.client().find(Locator::Css(&selector)));
        self.run(&format!("clear field {name:?}"), field.clear());
        self.run(&format!("type into field {name:?}"), field.send_keys(value));
    }

    /// Types `value` into the form field that `css` finds first, replacing what it held (for
    /// pages with several fields of one name, such as a cart's quantities).
    pub fn fill_in(&self, css: &str, value: &str) {
        let path = self.current_path();
        let field = self.run(&format!("find field {css:?} on {path}"), self.client().find(Locator::Css(css)));
        self.run(&format!("clear field {css:?}"), field.clear());
        self.run(&format!("type into field {css:?}"), field.send_keys(value));
    }

    /// Clicks the visible button (or submit input) that reads `text`, and waits for the page it loads.
    pub fn click_button(&self, text: &str) {
        let path = self.current_path();
        let literal = xpath_literal(text);
        let xpath = format!(
            "//button[normalize-space(.)={literal}] | //input[(@type='submit' or @type='button') and @value={literal}]"
        );
        let candidates = self.run("find buttons", self.client().find_all(Locator::XPath(&xpath)));
        for button in candidates {
            if self.run("is the button displayed", button.is_displayed()) {
                self.navigating(&format!("click {text:?} on {path}"), || button.click());
                return;
            }
        }
        let visible = self.execute(
            "return Array.from(document.querySelectorAll('button, input[type=submit], input[type=button]'))
                .filter(b => b.offsetParent !== null)
                .map(b => (b.innerText || b.value || '').trim());",
            vec![],
        );
        panic!("no visible button reading {text:?} on {path}; the visible buttons read {visible}");
    }

    /// Runs a click that loads another page, and returns once that page has loaded: WebDriver's
    /// click returns as soon as the click is dispatched, and reading the page then could still
    /// read the old one. The old document is marked first; the wait ends when the document shown
    /// carries no mark and has finished loading.
    fn navigating<F: Future<Output = Result<(), fantoccini::error::CmdError>>>(
        &self,
        what: &str,
        click: impl FnOnce() -> F,
    ) {
        self.execute("window.agoraOldPage = true;", vec![]);
        self.run(what, click());
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let loaded = self
                .runtime
                .block_on(
                    self.client()
                        .execute("return window.agoraOldPage !== true && document.readyState === 'complete';", vec![]),
                )
                .is_ok_and(|loaded| loaded == Value::Bool(true));
            if loaded {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: no new page within 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Follows the visible link whose text starts with `text`, and waits for the page it loads.
    pub fn click_link(&self, text: &str) {
        let path = self.current_path();
        let xpath = format!("//a[starts-with(normalize-space(.), {})]", xpath_literal(text));
        let candidates = self.run("find links", self.client().find_all(Locator::XPath(&xpath)));
        for link in candidates {
            if self.run("is the link displayed", link.is_displayed()) {
                self.navigating(&format!("follow {text:?} on {path}"), || link.click());
                return;
            }
        }
        panic!("no visible link starting {text:?} on {path}: {}", self.text());
    }

    /// Presses the submit button of the form inside `css` (a confirmation page has exactly one).
    pub fn click_button_in(&self, css: &str) {
        let path = self.current_path();
        let selector = format!("{css} button[type=submit]");
        let button = self.run(&format!("find {selector} on {path}"), self.client().find(Locator::Css(&selector)));
        self.navigating(&format!("press {selector} on {path}"), || button.click());
    }

    /// The text of the first element matching `css`, or `None`.
    pub fn text_of(&self, css: &str) -> Option<String> {
        let found = self.runtime.block_on(self.client().find(Locator::Css(css))).ok()?;
        Some(self.run("element text", found.text()))
    }

    /// Signs in through the real login form, as a person would, and checks that it worked.
    pub fn sign_in_through_form(&self, username: &str, password: &str) {
        self.goto("/admin/login");
        self.fill("username", username);
        self.fill("password", password);
        self.click_button("Sign in");
        let path = self.current_path();
        assert!(!path.starts_with("/admin/login"), "signing in as {username:?} failed: {}", self.text());
    }

    /// The id in the first link on the page whose path is `pattern` with a UUID in place of `{id}`.
    pub fn first_id_linked_as(&self, pattern: &str) -> Option<String> {
        let (before, after) = pattern.split_once("{id}").expect("the pattern has an {id}");
        let links = self
            .execute("return Array.from(document.querySelectorAll('a[href]'), a => a.getAttribute('href'));", vec![]);
        links.as_array().into_iter().flatten().filter_map(Value::as_str).find_map(|href| {
            let id = href.strip_prefix(before)?.strip_suffix(after)?;
            uuid::Uuid::parse_str(id).ok().map(|_| id.to_owned())
        })
    }

    /// Whether the page scrolls sideways: `Err` says by how much, and which elements stick out.
    pub fn check_fits(&self) -> Result<(), String> {
        let report = self.execute(OVERFLOW_SCRIPT, vec![]);
        if report.is_null() {
            return Ok(());
        }
        let mut message = format!(
            "{}: the page is {} px wide (document.documentElement.scrollWidth) in a {} px viewport \
             (window.innerWidth); sticking out to the right:",
            self.current_path(),
            report["scrollWidth"],
            report["innerWidth"]
        );
        let offenders = report["offenders"].as_array().cloned().unwrap_or_default();
        if offenders.is_empty() {
            message.push_str("\n    no element or text sticks out: something outside the body's boxes does");
        }
        for offender in offenders {
            message.push_str(&format!("\n    {}", describe_offender(&offender)));
            for inner in offender["innermost"].as_array().into_iter().flatten() {
                message.push_str(&format!("\n        innermost: {}", describe_offender(inner)));
            }
        }
        if let Some(more) = report["more"].as_u64().filter(|more| *more > 0) {
            message.push_str(&format!("\n    ... and {more} more"));
        }
        Err(message)
    }

    /// Asserts that the viewport is `width` wide and that the page does not scroll sideways in it.
    #[track_caller]
    pub fn assert_fits(&self, width: u32) {
        let (inner_width, _) = self.viewport_size();
        assert_eq!(inner_width, width, "{}: the viewport is not the width asked for", self.current_path());
        if let Err(report) = self.check_fits() {
            panic!("{report}");
        }
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        // Closing the session quits Chromium; killing only chromedriver could leave it running.
        if let Some(client) = self.client.take() {
            let _ =
                self.runtime.block_on(async { tokio::time::timeout(Duration::from_secs(10), client.close()).await });
        }
    }
}

fn describe_offender(offender: &Value) -> String {
    let text = offender["text"].as_str().unwrap_or_default();
    format!(
        "{} — right edge {} px, {} px wide{}",
        offender["selector"].as_str().unwrap_or("?"),
        offender["right"],
        offender["width"],
        if text.is_empty() { String::new() } else { format!(", {text:?}") }
    )
}

/// `text` as an XPath 1.0 string literal, which has no escapes.
fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        format!("'{text}'")
    } else if !text.contains('"') {
        format!("\"{text}\"")
    } else {
        let parts: Vec<String> = text.split('\'').map(|part| format!("'{part}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

/// Null when the page fits its viewport; otherwise both widths, and the outermost elements (or
/// runs of text) that reach past its right edge, each with the innermost ones inside it, which
/// usually name the cause (a table, a long unbroken word, a row that does not wrap). Left out, as
/// they widen nothing: what sits inside a box that fits and scrolls or clips sideways itself, and
/// what is not rendered (the contents of a closed `<details>` keep a layout all the same).
const OVERFLOW_SCRIPT: &str = r#"
const innerWidth = window.innerWidth;
const scrollWidth = document.documentElement.scrollWidth;
if (scrollWidth <= innerWidth) return null;
const limit = innerWidth + 0.5;
const selector = (element) => {
  const parts = [];
  for (let node = element; node && parts.length < 4; node = node.parentElement) {
    let part = node.localName;
    if (node.id) { parts.unshift(part + '#' + node.id); break; }
    if (node.classList.length) {
      part += '.' + Array.from(node.classList).join('.');
    } else if (node.parentElement) {
      const same = Array.from(node.parentElement.children).filter(c => c.localName === node.localName);
      if (same.length > 1) part += ':nth-of-type(' + (same.indexOf(node) + 1) + ')';
    }
    parts.unshift(part);
    if (node.localName === 'body') break;
  }
  return parts.join(' > ');
};
// A box that scrolls or clips sideways keeps what overflows it off the page, unless it sticks out itself.
const clipped = (element) => {
  for (let a = element.parentElement; a && a !== document.body && a !== document.documentElement; a = a.parentElement) {
    if (getComputedStyle(a).overflowX !== 'visible' && a.getBoundingClientRect().right <= limit) return true;
  }
  return false;
};
const shown = (element) => element.checkVisibility();
const right = new Map();
for (const element of document.body.querySelectorAll('*')) {
  const rect = element.getBoundingClientRect();
  if (rect.right > limit && rect.width > 0 && shown(element) && !clipped(element)) right.set(element, rect);
}
// Text wider than its box (a long unbroken word, a nowrap cell) sticks out while its box does not.
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const range = document.createRange();
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  if (!node.textContent.trim()) continue;
  range.selectNodeContents(node);
  const rect = range.getBoundingClientRect();
  const element = node.parentElement;
  if (rect.right > limit && element && !right.has(element) && shown(element) && !clipped(element)) {
    const box = element.getBoundingClientRect();
    right.set(element, { right: rect.right, width: box.width, text: true });
  }
}
const offenders = Array.from(right.keys());
const summary = (element) => ({
  selector: selector(element) + (right.get(element).text ? ' (its text)' : ''),
  right: Math.round(right.get(element).right),
  width: Math.round(right.get(element).width),
  text: (element.innerText || element.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 40),
});
const roots = offenders.filter(e => !offenders.some(o => o !== e && o.contains(e)));
const innermost = offenders.filter(e => !offenders.some(o => o !== e && e.contains(o)));
// The widest first: they are what stretches the box. Cells of one column share both edges: one is enough.
const listed = roots.slice(0, 12).map(root => {
  const inner = innermost
    .filter(leaf => leaf !== root && root.contains(leaf))
    .map(summary)
    .sort((a, b) => b.width - a.width)
    .filter((leaf, index, all) => all.findIndex(other => other.right === leaf.right && other.width === leaf.width) === index)
    .slice(0, 3);
  return Object.assign(summary(root), { innermost: inner });
});
return { innerWidth, scrollWidth, offenders: listed, more: Math.max(0, roots.length - listed.length) };
"#;
