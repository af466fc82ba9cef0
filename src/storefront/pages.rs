//! The shop's pages: the grid at `/`, a product, the cart, checkout and an order's status page.
//! Every task works without script; every form post carries the shopper's CSRF token.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::page::{ShopError, ShopLayout, form_config, path_config, query_config};
use super::picture::placeholder;
use super::shopper::Shopper;
use super::store::{self, After, Card, CartLine, Category, GridQuery, ProductPage, Sort};
use crate::error::AppError;
use crate::http::state::AppState;
use crate::ids::ProductId;
use crate::kernel::Module;
use crate::money::Currency;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| {
        web::resource(path.to_owned()).app_data(path_config()).app_data(query_config()).app_data(form_config())
    };
    cfg.service(resource("/").route(web::get().to(grid)))
        .service(resource("/products/{sku}").route(web::get().to(product)))
        .service(resource("/cart").route(web::get().to(super::cart::show)))
        .service(resource("/cart/items").route(web::post().to(super::cart::add)))
        .service(resource("/cart/lines/{product_id}").route(web::post().to(super::cart::change)))
        .service(resource("/cart/lines/{product_id}/remove").route(web::post().to(super::cart::remove)))
        .service(
            resource("/checkout")
                .route(web::get().to(super::checkout::show))
                .route(web::post().to(super::checkout::submit)),
        )
        .service(resource("/orders/{token}").route(web::get().to(super::checkout::status)));
}

/// Whether `path` is one of the shop's pages (their errors are pages in the shop's layout).
pub fn is_shop_path(path: &str) -> bool {
    path == "/"
        || ["/products/", "/orders/", "/cart/"].iter().any(|prefix| path.starts_with(prefix))
        || path == "/cart"
        || path == "/checkout"
}

/// Fewer than this many left is worth telling the shopper.
pub const FEW_LEFT: i32 = 5;

/// What a shopper is told of a product's stock.
pub fn availability(available: i32) -> (&'static str, String) {
    match available {
        ..=0 => ("out", "Out of stock".to_owned()),
        n if n <= FEW_LEFT => ("few", format!("Only {n} left")),
        _ => ("in", "In stock".to_owned()),
    }
}

#[derive(Deserialize)]
pub struct GridParams {
    q: Option<String>,
    category: Option<String>,
    sort: Option<String>,
    after: Option<String>,
}

/// The longest search text: product names are at most 200 characters.
const MAX_SEARCH: usize = 100;

/// A page of the grid as it is kept in the cache: everything but the shopper's own.
pub struct GridView {
    pub cards: Vec<Card>,
    pub categories: Vec<Category>,
    /// Where the next page starts, as the `after` parameter.
    pub next: Option<String>,
}

/// `after=` of the grid's links: the last product of a page in the page's sort order.
fn encode_after(after: &After) -> String {
    let text = match after {
        After::Name(name, id) => format!("n{id}{name}"),
        After::Price(price, id) => format!("p{id}{price}"),
    };
    URL_SAFE_NO_PAD.encode(text)
}

fn decode_after(text: &str, sort: Sort) -> Option<After> {
    let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
    let kind = decoded.get(..1)?;
    let id: ProductId = decoded.get(1..37)?.parse().ok()?;
    let rest = decoded.get(37..)?;
    match (kind, sort) {
        ("n", Sort::Name) if !rest.is_empty() && rest.chars().count() <= 200 => Some(After::Name(rest.to_owned(), id)),
        ("p", Sort::PriceLow | Sort::PriceHigh) => Some(After::Price(rest.parse().ok()?, id)),
        _ => None,
    }
}

impl GridParams {
    fn query(self) -> Result<GridQuery, ShopError> {
        let search = self.q.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
        if search.as_ref().is_some_and(|q| q.chars().count() > MAX_SEARCH || q.chars().any(char::is_control)) {
            return Err(
                AppError::bad_request(format!("A search is one line of at most {MAX_SEARCH} characters.")).into()
            );
        }
        let sort = match self.sort.as_deref().filter(|sort| !sort.is_empty()) {
            None => Sort::Name,
            Some(text) => Sort::parse(text).ok_or_else(|| {
                AppError::bad_request("The shop sorts by name (sort=name) or by price (sort=price or sort=price-desc).")
            })?,
        };
        let category = self.category.filter(|slug| !slug.is_empty());
        if category.as_ref().is_some_and(|slug| {
            slug.len() > 40 || !slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }) {
            return Err(AppError::not_found("There is no such category.").into());
        }
        let after =
            match self.after.filter(|after| !after.is_empty()) {
                None => None,
                Some(text) => Some(decode_after(&text, sort).ok_or_else(|| {
                    AppError::bad_request("This page link is broken. Start again from the first page.")
                })?),
            };
        Ok(GridQuery { search, category, sort, after })
    }
}

