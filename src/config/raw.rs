//! The serde mirror of the configuration file: every key of the contract,
//! with its built-in default, and nothing else (`deny_unknown_fields`, so a
//! typo is an error instead of a silently disabled check).
//!
//! Nothing here is trusted: [`super::build`] turns a [`RawConfig`] into the
//! typed [`super::Config`] once, and nothing after load looks at these types.
//! Each field says what it is, its default and its bound;
//! `docs/configuration.md` is the reference for users.

use serde::de::{value::StrDeserializer, DeserializeOwned, Deserializer};
use serde::Deserialize;
use std::collections::BTreeMap;

use super::{
    Algorithm, AuthMode, ClientAuthMethod, ClientCertAuth, Grant, Profile, RateLimitKey,
    TokenBinding, UpstreamProtocol,
};

/// A keyword as written: the variant of `T` it names (by `T`'s serde
/// name), or the text when it names none. Any other type (a number, a
/// table) is refused here, as for a string field; an unknown name is left
/// to [`super::build`], which reports it under the key's own path with the
/// allowed names, alongside every other problem of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyword<T> {
    Known(T),
    Unknown(String),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Keyword<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let named = T::deserialize(StrDeserializer::<serde::de::value::Error>::new(&text));
        Ok(match named {
            Ok(value) => Keyword::Known(value),
            Err(_) => Keyword::Unknown(text),
        })
    }
}

/// The whole file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The client-facing listener and its limits (`[server]`); all defaults
    /// when absent.
    #[serde(default)]
    pub server: RawServer,
    /// The operations listener (`[admin]`); absent: no admin endpoints. An
    /// empty table enables it on the default address.
    pub admin: Option<RawAdmin>,
    /// Trusted token issuers by name (`[issuers.NAME]`); default none.
    #[serde(default)]
    pub issuers: BTreeMap<String, RawIssuer>,
    /// Backends by name (`[upstreams.NAME]`); default none.
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    /// What the upstream learns about the identity (`[forward]`); all defaults
    /// when absent.
    #[serde(default)]
    pub forward: RawForward,
    /// Routes in file order, first match wins (`[[routes]]`); default none.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Protected resources whose RFC 9728 metadata the gateway serves
    /// (`[resources.NAME]`); default none.
    #[serde(default)]
    pub resources: BTreeMap<String, RawResource>,
    /// DPoP proof rules (`[dpop]`, RFC 9449); absent: the `DPoP` scheme is
    /// not accepted and DPoP-bound tokens are refused.
    pub dpop: Option<RawDpop>,
    /// Shared fleet state (`[redis]`); absent: every instance keeps its own.
    pub redis: Option<RawRedis>,
    /// The deny-list of revoked tokens (`[revocation]`); all defaults when
    /// absent.
    #[serde(default)]
    pub revocation: RawRevocation,
    /// Named rate limits (`[rate_limits.NAME]`) routes refer to; default none.
    #[serde(default)]
    pub rate_limits: BTreeMap<String, RawRateLimit>,
    /// W3C trace context and OpenTelemetry export (`[tracing]`); all
    /// defaults when absent.
    #[serde(default)]
    pub tracing: RawTracing,
}

/// `[tracing]`: trace context and span export (extensions section 15).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTracing {
    /// The OTLP/HTTP collector base URL (spans are POSTed as protobuf to
    /// `{otlp_endpoint}/v1/traces`), an http or https URL; default empty:
    /// nothing is exported, but trace context still reaches upstreams.
    pub otlp_endpoint: String,
    /// The `service.name` resource attribute of exported spans; default
    /// `tokengate`; must not be empty.
    pub service_name: String,
    /// The share of requests without a parent's sampling decision that are
    /// sampled; default 1.0; 0 to 1.
    pub sample_ratio: f64,
}

impl Default for RawTracing {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            service_name: "tokengate".into(),
            sample_ratio: 1.0,
        }
    }
}

