//! Checkout, keyed by the cart: name, e-mail and card on one page; the order is placed through
//! the orders module and paid through it, as the API does. One cart revision places at most
//! one order: a second submit, or paying again after a declined card, pays the order already
//! placed instead of placing another. An order's status page follows.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::cart::EXPIRED_FORM;
use super::page::{FormErrors, ShopError, ShopLayout, render_with_status, see_other};
use super::pages::{LineShown, total};
use super::picture::placeholder;
use super::shopper::Shopper;
use super::store::{self, Cart};
use crate::error::AppError;
use crate::events::CancelledBy;
use crate::http::state::AppState;
use crate::ids::OrderId;
use crate::inventory::{InventoryError, Shortage};
use crate::kernel::Module;
use crate::orders::{self, Order, OrderDetails, OrderStatus, OrdersError, PaymentAttempt, PlaceOrder};
use crate::payments::{Card, CardGateway, DeclineCode};

/// What the checkout form holds, as typed. No `Debug`: it holds a whole card number, which must
/// never reach a log line.
#[derive(Default, Deserialize)]
pub struct CheckoutForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    card_number: String,
    #[serde(default)]
    exp_month: String,
    #[serde(default)]
    exp_year: String,
    #[serde(default)]
    cvc: String,
}

#[derive(Template)]
#[template(path = "storefront/templates/checkout.html")]
struct CheckoutPage<'a> {
    layout: ShopLayout,
    lines: Vec<LineShown>,
    total: String,
    csrf_token: String,
    form: &'a CheckoutForm,
    errors: FormErrors,
    /// The order placed from this cart and waiting for payment, if any.
    awaiting: Option<String>,
    /// Some line cannot be bought as it is.
    blocked: bool,
}

/// The cart as checkout sees it: lines with their problems, and the order awaiting payment.
struct CartState {
    lines: Vec<LineShown>,
    awaiting: Option<String>,
}

fn cart_state(
    conn: &mut diesel::PgConnection,
    digest: &[u8],
    currency: crate::money::Currency,
) -> Result<Option<CartState>, AppError> {
    let Some(cart) = store::find_cart(conn, digest)? else { return Ok(None) };
    if cart.closed_at.is_some() {
        return Ok(None);
    }
    // An unpaid order of this cart holds its stock; placing the cart gives that back first.
    let unpaid = match cart.order_id {
        Some(order_id) => {
            Some(orders::find_order(conn, order_id)?).filter(|order| order.status == OrderStatus::PendingPayment)
        }
        None => None,
    };
    let lines = store::cart_lines(conn, cart.id)?
        .into_iter()
        .map(|line| LineShown::new(line, currency, unpaid.is_some()))
        .collect();
    let awaiting = unpaid.filter(|order| cart.current_order() == Some(order.id)).map(|order| order.display_number());
    Ok(Some(CartState { lines, awaiting }))
}

/// The shopper's open cart as checkout shows it, unless it is empty.
async fn open_cart(state: &AppState, digest: [u8; 32]) -> Result<Option<CartState>, AppError> {
    let currency = state.config.currency;
    let cart =
        state.db.run(Module::Storefront.op("show_checkout"), move |conn| cart_state(conn, &digest, currency)).await?;
    Ok(cart.filter(|cart| !cart.lines.is_empty()))
}

fn page<'a>(
    state: &AppState,
    shopper: &Shopper,
    cart: CartState,
    form: &'a CheckoutForm,
    errors: FormErrors,
) -> CheckoutPage<'a> {
    CheckoutPage {
        layout: ShopLayout::default(),
        total: state.config.currency.format(total(&cart.lines)),
        blocked: cart.lines.iter().any(|line| line.problem.is_some()),
        lines: cart.lines,
        csrf_token: shopper.csrf_token(state.keys.cookies.signing()),
        form,
        errors,
        awaiting: cart.awaiting,
    }
}

