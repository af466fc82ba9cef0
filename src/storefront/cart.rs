//! The cart: shown with current prices and stock, and changed one form post at a time.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::page::{ShopError, ShopLayout, render_with_status, see_other};
use super::pages::{LineShown, total};
use super::shopper::Shopper;
use super::store;
use crate::error::AppError;
use crate::http::state::AppState;
use crate::ids::ProductId;
use crate::kernel::Module;
use crate::orders::OrderStatus;

/// The most of one product a cart line holds (as an order line does).
pub const MAX_QUANTITY: i32 = 1000;
/// The most products a cart holds (as an order does).
pub const MAX_LINES: i64 = crate::orders::MAX_LINES as i64;

/// What a form post with a missing or wrong CSRF token is told.
pub const EXPIRED_FORM: &str =
    "This form has expired or did not come from this shop. Go back, reload the page and try again.";

#[derive(Template)]
#[template(path = "storefront/templates/cart.html")]
struct CartPage {
    layout: ShopLayout,
    lines: Vec<LineShown>,
    total: String,
    csrf_token: String,
    /// Some line cannot be bought as it is.
    blocked: bool,
}

pub async fn show(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ShopError> {
    let shopper = Shopper::of(&request);
    let lines = if shopper.has_cookie() {
        let digest = shopper.digest();
        state
            .db
            .run(Module::Storefront.op("show_cart"), move |conn| {
                let Some(cart) = store::find_cart(conn, &digest)? else { return Ok(None) };
                if cart.closed_at.is_some() {
                    return Ok(None);
                }
                // An order placed from this cart and still unpaid holds stock for it (checkout
                // gives that back before placing the cart as it is now): what is left for others
                // says nothing of this cart then.
                let held = match cart.order_id {
                    Some(order_id) => crate::orders::find_order(conn, order_id)?.status == OrderStatus::PendingPayment,
                    None => false,
                };
                Ok::<_, AppError>(Some((held, store::cart_lines(conn, cart.id)?)))
            })
            .await?
    } else {
        None
    };
    let currency = state.config.currency;
    let lines: Vec<LineShown> = match lines {
        None => Vec::new(),
        Some((held, lines)) => lines.into_iter().map(|line| LineShown::new(line, currency, held)).collect(),
    };
    let page = CartPage {
        layout: ShopLayout::default(),
        total: currency.format(total(&lines)),
        blocked: lines.iter().any(|line| line.problem.is_some()),
        lines,
        csrf_token: shopper.csrf_token(state.keys.cookies.signing()),
    };
    let mut response = render_with_status(StatusCode::OK, &page)?;
    shopper.attach(&mut response, state.config.cookie_secure);
    Ok(response)
}

#[derive(Deserialize)]
pub struct AddForm {
    csrf_token: String,
    product_id: String,
    quantity: String,
}

#[derive(Deserialize)]
pub struct QuantityForm {
    csrf_token: String,
    quantity: String,
}

#[derive(Deserialize)]
pub struct ButtonForm {
    csrf_token: String,
}

fn check_csrf(state: &AppState, shopper: &Shopper, presented: &str) -> Result<(), ShopError> {
    if shopper.verify_csrf(state.keys.cookies.signing(), presented) {
        Ok(())
    } else {
        Err(AppError::forbidden(EXPIRED_FORM).into())
    }
}

fn parse_quantity(text: &str, least: i32) -> Result<i32, ShopError> {
    match text.trim().parse::<i32>() {
        Ok(quantity) if (least..=MAX_QUANTITY).contains(&quantity) => Ok(quantity),
        _ => Err(AppError::unprocessable(
            "invalid-quantity",
            format!("The quantity must be a whole number from {least} to {MAX_QUANTITY}."),
        )
        .into()),
    }
}

/// What adding to a cart came to.
enum Added {
    Done,
    /// The cart's order is paid: the item belongs in a new cart.
    CartSpent,
}

pub async fn add(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<AddForm>,
) -> Result<HttpResponse, ShopError> {
    let shopper = Shopper::of(&request);
    check_csrf(&state, &shopper, &form.csrf_token)?;
    let product_id: ProductId =
        form.product_id.trim().parse().map_err(|_| AppError::not_found("There is no such product in the shop."))?;
    let quantity = parse_quantity(&form.quantity, 1)?;
    let attempt = |shopper: &Shopper| {
        let digest = shopper.digest();
        state.db.run(Module::Storefront.op("add_to_cart"), move |conn| {
            diesel::Connection::transaction(conn, |conn| add_line(conn, &digest, product_id, quantity))
        })
    };
    match attempt(&shopper).await? {
        Added::Done => Ok(see_other("/cart")),
        // The cart's order was paid: the item starts the shopper's next cart.
        Added::CartSpent => {
            let next = Shopper::new();
            attempt(&next).await?;
            let mut response = see_other("/cart");
            next.attach(&mut response, state.config.cookie_secure);
            Ok(response)
        }
    }
}

fn add_line(
    conn: &mut diesel::PgConnection,
    digest: &[u8],
    product_id: ProductId,
    quantity: i32,
) -> Result<Added, AppError> {
    let cart = store::cart_for_change(conn, digest)?;
    if cart.closed_at.is_some() {
        return Ok(Added::CartSpent);
    }
    let Some(product) = store::sellable(conn, product_id)? else {
        return Err(AppError::not_found("There is no such product in the shop."));
    };
    if !product.active {
        return Err(AppError::conflict("product-not-sold", "This product is no longer sold."));
    }
    if store::line_count(conn, cart.id)? >= MAX_LINES
        && !store::cart_lines(conn, cart.id)?.iter().any(|line| line.product_id == product_id)
    {
        return Err(AppError::unprocessable(
            "cart-full",
            format!("A cart holds at most {MAX_LINES} different products."),
        ));
    }
    store::add_line(conn, cart.id, product_id, quantity, product.price_minor, MAX_QUANTITY)?;
    Ok(Added::Done)
}

pub async fn change(
    state: web::Data<AppState>,
    request: HttpRequest,
    product_id: web::Path<ProductId>,
    form: web::Form<QuantityForm>,
) -> Result<HttpResponse, ShopError> {
    let quantity = parse_quantity(&form.quantity, 0)?;
    edit_line(&state, &request, product_id.into_inner(), &form.csrf_token, Some(quantity)).await
}

pub async fn remove(
    state: web::Data<AppState>,
    request: HttpRequest,
    product_id: web::Path<ProductId>,
    form: web::Form<ButtonForm>,
) -> Result<HttpResponse, ShopError> {
    edit_line(&state, &request, product_id.into_inner(), &form.csrf_token, None).await
}

/// Sets the quantity of a line of the shopper's cart (`Some(0)` removes it; a line the cart does
/// not have is a 404), or removes it (`None`: removing what is not there leaves the cart as the
/// shopper wanted it), with the cart's row locked and its revision bumped.
async fn edit_line(
    state: &AppState,
    request: &HttpRequest,
    product_id: ProductId,
    csrf_token: &str,
    quantity: Option<i32>,
) -> Result<HttpResponse, ShopError> {
    let shopper = Shopper::of(request);
    check_csrf(state, &shopper, csrf_token)?;
    let digest = shopper.digest();
    let operation = if quantity.is_some() { "change_cart_line" } else { "remove_cart_line" };
    state
        .db
        .run(Module::Storefront.op(operation), move |conn| {
            diesel::Connection::transaction(conn, |conn| {
                let Some(cart) = store::open_cart_for_change(conn, &digest)? else {
                    return Err(AppError::not_found("Your cart is empty: there is nothing to change."));
                };
                let changed = match quantity {
                    Some(quantity) if quantity > 0 => store::set_quantity(conn, cart.id, product_id, quantity)?,
                    Some(_) => store::remove_line(conn, cart.id, product_id)?,
                    None => return Ok(store::remove_line(conn, cart.id, product_id).map(|_| ())?),
                };
                if changed == 0 {
                    return Err(AppError::not_found("That product is not in your cart."));
                }
                Ok(())
            })
        })
        .await?;
    Ok(see_other("/cart"))
}
