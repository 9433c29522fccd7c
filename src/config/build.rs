//! Raw configuration → typed [`Config`], once, collecting every error with
//! its key path. The only place that knows the rules of each key.

use http::{HeaderName, Method, Uri};
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::builder::Builder;
use super::raw::*;
use super::*;
use crate::route::Pattern;

pub(super) fn build(raw: RawConfig, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let mut b = Builder::new(base_dir);
    let server = server(&mut b, &raw.server);
    let dpop = super::binding::dpop(&mut b, raw.dpop.as_ref());
    let admin = raw.admin.as_ref().map(|a| AdminConfig {
        listen: b.addr("admin.listen", &a.listen),
        api_token: super::fleet::api_token(&mut b, &a.api_token),
    });
    let redis = super::fleet::redis(&mut b, raw.redis.as_ref());
    let revocation = super::fleet::revocation(&mut b, &raw.revocation);
    let rate_limits = super::fleet::rate_limits(&mut b, &raw.rate_limits);
    let tracing = super::tracing::tracing(&mut b, &raw.tracing);
    let rate_limit_names: Vec<&String> = raw.rate_limits.keys().collect();
    let issuers: Vec<IssuerConfig> = raw
        .issuers
        .iter()
        .map(|(name, i)| super::issuers::issuer(&mut b, name, i))
        .collect();
    for (i, issuer) in issuers.iter().enumerate() {
        if issuers[..i]
            .iter()
            .any(|earlier| earlier.issuer == issuer.issuer && !issuer.issuer.is_empty())
        {
            b.err(
                format!("issuers.{}.issuer", issuer.name),
                "another issuer table has the same issuer value; tokens could not be told apart",
            );
        }
    }
    let upstreams: Vec<UpstreamConfig> = raw
        .upstreams
        .iter()
        .map(|(name, u)| upstream(&mut b, name, u))
        .collect();
    let forward = forward(&mut b, &raw.forward);
    let resource_names: Vec<&String> = raw.resources.keys().collect();
    let routes: Vec<RouteConfig> = raw
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let names = Names {
                issuers: &issuers,
                upstreams: &upstreams,
                resources: &resource_names,
                rate_limits: &rate_limit_names,
                dpop_on: dpop.is_some(),
            };
            route(&mut b, i, r, &names)
        })
        .collect();
    let resources = super::resources::resources(&mut b, &raw.resources, &issuers, &routes);
    b.finish(Config {
        server,
        admin,
        issuers,
        upstreams,
        forward,
        routes,
        resources,
        dpop,
        redis,
        revocation,
        rate_limits,
        tracing,
        source: None,
        source_digest: None,
    })
}