pub async fn show(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ShopError> {
    let shopper = Shopper::of(&request);
    if !shopper.has_cookie() {
        return Ok(see_other("/cart"));
    }
    let digest = shopper.digest();
    let cart = open_cart(&state, digest).await?;
    match cart {
        None => Ok(see_other("/cart")),
        Some(cart) => render_with_status(
            StatusCode::OK,
            &page(&state, &shopper, cart, &CheckoutForm::default(), FormErrors::default()),
        ),
    }
}

/// Every field checked at once, each error under the form's own field name.
fn validate(form: &CheckoutForm) -> Result<(String, String, Card), FormErrors> {
    let mut errors = FormErrors::default();
    // The orders module's own rules for the customer, so that what passes here passes checkout.
    if let Err(message) = orders::CUSTOMER_NAME.check(&form.name) {
        errors.push("name", message);
    }
    if let Err(message) = orders::CustomerEmail::parse(&form.email) {
        errors.push("email", message);
    }
    let whole = |text: &str| text.trim().parse::<i64>().unwrap_or(-1);
    let card =
        match Card::parse(form.card_number.trim(), whole(&form.exp_month), whole(&form.exp_year), form.cvc.trim()) {
            Ok(card) => Some(card),
            Err(problems) => {
                for problem in problems {
                    let field = match problem.field.as_str() {
                        "card.number" => "card_number",
                        "card.exp_month" => "exp_month",
                        "card.exp_year" => "exp_year",
                        _ => "cvc",
                    };
                    errors.push(field, problem.message);
                }
                None
            }
        };
    match card {
        Some(card) if errors.is_empty() => Ok((form.name.trim().to_owned(), form.email.trim().to_owned(), card)),
        _ => Err(errors),
    }
}

/// What placing (or finding) the cart's order came to.
enum Placing {
    /// The order to pay.
    Pay(OrderId),
    /// The cart's order is paid already (a second submit): its status page.
    Done(String),
    /// Nothing in the cart.
    Empty,
    /// Not enough stock for these lines: nothing was placed.
    Short(Vec<Shortage>),
}

pub async fn submit(
    state: web::Data<AppState>,
    gateway: web::Data<dyn CardGateway>,
    request: HttpRequest,
    form: web::Form<CheckoutForm>,
) -> Result<HttpResponse, ShopError> {
    let shopper = Shopper::of(&request);
    if !shopper.verify_csrf(state.keys.cookies.signing(), &form.csrf_token) {
        return Err(AppError::forbidden(EXPIRED_FORM).into());
    }
    let address = crate::http::client::client_address(&request, &state.config.trusted_proxies);
    let limit = state.config.shop.checkouts_per_minute;
    let attempts = state
        .db
        .run(Module::Storefront.op("count_checkout_attempt"), move |conn| store::count_checkout_attempt(conn, &address))
        .await?;
    if attempts > limit as i32 {
        let mut response = actix_web::ResponseError::error_response(&ShopError(AppError::too_many_requests(
            "Too many checkout attempts from your address. Wait a minute, then try again.",
        )));
        response
            .headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, actix_web::http::header::HeaderValue::from_static("60"));
        return Ok(response);
    }

    let digest = shopper.digest();
    let currency = state.config.currency;
    let form = form.into_inner();
    let (name, email, card) = match validate(&form) {
        Ok(valid) => valid,
        Err(errors) => {
            let cart = open_cart(&state, digest).await?;
            let Some(cart) = cart else { return Ok(see_other("/cart")) };
            return render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page(&state, &shopper, cart, &form, errors));
        }
    };

    let placing = state
        .db
        .run(Module::Storefront.op("place_cart_order"), move |conn| {
            diesel::Connection::transaction(conn, |conn| place(conn, &digest, &name, &email, currency))
        })
        .await?;
    let order_id = match placing {
        Placing::Empty => return Ok(see_other("/cart")),
        Placing::Done(token) => return Ok(see_other(&format!("/orders/{token}?confirmation"))),
        Placing::Short(shortages) => {
            let cart = open_cart(&state, digest).await?;
            let Some(mut cart) = cart else { return Ok(see_other("/cart")) };
            // The lines say what is left as of the refusal, whatever the cart read just now.
            for shortage in shortages {
                if let Some(shown) = cart.lines.iter_mut().find(|shown| shown.line.product_id == shortage.product_id) {
                    shown.problem = Some(match shortage.available {
                        ..=0 => "Sold out. Remove it to check out.".to_owned(),
                        left => format!("Only {left} left. Lower the quantity to check out."),
                    });
                }
            }
            let mut errors = FormErrors::default();
            errors.push(
                "lines",
                "Some items are no longer available in the quantity you asked for. Nothing was ordered or charged.",
            );
            return render_with_status(StatusCode::CONFLICT, &page(&state, &shopper, cart, &form, errors));
        }
        Placing::Pay(order_id) => order_id,
    };

    let gateway = gateway.into_inner();
    let paid = state
        .db
        .run(Module::Storefront.op("pay_cart_order"), move |conn| {
            diesel::Connection::transaction(conn, |conn| pay(conn, gateway.as_ref(), &digest, order_id, &card))
        })
        .await?;
    match paid {
        Paid::Paid(token) => Ok(see_other(&format!("/orders/{token}?confirmation"))),
        Paid::Declined(code) => {
            let cart = open_cart(&state, digest).await?;
            let Some(cart) = cart else { return Ok(see_other("/cart")) };
            let mut errors = FormErrors::default();
            errors.push(
                "card_number",
                format!(
                    "{} Nothing was charged; your items stay reserved. Try another card.",
                    DeclineCode::describe(&code)
                ),
            );
            render_with_status(StatusCode::PAYMENT_REQUIRED, &page(&state, &shopper, cart, &form, errors))
        }
    }
}

