//! The runtime snapshot: everything a request needs (configuration, route
//! table, upstream clients, TLS acceptor), built whole from a validated
//! [`Config`] and then immutable. The server holds it behind an `ArcSwap`:
//! a request takes one snapshot at its start and keeps it to the end, and a
//! reload builds a complete new snapshot before swapping it in, so no
//! request ever sees a mix of old and new rules.
//!
//! A reload never empties an issuer's key set: an unchanged key source
//! carries its set (and refresh loop) over, and a changed one is fetched
//! before the swap, within `jwks_timeout_ms` (after which the swap happens
//! anyway and `/readyz` says which issuer is still loading, as at start).

use arc_swap::ArcSwap;
use http::HeaderName;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

use crate::auth::Authenticator;
use crate::clock::Clock;
use crate::config::{Config, ConfigError, ConfigErrors, KeySource, RouteConfig, ServerConfig};
use crate::fetch::HttpFetcher;
use crate::fleet::Fleet;
use crate::metadata::ResourceMetadata;
use crate::proxy::Upstream;
use crate::ratelimit::RateLimits;
use crate::revocation::DenyList;
use crate::route::{RouteKey, RouteTable};
use crate::telemetry::RouteMetrics;
use crate::trace::Tracing;
use crate::upstream_auth::TokenSource;

pub struct Runtime {
    pub config: Config,
    /// Matches a request to an index of [`Runtime::compiled`].
    pub routes: RouteTable,
    /// Every route with what a request on it needs, in configuration order.
    pub compiled: Vec<CompiledRoute>,
    pub tls: Option<TlsAcceptor>,
    /// The h2 server settings (and HTTP/1.1 for a connection whose
    /// protocol hyper-util detects), built once per snapshot.
    pub http: auto::Builder<TokioExecutor>,
    /// The HTTP/1.1 server settings, the same as `http`'s: a plain HTTP/1.1
    /// connection is driven through hyper's connection parts (see
    /// `server::connection`).
    pub http1: hyper::server::conn::http1::Builder,
    pub auth: Authenticator,
    /// The clock of token times, shared with `auth`.
    pub clock: Clock,
    fetcher: HttpFetcher,
    /// Headers stripped from every request: those named in
    /// `forward.claims`, `DPoP`, and `server.client_cert_header`.
    pub identity_headers: Vec<HeaderName>,
    /// The metric handles of requests that matched no route.
    unrouted: RouteMetrics,
    /// Every `[resources.NAME]` with its metadata document, in name order.
    pub resources: Vec<Arc<ResourceMetadata>>,
    /// The shared Redis, if any; carried over reloads while `[redis]` is
    /// unchanged.
    pub fleet: Fleet,
    /// The deny-list of revoked tokens; carried over every reload.
    pub revocations: Arc<DenyList>,
    /// Every `[rate_limits.NAME]` with its local state; an unchanged limit
    /// keeps its state over a reload.
    pub rate_limits: RateLimits,
    /// Trace context and span export; carried over a reload that leaves
    /// `[tracing]` unchanged.
    pub tracing: Arc<Tracing>,
}

/// One route, compiled once per snapshot: its configuration and everything
/// a request on it needs, so nothing on the request path indexes parallel
/// lists.
pub struct CompiledRoute {
    pub config: RouteConfig,
    pub upstream: Arc<Upstream>,
    /// The required scopes, space-separated, for the 403 challenge.
    pub challenge: String,
    pub metrics: RouteMetrics,
    /// The resource the route protects: its challenges name the metadata
    /// URL, and its tokens must have the identifier in `aud`.
    pub resource: Option<Arc<ResourceMetadata>>,
    /// The upstream's own token, when it has `[upstreams.NAME.oauth]`;
    /// shared by every route to that upstream.
    pub credentials: Option<Arc<TokenSource>>,
}

impl Runtime {
    /// Builds every part or fails naming the key; no network I/O.
    pub fn build(config: Config) -> Result<Runtime, ConfigErrors> {
        Runtime::build_next(config, None)
    }

