//! Admin pages for stock: the overview (emptiest first, low stock highlighted), and per product
//! the ledger with a form to receive or adjust stock.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{InventoryError, LevelsCursor, Movement, MovementKind, StockLevel};
use crate::admin::page::see_other;
use crate::admin::page::{FormErrors, Layout, PageError, Section, render, render_with_status};
use crate::admin::session::{Admin, CsrfForm, CsrfProtected};
use crate::error::AppError;
use crate::http::state::AppState;
use crate::ids::ProductId;
use crate::kernel::Module;
use crate::pagination::{Page, PageQuery};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/inventory", web::get().to(overview))
        .route("/inventory/{product_id}", web::get().to(ledger))
        .route("/inventory/{product_id}/adjustments", web::post().to(adjust));
}

const PAGE_SIZE: i64 = 50;

#[derive(Template)]
#[template(path = "inventory/templates/overview.html")]
struct OverviewPage {
    layout: Layout,
    low_only: bool,
    page: Page<StockLevel>,
}

impl OverviewPage {
    fn next_href(&self) -> Option<String> {
        let cursor = self.page.next_cursor.as_ref()?;
        let low = if self.low_only { "low=1&" } else { "" };
        Some(format!("/admin/inventory?{low}cursor={cursor}"))
    }
}

#[derive(Deserialize)]
struct OverviewFilter {
    low: Option<String>,
}

async fn overview(
    state: web::Data<AppState>,
    admin: Admin,
    filter: web::Query<OverviewFilter>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    let low_only = filter.low.as_deref().is_some_and(|low| !low.is_empty() && low != "0");
    let after = page.cursor::<LevelsCursor>()?;
    let page = state
        .db
        .read(Module::Inventory.op("stock_levels"), admin.read_after(), move |conn| {
            super::stock_levels(conn, low_only, after, PAGE_SIZE)
        })
        .await?;
    render(&OverviewPage { layout: admin.layout(Section::Inventory), low_only, page })
}

#[derive(Debug, Default, Deserialize)]
pub struct AdjustForm {
    csrf_token: String,
    delta: String,
    kind: String,
    reason: String,
}

impl CsrfProtected for AdjustForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

#[derive(Template)]
#[template(path = "inventory/templates/ledger.html")]
struct LedgerPage {
    layout: Layout,
    stock: StockLevel,
    movements: Vec<Movement>,
    next_cursor: Option<String>,
    form: AdjustForm,
    errors: FormErrors,
    /// A refusal that is about the stock, not about one field (409).
    conflict: Option<String>,
}

async fn load_ledger(
    state: &AppState,
    product_id: ProductId,
    page: &PageQuery,
) -> Result<(StockLevel, Page<Movement>), AppError> {
    let before = page.cursor::<i64>()?;
    state
        .db
        .run(Module::Inventory.op("ledger_page"), move |conn| -> Result<_, InventoryError> {
            Ok((super::stock_level(conn, product_id)?, super::movements(conn, product_id, before, PAGE_SIZE)?))
        })
        .await
}

async fn ledger(
    state: web::Data<AppState>,
    admin: Admin,
    product_id: web::Path<ProductId>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    let (stock, page) = load_ledger(&state, product_id.into_inner(), &page).await?;
    let form = AdjustForm { kind: MovementKind::Receipt.to_string(), ..Default::default() };
    render(&LedgerPage {
        layout: admin.layout(Section::Inventory),
        stock,
        movements: page.items,
        next_cursor: page.next_cursor,
        form,
        errors: FormErrors::default(),
        conflict: None,
    })
}

async fn adjust(
    state: web::Data<AppState>,
    admin: Admin,
    product_id: web::Path<ProductId>,
    CsrfForm(form): CsrfForm<AdjustForm>,
) -> Result<HttpResponse, PageError> {
    let product_id = product_id.into_inner();
    let mut errors = FormErrors::default();
    let mut conflict = None;
    let delta = form.delta.trim().trim_start_matches('+').parse::<i32>().ok();
    if delta.is_none() {
        errors.push("delta", "enter a whole number, e.g. 10 or -3");
    }
    let kind =
        MovementKind::parse(&form.kind).filter(|kind| matches!(kind, MovementKind::Receipt | MovementKind::Adjustment));
    if kind.is_none() {
        errors.push("kind", "choose receipt or adjustment");
    }
    if let (Some(delta), Some(kind)) = (delta, kind) {
        let reason = form.reason.clone();
        let outcome = state
            .db
            .run(Module::Inventory.op("adjust_stock"), move |conn| {
                Ok::<_, AppError>(super::adjust(conn, product_id, i64::from(delta), kind, &reason))
            })
            .await?;
        match outcome {
            Ok(level) => {
                admin.flash(format!("Stock of {} changed by {delta:+}: {} available.", level.sku, level.available()));
                return Ok(see_other(&format!("/admin/inventory/{product_id}")));
            }
            Err(InventoryError::Invalid(field_errors)) => errors = FormErrors(field_errors),
            Err(error @ InventoryError::BelowReserved { .. }) => {
                if let AppError::Client(problem) = AppError::from(error) {
                    conflict = Some(problem.detail);
                }
            }
            Err(other) => return Err(AppError::from(other).into()),
        }
    }
    let (stock, page) = load_ledger(&state, product_id, &PageQuery::default()).await?;
    let status = if conflict.is_some() { StatusCode::CONFLICT } else { StatusCode::UNPROCESSABLE_ENTITY };
    render_with_status(
        status,
        &LedgerPage {
            layout: admin.layout(Section::Inventory),
            stock,
            movements: page.items,
            next_cursor: page.next_cursor,
            form,
            errors,
            conflict,
        },
    )
}
