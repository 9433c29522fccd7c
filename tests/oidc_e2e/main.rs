//! End to end against a real OAuth 2.0 authorization server that we did not
//! write: `oidc-provider` (npm, pinned by `tests/e2e/package-lock.json`),
//! started as `node tests/e2e/provider.mjs` on 127.0.0.1:0 for each test,
//! with tokengate in-process in front of a recording echo upstream.
//!
//! | test | flow |
//! |---|---|
//! | `client_credentials_jwt_is_enforced` | RFC 6749 4.4 + RFC 8707 resource → RFC 9068 JWT; scopes, no token, tampering |
//! | `opaque_token_introspected_with_client_secret_basic_is_refused_after_revocation` | RFC 7662 + RFC 7009, `cache_ttl_s` bound |
//! | `opaque_token_introspected_with_client_secret_post_is_cached` | the other client authentication method; cache; refused gateway credentials |
//! | `authorization_code_with_pkce_yields_an_accepted_token` | RFC 6749 4.1 + RFC 7636 through the provider's devInteractions |
//! | `refresh_token_rotation` | RFC 6749 6 with rotation: new token works, old refresh token refused |
//! | `provider_key_rotation_costs_exactly_one_key_set_fetch` | unknown kid → one refetch |
//! | `dpop_bound_token_needs_a_fresh_proof_of_its_key` | RFC 9449: `cnf.jkt` token, proofs by the `dpop` package; replay, wrong key, Bearer scheme |
//! | `certificate_bound_token_needs_its_certificate_in_the_handshake` | RFC 8705: `cnf["x5t#S256"]` token, rcgen certificates over TLS |
//! | `unbound_token_on_a_dpop_route_gets_a_dpop_challenge` | `token_binding = "dpop"` refuses a Bearer token |
//! | `client_credentials_token_for_the_upstream_passes_a_second_gateway` | upstream credentials: the gateway's own RFC 6749 4.4 token with an RFC 8707 resource, verified by a second tokengate |
//! | `token_exchange_for_each_caller_passes_a_second_gateway` | upstream credentials: RFC 8693 token exchange (a custom grant type in provider.mjs), one token per caller |
//!
//! Setup, once per test binary: `node` must be on PATH (else the tests
//! print a skip line and pass, unless `REQUIRE_OIDC_E2E=1`, which
//! makes that a failure); when `tests/e2e/node_modules` lacks a package
//! of `package.json` (oidc-provider, dpop), `npm ci` installs them from the
//! lockfile. Every wait is
//! bounded; the provider is killed through its `Child` handle when the
//! test ends (and exits by itself when its stdin closes, so a test process
//! that dies cannot leave it behind).

#[path = "../common/mod.rs"]
mod common;
mod provider;
mod support;
use provider::*;
use support::*;
mod bound_tokens;
mod client_cert;
mod dpop_key;
mod service_tokens;
mod upstream_credentials;
mod user_tokens;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::assert::{assert_forwarded, assert_invalid_token, text};

use common::idp::wait_ready;
use common::{empty, full, Client, Gateway, GatewayConfig, Issuer, Reply, Route, Upstream};
use http::Request;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The JWT resource (RFC 8707 indicator and `aud`) configured in provider.mjs.
const API: &str = "https://api.test";
/// The resource whose access tokens are opaque.
const OPAQUE: &str = "https://opaque.test";
/// Client credentials, as registered in provider.mjs.
const SVC: (&str, &str) = ("svc", "svc-secret");
/// Its tokens are DPoP-bound: the provider insists on a proof.
const SVC_DPOP: (&str, &str) = ("svc-dpop", "svc-dpop-secret");
/// Its tokens are bound to the client certificate it names.
const SVC_MTLS: (&str, &str) = ("svc-mtls", "svc-mtls-secret");
const GATEWAY_BASIC: (&str, &str) = ("tokengate", "gateway-secret");
const GATEWAY_POST: (&str, &str) = ("tokengate-post", "gateway-post-secret");
const SPA: &str = "spa";

/// `npm ci` on a cold cache.
const NPM_CI_LIMIT: Duration = Duration::from_secs(300);
/// node starting, oidc-provider loading, the ready line.
const PROVIDER_READY_LIMIT: Duration = Duration::from_secs(20);
/// `node --version`, `npm --version`, the authorize.mjs user agent.
const HELPER_LIMIT: Duration = Duration::from_secs(20);
