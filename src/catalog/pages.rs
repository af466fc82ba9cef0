//! Admin pages for products: list with search, create, edit, activate/deactivate, and each
//! product's page with its category, stock and recent movements. The categories' own page is in
//! [`super::category_pages`].

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::listing::{PRODUCT_COLUMNS, Shown};
use super::{CatalogError, Category, Product, ProductDraft, ProductPatch, ProductWithCategory};
use crate::admin::listing::{self, ListQuery, Numbered, Sort};
use crate::admin::page::see_other;
use crate::admin::page::{Confirmation, FormErrors, Layout, PageError, Section, render, render_with_status};
use crate::admin::session::{Admin, CsrfForm, CsrfProtected};
use crate::error::AppError;
use crate::http::state::AppState;
use crate::ids::ProductId;
use crate::inventory::{Movement, StockLevel};
use crate::kernel::Module;
use crate::money::Currency;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(super::category_pages::configure)
        .service(web::resource("/products").route(web::get().to(list)).route(web::post().to(create)))
        .service(web::resource("/products/new").route(web::get().to(new_form)))
        .service(web::resource("/products/{id}").route(web::get().to(show)).route(web::post().to(update)))
        .service(web::resource("/products/{id}/edit").route(web::get().to(edit_form)))
        .service(web::resource("/products/{id}/deactivate").route(web::get().to(confirm_deactivate)))
        .service(web::resource("/products/{id}/active").route(web::post().to(set_active)));
}

#[derive(Template)]
#[template(path = "catalog/templates/list.html")]
struct ListPage {
    layout: Layout,
    query: String,
    shown: Shown,
    products: Numbered<ProductWithCategory>,
    sort: Sort,
    currency: Currency,
}

impl ListPage {
    fn href(&self, sort: Option<(&str, &str)>, page: i64) -> String {
        listing::href("/admin/products", &[("q", self.query.as_str()), ("shown", self.shown.as_str())], sort, page)
    }

    fn page_href(&self, page: i64) -> String {
        self.href(self.sort.kept(), page)
    }

    fn sort_href(&self, key: &str) -> String {
        self.href(self.sort.toggled(key), 1)
    }

    fn numbered(&self) -> &Numbered<ProductWithCategory> {
        &self.products
    }

    fn is_filtered(&self) -> bool {
        !self.query.is_empty() || self.shown != Shown::All
    }
}

#[derive(Deserialize)]
struct Search {
    q: Option<String>,
    shown: Option<String>,
}

async fn list(
    state: web::Data<AppState>,
    admin: Admin,
    search: web::Query<Search>,
    list: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let page = list.page()?;
    let sort = list.sort(&PRODUCT_COLUMNS)?;
    let search = search.into_inner();
    let shown = Shown::parse(search.shown.as_deref().unwrap_or(""))
        .ok_or_else(|| AppError::bad_query("shown", "must be active or inactive"))?;
    let query = search.q.unwrap_or_default();
    crate::input::SEARCH.check(&query).map_err(|message| AppError::bad_query("q", message))?;
    let text = query.clone();
    let products = state
        .db
        .read(Module::Catalog.op("list_products"), admin.read_after(), move |conn| {
            super::listing::admin_products(conn, Some(&text), shown, sort, page)
        })
        .await?;
    render(&ListPage {
        layout: admin.layout(Section::Products),
        query,
        shown,
        products,
        sort,
        currency: state.config.currency,
    })
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
    /// A category's slug, empty for none; absent leaves the product's category as it is.
    #[serde(default)]
    category: Option<String>,
}

impl CsrfProtected for ProductForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

impl ProductForm {
    fn from_product(product: &Product, category: Option<&Category>, currency: Currency) -> Self {
        ProductForm {
            csrf_token: String::new(),
            sku: product.sku.clone(),
            name: product.name.clone(),
            description: product.description.clone(),
            price: currency.to_decimal(product.price_minor),
            low_stock_threshold: product.low_stock_threshold.to_string(),
            category: Some(category.map(|category| category.slug.clone()).unwrap_or_default()),
        }
    }

    /// The chosen category's slug: `Some(None)` for "No category", `None` when the form had no
    /// choice to make.
    fn chosen_category(&self) -> Option<Option<String>> {
        self.category.as_deref().map(str::trim).map(|slug| (!slug.is_empty()).then(|| slug.to_owned()))
    }

    /// Checks every field, collecting one message per field that is wrong, so the form shows
    /// them all at once; returns the numbers when they are numbers.
    fn check(
        &self,
        currency: Currency,
        creating: bool,
        categories: &[Category],
        errors: &mut FormErrors,
    ) -> (Option<i64>, Option<i64>) {
        let mut note = |field: &str, result: Result<String, String>| {
            if let Err(message) = result {
                errors.push(field, message);
            }
        };
        if creating {
            note("sku", super::model::parse_sku(self.sku.trim()));
        }
        note("name", super::model::parse_name(&self.name));
        note("description", super::model::parse_description(&self.description));
        let price = currency.parse_amount(&self.price);
        match price.map(super::model::parse_price) {
            None => errors.push("price", format!("enter an amount such as 12.50 ({})", currency.code())),
            Some(Err(message)) => errors.push("price", message),
            Some(Ok(_)) => {}
        }
        let threshold = self.low_stock_threshold.trim().parse::<i64>().ok();
        match threshold.map(super::model::parse_threshold) {
            None => errors.push("low_stock_threshold", "enter a whole number"),
            Some(Err(message)) => errors.push("low_stock_threshold", message),
            Some(Ok(_)) => {}
        }
        // Said with the other messages; saving checks it again against the database.
        if let Some(Some(slug)) = self.chosen_category()
            && !categories.iter().any(|category| category.slug == slug)
        {
            errors.push("category", "choose one of the categories listed");
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
    categories: Vec<Category>,
}

impl FormPage {
    fn is_chosen(&self, category: &Category) -> bool {
        self.form.category.as_deref().map(str::trim) == Some(category.slug.as_str())
    }

    fn sku_pattern(&self) -> String {
        super::model::SKU.html()
    }

    fn field_label(&self, field: &str) -> &'static str {
        match field {
            "sku" => "SKU",
            "name" => "Name",
            "description" => "Description",
            "price" => "Price",
            "low_stock_threshold" => "Low-stock threshold",
            "category" => "Category",
            _ => "Field",
        }
    }
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
        categories: categories(&state).await?,
    })
}

