//! The demo issuer's registered clients and how a request authenticates
//! as one: HTTP Basic or `client_id`/`client_secret` form fields, not both
//! (RFC 6749 section 2.3.1).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::HeaderMap;
use std::collections::HashMap;

use super::form::form_decode;
use super::{oauth_error, OAuthError};

/// A registered demo client.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: &'static str,
    pub secret: &'static str,
    /// Scopes it may request; `None`: it may not use the token endpoint.
    pub scopes: Option<&'static str>,
    /// Issues opaque (introspectable) tokens instead of JWTs.
    pub opaque: bool,
    /// May call the introspection endpoint.
    pub introspects: bool,
    /// May exchange a caller's token for its own (RFC 8693).
    pub exchanges: bool,
}

/// The demo's clients, printed by `tokengate demo`.
pub const CLIENTS: &[Client] = &[
    Client {
        id: "demo-reader",
        secret: "reader-secret",
        scopes: Some("orders:read"),
        opaque: false,
        introspects: false,
        exchanges: false,
    },
    Client {
        id: "demo-writer",
        secret: "writer-secret",
        scopes: Some("orders:read orders:write"),
        opaque: false,
        introspects: false,
        exchanges: false,
    },
    Client {
        id: "demo-opaque",
        secret: "opaque-secret",
        scopes: Some("orders:read"),
        opaque: true,
        introspects: false,
        exchanges: false,
    },
    Client {
        id: "tokengate",
        secret: "introspect-secret",
        scopes: None,
        opaque: false,
        introspects: true,
        exchanges: false,
    },
    Client {
        id: "demo-gateway",
        secret: "gateway-secret",
        scopes: Some("billing:read"),
        opaque: false,
        introspects: false,
        exchanges: true,
    },
];

/// The client authenticated by HTTP Basic or by form fields (not both).
pub(super) fn authenticate(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<&'static Client, OAuthError> {
    let basic = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    let in_form = form.contains_key("client_secret");
    let (id, secret) = match (basic, in_form) {
        (Some(_), true) => {
            return Err(oauth_error(
                "invalid_request",
                "use one client authentication method",
            ))
        }
        (Some(b64), false) => {
            let decoded = STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok());
            let (id, secret) = decoded
                .as_deref()
                .and_then(|d| d.split_once(':'))
                .and_then(|(i, s)| Some((form_decode(i)?, form_decode(s)?)))
                .ok_or(oauth_error(
                    "invalid_client",
                    "malformed client credentials",
                ))?;
            (id, secret)
        }
        (None, true) => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
        (None, false) => {
            return Err(oauth_error(
                "invalid_client",
                "client authentication is required",
            ))
        }
    };
    CLIENTS
        .iter()
        .find(|c| c.id == id && c.secret == secret)
        .ok_or(oauth_error(
            "invalid_client",
            "unknown client or wrong secret",
        ))
}
