//! Admin pages for products: list with search, create, edit, activate/deactivate, and each
//! product's page with its stock and recent movements.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{CatalogError, ListCursor, Product, ProductDraft, ProductPatch};
use crate::admin::page::see_other;
use crate::admin::page::{FormErrors, Layout, PageError, Section, render, render_with_status};
use crate::admin::session::{Admin, CsrfForm, CsrfProtected};
use crate::error::AppError;
use crate::http::state::AppState;
use crate::ids::ProductId;
use crate::inventory::{Movement, StockLevel};
use crate::kernel::Module;
use crate::money::Currency;
use crate::pagination::{Page, PageQuery};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/products", web::get().to(list))
        .route("/products", web::post().to(create))
        .route("/products/new", web::get().to(new_form))
        .route("/products/{id}", web::get().to(show))
        .route("/products/{id}", web::post().to(update))
        .route("/products/{id}/edit", web::get().to(edit_form))
        .route("/products/{id}/active", web::post().to(set_active));
}

const PAGE_SIZE: i64 = 50;

#[derive(Template)]
#[template(path = "catalog/templates/list.html")]
struct ListPage {
    layout: Layout,
    query: String,
    page: Page<Product>,
    currency: Currency,
}

impl ListPage {
    fn next_href(&self) -> Option<String> {
        self.page.next_cursor.as_ref().map(|cursor| {
            format!(
                "/admin/products?{}",
                serde_urlencoded::to_string([("q", self.query.as_str()), ("cursor", cursor)]).unwrap_or_default()
            )
        })
    }
}

#[derive(Deserialize)]
struct Search {
    q: Option<String>,
}

async fn list(
    state: web::Data<AppState>,
    admin: Admin,
    search: web::Query<Search>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    let after = page.cursor::<ListCursor>()?;
    let search = search.into_inner().q.unwrap_or_default();
    crate::input::SEARCH.check(&search).map_err(|message| AppError::invalid("q", message))?;
    let text = search.clone();
    let page = state
        .db
        .read(Module::Catalog.op("list_products"), admin.read_after(), move |conn| {
            super::list_products(conn, Some(&text), true, after.clone(), PAGE_SIZE)
        })
        .await?;
    render(&ListPage { layout: admin.layout(Section::Products), query: search, page, currency: state.config.currency })
}

/// The product form's fields as typed, kept to re-render the form with messages.
#[derive(Debug, Default, Deserialize)]
pub struct ProductForm {
    csrf_token: String,
    #[serde(default)]
    sku: String,
    name: String,
    #[serde(default)]
    description: String,
    price: String,
    low_stock_threshold: String,
}

impl CsrfProtected for ProductForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

impl ProductForm {
    fn from_product(product: &Product, currency: Currency) -> Self {
        ProductForm {
            csrf_token: String::new(),
            sku: product.sku.clone(),
            name: product.name.clone(),
            description: product.description.clone(),
            price: currency.to_decimal(product.price_minor),
            low_stock_threshold: product.low_stock_threshold.to_string(),
        }
    }

    /// Turns the typed text into numbers, collecting a message per field that is not one.
    fn numbers(&self, currency: Currency, errors: &mut FormErrors) -> (Option<i64>, Option<i64>) {
        // Both fields are checked, so the form shows every message at once.
        let price = currency.parse_amount(&self.price);
        if price.is_none() {
            errors.push("price", format!("enter an amount such as 12.50 ({})", currency.code()));
        }
        let threshold = self.low_stock_threshold.trim().parse::<i64>().ok();
        if threshold.is_none() {
            errors.push("low_stock_threshold", "enter a whole number");
        }
        (price, threshold)
    }
}

#[derive(Template)]
#[template(path = "catalog/templates/form.html")]
struct FormPage {
    layout: Layout,
    /// `None` while creating.
    product_id: Option<ProductId>,
    form: ProductForm,
    errors: FormErrors,
    currency: Currency,
}

async fn new_form(state: web::Data<AppState>, admin: Admin) -> Result<HttpResponse, PageError> {
    let form =
        ProductForm { low_stock_threshold: super::DEFAULT_LOW_STOCK_THRESHOLD.to_string(), ..Default::default() };
    render(&FormPage {
        layout: admin.layout(Section::Products),
        product_id: None,
        form,
        errors: FormErrors::default(),
        currency: state.config.currency,
    })
}

/// Moves messages about `price_minor` to the `price` field the form shows.
fn form_errors(error: CatalogError) -> Result<FormErrors, PageError> {
    match error {
        CatalogError::Invalid(errors) => Ok(FormErrors(
            errors
                .into_iter()
                .map(|mut error| {
                    if error.field == "price_minor" {
                        error.field = "price".into();
                    }
                    error
                })
                .collect(),
        )),
        CatalogError::DuplicateSku(sku) => {
            let mut errors = FormErrors::default();
            errors.push("sku", format!("{sku} is taken by another product"));
            Ok(errors)
        }
        other => Err(PageError::from(AppError::from(other))),
    }
}

