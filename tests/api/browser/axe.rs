//! Accessibility checks with axe-core, from the npm registry at the version pinned in
//! tests/browser/package-lock.json, injected into each page over WebDriver.
//!
//! The admin pages' Content-Security-Policy allows no script at all, yet axe runs: WebDriver's
//! scripts are evaluated through the DevTools protocol, which the page's policy does not govern.
//! `the_checks_see_a_page_that_scrolls_sideways_and_an_image_without_alt_text` holds both facts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use super::chrome::Chrome;

fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// axe.min.js, installed with `npm ci` on first use when missing; the lock makes tests running in
/// parallel install it once and wait for it.
fn axe_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let dir = package_dir();
        let script = dir.join("node_modules/axe-core/axe.min.js");
        if !script.exists() {
            let output = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .output()
                .unwrap_or_else(|error| {
                    panic!(
                        "{} is missing and npm cannot run to install it ({error}): install Node.js and npm \
                         (apt-get install nodejs npm), then run npm ci --prefix tests/browser",
                        script.display()
                    )
                });
            assert!(
                output.status.success(),
                "npm ci --prefix tests/browser failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::fs::read_to_string(&script).unwrap_or_else(|error| panic!("cannot read {}: {error}", script.display()))
    })
}

/// How bad a violation is, in axe's words, worst first.
pub const IMPACTS: [&str; 4] = ["critical", "serious", "moderate", "minor"];

/// One element a rule failed on.
#[derive(Clone, Debug)]
pub struct Node {
    /// axe's CSS selector for the element.
    pub target: String,
    /// What axe found wrong there (for contrast: both colours and the ratio).
    pub detail: String,
}

/// One axe rule the page breaks, with every element it breaks it on.
#[derive(Clone, Debug)]
pub struct Violation {
    pub id: String,
    pub impact: String,
    pub help: String,
    pub nodes: Vec<Node>,
}

impl Violation {
    pub fn is_serious_or_worse(&self) -> bool {
        matches!(self.impact.as_str(), "critical" | "serious")
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "axe {} ({}): {} — {} element(s)", self.id, self.impact, self.help, self.nodes.len())?;
        for node in &self.nodes {
            write!(f, "\n        {}", node.target)?;
            if !node.detail.is_empty() {
                write!(f, " — {}", node.detail)?;
            }
        }
        Ok(())
    }
}

/// Rules broken and elements breaking them, per impact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImpactCounts {
    /// `[critical, serious, moderate, minor]`, as in [`IMPACTS`].
    pub rules: [usize; 4],
    pub elements: [usize; 4],
}

impl ImpactCounts {
    pub fn serious_or_worse(&self) -> usize {
        self.rules[0] + self.rules[1]
    }
}

impl fmt::Display for ImpactCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = IMPACTS
            .iter()
            .enumerate()
            .map(|(index, impact)| match self.rules[index] {
                0 => format!("{impact} 0"),
                rules => match self.elements[index] {
                    1 => format!("{impact} {rules} (1 element)"),
                    elements => format!("{impact} {rules} ({elements} elements)"),
                },
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// What axe found on one page.
#[derive(Clone, Debug)]
pub struct AxeReport {
    pub page: String,
    pub violations: Vec<Violation>,
}

impl AxeReport {
    pub fn counts(&self) -> ImpactCounts {
        let mut counts = ImpactCounts::default();
        for violation in &self.violations {
            // axe leaves the impact out only for rules it could not rate; count them as minor.
            let index = IMPACTS.iter().position(|impact| *impact == violation.impact).unwrap_or(3);
            counts.rules[index] += 1;
            counts.elements[index] += violation.nodes.len();
        }
        counts
    }

    pub fn serious_or_worse(&self) -> Vec<&Violation> {
        self.violations.iter().filter(|violation| violation.is_serious_or_worse()).collect()
    }
}

/// Loads axe into the page and runs every rule on the whole document.
const RUN_SCRIPT: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document, { resultTypes: ['violations'] }).then(
  results => done({
    violations: results.violations.map(v => ({
      id: v.id,
      impact: v.impact || 'unknown',
      help: v.help,
      nodes: v.nodes.map(n => ({
        target: n.target.flat(Infinity).join(' '),
        detail: [...n.any, ...n.all, ...n.none].map(check => check.message).filter(Boolean)[0] || '',
      })),
    })),
  }),
  error => done({ error: String((error && error.stack) || error) }),
);
"#;

impl Chrome {
    /// Runs axe on the page shown and returns its violations.
    pub fn axe(&self) -> AxeReport {
        let page = self.current_path();
        let loaded = self.execute(&format!("{}\nreturn typeof window.axe === 'object';", axe_source()), vec![]);
        assert_eq!(loaded, Value::Bool(true), "{page}: axe did not load into the page");
        let result = self.execute_async(RUN_SCRIPT, vec![]);
        if let Some(error) = result.get("error") {
            panic!("{page}: axe.run failed: {}", error.as_str().unwrap_or_default());
        }
        let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
        let violations = result["violations"]
            .as_array()
            .unwrap_or_else(|| panic!("{page}: axe answered {result}"))
            .iter()
            .map(|violation| Violation {
                id: text(&violation["id"]),
                impact: text(&violation["impact"]),
                help: text(&violation["help"]),
                nodes: violation["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|node| Node { target: text(&node["target"]), detail: text(&node["detail"]) })
                    .collect(),
            })
            .collect();
        AxeReport { page, violations }
    }

    /// Fails listing every serious or critical axe violation on the page shown; returns the counts
    /// per impact of all of them.
    #[track_caller]
    pub fn assert_accessible(&self) -> ImpactCounts {
        let report = self.axe();
        let serious = report.serious_or_worse();
        if !serious.is_empty() {
            let listed: Vec<String> = serious.iter().map(|violation| format!("    {violation}")).collect();
            panic!("{}: axe finds serious or critical violations:\n{}", report.page, listed.join("\n"));
        }
        report.counts()
    }
}