struct SortChoice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "storefront/templates/grid.html")]
struct GridPage<'a> {
    layout: ShopLayout,
    view: &'a GridView,
    cards: Vec<CardShown<'a>>,
    category: Option<&'a Category>,
    sorts: Vec<SortChoice>,
    query: &'a GridQuery,
    /// The address of this grid without a page position, for "first page" and the filters.
    first_page: String,
    next_page: Option<String>,
}

impl GridPage<'_> {
    /// The grid of one category (or all), with the search and sort kept, from its first page.
    fn category_href(&self, slug: Option<&str>) -> String {
        grid_href(self.query.search.as_deref(), slug, self.query.sort, None)
    }
}

struct CardShown<'a> {
    card: &'a Card,
    price: String,
    picture: String,
    stock_class: &'static str,
    stock: String,
}

/// The grid's address for these filters.
fn grid_href(search: Option<&str>, category: Option<&str>, sort: Sort, after: Option<&str>) -> String {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    if let Some(q) = search {
        pairs.push(("q", q));
    }
    if let Some(category) = category {
        pairs.push(("category", category));
    }
    if sort != Sort::Name {
        pairs.push(("sort", sort.as_str()));
    }
    if let Some(after) = after {
        pairs.push(("after", after));
    }
    if pairs.is_empty() {
        return "/".to_owned();
    }
    format!("/?{}", serde_urlencoded::to_string(&pairs).unwrap_or_default())
}

pub async fn grid(
    state: web::Data<AppState>,
    request: HttpRequest,
    params: web::Query<GridParams>,
) -> Result<HttpResponse, ShopError> {
    let query = params.into_inner().query()?;
    let db = state.db.clone();
    let load_query = query.clone();
    let view = state
        .shop
        .grid(&state.catalog, query.clone(), || async move {
            db.run(Module::Storefront.op("grid"), move |conn| load_grid(conn, &load_query)).await
        })
        .await?;
    let currency = state.config.currency;
    let category = query.category.as_deref().and_then(|slug| view.categories.iter().find(|c| c.slug == slug));
    let cards = view
        .cards
        .iter()
        .map(|card| {
            let (stock_class, stock) = availability(card.available);
            CardShown {
                card,
                price: currency.format(card.price_minor),
                picture: placeholder(&card.sku, &card.name),
                stock_class,
                stock,
            }
        })
        .collect();
    let page = GridPage {
        layout: ShopLayout { search: query.search.clone().unwrap_or_default() },
        view: &view,
        cards,
        category,
        sorts: Sort::ALL
            .into_iter()
            .map(|sort| SortChoice { value: sort.as_str(), label: sort.label(), selected: sort == query.sort })
            .collect(),
        query: &query,
        first_page: grid_href(query.search.as_deref(), query.category.as_deref(), query.sort, None),
        next_page: view
            .next
            .as_deref()
            .map(|after| grid_href(query.search.as_deref(), query.category.as_deref(), query.sort, Some(after))),
    };
    // The same for every shopper (no form on it needs a token): any cache may keep it, but must
    // ask again each time, since what it says of stock ages.
    let html = page.render().map_err(AppError::internal)?;
    Ok(validated(&request, html, "no-cache"))
}

fn load_grid(conn: &mut diesel::PgConnection, query: &GridQuery) -> Result<GridView, AppError> {
    let categories = store::categories(conn)?;
    let category_id = match &query.category {
        None => None,
        Some(slug) => match categories.iter().find(|category| &category.slug == slug) {
            Some(category) => Some(category.id),
            None => return Err(AppError::not_found("There is no such category.")),
        },
    };
    let mut cards = store::grid(conn, query, category_id)?;
    let next = if cards.len() as i64 > store::PAGE_SIZE {
        cards.truncate(store::PAGE_SIZE as usize);
        cards.last().map(|last| {
            encode_after(&match query.sort {
                Sort::Name => After::Name(last.name.clone(), last.id),
                Sort::PriceLow | Sort::PriceHigh => After::Price(last.price_minor, last.id),
            })
        })
    } else {
        None
    };
    Ok(GridView { cards, categories, next })
}