/// `[redis]`: where instances share state.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRedis {
    /// One Redis server: a `redis://` or `rediss://` URL (credentials in the
    /// URL or through the environment override); default empty; required
    /// unless `cluster_urls` is set, and not with it.
    pub url: String,
    /// Seed nodes of a Redis Cluster, each a `redis://` or `rediss://` URL;
    /// default empty; instead of `url`.
    pub cluster_urls: Vec<String>,
    /// Prefix of every key and channel; default `tokengate:`.
    pub key_prefix: String,
    /// Deadline of one Redis operation (slower: Redis counts as unavailable);
    /// default 100; 1 to 60000.
    pub timeout_ms: u64,
}

impl Default for RawRedis {
    fn default() -> Self {
        Self {
            url: String::new(),
            cluster_urls: Vec::new(),
            key_prefix: "tokengate:".into(),
            timeout_ms: 100,
        }
    }
}

/// `[revocation]`: how the deny-list is kept in step with Redis.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRevocation {
    /// Interval of the full resync of the deny-list from Redis (pushes arrive
    /// within 1 s); default 30; 1 to 86400.
    pub sync_interval_s: u64,
}

impl Default for RawRevocation {
    fn default() -> Self {
        Self {
            sync_interval_s: 30,
        }
    }
}

/// `[rate_limits.NAME]`: one rate limit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// What a request is counted under: `client_id`, `sub`, `ip` or `token`;
    /// required.
    pub key: Keyword<RateLimitKey>,
    /// At most this many requests per window; required; 1 to 1000000000.
    pub requests: u64,
    /// The sliding window in seconds; required; 1 to 86400.
    pub window_s: u64,
}

/// `[dpop]`: how DPoP proofs are checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDpop {
    /// Proof algorithms accepted; default `["ES256", "EdDSA", "RS256",
    /// "PS256"]`; non-empty, never `none` or HS*.
    pub algorithms: Vec<Keyword<Algorithm>>,
    /// A proof's `iat` must be within `max_age_s + leeway_s` of now, in both
    /// directions; default 300; 1 to 86400.
    pub max_age_s: u64,
    /// Clock skew allowed on top of `max_age_s`; default 5; at most 300.
    pub leeway_s: u64,
    /// Whether proofs must carry a server nonce (RFC 9449 section 9);
    /// default false.
    pub require_nonce: bool,
    /// How long a server nonce stays usable; default 300; 1 to 86400.
    pub nonce_ttl_s: u64,
    /// Accepted proofs' `jti` values remembered to refuse replays; default
    /// 100000; 1 to 100000000.
    pub replay_cache_size: u64,
}

impl Default for RawDpop {
    fn default() -> Self {
        Self {
            algorithms: [
                Algorithm::ES256,
                Algorithm::EdDSA,
                Algorithm::RS256,
                Algorithm::PS256,
            ]
            .into_iter()
            .map(Keyword::Known)
            .collect(),
            max_age_s: 300,
            leeway_s: 5,
            require_nonce: false,
            nonce_ttl_s: 300,
            replay_cache_size: 100_000,
        }
    }
}

/// `[resources.NAME]`: one protected resource (RFC 9728).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResource {
    /// The resource identifier; required; an https URL without fragment.
    pub resource: String,
    /// Issuer identifiers clients may get tokens from; default empty (every
    /// configured issuer's `issuer`).
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes the resource uses; default empty (the scopes and any_scopes of
    /// the routes that name this resource, in file order).
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// A human-readable name; default empty (not served).
    #[serde(default)]
    pub resource_name: String,
    /// A URL of documentation for developers; default empty (not served);
    /// an http or https URL.
    #[serde(default)]
    pub resource_documentation: String,
}

