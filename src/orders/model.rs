//! Orders, their lines and their customers; the status machine; the values orders are made of.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use crate::input::Pattern;

use crate::ids::{CustomerId, OrderId, OrderNumber, ProductId, RefundId};
use crate::text_enum::text_enum;

text_enum! {
    pub enum OrderStatus {
        PendingPayment = "pending_payment",
        Paid = "paid",
        Shipped = "shipped",
        PartiallyRefunded = "partially_refunded",
        Cancelled = "cancelled",
        Refunded = "refunded",
    }
}

impl OrderStatus {
    /// The lifecycle: pending_payment -> paid -> shipped; pending_payment -> cancelled;
    /// paid | shipped -> refunded, through partially_refunded while the refunds add up to less
    /// than was captured. Refunding a part keeps the money's side of the story in the status, so
    /// a partially refunded order that has not shipped can still be shipped, and stays
    /// partially_refunded (`shipped` tells the two apart). Everything else is refused.
    pub fn after(self, shipped: bool, action: Action) -> Option<OrderStatus> {
        use OrderStatus::*;
        match (self, action) {
            (PendingPayment, Action::Pay) => Some(Paid),
            (PendingPayment, Action::Cancel) => Some(Cancelled),
            (Paid, Action::Ship) => Some(Shipped),
            (PartiallyRefunded, Action::Ship) if !shipped => Some(PartiallyRefunded),
            (Paid | Shipped | PartiallyRefunded, Action::Refund) => Some(Refunded),
            (Paid | Shipped | PartiallyRefunded, Action::RefundPart) => Some(PartiallyRefunded),
            _ => None,
        }
    }
}

/// What can happen to an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Pay,
    Cancel,
    Ship,
    /// Refund all that is left of the captured amount.
    Refund,
    /// Refund part of what is left.
    RefundPart,
}

impl Action {
    pub fn verb(self) -> &'static str {
        match self {
            Action::Pay => "paid",
            Action::Cancel => "cancelled",
            Action::Ship => "shipped",
            Action::Refund | Action::RefundPart => "refunded",
        }
    }

    /// The action's segment in admin paths: `/admin/orders/{id}/cancel`.
    pub fn path(self) -> &'static str {
        match self {
            Action::Pay => "pay",
            Action::Cancel => "cancel",
            Action::Ship => "ship",
            Action::Refund => "refund",
            Action::RefundPart => "refunds",
        }
    }
}

#[derive(Clone, Debug, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = crate::schema::orders)]
pub struct Order {
    pub id: OrderId,
    pub number: i64,
    pub customer_id: CustomerId,
    pub status: OrderStatus,
    pub total_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When it left the warehouse, once it has.
    pub shipped_at: Option<DateTime<Utc>>,
    /// Opens the order's status page for its customer (`/orders/{status_token}`): random, and
    /// not the id, which the API takes to cancel and pay the order.
    pub status_token: String,
}

impl Order {
    pub fn display_number(&self) -> String {
        OrderNumber(self.number).to_string()
    }

    /// Whether the goods have left the warehouse. A `shipped` order has; a partially refunded
    /// one may have.
    pub fn has_shipped(&self) -> bool {
        self.status == OrderStatus::Shipped || self.shipped_at.is_some()
    }

    /// The status `action` would lead to, or `None` if the lifecycle does not allow it.
    pub fn after(&self, action: Action) -> Option<OrderStatus> {
        self.status.after(self.has_shipped(), action)
    }

    pub fn allows(&self, action: Action) -> bool {
        self.after(action).is_some()
    }
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = crate::schema::order_lines)]
pub struct OrderLine {
    pub order_id: OrderId,
    pub line_no: i16,
    pub product_id: ProductId,
    pub sku: String,
    pub name: String,
    pub unit_price_minor: i64,
    pub quantity: i32,
    pub line_total_minor: i64,
}