/// Places the cart's order, unless the cart as it is has one already. Runs in one transaction
/// with the cart locked, so that two submits of one cart place one order.
fn place(
    conn: &mut diesel::PgConnection,
    digest: &[u8],
    name: &str,
    email: &str,
    currency: crate::money::Currency,
) -> Result<Placing, AppError> {
    let Some(cart) = store::lock_cart(conn, digest)? else { return Ok(Placing::Empty) };
    if cart.closed_at.is_some() {
        return spent(conn, &cart);
    }
    if let Some(order_id) = cart.order_id {
        let order = orders::find_order(conn, order_id)?;
        match order.status {
            OrderStatus::PendingPayment if cart.current_order().is_some() => return Ok(Placing::Pay(order_id)),
            // Placed from an older revision of the cart: its reservation gives way to the new order.
            OrderStatus::PendingPayment => {
                orders::cancel(conn, order_id, CancelledBy::Customer)?;
            }
            OrderStatus::Cancelled => {}
            // Paid (through the API, say) but the cart not closed: it is spent all the same.
            _ => {
                store::close(conn, cart.id)?;
                return Ok(Placing::Done(order.status_token));
            }
        }
    }
    let lines = store::cart_lines(conn, cart.id)?;
    if lines.is_empty() {
        return Ok(Placing::Empty);
    }
    let items: Vec<_> = lines.iter().map(|line| (line.product_id, i64::from(line.quantity))).collect();
    let request = PlaceOrder::new(email, name, &items).map_err(AppError::validation)?;
    match orders::place_order(conn, &request, currency) {
        Ok(placed) => {
            store::set_order(conn, &cart, placed.order.id)?;
            Ok(Placing::Pay(placed.order.id))
        }
        Err(OrdersError::Stock(InventoryError::Insufficient(shortages))) => Ok(Placing::Short(shortages)),
        Err(OrdersError::ProductsNotSold(_)) => Err(AppError::conflict(
            "product-not-sold",
            "Your cart holds a product that is no longer sold. Remove it from your cart, then check out.",
        )),
        Err(error) => Err(error.into()),
    }
}

fn spent(conn: &mut diesel::PgConnection, cart: &Cart) -> Result<Placing, AppError> {
    match cart.order_id {
        Some(order_id) => Ok(Placing::Done(orders::find_order(conn, order_id)?.status_token)),
        None => Ok(Placing::Empty),
    }
}

