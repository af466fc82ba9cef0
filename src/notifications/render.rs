//! Rendering order e-mails (text and HTML) from one read of the shared tables.

use askama::Template;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text, Timestamptz, Uuid as SqlUuid};

use super::model::EmailKind;
use crate::events::{DomainEvent, OrderRefunded, RefundedLine};
use crate::ids::{OrderId, OrderNumber};
use crate::money::Currency;

/// One row per order line, with the order and its customer repeated: the whole e-mail comes
/// from one query across four tables of three modules (orders, customers, order_lines, products).
#[derive(Debug, QueryableByName)]
pub struct EmailRow {
    #[diesel(sql_type = BigInt)]
    pub number: i64,
    #[diesel(sql_type = BigInt)]
    pub total_minor: i64,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub email: String,
    #[diesel(sql_type = Text)]
    pub customer_name: String,
    #[diesel(sql_type = Text)]
    pub sku: String,
    #[diesel(sql_type = Text)]
    pub line_name: String,
    #[diesel(sql_type = BigInt)]
    pub unit_price_minor: i64,
    #[diesel(sql_type = Integer)]
    pub quantity: i32,
    #[diesel(sql_type = BigInt)]
    pub line_total_minor: i64,
    #[diesel(sql_type = Text)]
    pub description: String,
}

pub fn load(conn: &mut PgConnection, order_id: OrderId) -> QueryResult<Vec<EmailRow>> {
    diesel::sql_query(
        "SELECT o.number, o.total_minor, o.currency, o.created_at,
                c.email, c.name AS customer_name,
                l.sku, l.name AS line_name, l.unit_price_minor, l.quantity, l.line_total_minor,
                p.description
           FROM orders o
           JOIN customers c ON c.id = o.customer_id
           JOIN order_lines l ON l.order_id = o.id
           JOIN products p ON p.id = l.product_id
          WHERE o.id = $1
          ORDER BY l.line_no",
    )
    .bind::<SqlUuid, _>(order_id)
    .load(conn)
}

pub struct Line {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub quantity: i32,
    pub unit_price: String,
    pub line_total: String,
}

/// What a refund's e-mail says besides the order: carried by its `OrderRefunded` event.
pub struct RefundFacts {
    pub amount_minor: i64,
    /// What has been refunded of the order in all, this refund included.
    pub refunded_minor: i64,
    pub lines: Vec<RefundedLine>,
}

impl RefundFacts {
    pub fn of(event: &DomainEvent) -> Option<RefundFacts> {
        match event {
            DomainEvent::OrderRefunded(OrderRefunded { amount_minor, refunded_minor, lines, .. }) => {
                Some(RefundFacts {
                    amount_minor: *amount_minor,
                    // Events from before refunds came in parts were whole refunds.
                    refunded_minor: refunded_minor.unwrap_or(*amount_minor),
                    lines: lines.clone(),
                })
            }
            _ => None,
        }
    }
}

/// The refund paragraph of an e-mail, formatted.
pub struct RefundNote {
    pub amount: String,
    pub refunded: String,
    pub total: String,
    /// `2 x Mug (MUG-001)`, one per refunded line.
    pub lines: Vec<String>,
}

pub struct RenderedEmail {
    pub recipient: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Template)]
#[template(path = "notifications/templates/order_email.txt", escape = "none")]
struct TextEmail<'a> {
    opening: &'a str,
    refund: Option<&'a RefundNote>,
    name: &'a str,
    number: &'a str,
    placed: String,
    lines: &'a [Line],
    total: String,
}

#[derive(Template)]
#[template(path = "notifications/templates/order_email.html")]
struct HtmlEmail<'a> {
    opening: &'a str,
    refund: Option<&'a RefundNote>,
    subject: &'a str,
    name: &'a str,
    number: &'a str,
    placed: String,
    lines: &'a [Line],
    total: String,
}

impl EmailKind {
    /// The sentence that opens the e-mail.
    pub fn opening(&self) -> &'static str {
        match self {
            EmailKind::OrderReceived => {
                "thank you for your order. We have reserved your items; it is confirmed as soon as your payment arrives."
            }
            EmailKind::OrderConfirmation => {
                "we have received your payment. Your order is confirmed and being prepared."
            }
            EmailKind::OrderCancelled => {
                "your order has been cancelled. Nothing was charged, or the charge has been released."
            }
            EmailKind::OrderRefunded => {
                "your order has been refunded in full. The money is on its way back to your card."
            }
            EmailKind::OrderShipped => "your order has left our warehouse and is on its way to you.",
        }
    }
}

/// Renders the e-mail of `kind` about the order in `rows`; a refund's e-mail says what `refund`
/// gave back.
pub fn render(
    kind: EmailKind,
    rows: &[EmailRow],
    refund: Option<&RefundFacts>,
    currency: Currency,
) -> Option<RenderedEmail> {
    let first = rows.first()?;
    let number = OrderNumber(first.number).to_string();
    // Orders record their currency; format with it when it is one we know.
    let currency = Currency::parse(&first.currency).unwrap_or(currency);
    let lines: Vec<Line> = rows
        .iter()
        .map(|row| Line {
            sku: row.sku.clone(),
            name: row.line_name.clone(),
            description: row.description.clone(),
            quantity: row.quantity,
            unit_price: currency.format(row.unit_price_minor),
            line_total: currency.format(row.line_total_minor),
        })
        .collect();
    let refund = refund.filter(|_| kind == EmailKind::OrderRefunded);
    // A refund that leaves part of the order paid says so, and names its amount in the subject.
    let partial = refund.filter(|refund| refund.refunded_minor < first.total_minor);
    let (subject, opening) = match partial {
        Some(refund) => (
            format!("{} refunded for order {number}", currency.format(refund.amount_minor)),
            "we have refunded part of your order. The money is on its way back to your card.",
        ),
        None => (kind.subject(&number), kind.opening()),
    };
    let note = refund.map(|refund| RefundNote {
        amount: currency.format(refund.amount_minor),
        refunded: currency.format(refund.refunded_minor),
        total: currency.format(first.total_minor),
        lines: refund.lines.iter().map(|line| format!("{} x {} ({})", line.quantity, line.name, line.sku)).collect(),
    });
    let placed = first.created_at.format("%Y-%m-%d %H:%M UTC").to_string();
    let total = currency.format(first.total_minor);
    let text = TextEmail {
        opening,
        refund: note.as_ref(),
        name: &first.customer_name,
        number: &number,
        placed: placed.clone(),
        lines: &lines,
        total: total.clone(),
    }
    .render()
    .ok()?;
    let html = HtmlEmail {
        opening,
        refund: note.as_ref(),
        subject: &subject,
        name: &first.customer_name,
        number: &number,
        placed,
        lines: &lines,
        total,
    }
    .render()
    .ok()?;
    Some(RenderedEmail { recipient: first.email.clone(), subject, text, html })
}
