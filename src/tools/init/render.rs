//! The starter configuration `tokengate init` writes: TOML with a comment
//! on every key, from the answers and what discovery found.

use serde_json::Value;
use std::fmt::Write;

use super::{Discovered, InitArgs, RouteSpec};

/// A TOML basic string.
fn quoted(s: &str) -> String {
    Value::from(s).to_string()
}

/// `line`, then its comment aligned in one column.
fn commented(out: &mut String, line: &str, comment: &str) {
    let _ = writeln!(out, "{line:<40} # {comment}");
}

/// The configuration file for these answers.
pub fn render(args: &InitArgs, found: Option<&Discovered>) -> String {
    let mut out = String::from(
        "# tokengate configuration, written by `tokengate init`.\n\
         # Only the keys you need are set; every other key has the default shown in\n\
         # config/tokengate.example.toml, the full reference (TLS, admin endpoint,\n\
         # introspection, header forwarding, timeouts).\n\
         # Check it with `tokengate check --config FILE`; run it with `tokengate run --config FILE`.\n\n",
    );
    commented(&mut out, "[server]", "the gateway's own listener");
    commented(
        &mut out,
        &format!("listen = {}", quoted(&args.listen)),
        "address:port; plain HTTP unless tls_cert and tls_key are set",
    );
    out.push('\n');
    commented(
        &mut out,
        "[issuers.main]",
        "one table per trusted token issuer; \"main\" is its name",
    );
    commented(
        &mut out,
        &format!("issuer = {}", quoted(&args.issuer)),
        "the exact `iss` of your tokens (a trailing slash matters)",
    );
    commented(
        &mut out,
        "discovery = true",
        "signing keys via {issuer}/.well-known/openid-configuration, fetched at start",
    );
    match found.and_then(|d| d.jwks_uri.as_deref()) {
        Some(uri) => commented(
            &mut out,
            &format!("# jwks_uri = {}", quoted(uri)),
            "found by discovery: use instead of discovery = true to skip that fetch",
        ),
        None => commented(
            &mut out,
            "# jwks_uri = \"https://...\"",
            "or the key set URL instead of discovery = true (or jwks_file)",
        ),
    }
    commented(
        &mut out,
        &format!("audiences = [{}]", quoted(&args.audience)),
        "a token's `aud` must contain one of these",
    );
    if let Some(endpoint) = found.and_then(|d| d.introspection_endpoint.as_deref()) {
        out.push_str(
            "# Opaque (non-JWT) tokens: uncomment to check them at the provider's\n\
             # introspection endpoint (found by discovery) with this client.\n",
        );
        let _ = writeln!(out, "# [issuers.main.introspection]");
        let _ = writeln!(out, "# endpoint = {}", quoted(endpoint));
        let _ = writeln!(out, "# client_id = \"tokengate\"");
        let _ = writeln!(
            out,
            "# client_secret = \"change-me\"   # better: TOKENGATE_ISSUERS__MAIN__INTROSPECTION__CLIENT_SECRET"
        );
    }
    out.push('\n');
    commented(&mut out, "[upstreams.app]", "your API; \"app\" is its name");
    commented(
        &mut out,
        &format!("url = {}", quoted(&args.upstream)),
        "accepted requests are forwarded here",
    );
    let default_route = [RouteSpec {
        path: "/**".into(),
        scopes: Vec::new(),
    }];
    let routes = if args.routes.is_empty() {
        &default_route[..]
    } else {
        &args.routes[..]
    };
    for r in routes {
        out.push('\n');
        commented(
            &mut out,
            "[[routes]]",
            "tried in file order; the first match wins; no match: 404",
        );
        commented(
            &mut out,
            &format!("path = {}", quoted(&r.path)),
            "\"*\" matches one segment; a trailing \"/**\" the prefix and all below",
        );
        commented(&mut out, "upstream = \"app\"", "the [upstreams.app] table");
        if r.scopes.is_empty() {
            commented(
                &mut out,
                "auth = \"required\"",
                "a valid token is required; \"none\" makes the route public",
            );
        } else {
            let scopes: Vec<String> = r.scopes.iter().map(|s| quoted(s)).collect();
            commented(
                &mut out,
                &format!("scopes = [{}]", scopes.join(", ")),
                "a valid token carrying all of these scopes is required",
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::args;
    use super::super::validate;
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn render_writes_a_file_that_checks_with_a_comment_on_every_key() {
        for issuer in ["https://idp.example.com/", "http://127.0.0.1:9000/"] {
            let found = Discovered {
                issuer: issuer.into(),
                jwks_uri: Some("https://idp.example.com/keys".into()),
                introspection_endpoint: Some("https://idp.example.com/introspect".into()),
                ..Discovered::default()
            };
            for found in [None, Some(&found)] {
                let a = args(issuer, &["/health", "/orders/**:orders:read,orders:list"]);
                let text = render(&a, found);
                validate(&text, Path::new("tokengate.toml")).expect("checks");
                for line in text
                    .lines()
                    .filter(|l| !l.starts_with('#') && !l.is_empty())
                {
                    assert!(line.contains(" # "), "no comment: {line:?}");
                }
                assert!(text.contains("config/tokengate.example.toml"));
                let config = Config::from_toml(&text, Path::new("."), Vec::new()).expect("loads");
                assert_eq!(config.routes.len(), 2);
                assert_eq!(config.routes[1].scopes, ["orders:read", "orders:list"]);
                assert_eq!(config.issuers[0].issuer, issuer);
            }
        }
    }

    #[test]
    fn render_default_route_protects_everything() {
        let text = render(&args("https://idp.example.com/", &[]), None);
        let config = Config::from_toml(&text, Path::new("."), Vec::new()).expect("loads");
        assert_eq!(config.routes.len(), 1);
        assert_eq!(config.routes[0].path.as_str(), "/**");
        assert_eq!(config.routes[0].auth, crate::config::AuthMode::Required);
    }
}