enum Paid {
    /// The order's status page token.
    Paid(String),
    Declined(String),
}

/// Pays the cart's order; a paid order closes the cart in the same transaction.
fn pay(
    conn: &mut diesel::PgConnection,
    gateway: &dyn CardGateway,
    digest: &[u8],
    order_id: OrderId,
    card: &Card,
) -> Result<Paid, AppError> {
    match orders::pay(conn, gateway, order_id, card) {
        Ok(PaymentAttempt::Succeeded { order, .. }) => {
            if let Some(cart) = store::find_cart(conn, digest)? {
                store::close(conn, cart.id)?;
            }
            Ok(Paid::Paid(order.status_token))
        }
        Ok(PaymentAttempt::Declined { payment, .. }) => Ok(Paid::Declined(payment.decline_code.unwrap_or_default())),
        // Another submit of this checkout paid it first: one order, one charge.
        Err(OrdersError::IllegalTransition { status, .. }) if status != OrderStatus::Cancelled => {
            Ok(Paid::Paid(orders::find_order(conn, order_id)?.status_token))
        }
        Err(OrdersError::IllegalTransition { .. }) => Err(AppError::conflict(
            "order-cancelled",
            "This order was cancelled before it was paid (it waited too long for payment). Check out again.",
        )),
        Err(error) => Err(error.into()),
    }
}

#[derive(Template)]
#[template(path = "storefront/templates/order.html")]
struct StatusPage {
    layout: ShopLayout,
    details: OrderDetails,
    number: String,
    status: &'static str,
    total: String,
    lines: Vec<(String, String, String, i32, String, String)>,
    history: Vec<(String, &'static str)>,
    confirmation: bool,
}

fn status_label(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::PendingPayment => "Waiting for payment",
        OrderStatus::Paid => "Paid",
        OrderStatus::Shipped => "Shipped",
        OrderStatus::Cancelled => "Cancelled",
        OrderStatus::Refunded => "Refunded",
        OrderStatus::PartiallyRefunded => "Partly refunded",
    }
}

fn event_label(event_type: &str) -> Option<&'static str> {
    Some(match event_type {
        "OrderPlaced" => "Order placed",
        "PaymentFailed" => "A payment was declined",
        "PaymentSucceeded" => "Paid",
        "OrderShipped" => "Shipped",
        "OrderCancelled" => "Cancelled",
        "OrderRefunded" => "Refunded",
        _ => return None,
    })
}

pub async fn status(
    state: web::Data<AppState>,
    request: HttpRequest,
    token: web::Path<String>,
) -> Result<HttpResponse, ShopError> {
    let token = token.into_inner();
    let well_formed =
        (20..=100).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let not_found =
        || ShopError(AppError::not_found("This link opens no order. Check that it was copied whole from the e-mail."));
    if !well_formed {
        return Err(not_found());
    }
    let details = state
        .db
        .run(Module::Storefront.op("order_status"), move |conn| orders::order_for_status_page(conn, &token))
        .await?
        .ok_or_else(not_found)?;
    let currency = crate::money::Currency::parse(&details.order.currency).unwrap_or(state.config.currency);
    let order: &Order = &details.order;
    let page = StatusPage {
        layout: ShopLayout::default(),
        number: order.display_number(),
        status: status_label(order.status),
        total: currency.format(order.total_minor),
        lines: details
            .lines
            .iter()
            .map(|line| {
                (
                    placeholder(&line.sku, &line.name),
                    line.name.clone(),
                    line.sku.clone(),
                    line.quantity,
                    currency.format(line.unit_price_minor),
                    currency.format(line.line_total_minor),
                )
            })
            .collect(),
        history: details
            .events
            .iter()
            .filter_map(|event| {
                Some((event.created_at.format("%Y-%m-%d %H:%M UTC").to_string(), event_label(&event.event_type)?))
            })
            .collect(),
        confirmation: request.query_string() == "confirmation" && order.status != OrderStatus::PendingPayment,
        details,
    };
    render_with_status(StatusCode::OK, &page)
}