/// Units of one order line that one refund gave back, and their price.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = crate::schema::order_refund_lines)]
pub struct RefundLine {
    pub refund_id: RefundId,
    pub order_id: OrderId,
    pub line_no: i16,
    pub quantity: i32,
    pub amount_minor: i64,
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = crate::schema::customers)]
pub struct Customer {
    pub id: CustomerId,
    pub email: String,
    pub name: String,
}

/// An e-mail address as customers are identified by: valid, trimmed and lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CustomerEmail(String);

/// What an e-mail address may be: a dot-atom local part and a host name with a dot, the
/// common ground of RFC 5321 and what mail servers accept. Quoted local parts and address
/// literals are refused.
pub static EMAIL: Pattern = Pattern::new(
    "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$",
    254,
    "must be an e-mail address such as ada@example.com",
);

impl CustomerEmail {
    pub fn parse(text: &str) -> Result<CustomerEmail, String> {
        EMAIL.check(text).map(|address| CustomerEmail(address.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_allows_only_its_transitions() {
        use Action::*;
        use OrderStatus::*;
        let allowed = [
            (PendingPayment, false, Pay, Paid),
            (PendingPayment, false, Cancel, Cancelled),
            (Paid, false, Ship, Shipped),
            (Paid, false, Refund, Refunded),
            (Paid, false, RefundPart, PartiallyRefunded),
            (Shipped, true, Refund, Refunded),
            (Shipped, true, RefundPart, PartiallyRefunded),
            // Partly refunded before shipping: what is left can still ship, and the order stays
            // partially refunded until the refunds reach what was captured.
            (PartiallyRefunded, false, Ship, PartiallyRefunded),
            (PartiallyRefunded, false, RefundPart, PartiallyRefunded),
            (PartiallyRefunded, false, Refund, Refunded),
            (PartiallyRefunded, true, RefundPart, PartiallyRefunded),
            (PartiallyRefunded, true, Refund, Refunded),
        ];
        for status in OrderStatus::ALL {
            for shipped in [false, true] {
                for action in [Pay, Cancel, Ship, Refund, RefundPart] {
                    let expected = allowed
                        .iter()
                        .find(|(from, when_shipped, by, _)| {
                            (*from, *by) == (status, action) && *when_shipped == shipped
                        })
                        .map(|(.., to)| *to);
                    // Paid and pending orders have not shipped and shipped ones have, whatever
                    // the flag says; only a partially refunded order needs it.
                    let expected = match status {
                        PendingPayment | Paid | Shipped | Cancelled | Refunded => {
                            allowed.iter().find(|(from, _, by, _)| (*from, *by) == (status, action)).map(|(.., to)| *to)
                        }
                        PartiallyRefunded => expected,
                    };
                    assert_eq!(
                        status.after(shipped, action),
                        expected,
                        "{status} (shipped: {shipped}) {} {}",
                        if expected.is_some() { "must become" } else { "must not be" },
                        action.verb()
                    );
                }
            }
        }
        assert_eq!(PartiallyRefunded.after(true, Ship), None, "a shipped order does not ship twice");
        assert_eq!(Cancelled.after(false, Refund), None);
        assert_eq!(Refunded.after(false, RefundPart), None);
    }

    #[test]
    fn e_mail_addresses_are_checked_and_lower_cased() {
        assert_eq!(CustomerEmail::parse("Ada@Example.COM").unwrap().as_str(), "ada@example.com");
        assert_eq!(
            CustomerEmail::parse("o'brien+shop@mail.example.co.uk").unwrap().as_str(),
            "o'brien+shop@mail.example.co.uk"
        );
        // Exactly what the published pattern allows: no surrounding spaces, no NUL, no dot runs.
        assert!(CustomerEmail::parse(" ada@example.com").is_err());
        assert!(CustomerEmail::parse("ada\0@example.com").is_err());
        assert!(CustomerEmail::parse("a..b@example.com").is_err());
        assert!(CustomerEmail::parse("ada@-example.com").is_err());
        assert!(CustomerEmail::parse("ada").is_err());
        assert!(CustomerEmail::parse("ada@localhost").is_err());
        assert!(CustomerEmail::parse("a b@example.com").is_err());
    }
}
