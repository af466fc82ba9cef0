//! Admin pages for orders: the list (filter by status, search by number or e-mail), and each
//! order with everything the shared tables know about it and the actions its status allows.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use diesel::Connection;

use super::search::{CUSTOMER_COLUMNS, CustomerSummary, Needle, ORDER_COLUMNS, OrderResults, OrderSearch};
use super::{Action, Order, OrderDetails, OrderLine, OrderStatus, OrdersError};
use crate::admin::listing::{self, ListQuery, Numbered, Sort};
use crate::admin::page::see_other;
use crate::admin::page::{Confirmation, Layout, PageError, Section, render};
use crate::admin::session::{Admin, CsrfForm, CsrfProtected};
use crate::error::AppError;
use crate::events::CancelledBy;
use crate::http::state::AppState;
use crate::ids::{CustomerId, OrderId};
use crate::inventory::Movement;
use crate::kernel::Module;
use crate::money::Currency;
use crate::orders::Customer;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/orders").route(web::get().to(list)))
        .service(web::resource("/customers").route(web::get().to(customers)))
        .service(web::resource("/orders/{id}").route(web::get().to(show)))
        .service(
            web::resource("/orders/{id}/cancel").route(web::get().to(confirm_cancel)).route(web::post().to(cancel)),
        )
        .service(web::resource("/orders/{id}/ship").route(web::get().to(confirm_ship)).route(web::post().to(ship)))
        .service(
            web::resource("/orders/{id}/refund").route(web::get().to(confirm_refund)).route(web::post().to(refund)),
        );
    super::refund_pages::configure(cfg);
}

#[derive(Template)]
#[template(path = "orders/templates/list.html")]
struct ListPage {
    layout: Layout,
    statuses: [OrderStatus; 6],
    status: Option<OrderStatus>,
    query: String,
    /// The customer whose orders these are, when the list was opened from the customers page.
    customer: Option<Customer>,
    hint: Option<String>,
    results: OrderResults,
    sort: Sort,
    currency: Currency,
}

impl ListPage {
    fn filters(&self) -> Vec<(&'static str, String)> {
        vec![
            ("status", self.status.map(|status| status.as_str().to_owned()).unwrap_or_default()),
            ("q", self.query.clone()),
            ("customer", self.customer.as_ref().map(|customer| customer.id.to_string()).unwrap_or_default()),
        ]
    }

    fn href(&self, sort: Option<(&str, &str)>, page: i64) -> String {
        let filters = self.filters();
        let filters: Vec<(&str, &str)> = filters.iter().map(|(name, value)| (*name, value.as_str())).collect();
        listing::href("/admin/orders", &filters, sort, page)
    }

    fn page_href(&self, page: i64) -> String {
        self.href(self.sort.kept(), page)
    }

    fn numbered(&self) -> &Numbered<(Order, Customer)> {
        &self.results.page
    }

    fn sort_href(&self, key: &str) -> String {
        self.href(self.sort.toggled(key), 1)
    }

    fn is_selected(&self, status: &OrderStatus) -> bool {
        self.status == Some(*status)
    }

    fn is_filtered(&self) -> bool {
        self.status.is_some() || !self.query.is_empty() || self.customer.is_some()
    }

    fn summary(&self) -> String {
        let count = self.results.page.count("order", "orders");
        match self.results.total_minor {
            Some(total) => format!("{count}, {} in all", self.currency.format(total)),
            None => count,
        }
    }
}

#[derive(Deserialize)]
struct ListFilter {
    status: Option<String>,
    q: Option<String>,
    customer: Option<String>,
}

async fn list(
    state: web::Data<AppState>,
    admin: Admin,
    filter: web::Query<ListFilter>,
    list: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let filter = filter.into_inner();
    let page = list.page()?;
    let sort = list.sort(&ORDER_COLUMNS)?;
    let status = match filter.status.as_deref().filter(|status| !status.is_empty()) {
        Some(text) => Some(OrderStatus::parse(text).ok_or_else(|| {
            AppError::bad_query(
                "status",
                format!("must be one of {}", OrderStatus::ALL.map(OrderStatus::as_str).join(", ")),
            )
        })?),
        None => None,
    };
    let customer = match filter.customer.as_deref().filter(|id| !id.is_empty()) {
        Some(text) => {
            Some(text.parse::<CustomerId>().map_err(|_| AppError::bad_query("customer", "must be a customer id"))?)
        }
        None => None,
    };
    let text = filter.q.unwrap_or_default();
    let text =
        crate::input::SEARCH.check(&text).map_err(|message| AppError::bad_query("q", message))?.trim().to_owned();
    let needle = Needle::parse(&text);
    let hint = (!text.is_empty() && needle.is_none()).then(|| {
        format!(
            "Type an order number (AG-000042, AG000042 or 42) or at least {} characters of a customer's name or \
             e-mail address.",
            super::search::MIN_TEXT_CHARS
        )
    });
    let search = OrderSearch { status, needle, customer };
    let (results, customer) = if hint.is_some() {
        (OrderResults { page: Numbered::new(Vec::new(), 1, 0), total_minor: Some(0) }, None)
    } else {
        state
            .db
            .read(Module::Orders.op("search_orders"), admin.read_after(), move |conn| -> Result<_, OrdersError> {
                let customer = match search.customer {
                    Some(id) => Some(super::search::customer(conn, id)?.ok_or_else(|| {
                        OrdersError::Invalid(vec![crate::error::FieldError::new("customer", "no such customer")])
                    })?),
                    None => None,
                };
                Ok((super::search::search_orders(conn, &search, sort, page)?, customer))
            })
            .await?
    };
    render(&ListPage {
        layout: admin.layout(Section::Orders),
        statuses: OrderStatus::ALL,
        status,
        query: text,
        customer,
        hint,
        results,
        sort,
        currency: state.config.currency,
    })
}

