//! `tokengate check`: what a valid configuration resolves to, and what in it
//! is probably a mistake.
//!
//! [`report`] turns a checked [`Runtime`] into a [`Report`]: the resolved
//! configuration with every default filled in and secrets masked, the route
//! table, and lint warnings (shadowed routes, protected routes a public one
//! catches the misses of, unused upstreams and issuers). [`Report::text`]
//! renders it as TOML (warnings as comments, so the output is itself a valid
//! configuration file apart from the masked secrets), [`Report::json`] as
//! JSON for tooling. Nothing here touches the network.
//!
//! | module | owns |
//! |---|---|
//! | `resolved` | the resolved configuration and route tables |
//! | `lint` | the warnings |
//! | `render` | [`Table`] and its TOML and JSON forms |

mod lint;
mod render;
mod resolved;

use serde_json::{json, Value};
use std::path::Path;

use crate::config::{Config, ConfigErrors};
use crate::runtime::Runtime;

pub use lint::Warning;
pub use render::{Item, Table};

/// What every secret is printed as.
pub const MASK: &str = "***";

/// Everything `tokengate check` prints for a valid configuration.
#[derive(Debug, Clone)]
pub struct Report {
    /// `server`, `admin`, `issuers`, `upstreams`, `forward`.
    pub config: Table,
    /// One table per route, in file order.
    pub routes: Vec<Table>,
    pub warnings: Vec<Warning>,
}

/// Loads and checks `path` (file reads only, no network) and reports on it.
pub fn check(path: &Path) -> Result<Report, ConfigErrors> {
    let config = Config::load(path)?;
    let rt = Runtime::check(config)?;
    Ok(report(&rt))
}

pub fn report(rt: &Runtime) -> Report {
    let c = &rt.config;
    Report {
        config: resolved::config(c),
        routes: c.routes.iter().map(|r| resolved::route(c, r)).collect(),
        warnings: lint::warnings(rt),
    }
}

