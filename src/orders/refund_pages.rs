//! Admin pages for refunding part of an order: a form (an amount, or units of chosen lines), a
//! confirmation that states the amount, the card and what goes back to stock, and the action.
//! Like the order's other actions, the confirmation posts what the operator saw (the status and
//! what had been refunded), and nothing happens if the order changed meanwhile.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use diesel::Connection;
use serde::Deserialize;

use super::pages::{Refused, paid_card, seen_refunded, seen_status};
use super::{Action, OrderDetails, OrderLine, OrderStatus, OrdersError, RefundOutcome, RefundRequest};
use crate::admin::page::{Confirmation, FormErrors, Layout, PageError, Section, render, render_with_status, see_other};
use crate::admin::session::{Admin, CsrfForm, CsrfProtected};
use crate::error::AppError;
use crate::http::state::AppState;
use crate::ids::{OrderId, ProductId};
use crate::kernel::Module;
use crate::money::Currency;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/orders/{id}/refunds/new").route(web::get().to(form)))
        .service(web::resource("/orders/{id}/refunds/review").route(web::post().to(review)))
        .service(web::resource("/orders/{id}/refunds").route(web::post().to(refund)));
}

/// The form's fields as typed: `amount`, and `line-{n}` for the units of line n.
#[derive(Debug, Default, Deserialize)]
struct RefundForm {
    csrf_token: String,
    #[serde(default)]
    amount: String,
    #[serde(flatten)]
    lines: HashMap<String, String>,
}

impl CsrfProtected for RefundForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

fn line_field(line: &OrderLine) -> String {
    format!("line-{}", line.line_no)
}

