//! Header hygiene in both directions (docs/behavior.md section 8).
//!
//! Request: hop-by-hop headers and every header `Connection` names, incoming
//! copies of the identity headers the gateway sets, routing-override headers
//! a backend might obey, and (unless allowed) names containing `_`, which
//! some servers fold into `-` and so could smuggle an identity header.
//! Response: hop-by-hop headers plus `Proxy-Authenticate`.

use http::header::{HeaderName, CONNECTION, CONTENT_TYPE, COOKIE, TE, TRAILER, UPGRADE};
use http::{HeaderMap, HeaderValue};

use crate::header_names::{is_client_address, is_hop_by_hop, is_routing_override};

/// The headers `Connection` names (RFC 9110 7.6.1); usually none.
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect()
}

/// Removes every header for which `strip` holds, plus those `Connection`
/// names, in one pass over the names present (no work for absent ones).
fn strip_where(headers: &mut HeaderMap, strip: impl Fn(&HeaderName) -> bool) {
    let mut doomed = if headers.contains_key(CONNECTION) {
        connection_named(headers)
    } else {
        Vec::new()
    };
    doomed.extend(headers.keys().filter(|k| strip(k)).cloned());
    for name in doomed {
        headers.remove(name);
    }
}

/// What the request side keeps or drops beyond the fixed lists.
pub struct RequestPolicy<'a> {
    /// Headers the gateway writes from verified claims.
    pub identity_headers: &'a [HeaderName],
    pub allow_underscore_headers: bool,
    /// The peer is a trusted proxy: its client-address headers are kept.
    pub peer_trusted: bool,
    /// A WebSocket upgrade keeps `Connection: upgrade` and `Upgrade`.
    pub upgrade: Option<HeaderValue>,
}

/// Cleans an incoming request's headers before forwarding. The gateway
/// states the client's address in X-Forwarded-*, so an incoming RFC 7239
/// `Forwarded` (which could contradict it) is not passed on either, nor,
/// unless the peer is a trusted proxy, any other client-address header.
pub fn clean_request(headers: &mut HeaderMap, policy: &RequestPolicy) {
    strip_where(headers, |name| {
        is_hop_by_hop(name)
            || is_routing_override(name)
            || name == "forwarded"
            || (!policy.peer_trusted && is_client_address(name))
            || policy.identity_headers.contains(name)
            || (!policy.allow_underscore_headers && name.as_str().contains('_'))
    });
    if let Some(upgrade) = &policy.upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, upgrade.clone());
    }
}

/// Whether the client's `TE` lists `trailers` (RFC 9110 section 10.1.4):
/// the one `TE` value an HTTP/2 upstream is sent, as gRPC servers require.
pub fn asks_for_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("trailers")
        })
}

/// The `Trailer` field an HTTP/1.1 client is answered with when an h2
/// upstream's trailers are relayed to it: the names the upstream declared,
/// and for a gRPC answer the trailers of the gRPC protocol. hyper writes
/// only declared trailers into a chunked body, so others are dropped.
pub fn trailer_declaration(response: &HeaderMap) -> Option<HeaderValue> {
    let mut names: Vec<&str> = response
        .get_all(TRAILER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if is_grpc(response) {
        names.extend(["grpc-status", "grpc-message", "grpc-status-details-bin"]);
    }
    if names.is_empty() {
        return None;
    }
    HeaderValue::from_str(&names.join(", ")).ok()
}

/// A gRPC request: `content-type` `application/grpc` or
/// `application/grpc+<format>` (and `;` parameters).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return false;
    };
    let b = value.as_bytes();
    const GRPC: &[u8] = b"application/grpc";
    b.len() >= GRPC.len()
        && b[..GRPC.len()].eq_ignore_ascii_case(GRPC)
        && matches!(b.get(GRPC.len()), None | Some(b'+' | b';'))
}

/// Joins an h2 request's `cookie` fields into the one header an HTTP/1.1
/// upstream expects, separated by `"; "` (RFC 9113 section 8.2.3).
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut cookies = headers.get_all(COOKIE).iter();
    if cookies.next().is_none() || cookies.next().is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if let Ok(value) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(COOKIE, value);
    }
}

/// Cleans an upstream response's headers; a 101 keeps its upgrade headers.
pub fn clean_response(headers: &mut HeaderMap, switching_protocols: bool) {
    let upgrade = switching_protocols
        .then(|| headers.get(UPGRADE).cloned())
        .flatten();
    strip_where(headers, |name| {
        is_hop_by_hop(name) || name == "proxy-authenticate"
    });
    if let Some(upgrade) = upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, upgrade);
    }
}

