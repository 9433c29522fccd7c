//! The serde mirror of the configuration file: every key of the contract,
//! with its built-in default, and nothing else (`deny_unknown_fields`, so a
//! typo is an error instead of a silently disabled check).
//!
//! Nothing here is trusted: [`super::build`] turns a [`RawConfig`] into the
//! typed [`super::Config`] once, and nothing after load looks at these types.

use serde::de::{value::StrDeserializer, DeserializeOwned, Deserializer};
use serde::Deserialize;
use std::collections::BTreeMap;

use super::{Algorithm, AuthMode, ClientAuthMethod, Profile};

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

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub issuers: BTreeMap<String, RawIssuer>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub forward: RawForward,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub realm: String,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub trusted_proxies: Vec<String>,
    pub header_read_timeout_ms: u64,
    pub tls_handshake_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub max_header_bytes: u64,
    pub max_connections: u64,
    pub max_token_bytes: u64,
    pub identity_cache_size: u64,
    pub shutdown_grace_ms: u64,
    pub worker_threads: u64,
    pub watch_config: bool,
    pub allow_underscore_headers: bool,
    pub body_read_timeout_ms: u64,
    pub h2_max_concurrent_streams: u64,
    pub h2_max_pending_accept_reset_streams: u64,
    pub h2_max_local_error_reset_streams: u64,
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
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmin {
    pub listen: String,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9901".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIssuer {
    pub issuer: Option<String>,
    pub jwks_uri: Option<String>,
    pub jwks_file: Option<String>,
    pub discovery: bool,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Keyword<Algorithm>>,
    pub leeway_s: u64,
    pub profile: Keyword<Profile>,
    pub required_claims: Vec<String>,
    pub scope_claims: Vec<String>,
    pub jwks_refresh_s: u64,
    pub jwks_miss_cooldown_s: u64,
    pub jwks_max_stale_s: u64,
    pub jwks_timeout_ms: u64,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIntrospection {
    pub endpoint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub auth_method: Keyword<ClientAuthMethod>,
    pub cache_ttl_s: u64,
    pub negative_cache_ttl_s: u64,
    pub timeout_ms: u64,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpstream {
    pub url: Option<String>,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub preserve_host: bool,
    pub ca_file: Option<String>,
    pub pool_idle_timeout_ms: u64,
    pub pool_max_idle_per_host: u64,
    pub max_connections: u64,
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
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawForward {
    pub claims: BTreeMap<String, String>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub host: Option<String>,
    pub path: String,
    pub methods: Option<Vec<String>>,
    pub upstream: String,
    #[serde(default = "default_auth")]
    pub auth: Keyword<AuthMode>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub any_scopes: Vec<String>,
    pub issuers: Option<Vec<String>>,
    pub strip_prefix: Option<String>,
    #[serde(default = "default_case_sensitive")]
    pub case_sensitive: bool,
}

fn default_auth() -> Keyword<AuthMode> {
    Keyword::Known(AuthMode::Required)
}

fn default_case_sensitive() -> bool {
    true
}