/// A page with an `ETag` of its body: 304 when the client's copy is the same.
fn validated(request: &HttpRequest, html: String, cache_control: &'static str) -> HttpResponse {
    let etag = crate::http::validators::etag_of(html.as_bytes());
    let current = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tags| crate::http::validators::any_tag_matches(tags, etag.to_str().unwrap_or_default()));
    let mut response = if current { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static(cache_control)));
    if current { response.finish() } else { response.content_type("text/html; charset=utf-8").body(html) }
}

#[derive(Template)]
#[template(path = "storefront/templates/product.html")]
struct ProductView<'a> {
    layout: ShopLayout,
    product: &'a ProductPage,
    price: String,
    picture: String,
    stock_class: &'static str,
    stock: String,
    /// The most one can add: what is left, and at most what a cart line holds.
    max_quantity: i32,
    can_buy: bool,
    csrf_token: String,
}

/// SKUs as the catalog allows them.
fn valid_sku(sku: &str) -> bool {
    (3..=32).contains(&sku.len()) && sku.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

pub async fn product(
    state: web::Data<AppState>,
    request: HttpRequest,
    sku: web::Path<String>,
) -> Result<HttpResponse, ShopError> {
    let sku = sku.into_inner();
    if !valid_sku(&sku) {
        return Err(AppError::not_found("There is no such product in the shop.").into());
    }
    let db = state.db.clone();
    let wanted = sku.clone();
    let loaded = state
        .shop
        .product(&state.catalog, sku, || async move {
            db.run(Module::Storefront.op("product"), move |conn| store::product_by_sku(conn, &wanted)).await
        })
        .await?;
    let Some(product) = loaded.as_ref() else {
        return Err(AppError::not_found("There is no such product in the shop.").into());
    };
    let shopper = Shopper::of(&request);
    let (stock_class, stock) =
        if product.active { availability(product.available) } else { ("out", "No longer sold".to_owned()) };
    let page = ProductView {
        layout: ShopLayout::default(),
        product,
        price: state.config.currency.format(product.price_minor),
        picture: placeholder(&product.sku, &product.name),
        stock_class,
        stock,
        max_quantity: product.available.clamp(1, super::cart::MAX_QUANTITY),
        can_buy: product.active && product.available > 0,
        csrf_token: shopper.csrf_token(state.keys.cookies.signing()),
    };
    let html = page.render().map_err(AppError::internal)?;
    // Carries this shopper's form token: only the shopper's own browser may keep it.
    let mut response = validated(&request, html, "private, no-cache");
    shopper.attach(&mut response, state.config.cookie_secure);
    Ok(response)
}

/// What a cart line says besides its product: price changes and stock.
pub struct LineShown {
    pub line: CartLine,
    pub unit_price: String,
    pub line_total: String,
    pub picture: String,
    /// "The price was €12.00 when you added it."
    pub price_note: Option<String>,
    /// Why the line cannot be bought as it is, if it cannot.
    pub problem: Option<String>,
}

impl LineShown {
    /// `stock_held`: the cart's order holds its stock already, so availability says nothing.
    pub fn new(line: CartLine, currency: Currency, stock_held: bool) -> LineShown {
        let price_note = (line.unit_price_minor_added != line.price_minor).then(|| {
            format!("The price has changed: it was {} when you added it.", currency.format(line.unit_price_minor_added))
        });
        let problem = if !line.active {
            Some("This product is no longer sold. Remove it to check out.".to_owned())
        } else if stock_held {
            None
        } else if line.available <= 0 {
            Some("Out of stock. Remove it to check out.".to_owned())
        } else if line.available < line.quantity {
            Some(format!("Only {} left. Lower the quantity to check out.", line.available))
        } else {
            None
        };
        LineShown {
            unit_price: currency.format(line.price_minor),
            line_total: currency.format(line.price_minor.saturating_mul(i64::from(line.quantity))),
            picture: placeholder(&line.sku, &line.name),
            price_note,
            problem,
            line,
        }
    }
}

/// Shared by the cart and checkout pages.
pub fn total(lines: &[LineShown]) -> i64 {
    lines.iter().map(|shown| shown.line.price_minor.saturating_mul(i64::from(shown.line.quantity))).sum()
}
