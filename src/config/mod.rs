//! Configuration: the file and the environment, loaded once into typed,
//! validated structures.
//!
//! `raw` mirrors the file with serde; `load` merges built-in defaults < file <
//! `TOKENGATE_*` environment with figment; `build` (with `issuers` for the
//! issuer tables) converts the raw tree into the types below, collecting
//! every problem in a `builder` (a leaf) as a [`ConfigError`] that names
//! the key path and the reason. After [`Config::load`] returns, nothing in
//! the gateway checks configuration again: durations are [`Duration`]s,
//! addresses are parsed, references between tables are indices, and an
//! issuer's JWT and introspection settings exist only when it uses them
//! ([`IssuerConfig::jwt`], [`IssuerConfig::introspection`]).

mod binding;
mod build;
mod builder;
mod fleet;
mod issuers;
mod load;
mod raw;
mod resources;
mod suggest;
mod tracing;
mod upstream_oauth;

use http::{HeaderName, Method, Uri};
use ipnet::IpNet;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::route::Pattern;

pub use builder::fetch_scheme;
pub use load::{env_overrides, file_digest, ConfigError, ConfigErrors};
pub use resources::WELL_KNOWN;
pub use upstream_oauth::{Grant, UpstreamOAuth};

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub admin: Option<AdminConfig>,
    /// Issuers in name order; routes refer to them by index.
    pub issuers: Vec<IssuerConfig>,
    /// Upstreams in name order; routes refer to them by index.
    pub upstreams: Vec<UpstreamConfig>,
    pub forward: ForwardConfig,
    /// Routes in file order: the first match wins.
    pub routes: Vec<RouteConfig>,
    /// Protected resources in name order; routes refer to them by index.
    pub resources: Vec<ResourceConfig>,
    /// DPoP proof rules; `None`: DPoP is off.
    pub dpop: Option<DpopConfig>,
    /// Shared fleet state; `None`: this instance keeps its own.
    pub redis: Option<RedisConfig>,
    pub revocation: RevocationConfig,
    /// Rate limits in name order; routes refer to them by index.
    pub rate_limits: Vec<RateLimitConfig>,
    pub tracing: TracingConfig,
    /// The file this configuration came from, if any (reload re-reads it).
    pub source: Option<PathBuf>,
    /// SHA-256 of that file's bytes, so a watcher can tell a real change.
    pub source_digest: Option<[u8; 32]>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub realm: String,
    pub tls: Option<TlsFiles>,
    pub trusted_proxies: Vec<IpNet>,
    pub header_read_timeout: Duration,
    /// The whole request body must arrive within this long: 408 otherwise.
    pub body_read_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub max_token_bytes: usize,
    pub identity_cache_size: u64,
    pub shutdown_grace: Duration,
    /// Tokio worker threads; `None` means one per CPU core.
    pub worker_threads: Option<usize>,
    pub watch_config: bool,
    pub allow_underscore_headers: bool,
    pub h2: H2Limits,
    /// Client certificates (RFC 8705): asked for in TLS handshakes, and
    /// read from a trusted proxy's header.
    pub client_certs: ClientCerts,
}

/// `server.tls_client_auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientCertAuth {
    None,
    Optional,
}

/// Where a request's client certificate can come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCerts {
    pub tls: ClientCertAuth,
    /// CA certificates a handshake certificate must chain to.
    pub ca: Option<PathBuf>,
    /// RFC 9440 header, trusted only from `trusted_proxies`.
    pub header: Option<http::HeaderName>,
}

/// `[dpop]` with every default resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopConfig {
    pub algorithms: Vec<Algorithm>,
    pub max_age: Duration,
    pub leeway: Duration,
    pub require_nonce: bool,
    pub nonce_ttl: Duration,
    pub replay_cache_size: u64,
}

impl DpopConfig {
    /// `algs` of DPoP challenges: the algorithms, space-separated.
    pub fn algs(&self) -> String {
        let names: Vec<&str> = self.algorithms.iter().map(|a| a.name()).collect();
        names.join(" ")
    }
}

/// `routes[].token_binding`: which kinds of token a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenBinding {
    /// Bearer or bound tokens.
    Any,
    /// DPoP-bound tokens, presented with the DPoP scheme.
    Dpop,
    /// Certificate-bound tokens.
    Mtls,
    /// DPoP- or certificate-bound tokens.
    Bound,
}

/// HTTP/2 limits set explicitly rather than inherited from library defaults.
#[derive(Debug, Clone, Copy)]
pub struct H2Limits {
    pub max_concurrent_streams: u32,
    pub max_pending_accept_reset_streams: usize,
    pub max_local_error_reset_streams: usize,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// The bearer token of `/revocations`; `None`: those endpoints are 404.
    pub api_token: Option<Secret>,
}

/// `[redis]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    pub servers: RedisServers,
    pub key_prefix: String,
    pub timeout: Duration,
}

/// One server or a cluster's seed nodes; URLs may hold credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisServers {
    Single(Secret),
    Cluster(Vec<Secret>),
}

impl fmt::Debug for RedisServers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisServers::Single(_) => f.write_str("Single(<url>)"),
            RedisServers::Cluster(urls) => write!(f, "Cluster(<{} urls>)", urls.len()),
        }
    }
}

/// `[tracing]` (extensions section 15).
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// Where spans are POSTed (`{otlp_endpoint}/v1/traces`); `None`: no
    /// export (trace context is still passed on).
    pub otlp_traces: Option<Uri>,
    pub service_name: String,
    /// 0.0 to 1.0: the share of requests without a parent's decision that
    /// are sampled.
    pub sample_ratio: f64,
}

