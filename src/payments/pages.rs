//! The admin list of payments: filters, sortable columns, numbered pages, and the totals of what
//! the filter matches.

use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Deserialize;

use super::{CardBrand, PaymentFilter, PaymentListItem, PaymentSort, PaymentStatus, PaymentTotals};
use crate::admin::listing::{COUNT_CAP, Column, ListQuery, Numbered, PER_PAGE, Sort, href};
use crate::admin::page::{FormErrors, Layout, PageError, Section, render};
use crate::admin::session::Admin;
use crate::error::AppError;
use crate::http::state::AppState;
use crate::ids::OrderNumber;
use crate::kernel::Module;
use crate::money::Currency;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/payments").route(web::get().to(list)));
}

const BASE: &str = "/admin/payments";

/// Newest first by default; amounts largest first when first chosen.
const COLUMNS: [Column; 2] = [Column::desc("when"), Column::desc("amount")];

/// Every brand a payment can be stored with, in the order the filter offers them.
const BRANDS: [CardBrand; 8] = [
    CardBrand::Visa,
    CardBrand::Mastercard,
    CardBrand::Amex,
    CardBrand::Discover,
    CardBrand::DinersClub,
    CardBrand::Jcb,
    CardBrand::UnionPay,
    CardBrand::Unknown,
];

fn brand_label(brand: CardBrand) -> &'static str {
    match brand {
        CardBrand::Visa => "Visa",
        CardBrand::Mastercard => "Mastercard",
        CardBrand::Amex => "American Express",
        CardBrand::Discover => "Discover",
        CardBrand::DinersClub => "Diners Club",
        CardBrand::Jcb => "JCB",
        CardBrand::UnionPay => "UnionPay",
        CardBrand::Unknown => "Unknown brand",
    }
}

