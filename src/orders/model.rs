//! Orders, their lines and their customers; the status machine; the values orders are made of.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use crate::input::Pattern;

use crate::ids::{CustomerId, OrderId, OrderNumber, ProductId};
use crate::text_enum::text_enum;

text_enum! {
    pub enum OrderStatus {
        PendingPayment = "pending_payment",
        Paid = "paid",
        Shipped = "shipped",
        Cancelled = "cancelled",
        Refunded = "refunded",
    }
}

impl OrderStatus {
    /// The lifecycle: pending_payment -> paid -> shipped; pending_payment -> cancelled;
    /// paid | shipped -> refunded. Everything else is refused.
    pub fn after(self, action: Action) -> Option<OrderStatus> {
        use OrderStatus::*;
        match (self, action) {
            (PendingPayment, Action::Pay) => Some(Paid),
            (PendingPayment, Action::Cancel) => Some(Cancelled),
            (Paid, Action::Ship) => Some(Shipped),
            (Paid | Shipped, Action::Refund) => Some(Refunded),
            _ => None,
        }
    }

    pub fn allows(self, action: Action) -> bool {
        self.after(action).is_some()
    }
}

/// What can happen to an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Pay,
    Cancel,
    Ship,
    Refund,
}

impl Action {
    pub fn verb(self) -> &'static str {
        match self {
            Action::Pay => "paid",
            Action::Cancel => "cancelled",
            Action::Ship => "shipped",
            Action::Refund => "refunded",
        }
    }

    /// The action's segment in admin paths: `/admin/orders/{id}/cancel`.
    pub fn path(self) -> &'static str {
        match self {
            Action::Pay => "pay",
            Action::Cancel => "cancel",
            Action::Ship => "ship",
            Action::Refund => "refund",
        }
    }
}

#[derive(Clone, Debug, Queryable, Selectable)]
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
}

impl Order {
    pub fn display_number(&self) -> String {
        OrderNumber(self.number).to_string()
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
        assert_eq!(PendingPayment.after(Pay), Some(Paid));
        assert_eq!(PendingPayment.after(Cancel), Some(Cancelled));
        assert_eq!(Paid.after(Ship), Some(Shipped));
        assert_eq!(Paid.after(Refund), Some(Refunded));
        assert_eq!(Shipped.after(Refund), Some(Refunded));
        for (status, action) in [
            (PendingPayment, Ship),
            (PendingPayment, Refund),
            (Paid, Pay),
            (Paid, Cancel),
            (Shipped, Cancel),
            (Shipped, Ship),
            (Shipped, Pay),
            (Cancelled, Pay),
            (Cancelled, Cancel),
            (Cancelled, Ship),
            (Cancelled, Refund),
            (Refunded, Refund),
            (Refunded, Ship),
            (Refunded, Cancel),
            (Refunded, Pay),
        ] {
            assert_eq!(status.after(action), None, "{status} must not become {}", action.verb());
        }
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
