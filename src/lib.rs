//! tokengate: a reverse proxy that enforces OAuth 2.0 bearer tokens in front
//! of APIs that know nothing about OAuth.
//!
//! # Layout
//!
//! Dependencies point down this table: a module uses only modules below it
//! (and leaves such as `arena`, `clock`, `header_names`, `shutdown`, `worker`), never one above;
//! `tests/module_graph.rs` fails on an import circle.
//!
//! | module | owns |
//! |---|---|
//! | [`gateway`] | the entry point: the admin listener, the reload triggers and the server against one shutdown |
//! | [`reload`] | replacing the snapshot: `SIGHUP` and `server.watch_config`, side by side |
//! | [`service_manager`] | systemd's `sd_notify`: ready once serving with every issuer usable, reloading around `SIGHUP`, stopping at the drain |
//! | [`admin`] | `/healthz`, `/readyz`, `/metrics` |
//! | [`server`] | accept loop, connection limit, TLS handshake, HTTP/1.1 + h2, timeouts, drain |
//! | [`service`] | the request path, top to bottom |
//! | [`check`] | `tokengate check`: the resolved configuration, the route table, lint warnings |
//! | [`tools`] | `tokengate init`, `jwks`, `token`, `dev-cert`: tools around the gateway, never in a request's path |
//! | [`demo`] | `tokengate demo`: a development issuer and an echo upstream, outside the request path |
//! | [`error`] | every refusal → status, challenge, JSON body, log level; the one log line of a failure |
//! | [`evidence`] | what a request shows about its sender: the DPoP target URI, the client certificate |
//! | [`runtime`] | the immutable snapshot a request runs against (compiled routes, verifiers, upstreams), swapped whole on reload |
//! | [`proxy`] | the upstream request, header hygiene, pooled connections, `UpstreamError`, tunnels |
//! | [`upstream_auth`] | `[upstreams.NAME.oauth]`: the gateway's own token for an upstream (client credentials, token exchange) |
//! | [`auth`] | bearer extraction, JWT verification, key sets, introspection, `AuthError`, the verified principal |
//! | [`metadata`] | RFC 9728 protected-resource metadata: the documents and their lookup |
//! | [`policy`] | route scope rules |
//! | [`ratelimit`] | `[rate_limits.NAME]`: GCRA per key, shared through Redis or local, the `RateLimit` headers |
//! | [`trace`] | W3C trace context, sampling, the OpenTelemetry spans and their export |
//! | [`fetch`] | outbound HTTP to identity providers: deadlines, size limits, no redirects |
//! | [`telemetry`] | the Prometheus recorder and the per-route metric handles |
//! | [`config`] | the file and environment → validated, typed [`config::Config`] |
//! | [`route`] | path patterns and the first-match route table |
//! | [`target`] | request-target normalisation and refusal |
//! | [`tls`] | rustls server and client configs (aws-lc-rs), ALPN |
//! | [`shutdown`] | the drain phases every listener watches (leaf) |
//! | [`clock`] | the wall clock of token times, steppable in tests (leaf) |
//! | [`header_names`] | the header names the gateway reserves (leaf) |
//! | [`worker`] | which worker thread runs this; one current-thread runtime per worker, each on its own `SO_REUSEPORT` listener (leaf) |
//! | [`arena`] | per-thread blocks that per-request values (request id, `traceparent`, upstream target) are carved from (leaf) |
//!
//! One request: `server` accepts the connection (TLS if configured) and
//! hands each request to [`service::handle`] with the current [`runtime`]
//! snapshot. `service` normalises the target (`target`), finds the
//! [`runtime::CompiledRoute`] (`route`), extracts and verifies the
//! credential (`auth`), checks the route's scopes (`policy`) and its rate
//! limit (`ratelimit`), gets the upstream's own token if it has one
//! (`upstream_auth`), and forwards (`proxy`), streaming the upstream's
//! answer back. A phase that refuses returns its error;
//! [`error::Rejection`] renders and logs it in one place.

#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod arena;
pub mod auth;
pub mod check;
pub mod clock;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod evidence;
pub mod fetch;
pub mod fleet;
pub mod gateway;
pub mod header_names;
pub mod metadata;
pub mod policy;
pub mod proxy;
pub mod ratelimit;
pub mod reload;
pub mod revocation;
pub mod route;
pub mod runtime;
pub mod server;
pub mod service;
pub mod service_manager;
pub mod shutdown;
pub mod target;
pub mod telemetry;
pub mod tls;
pub mod tools;
pub mod trace;
pub mod upstream_auth;
pub mod worker;
