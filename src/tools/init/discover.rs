//! `tokengate init --discover`: the discovery URL of an issuer, fetching
//! the OpenID discovery document once and checking that it names the same
//! issuer, and the summary of what it advertises.

use http::Uri;
use serde_json::Value;
use std::time::Duration;

use super::{Discovered, InitError};
use crate::config::fetch_scheme;
use crate::fetch::HttpFetcher;

/// The whole discovery exchange must finish within this (the default
/// `jwks_timeout_ms`).
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// A discovery document is a few kilobytes; more is not one.
const MAX_DISCOVERY_BYTES: usize = 1 << 20;

/// `{issuer without trailing /}/.well-known/openid-configuration`, `https`
/// unless the host is loopback (as the configuration requires).
pub fn discovery_url(issuer: &str) -> Result<Uri, InitError> {
    let bad = |why| InitError::Issuer(issuer.to_string(), why);
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let uri: Uri = url.parse().map_err(|_| bad("not an absolute URL"))?;
    if uri.host().is_none() {
        return Err(bad("not an absolute URL"));
    }
    fetch_scheme(&uri).map_err(bad)?;
    Ok(uri)
}

/// Fetches the discovery document and checks that it names `issuer`.
pub async fn discover(issuer: &str, url: &Uri) -> Result<Discovered, InitError> {
    let failed = |reason: String| InitError::Discovery {
        url: url.to_string(),
        reason,
    };
    let fetcher = HttpFetcher::new().map_err(failed)?;
    let (doc, _) = fetcher
        .get_json(url, DISCOVERY_TIMEOUT, MAX_DISCOVERY_BYTES)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let found = parse_discovery(&doc).ok_or_else(|| failed("the document has no issuer".into()))?;
    if found.issuer != issuer {
        return Err(InitError::IssuerMismatch {
            url: url.to_string(),
            found: found.issuer,
            expected: issuer.to_string(),
        });
    }
    Ok(found)
}

fn parse_discovery(doc: &Value) -> Option<Discovered> {
    let string = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
    let list = |k: &str| -> Vec<String> {
        doc.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    Some(Discovered {
        issuer: string("issuer")?,
        jwks_uri: string("jwks_uri"),
        signing_algorithms: list("id_token_signing_alg_values_supported"),
        scopes: list("scopes_supported"),
        introspection_endpoint: string("introspection_endpoint"),
    })
}

/// What discovery found, one line per field.
pub fn summary(d: &Discovered) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "(not advertised)".to_string()
        } else {
            v.join(" ")
        }
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not advertised)".into());
    let supported: Vec<&str> = d
        .signing_algorithms
        .iter()
        .map(String::as_str)
        .filter(|a| crate::config::Algorithm::from_name(a).is_some())
        .collect();
    format!(
        "discovery:\n  issuer: {}\n  jwks_uri: {}\n  id_token_signing_alg_values_supported: {}{}\n  \
         scopes_supported: {}\n  introspection_endpoint: {}\n",
        d.issuer,
        opt(&d.jwks_uri),
        list(&d.signing_algorithms),
        if d.signing_algorithms.is_empty() || !supported.is_empty() {
            String::new()
        } else {
            " (none of these is one tokengate accepts: RS*, PS*, ES256, ES384, EdDSA)".into()
        },
        list(&d.scopes),
        opt(&d.introspection_endpoint),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_url_requires_https_except_loopback() {
        let cases = [
            (
                "https://idp.example.com/",
                Some("https://idp.example.com/.well-known/openid-configuration"),
            ),
            (
                "https://idp.example.com/realms/x",
                Some("https://idp.example.com/realms/x/.well-known/openid-configuration"),
            ),
            (
                "http://127.0.0.1:9000",
                Some("http://127.0.0.1:9000/.well-known/openid-configuration"),
            ),
            (
                "http://localhost/",
                Some("http://localhost/.well-known/openid-configuration"),
            ),
            ("http://idp.example.com/", None),
            ("ftp://idp.example.com/", None),
            ("idp.example.com", None),
        ];
        for (issuer, want) in cases {
            let got = discovery_url(issuer).ok().map(|u| u.to_string());
            assert_eq!(got.as_deref(), want, "{issuer}");
        }
    }

    #[test]
    fn parse_discovery_reads_the_advertised_fields() {
        let doc = serde_json::json!({
            "issuer": "https://idp/",
            "jwks_uri": "https://idp/keys",
            "id_token_signing_alg_values_supported": ["RS256", "HS256"],
            "scopes_supported": ["openid", "orders:read"],
        });
        let d = parse_discovery(&doc).expect("parses");
        assert_eq!(d.jwks_uri.as_deref(), Some("https://idp/keys"));
        assert_eq!(d.signing_algorithms, ["RS256", "HS256"]);
        assert_eq!(d.introspection_endpoint, None);
        let s = summary(&d);
        assert!(s.contains("scopes_supported: openid orders:read"), "{s}");
        assert!(
            s.contains("introspection_endpoint: (not advertised)"),
            "{s}"
        );
        assert_eq!(parse_discovery(&serde_json::json!({"jwks_uri": "x"})), None);
    }
}