async fn create(
    state: web::Data<AppState>,
    admin: Admin,
    CsrfForm(form): CsrfForm<ProductForm>,
) -> Result<HttpResponse, PageError> {
    let currency = state.config.currency;
    let mut errors = FormErrors::default();
    if let (Some(price_minor), Some(low_stock_threshold)) = form.numbers(currency, &mut errors) {
        let draft = ProductDraft {
            sku: form.sku.trim().to_owned(),
            name: form.name.clone(),
            description: Some(form.description.clone()),
            price_minor,
            low_stock_threshold: Some(low_stock_threshold),
        };
        // The inner result is the domain outcome, shown in the form; the outer one is a failure.
        let created = state
            .db
            .run(Module::Catalog.op("create_product"), move |conn| {
                Ok::<_, AppError>(super::create_product(conn, draft))
            })
            .await?;
        match created {
            Ok(product) => {
                super::api::forget_cached(&state, super::cache::Change::Added).await;
                admin.flash(format!("Product {} created. Its stock is 0: receive stock from its page.", product.sku));
                return Ok(see_other(&format!("/admin/products/{}", product.id)));
            }
            Err(error) => errors = form_errors(error)?,
        }
    }
    render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &FormPage { layout: admin.layout(Section::Products), product_id: None, form, errors, currency },
    )
}

#[derive(Template)]
#[template(path = "catalog/templates/show.html")]
struct ShowPage {
    layout: Layout,
    product: Product,
    stock: StockLevel,
    movements: Vec<Movement>,
    currency: Currency,
}

async fn show(state: web::Data<AppState>, admin: Admin, id: web::Path<ProductId>) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let (product, stock, movements) = state
        .db
        .run(Module::Catalog.op("product_page"), move |conn| -> Result<_, AppError> {
            let product = super::get_product(conn, id)?;
            let stock = crate::inventory::stock_level(conn, id)?;
            let movements = crate::inventory::movements(conn, id, None, 10)?.items;
            Ok((product, stock, movements))
        })
        .await?;
    render(&ShowPage {
        layout: admin.layout(Section::Products),
        product,
        stock,
        movements,
        currency: state.config.currency,
    })
}

async fn edit_form(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<ProductId>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let product = state.db.run(Module::Catalog.op("get_product"), move |conn| super::get_product(conn, id)).await?;
    let currency = state.config.currency;
    render(&FormPage {
        layout: admin.layout(Section::Products),
        product_id: Some(id),
        form: ProductForm::from_product(&product, currency),
        errors: FormErrors::default(),
        currency,
    })
}

async fn update(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<ProductId>,
    CsrfForm(form): CsrfForm<ProductForm>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let currency = state.config.currency;
    let mut errors = FormErrors::default();
    if let (Some(price_minor), Some(low_stock_threshold)) = form.numbers(currency, &mut errors) {
        let patch = ProductPatch {
            name: Some(form.name.clone()),
            description: Some(form.description.clone()),
            price_minor: Some(price_minor),
            active: None,
            low_stock_threshold: Some(low_stock_threshold),
        };
        let updated = state
            .db
            .run(Module::Catalog.op("update_product"), move |conn| {
                Ok::<_, AppError>(super::update_product(conn, id, patch))
            })
            .await?;
        match updated {
            Ok(product) => {
                super::api::forget_cached(&state, super::cache::Change::Products(vec![id])).await;
                admin.flash(format!("Product {} saved.", product.sku));
                return Ok(see_other(&format!("/admin/products/{id}")));
            }
            Err(error) => errors = form_errors(error)?,
        }
    }
    render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &FormPage { layout: admin.layout(Section::Products), product_id: Some(id), form, errors, currency },
    )
}

#[derive(Deserialize)]
struct ActiveForm {
    csrf_token: String,
    active: bool,
}

impl CsrfProtected for ActiveForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

async fn set_active(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<ProductId>,
    CsrfForm(form): CsrfForm<ActiveForm>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let patch = ProductPatch { active: Some(form.active), ..Default::default() };
    let product =
        state.db.run(Module::Catalog.op("update_product"), move |conn| super::update_product(conn, id, patch)).await?;
    super::api::forget_cached(&state, super::cache::Change::Products(vec![id])).await;
    admin.flash(if product.active {
        format!("{} is active: it is listed and can be ordered.", product.sku)
    } else {
        format!("{} is inactive: hidden from the shop and from new orders; past orders keep it.", product.sku)
    });
    Ok(see_other(&format!("/admin/products/{id}")))
}