#[derive(Template)]
#[template(path = "orders/templates/customers.html")]
struct CustomersPage {
    layout: Layout,
    query: String,
    hint: Option<String>,
    customers: Numbered<CustomerSummary>,
    sort: Sort,
    currency: Currency,
}

impl CustomersPage {
    fn href(&self, sort: Option<(&str, &str)>, page: i64) -> String {
        listing::href("/admin/customers", &[("q", self.query.as_str())], sort, page)
    }

    fn page_href(&self, page: i64) -> String {
        self.href(self.sort.kept(), page)
    }

    fn sort_href(&self, key: &str) -> String {
        self.href(self.sort.toggled(key), 1)
    }

    fn numbered(&self) -> &Numbered<CustomerSummary> {
        &self.customers
    }
}

#[derive(Deserialize)]
struct CustomerFilter {
    q: Option<String>,
}

async fn customers(
    state: web::Data<AppState>,
    admin: Admin,
    filter: web::Query<CustomerFilter>,
    list: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let page = list.page()?;
    let sort = list.sort(&CUSTOMER_COLUMNS)?;
    let text = filter.into_inner().q.unwrap_or_default();
    let text =
        crate::input::SEARCH.check(&text).map_err(|message| AppError::bad_query("q", message))?.trim().to_owned();
    let too_short = !text.is_empty() && text.chars().count() < super::search::MIN_TEXT_CHARS;
    let hint = too_short
        .then(|| format!("Type at least {} characters of a name or e-mail address.", super::search::MIN_TEXT_CHARS));
    let customers = if too_short {
        Numbered::new(Vec::new(), 1, 0)
    } else {
        let search = (!text.is_empty()).then(|| text.clone());
        state
            .db
            .read(Module::Orders.op("search_customers"), admin.read_after(), move |conn| {
                super::search::search_customers(conn, search.as_deref(), sort, page)
            })
            .await?
    };
    render(&CustomersPage {
        layout: admin.layout(Section::Customers),
        query: text,
        hint,
        customers,
        sort,
        currency: state.config.currency,
    })
}

#[derive(Template)]
#[template(path = "orders/templates/show.html")]
struct ShowPage {
    layout: Layout,
    details: OrderDetails,
    movements: Vec<Movement>,
    currency: Currency,
}

impl ShowPage {
    fn can(&self, action: &str) -> bool {
        let action = match action {
            "cancel" => Action::Cancel,
            "ship" => Action::Ship,
            "refund" => Action::Refund,
            "refund_part" => Action::RefundPart,
            _ => return false,
        };
        self.details.order.allows(action)
    }

    fn refunded_quantity(&self, line: &OrderLine) -> i32 {
        self.details.refunded_quantity(line.line_no)
    }
}

async fn show(state: web::Data<AppState>, admin: Admin, id: web::Path<OrderId>) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let emails_here = !state.mailroom.is_service();
    let (read, emails) = tokio::join!(
        state.db.run(Module::Orders.op("order_page"), move |conn| -> Result<_, AppError> {
            let details = super::order_details(conn, id, emails_here)?;
            let movements = crate::inventory::order_movements(conn, id)?;
            Ok((details, movements))
        }),
        state.mailroom.order_emails(id),
    );
    let (details, movements) = read?;
    let details = details.with_emails(emails);
    render(&ShowPage { layout: admin.layout(Section::Orders), details, movements, currency: state.config.currency })
}

