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

use serde_json::{json, Map, Value};
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use crate::config::{
    AuthMode, ClientAuthMethod, Config, ConfigErrors, IssuerConfig, KeySource, Profile,
    RouteConfig, Scheme, UpstreamConfig,
};
use crate::route::FallThrough;
use crate::runtime::Runtime;

/// What every secret is printed as.
pub const MASK: &str = "***";

/// An ordered table of resolved keys (file order, not alphabetical).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table(pub Vec<(String, Item)>);

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Value(Value),
    Table(Table),
    /// A key that is not set, with what that means (`null` in JSON).
    Unset(&'static str),
}

impl Table {
    fn with(mut self, key: &str, value: impl Into<Value>) -> Table {
        self.0.push((key.to_string(), Item::Value(value.into())));
        self
    }
    fn with_table(mut self, key: &str, table: Table) -> Table {
        self.0.push((key.to_string(), Item::Table(table)));
        self
    }
    fn with_unset(mut self, key: &str, meaning: &'static str) -> Table {
        self.0.push((key.to_string(), Item::Unset(meaning)));
        self
    }
    fn with_option(self, key: &str, value: Option<Value>, meaning: &'static str) -> Table {
        match value {
            Some(v) => self.with(key, v),
            None => self.with_unset(key, meaning),
        }
    }

    /// The table as a JSON object (key order is lost).
    pub fn to_json(&self) -> Value {
        let map: Map<String, Value> = self
            .0
            .iter()
            .map(|(k, item)| {
                let v = match item {
                    Item::Value(v) => v.clone(),
                    Item::Table(t) => t.to_json(),
                    Item::Unset(_) => Value::Null,
                };
                (k.clone(), v)
            })
            .collect();
        Value::Object(map)
    }
}

/// One lint finding; never changes the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `shadowed_route`, `fall_through`, `unused_upstream`, `unused_issuer`
    /// or `issuer_without_route`.
    pub kind: &'static str,
    pub message: String,
}

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
        config: resolved(c),
        routes: c.routes.iter().map(|r| route(c, r)).collect(),
        warnings: warnings(rt),
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

