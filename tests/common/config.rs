//! The typed configuration builder every test renders its TOML with:
//! `[server]` keys, the admin listener, issuers, upstreams, `[forward]`
//! keys and routes, in the order the tests add them.
//!
//! ```ignore
//! let gw = GatewayConfig::new()
//!     .admin()
//!     .issuer(issuer_table("corp", &idp, ""))
//!     .upstream("echo", &upstream.url())
//!     .route(Route::new("/api/**", "echo").scopes(&["read"]))
//!     .start()
//!     .await;
//! ```
//!
//! Keys the builder has no method for go in verbatim through the `*_with`
//! variants and [`Route::with`]; whole tables through [`GatewayConfig::raw`].

use std::fmt::Write as _;
use std::path::Path;

use super::Gateway;

/// One gateway configuration under construction.
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    server: Vec<String>,
    admin: Option<String>,
    issuers: Vec<String>,
    upstreams: Vec<String>,
    forward: Vec<String>,
    routes: Vec<Route>,
    raw: Vec<String>,
}

impl GatewayConfig {
    pub fn new() -> GatewayConfig {
        GatewayConfig::default()
    }

    /// One upstream `echo` at `url` and the catch-all `/api/**` route
    /// without auth: the usual minimal configuration.
    pub fn open_api(url: &str) -> GatewayConfig {
        GatewayConfig::new()
            .upstream("echo", url)
            .route(Route::open("/api/**", "echo"))
    }

    /// Lines for the `[server]` table.
    pub fn server(mut self, lines: &str) -> GatewayConfig {
        self.server.push(lines.to_string());
        self
    }

    /// The `[admin]` table (its listener is bound by the fixture).
    pub fn admin(self) -> GatewayConfig {
        self.admin_with("")
    }

    /// The `[admin]` table with these lines as well.
    pub fn admin_with(mut self, lines: &str) -> GatewayConfig {
        self.admin = Some(lines.to_string());
        self
    }

    /// A whole issuer table (with its sub-tables), as rendered by
    /// `idp::issuer_table` and friends.
    pub fn issuer(mut self, table: impl Into<String>) -> GatewayConfig {
        self.issuers.push(table.into());
        self
    }

    /// `[upstreams.NAME]` at `url`.
    pub fn upstream(self, name: &str, url: &str) -> GatewayConfig {
        self.upstream_with(name, url, "")
    }

    /// `[upstreams.NAME]` at `url` with these lines as well.
    pub fn upstream_with(mut self, name: &str, url: &str, lines: &str) -> GatewayConfig {
        self.upstreams
            .push(format!("[upstreams.{name}]\nurl = \"{url}\"\n{lines}\n"));
        self
    }

    /// Lines for the `[forward]` table.
    pub fn forward(mut self, lines: &str) -> GatewayConfig {
        self.forward.push(lines.to_string());
        self
    }

    /// One more `[[routes]]` entry, after those already added.
    pub fn route(mut self, route: Route) -> GatewayConfig {
        self.routes.push(route);
        self
    }

    /// Whole tables appended verbatim after everything else.
    pub fn raw(mut self, toml: &str) -> GatewayConfig {
        self.raw.push(toml.to_string());
        self
    }

    /// The TOML text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.server.is_empty() {
            let _ = writeln!(out, "[server]\n{}\n", self.server.join("\n"));
        }
        if let Some(admin) = &self.admin {
            let _ = writeln!(out, "[admin]\nlisten = \"127.0.0.1:0\"\n{admin}\n");
        }
        for table in self.issuers.iter().chain(&self.upstreams) {
            let _ = writeln!(out, "{table}");
        }
        if !self.forward.is_empty() {
            let _ = writeln!(out, "[forward]\n{}\n", self.forward.join("\n"));
        }
        for route in &self.routes {
            let _ = writeln!(out, "{}", route.render());
        }
        for table in &self.raw {
            let _ = writeln!(out, "{table}");
        }
        out
    }

    /// Starts the gateway on this configuration.
    pub async fn start(&self) -> Gateway {
        Gateway::start(&self.render()).await
    }

    /// Starts the gateway; relative paths resolve against `dir`.
    pub async fn start_in(&self, dir: &Path) -> Gateway {
        Gateway::start_in(&self.render(), dir).await
    }

    /// Starts the gateway on `clock` (see [`Gateway::start_on`]).
    pub async fn start_on(&self, clock: &tokengate::clock::Clock) -> Gateway {
        Gateway::start_on(&self.render(), Path::new("."), clock.clone()).await
    }
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone)]
pub struct Route {
    host: Option<String>,
    path: String,
    upstream: String,
    auth: Option<String>,
    scopes: Option<Vec<String>>,
    any_scopes: Option<Vec<String>>,
    issuers: Option<Vec<String>>,
    lines: Vec<String>,
}

