//! tokengate: a reverse proxy that enforces OAuth 2.0 bearer tokens in front
//! of APIs that know nothing about OAuth.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | the file and environment → validated, typed [`config::Config`] |
//! | [`check`] | `tokengate check`: the resolved configuration, the route table, lint warnings |
//! | [`server`] | accept loop, connection limit, TLS handshake, HTTP/1.1 + h2, timeouts, drain |
//! | [`tls`] | rustls server and client configs (aws-lc-rs), ALPN |
//! | [`runtime`] | the immutable snapshot a request runs against, swapped whole on reload |
//! | [`target`] | request-target normalisation and refusal |
//! | [`route`] | path patterns and the first-match route table |
//! | [`auth`] | bearer extraction, JWT verification, key sets, the verified principal |
//! | [`policy`] | route scope rules |
//! | [`fetch`] | outbound HTTP to identity providers: deadlines, size limits, no redirects |
//! | [`proxy`] | the upstream request, header hygiene, pooled clients, 502/504, tunnels |
//! | [`error`] | every refusal → status, challenge, JSON body, log level |
//! | [`service`] | the request path, top to bottom |
//! | [`admin`] | `/healthz`, `/readyz`, `/metrics` |
//! | [`telemetry`] | the Prometheus recorder and the per-route metric handles |
//! | [`demo`] | `tokengate demo`: a development issuer and an echo upstream |
//! | [`tools`] | `tokengate init`, `jwks`, `token`, `dev-cert`: tools around the gateway, never in a request's path |
//!
//! One request: `server` accepts the connection (TLS if configured) and
//! hands each request to [`service::handle`] with the current [`runtime`]
//! snapshot. `service` normalises the target (`target`), finds the route
//! (`route`), extracts and verifies the credential (`auth`), checks the
//! route's scopes (`policy`), and forwards
//! (`proxy`), streaming the upstream's answer back. Any refusal is a
//! [`error::Rejection`], rendered in one place.

#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod check;
pub mod clock;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod fetch;
pub mod gateway;
pub mod header_names;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod route;
pub mod runtime;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod target;
pub mod telemetry;
pub mod tls;
pub mod tools;