/// `[server]`: the client-facing listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// Address the gateway listens on; default `0.0.0.0:8080`; must be
    /// `address:port`. Read at start only.
    pub listen: String,
    /// The `realm` of every `WWW-Authenticate` challenge; default `tokengate`;
    /// non-empty printable ASCII without `"` or `\`.
    pub realm: String,
    /// PEM certificate chain; default none (plain HTTP); a file that exists,
    /// set together with `tls_key`.
    pub tls_cert: Option<String>,
    /// PEM private key for `tls_cert`; default none; a file that exists, set
    /// together with `tls_cert`.
    pub tls_key: Option<String>,
    /// Peers whose forwarding headers are kept and extended; default none; each
    /// a CIDR or a single address.
    pub trusted_proxies: Vec<String>,
    /// Deadline for the whole request head; default 10000; at least 1.
    pub header_read_timeout_ms: u64,
    /// Deadline for a TLS handshake; default 10000; at least 1.
    pub tls_handshake_timeout_ms: u64,
    /// A connection with nothing in flight and no byte moved is closed after
    /// this; default 60000; at least 1.
    pub idle_timeout_ms: u64,
    /// Largest request head or h2 header list (larger: 431); default 32768;
    /// 8192 to 16 MiB (hyper needs 8 KiB).
    pub max_header_bytes: u64,
    /// Client connections served at once; default 10000; 1 to 10000000. Read at
    /// start only.
    pub max_connections: u64,
    /// Longest bearer token looked at (longer: 401 without any lookup); default
    /// 8192; 1 to 1 MiB.
    pub max_token_bytes: u64,
    /// Verified JWT identities remembered until their `exp`; default 100000;
    /// `0` turns the cache off.
    pub identity_cache_size: u64,
    /// Time in-flight requests get after SIGTERM/SIGINT; default 10000; no
    /// bound (`0` drops them at once).
    pub shutdown_grace_ms: u64,
    /// Async worker threads; default 0 (one per CPU core); 0 to 1024. Read at
    /// start only.
    pub worker_threads: u64,
    /// Reload when the file's content changes (checked every second); default
    /// false.
    pub watch_config: bool,
    /// Forward request headers whose name contains `_`; default false (they are
    /// dropped).
    pub allow_underscore_headers: bool,
    /// Deadline for the whole request body, from the start of forwarding (then
    /// 408); default 30000; at least 1.
    pub body_read_timeout_ms: u64,
    /// HTTP/2 streams a client may have open on one connection; default 200; 1
    /// to 1048576.
    pub h2_max_concurrent_streams: u64,
    /// HTTP/2 streams a client may reset before they are served (rapid reset);
    /// default 20; 1 to 1048576.
    pub h2_max_pending_accept_reset_streams: u64,
    /// HTTP/2 streams the gateway may reset for protocol errors before closing
    /// the connection; default 1024; 1 to 1048576.
    pub h2_max_local_error_reset_streams: u64,
    /// Whether TLS handshakes ask for a client certificate: `none` or
    /// `optional` (asked, never required); default `none`; `optional` only
    /// with `tls_cert`.
    pub tls_client_auth: Keyword<ClientCertAuth>,
    /// PEM CA certificates a presented client certificate must chain to;
    /// default empty (any certificate is accepted by the handshake); a file
    /// that exists; only with `tls_client_auth = "optional"`.
    pub tls_client_ca: String,
    /// Header in which a trusted proxy passes the client certificate
    /// (RFC 9440, `:base64(DER):`); default empty (none); a valid header
    /// name the gateway does not manage.
    pub client_cert_header: String,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            realm: "tokengate".into(),
            tls_cert: None,
            tls_key: None,
            trusted_proxies: Vec::new(),
            header_read_timeout_ms: 10_000,
            tls_handshake_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_header_bytes: 32_768,
            max_connections: 10_000,
            max_token_bytes: 8_192,
            identity_cache_size: 100_000,
            shutdown_grace_ms: 10_000,
            worker_threads: 0,
            watch_config: false,
            allow_underscore_headers: false,
            body_read_timeout_ms: 30_000,
            h2_max_concurrent_streams: 200,
            h2_max_pending_accept_reset_streams: 20,
            h2_max_local_error_reset_streams: 1024,
            tls_client_auth: Keyword::Known(ClientCertAuth::None),
            tls_client_ca: String::new(),
            client_cert_header: String::new(),
        }
    }
}