/// The categories a product can be put in, for the form's choice.
async fn categories(state: &AppState) -> Result<Vec<Category>, AppError> {
    state.db.run(Module::Catalog.op("list_categories"), super::categories).await
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
    let categories = categories(&state).await?;
    let mut errors = FormErrors::default();
    let (price_minor, low_stock_threshold) = form.check(currency, true, &categories, &mut errors);
    let draft = ProductDraft {
        sku: form.sku.trim().to_owned(),
        name: form.name.clone(),
        description: Some(form.description.clone()),
        price_minor: price_minor.unwrap_or_default(),
        low_stock_threshold,
        category: form.chosen_category().flatten(),
    };
    let valid = errors.is_empty();
    // The inner result is the domain outcome, shown in the form; the outer one is a failure.
    let created = state
        .db
        .run(Module::Catalog.op("create_product"), move |conn| -> Result<_, AppError> {
            if valid {
                return Ok(super::create_product(conn, draft));
            }
            // A taken SKU is said now too, not only once the other fields are right.
            let taken = super::model::parse_sku(&draft.sku).is_ok() && super::sku_taken(conn, &draft.sku)?;
            Ok(Err(if taken { CatalogError::DuplicateSku(draft.sku) } else { CatalogError::Invalid(Vec::new()) }))
        })
        .await?;
    match created {
        Ok(product) => {
            super::api::forget_cached(&state, super::cache::Change::Added).await;
            admin.flash(format!("Product {} created. Its stock is 0: receive stock from its page.", product.sku));
            return Ok(see_other(&format!("/admin/products/{}", product.id)));
        }
        Err(error) => errors.0.extend(form_errors(error)?.0),
    }
    render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &FormPage { layout: admin.layout(Section::Products), product_id: None, form, errors, currency, categories },
    )
}

#[derive(Template)]
#[template(path = "catalog/templates/show.html")]
struct ShowPage {
    layout: Layout,
    product: Product,
    category: Option<Category>,
    stock: StockLevel,
    movements: Vec<Movement>,
    currency: Currency,
}

async fn show(state: web::Data<AppState>, admin: Admin, id: web::Path<ProductId>) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let (ProductWithCategory { product, category }, stock, movements) = state
        .db
        .run(Module::Catalog.op("product_page"), move |conn| -> Result<_, AppError> {
            let product = super::get_product_with_category(conn, id)?;
            let stock = crate::inventory::stock_level(conn, id)?;
            let movements = crate::inventory::movements(conn, id, None, 10)?.items;
            Ok((product, stock, movements))
        })
        .await?;
    render(&ShowPage {
        layout: admin.layout(Section::Products),
        product,
        category,
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
    let (ProductWithCategory { product, category }, categories) = state
        .db
        .run(Module::Catalog.op("get_product"), move |conn| -> Result<_, AppError> {
            Ok((super::get_product_with_category(conn, id)?, super::categories(conn)?))
        })
        .await?;
    let currency = state.config.currency;
    render(&FormPage {
        layout: admin.layout(Section::Products),
        product_id: Some(id),
        form: ProductForm::from_product(&product, category.as_ref(), currency),
        errors: FormErrors::default(),
        currency,
        categories,
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
    let categories = categories(&state).await?;
    let mut errors = FormErrors::default();
    if let (Some(price_minor), Some(low_stock_threshold)) = form.check(currency, false, &categories, &mut errors)
        && errors.is_empty()
    {
        let patch = ProductPatch {
            name: Some(form.name.clone()),
            description: Some(form.description.clone()),
            price_minor: Some(price_minor),
            active: None,
            low_stock_threshold: Some(low_stock_threshold),
            category: form.chosen_category(),
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
        &FormPage { layout: admin.layout(Section::Products), product_id: Some(id), form, errors, currency, categories },
    )
}

/// Deactivating takes a product out of the shop at once; the page says so before it happens.
async fn confirm_deactivate(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<ProductId>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let (product, stock) = state
        .db
        .run(Module::Catalog.op("product_page"), move |conn| -> Result<_, AppError> {
            Ok((super::get_product(conn, id)?, crate::inventory::stock_level(conn, id)?))
        })
        .await?;
    let back = format!("/admin/products/{id}");
    if !product.active {
        admin.warn(format!("{} is already inactive.", product.sku));
        return Ok(see_other(&back));
    }
    let mut consequences = vec![
        "It disappears from the shop's product list and new orders naming it are refused.".to_owned(),
        "Orders already placed keep it and can still be paid, shipped or refunded.".to_owned(),
    ];
    if stock.on_hand > 0 {
        consequences
            .push(format!("Its {} units on hand stay in stock, unsold, until it is active again.", stock.on_hand));
    }
    render(&Confirmation {
        layout: admin.layout(Section::Products),
        question: format!("Deactivate {} ({})?", product.name, product.sku),
        consequences,
        action: format!("/admin/products/{id}/active"),
        fields: vec![("active", "false".to_owned())],
        button: "Deactivate".to_owned(),
        danger: true,
        back,
    })
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
