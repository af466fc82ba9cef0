//! The orders module's JSON endpoints: checkout, the order lifecycle, paying by card and refunds.

mod checkout;
mod lifecycle;
mod payment;
mod refunds;
pub mod views;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(checkout::place_order)
        .service(checkout::list_orders)
        .service(checkout::get_order)
        .service(lifecycle::cancel_order)
        .service(payment::pay_order)
        .service(lifecycle::ship_order)
        .service(lifecycle::refund_order)
        .service(refunds::refund_order_part);
}