/// `[revocation]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationConfig {
    pub sync_interval: Duration,
}

/// What a rate limit counts requests under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitKey {
    ClientId,
    Sub,
    Ip,
    Token,
}

/// `[rate_limits.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub name: String,
    pub key: RateLimitKey,
    pub requests: u64,
    pub window: Duration,
}

/// A JWS algorithm the gateway verifies; serde names are the JOSE names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Algorithm {
    pub const ALL: [Algorithm; 9] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The JOSE name, compared exactly (RFC 7518 section 3.1).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Generic,
    Rfc9068,
}

/// Where an issuer's signing keys come from: exactly one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Url(Uri),
    File(PathBuf),
    /// The discovery document's URL; its `jwks_uri` is read at fetch time.
    Discovery(Uri),
}

/// One `[issuers.NAME]` table: what every token of the issuer must carry,
/// and how its tokens are verified. At least one of `jwt` and
/// `introspection` is present (checked at load).
#[derive(Debug, Clone, PartialEq)]
pub struct IssuerConfig {
    pub name: String,
    /// The exact `iss` value (or introspection `iss`) of the issuer's tokens.
    pub issuer: String,
    pub audiences: Vec<String>,
    pub leeway: Duration,
    /// Claims read for scopes, first present wins.
    pub scope_claims: Vec<String>,
    /// Signed tokens (JWTs): present when the issuer has a key source.
    pub jwt: Option<JwtRules>,
    /// Opaque tokens (RFC 7662): present when the issuer has an
    /// `[introspection]` table.
    pub introspection: Option<IntrospectionRules>,
}

/// What only JWT verification uses: where the keys come from, which
/// algorithms and `typ` values are accepted, and how the key set is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtRules {
    pub key_source: KeySource,
    pub algorithms: Vec<Algorithm>,
    pub profile: Profile,
    pub required_claims: Vec<String>,
    pub jwks_refresh: Duration,
    pub jwks_miss_cooldown: Duration,
    pub jwks_max_stale: Duration,
    pub jwks_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
}

/// What only introspection uses: the endpoint, the gateway's client
/// credentials and the answer cache.
#[derive(Debug, Clone, PartialEq)]
pub struct IntrospectionRules {
    pub endpoint: Uri,
    pub client_id: String,
    pub client_secret: Secret,
    pub auth_method: ClientAuthMethod,
    pub cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
    pub timeout: Duration,
    /// At most this many introspection calls in flight per issuer.
    pub max_concurrent: usize,
}

/// A secret string whose `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// The protocol spoken to an upstream (`upstreams.X.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1, a pool of keep-alive connections.
    #[default]
    Http1,
    /// HTTP/2: ALPN `h2` over TLS, prior knowledge (h2c) over plain TCP;
    /// streams multiplexed over few connections.
    H2,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub name: String,
    pub scheme: Scheme,
    /// `host[:port]` as written in the URL: the upstream's Host header.
    pub authority: http::uri::Authority,
    /// The URL's path without a trailing `/` ("" for none), prepended to
    /// every forwarded path.
    pub base_path: String,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub preserve_host: bool,
    pub ca_file: Option<PathBuf>,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
    /// Open connections (idle and busy) to this upstream at most. A request
    /// over it waits up to `connect_timeout` for a free one, then gets 503:
    /// without a cap a slow upstream makes the gateway open connections until
    /// it runs out of file descriptors. Default 1024.
    pub max_connections: usize,
    pub protocol: UpstreamProtocol,
    /// The gateway's own token for this upstream; `None`: the caller's
    /// credential goes on as configured in `[forward]`.
    pub oauth: Option<UpstreamOAuth>,
}

#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// (claim name, header the claim is sent in), in claim-name order.
    pub claims: Vec<(String, HeaderName)>,
    pub strip_authorization: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    Required,
    Optional,
    None,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Lower-case host without port; `None` matches every host.
    pub host: Option<String>,
    pub path: Pattern,
    /// `None`: every method.
    pub methods: Option<Vec<Method>>,
    pub upstream: usize,
    pub auth: AuthMode,
    pub scopes: Vec<String>,
    pub any_scopes: Vec<String>,
    /// Indices into [`Config::issuers`]; every issuer when not configured.
    pub issuers: Vec<usize>,
    pub strip_prefix: Option<String>,
    /// `false`: `path` is compared ASCII case-insensitively, for upstreams
    /// that fold case; default `true` (the contract). The forwarded path is
    /// never folded.
    pub case_sensitive: bool,
    /// Index into [`Config::resources`]: the resource this route protects.
    pub resource: Option<usize>,
    pub token_binding: TokenBinding,
    /// Index into [`Config::rate_limits`].
    pub rate_limit: Option<usize>,
}

/// A protected resource (RFC 9728), with every default resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceConfig {
    pub name: String,
    /// The resource identifier, as configured.
    pub resource: String,
    /// Where its metadata is served: the path (and query) of the
    /// RFC 9728 section 3.1 well-known URL.
    pub metadata_path: String,
    /// The whole metadata URL, for `resource_metadata` in challenges.
    pub metadata_url: String,
    /// The lower-case host of the resource identifier.
    pub host: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub resource_name: Option<String>,
    pub resource_documentation: Option<String>,
}

#[cfg(test)]
mod tests;