/// The errors of an invalid configuration, as `--format json` prints them.
pub fn errors_json(errors: &ConfigErrors) -> String {
    let list: Vec<Value> = errors
        .0
        .iter()
        .map(|e| json!({ "key": e.key, "reason": e.reason }))
        .collect();
    json!({ "errors": list }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"

[issuers.corp]
issuer = "https://idp.example.com/"
jwks_uri = "https://idp.example.com/jwks"
audiences = ["api"]

[issuers.corp.introspection]
endpoint = "https://idp.example.com/introspect"
client_id = "gateway"
client_secret = "s3cret-value"

[issuers."other idp"]
issuer = "https://other.example.com/"
discovery = true
audiences = ["api"]

[upstreams.app]
url = "http://127.0.0.1:9/base"

[upstreams.spare]
url = "http://127.0.0.1:10"

[[routes]]
path = "/orders/**"
upstream = "app"
scopes = ["orders:read"]
issuers = ["corp"]

[[routes]]
path = "/orders/*"
methods = ["GET"]
upstream = "app"
"#;

    fn report_of(text: &str) -> Report {
        let config = Config::from_toml(text, Path::new("."), Vec::new()).expect("valid");
        report(&Runtime::check(config).expect("checks"))
    }

    #[test]
    fn text_fills_in_defaults_and_masks_secrets() {
        let text = report_of(CONFIG).text();
        for line in [
            "[server]\nlisten = \"127.0.0.1:0\"\nrealm = \"tokengate\"\n# tls_cert: not set",
            "idle_timeout_ms = 60000",
            "[issuers.corp]\nissuer = \"https://idp.example.com/\"",
            "leeway_s = 60",
            "algorithms = [\"RS256\", \"PS256\", \"ES256\", \"EdDSA\"]",
            "[issuers.corp.introspection]",
            "client_secret = \"***\"",
            "[issuers.\"other idp\"]",
            "discovery = true",
            "url = \"http://127.0.0.1:9/base\"",
            "claims = { client_id = \"x-auth-client-id\", scope = \"x-auth-scope\", sub = \"x-auth-subject\" }",
            "[[routes]] # routes[1]\n# host: not set: every host\npath = \"/orders/*\"\nmethods = [\"GET\"]",
            "issuers = [\"corp\", \"other idp\"]",
            "# warning: routes[1] is shadowed by routes[0] and never matches",
            "# warning: upstreams.spare is not used by any route",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(!text.contains("s3cret-value"), "{text}");
    }

    #[test]
    fn text_is_a_configuration_that_resolves_to_the_same() {
        let first = report_of(CONFIG);
        let again = report_of(&first.text());
        assert_eq!(first.config, again.config);
        assert_eq!(first.routes, again.routes);
        assert_eq!(first.warnings, again.warnings);
    }

    #[test]
    fn json_has_config_routes_and_warnings() {
        let v: Value = serde_json::from_str(&report_of(CONFIG).json()).expect("json");
        assert_eq!(v["config"]["server"]["max_token_bytes"], 8192);
        assert_eq!(v["config"]["admin"], Value::Null);
        assert_eq!(
            v["config"]["issuers"]["corp"]["introspection"]["client_secret"],
            MASK
        );
        assert_eq!(v["routes"][0]["auth"], "required");
        assert_eq!(v["routes"][0]["scopes"][0], "orders:read");
        assert_eq!(v["routes"][1]["methods"][0], "GET");
        assert_eq!(v["routes"][1]["host"], Value::Null);
        assert_eq!(v["warnings"][0]["kind"], "shadowed_route");
    }

    #[test]
    fn usage_warnings_table() {
        let head = "[issuers.a]\nissuer = \"https://a/\"\njwks_uri = \"https://a/jwks\"\naudiences = [\"x\"]\n\
                    [issuers.b]\nissuer = \"https://b/\"\njwks_uri = \"https://b/jwks\"\naudiences = [\"x\"]\n\
                    [upstreams.u]\nurl = \"http://127.0.0.1:1\"\n[upstreams.v]\nurl = \"http://127.0.0.1:2\"\n";
        let route =
            |extra: &str| format!("[[routes]]\npath = \"/**\"\nupstream = \"u\"\n{extra}\n");
        let cases: &[(&str, &[&str])] = &[
            ("", &["upstreams.v is not used by any route"]),
            (
                "issuers = [\"a\"]",
                &[
                    "upstreams.v is not used by any route",
                    "issuers.b is not used: every route that checks tokens lists other issuers",
                ],
            ),
            (
                "auth = \"none\"",
                &[
                    "upstreams.v is not used by any route",
                    "issuers.a has no route: every route has auth = \"none\"",
                    "issuers.b has no route: every route has auth = \"none\"",
                ],
            ),
        ];
        for (extra, want) in cases {
            let got: Vec<String> = report_of(&format!("{head}{}", route(extra)))
                .warnings
                .into_iter()
                .map(|w| w.message)
                .collect();
            assert_eq!(got.len(), want.len(), "{extra}: {got:?}");
            for (g, w) in got.iter().zip(want.iter()) {
                assert!(g.starts_with(w), "{extra}: {g:?} !~ {w:?}");
            }
        }
    }

    #[test]
    fn text_of_an_introspection_only_issuer_has_no_jwt_keys() {
        let text = report_of(
            "[issuers.opaque]\nissuer = \"https://o/\"\naudiences = [\"api\"]\n\
             [issuers.opaque.introspection]\nendpoint = \"https://o/i\"\nclient_id = \"a\"\nclient_secret = \"b\"\n\
             [upstreams.app]\nurl = \"http://127.0.0.1:9\"\n[[routes]]\npath = \"/**\"\nupstream = \"app\"\n",
        )
        .text();
        assert!(
            text.contains(
                "[issuers.opaque]\nissuer = \"https://o/\"\n\
                 # jwks_uri: no key source: opaque tokens only (introspection)\n\
                 audiences = [\"api\"]\nleeway_s = 60\nscope_claims = [\"scope\", \"scp\"]\n"
            ),
            "{text}"
        );
        for jwt_only in ["algorithms", "profile", "required_claims", "jwks_refresh_s"] {
            assert!(!text.contains(jwt_only), "{jwt_only} in:\n{text}");
        }
    }

    #[test]
    fn errors_json_lists_key_and_reason() {
        let errors = ConfigErrors(vec![crate::config::ConfigError::new(
            "server.listen",
            "bad",
        )]);
        let v: Value = serde_json::from_str(&errors_json(&errors)).expect("json");
        assert_eq!(
            v,
            json!({ "errors": [{ "key": "server.listen", "reason": "bad" }] })
        );
    }
}
