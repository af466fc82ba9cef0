//! Methods the way RFC 9110 has them: HEAD wherever GET works, OPTIONS naming what a path
//! allows, and 405 with `Allow` (not 404) for a known path asked with a method it does not take.
//!
//! actix-web routes each `#[get]`/`#[post]` handler as a resource of its own, so a wrong method
//! falls through to the default 404, which is turned into the right answer here. The paths and
//! their methods are known exactly from the OpenAPI document, which is collected from the same
//! registrations as the routes. The admin pages register one resource per path with a route per
//! method, so actix-web answers their wrong methods with 405 and `Allow` itself; HEAD and OPTIONS
//! are added here.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};

use crate::error::AppError;

/// The documented paths and the methods each takes.
pub struct RouteTable {
    routes: Vec<(ResourceDef, Vec<Method>)>,
}

impl RouteTable {
    /// Reads the paths of an OpenAPI document, plus routes it does not describe (the document itself).
    pub fn from_openapi(document: &str, undocumented: &[(&str, Method)]) -> RouteTable {
        let document: serde_json::Value = serde_json::from_str(document).unwrap_or_default();
        let mut routes: Vec<(ResourceDef, Vec<Method>)> = Vec::new();
        let mut add = |path: &str, method: Method| match routes.iter_mut().find(|(def, _)| def.pattern() == Some(path))
        {
            Some((_, methods)) => methods.push(method),
            None => routes.push((ResourceDef::new(path), vec![method])),
        };
        if let Some(paths) = document["paths"].as_object() {
            for (path, operations) in paths {
                for name in operations.as_object().into_iter().flat_map(|operations| operations.keys()) {
                    if let Ok(method) = Method::from_bytes(name.to_ascii_uppercase().as_bytes()) {
                        add(path, method);
                    }
                }
            }
        }
        for (path, method) in undocumented {
            add(path, method.clone());
        }
        RouteTable { routes }
    }

    /// The methods `path` takes, if it is a known path.
    pub fn allowed(&self, path: &str) -> Option<Vec<Method>> {
        let mut allowed: Vec<Method> = Vec::new();
        for (def, methods) in &self.routes {
            if def.is_match(path) {
                allowed.extend(methods.iter().cloned());
            }
        }
        if allowed.is_empty() {
            return None;
        }
        if allowed.contains(&Method::GET) {
            allowed.push(Method::HEAD);
        }
        allowed.push(Method::OPTIONS);
        allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        allowed.dedup();
        Some(allowed)
    }
}

fn allow_header(allowed: &[Method]) -> String {
    allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", ")
}

/// Middleware for the whole application. The route table is read only for answers that found
/// no route (404), so the requests that do find one pay nothing for it.
pub async fn conform(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let method = request.method().clone();
    // The HTTP/1 codec remembers that the request was HEAD and sends the GET answer's headers
    // without its body.
    if method == Method::HEAD {
        request.head_mut().method = Method::GET;
    }
    let response = next.call(request).await?;
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        return Ok(complete_resource_allow(method, response));
    }
    if response.status() != StatusCode::NOT_FOUND {
        return Ok(response.map_into_left_body());
    }
    let request = response.request();
    let Some(allowed) = request.app_data::<web::Data<RouteTable>>().and_then(|table| table.allowed(request.path()))
    else {
        return Ok(response.map_into_left_body());
    };
    let answer = if method == Method::OPTIONS {
        HttpResponse::NoContent().insert_header((header::ALLOW, allow_header(&allowed))).finish()
    } else if !allowed.contains(&method) {
        let detail = format!("{} takes {}, not {method}.", request.path(), allow_header(&allowed));
        let mut answer = AppError::method_not_allowed(detail).error_response();
        answer.headers_mut().insert(
            header::ALLOW,
            header::HeaderValue::from_str(&allow_header(&allowed)).expect("method names are header-safe"),
        );
        answer
    } else {
        // A route of this path takes the method: the 404 is the handler's (no such resource).
        return Ok(response.map_into_left_body());
    };
    let (request, _) = response.into_parts();
    Ok(ServiceResponse::new(request, answer).map_into_right_body())
}

/// A 405 of a resource that lists its methods in `Allow`: HEAD goes wherever GET does, and
/// OPTIONS is answered with the list rather than refused.
fn complete_resource_allow<B>(method: Method, mut response: ServiceResponse<B>) -> ServiceResponse<EitherBody<B>> {
    let listed = response.headers().get(header::ALLOW).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let Some(listed) = listed else {
        return response.map_into_left_body();
    };
    let mut allowed: Vec<Method> =
        listed.split(',').filter_map(|name| Method::from_bytes(name.trim().as_bytes()).ok()).collect();
    if allowed.contains(&Method::GET) {
        allowed.push(Method::HEAD);
    }
    allowed.push(Method::OPTIONS);
    allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    allowed.dedup();
    let value = header::HeaderValue::from_str(&allow_header(&allowed)).expect("method names are header-safe");
    if method == Method::OPTIONS {
        let (request, _) = response.into_parts();
        let answer = HttpResponse::NoContent().insert_header((header::ALLOW, value)).finish();
        return ServiceResponse::new(request, answer).map_into_right_body();
    }
    response.headers_mut().insert(header::ALLOW, value);
    response.map_into_left_body()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_list_their_methods_with_head_and_options() {
        let document =
            r#"{"paths": {"/api/products": {"get": {}, "post": {}}, "/api/products/{id}": {"get": {}, "patch": {}}}}"#;
        let table = RouteTable::from_openapi(document, &[("/api/openapi.json", Method::GET)]);
        assert_eq!(allow_header(&table.allowed("/api/products").unwrap()), "GET, HEAD, OPTIONS, POST");
        assert_eq!(allow_header(&table.allowed("/api/products/abc").unwrap()), "GET, HEAD, OPTIONS, PATCH");
        assert_eq!(allow_header(&table.allowed("/api/openapi.json").unwrap()), "GET, HEAD, OPTIONS");
        assert!(table.allowed("/api/products/abc/def").is_none());
        assert!(table.allowed("/admin").is_none());
    }
}
