//! Key sets over time (behavior.md section 3, "Key sets"), through real
//! sockets: readiness while the identity provider is down, rotation and
//! removal of keys, the unknown-kid refetch budget, refreshes that fail in
//! every way an identity provider can fail, the stale limit, discovery,
//! `Cache-Control: max-age` bounds, and a key file that needs no network.
//!
//! Fetch counts come from the test identity provider's counters; every
//! wait polls a counter or `/readyz` under a deadline.

#[path = "../common/mod.rs"]
mod common;
mod refresh;
mod rotation;
mod sources;

use common::assert::{assert_invalid_token, assert_unavailable};

use common::idp::{eventually, issuer_table, readyz, wait_not_ready, wait_ready, Failure, TestIdp};
use common::mint::{b64, claims, with, Key, AUD};
use common::ops::FileGateway;
use common::{request, Client, Gateway, GatewayConfig, Issuer, Reply, Route, Upstream};
use futures_util::StreamExt;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// A gateway with one issuer `corp` (the idp's key set, `issuer_extra`
/// lines appended) and one protected route `/api/**`.
async fn gateway(idp: &TestIdp, upstream: &Upstream, issuer_extra: &str) -> Gateway {
    GatewayConfig::new()
        .admin()
        .issuer(issuer_table("corp", idp, issuer_extra))
        .upstream("echo", &upstream.url())
        .route(Route::new("/api/**", "echo"))
        .start()
        .await
}

/// An idp publishing `keys`, an echo upstream, and a ready [`gateway`]
/// over them.
async fn ready(keys: &[&Key], issuer_extra: &str) -> (TestIdp, Upstream, Gateway) {
    let idp = TestIdp::with_keys(keys).await;
    let upstream = Upstream::echo().await;
    let gw = gateway(&idp, &upstream, issuer_extra).await;
    wait_ready(&gw).await;
    (idp, upstream, gw)
}

fn token(key: &Key, idp: &TestIdp) -> String {
    key.token(&claims(&idp.issuer(), AUD))
}

/// `/readyz` answers 503 and names `issuer`.
fn assert_names_issuer(reply: &Reply, issuer: &str) {
    assert_eq!(reply.status, 503);
    let body = reply.json();
    assert!(body["issuers"][issuer].is_string(), "{body}");
}

#[tokio::test]
async fn idp_down_at_start_means_not_ready_and_503_until_it_comes_up() {
    let key = Key::es256("k1");
    let idp = TestIdp::with_keys(&[&key]).await;
    idp.set_failure(Failure::Down);
    let upstream = Upstream::echo().await;
    let gw = gateway(&idp, &upstream, "jwks_refresh_s = 1\njwks_timeout_ms = 500").await;
    let t = token(&key, &idp);

    eventually("a first key-set fetch attempt", || idp.total_hits() >= 1).await;
    assert_names_issuer(&readyz(&gw).await, "corp");
    for _ in 0..3 {
        assert_unavailable(&gw.call("/api/x", &t).await, "unavailable");
    }
    assert_eq!(
        upstream.hits(),
        0,
        "a token that cannot be checked is never forwarded"
    );
    assert_eq!(idp.jwks_hits(), 0);

    idp.set_failure(Failure::None);
    wait_ready(&gw).await;
    assert_eq!(gw.call("/api/x", &t).await.status, 200);
    assert_eq!(upstream.hits(), 1);
}
