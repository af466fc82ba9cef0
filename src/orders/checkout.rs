//! Placing an order: one ACID transaction across four modules' tables. Prices come straight
//! from `products`, the customer is upserted, the order and its lines are inserted,
//! `OrderPlaced` is appended to the outbox and stock is reserved through the inventory module.
//! Either all of it commits or none of it does.

use diesel::prelude::*;

use super::model::{Customer, CustomerEmail, Order, OrderLine};
use super::{OrdersError, snapshot, store};
use crate::error::FieldError;
use crate::events::{DomainEvent, OrderPlaced, PayloadVersion};
use crate::ids::{OrderId, ProductId};
use crate::input::{Text, Whole};
use crate::inventory::{self, StockLine};
use crate::kernel::Module;
use crate::money::Currency;
use crate::outbox;

pub const MAX_LINES: usize = 50;
pub const QUANTITY: Whole = Whole::between(1, 1000);
/// The customer's name as it appears on the order and in e-mails: one line.
pub const CUSTOMER_NAME: Text = Text::line(200);

/// A validated order request: lines merged by product, in the order first seen.
#[derive(Clone, Debug)]
pub struct PlaceOrder {
    pub email: CustomerEmail,
    pub name: String,
    pub items: Vec<(ProductId, i32)>,
}

impl PlaceOrder {
    /// Checks the request and reports every invalid field (`customer.email`, `items[2].quantity`).
    pub fn new(email: &str, name: &str, items: &[(ProductId, i64)]) -> Result<PlaceOrder, Vec<FieldError>> {
        let mut errors = Vec::new();
        let email =
            CustomerEmail::parse(email).map_err(|message| errors.push(FieldError::new("customer.email", message))).ok();
        let name =
            CUSTOMER_NAME.check(name).map_err(|message| errors.push(FieldError::new("customer.name", message))).ok();
        if items.is_empty() || items.len() > MAX_LINES {
            errors.push(FieldError::new("items", format!("must have 1 to {MAX_LINES} lines")));
        }
        // Lines naming the same product are merged: at most 50 x 1000 units, which fits an i32.
        let mut merged: Vec<(ProductId, i64)> = Vec::new();
        for (index, (product_id, quantity)) in items.iter().enumerate() {
            if let Err(message) = QUANTITY.check(*quantity) {
                errors.push(FieldError::new(format!("items[{index}].quantity"), message));
                continue;
            }
            match merged.iter_mut().find(|(seen, _)| seen == product_id) {
                Some((_, total)) => *total += quantity,
                None => merged.push((*product_id, *quantity)),
            }
        }
        match email {
            Some(email) if errors.is_empty() => Ok(PlaceOrder {
                email,
                name: name.unwrap_or_default().to_owned(),
                items: merged.into_iter().map(|(product_id, quantity)| (product_id, quantity as i32)).collect(),
            }),
            _ => Err(errors),
        }
    }
}

/// What checkout produced.
#[derive(Clone, Debug)]
pub struct PlacedOrder {
    pub order: Order,
    pub customer: Customer,
    pub lines: Vec<OrderLine>,
}