fn server(b: &mut Builder, s: &RawServer) -> ServerConfig {
    let tls = match (&s.tls_cert, &s.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: b.file("server.tls_cert", cert),
            key: b.file("server.tls_key", key),
        }),
        (None, None) => None,
        (Some(_), None) => {
            b.err("server.tls_key", "is required when server.tls_cert is set");
            None
        }
        (None, Some(_)) => {
            b.err("server.tls_cert", "is required when server.tls_key is set");
            None
        }
    };
    if s.realm.is_empty()
        || s.realm
            .bytes()
            .any(|c| c == b'"' || c == b'\\' || !(0x20..0x7f).contains(&c))
    {
        b.err(
            "server.realm",
            "must be non-empty printable ASCII without quotes or backslashes",
        );
    }
    let trusted_proxies = s
        .trusted_proxies
        .iter()
        .enumerate()
        .filter_map(|(i, cidr)| {
            let parsed = cidr
                .parse::<IpNet>()
                .or_else(|_| cidr.parse::<IpAddr>().map(IpNet::from));
            parsed
                .map_err(|_| {
                    b.err(
                        format!("server.trusted_proxies[{i}]"),
                        format!("{cidr:?} is not a CIDR"),
                    )
                })
                .ok()
        })
        .collect();
    let client_certs = super::binding::client_certs(b, s, tls.is_some(), |name| {
        RESERVED_HEADERS.contains(&name.as_str())
            || crate::header_names::is_hop_by_hop(name)
            || crate::header_names::is_routing_override(name)
    });
    ServerConfig {
        client_certs,
        listen: b.addr("server.listen", &s.listen),
        realm: s.realm.clone(),
        tls,
        trusted_proxies,
        header_read_timeout: b.ms("server.header_read_timeout_ms", s.header_read_timeout_ms),
        body_read_timeout: b.ms("server.body_read_timeout_ms", s.body_read_timeout_ms),
        tls_handshake_timeout: b.ms(
            "server.tls_handshake_timeout_ms",
            s.tls_handshake_timeout_ms,
        ),
        idle_timeout: b.ms("server.idle_timeout_ms", s.idle_timeout_ms),
        // hyper's HTTP/1 reader needs at least 8 KiB of buffer.
        max_header_bytes: b.count(
            "server.max_header_bytes",
            s.max_header_bytes,
            8192,
            16 << 20,
        ),
        max_connections: b.count("server.max_connections", s.max_connections, 1, 10_000_000),
        max_token_bytes: b.count("server.max_token_bytes", s.max_token_bytes, 1, 1 << 20),
        identity_cache_size: s.identity_cache_size,
        shutdown_grace: Duration::from_millis(s.shutdown_grace_ms),
        worker_threads: match b.count("server.worker_threads", s.worker_threads, 0, 1024) {
            0 => None,
            n => Some(n),
        },
        watch_config: s.watch_config,
        allow_underscore_headers: s.allow_underscore_headers,
        h2: H2Limits {
            max_concurrent_streams: b.count(
                "server.h2_max_concurrent_streams",
                s.h2_max_concurrent_streams,
                1,
                1 << 20,
            ) as u32,
            max_pending_accept_reset_streams: b.count(
                "server.h2_max_pending_accept_reset_streams",
                s.h2_max_pending_accept_reset_streams,
                1,
                1 << 20,
            ),
            max_local_error_reset_streams: b.count(
                "server.h2_max_local_error_reset_streams",
                s.h2_max_local_error_reset_streams,
                1,
                1 << 20,
            ),
        },
    }
}

fn upstream(b: &mut Builder, name: &str, u: &RawUpstream) -> UpstreamConfig {
    let k = |field: &str| format!("upstreams.{name}.{field}");
    let url = b.required(&k("url"), &u.url).to_string();
    let parsed = url
        .parse::<Uri>()
        .ok()
        .filter(|uri| uri.authority().is_some());
    let (scheme, authority, base_path) = match parsed {
        Some(uri) => {
            let scheme = match uri.scheme_str() {
                Some("http") => Scheme::Http,
                Some("https") => Scheme::Https,
                _ => {
                    b.err(k("url"), "must be an http or https URL");
                    Scheme::Http
                }
            };
            if uri.query().is_some() {
                b.err(k("url"), "must not have a query");
            }
            let authority = uri
                .authority()
                .cloned()
                .unwrap_or_else(|| http::uri::Authority::from_static("invalid"));
            if authority.as_str().contains('@') {
                b.err(k("url"), "must not contain user information");
            }
            let base = uri.path().trim_end_matches('/').to_string();
            if !base.is_empty() && crate::target::normalize_path(&base).is_err() {
                b.err(k("url"), "has an invalid path");
            }
            (scheme, authority, base)
        }
        None => {
            if !url.is_empty() {
                b.err(k("url"), format!("{url:?} is not an absolute http(s) URL"));
            }
            (
                Scheme::Http,
                http::uri::Authority::from_static("invalid"),
                String::new(),
            )
        }
    };
    let ca_file = u.ca_file.as_ref().map(|f| b.file(&k("ca_file"), f));
    if ca_file.is_some() && scheme == Scheme::Http {
        b.err(k("ca_file"), "is only used with an https url");
    }
    UpstreamConfig {
        name: name.to_string(),
        scheme,
        authority,
        base_path,
        timeout: b.ms(&k("timeout_ms"), u.timeout_ms),
        connect_timeout: b.ms(&k("connect_timeout_ms"), u.connect_timeout_ms),
        preserve_host: u.preserve_host,
        ca_file,
        pool_idle_timeout: b.ms(&k("pool_idle_timeout_ms"), u.pool_idle_timeout_ms),
        pool_max_idle_per_host: b.count(
            &k("pool_max_idle_per_host"),
            u.pool_max_idle_per_host,
            0,
            1 << 20,
        ),
        max_connections: b.count(&k("max_connections"), u.max_connections, 1, 10_000_000),
        protocol: match &u.protocol {
            Keyword::Known(protocol) => *protocol,
            Keyword::Unknown(other) => {
                b.err(
                    k("protocol"),
                    format!("{other:?} is not \"http1\" or \"h2\""),
                );
                UpstreamProtocol::Http1
            }
        },
        oauth: super::upstream_oauth::oauth(b, name, u.oauth.as_ref()),
    }
}

