//! The address a request came from. Behind a load balancer every connection comes from the
//! balancer, so limits kept per client address would lump every client together: one attacker's
//! failed sign-ins would lock everyone out. From a proxy named in `AGORA_TRUSTED_PROXIES`, the
//! client is the last address of `X-Forwarded-For` that is not itself such a proxy; from anyone
//! else the header is ignored, so that a client cannot choose its own address.

use std::net::IpAddr;

use actix_web::HttpRequest;

/// The client's address of `request`, given the proxies whose `X-Forwarded-For` is believed.
pub fn client_address(request: &HttpRequest, trusted_proxies: &[IpAddr]) -> String {
    let Some(peer) = request.peer_addr().map(|address| address.ip()) else { return String::new() };
    if !trusted_proxies.contains(&peer) {
        return peer.to_string();
    }
    // Each proxy appends the address it was reached from; read from the nearest one back.
    let forwarded: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    for hop in forwarded.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(address) if trusted_proxies.contains(&address) => continue,
            Ok(address) => return address.to_string(),
            // Not an address: what lies before it cannot be trusted either.
            Err(_) => break,
        }
    }
    peer.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn from(peer: &str, forwarded: Option<&str>) -> HttpRequest {
        let mut request = TestRequest::default().peer_addr(format!("{peer}:40000").parse().unwrap());
        if let Some(forwarded) = forwarded {
            request = request.insert_header(("X-Forwarded-For", forwarded));
        }
        request.to_http_request()
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        let proxy: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap()];
        assert_eq!(client_address(&from("203.0.113.9", Some("198.51.100.1")), &proxy), "203.0.113.9");
        assert_eq!(client_address(&from("10.0.0.2", Some("198.51.100.1")), &proxy), "198.51.100.1");
        assert_eq!(client_address(&from("10.0.0.2", None), &proxy), "10.0.0.2");
    }

    #[test]
    fn a_client_cannot_put_an_address_of_its_choice_before_the_real_one() {
        let proxies: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap()];
        // The client sent "1.2.3.4" itself; the proxy appended the address it saw.
        let request = from("10.0.0.2", Some("1.2.3.4, 198.51.100.7, 10.0.0.3"));
        assert_eq!(client_address(&request, &proxies), "198.51.100.7");
        assert_eq!(client_address(&from("10.0.0.2", Some("1.2.3.4, garbage")), &proxies), "10.0.0.2");
    }
}
