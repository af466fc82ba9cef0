//! Rendering order e-mails (text and HTML) from the event alone: the order the event carries
//! ([`OrderSnapshot`]) and, for a refund, what the refund gave back.

use askama::Template;

use super::model::EmailKind;
use crate::events::{DomainEvent, OrderRefunded, OrderSnapshot, RefundedLine};
use crate::money::Currency;

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
    /// The order's status page, when the event names it.
    status_link: Option<&'a str>,
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
    /// The order's status page, when the event names it.
    status_link: Option<&'a str>,
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

/// Renders the e-mail of `kind` about `order`; a refund's e-mail says what `refund` gave back.
pub fn render(
    kind: EmailKind,
    order: &OrderSnapshot,
    refund: Option<&RefundFacts>,
    currency: Currency,
    public_url: &str,
) -> Result<RenderedEmail, askama::Error> {
    // The token is random URL-safe text; anything else (a hand-made event) gets no link.
    let status_link = order
        .status_token
        .as_deref()
        .filter(|token| !token.is_empty() && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .map(|token| format!("{public_url}/orders/{token}"));
    let number = order.number.as_str();
    // Orders record their currency; format with it when it is one we know.
    let currency = Currency::parse(&order.currency).unwrap_or(currency);
    let lines: Vec<Line> = order
        .lines
        .iter()
        .map(|line| Line {
            sku: line.sku.clone(),
            name: line.name.clone(),
            description: line.description.clone(),
            quantity: line.quantity,
            unit_price: currency.format(line.unit_price_minor),
            line_total: currency.format(line.line_total_minor),
        })
        .collect();
    let refund = refund.filter(|_| kind == EmailKind::OrderRefunded);
    // A refund that leaves part of the order paid says so, and names its amount in the subject.
    let partial = refund.filter(|refund| refund.refunded_minor < order.total_minor);
    let (subject, opening) = match partial {
        Some(refund) => (
            format!("{} refunded for order {number}", currency.format(refund.amount_minor)),
            "we have refunded part of your order. The money is on its way back to your card.",
        ),
        None => (kind.subject(number), kind.opening()),
    };
    let note = refund.map(|refund| RefundNote {
        amount: currency.format(refund.amount_minor),
        refunded: currency.format(refund.refunded_minor),
        total: currency.format(order.total_minor),
        lines: refund.lines.iter().map(|line| format!("{} x {} ({})", line.quantity, line.name, line.sku)).collect(),
    });
    let placed = order.placed_at.format("%Y-%m-%d %H:%M UTC").to_string();
    let total = currency.format(order.total_minor);
    let text = TextEmail {
        opening,
        refund: note.as_ref(),
        name: &order.customer.name,
        number,
        placed: placed.clone(),
        lines: &lines,
        total: total.clone(),
        status_link: status_link.as_deref(),
    }
    .render()?;
    let html = HtmlEmail {
        opening,
        refund: note.as_ref(),
        subject: &subject,
        name: &order.customer.name,
        number,
        placed,
        lines: &lines,
        total,
        status_link: status_link.as_deref(),
    }
    .render()?;
    Ok(RenderedEmail { recipient: order.customer.email.clone(), subject, text, html })
}
