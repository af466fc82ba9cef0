//! Numbered, sortable admin lists: "page 3 of 14", totals, and column headers that sort.
//!
//! The API pages with keyset cursors (no OFFSET, no COUNT); an operator's list wants page numbers
//! and a count instead. Both are bounded by [`COUNT_CAP`] rows, so a list over a million orders
//! costs a bounded index scan: beyond the cap the page says "more than 1,000" rather than
//! counting them all on every request, and no page starts past the rows counted ([`MAX_PAGE`]):
//! an OFFSET as deep as the page asked for would scan and throw away every row before it.

use serde::Deserialize;

use crate::error::{AppError, FieldError};
use crate::input::Whole;

/// Rows counted at most per list request, and the deepest row any page shows.
pub const COUNT_CAP: i64 = 1_000;
pub const PER_PAGE: i64 = 50;
/// The last page a list shows: it ends at the [`COUNT_CAP`]th row. Further rows are reached by
/// narrowing the list (its search and filters) or by sorting it the other way.
pub const MAX_PAGE: i64 = COUNT_CAP / PER_PAGE;

const PAGE: Whole = Whole::between(1, MAX_PAGE);

/// What an operator is told at the last page, and when asking for a page past it.
pub const DEPTH_ADVICE: &str = "Lists show their first 1,000 rows (20 pages of 50): narrow the list with its search or \
                                filters, or sort it the other way, to reach the rows further on.";

/// `?page=&sort=&dir=` of an admin list.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub page: Option<String>,
    pub sort: Option<String>,
    pub dir: Option<String>,
}

impl ListQuery {
    pub fn page(&self) -> Result<i64, AppError> {
        match self.page.as_deref().map(str::trim).filter(|page| !page.is_empty()) {
            None => Ok(1),
            Some(text) => match text.parse::<i64>() {
                Ok(page) if page > MAX_PAGE => Err(AppError::bad_request(format!(
                    "Page {} is past the last page a list shows. {DEPTH_ADVICE}",
                    crate::money::grouped(page)
                ))
                .with_field_errors(vec![FieldError::new("page", format!("must be between 1 and {MAX_PAGE}"))])),
                parsed => parsed
                    .map_err(|_| "must be a page number".to_owned())
                    .and_then(|page| PAGE.check(page))
                    .map_err(|message| AppError::bad_query("page", message)),
            },
        }
    }

    /// The column to sort by, one of `columns` (the first is the default), and the direction.
    pub fn sort(&self, columns: &'static [Column]) -> Result<Sort, AppError> {
        let column = match self.sort.as_deref().filter(|sort| !sort.is_empty()) {
            None => columns[0],
            Some(key) => *columns.iter().find(|column| column.key == key).ok_or_else(|| {
                let known: Vec<&str> = columns.iter().map(|column| column.key).collect();
                AppError::bad_query("sort", format!("must be one of {}", known.join(", ")))
            })?,
        };
        let descending = match self.dir.as_deref().filter(|dir| !dir.is_empty()) {
            None => column.descending_first,
            Some("asc") => false,
            Some("desc") => true,
            Some(_) => return Err(AppError::bad_query("dir", "must be asc or desc")),
        };
        Ok(Sort { key: column.key, descending, columns })
    }
}

/// A sortable column: its key in the query string, and whether it first sorts largest first
/// (dates and amounts do, names do not).
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub key: &'static str,
    pub descending_first: bool,
}

impl Column {
    pub const fn asc(key: &'static str) -> Column {
        Column { key, descending_first: false }
    }

    pub const fn desc(key: &'static str) -> Column {
        Column { key, descending_first: true }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Sort {
    pub key: &'static str,
    pub descending: bool,
    /// The list's sortable columns, its default first.
    columns: &'static [Column],
}

impl Sort {
    pub fn dir(&self) -> &'static str {
        if self.descending { "desc" } else { "asc" }
    }

    /// `aria-sort` for a column header: screen readers say which column orders the rows.
    pub fn aria(&self, key: &str) -> &'static str {
        match (self.key == key, self.descending) {
            (false, _) => "none",
            (true, true) => "descending",
            (true, false) => "ascending",
        }
    }