    /// [`Runtime::build`] on a given clock: tests step a
    /// [`Clock::manual`] instead of waiting for tokens to expire. A reload
    /// keeps the running snapshot's clock.
    pub fn build_with_clock(config: Config, clock: Clock) -> Result<Runtime, ConfigErrors> {
        Runtime::build_from(config, None, clock)
    }

    /// Builds a snapshot that carries over the issuer state of `previous`
    /// that still holds (key sets of unchanged key sources, caches of
    /// unchanged issuers, the tokens of upstreams whose `oauth` table is
    /// unchanged), so a reload causes neither a refetch storm nor a
    /// window without keys. No network I/O.
    pub fn build_next(config: Config, previous: Option<&Runtime>) -> Result<Runtime, ConfigErrors> {
        let clock = previous.map_or_else(Clock::system, |p| p.clock.clone());
        Runtime::build_from(config, previous, clock)
    }

    fn build_from(
        config: Config,
        previous: Option<&Runtime>,
        clock: Clock,
    ) -> Result<Runtime, ConfigErrors> {
        let mut errors = Vec::new();
        let tls = match &config.server.tls {
            Some(files) => match crate::tls::server_config(
                &files.cert,
                &files.key,
                &config.server.client_certs,
            ) {
                Ok(c) => Some(TlsAcceptor::from(c)),
                Err((key, reason)) => {
                    errors.push(ConfigError::new(key, reason));
                    None
                }
            },
            None => None,
        };
        let mut upstreams = Vec::new();
        for u in &config.upstreams {
            match Upstream::new(u) {
                Ok(up) => upstreams.push(Arc::new(up)),
                Err(e) => errors.push(e),
            }
        }
        let fetcher = match previous {
            Some(p) => p.fetcher.clone(),
            None => HttpFetcher::new().map_err(|e| ConfigError::new("tls", e))?,
        };
        let tracing = match previous {
            Some(p) if p.config.tracing == config.tracing => Some(p.tracing.clone()),
            _ => match Tracing::new(&config.tracing) {
                Ok(t) => Some(Arc::new(t)),
                Err(e) => {
                    errors.push(ConfigError::new("tracing.otlp_endpoint", e));
                    None
                }
            },
        };
        let fleet = Fleet::new(&config, previous.map(|p| &p.fleet));
        let auth = match Authenticator::new(
            &config,
            &fetcher,
            previous.map(|p| &p.auth),
            &clock,
            fleet.redis.as_ref(),
        ) {
            Ok(auth) => Some(auth),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        };
        let (Some(auth), Some(tracing), true) = (auth, tracing, errors.is_empty()) else {
            return Err(ConfigErrors(errors));
        };
        let routes = RouteTable::new(
            config
                .routes
                .iter()
                .map(|r| RouteKey {
                    host: r.host.clone(),
                    pattern: r.path.clone(),
                    methods: r.methods.clone(),
                    case_sensitive: r.case_sensitive,
                })
                .collect(),
        );
        let identity_headers = config
            .forward
            .claims
            .iter()
            .map(|(_, h)| h.clone())
            .chain([crate::auth::dpop::DPOP.clone()])
            .chain(config.server.client_certs.header.clone())
            .collect();
        let resources: Vec<Arc<ResourceMetadata>> = config
            .resources
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let enforced = crate::metadata::Enforced::of(&config, i);
                Arc::new(ResourceMetadata::new(r.clone(), &enforced))
            })
            .collect();
        let credentials: Vec<Option<Arc<TokenSource>>> = config
            .upstreams
            .iter()
            .map(|u| {
                let oauth = u.oauth.as_ref()?;
                let kept = previous
                    .into_iter()
                    .flat_map(|p| &p.compiled)
                    .filter_map(|r| r.credentials.as_ref())
                    .find(|c| c.serves(&u.name, oauth));
                let source = kept.cloned().unwrap_or_else(|| {
                    Arc::new(TokenSource::new(
                        &u.name,
                        oauth,
                        fetcher.clone(),
                        clock.clone(),
                    ))
                });
                Some(source)
            })
            .collect();
        let compiled = config
            .routes
            .iter()
            .map(|r| CompiledRoute {
                credentials: credentials[r.upstream].clone(),
                resource: r.resource.map(|i| Arc::clone(&resources[i])),
                config: r.clone(),
                upstream: Arc::clone(&upstreams[r.upstream]),
                challenge: crate::policy::challenge(r),
                metrics: RouteMetrics::new(r.path.as_str()),
            })
            .collect();
        let revocations = previous.map(|p| p.revocations.clone()).unwrap_or_default();
        let rate_limits = RateLimits::new(&config.rate_limits, previous.map(|p| &p.rate_limits));
        Ok(Runtime {
            tracing,
            fleet,
            revocations,
            rate_limits,
            http: http_builder(&config.server),
            http1: http1_builder(&config.server),
            config,
            routes,
            compiled,
            tls,
            auth,
            fetcher,
            identity_headers,
            unrouted: RouteMetrics::new("-"),
            resources,
            clock,
        })
    }

    /// The metric handles of a matched route, or of "no route".
    pub fn route_metrics<'a>(&'a self, route: Option<&'a CompiledRoute>) -> &'a RouteMetrics {
        route.map_or(&self.unrouted, |r| &r.metrics)
    }

    /// [`Runtime::build`], then the checks `tokengate check` adds because a
    /// running gateway would only report them through `/readyz`: a
    /// `jwks_file` without a usable key is an error. No network I/O.
    pub fn check(config: Config) -> Result<Runtime, ConfigErrors> {
        let rt = Runtime::build(config)?;
        let errors: Vec<ConfigError> = rt
            .auth
            .keys
            .iter()
            .flatten()
            .filter(|i| matches!(i.config.jwt.key_source, KeySource::File(_)))
            .filter(|i| i.key_count() == Some(0))
            .map(|i| {
                ConfigError::new(
                    format!("issuers.{}.jwks_file", i.config.name),
                    "has no usable key (every key was skipped, or the set is empty)",
                )
            })
            .collect();
        if errors.is_empty() {
            Ok(rt)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Starts background work (key-set fetches) and applies this
    /// snapshot's key-set settings to key sets carried over from the
    /// previous one; needs a tokio runtime. Calling it again does nothing
    /// more.
    pub fn start(&self) {
        self.auth.start();
        self.tracing.start();
        if let Some(redis) = &self.fleet.redis {
            if redis.start() {
                crate::revocation::sync::start(
                    redis,
                    &self.revocations,
                    self.config.revocation.sync_interval,
                    &self.clock,
                );
            }
        }
    }

    /// Before a reload's swap: fetches the key sets this snapshot does not
    /// have yet (changed key sources), each within its `jwks_timeout_ms`.
    pub async fn prefetch(&self) {
        self.auth.prefetch().await;
    }

    /// Issuers that cannot verify tokens yet, with the reason; empty when ready.
    pub fn not_ready(&self) -> Vec<(String, &'static str)> {
        self.auth.not_ready()
    }
}

/// The current snapshot, swapped atomically on reload.
pub type SharedRuntime = Arc<ArcSwap<Runtime>>;

pub fn shared(runtime: Runtime) -> SharedRuntime {
    Arc::new(ArcSwap::from_pointee(runtime))
}

/// The HTTP/1.1 server settings for a configuration; `http_builder` sets
/// the same on its HTTP/1 side.
fn http1_builder(server: &ServerConfig) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout)
        .max_buf_size(server.max_header_bytes)
        .keep_alive(true);
    builder
}

/// The HTTP server settings for a configuration.
fn http_builder(server: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout)
        .max_buf_size(server.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(server.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(server.h2.max_concurrent_streams)
        .max_pending_accept_reset_streams(server.h2.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(server.h2.max_local_error_reset_streams);
    builder
}