/// `[admin]`: the operations listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmin {
    /// Address of the admin listener; default `127.0.0.1:9901`; must be
    /// `address:port`. Read at start only.
    pub listen: String,
    /// Bearer token of the `/revocations` endpoints; default empty (the
    /// endpoints answer 404); at least 16 characters.
    pub api_token: String,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9901".into(),
            api_token: String::new(),
        }
    }
}

/// `[issuers.NAME]`: one trusted token issuer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIssuer {
    /// The exact `iss` value of the issuer's tokens; required, non-empty,
    /// distinct across issuers.
    pub issuer: Option<String>,
    /// Key source: the JWK Set URL; default none; https (http only to
    /// loopback). One key source at most.
    pub jwks_uri: Option<String>,
    /// Key source: a local JWK Set file, re-read on reload; default none; a
    /// file that exists.
    pub jwks_file: Option<String>,
    /// Key source: the `jwks_uri` of `{issuer}/.well-known/openid-
    /// configuration`; default false; that URL must be https (http only to
    /// loopback).
    pub discovery: bool,
    /// A token's `aud` must contain one of these; required, non-empty, no empty
    /// string.
    pub audiences: Vec<String>,
    /// JWS algorithms accepted, compared exactly with `alg`; default `RS256,
    /// PS256, ES256, EdDSA`; non-empty, never `none` or `HS*`.
    pub algorithms: Vec<Keyword<Algorithm>>,
    /// Clock skew allowed for `exp`, `nbf` and `iat`; default 60; at most 300.
    pub leeway_s: u64,
    /// `generic` or `rfc9068` (the `typ` and claims RFC 9068 requires); default
    /// `generic`.
    pub profile: Keyword<Profile>,
    /// Claims a JWT must carry, not `null`; default none; no empty name.
    pub required_claims: Vec<String>,
    /// Claims scopes are read from, first present wins; default `scope, scp`;
    /// non-empty, no empty name.
    pub scope_claims: Vec<String>,
    /// Key-set refresh interval (a `max-age` of 60 s to 1 day replaces it);
    /// default 300; at least 1.
    pub jwks_refresh_s: u64,
    /// At most one refetch per this interval after an unknown `kid`; default
    /// 30; at least 1.
    pub jwks_miss_cooldown_s: u64,
    /// How long the last good key set is used while refreshes fail; default
    /// 86400; no bound (`0`: no grace).
    pub jwks_max_stale_s: u64,
    /// Deadline for one key-set or discovery fetch; default 5000; at least 1.
    pub jwks_timeout_ms: u64,
    /// RFC 7662 introspection of opaque tokens
    /// (`[issuers.NAME.introspection]`); default none. An issuer with it needs
    /// no key source.
    pub introspection: Option<RawIntrospection>,
}

impl Default for RawIssuer {
    fn default() -> Self {
        Self {
            issuer: None,
            jwks_uri: None,
            jwks_file: None,
            discovery: false,
            audiences: Vec::new(),
            algorithms: [
                Algorithm::RS256,
                Algorithm::PS256,
                Algorithm::ES256,
                Algorithm::EdDSA,
            ]
            .map(Keyword::Known)
            .to_vec(),
            leeway_s: 60,
            profile: Keyword::Known(Profile::Generic),
            required_claims: Vec::new(),
            scope_claims: vec!["scope".into(), "scp".into()],
            jwks_refresh_s: 300,
            jwks_miss_cooldown_s: 30,
            jwks_max_stale_s: 86_400,
            jwks_timeout_ms: 5_000,
            introspection: None,
        }
    }
}

