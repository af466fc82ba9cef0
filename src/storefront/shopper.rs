//! Who is shopping: the cart cookie, and the CSRF token of the shop's forms.
//!
//! The cookie `agora_cart` holds 256 random bits and nothing else; the database keeps only their
//! SHA-256, so neither the cookie's value nor a copy of `carts` tells anything about another
//! cart. A shopper gets the cookie on the first page with a form, before any cart row exists.
//!
//! The shop's forms carry an HMAC of the cookie's value under the server's cookie key: a page
//! on another site can make the browser send the cookie, but cannot read it, nor the token.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::http::admin_token::constant_time_eq;

pub const CART_COOKIE: &str = "agora_cart";
/// 32 bytes in unpadded base64url.
const TOKEN_LENGTH: usize = 43;
/// The cookie outlives the cart by a day: the cart goes after 30 idle days.
const COOKIE_DAYS: i64 = 31;

/// The shopper's cart token, read from the cookie or new.
#[derive(Clone, Debug)]
pub struct Shopper {
    token: String,
    /// The browser has not got this token yet: the response sets the cookie.
    fresh: bool,
}

impl Shopper {
    /// The shopper of `request`; a request without a well-formed cookie gets a new token.
    pub fn of(request: &HttpRequest) -> Shopper {
        match request.cookie(CART_COOKIE).map(|cookie| cookie.value().to_owned()).filter(|token| well_formed(token)) {
            Some(token) => Shopper { token, fresh: false },
            None => Shopper::new(),
        }
    }

    /// A new cart token, for a new shopper or a new cart after a paid one.
    pub fn new() -> Shopper {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Shopper { token: URL_SAFE_NO_PAD.encode(bytes), fresh: true }
    }

    /// Whether the request came with this token (a form post from a browser that has none
    /// cannot be the shopper's own).
    pub fn has_cookie(&self) -> bool {
        !self.fresh
    }

    /// What `carts.token_sha256` holds for this shopper.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.token.as_bytes()).into()
    }

    /// The CSRF token of this shopper's forms.
    pub fn csrf_token(&self, key: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        // Names its purpose, so that the same key signing something else never yields this.
        mac.update(b"agora storefront csrf\0");
        mac.update(self.token.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether a posted form's token is this shopper's.
    pub fn verify_csrf(&self, key: &[u8], presented: &str) -> bool {
        self.has_cookie() && constant_time_eq(self.csrf_token(key).as_bytes(), presented.as_bytes())
    }

    /// Sets the cookie on `response` when the browser does not have it yet.
    pub fn attach(&self, response: &mut HttpResponse, secure: bool) {
        if self.fresh {
            let _ = response.add_cookie(&self.cookie(secure));
        }
    }

    fn cookie(&self, secure: bool) -> Cookie<'static> {
        Cookie::build(CART_COOKIE, self.token.clone())
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(secure)
            .max_age(CookieDuration::days(COOKIE_DAYS))
            .finish()
    }
}

fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_LENGTH && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_well_formed() {
        let (a, b) = (Shopper::new(), Shopper::new());
        assert!(well_formed(&a.token) && well_formed(&b.token));
        assert_ne!(a.token, b.token);
        assert!(!well_formed("short"));
        assert!(!well_formed(&"=".repeat(TOKEN_LENGTH)));
    }

    #[test]
    fn the_csrf_token_is_bound_to_the_cart_token_and_the_key() {
        let shopper = Shopper { token: "A".repeat(TOKEN_LENGTH), fresh: false };
        let other = Shopper { token: "B".repeat(TOKEN_LENGTH), fresh: false };
        let token = shopper.csrf_token(b"key one");
        assert!(shopper.verify_csrf(b"key one", &token));
        assert!(!shopper.verify_csrf(b"key two", &token));
        assert!(!other.verify_csrf(b"key one", &token));
        // A browser without the cookie has a fresh token: nothing it posts is its own.
        let fresh = Shopper { fresh: true, ..shopper.clone() };
        assert!(!fresh.verify_csrf(b"key one", &token));
    }
}