/// The filters as typed, echoed back into the form and into every link of the page.
#[derive(Debug, Default, Deserialize)]
struct FilterQuery {
    status: Option<String>,
    brand: Option<String>,
    order: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

#[derive(Debug, Default)]
struct FilterForm {
    status: String,
    brand: String,
    order: String,
    from: String,
    to: String,
}

impl FilterForm {
    fn pairs(&self) -> [(&'static str, &str); 5] {
        [
            ("status", self.status.as_str()),
            ("brand", self.brand.as_str()),
            ("order", self.order.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
        ]
    }

    fn is_empty(&self) -> bool {
        self.pairs().iter().all(|(_, value)| value.is_empty())
    }
}

#[derive(Template)]
#[template(path = "payments/templates/list.html")]
struct ListPage {
    layout: Layout,
    statuses: [PaymentStatus; 2],
    brands: Vec<(&'static str, &'static str)>,
    form: FilterForm,
    errors: FormErrors,
    sort: Sort,
    page: Numbered<PaymentListItem>,
    /// `None` when more payments match than are counted.
    totals: Option<PaymentTotals>,
    currency: Currency,
}

impl ListPage {
    fn number(&self, number: &i64) -> String {
        OrderNumber(*number).to_string()
    }

    fn brand(&self, stored: &str) -> String {
        BRANDS
            .iter()
            .find(|brand| brand.as_str() == stored)
            .map_or_else(|| stored.to_owned(), |b| brand_label(*b).into())
    }

    fn decline(&self, code: &str) -> String {
        crate::text_enum::human_label(code)
    }

    fn sort_href(&self, key: &str) -> String {
        href(BASE, &self.form.pairs(), self.sort.toggled(key), 1)
    }

    fn page_href(&self, page: i64) -> String {
        href(BASE, &self.form.pairs(), self.sort.kept(), page)
    }

    fn numbered(&self) -> &Numbered<PaymentListItem> {
        &self.page
    }
}

async fn list(
    state: web::Data<AppState>,
    admin: Admin,
    filters: web::Query<FilterQuery>,
    list: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let sort = list.sort(&COLUMNS)?;
    let requested = list.page()?;
    let (form, filter, errors) = read_filters(filters.into_inner())?;
    let page = if errors.is_empty() {
        let order = if sort.key == "amount" { PaymentSort::Amount } else { PaymentSort::CreatedAt };
        let descending = sort.descending;
        state
            .db
            .read(Module::Payments.op("list_payments"), admin.read_after(), move |conn| {
                let tally = super::tally_payments(conn, &filter, COUNT_CAP)?;
                // Past the last page there is nothing to show: show the last one instead.
                let last = Numbered::<()>::new(Vec::new(), 1, tally.counted).pages();
                let page = if tally.counted > COUNT_CAP { requested } else { requested.min(last) };
                let offset = Numbered::<PaymentListItem>::offset(page);
                let items = super::find_payments(conn, &filter, order, descending, offset, PER_PAGE)?;
                Ok::<_, AppError>((Numbered::new(items, page, tally.counted), tally.totals))
            })
            .await?
    } else {
        (Numbered::new(Vec::new(), 1, 0), None)
    };
    let (page, totals) = page;
    render(&ListPage {
        layout: admin.layout(Section::Payments),
        statuses: PaymentStatus::ALL,
        brands: BRANDS.iter().map(|brand| (brand.as_str(), brand_label(*brand))).collect(),
        form,
        errors,
        sort,
        page,
        totals,
        currency: state.config.currency,
    })
}

/// The filters as typed, the filter they make, and what is wrong with them. A word no form
/// offers (a status or brand made up in the address bar) is a bad request; a mistyped order
/// number or date is said beside its field.
fn read_filters(query: FilterQuery) -> Result<(FilterForm, PaymentFilter, FormErrors), AppError> {
    let text = |field: &str, value: Option<String>| -> Result<String, AppError> {
        let value = value.unwrap_or_default();
        crate::input::SEARCH.check(&value).map(str::to_owned).map_err(|message| AppError::bad_query(field, message))
    };
    let form = FilterForm {
        status: text("status", query.status)?,
        brand: text("brand", query.brand)?,
        order: text("order", query.order)?,
        from: text("from", query.from)?,
        to: text("to", query.to)?,
    };
    let mut filter = PaymentFilter::default();
    let mut errors = FormErrors::default();
    if !form.status.is_empty() {
        filter.status = Some(
            PaymentStatus::parse(&form.status)
                .ok_or_else(|| AppError::bad_query("status", one_of(PaymentStatus::ALL.map(PaymentStatus::as_str))))?,
        );
    }
    if !form.brand.is_empty() {
        let brand = BRANDS
            .iter()
            .find(|brand| brand.as_str() == form.brand)
            .ok_or_else(|| AppError::bad_query("brand", one_of(BRANDS.map(CardBrand::as_str))))?;
        filter.card_brand = Some(brand.as_str());
    }
    if !form.order.is_empty() {
        match OrderNumber::parse_loosely(&form.order).map(|number| number.0) {
            Some(number) => filter.order_number = Some(number),
            None => errors.push("order", "Type an order number such as AG-000017 or 17."),
        }
    }
    let from = day(&form.from, "from", &mut errors);
    let to = day(&form.to, "to", &mut errors);
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        errors.push("to", "The last day must not be before the first.");
    }
    filter.created_from = from.map(start_of);
    // The whole last day: up to the start of the next.
    filter.created_before = to.and_then(|to| to.succ_opt()).map(start_of);
    Ok((form, filter, errors))
}

fn one_of<const N: usize>(words: [&str; N]) -> String {
    format!("must be one of {}", words.join(", "))
}

/// A day typed in a date field (`2026-11-28`), or `None` with a message when it is not one.
/// Years run from 1 to 9999, as in a browser's date field: chrono reads years PostgreSQL
/// cannot store (before 4713 BC), and a query must never see one.
fn day(text: &str, field: &str, errors: &mut FormErrors) -> Option<NaiveDate> {
    if text.is_empty() {
        return None;
    }
    let Ok(parsed) = NaiveDate::parse_from_str(text, "%Y-%m-%d") else {
        errors.push(field, "Type a date as 2026-11-28.");
        return None;
    };
    if !(1..=9999).contains(&parsed.year()) {
        errors.push(field, "Type a date between 0001-01-01 and 9999-12-31.");
        return None;
    }
    Some(parsed)
}

fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(chrono::NaiveTime::MIN).and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_range_covers_whole_days_and_says_what_is_wrong() {
        let query =
            FilterQuery { from: Some("2026-11-27".into()), to: Some("2026-11-28".into()), ..Default::default() };
        let (_, filter, errors) = read_filters(query).unwrap();
        assert!(errors.is_empty());
        assert_eq!(filter.created_from.unwrap().to_rfc3339(), "2026-11-27T00:00:00+00:00");
        assert_eq!(filter.created_before.unwrap().to_rfc3339(), "2026-11-29T00:00:00+00:00");
        let backwards =
            FilterQuery { from: Some("2026-11-28".into()), to: Some("2026-11-27".into()), ..Default::default() };
        assert!(read_filters(backwards).unwrap().2.get("to").is_some());
        let typo = FilterQuery { from: Some("28/11/2026".into()), ..Default::default() };
        assert!(read_filters(typo).unwrap().2.get("from").is_some());
        assert!(read_filters(FilterQuery { status: Some("paid".into()), ..Default::default() }).is_err());
    }
}