impl RefundForm {
    /// What the form asks, or every field's mistake at once.
    fn check(&self, details: &OrderDetails, currency: Currency) -> Result<RefundRequest, FormErrors> {
        let mut errors = FormErrors::default();
        let remaining = details.refunded_and_remaining().1;
        let typed_amount = self.amount.trim();
        let amount = if typed_amount.is_empty() {
            None
        } else {
            match currency.parse_amount(typed_amount) {
                None => {
                    errors.push("amount", format!("enter an amount such as 12.50 ({})", currency.code()));
                    None
                }
                Some(0) => {
                    errors.push("amount", "must be more than 0");
                    None
                }
                Some(amount) if amount > remaining => {
                    errors.push("amount", format!("only {} is left to refund", currency.format(remaining)));
                    None
                }
                Some(amount) => Some(amount),
            }
        };
        let mut units: Vec<(&OrderLine, i64)> = Vec::new();
        for line in &details.lines {
            let field = line_field(line);
            let typed = self.lines.get(&field).map(|text| text.trim()).unwrap_or_default();
            if typed.is_empty() {
                continue;
            }
            let left = i64::from(details.units_left(line));
            match typed.parse::<u32>() {
                Err(_) => errors.push(&field, "enter a whole number of units"),
                Ok(0) => {}
                Ok(asked) if i64::from(asked) > left => errors.push(
                    &field,
                    match left {
                        0 => "every unit of this line is refunded already".to_owned(),
                        1 => "at most 1 unit is left to refund".to_owned(),
                        left => format!("at most {left} units are left to refund"),
                    },
                ),
                Ok(asked) => units.push((line, i64::from(asked))),
            }
        }
        let asked_lines = !units.is_empty() || details.lines.iter().any(|line| errors.get(&line_field(line)).is_some());
        if errors.get("amount").is_none() {
            if !typed_amount.is_empty() && asked_lines {
                errors.push("amount", "an amount or units, not both: empty one of them");
            } else if typed_amount.is_empty() && !asked_lines {
                errors.push("amount", "enter an amount, or units of at least one line");
            }
        }
        let worth: i64 = units.iter().map(|(line, units)| line.unit_price_minor * units).sum();
        if worth > remaining
            && let Some((first, _)) = units.first()
        {
            errors.push(
                &line_field(first),
                format!(
                    "these units come to {}, but only {} is left to refund",
                    currency.format(worth),
                    currency.format(remaining)
                ),
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(match amount {
            Some(amount) => RefundRequest::Amount(amount),
            None => RefundRequest::Lines(units.iter().map(|(line, units)| (line.product_id, *units)).collect()),
        })
    }
}

#[derive(Template)]
#[template(path = "orders/templates/refund.html")]
struct FormPage {
    layout: Layout,
    details: OrderDetails,
    form: RefundForm,
    errors: FormErrors,
    currency: Currency,
}

impl FormPage {
    fn field(&self, line: &OrderLine) -> String {
        line_field(line)
    }

    fn typed(&self, line: &OrderLine) -> &str {
        self.form.lines.get(&line_field(line)).map(String::as_str).unwrap_or_default()
    }

    fn units_left(&self, line: &OrderLine) -> i32 {
        self.details.units_left(line)
    }

    fn field_label(&self, field: &str) -> String {
        match self.details.lines.iter().find(|line| line_field(line) == field) {
            Some(line) => format!("{} ({})", line.name, line.sku),
            None => "Amount".to_owned(),
        }
    }
}

async fn details(state: &AppState, id: OrderId) -> Result<OrderDetails, PageError> {
    Ok(state.db.run(Module::Orders.op("order_page"), move |conn| super::order_details(conn, id, false)).await?)
}

/// Back to the order's page, saying why, when its status allows no refund (any more).
fn refused_page(admin: &Admin, details: &OrderDetails) -> Option<HttpResponse> {
    let order = &details.order;
    (!order.allows(Action::RefundPart)).then(|| {
        admin.warn(format!(
            "Order {} is {}; it cannot be refunded.",
            order.display_number(),
            order.status.label().to_lowercase()
        ));
        see_other(&format!("/admin/orders/{}", order.id))
    })
}

async fn form(state: web::Data<AppState>, admin: Admin, id: web::Path<OrderId>) -> Result<HttpResponse, PageError> {
    let details = details(&state, id.into_inner()).await?;
    if let Some(back) = refused_page(&admin, &details) {
        return Ok(back);
    }
    render(&FormPage {
        layout: admin.layout(Section::Orders),
        details,
        form: RefundForm::default(),
        errors: FormErrors::default(),
        currency: state.config.currency,
    })
}

/// Checks the form: its mistakes on the form again (422), or the confirmation page.
async fn review(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<OrderId>,
    CsrfForm(form): CsrfForm<RefundForm>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let details = details(&state, id).await?;
    if let Some(back) = refused_page(&admin, &details) {
        return Ok(back);
    }
    let currency = state.config.currency;
    let request = match form.check(&details, currency) {
        Ok(request) => request,
        Err(errors) => {
            return render_with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &FormPage { layout: admin.layout(Section::Orders), details, form, errors, currency },
            );
        }
    };
    render(&confirmation(admin.layout(Section::Orders), &details, &request, currency))
}

/// "Refund €25.80 to visa •••• 4242?", what goes back to stock, what the order becomes.
fn confirmation(layout: Layout, details: &OrderDetails, request: &RefundRequest, currency: Currency) -> Confirmation {
    let order = &details.order;
    let number = order.display_number();
    let (refunded, remaining) = details.refunded_and_remaining();
    let chosen: Vec<(&OrderLine, i64)> = match request {
        RefundRequest::Amount(_) => Vec::new(),
        RefundRequest::Lines(asked) => asked
            .iter()
            .filter_map(|(product, units)| {
                details.lines.iter().find(|line| line.product_id == *product).map(|line| (line, *units))
            })
            .collect(),
    };
    let amount = match request {
        RefundRequest::Amount(amount) => *amount,
        RefundRequest::Lines(_) => chosen.iter().map(|(line, units)| line.unit_price_minor * units).sum(),
    };
    let completes = amount == remaining;
    let mut consequences = Vec::new();
    if order.has_shipped() {
        consequences.push("It has shipped: stock is not taken back; record returned goods as a receipt.".to_owned());
    } else if completes {
        let held = details.all_units_left();
        consequences.push(format!(
            "This refunds all that is left: the {held} {} still reserved for it {} back to stock.",
            if held == 1 { "unit" } else { "units" },
            if held == 1 { "goes" } else { "go" }
        ));
    } else if chosen.is_empty() {
        consequences.push("No goods go back to stock.".to_owned());
    } else {
        for (line, units) in &chosen {
            consequences.push(format!(
                "{units} × {} ({}) {} back to stock.",
                line.name,
                line.sku,
                if *units == 1 { "goes" } else { "go" }
            ));
        }
    }
    consequences.push(if completes {
        format!("Order {number} becomes refunded.")
    } else {
        format!(
            "Order {number} becomes partially refunded: {} of {} refunded, {} left.",
            currency.format(refunded + amount),
            currency.format(order.total_minor),
            currency.format(remaining - amount)
        )
    });
    consequences.push(format!("{} is e-mailed about this refund.", details.customer.email));
    let mut fields = vec![("status", order.status.as_str().to_owned()), ("refunded", refunded.to_string())];
    match request {
        RefundRequest::Amount(amount) => fields.push(("amount_minor", amount.to_string())),
        RefundRequest::Lines(asked) => fields.push((
            "lines",
            asked.iter().map(|(product, units)| format!("{product}:{units}")).collect::<Vec<_>>().join(","),
        )),
    }
    Confirmation {
        layout,
        question: format!("Refund {} to {}?", currency.format(amount), paid_card(details)),
        consequences,
        action: format!("/admin/orders/{}/refunds", order.id),
        fields,
        button: "Refund".to_owned(),
        danger: true,
        back: format!("/admin/orders/{}", order.id),
    }
}

/// The confirmation's post: what was seen, and what to refund (as the confirmation wrote it).
#[derive(Deserialize)]
struct RefundAction {
    csrf_token: String,
    status: Option<String>,
    refunded: Option<String>,
    #[serde(default)]
    amount_minor: String,
    #[serde(default)]
    lines: String,
}

impl CsrfProtected for RefundAction {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

impl RefundAction {
    /// The refund the confirmation stated; a post no confirmation page wrote is a 400 or a 422.
    fn request(&self) -> Result<RefundRequest, AppError> {
        let amount = match self.amount_minor.trim() {
            "" => None,
            text => Some(text.parse::<i64>().map_err(|_| AppError::bad_request("amount_minor must be a number"))?),
        };
        let lines = match self.lines.trim() {
            "" => None,
            text => Some(
                text.split(',')
                    .map(|pair| {
                        let (product, units) = pair.split_once(':')?;
                        Some((product.parse::<ProductId>().ok()?, units.parse::<i64>().ok()?))
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| AppError::bad_request("lines must be product:units pairs"))?,
            ),
        };
        RefundRequest::parse(amount, lines.as_deref()).map_err(AppError::validation)
    }
}

async fn refund(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<OrderId>,
    CsrfForm(form): CsrfForm<RefundAction>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let seen = seen_status(form.status.as_deref())?;
    let seen_refunded = seen_refunded(form.refunded.as_deref())?;
    let request = form.request()?;
    let outcome = state
        .db
        .run(Module::Orders.op("admin_refund_part"), move |conn| {
            conn.transaction(|conn| -> Result<Result<RefundOutcome, Refused>, OrdersError> {
                // Locked first, so nothing changes it between this check and the refund.
                let current = super::store::lock_order(conn, id)?.ok_or(OrdersError::NotFound(id))?;
                if let Some(refused) = Refused::check_seen(conn, &current, seen, seen_refunded)? {
                    return Ok(Err(refused));
                }
                match super::refund_part(conn, id, &request) {
                    Ok(outcome) => Ok(Ok(outcome)),
                    Err(OrdersError::IllegalTransition { number, status, .. }) => {
                        Ok(Err(Refused::Illegal { number, now: status }))
                    }
                    Err(other) => Err(other),
                }
            })
        })
        .await?;
    let currency = state.config.currency;
    match outcome {
        Ok(outcome) => admin.flash(format!(
            "{} refunded for order {}.{}",
            currency.format(outcome.refund.amount_minor),
            outcome.order.display_number(),
            if outcome.order.status == OrderStatus::Refunded { " It is refunded in full." } else { "" }
        )),
        Err(refused) => refused.warn(&admin, Action::RefundPart, currency),
    }
    Ok(see_other(&format!("/admin/orders/{id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confirmation_writes_lines_as_the_action_reads_them() {
        let mug = ProductId::new();
        let cap = ProductId::new();
        let action = RefundAction {
            csrf_token: String::new(),
            status: None,
            refunded: None,
            amount_minor: String::new(),
            lines: format!("{mug}:2,{cap}:1"),
        };
        assert_eq!(action.request().unwrap(), RefundRequest::Lines(vec![(mug, 2), (cap, 1)]));
        let forged = RefundAction { lines: "nonsense".into(), ..action };
        assert_eq!(forged.request().unwrap_err().status(), StatusCode::BAD_REQUEST);
    }
}
