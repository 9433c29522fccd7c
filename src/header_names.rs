//! The header names the gateway reserves: hop-by-hop headers, headers that
//! override a backend's routing, and headers that state a client's address.
//! A leaf: configuration refuses these names as identity headers, and
//! [`crate::proxy::headers`] strips them from requests and responses.

use http::header::HeaderName;

/// RFC 9110 section 7.6.1 and the usual legacy names.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "http2-settings",
];

const ROUTING_OVERRIDES: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-forwarded-prefix",
    "x-forwarded-path",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Headers in which a client states its own address. A backend that
/// believes one would log or rate-limit the wrong client, so only a trusted
/// proxy may pass them on; the gateway sets `X-Real-IP` itself.
const CLIENT_ADDRESS: &[&str] = &[
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "forwarded-for",
];

/// A header in which a client states its own address.
pub fn is_client_address(name: &HeaderName) -> bool {
    CLIENT_ADDRESS.contains(&name.as_str())
}

/// A hop-by-hop header: never forwarded in either direction.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// A header some backends obey to re-route or re-method a request.
pub fn is_routing_override(name: &HeaderName) -> bool {
    ROUTING_OVERRIDES.contains(&name.as_str())
}
