//! Orders: customers, orders with line snapshots, the status machine, checkout, the payment
//! timeout. The module's public face.
//!
//! This is where the shared-database pattern earns its keep: checkout prices lines from the
//! catalog's `products` table and reserves stock through the inventory module in the same
//! transaction that inserts the order; the aggregated order view reads payments, e-mails and
//! events straight from their tables.

pub mod api;
mod checkout;
mod lifecycle;
mod model;
pub mod pages;
mod refund_pages;
mod refunds;
pub mod sales;
pub mod search;
mod seed;
mod snapshot;
mod store;
pub mod timeout;
mod view;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

pub use checkout::{CUSTOMER_NAME, MAX_LINES, PlaceOrder, PlacedOrder, QUANTITY, place_order};
pub use lifecycle::{PaymentAttempt, cancel, pay, ship};
pub use model::{Action, Customer, CustomerEmail, EMAIL, Order, OrderLine, OrderStatus, RefundLine};
pub use refunds::{
    MAX_ORDER_TOTAL_MINOR, MAX_REFUND_LINES, REFUND_AMOUNT, REFUND_QUANTITY, RefundOutcome, RefundRequest, refund,
    refund_part,
};
pub use seed::seed_orders;
pub use snapshot::snapshot;
pub use view::{EventSummary, NotificationSummary, OrderDetails, order_details, order_for_status_page};

use crate::error::{AppError, FieldError};
use crate::ids::OrderId;
use crate::inventory::InventoryError;
use crate::kernel::{Call, Module, TableAccess, Use};
use crate::pagination::Keyset;
use crate::payments::PaymentsError;

pub const TABLES: TableAccess = TableAccess {
    module: Module::Orders,
    owns: &["customers", "orders", "order_lines", "order_refund_lines"],
    reads: &[
        Use {
            table: "products",
            reason: "checkout prices every line from the catalog, inside the checkout transaction; an order's events \
                     describe each line's product",
        },
        Use {
            table: "payments",
            reason: "the aggregated order view lists the order's payment attempts; revenue nets out partial refunds",
        },
        Use { table: "payment_refunds", reason: "the aggregated order view shows refunds" },
        Use { table: "notifications", reason: "the aggregated order view lists the order's e-mails" },
        Use { table: "events", reason: "the aggregated order view lists the order's events" },
    ],
    writes: &[],
};

pub const CALLS: &[Call] = &[
    Call {
        module: Module::Inventory,
        reason: "checkout reserves stock inside the order's transaction; cancel, refund and ship release or ship it",
    },
    Call {
        module: Module::Payments,
        reason: "paying and refunding an order charge or refund its card in the same transaction",
    },
    Call { module: Module::Outbox, reason: "every change of an order publishes its event in the same transaction" },
    Call { module: Module::Idempotency, reason: "placing and paying an order honour an Idempotency-Key" },
    Call {
        module: Module::Notifications,
        reason: "the aggregated order view reads the order's e-mails in the notifications module's kinds and statuses",
    },
    Call { module: Module::Admin, reason: "its admin pages use the admin layout, session and CSRF token" },
];

#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    #[error("no order with id {0}")]
    NotFound(OrderId),
    #[error("invalid order")]
    Invalid(Vec<FieldError>),
    /// Lines naming products that do not exist.
    #[error("unknown products")]
    UnknownProducts(Vec<FieldError>),
    /// Lines naming products that are no longer sold.
    #[error("products no longer sold")]
    ProductsNotSold(Vec<FieldError>),
    #[error("{}", illegal_transition(number, *status, *shipped, *action))]
    IllegalTransition { number: String, status: OrderStatus, shipped: bool, action: Action },
    #[error(transparent)]
    Stock(#[from] InventoryError),
    #[error(transparent)]
    Payment(#[from] PaymentsError),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

impl From<OrdersError> for AppError {
    fn from(error: OrdersError) -> Self {
        match error {
            OrdersError::NotFound(id) => AppError::not_found(format!("No order with id {id}.")),
            OrdersError::Invalid(errors) => AppError::validation(errors),
            OrdersError::UnknownProducts(errors) => {
                AppError::not_found("The order names a product that does not exist.").with_field_errors(errors)
            }
            OrdersError::ProductsNotSold(errors) => {
                AppError::conflict("product-not-sold", "The order names a product that is no longer sold.")
                    .with_field_errors(errors)
            }
            OrdersError::IllegalTransition { number, status, shipped, action } => {
                AppError::conflict("order-status", format!("{}.", illegal_transition(&number, status, shipped, action)))
                    .with("order_status", status.as_str())
            }
            OrdersError::Stock(error) => error.into(),
            OrdersError::Payment(error) => error.into(),
            OrdersError::Database(error) => error.into(),
        }
    }
}

/// "Order AG-000042 is paid; it cannot be cancelled", saying also when a partially refunded
/// order has shipped (which is why it cannot ship again).
fn illegal_transition(number: &str, status: OrderStatus, shipped: bool, action: Action) -> String {
    let shipped = if shipped && status == OrderStatus::PartiallyRefunded { " and has shipped" } else { "" };
    format!("Order {number} is {status}{shipped}; it cannot be {}", action.verb())
}

pub type ListCursor = (DateTime<Utc>, OrderId);

/// Which orders to list.
#[derive(Clone, Debug, Default)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub email: Option<String>,
    pub number: Option<i64>,
}

/// Orders newest first, one index range per page (fast at millions of orders).
/// The order as it stands now, for a caller deciding what to do with it.
pub fn find_order(conn: &mut PgConnection, order_id: OrderId) -> Result<Order, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    crate::schema::orders::table
        .find(order_id)
        .select(Order::as_select())
        .first(conn)
        .optional()?
        .ok_or(OrdersError::NotFound(order_id))
}

pub fn list_orders(
    conn: &mut PgConnection,
    filter: OrderFilter,
    after: Option<ListCursor>,
    limit: i64,
) -> Result<Keyset<(Order, Customer)>, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    let filter = store::ListFilter {
        status: filter.status,
        email: filter.email.map(|email| email.trim().to_lowercase()),
        number: filter.number,
    };
    let rows = store::list(conn, &filter, after, limit + 1)?;
    Ok(Keyset::from_rows(rows, limit, |(order, _)| (order.created_at, order.id)))
}

/// Figures for the admin dashboard: the last 24 hours, per status, and the revenue of paid and
/// shipped orders net of refunds.
#[derive(Debug, Default)]
pub struct Dashboard {
    pub per_status: Vec<(OrderStatus, i64, i128)>,
    pub orders: i64,
    pub revenue_minor: i128,
}

pub fn dashboard(conn: &mut PgConnection) -> Result<Dashboard, OrdersError> {
    crate::as_module!(conn, Module::Orders);
    let totals = store::recent_totals(conn, Utc::now() - chrono::Duration::hours(24))?;
    let mut dashboard = Dashboard::default();
    for status in OrderStatus::ALL {
        let (count, total, net) = totals.iter().find(|row| row.status == status).map_or((0, 0, 0), |row| {
            // A sum of bigints has no fraction; i128 holds it for any table PostgreSQL can store.
            let whole = |sum: &str| sum.parse::<i128>().unwrap_or(i128::MAX);
            (row.orders, whole(&row.total_minor), whole(&row.net_minor))
        });
        dashboard.orders += count;
        dashboard.revenue_minor += net;
        dashboard.per_status.push((status, count, total));
    }
    Ok(dashboard)
}