pub fn place_order(
    conn: &mut PgConnection,
    request: &PlaceOrder,
    currency: Currency,
) -> Result<PlacedOrder, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    conn.transaction(|conn| {
        let product_ids: Vec<ProductId> = request.items.iter().map(|(id, _)| *id).collect();
        let (products, drawn) = store::priced_products(conn, &product_ids)?;

        let (mut unknown, mut not_sold) = (Vec::new(), Vec::new());
        let mut lines = Vec::with_capacity(request.items.len());
        // Beside the lines, for the event: its snapshot describes each line's product.
        let mut descriptions = Vec::with_capacity(request.items.len());
        let order_id = OrderId::new();
        let status_token = new_status_token();
        for (index, (product_id, quantity)) in request.items.iter().enumerate() {
            match products.iter().find(|product| product.id == *product_id) {
                None => unknown.push(FieldError::new(format!("items[{index}].product_id"), "no such product")),
                Some(product) if !product.active => not_sold.push(FieldError::new(
                    format!("items[{index}].product_id"),
                    format!("{} is no longer sold", product.sku),
                )),
                Some(product) => {
                    let line_total = product.price_minor.checked_mul(i64::from(*quantity)).ok_or_else(|| {
                        OrdersError::Invalid(vec![FieldError::new(
                            format!("items[{index}].quantity"),
                            "total too large",
                        )])
                    })?;
                    lines.push(OrderLine {
                        order_id,
                        line_no: index as i16 + 1,
                        product_id: *product_id,
                        sku: product.sku.clone(),
                        name: product.name.clone(),
                        unit_price_minor: product.price_minor,
                        quantity: *quantity,
                        line_total_minor: line_total,
                    });
                    descriptions.push(product.description.as_str());
                }
            }
        }
        if !unknown.is_empty() {
            return Err(OrdersError::UnknownProducts(unknown));
        }
        if !not_sold.is_empty() {
            return Err(OrdersError::ProductsNotSold(not_sold));
        }
        let total = lines
            .iter()
            .try_fold(0i64, |sum, line| sum.checked_add(line.line_total_minor))
            .ok_or_else(|| OrdersError::Invalid(vec![FieldError::new("items", "the order total is too large")]))?;

        // Everything the event tells was just read, drawn or computed here: no query for it, and
        // it is written by the statement that writes the order.
        let placed = snapshot::Placed {
            number: drawn.number,
            placed_at: drawn.placed_at,
            total_minor: total,
            currency: currency.code(),
            status_token: &status_token,
        };
        let event = DomainEvent::from(OrderPlaced {
            version: PayloadVersion::CURRENT,
            order_id,
            number: crate::ids::OrderNumber(drawn.number).to_string(),
            total_minor: total,
            currency: currency.code().to_owned(),
            order: snapshot::of_parts(
                &placed,
                (&request.name, request.email.as_str()),
                lines.iter().zip(descriptions.iter().copied()),
            ),
        });
        let new_order = store::NewOrder {
            id: order_id,
            number: drawn.number,
            email: request.email.as_str(),
            name: &request.name,
            total_minor: total,
            currency: currency.code(),
            status_token: &status_token,
        };
        let order = store::insert_placed_order(conn, &new_order, &lines, outbox::Publication::of(&event))?;
        let customer =
            Customer { id: order.customer_id, email: request.email.as_str().to_owned(), name: request.name.clone() };
        // Stock last. Every buyer of a product needs its stock row, so that lock is the contended
        // one: taken by the statement before COMMIT, it is held for two round trips. An order
        // refused for want of stock has drawn its number already, leaving a gap in the numbering
        // (as every refused or rolled-back checkout does).
        let stock: Vec<StockLine> =
            lines.iter().map(|line| StockLine { product_id: line.product_id, quantity: line.quantity }).collect();
        inventory::reserve(conn, order_id, &stock)?;
        Ok(PlacedOrder { order, customer, lines })
    })
}

/// 256 random bits, URL-safe: the link to an order's status page cannot be guessed.
fn new_status_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(n: u128) -> ProductId {
        ProductId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn duplicate_lines_are_merged_in_first_seen_order() {
        let order = PlaceOrder::new("a@b.co", "Ada", &[(product(2), 1), (product(1), 2), (product(2), 3)]).unwrap();
        assert_eq!(order.items, vec![(product(2), 4), (product(1), 2)]);
    }

    #[test]
    fn every_rule_is_checked() {
        let errors = PlaceOrder::new("nope", "", &[(product(1), 0), (product(2), 1001)]).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(fields, vec!["customer.email", "customer.name", "items[0].quantity", "items[1].quantity"]);
        assert!(PlaceOrder::new("a@b.co", "Ada", &[]).is_err());
        let many: Vec<_> = (0..51).map(|n| (product(n), 1)).collect();
        assert!(PlaceOrder::new("a@b.co", "Ada", &many).is_err());
        // Each line obeys the schema's bound; merged, they may add up past it.
        let merged = PlaceOrder::new("a@b.co", "Ada", &[(product(1), 600), (product(1), 600)]).unwrap();
        assert_eq!(merged.items, vec![(product(1), 1200)]);
        let hostile = PlaceOrder::new("a@b.co", "Ada\r\nBcc: x@evil.example", &[(product(1), 1)]).unwrap_err();
        assert_eq!(hostile[0].field, "customer.name");
    }
}
