//! Admin pages for stock: the overview (emptiest first, low stock highlighted), and per product
//! the ledger with a form to receive or adjust stock.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::listing::LEVEL_COLUMNS;
use super::{InventoryError, Movement, MovementKind, StockLevel};
use crate::admin::listing::{self, ListQuery, Numbered, Sort};
use crate::admin::page::see_other;
use crate::admin::page::{FormErrors, Layout, PageError, Section, render, render_with_status};
use crate::admin::session::{Admin, CsrfForm, CsrfProtected};
use crate::error::AppError;
use crate::http::state::AppState;
use crate::ids::ProductId;
use crate::kernel::Module;
use crate::pagination::{List, Page, PageQuery};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/inventory").route(web::get().to(overview)))
        .service(web::resource("/inventory/{product_id}").route(web::get().to(ledger)))
        .service(web::resource("/inventory/{product_id}/adjustments").route(web::post().to(adjust)));
}

/// Ledger rows per page.
const PAGE_SIZE: i64 = 50;

#[derive(Template)]
#[template(path = "inventory/templates/overview.html")]
struct OverviewPage {
    layout: Layout,
    low_only: bool,
    levels: Numbered<StockLevel>,
    sort: Sort,
}

impl OverviewPage {
    fn href(&self, sort: Option<(&str, &str)>, page: i64) -> String {
        listing::href("/admin/inventory", &[("low", if self.low_only { "1" } else { "" })], sort, page)
    }

    fn page_href(&self, page: i64) -> String {
        self.href(self.sort.kept(), page)
    }

    fn sort_href(&self, key: &str) -> String {
        self.href(self.sort.toggled(key), 1)
    }

    fn numbered(&self) -> &Numbered<StockLevel> {
        &self.levels
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
    list: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let low_only = filter.low.as_deref().is_some_and(|low| !low.is_empty() && low != "0");
    let page = list.page()?;
    let sort = list.sort(&LEVEL_COLUMNS)?;
    let levels = state
        .db
        .read(Module::Inventory.op("stock_levels"), admin.read_after(), move |conn| {
            super::listing::admin_levels(conn, low_only, sort, page)
        })
        .await?;
    render(&OverviewPage { layout: admin.layout(Section::Inventory), low_only, levels, sort })
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
    let before = page.cursor::<i64>(&state.keys.cursors, List::StockMovements)?;
    let (stock, movements) = state
        .db
        .run(Module::Inventory.op("ledger_page"), move |conn| -> Result<_, InventoryError> {
            Ok((super::stock_level(conn, product_id)?, super::movements(conn, product_id, before, PAGE_SIZE)?))
        })
        .await?;
    Ok((stock, movements.signed(&state.keys.cursors, List::StockMovements)))
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
    // Checked here too, so that every field's message shows at once.
    if let Err(message) = super::REASON.check(&form.reason) {
        errors.push("reason", message);
    }
    if let (Some(delta), Some(kind), true) = (delta, kind, errors.is_empty()) {
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
