//! The lint warnings of `tokengate check`: shadowed routes, protected
//! routes a public one catches the misses of, unused upstreams and issuers.
//! They never change the exit code.

use crate::config::{AuthMode, ClientCertAuth, Config, RouteConfig, TokenBinding};
use crate::route::FallThrough;
use crate::runtime::Runtime;

/// One lint finding; never changes the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `shadowed_route`, `fall_through`, `unused_upstream`, `unused_issuer`,
    /// `issuer_without_route` or `no_client_certificate`.
    pub kind: &'static str,
    pub message: String,
}

pub(super) fn warnings(rt: &Runtime) -> Vec<Warning> {
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
    out.extend(binding_warnings(c));
    out
}

/// Routes that demand certificate-bound tokens where no client certificate
/// can ever arrive: every request to them is refused.
fn binding_warnings(c: &Config) -> Vec<Warning> {
    let certs = &c.server.client_certs;
    if certs.tls == ClientCertAuth::Optional || certs.header.is_some() {
        return Vec::new();
    }
    c.routes
        .iter()
        .enumerate()
        .filter(|(_, r)| r.token_binding == TokenBinding::Mtls)
        .map(|(i, _)| Warning {
            kind: "no_client_certificate",
            message: format!(
                "routes[{i}] accepts certificate-bound tokens only, but no client certificate can arrive: set server.tls_client_auth = \"optional\" or server.client_cert_header"
            ),
        })
        .collect()
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
