//! `tokengate init`: writes a commented starter configuration from a few
//! answers (issuer, audience, upstream, routes), so a first deployment does
//! not start from a blank file or a copy of the full reference.
//!
//! The file is checked exactly as `tokengate check` would check it before it
//! is written, so what `init` writes always loads. With `--discover` the
//! issuer's OpenID discovery document is fetched once (same client, deadline
//! and size limit as the gateway's own fetches; `http` only for loopback
//! hosts) and must name the same issuer, code point for code point, as the
//! gateway will require at start (OpenID Connect Discovery 1.0, section 4.3).

use clap::Args;
use http::Uri;
use serde_json::Value;
use std::fmt::Write;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::config::{fetch_scheme, Config, ConfigErrors};
use crate::fetch::HttpFetcher;
use crate::runtime::Runtime;

/// The whole discovery exchange must finish within this (the default
/// `jwks_timeout_ms`).
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// A discovery document is a few kilobytes; more is not one.
const MAX_DISCOVERY_BYTES: usize = 1 << 20;

/// The answers `tokengate init` turns into a configuration.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// The issuer's exact `iss` value, e.g. https://idp.example.com/ (a trailing slash matters).
    #[arg(long, value_name = "URL")]
    pub issuer: String,
    /// The audience your API's tokens carry in `aud`.
    #[arg(long, value_name = "AUD")]
    pub audience: String,
    /// Your API, where accepted requests are forwarded, e.g. http://127.0.0.1:3000.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// A protected route: PATH (a valid token, no scope) or PATH:SCOPE[,SCOPE...]
    /// (all scopes required), e.g. /orders/**:orders:read. Repeatable, tried in
    /// order; default: /** (every path needs a valid token).
    #[arg(long = "route", value_name = "PATH[:SCOPE]")]
    pub routes: Vec<RouteSpec>,
    /// The gateway's listen address.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub listen: String,
    /// Fetch {issuer}/.well-known/openid-configuration now, check that it
    /// names the same issuer, and print what it advertises.
    #[arg(long)]
    pub discover: bool,
    /// Overwrite the file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `PATH` or `PATH:SCOPE[,SCOPE...]`: split at the first `:`, so scopes may
/// contain colons (`/orders/**:orders:read`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub path: String,
    pub scopes: Vec<String>,
}

impl FromStr for RouteSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<RouteSpec, String> {
        let (path, scopes) = match s.split_once(':') {
            Some((path, scopes)) => (path, Some(scopes)),
            None => (s, None),
        };
        if !path.starts_with('/') {
            return Err(format!(
                "{s:?}: PATH must start with / (PATH or PATH:SCOPE)"
            ));
        }
        let scopes: Vec<String> = match scopes {
            None => Vec::new(),
            Some(list) => list.split(',').map(|x| x.trim().to_string()).collect(),
        };
        if scopes.iter().any(|x| x.is_empty() || x.contains(' ')) {
            return Err(format!(
                "{s:?}: a scope after ':' must be non-empty and without spaces (PATH:SCOPE[,SCOPE...])"
            ));
        }
        Ok(RouteSpec {
            path: path.to_string(),
            scopes,
        })
    }
}

/// What the issuer's discovery document advertises.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    pub issuer: String,
    pub jwks_uri: Option<String>,
    pub signing_algorithms: Vec<String>,
    pub scopes: Vec<String>,
    pub introspection_endpoint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} already exists; pass --force to overwrite it")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--issuer {0:?}: {1}")]
    Issuer(String, &'static str),
    #[error("discovery at {url} failed: {reason}")]
    Discovery { url: String, reason: String },
    #[error(
        "the discovery document at {url} names issuer {found:?}, not {expected:?}; \
         the gateway compares them exactly, so pass --issuer {found:?} if that is the issuer in your tokens"
    )]
    IssuerMismatch {
        url: String,
        found: String,
        expected: String,
    },
    #[error("the configuration would not load:\n{0}")]
    Invalid(ConfigErrors),
}

/// `tokengate init`: renders, checks and writes the configuration to
/// `path`; returns what to print (what discovery found, what to do next).
pub fn run(path: &Path, args: &InitArgs) -> Result<String, InitError> {
    let found = if args.discover {
        let url = discovery_url(&args.issuer)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| InitError::Discovery {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        Some(rt.block_on(discover(&args.issuer, &url))?)
    } else {
        None
    };
    let text = render(args, found.as_ref());
    validate(&text, path)?;
    write(path, &text, args.force)?;
    let mut out = found.as_ref().map(summary).unwrap_or_default();
    let _ = write!(
        out,
        "wrote {p}\nnext: tokengate check --config {p}\n      tokengate run --config {p}",
        p = path.display()
    );
    Ok(out)
}

/// What `tokengate run` says when its configuration file does not exist.
pub fn missing_config_hint(path: &Path) -> String {
    format!(
        "cannot read {p}: not found. Create it with \
         `tokengate init --config {p} --issuer URL --audience AUD --upstream URL` \
         (see `tokengate init --help`), copy config/tokengate.example.toml to it, \
         or pass --config FILE",
        p = path.display()
    )
}

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

/// Loads `text` as `tokengate check` loads the file at `path` (relative
/// paths against its directory), without the process environment.
fn validate(text: &str, path: &Path) -> Result<(), InitError> {
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    Config::from_toml(text, base, Vec::new())
        .and_then(Runtime::check)
        .map(|_| ())
        .map_err(InitError::Invalid)
}

/// Writes `text` to `path` (creating its directory); an existing file is
/// replaced only with `force`.
fn write(path: &Path, text: &str, force: bool) -> Result<(), InitError> {
    let failed = |source| InitError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            InitError::Exists(path.to_path_buf())
        } else {
            failed(e)
        }
    })?;
    file.write_all(text.as_bytes()).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(issuer: &str, routes: &[&str]) -> InitArgs {
        InitArgs {
            issuer: issuer.into(),
            audience: "https://api.example.com".into(),
            upstream: "http://127.0.0.1:3000".into(),
            routes: routes.iter().map(|r| r.parse().expect("route")).collect(),
            listen: "127.0.0.1:8080".into(),
            discover: false,
            force: false,
        }
    }

    #[test]
    fn route_spec_parses_path_and_scopes() {
        type Want = Option<(&'static str, &'static [&'static str])>;
        let cases: &[(&str, Want)] = &[
            ("/**", Some(("/**", &[]))),
            (
                "/orders/**:orders:read",
                Some(("/orders/**", &["orders:read"])),
            ),
            ("/a:x,y", Some(("/a", &["x", "y"]))),
            ("/a:", None),
            ("/a:x,", None),
            ("/a:x y", None),
            ("orders", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = input.parse::<RouteSpec>().ok();
            let want = want.map(|(p, s)| RouteSpec {
                path: p.to_string(),
                scopes: s.iter().map(|x| x.to_string()).collect(),
            });
            assert_eq!(got, want, "{input}");
        }
    }

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

    #[test]
    fn validate_refuses_a_non_loopback_http_issuer() {
        let text = render(&args("http://idp.example.com/", &[]), None);
        let err = validate(&text, Path::new("x.toml")).expect_err("invalid");
        assert!(err.to_string().contains("issuers.main.issuer"), "{err}");
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
