//! The admin page for categories: the list, and a form to add one. A product's category is
//! chosen on the product's own form.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{CatalogError, Category, CategoryDraft};
use crate::admin::page::{FormErrors, Layout, PageError, Section, render, render_with_status, see_other};
use crate::admin::session::{Admin, CsrfForm, CsrfProtected};
use crate::error::AppError;
use crate::http::state::AppState;
use crate::kernel::Module;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/categories").route(web::get().to(list)).route(web::post().to(create)));
}

/// The new-category form's fields as typed, kept to re-render the form with messages.
#[derive(Debug, Default, Deserialize)]
pub struct CategoryForm {
    csrf_token: String,
    slug: String,
    name: String,
}

impl CsrfProtected for CategoryForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

#[derive(Template)]
#[template(path = "catalog/templates/categories.html")]
struct CategoriesPage {
    layout: Layout,
    categories: Vec<Category>,
    form: CategoryForm,
    errors: FormErrors,
}

impl CategoriesPage {
    fn slug_pattern(&self) -> String {
        super::model::SLUG.html()
    }

    fn field_label(&self, field: &str) -> &'static str {
        match field {
            "slug" => "Slug",
            "name" => "Name",
            _ => "Field",
        }
    }
}

async fn list(state: web::Data<AppState>, admin: Admin) -> Result<HttpResponse, PageError> {
    let categories =
        state.db.read(Module::Catalog.op("list_categories"), admin.read_after(), super::categories).await?;
    render(&CategoriesPage {
        layout: admin.layout(Section::Categories),
        categories,
        form: CategoryForm::default(),
        errors: FormErrors::default(),
    })
}

async fn create(
    state: web::Data<AppState>,
    admin: Admin,
    CsrfForm(form): CsrfForm<CategoryForm>,
) -> Result<HttpResponse, PageError> {
    let draft = CategoryDraft { slug: form.slug.trim().to_owned(), name: form.name.clone() };
    // The inner result is the domain outcome, shown in the form; the outer one is a failure.
    let (created, categories) = state
        .db
        .run(Module::Catalog.op("create_category"), move |conn| -> Result<_, AppError> {
            let slug = draft.slug.clone();
            let created = match super::create_category(conn, draft) {
                Ok(category) => return Ok((Ok(category), Vec::new())),
                // A taken slug is said now too, not only once the name is right.
                Err(CatalogError::Invalid(mut errors)) if super::slug_taken(conn, &slug)? => {
                    errors.insert(0, taken(&slug));
                    Err(errors)
                }
                Err(CatalogError::Invalid(errors)) => Err(errors),
                Err(CatalogError::DuplicateCategorySlug(slug)) => Err(vec![taken(&slug)]),
                Err(other) => return Err(other.into()),
            };
            Ok((created, super::categories(conn)?))
        })
        .await?;
    match created {
        Ok(category) => {
            // Pages that name the categories (the shop's) are cached with the products.
            super::api::forget_cached(&state, super::cache::Change::Everything).await;
            admin.flash(format!("Category {} ({}) created.", category.name, category.slug));
            Ok(see_other("/admin/categories"))
        }
        Err(errors) => render_with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &CategoriesPage { layout: admin.layout(Section::Categories), categories, form, errors: FormErrors(errors) },
        ),
    }
}

fn taken(slug: &str) -> crate::error::FieldError {
    crate::error::FieldError::new("slug", format!("{slug} is taken by another category"))
}
