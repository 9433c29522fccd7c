//! The resolved configuration as `tokengate check` prints it: every key
//! with its value after defaults, secrets masked, unset keys with what
//! that means; and one table per route.

use serde_json::{Map, Value};
use std::time::Duration;

use super::render::{Item, Table};
use super::MASK;
use crate::config::{
    AuthMode, ClientAuthMethod, ClientCertAuth, Config, Grant, IssuerConfig, KeySource, Profile,
    RateLimitConfig, RateLimitKey, RedisConfig, RedisServers, ResourceConfig, RouteConfig, Scheme,
    TokenBinding, UpstreamConfig, UpstreamOAuth,
};

fn ms(d: Duration) -> Value {
    Value::from(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn secs(d: Duration) -> Value {
    Value::from(d.as_secs())
}

fn strings<T: ToString>(items: impl IntoIterator<Item = T>) -> Value {
    Value::from(items.into_iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

/// `server`, `admin`, `issuers`, `upstreams`, `forward`, `dpop`,
/// `resources`, `redis`, `revocation`, `rate_limits`, `tracing`.
pub(super) fn config(c: &Config) -> Table {
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
        )
        .with(
            "tls_client_auth",
            match s.client_certs.tls {
                ClientCertAuth::None => "none",
                ClientCertAuth::Optional => "optional",
            },
        )
        .with_option(
            "tls_client_ca",
            s.client_certs
                .ca
                .as_ref()
                .map(|p| Value::from(p.display().to_string())),
            "not set: any client certificate is accepted by the handshake",
        )
        .with_option(
            "client_cert_header",
            s.client_certs
                .header
                .as_ref()
                .map(|h| Value::from(h.as_str())),
            "not set: client certificates come from the TLS handshake only",
        );
    let mut root = Table::default().with_table("server", server);
    root = match &c.admin {
        Some(a) => root.with_table(
            "admin",
            Table::default()
                .with("listen", a.listen.to_string())
                .with_option(
                    "api_token",
                    a.api_token.as_ref().map(|_| Value::from(MASK)),
                    "not set: the /revocations endpoints answer 404",
                ),
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
    let root = root
        .with_table("issuers", issuers)
        .with_table("upstreams", upstreams)
        .with_table("forward", forward);
    let root = match &c.dpop {
        Some(d) => root.with_table(
            "dpop",
            Table::default()
                .with("algorithms", strings(d.algorithms.iter().map(|a| a.name())))
                .with("max_age_s", secs(d.max_age))
                .with("leeway_s", secs(d.leeway))
                .with("require_nonce", d.require_nonce)
                .with("nonce_ttl_s", secs(d.nonce_ttl))
                .with("replay_cache_size", d.replay_cache_size),
        ),
        None => root.with_unset("dpop", "not configured: DPoP is off"),
    };
    let resources = Table(
        c.resources
            .iter()
            .map(|r| (r.name.clone(), Item::Table(resource(r))))
            .collect(),
    );
    let root = root.with_table("resources", resources);
    let root = match &c.redis {
        Some(r) => root.with_table("redis", redis(r)),
        None => root.with_unset(
            "redis",
            "not configured: every instance keeps its own state",
        ),
    };
    let limits = Table(
        c.rate_limits
            .iter()
            .map(|l| (l.name.clone(), Item::Table(rate_limit(l))))
            .collect(),
    );
    root.with_table(
        "revocation",
        Table::default().with("sync_interval_s", secs(c.revocation.sync_interval)),
    )
    .with_table("rate_limits", limits)
    .with_table("tracing", tracing(&c.tracing))
}

/// `[tracing]`: the collector URL as resolved (with `/v1/traces`).
fn tracing(t: &crate::config::TracingConfig) -> Table {
    let table = match &t.otlp_traces {
        Some(uri) => Table::default().with("otlp_endpoint", uri.to_string()),
        None => Table::default().with_unset(
            "otlp_endpoint",
            "not set: no span export (traceparent is still sent upstream)",
        ),
    };
    table
        .with("service_name", t.service_name.clone())
        .with("sample_ratio", t.sample_ratio)
}

/// `[redis]`; URLs are masked, since they may hold a password.
fn redis(r: &RedisConfig) -> Table {
    let t = match &r.servers {
        RedisServers::Single(_) => Table::default().with("url", MASK),
        RedisServers::Cluster(urls) => {
            Table::default().with("cluster_urls", strings(urls.iter().map(|_| MASK)))
        }
    };
    t.with("key_prefix", r.key_prefix.clone())
        .with("timeout_ms", ms(r.timeout))
}

fn rate_limit(l: &RateLimitConfig) -> Table {
    Table::default()
        .with(
            "key",
            match l.key {
                RateLimitKey::ClientId => "client_id",
                RateLimitKey::Sub => "sub",
                RateLimitKey::Ip => "ip",
                RateLimitKey::Token => "token",
            },
        )
        .with("requests", l.requests)
        .with("window_s", secs(l.window))
}

fn resource(r: &ResourceConfig) -> Table {
    Table::default()
        .with("resource", r.resource.clone())
        .with("authorization_servers", strings(&r.authorization_servers))
        .with("scopes_supported", strings(&r.scopes_supported))
        .with_option(
            "resource_name",
            r.resource_name.clone().map(Value::from),
            "not set",
        )
        .with_option(
            "resource_documentation",
            r.resource_documentation.clone().map(Value::from),
            "not set",
        )
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
                .with("auth_method", auth_method_name(x.auth_method))
                .with("cache_ttl_s", secs(x.cache_ttl))
                .with("negative_cache_ttl_s", secs(x.negative_cache_ttl))
                .with("timeout_ms", ms(x.timeout))
                .with("max_concurrent", x.max_concurrent),
        ),
        None => t.with_unset("introspection", "not configured: JWTs only"),
    }
}

fn auth_method_name(method: ClientAuthMethod) -> &'static str {
    match method {
        ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
        ClientAuthMethod::ClientSecretPost => "client_secret_post",
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
    let t = Table::default()
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
        .with("pool_max_idle_per_host", u.pool_max_idle_per_host);
    match &u.oauth {
        Some(o) => t.with_table("oauth", oauth(o)),
        None => t.with_unset("oauth", "not configured: the caller's credential goes on"),
    }
}

/// `[upstreams.NAME.oauth]`, the secret masked.
fn oauth(o: &UpstreamOAuth) -> Table {
    let text = |v: &Option<String>| v.clone().map(Into::into);
    Table::default()
        .with(
            "grant",
            match o.grant {
                Grant::ClientCredentials => "client_credentials",
                Grant::TokenExchange => "token_exchange",
            },
        )
        .with("token_endpoint", o.token_endpoint.to_string())
        .with("client_id", o.client_id.clone())
        .with("client_secret", MASK)
        .with("auth_method", auth_method_name(o.auth_method))
        .with_option("scope", text(&o.scope), "not sent")
        .with_option("resource", text(&o.resource), "not sent")
        .with("refresh_skew_s", secs(o.refresh_skew))
        .with("timeout_ms", ms(o.timeout))
}

fn auth_name(a: AuthMode) -> &'static str {
    match a {
        AuthMode::Required => "required",
        AuthMode::Optional => "optional",
        AuthMode::None => "none",
    }
}

pub(super) fn route(c: &Config, r: &RouteConfig) -> Table {
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
        .with_option(
            "resource",
            r.resource.map(|i| Value::from(c.resources[i].name.clone())),
            "not set: no resource metadata, no resource audience",
        )
        .with_option(
            "rate_limit",
            r.rate_limit
                .map(|i| Value::from(c.rate_limits[i].name.clone())),
            "not set: no rate limit",
        )
        .with(
            "token_binding",
            match r.token_binding {
                TokenBinding::Any => "any",
                TokenBinding::Dpop => "dpop",
                TokenBinding::Mtls => "mtls",
                TokenBinding::Bound => "bound",
            },
        )
}