/// Headers the gateway sets itself or that carry routing meaning: a claim
/// must not be sent in one of them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "content-length",
    "content-type",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "forwarded",
    "dpop",
];

fn forward(b: &mut Builder, f: &RawForward) -> ForwardConfig {
    let mut claims: Vec<(String, HeaderName)> = Vec::new();
    for (claim, header) in &f.claims {
        let key = format!("forward.claims.{claim}");
        match HeaderName::from_bytes(header.as_bytes()) {
            Ok(name)
                if RESERVED_HEADERS.contains(&name.as_str())
                    || crate::header_names::is_hop_by_hop(&name)
                    || crate::header_names::is_routing_override(&name) =>
            {
                b.err(key, format!("{header:?} is a header the gateway manages"));
            }
            Ok(name) if claims.iter().any(|(_, h)| *h == name) => {
                b.err(key, format!("header {header:?} is used for two claims"));
            }
            Ok(name) => claims.push((claim.clone(), name)),
            Err(_) => b.err(key, format!("{header:?} is not a valid header name")),
        }
    }
    ForwardConfig {
        claims,
        strip_authorization: f.strip_authorization,
    }
}

fn scope_list(b: &mut Builder, key: &str, scopes: &[String]) {
    let valid = |s: &String| {
        !s.is_empty()
            && s.bytes()
                .all(|c| c == b'!' || (0x23..=0x5b).contains(&c) || (0x5d..=0x7e).contains(&c))
    };
    if !scopes.iter().all(valid) {
        b.err(
            key,
            "scopes must be non-empty RFC 6749 scope tokens (no spaces, quotes or backslashes)",
        );
    }
}

/// What a route may refer to.
struct Names<'a> {
    issuers: &'a [IssuerConfig],
    upstreams: &'a [UpstreamConfig],
    resources: &'a [&'a String],
    rate_limits: &'a [&'a String],
    dpop_on: bool,
}