/// `[issuers.NAME.introspection]`: RFC 7662 client settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIntrospection {
    /// The introspection endpoint; required; https (http only to loopback).
    pub endpoint: Option<String>,
    /// The gateway's client id at the identity provider; required, non-empty.
    pub client_id: Option<String>,
    /// The gateway's client secret; required, non-empty; never logged or
    /// printed.
    pub client_secret: Option<String>,
    /// `client_secret_basic` or `client_secret_post`; default
    /// `client_secret_basic`.
    pub auth_method: Keyword<ClientAuthMethod>,
    /// An active answer is reused for at most this long (and never past its
    /// `exp`); default 60; no bound (`0`: not reused).
    pub cache_ttl_s: u64,
    /// An inactive answer is reused this long; default 5; no bound (`0`: not
    /// reused).
    pub negative_cache_ttl_s: u64,
    /// Deadline for one introspection call (then 503); default 2000; at least
    /// 1.
    pub timeout_ms: u64,
    /// Introspection calls in flight for this issuer (past it: 503 at once);
    /// default 64; 1 to 1048576.
    pub max_concurrent: u64,
}

impl Default for RawIntrospection {
    fn default() -> Self {
        Self {
            endpoint: None,
            client_id: None,
            client_secret: None,
            auth_method: Keyword::Known(ClientAuthMethod::ClientSecretBasic),
            cache_ttl_s: 60,
            negative_cache_ttl_s: 5,
            timeout_ms: 2_000,
            max_concurrent: 64,
        }
    }
}

/// `[upstreams.NAME]`: one backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpstream {
    /// Where requests go; its path is prepended to forwarded paths; required;
    /// absolute http(s), no query or user information.
    pub url: Option<String>,
    /// Deadline for the response head from the start of forwarding (then 504);
    /// default 30000; at least 1.
    pub timeout_ms: u64,
    /// Deadline for connecting (then 502) and for a free connection at
    /// `max_connections` (then 503); default 2000; at least 1.
    pub connect_timeout_ms: u64,
    /// Pass the client's `Host` on instead of the upstream's authority; default
    /// false.
    pub preserve_host: bool,
    /// Extra PEM trust roots for an https upstream; default none (web PKI roots
    /// only); a file that exists, https only.
    pub ca_file: Option<String>,
    /// An idle pooled connection is closed after this; default 90000; at least
    /// 1.
    pub pool_idle_timeout_ms: u64,
    /// Idle connections kept for reuse; default 256; 0 to 1048576 (`0`: no
    /// reuse).
    pub pool_max_idle_per_host: u64,
    /// Connections open to this upstream, idle and busy; default 1024; 1 to
    /// 10000000.
    pub max_connections: u64,
    /// `http1` or `h2` (h2 over TLS by ALPN for https, prior knowledge for
    /// http); default `http1`.
    pub protocol: Keyword<UpstreamProtocol>,
    /// The gateway's own token for this upstream (`[upstreams.NAME.oauth]`);
    /// default none: the request goes on with the caller's credential.
    pub oauth: Option<RawUpstreamOAuth>,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            url: None,
            timeout_ms: 30_000,
            connect_timeout_ms: 2_000,
            preserve_host: false,
            ca_file: None,
            pool_idle_timeout_ms: 90_000,
            pool_max_idle_per_host: 256,
            max_connections: 1024,
            protocol: Keyword::Known(UpstreamProtocol::Http1),
            oauth: None,
        }
    }
}

/// `[upstreams.NAME.oauth]`: how the gateway gets the token it sends this
/// upstream (RFC 6749 section 4.4, RFC 8693).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpstreamOAuth {
    /// `client_credentials` (the gateway's own token) or `token_exchange`
    /// (one per caller token, RFC 8693); required.
    pub grant: Option<Keyword<Grant>>,
    /// The token endpoint; required; https (http only to loopback).
    pub token_endpoint: Option<String>,
    /// The gateway's client id at the token endpoint; required, non-empty.
    pub client_id: Option<String>,
    /// The gateway's client secret; required, non-empty; never logged or
    /// printed.
    pub client_secret: Option<String>,
    /// `client_secret_basic` or `client_secret_post`; default
    /// `client_secret_basic`.
    pub auth_method: Keyword<ClientAuthMethod>,
    /// The `scope` parameter; default empty (not sent); RFC 6749 scope
    /// tokens separated by single spaces.
    pub scope: String,
    /// The RFC 8707 `resource` parameter; default empty (not sent); an
    /// absolute URI without fragment.
    pub resource: String,
    /// Renew this long before `expires_in` runs out (at most half the
    /// lifetime); default 30; at most 86400.
    pub refresh_skew_s: u64,
    /// Deadline for one token request (then 503); default 2000; 1 to 60000.
    pub timeout_ms: u64,
}