    /// The arrow shown after the header of the sorting column.
    pub fn arrow(&self, key: &str) -> &'static str {
        match (self.key == key, self.descending) {
            (false, _) => "",
            (true, true) => " ↓",
            (true, false) => " ↑",
        }
    }

    /// The `sort` and `dir` a link keeps: none while the list is in its default order.
    pub fn kept(&self) -> Option<(&'static str, &'static str)> {
        let default = self.columns[0];
        (self.key != default.key || self.descending != default.descending_first).then(|| (self.key, self.dir()))
    }

    /// The `sort` and `dir` the header of column `key` links to: the same column again flips the
    /// direction, another starts in its own first direction. `None` when that is the default order.
    pub fn toggled(&self, key: &str) -> Option<(&'static str, &'static str)> {
        let column = self.columns.iter().find(|column| column.key == key).copied().unwrap_or(self.columns[0]);
        let descending = if self.key == column.key { !self.descending } else { column.descending_first };
        Sort { key: column.key, descending, columns: self.columns }.kept()
    }
}

/// One page of a list, with where it sits among all the matching rows.
#[derive(Debug)]
pub struct Numbered<T> {
    pub items: Vec<T>,
    pub page: i64,
    /// Rows matching, counted up to [`COUNT_CAP`] (`capped` when there are more).
    matching: i64,
    capped: bool,
    /// `None` for a list that is not counted (see [`Numbered::uncounted`]); then whether a next
    /// page exists.
    uncounted_more: Option<bool>,
}

impl<T> Numbered<T> {
    /// `counted` is the number of matching rows found by a count limited to `COUNT_CAP + 1`.
    pub fn new(items: Vec<T>, page: i64, counted: i64) -> Numbered<T> {
        Numbered { items, page, matching: counted.min(COUNT_CAP), capped: counted > COUNT_CAP, uncounted_more: None }
    }

    /// A page of a list whose rows cannot be counted cheaply (no index can find them all),
    /// from up to `PER_PAGE + 1` rows: the extra one only says that a next page exists.
    pub fn uncounted(mut items: Vec<T>, page: i64) -> Numbered<T> {
        let more = items.len() as i64 > PER_PAGE;
        items.truncate(PER_PAGE as usize);
        Numbered { items, page, matching: 0, capped: false, uncounted_more: Some(more) }
    }

    /// The rows before `page`. Pages come from [`ListQuery::page`], which refuses any past
    /// [`MAX_PAGE`]; the clamp keeps every other caller within the count's bound too.
    pub fn offset(page: i64) -> i64 {
        (page.clamp(1, MAX_PAGE) - 1) * PER_PAGE
    }

    pub fn is_counted(&self) -> bool {
        self.uncounted_more.is_none()
    }

    pub fn pages(&self) -> i64 {
        ((self.matching + PER_PAGE - 1) / PER_PAGE).max(1)
    }

    pub fn has_previous(&self) -> bool {
        self.page > 1
    }

    pub fn has_next(&self) -> bool {
        self.page < MAX_PAGE && self.has_more()
    }

    /// Whether rows follow this page, shown or not.
    fn has_more(&self) -> bool {
        match self.uncounted_more {
            Some(more) => more,
            None => self.capped && self.items.len() as i64 == PER_PAGE || self.page < self.pages(),
        }
    }

    /// Whether this is the last page shown although rows follow it: the pager says how to reach them.
    pub fn at_depth_limit(&self) -> bool {
        self.page >= MAX_PAGE && self.has_more()
    }

    pub fn depth_advice(&self) -> &'static str {
        DEPTH_ADVICE
    }

    /// "Page 3 of 14", or "Page 3 of more than 20" past the counting cap ("Page 3" uncounted).
    pub fn position(&self) -> String {
        let page = crate::money::grouped(self.page);
        match (self.is_counted(), self.capped) {
            (false, _) => format!("Page {page}"),
            (true, true) => format!("Page {page} of more than {}", crate::money::grouped(self.pages())),
            (true, false) => format!("Page {page} of {}", crate::money::grouped(self.pages())),
        }
    }

    /// "234 orders" or "more than 1,000 orders".
    pub fn count(&self, one: &str, many: &str) -> String {
        match (self.capped, self.matching) {
            (true, _) => format!("more than {} {many}", crate::money::grouped(COUNT_CAP)),
            (false, 1) => format!("1 {one}"),
            (false, count) => format!("{} {many}", crate::money::grouped(count)),
        }
    }
}

