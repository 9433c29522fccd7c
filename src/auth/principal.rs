//! The identity a verified token proves, whichever way it was verified
//! (JWT signature or introspection): what policy checks and what is
//! forwarded. Never holds the token itself.

use bytes::Bytes;
use http::HeaderValue;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(test, derive(Default))]
pub struct Principal {
    /// Index of the issuer in the configuration.
    pub issuer: usize,
    /// Fingerprint of the key that verified a JWT; `None` for introspection.
    pub key: Option<[u8; 32]>,
    /// `exp` in seconds since the epoch.
    pub expires_at: f64,
    pub scopes: Vec<String>,
    pub subject: Option<String>,
    pub client_id: Option<String>,
    /// The token's `jti`, for revocation by token id.
    pub token_id: Option<String>,
    /// The token's `iat`, for revocation of a subject or client.
    pub issued_at: Option<f64>,
    /// The token's `aud` values (a string, or the strings of an array), for
    /// the audience binding of a route's resource (RFC 8707).
    pub audiences: Vec<String>,
    /// What the token is bound to (`cnf`); `None` for a bearer token.
    pub binding: Option<super::binding::Binding>,
    /// The claims named in `forward.claims` that the token has, each
    /// rendered once ([`Principal::header_value`]) as the value it is
    /// forwarded as: a cached identity forwards them without rendering
    /// again. A claim whose value cannot be a header is left out.
    pub forwarded: Vec<(String, HeaderValue)>,
}

impl Principal {
    /// [`Principal::forwarded`]: the claims of `names` found in `claims`,
    /// rendered.
    pub fn forwarded_claims(
        names: &[String],
        claims: &Map<String, Value>,
    ) -> Vec<(String, HeaderValue)> {
        names
            .iter()
            .filter_map(|name| {
                let text = Principal::header_value(claims.get(name)?)?;
                let value = HeaderValue::from_maybe_shared(Bytes::from(text)).ok()?;
                Some((name.clone(), value))
            })
            .collect()
    }

    /// The rendered value of the forwarded claim `name`.
    pub fn forwarded_value(&self, name: &str) -> Option<&HeaderValue> {
        self.forwarded
            .iter()
            .find_map(|(claim, value)| (claim == name).then_some(value))
    }

    /// The value of a claim header: strings as they are, numbers and
    /// booleans printed, arrays of those joined with spaces; `None` for
    /// anything else or a value with control characters.
    pub fn header_value(value: &Value) -> Option<String> {
        let scalar = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        let text = match value {
            Value::Array(items) => items
                .iter()
                .map(scalar)
                .collect::<Option<Vec<_>>>()?
                .join(" "),
            other => scalar(other)?,
        };
        let clean = text.bytes().all(|b| b >= 0x20 && b != 0x7f);
        clean.then_some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn forwarded_claims_are_rendered_once_and_found_by_name() {
        let claims = json!({
            "sub": "alice",
            "groups": ["a", "b"],
            "level": 3,
            "nested": {"x": 1},
            "bad": "line\nbreak",
        });
        let names: Vec<String> = ["sub", "groups", "level", "nested", "bad", "absent"]
            .map(String::from)
            .to_vec();
        let p = Principal {
            forwarded: Principal::forwarded_claims(&names, claims.as_object().unwrap()),
            ..Principal::default()
        };
        let value = |name: &str| {
            p.forwarded_value(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(value("sub").as_deref(), Some("alice"));
        assert_eq!(value("groups").as_deref(), Some("a b"));
        assert_eq!(value("level").as_deref(), Some("3"));
        // Not a header value, or not in the token: not forwarded.
        for name in ["nested", "bad", "absent", "unnamed"] {
            assert_eq!(value(name), None, "{name}");
        }
        assert_eq!(p.forwarded.len(), 3);
    }

    #[test]
    fn header_value_table() {
        let cases = [
            (json!("alice"), Some("alice")),
            (json!(42), Some("42")),
            (json!(true), Some("true")),
            (json!(["a", "b"]), Some("a b")),
            (json!(["a", 1]), Some("a 1")),
            (json!(["a", {"x": 1}]), None),
            (json!({"x": 1}), None),
            (json!(null), None),
            (json!("a\r\nX-Injected: 1"), None),
            (json!("tab\there"), None),
            (json!("caf\u{e9}"), Some("caf\u{e9}")),
        ];
        for (v, want) in cases {
            assert_eq!(Principal::header_value(&v).as_deref(), want, "{v}");
        }
    }
}