/// The confirmation step before an order action: what exactly will happen, and the status the
/// operator saw, so the action is refused if the order changed in between.
async fn confirm(
    state: web::Data<AppState>,
    admin: Admin,
    id: OrderId,
    action: Action,
) -> Result<HttpResponse, PageError> {
    let details =
        state.db.run(Module::Orders.op("order_page"), move |conn| super::order_details(conn, id, false)).await?;
    let order = &details.order;
    let number = order.display_number();
    let back = format!("/admin/orders/{id}");
    if !order.allows(action) {
        admin.warn(format!(
            "Order {number} is {}; it cannot be {}.",
            order.status.label().to_lowercase(),
            action.verb()
        ));
        return Ok(see_other(&back));
    }
    let currency = state.config.currency;
    let total = currency.format(order.total_minor);
    // Units refunded line by line went back already (or were never to ship).
    let units = details.all_units_left();
    let (units, go) = if units == 1 { ("1 unit".to_owned(), "goes") } else { (format!("{units} units"), "go") };
    let (refunded, remaining) = details.refunded_and_remaining();
    let mut fields = vec![("status", order.status.as_str().to_owned())];
    let customer = &details.customer;
    let (question, consequences, button) = match action {
        Action::Cancel => (
            format!("Cancel order {number} ({total}) for {}?", customer.name),
            vec![
                format!("The {units} reserved for it {go} back to stock."),
                format!("{} is e-mailed that the order was cancelled.", customer.email),
            ],
            "Cancel the order",
        ),
        Action::Ship => (
            format!("Ship order {number} to {}?", customer.name),
            vec![
                format!(
                    "Its {units} {} the warehouse: on hand and reserved both go down.",
                    if go == "goes" { "leaves" } else { "leave" }
                ),
                format!("{} is e-mailed that the order is on its way.", customer.email),
            ],
            "Ship it",
        ),
        Action::Refund => {
            let stock = match (order.has_shipped(), refunded > 0) {
                (false, false) => format!("It has not shipped: the {units} reserved for it {go} back to stock."),
                (false, true) => format!("It has not shipped: the {units} still reserved for it {go} back to stock."),
                (true, _) => "It has shipped: stock is not taken back; record returned goods as a receipt.".to_owned(),
            };
            let mut consequences = vec![format!("Order {number} becomes refunded.")];
            if refunded > 0 {
                consequences.push(format!(
                    "{} of {total} was refunded before; this refunds the {} left.",
                    currency.format(refunded),
                    currency.format(remaining)
                ));
            }
            consequences.push(stock);
            consequences.push(format!("{} is e-mailed about the refund.", customer.email));
            // What the operator saw refunded: a refund of a part meanwhile changes what is left.
            fields.push(("refunded", refunded.to_string()));
            (format!("Refund {} to {}?", currency.format(remaining), paid_card(&details)), consequences, "Refund")
        }
        Action::Pay | Action::RefundPart => unreachable!("not an action of this confirmation"),
    };
    render(&Confirmation {
        layout: admin.layout(Section::Orders),
        question,
        consequences,
        action: format!("/admin/orders/{id}/{}", action.path()),
        fields,
        button: button.to_owned(),
        danger: action != Action::Ship,
        back,
    })
}

/// The card the order was paid with, as a confirmation names it: "visa •••• 4242".
pub(super) fn paid_card(details: &OrderDetails) -> String {
    details
        .payments
        .iter()
        .find(|(payment, _)| payment.succeeded())
        .map(|(payment, _)| format!("{} •••• {}", payment.card_brand, payment.card_last4))
        .unwrap_or_else(|| "the card it was paid with".to_owned())
}

async fn confirm_cancel(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<OrderId>,
) -> Result<HttpResponse, PageError> {
    confirm(state, admin, id.into_inner(), Action::Cancel).await
}

async fn confirm_ship(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<OrderId>,
) -> Result<HttpResponse, PageError> {
    confirm(state, admin, id.into_inner(), Action::Ship).await
}

async fn confirm_refund(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<OrderId>,
) -> Result<HttpResponse, PageError> {
    confirm(state, admin, id.into_inner(), Action::Refund).await
}

/// An order action's form: the CSRF token and, from the confirmation page, the status the
/// operator saw when deciding (and for a refund, what had been refunded).
#[derive(Deserialize)]
struct ActionForm {
    csrf_token: String,
    status: Option<String>,
    refunded: Option<String>,
}

impl CsrfProtected for ActionForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// Why an action did not happen, told on the order's page rather than on an error page.
pub(super) enum Refused {
    /// The order changed since the operator looked at it.
    Changed { number: String, seen: OrderStatus, now: OrderStatus },
    /// Money was refunded since the operator looked at the order.
    RefundedMeanwhile { number: String, minor: i64 },
    /// The order's status does not allow the action.
    Illegal { number: String, now: OrderStatus },
}