fn ms(d: Duration) -> Value {
    Value::from(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn secs(d: Duration) -> Value {
    Value::from(d.as_secs())
}

fn strings<T: ToString>(items: impl IntoIterator<Item = T>) -> Value {
    Value::from(items.into_iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

fn resolved(c: &Config) -> Table {
    let s = &c.server;
    let server = Table::default()
        .with("listen", s.listen.to_string())
        .with("realm", s.realm.clone());
    let server = match &s.tls {
        Some(tls) => server
            .with("tls_cert", tls.cert.display().to_string())
            .with("tls_key", tls.key.display().to_string()),
        None => server
            .with_unset("tls_cert", "not set: plain HTTP")
            .with_unset("tls_key", "not set: plain HTTP"),
    };
    let server = server
        .with("trusted_proxies", strings(&s.trusted_proxies))
        .with("header_read_timeout_ms", ms(s.header_read_timeout))
        .with("tls_handshake_timeout_ms", ms(s.tls_handshake_timeout))
        .with("idle_timeout_ms", ms(s.idle_timeout))
        .with("max_header_bytes", s.max_header_bytes)
        .with("max_connections", s.max_connections)
        .with("max_token_bytes", s.max_token_bytes)
        .with("identity_cache_size", s.identity_cache_size)
        .with("shutdown_grace_ms", ms(s.shutdown_grace))
        .with("worker_threads", s.worker_threads.unwrap_or(0))
        .with("watch_config", s.watch_config)
        .with("allow_underscore_headers", s.allow_underscore_headers)
        .with("body_read_timeout_ms", ms(s.body_read_timeout))
        .with("h2_max_concurrent_streams", s.h2.max_concurrent_streams)
        .with(
            "h2_max_pending_accept_reset_streams",
            s.h2.max_pending_accept_reset_streams,
        )
        .with(
            "h2_max_local_error_reset_streams",
            s.h2.max_local_error_reset_streams,
        );
    let mut root = Table::default().with_table("server", server);
    root = match &c.admin {
        Some(a) => root.with_table(
            "admin",
            Table::default().with("listen", a.listen.to_string()),
        ),
        None => root.with_unset("admin", "not configured: no admin endpoints"),
    };
    let issuers = Table(
        c.issuers
            .iter()
            .map(|i| (i.name.clone(), Item::Table(issuer(i))))
            .collect(),
    );
    let upstreams = Table(
        c.upstreams
            .iter()
            .map(|u| (u.name.clone(), Item::Table(upstream(u))))
            .collect(),
    );
    let claims: Map<String, Value> = c
        .forward
        .claims
        .iter()
        .map(|(claim, header)| (claim.clone(), Value::from(header.as_str())))
        .collect();
    let forward = Table::default()
        .with("claims", Value::Object(claims))
        .with("strip_authorization", c.forward.strip_authorization);
    root.with_table("issuers", issuers)
        .with_table("upstreams", upstreams)
        .with_table("forward", forward)
}

fn issuer(i: &IssuerConfig) -> Table {
    let t = Table::default().with("issuer", i.issuer.clone());
    let Some(jwt) = &i.jwt else {
        let t = t
            .with_unset(
                "jwks_uri",
                "no key source: opaque tokens only (introspection)",
            )
            .with("audiences", strings(&i.audiences))
            .with("leeway_s", secs(i.leeway))
            .with("scope_claims", strings(&i.scope_claims));
        return introspection(t, i);
    };
    let t = match &jwt.key_source {
        KeySource::Url(u) => t.with("jwks_uri", u.to_string()),
        KeySource::File(f) => t.with("jwks_file", f.display().to_string()),
        KeySource::Discovery(_) => t.with("discovery", true),
    };
    let t = t
        .with("audiences", strings(&i.audiences))
        .with(
            "algorithms",
            strings(jwt.algorithms.iter().map(|a| a.name())),
        )
        .with("leeway_s", secs(i.leeway))
        .with(
            "profile",
            match jwt.profile {
                Profile::Generic => "generic",
                Profile::Rfc9068 => "rfc9068",
            },
        )
        .with("required_claims", strings(&jwt.required_claims))
        .with("scope_claims", strings(&i.scope_claims))
        .with("jwks_refresh_s", secs(jwt.jwks_refresh))
        .with("jwks_miss_cooldown_s", secs(jwt.jwks_miss_cooldown))
        .with("jwks_max_stale_s", secs(jwt.jwks_max_stale))
        .with("jwks_timeout_ms", ms(jwt.jwks_timeout));
    introspection(t, i)
}

/// `t` with the issuer's `[introspection]` table, or a note that it has none.
fn introspection(t: Table, i: &IssuerConfig) -> Table {
    match &i.introspection {
        Some(x) => t.with_table(
            "introspection",
            Table::default()
                .with("endpoint", x.endpoint.to_string())
                .with("client_id", x.client_id.clone())
                .with("client_secret", MASK)
                .with(
                    "auth_method",
                    match x.auth_method {
                        ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
                        ClientAuthMethod::ClientSecretPost => "client_secret_post",
                    },
                )
                .with("cache_ttl_s", secs(x.cache_ttl))
                .with("negative_cache_ttl_s", secs(x.negative_cache_ttl))
                .with("timeout_ms", ms(x.timeout))
                .with("max_concurrent", x.max_concurrent),
        ),
        None => t.with_unset("introspection", "not configured: JWTs only"),
    }
}

/// The upstream URL as configured (user information is refused at load).
fn upstream_url(u: &UpstreamConfig) -> String {
    let scheme = match u.scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    format!("{scheme}://{}{}", u.authority, u.base_path)
}

fn upstream(u: &UpstreamConfig) -> Table {
    Table::default()
        .with("url", upstream_url(u))
        .with("timeout_ms", ms(u.timeout))
        .with("connect_timeout_ms", ms(u.connect_timeout))
        .with("preserve_host", u.preserve_host)
        .with("max_connections", u.max_connections)
        .with_option(
            "ca_file",
            u.ca_file.as_ref().map(|f| f.display().to_string().into()),
            "not set: the built-in web PKI roots",
        )
        .with("pool_idle_timeout_ms", ms(u.pool_idle_timeout))
        .with("pool_max_idle_per_host", u.pool_max_idle_per_host)
}

fn auth_name(a: AuthMode) -> &'static str {
    match a {
        AuthMode::Required => "required",
        AuthMode::Optional => "optional",
        AuthMode::None => "none",
    }
}

fn route(c: &Config, r: &RouteConfig) -> Table {
    Table::default()
        .with_option(
            "host",
            r.host.clone().map(Value::from),
            "not set: every host",
        )
        .with("path", r.path.as_str())
        .with_option(
            "methods",
            r.methods
                .as_ref()
                .map(|m| strings(m.iter().map(|m| m.as_str()))),
            "not set: every method",
        )
        .with("upstream", c.upstreams[r.upstream].name.clone())
        .with("auth", auth_name(r.auth))
        .with("scopes", strings(&r.scopes))
        .with("any_scopes", strings(&r.any_scopes))
        .with(
            "issuers",
            strings(r.issuers.iter().map(|&i| c.issuers[i].name.as_str())),
        )
        .with_option(
            "strip_prefix",
            r.strip_prefix.clone().map(Value::from),
            "not set: the path is forwarded whole",
        )
        .with("case_sensitive", r.case_sensitive)
}

fn warnings(rt: &Runtime) -> Vec<Warning> {
    let c = &rt.config;
    let mut out: Vec<Warning> = rt
        .routes
        .shadowed()
        .into_iter()
        .map(|(shadowed, by)| Warning {
            kind: "shadowed_route",
            message: format!("routes[{shadowed}] is shadowed by routes[{by}] and never matches"),
        })
        .collect();
    let protected: Vec<bool> = c
        .routes
        .iter()
        .map(|r| r.auth == AuthMode::Required)
        .collect();
    out.extend(rt.routes.fall_through(&protected).iter().map(|f| Warning {
        kind: "fall_through",
        message: fall_through_warning(c, f),
    }));
    out.extend(usage_warnings(c));
    out
}

/// Upstreams no route forwards to; issuers no token-checking route can use.
fn usage_warnings(c: &Config) -> Vec<Warning> {
    let mut out = Vec::new();
    for (n, u) in c.upstreams.iter().enumerate() {
        if !c.routes.iter().any(|r| r.upstream == n) {
            out.push(Warning {
                kind: "unused_upstream",
                message: format!("upstreams.{} is not used by any route", u.name),
            });
        }
    }
    let checking: Vec<&RouteConfig> = c
        .routes
        .iter()
        .filter(|r| r.auth != AuthMode::None)
        .collect();
    for (n, i) in c.issuers.iter().enumerate() {
        if checking.is_empty() {
            out.push(Warning {
                kind: "issuer_without_route",
                message: format!(
                    "issuers.{} has no route: every route has auth = \"none\", so no token is ever checked",
                    i.name
                ),
            });
        } else if !checking.iter().any(|r| r.issuers.contains(&n)) {
            out.push(Warning {
                kind: "unused_issuer",
                message: format!(
                    "issuers.{} is not used: every route that checks tokens lists other issuers in `issuers`",
                    i.name
                ),
            });
        }
    }
    out
}

/// One "fall-through to public" warning: which routes, how a request slips
/// from the protected one to the public one, and what closes the gap.
fn fall_through_warning(c: &Config, f: &FallThrough) -> String {
    let public = &c.routes[f.public];
    let protected = &c.routes[f.protected];
    let auth = match public.auth {
        AuthMode::Optional => "optional",
        _ => "none",
    };
    let by = match (f.by_case, f.by_method) {
        (true, true) => "by case or method",
        (true, false) => "by case",
        _ => "by method",
    };
    let mut fixes = Vec::new();
    if f.by_case {
        fixes.push(format!(
            "set case_sensitive = false on routes[{}] if its upstream folds case",
            f.protected
        ));
    }
    if f.by_method {
        fixes.push(format!(
            "add an explicit deny (a route for {} without methods, auth = \"required\") before routes[{}]",
            protected.path, f.public
        ));
    }
    format!(
        "routes[{}] ({}{}, auth={auth}) catches requests that miss routes[{}] ({}{}) {by}: {}",
        f.public,
        public.host.as_deref().unwrap_or(""),
        public.path,
        f.protected,
        protected.host.as_deref().unwrap_or(""),
        protected.path,
        fixes.join("; ")
    )
}

impl Report {
    /// TOML: the resolved configuration, each route headed by its index,
    /// then the warnings as `# warning: ...` comment lines.
    pub fn text(&self) -> String {
        let mut out =
            String::from("# Resolved configuration: every default filled in, secrets masked.\n");
        write_table(&mut out, "", &self.config);
        for (n, r) in self.routes.iter().enumerate() {
            let _ = writeln!(out, "\n[[routes]] # routes[{n}]");
            write_table(&mut out, "routes", r);
        }
        if !self.warnings.is_empty() {
            out.push('\n');
        }
        for w in &self.warnings {
            let _ = writeln!(out, "# warning: {}", w.message);
        }
        out
    }

    /// `{"config": {...}, "routes": [...], "warnings": [{"kind", "message"}]}`.
    pub fn json(&self) -> String {
        let warnings: Vec<Value> = self
            .warnings
            .iter()
            .map(|w| json!({ "kind": w.kind, "message": w.message }))
            .collect();
        json!({
            "config": self.config.to_json(),
            "routes": self.routes.iter().map(Table::to_json).collect::<Vec<_>>(),
            "warnings": warnings,
        })
        .to_string()
    }
}

/// A table's own keys first, then its subtables under `[prefix.key]`.
fn write_table(out: &mut String, prefix: &str, t: &Table) {
    for (k, item) in &t.0 {
        match item {
            Item::Value(v) => {
                let _ = writeln!(out, "{} = {}", toml_key(k), toml_value(v));
            }
            Item::Unset(meaning) => {
                let _ = writeln!(out, "# {k}: {meaning}");
            }
            Item::Table(_) => {}
        }
    }
    for (k, item) in &t.0 {
        if let Item::Table(sub) = item {
            let path = if prefix.is_empty() {
                toml_key(k)
            } else {
                format!("{prefix}.{}", toml_key(k))
            };
            if sub.0.iter().any(|(_, i)| !matches!(i, Item::Table(_))) {
                let _ = writeln!(out, "\n[{path}]");
            }
            write_table(out, &path, sub);
        }
    }
}

fn toml_key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        k.to_string()
    } else {
        Value::from(k).to_string()
    }
}

/// JSON strings, numbers, booleans and arrays are TOML as written; objects
/// become inline tables.
fn toml_value(v: &Value) -> String {
    match v {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(toml_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), toml_value(v)))
                .collect();
            format!("{{ {} }}", inner.join(", "))
        }
        other => other.to_string(),
    }
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

    #[test]
    fn toml_key_quotes_only_when_needed() {
        let cases = [
            ("corp", "corp"),
            ("a-b_9", "a-b_9"),
            ("a b", "\"a b\""),
            ("a.b", "\"a.b\""),
            ("", "\"\""),
        ];
        for (k, want) in cases {
            assert_eq!(toml_key(k), want);
        }
    }
}
