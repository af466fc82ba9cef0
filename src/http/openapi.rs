//! The OpenAPI document. Paths and schemas are collected from the handlers as they are
//! registered (utoipa-actix-web), so an endpoint cannot exist without being documented.

use std::sync::Arc;

use actix_web::{App, HttpResponse, web};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use super::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Agora",
        description = "An e-commerce modular monolith over one shared PostgreSQL database. Errors are \
                       application/problem+json (RFC 9457); money is integer minor units of the shop currency; \
                       lists take ?limit= (1..=100) and an opaque ?cursor=."
    ),
    modifiers(&AdminBearer),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "catalog", description = "Products and their categories"),
        (name = "inventory", description = "Stock levels and the stock ledger"),
        (name = "orders", description = "Checkout and the order lifecycle"),
        (name = "payments", description = "Card payments through the simulated gateway"),
        (name = "notifications", description = "Customer e-mails"),
        (name = "architecture", description = "The shared-database coupling, measured"),
    )
)]
pub struct ApiDoc;

struct AdminBearer;

impl Modify for AdminBearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("admin_token", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// Collects the document from the same registrations the server uses (`configure_api`).
pub fn document(configure_api: fn(&mut utoipa_actix_web::service_config::ServiceConfig)) -> Arc<str> {
    let (_, api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .service(super::health::healthz)
        .service(super::health::readyz)
        .service(utoipa_actix_web::scope("/api").configure(configure_api))
        .split_for_parts();
    api.to_json().expect("the OpenAPI document serializes").into()
}

pub async fn serve_document(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(state.openapi.to_string())
}