impl Refused {
    /// Tells the operator, on the order's page, why `action` did not happen.
    pub(super) fn warn(self, admin: &Admin, action: Action, currency: Currency) {
        match self {
            Refused::Changed { number, seen, now } => admin.warn(format!(
                "Order {number} was not {}: it changed while you were deciding, from {} to {}. Nothing was done; \
                 check the order below and decide again.",
                action.verb(),
                seen.label().to_lowercase(),
                now.label().to_lowercase(),
            )),
            Refused::RefundedMeanwhile { number, minor } => admin.warn(format!(
                "Order {number} was not {}: it changed while you were deciding, {} more was refunded meanwhile. \
                 Nothing was done; check the order below and decide again.",
                action.verb(),
                currency.format(minor),
            )),
            Refused::Illegal { number, now } => admin.warn(format!(
                "Order {number} was not {}: it is {} now, and a {} order cannot be {}.",
                action.verb(),
                now.label().to_lowercase(),
                now.label().to_lowercase(),
                action.verb(),
            )),
        }
    }

    /// What the operator saw, checked against the order locked: `None` if nothing changed.
    pub(super) fn check_seen(
        conn: &mut diesel::PgConnection,
        current: &Order,
        seen: Option<OrderStatus>,
        seen_refunded: Option<i64>,
    ) -> Result<Option<Refused>, OrdersError> {
        if let Some(seen) = seen.filter(|seen| *seen != current.status) {
            return Ok(Some(Refused::Changed { number: current.display_number(), seen, now: current.status }));
        }
        if let Some(seen) = seen_refunded
            && current.allows(Action::Refund)
        {
            let refunded = crate::payments::refundable(conn, current.id)?.refunded_minor;
            if refunded != seen {
                return Ok(Some(Refused::RefundedMeanwhile {
                    number: current.display_number(),
                    minor: refunded - seen,
                }));
            }
        }
        Ok(None)
    }
}

/// A status posted back from a confirmation page.
pub(super) fn seen_status(posted: Option<&str>) -> Result<Option<OrderStatus>, AppError> {
    match posted.filter(|status| !status.is_empty()) {
        Some(status) => Ok(Some(
            OrderStatus::parse(status)
                .ok_or_else(|| AppError::invalid("status", format!("{status:?} is not an order status")))?,
        )),
        None => Ok(None),
    }
}

/// What was refunded as a confirmation page showed it, posted back.
pub(super) fn seen_refunded(posted: Option<&str>) -> Result<Option<i64>, AppError> {
    match posted.filter(|refunded| !refunded.is_empty()) {
        Some(text) => Ok(Some(
            text.parse::<i64>().map_err(|_| AppError::invalid("refunded", "must be a whole number of minor units"))?,
        )),
        None => Ok(None),
    }
}

async fn transition(
    state: web::Data<AppState>,
    admin: Admin,
    id: OrderId,
    action: Action,
    form: ActionForm,
) -> Result<HttpResponse, PageError> {
    let seen = seen_status(form.status.as_deref())?;
    let seen_refunded = seen_refunded(form.refunded.as_deref())?;
    let outcome = state
        .db
        .run(Module::Orders.op("admin_transition"), move |conn| -> Result<Result<Order, Refused>, OrdersError> {
            conn.transaction(|conn| {
                // Locked first, so nothing changes it between this check and the action.
                let current = super::store::lock_order(conn, id)?.ok_or(OrdersError::NotFound(id))?;
                if let Some(refused) = Refused::check_seen(conn, &current, seen, seen_refunded)? {
                    return Ok(Err(refused));
                }
                let done = match action {
                    Action::Cancel => super::cancel(conn, id, CancelledBy::Admin),
                    Action::Ship => super::ship(conn, id),
                    Action::Refund => super::refund(conn, id),
                    Action::Pay | Action::RefundPart => unreachable!("not an action of this form"),
                };
                match done {
                    Ok(order) => Ok(Ok(order)),
                    Err(OrdersError::IllegalTransition { number, status, .. }) => {
                        Ok(Err(Refused::Illegal { number, now: status }))
                    }
                    Err(other) => Err(other),
                }
            })
        })
        .await?;
    match outcome {
        Ok(order) => admin.flash(format!("Order {} {}.", order.display_number(), action.verb())),
        Err(refused) => refused.warn(&admin, action, state.config.currency),
    }
    Ok(see_other(&format!("/admin/orders/{id}")))
}

async fn cancel(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<OrderId>,
    CsrfForm(form): CsrfForm<ActionForm>,
) -> Result<HttpResponse, PageError> {
    transition(state, admin, id.into_inner(), Action::Cancel, form).await
}

async fn ship(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<OrderId>,
    CsrfForm(form): CsrfForm<ActionForm>,
) -> Result<HttpResponse, PageError> {
    transition(state, admin, id.into_inner(), Action::Ship, form).await
}

async fn refund(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<OrderId>,
    CsrfForm(form): CsrfForm<ActionForm>,
) -> Result<HttpResponse, PageError> {
    transition(state, admin, id.into_inner(), Action::Refund, form).await
}