/// The `Upgrade` value when the request asks for a WebSocket (RFC 6455 4.1):
/// `Upgrade: websocket` and a `Connection` that lists `upgrade`.
pub fn websocket_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let upgrade = headers.get(UPGRADE)?;
    let is_ws = upgrade
        .to_str()
        .ok()?
        .split(',')
        .any(|p| p.trim().eq_ignore_ascii_case("websocket"));
    let conn_upgrade = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    (is_ws && conn_upgrade).then(|| upgrade.clone())
}

/// A client-supplied request id is kept when it is 1-128 characters of
/// `[A-Za-z0-9._:-]`; otherwise the gateway makes one.
pub fn sane_request_id(value: &HeaderValue) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn clean_request_strips_every_listed_header() {
        let mut h = map(&[
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("http2-settings", "AAA"),
            ("x-original-url", "/admin"),
            ("x-rewrite-url", "/admin"),
            ("x-forwarded-uri", "/admin"),
            ("x-forwarded-prefix", "/admin"),
            ("x-forwarded-path", "/admin"),
            ("x-http-method-override", "DELETE"),
            ("x-http-method", "DELETE"),
            ("x-method-override", "DELETE"),
            ("x-auth-subject", "admin"),
            ("x_auth_subject", "admin"),
            ("forwarded", "for=10.0.0.1;host=admin"),
            ("x-real-ip", "10.0.0.1"),
            ("true-client-ip", "10.0.0.1"),
            ("x-client-ip", "10.0.0.1"),
            ("x-cluster-client-ip", "10.0.0.1"),
            ("forwarded-for", "10.0.0.1"),
            ("accept", "*/*"),
            ("authorization", "Bearer t"),
        ]);
        let ids = [HeaderName::from_static("x-auth-subject")];
        let policy = RequestPolicy {
            identity_headers: &ids,
            allow_underscore_headers: false,
            peer_trusted: false,
            upgrade: None,
        };
        clean_request(&mut h, &policy);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["accept", "authorization"]);
    }

    #[test]
    fn clean_request_underscore_allowed_keeps_them() {
        let mut h = map(&[("x_custom", "1")]);
        let policy = RequestPolicy {
            identity_headers: &[],
            allow_underscore_headers: true,
            peer_trusted: false,
            upgrade: None,
        };
        clean_request(&mut h, &policy);
        assert!(h.contains_key("x_custom"));
    }

    #[test]
    fn clean_request_trusted_peer_keeps_client_address_headers() {
        let mut h = map(&[
            ("x-real-ip", "10.0.0.1"),
            ("true-client-ip", "10.0.0.2"),
            ("forwarded", "for=10.0.0.1"),
        ]);
        let policy = RequestPolicy {
            identity_headers: &[],
            allow_underscore_headers: false,
            peer_trusted: true,
            upgrade: None,
        };
        clean_request(&mut h, &policy);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["x-real-ip", "true-client-ip"]);
    }

    #[test]
    fn join_cookies_table() {
        let cases: [(&[&str], Option<&str>); 3] = [
            (&[], None),
            (&["a=1"], Some("a=1")),
            (&["a=1", "b=2", "c=3"], Some("a=1; b=2; c=3")),
        ];
        for (cookies, want) in cases {
            let pairs: Vec<(&str, &str)> = cookies.iter().map(|c| ("cookie", *c)).collect();
            let mut h = map(&pairs);
            join_cookies(&mut h);
            assert!(h.get_all(COOKIE).iter().count() <= 1, "{cookies:?}");
            assert_eq!(
                h.get(COOKIE).map(|v| v.to_str().unwrap()),
                want,
                "{cookies:?}"
            );
        }
    }

    #[test]
    fn clean_response_strips_hop_by_hop_and_proxy_authenticate() {
        let mut h = map(&[
            ("connection", "x-internal"),
            ("x-internal", "1"),
            ("proxy-authenticate", "Basic"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/plain"),
        ]);
        clean_response(&mut h, false);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["content-type"]);
    }

    #[test]
    fn websocket_upgrade_needs_both_headers() {
        assert!(websocket_upgrade(&map(&[
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade")
        ]))
        .is_some());
        assert!(websocket_upgrade(&map(&[("upgrade", "websocket")])).is_none());
        assert!(
            websocket_upgrade(&map(&[("upgrade", "h2c"), ("connection", "upgrade")])).is_none()
        );
    }

    #[test]
    fn sane_request_id_table() {
        for (v, want) in [
            ("abc-123", true),
            ("a.b:c_d", true),
            ("", false),
            ("a b", false),
            ("x\"y", false),
        ] {
            assert_eq!(
                sane_request_id(&HeaderValue::from_str(v).unwrap()),
                want,
                "{v}"
            );
        }
        assert!(!sane_request_id(
            &HeaderValue::from_str(&"a".repeat(129)).unwrap()
        ));
    }
}