impl Default for RawUpstreamOAuth {
    fn default() -> Self {
        Self {
            grant: None,
            token_endpoint: None,
            client_id: None,
            client_secret: None,
            auth_method: Keyword::Known(ClientAuthMethod::ClientSecretBasic),
            scope: String::new(),
            resource: String::new(),
            refresh_skew_s: 30,
            timeout_ms: 2_000,
        }
    }
}

/// `[forward]`: identity headers sent upstream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawForward {
    /// Claim name to the header it is forwarded in; default `sub`, `client_id`,
    /// `scope` to `x-auth-*`; valid header names, each once, none the gateway
    /// manages.
    pub claims: BTreeMap<String, String>,
    /// Remove `Authorization` and `access_token` before forwarding; default
    /// false.
    pub strip_authorization: bool,
}

impl Default for RawForward {
    fn default() -> Self {
        Self {
            claims: [
                ("sub", "x-auth-subject"),
                ("client_id", "x-auth-client-id"),
                ("scope", "x-auth-scope"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            strip_authorization: false,
        }
    }
}

/// `[[routes]]`: one route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Host the route matches, without port; default none (every host).
    pub host: Option<String>,
    /// The path pattern (`*` one segment, trailing `/**` a subtree); required;
    /// starts with `/`, written normalised.
    pub path: String,
    /// Methods the route allows; default none (every method); non-empty, upper
    /// case.
    pub methods: Option<Vec<String>>,
    /// Name of the `[upstreams.NAME]` table requests go to; required, must
    /// exist.
    pub upstream: String,
    /// `required`, `optional` or `none`; default `required`. `none` allows no
    /// scopes or issuers.
    #[serde(default = "default_auth")]
    pub auth: Keyword<AuthMode>,
    /// Scopes all required; default none; RFC 6749 scope tokens.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Scopes of which one is required; default none; RFC 6749 scope tokens.
    #[serde(default)]
    pub any_scopes: Vec<String>,
    /// Names of the issuers whose tokens the route accepts; default none (every
    /// issuer); non-empty, must exist.
    pub issuers: Option<Vec<String>>,
    /// Removed from the path before forwarding; default none; a normalised path
    /// without a trailing `/`.
    pub strip_prefix: Option<String>,
    /// Compare the path pattern case-sensitively; default true (the path is
    /// never folded when forwarded).
    #[serde(default = "default_case_sensitive")]
    pub case_sensitive: bool,
    /// Name of the `[resources.NAME]` this route protects; default none; must
    /// exist. Its challenges carry `resource_metadata`, and its tokens must
    /// have the resource identifier in `aud`.
    pub resource: Option<String>,
    /// Which tokens the route accepts: `any` (bearer or bound), `dpop`,
    /// `mtls` or `bound` (DPoP or mTLS); default `any`; `dpop` needs a
    /// `[dpop]` table.
    #[serde(default = "default_token_binding")]
    pub token_binding: Keyword<TokenBinding>,
    /// Name of the `[rate_limits.NAME]` applied after authentication and
    /// scopes; default none; must exist.
    pub rate_limit: Option<String>,
}

fn default_auth() -> Keyword<AuthMode> {
    Keyword::Known(AuthMode::Required)
}

fn default_token_binding() -> Keyword<TokenBinding> {
    Keyword::Known(TokenBinding::Any)
}

fn default_case_sensitive() -> bool {
    true
}