/// Builds the query string of a list link: the list's own filters, then sort and page.
pub fn href(base: &str, filters: &[(&str, &str)], sort: Option<(&str, &str)>, page: i64) -> String {
    let mut pairs: Vec<(&str, String)> = filters
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| (*name, (*value).to_owned()))
        .collect();
    if let Some((key, dir)) = sort {
        pairs.push(("sort", key.to_owned()));
        pairs.push(("dir", dir.to_owned()));
    }
    if page > 1 {
        pairs.push(("page", page.to_string()));
    }
    if pairs.is_empty() {
        return base.to_owned();
    }
    format!("{base}?{}", serde_urlencoded::to_string(&pairs).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: &[Column] = &[Column::desc("placed"), Column::asc("customer")];

    #[test]
    fn pages_and_counts_read_as_an_operator_expects() {
        let page = Numbered::new(vec![(); 50], 2, 120);
        assert_eq!(page.position(), "Page 2 of 3");
        assert!(page.has_previous() && page.has_next());
        assert_eq!(page.count("order", "orders"), "120 orders");
        let last = Numbered::new(vec![(); 20], 3, 120);
        assert!(!last.has_next());
        let huge = Numbered::new(vec![(); 50], 1, COUNT_CAP + 1);
        assert_eq!(huge.position(), "Page 1 of more than 20");
        assert_eq!(huge.count("order", "orders"), "more than 1,000 orders");
        assert!(huge.has_next());
        assert_eq!(Numbered::new(Vec::<()>::new(), 1, 0).position(), "Page 1 of 1");
        let uncounted = Numbered::uncounted(vec![(); 51], 3);
        assert_eq!((uncounted.items.len(), uncounted.position()), (50, "Page 3".to_owned()));
        assert!(uncounted.has_next() && !uncounted.is_counted());
        assert!(!Numbered::uncounted(vec![(); 50], 3).has_next());
    }

    #[test]
    fn no_page_starts_past_the_rows_counted() {
        assert_eq!(Numbered::<()>::offset(MAX_PAGE) + PER_PAGE, COUNT_CAP, "the last page ends at the cap");
        let deepest = Numbered::new(vec![(); 50], MAX_PAGE, COUNT_CAP + 1);
        assert_eq!(deepest.position(), "Page 20 of more than 20");
        assert!(!deepest.has_next() && deepest.at_depth_limit());
        let before = Numbered::new(vec![(); 50], MAX_PAGE - 1, COUNT_CAP + 1);
        assert!(before.has_next() && !before.at_depth_limit());
        assert!(!Numbered::new(vec![(); 50], MAX_PAGE, COUNT_CAP).at_depth_limit(), "exactly 1,000: nothing follows");
        assert!(Numbered::uncounted(vec![(); 51], MAX_PAGE).at_depth_limit());
        let page = |text: &str| ListQuery { page: Some(text.into()), ..Default::default() }.page();
        assert_eq!(page("20").unwrap(), 20);
        let refused = page("1000000").unwrap_err().problem_json();
        assert_eq!(refused["status"], 400);
        assert!(refused["detail"].as_str().unwrap().starts_with("Page 1,000,000 is past the last page"), "{refused}");
        assert!(page("99999999999999999999").is_err());
    }

    #[test]
    fn sorting_accepts_known_columns_only_and_toggles() {
        let query = ListQuery { sort: Some("customer".into()), ..Default::default() };
        let sort = query.sort(COLUMNS).unwrap();
        assert_eq!((sort.key, sort.descending), ("customer", false));
        assert_eq!(sort.kept(), Some(("customer", "asc")));
        assert_eq!(sort.toggled("customer"), Some(("customer", "desc")));
        assert_eq!(sort.toggled("placed"), None, "the default order needs no parameters");
        assert_eq!(sort.aria("customer"), "ascending");
        let default = ListQuery::default().sort(COLUMNS).unwrap();
        assert!(default.descending && default.kept().is_none());
        assert_eq!(default.toggled("placed"), Some(("placed", "asc")));
        assert!(ListQuery { sort: Some("password".into()), ..Default::default() }.sort(COLUMNS).is_err());
        assert!(ListQuery { dir: Some("sideways".into()), ..Default::default() }.sort(COLUMNS).is_err());
        assert!(ListQuery { page: Some("0".into()), ..Default::default() }.page().is_err());
        assert!(ListQuery { page: Some("x".into()), ..Default::default() }.page().is_err());
    }

    #[test]
    fn links_keep_filters_and_leave_out_what_is_default() {
        assert_eq!(
            href("/admin/orders", &[("status", ""), ("q", "ada lovelace")], None, 1),
            "/admin/orders?q=ada+lovelace"
        );
        assert_eq!(
            href("/admin/orders", &[("status", "paid")], Some(("total", "desc")), 3),
            "/admin/orders?status=paid&sort=total&dir=desc&page=3"
        );
        assert_eq!(href("/admin/orders", &[], None, 1), "/admin/orders");
    }
}
