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
use std::fmt::Write;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::config::{Config, ConfigErrors};
use crate::runtime::Runtime;

mod discover;
mod render;

pub use discover::{discover, discovery_url, summary};
pub use render::render;

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

    pub(super) fn args(issuer: &str, routes: &[&str]) -> InitArgs {
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
    fn validate_refuses_a_non_loopback_http_issuer() {
        let text = render(&args("http://idp.example.com/", &[]), None);
        let err = validate(&text, Path::new("x.toml")).expect_err("invalid");
        assert!(err.to_string().contains("issuers.main.issuer"), "{err}");
    }
}
