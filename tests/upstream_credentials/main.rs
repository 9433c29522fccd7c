//! Upstream credentials (extensions section 14), black box: the gateway
//! obtains its own token at the test identity provider's `/token` and
//! sends it to an upstream with `[upstreams.NAME.oauth]` instead of the
//! caller's credential.
//!
//! | file | covers |
//! |---|---|
//! | `request.rs` | the token request's form, both client authentication methods, the caller's credential kept from the upstream |
//! | `cache.rs` | one token for many requests, single-flight renewal at expiry, renewal before expiry, reloads |
//! | `failures.rs` | each RFC 6749 5.2 error → 502, unreachable/slow/5xx/non-JSON → 503, non-Bearer/no token → 502, metric labels |
//! | `exchange.rs` | RFC 8693 token exchange: per caller token, bounded by its `exp` |
//!
//! Expiry is stepped on a manual clock ([`common::test_clock`]); the one
//! test of the background renewal runs on the system clock with a
//! two-second token.

mod cache;
#[path = "../common/mod.rs"]
mod common;
mod exchange;
mod failures;
mod request;

use common::assert::{assert_forwarded, assert_unavailable, text};
use common::idp::{wait_ready, TestIdp, TokenAnswer};
use common::mint::{claims, with, Key, AUD};
use common::ops::scrape;
use common::{test_clock, Gateway, GatewayConfig, Issuer, RawConn, Reply, Route, Upstream};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokengate::clock::Clock;

/// The gateway's client at the token endpoint: a space and reserved
/// characters, so that form encoding shows.
const CLIENT_ID: &str = "gate way";
const CLIENT_SECRET: &str = "p@ss:w/rd-Upstream-Secret-77";

/// An identity provider (the caller's tokens and the gateway's), the
/// recording upstream and a gateway with:
///
/// | route | upstream | `oauth` |
/// |---|---|---|
/// | `/api/**` (token required) | `billingN` | `grant` and the test's lines |
/// | `/open/**` (no token; client credentials only) | `billingN` | the same |
/// | `/plain/**` (token required) | `plain` | none: the caller's token goes on |
///
/// both upstreams being the one recording upstream. `N` makes the
/// upstream's name, and so its metric series, the test's own: the tests
/// of this binary share one metrics recorder.
struct Setup {
    name: String,
    idp: TestIdp,
    upstream: Upstream,
    gw: Gateway,
    key: Key,
    clock: Clock,
}

impl Setup {
    async fn start(grant: &str, oauth_lines: &str) -> Setup {
        Setup::start_on(grant, oauth_lines, test_clock()).await
    }

    async fn start_on(grant: &str, oauth_lines: &str, clock: Clock) -> Setup {
        let key = Key::es256("caller-key");
        let idp = TestIdp::with_keys(&[&key]).await;
        let upstream = Upstream::echo().await;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("billing{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let oauth = format!(
            "[upstreams.{name}.oauth]\ngrant = \"{grant}\"\ntoken_endpoint = \"{}\"\n\
             client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n{oauth_lines}",
            idp.token_endpoint()
        );
        let mut config = GatewayConfig::new()
            .admin()
            .issuer(
                Issuer::new("corp", &idp.issuer())
                    .jwks_uri(&idp.jwks_uri())
                    .with("leeway_s = 60"),
            )
            .upstream_with(&name, &upstream.url(), &oauth)
            .upstream("plain", &upstream.url())
            .route(Route::new("/api/**", &name))
            .route(Route::new("/plain/**", "plain"));
        if grant == "client_credentials" {
            config = config.route(Route::open("/open/**", &name));
        }
        let gw = config.start_on(&clock).await;
        wait_ready(&gw).await;
        Setup {
            name,
            idp,
            upstream,
            gw,
            key,
            clock,
        }
    }

    /// A caller token valid for ten minutes, for subject `sub`.
    fn caller(&self, sub: &str) -> String {
        self.key.token(&with(
            &claims(&self.idp.issuer(), AUD),
            json!({ "sub": sub }),
        ))
    }

    async fn call(&self, path: &str, token: &str) -> Reply {
        self.gw.call(path, token).await
    }

    /// The `Authorization` the upstream received last.
    fn upstream_authorization(&self) -> Option<String> {
        self.upstream
            .last()
            .header("authorization")
            .map(String::from)
    }

    /// `tokengate_upstream_token_requests_total{upstream,result}` of this
    /// setup's upstream.
    async fn token_requests(&self, result: &str) -> f64 {
        let labels = [("upstream", self.name.as_str()), ("result", result)];
        let page = scrape(self.gw.admin_addr()).await;
        if page.has("tokengate_upstream_token_requests_total", &labels) {
            page.value("tokengate_upstream_token_requests_total", &labels)
        } else {
            0.0
        }
    }
}

/// `n` requests of `caller` sent while the token endpoint holds its
/// answers: each on its own connection, written before the endpoint's
/// `hits`-th request is awaited and the endpoint released; then every
/// answer's status.
async fn held_concurrent_calls(s: &Setup, caller: &str, n: usize, hits: usize) -> Vec<u16> {
    s.idp.hold_tokens();
    let request =
        format!("GET /api/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {caller}\r\n\r\n");
    let mut conns = Vec::new();
    for _ in 0..n {
        let mut conn = RawConn::connect(s.gw.addr()).await;
        conn.write(request.as_bytes()).await.expect("write request");
        conns.push(conn);
    }
    s.idp.wait_token_hits(hits).await;
    s.idp.release_tokens();
    let mut statuses = Vec::new();
    for conn in &mut conns {
        statuses.push(conn.response().await.status);
    }
    statuses
}

/// The smallest configuration with upstream credentials: issuer `corp` at
/// `idp`, `/api/**` to upstream `billing` at `upstream`, whose `oauth`
/// table asks `token_endpoint` for client credentials, plus `lines`.
fn minimal_config(
    idp: &TestIdp,
    upstream: &Upstream,
    token_endpoint: &str,
    lines: &str,
) -> GatewayConfig {
    let oauth = format!(
        "[upstreams.billing.oauth]\ngrant = \"client_credentials\"\n\
         token_endpoint = \"{token_endpoint}\"\nclient_id = \"gw\"\nclient_secret = \"s\"\n{lines}"
    );
    GatewayConfig::new()
        .issuer(Issuer::new("corp", &idp.issuer()).jwks_uri(&idp.jwks_uri()))
        .upstream_with("billing", &upstream.url(), &oauth)
        .route(Route::new("/api/**", "billing"))
}

/// A 502 `bad_gateway` from the gateway itself, without a challenge.
fn assert_bad_gateway(reply: &Reply, what: &str) {
    let body = reply.gateway_error(502);
    assert_eq!(body["error"], "bad_gateway", "{what}: {body}");
    assert!(reply.header("www-authenticate").is_none(), "{what}");
    assert!(reply.header("retry-after").is_none(), "{what}");
}
