//! The files under `static/`, compiled into the binary so that it runs from any directory and
//! the admin pages work offline (no CDN).

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, Scope, web};

const FILES: &[(&str, &str, &str)] = &[
    ("admin.css", "text/css; charset=utf-8", include_str!("../../static/admin.css")),
    ("shop.css", "text/css; charset=utf-8", include_str!("../../static/shop.css")),
    ("favicon.svg", "image/svg+xml", include_str!("../../static/favicon.svg")),
];

pub fn scope() -> Scope {
    web::scope("/static").route("/{file}", web::get().to(serve))
}

async fn serve(file: web::Path<String>) -> HttpResponse {
    match FILES.iter().find(|(name, _, _)| *name == file.as_str()) {
        Some((_, content_type, body)) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, *content_type))
            .insert_header((CACHE_CONTROL, "public, max-age=3600"))
            .body(*body),
        None => HttpResponse::NotFound().finish(),
    }
}
