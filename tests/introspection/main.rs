//! Opaque tokens through real sockets (behavior.md section 4 and section 2's
//! 503 row; config.md `[issuers.NAME.introspection]`): the RFC 7662 request
//! the gateway sends, what counts as active, the positive and negative
//! caches and their lifetimes, one call for concurrent lookups of a token,
//! the bound on calls in flight, fail-closed answers when the endpoint cannot
//! be consulted, and which issuer an opaque token is sent to.
//!
//! Every case asserts the gateway's answer, the upstream's hit count and the
//! introspection endpoint's call count. The gateway runs on a manual clock
//! (`Setup::k`): a cache TTL or a token's `exp` passes when a test steps it,
//! never by sleeping; every other wait is bounded.

mod answers;
mod caching;
#[path = "../common/mod.rs"]
mod common;
mod routing;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::assert::{assert_forwarded, assert_invalid_token, assert_unavailable};
use common::idp::{form_decode, issuer_table, readyz, wait_ready, IntrospectFailure, TestIdp};
use common::mint::{claims, now, with, Key, AUD};
use common::{get_with, request, within, Client, GatewayConfig, Issuer, Reply, Route, Upstream};
use http::Method;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokengate::clock::Clock;
use tokengate::config::Config;
use tokio::task::JoinSet;

/// The gateway's client credentials: every character RFC 6749 section 2.3.1
/// makes it form-encode before base64 (space, `:`, `@`, `/`, `%`).
const CLIENT_ID: &str = "gate way:@/1";
const CLIENT_SECRET: &str = "p@ss:w/rd %";

/// One TTL of the short caches, plus a margin.
const PAST_ONE_SECOND: Duration = Duration::from_millis(1_150);

/// The `issuer` of the introspection-only issuer `name`.
fn iss(name: &str) -> String {
    format!("https://{name}.idp.test/")
}

/// An introspection-only issuer `name` (no key source) whose endpoint is
/// `idp`'s `/introspect`; `issuer` lines go into its issuer table, `extra`
/// lines into its `[introspection]` table.
fn introspection_issuer(name: &str, idp: &TestIdp, issuer: &str, extra: &str) -> Issuer {
    Issuer::new(name, &iss(name))
        .with(issuer)
        .introspect_at(&idp.introspection_endpoint(), CLIENT_ID, CLIENT_SECRET)
        .introspection(extra)
}

/// An opaque bearer token (b64token syntax, no `.`) with characters that
/// must be escaped in a form body: `+`, `/`, `~`, `=`.
fn opaque(name: &str) -> String {
    format!("op+{name}/x~y==")
}

/// An active answer from issuer `corp` for our audience, valid for five
/// minutes, with `changes` applied (`null` removes a member).
fn active(changes: Value) -> Value {
    with(
        &json!({
            "active": true,
            "sub": "alice",
            "client_id": "app-1",
            "scope": "read write",
            "iss": iss("corp"),
            "aud": AUD,
            "exp": now() + 300,
            "token_type": "Bearer",
        }),
        changes,
    )
}

/// One introspection-only issuer `corp` at a fresh [`TestIdp`], an echo
/// upstream, and the routes `/read/**` (scope `read`), `/admin/**` (scope
/// `admin`), `/optional/**` (`auth = "optional"`) and `/api/**` (any valid
/// token).
/// `k` is the gateway's clock, which the cache tests step.
type Setup = common::Setup<Clock>;

impl Setup {
    /// `introspection` lines go into `corp`'s `[introspection]` table.
    async fn start(introspection: &str) -> Setup {
        Setup::start_with("", introspection).await
    }

    /// `server` lines go into `[server]` as well.
    async fn start_with(server: &str, introspection: &str) -> Setup {
        Setup::start_full(server, "", introspection).await
    }

    /// `issuer` lines go into `corp`'s `[issuers.corp]` table as well.
    async fn start_with_issuer(issuer: &str, introspection: &str) -> Setup {
        Setup::start_full("", issuer, introspection).await
    }

    async fn start_full(server: &str, issuer: &str, introspection: &str) -> Setup {
        let clock = common::test_clock();
        let idp = TestIdp::start().await;
        let upstream = Upstream::echo().await;
        let gw = GatewayConfig::new()
            .server(server)
            .admin()
            .issuer(introspection_issuer("corp", &idp, issuer, introspection))
            .upstream("echo", &upstream.url())
            .route(Route::new("/read/**", "echo").scopes(&["read"]))
            .route(Route::new("/admin/**", "echo").scopes(&["admin"]))
            .route(Route::new("/optional/**", "echo").auth("optional"))
            .route(Route::new("/api/**", "echo"))
            .start_on(&clock)
            .await;
        Setup {
            idp,
            upstream,
            gw,
            k: clock,
        }
    }

    async fn call(&self, path: &str, token: &str) -> Reply {
        call(self.gw.addr(), path, token).await
    }
}

/// `GET path` with the bearer `token` and spoofed identity headers.
async fn call(addr: SocketAddr, path: &str, token: &str) -> Reply {
    let req = get_with(
        path,
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-auth-subject", "mallory"),
            ("x-auth-client-id", "evil-app"),
            ("x-auth-scope", "admin read write"),
        ],
    );
    Client::h1().fetch(addr, req).await
}

/// One form-encoded component, decoded.
fn form_unescape(component: &str) -> String {
    let pairs = form_decode(&format!("v={component}"))
        .unwrap_or_else(|| panic!("not form-encoded: {component:?}"));
    assert_eq!(pairs.len(), 1, "an unescaped `&` in {component:?}");
    pairs.into_iter().next().map(|(_, v)| v).unwrap_or_default()
}

fn sorted(mut form: Vec<(String, String)>) -> Vec<(String, String)> {
    form.sort();
    form
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    sorted(
        items
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    )
}