impl Route {
    /// `path` to `upstream` with the default `auth` (a token is required).
    pub fn new(path: &str, upstream: &str) -> Route {
        Route {
            host: None,
            path: path.to_string(),
            upstream: upstream.to_string(),
            auth: None,
            scopes: None,
            any_scopes: None,
            issuers: None,
            lines: Vec::new(),
        }
    }

    /// `path` to `upstream` with `auth = "none"`.
    pub fn open(path: &str, upstream: &str) -> Route {
        Route::new(path, upstream).auth("none")
    }

    pub fn host(mut self, host: &str) -> Route {
        self.host = Some(host.to_string());
        self
    }

    pub fn auth(mut self, mode: &str) -> Route {
        self.auth = Some(mode.to_string());
        self
    }

    pub fn scopes(mut self, scopes: &[&str]) -> Route {
        self.scopes = Some(strings(scopes));
        self
    }

    pub fn any_scopes(mut self, scopes: &[&str]) -> Route {
        self.any_scopes = Some(strings(scopes));
        self
    }

    pub fn issuers(mut self, issuers: &[&str]) -> Route {
        self.issuers = Some(strings(issuers));
        self
    }

    /// Lines for keys the builder has no method for.
    pub fn with(mut self, lines: &str) -> Route {
        self.lines.push(lines.to_string());
        self
    }

    fn render(&self) -> String {
        let mut out = String::from("[[routes]]\n");
        if let Some(host) = &self.host {
            let _ = writeln!(out, "host = \"{host}\"");
        }
        let _ = writeln!(out, "path = \"{}\"", self.path);
        let _ = writeln!(out, "upstream = \"{}\"", self.upstream);
        if let Some(auth) = &self.auth {
            let _ = writeln!(out, "auth = \"{auth}\"");
        }
        for (key, list) in [
            ("scopes", &self.scopes),
            ("any_scopes", &self.any_scopes),
            ("issuers", &self.issuers),
        ] {
            if let Some(list) = list {
                let _ = writeln!(out, "{key} = {}", toml_list(list));
            }
        }
        for lines in &self.lines {
            let _ = writeln!(out, "{lines}");
        }
        out
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `["a", "b"]`.
pub fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// One `[issuers.NAME]` table, with its `[issuers.NAME.introspection]`
/// sub-table when set. Audiences default to `mint::AUD`.
#[derive(Debug, Clone)]
pub struct Issuer {
    name: String,
    issuer: String,
    /// `jwks_uri`, `jwks_file` or `discovery`.
    source: Vec<String>,
    audiences: Vec<String>,
    lines: Vec<String>,
    introspection: Option<Vec<String>>,
}

impl Issuer {
    /// Issuer `name` whose tokens carry `iss = issuer`; add a key source.
    pub fn new(name: &str, issuer: &str) -> Issuer {
        Issuer {
            name: name.to_string(),
            issuer: issuer.to_string(),
            source: Vec::new(),
            audiences: vec![super::mint::AUD.to_string()],
            lines: Vec::new(),
            introspection: None,
        }
    }

    pub fn jwks_uri(self, uri: &str) -> Issuer {
        self.source(format!("jwks_uri = \"{uri}\""))
    }

    pub fn jwks_file(self, path: &str) -> Issuer {
        self.source(format!("jwks_file = \"{path}\""))
    }

    pub fn discovery(self) -> Issuer {
        self.source("discovery = true".to_string())
    }

    fn source(mut self, line: String) -> Issuer {
        self.source.push(line);
        self
    }

    pub fn audiences(mut self, audiences: &[&str]) -> Issuer {
        self.audiences = strings(audiences);
        self
    }

    /// Lines for keys the builder has no method for.
    pub fn with(mut self, lines: &str) -> Issuer {
        self.lines.push(lines.to_string());
        self
    }

    /// The `[issuers.NAME.introspection]` table, with these lines.
    pub fn introspection(mut self, lines: &str) -> Issuer {
        self.introspection
            .get_or_insert_with(Vec::new)
            .push(lines.to_string());
        self
    }

    /// The `[issuers.NAME.introspection]` table's endpoint and client
    /// credentials; more lines through [`Issuer::introspection`].
    pub fn introspect_at(self, endpoint: &str, client_id: &str, client_secret: &str) -> Issuer {
        self.introspection(&format!(
            "endpoint = \"{endpoint}\"\nclient_id = \"{client_id}\"\n\
             client_secret = \"{client_secret}\""
        ))
    }

    pub fn render(&self) -> String {
        let mut out = format!("[issuers.{}]\nissuer = \"{}\"\n", self.name, self.issuer);
        for line in &self.source {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, "audiences = {}", toml_list(&self.audiences));
        for lines in &self.lines {
            let _ = writeln!(out, "{lines}");
        }
        if let Some(lines) = &self.introspection {
            let _ = writeln!(
                out,
                "\n[issuers.{}.introspection]\n{}",
                self.name,
                lines.join("\n")
            );
        }
        out
    }
}

impl From<Issuer> for String {
    fn from(issuer: Issuer) -> String {
        issuer.render()
    }
}