fn route(b: &mut Builder, i: usize, r: &RawRoute, names: &Names) -> RouteConfig {
    let Names {
        issuers,
        upstreams,
        resources,
        ..
    } = *names;
    let k = |field: &str| format!("routes[{i}].{field}");
    let path = Pattern::parse(&r.path).unwrap_or_else(|reason| {
        b.err(k("path"), format!("{:?}: {reason}", r.path));
        Pattern::parse("/").expect("static pattern")
    });
    let host = r
        .host
        .as_ref()
        .map(|h| match crate::target::normalize_host(h) {
            Ok(norm) if !h.contains(':') || h.starts_with('[') => norm.into_owned(),
            _ => {
                b.err(
                    k("host"),
                    format!("{h:?} is not a host name (without port)"),
                );
                String::new()
            }
        });
    let methods = r.methods.as_ref().map(|ms| {
        if ms.is_empty() {
            b.err(
                k("methods"),
                "must not be empty (omit it to allow every method)",
            );
        }
        ms.iter()
            .filter_map(|m| match Method::from_bytes(m.as_bytes()) {
                Ok(method) if !m.bytes().any(|c| c.is_ascii_lowercase()) => Some(method),
                _ => {
                    b.err(
                        k("methods"),
                        format!("{m:?} is not an upper-case HTTP method"),
                    );
                    None
                }
            })
            .collect()
    });
    let upstream = upstreams
        .iter()
        .position(|u| u.name == r.upstream)
        .unwrap_or_else(|| {
            b.err(
                k("upstream"),
                format!("upstream {:?} is not defined", r.upstream),
            );
            0
        });
    let auth = match &r.auth {
        Keyword::Known(mode) => *mode,
        Keyword::Unknown(other) => {
            b.err(
                k("auth"),
                format!("{other:?} is not \"required\", \"optional\" or \"none\""),
            );
            AuthMode::Required
        }
    };
    let exchanges = upstreams
        .get(upstream)
        .and_then(|u| u.oauth.as_ref())
        .is_some_and(|o| o.grant == Grant::TokenExchange);
    if exchanges && auth != AuthMode::Required {
        b.err(
            k("auth"),
            "a route to an upstream with grant = \"token_exchange\" needs auth = \"required\" (every request needs a token to exchange)",
        );
    }
    scope_list(b, &k("scopes"), &r.scopes);
    scope_list(b, &k("any_scopes"), &r.any_scopes);
    if auth == AuthMode::None
        && !(r.scopes.is_empty() && r.any_scopes.is_empty() && r.issuers.is_none())
    {
        b.err(
            k("auth"),
            "a route with auth = \"none\" cannot have scopes, any_scopes or issuers",
        );
    }
    let route_issuers = match &r.issuers {
        None => (0..issuers.len()).collect(),
        Some(names) => {
            if names.is_empty() {
                b.err(
                    k("issuers"),
                    "must not be empty (omit it to trust every issuer)",
                );
            }
            names
                .iter()
                .filter_map(|n| {
                    let found = issuers.iter().position(|i| i.name == *n);
                    if found.is_none() {
                        b.err(k("issuers"), format!("issuer {n:?} is not defined"));
                    }
                    found
                })
                .collect()
        }
    };
    if let Some(prefix) = &r.strip_prefix {
        let ok = prefix.starts_with('/')
            && prefix.len() > 1
            && !prefix.ends_with('/')
            && crate::target::normalize_path(prefix).is_ok_and(|p| p == prefix.as_str());
        if !ok {
            b.err(
                k("strip_prefix"),
                "must be a normalised path like \"/orders\", without a trailing /",
            );
        }
    }
    let resource = r.resource.as_ref().and_then(|name| {
        let found = resources.iter().position(|n| *n == name);
        if found.is_none() {
            b.err(
                k("resource"),
                format!("{name:?} names no [resources.{name}] table"),
            );
        }
        found
    });
    let token_binding = super::binding::token_binding(
        b,
        &k("token_binding"),
        &r.token_binding,
        names.dpop_on,
        auth,
    );
    let rate_limit = r.rate_limit.as_ref().and_then(|name| {
        let found = names.rate_limits.iter().position(|n| *n == name);
        if found.is_none() {
            b.err(
                k("rate_limit"),
                format!("{name:?} names no [rate_limits.{name}] table"),
            );
        }
        found
    });
    if rate_limit.is_some() && auth == AuthMode::None {
        b.err(
            k("rate_limit"),
            "a route with auth = \"none\" has no authenticated request to count",
        );
    }
    RouteConfig {
        rate_limit,
        token_binding,
        resource,
        host,
        path,
        methods,
        upstream,
        auth,
        scopes: r.scopes.clone(),
        any_scopes: r.any_scopes.clone(),
        issuers: route_issuers,
        strip_prefix: r.strip_prefix.clone(),
        case_sensitive: r.case_sensitive,
    }
}
