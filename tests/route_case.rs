//! Path case over real sockets (behavior.md section 5, config.md
//! `case_sensitive`): matching is case-sensitive by default, so `/Api/admin/x`
//! misses a protected `/api/admin/**` and reaches whatever follows; with
//! `case_sensitive = false` on the protected route it is checked like
//! `/api/admin/x`, and the upstream receives the path as the client wrote it.

mod common;

use common::idp::{issuer_table, wait_ready, TestIdp};
use common::mint::{claims, Key, AUD};
use common::{empty, Client, Gateway, GatewayConfig, Reply, Route, Upstream};
use http::Request;

/// A protected `/api/admin/**` (with `extra` lines) followed by a public
/// catch-all: the configuration that let `/Api/admin/x` through.
async fn start(extra: &str) -> (Key, TestIdp, Upstream, Gateway) {
    let key = Key::es256("k-1");
    let idp = TestIdp::with_keys(&[&key]).await;
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::new()
        .admin_with(&issuer_table("corp", &idp, ""))
        .upstream("echo", &upstream.url())
        .route(Route::new("/api/admin/**", "echo").with(extra))
        .route(Route::open("/**", "echo"))
        .start()
        .await;
    wait_ready(&gw).await;
    (key, idp, upstream, gw)
}

async fn get(gw: &Gateway, client: &Client, path: &str, token: Option<&str>) -> Reply {
    let mut req = Request::get(path);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    gw.send(client, req.body(empty()).expect("request")).await
}

#[tokio::test]
async fn case_insensitive_route_checks_every_case_variant() {
    let (_key, _idp, upstream, gw) = start("case_sensitive = false").await;
    for client in [Client::h1(), Client::h2()] {
        for path in [
            "/api/admin/x",
            "/Api/admin/x",
            "/API/ADMIN/x",
            "/api/Admin",
            "/aPi/aDmIn/deep/er?q=1",
        ] {
            let reply = get(&gw, &client, path, None).await;
            assert_eq!(reply.status, 401, "{path} without a token");
            assert!(
                reply.header("www-authenticate").is_some(),
                "{path}: 401 carries a challenge"
            );
        }
    }
    assert_eq!(upstream.hits(), 0, "a refused request reached the upstream");
}

#[tokio::test]
async fn case_insensitive_route_forwards_the_path_as_written() {
    let (key, idp, upstream, gw) = start("case_sensitive = false").await;
    let token = key.token(&claims(&idp.issuer(), AUD));
    for client in [Client::h1(), Client::h2()] {
        let reply = get(&gw, &client, "/Api/Admin/Users?Sort=Name", Some(&token)).await;
        assert_eq!(reply.status, 200);
        let seen = upstream.last();
        assert_eq!(
            seen.target(),
            "/Api/Admin/Users?Sort=Name",
            "only matching is case-folded"
        );
        assert_eq!(seen.header("x-auth-subject"), Some("alice"));
    }
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn default_route_is_case_sensitive() {
    let (_key, _idp, upstream, gw) = start("").await;
    let reply = get(&gw, &Client::h1(), "/api/admin/x", None).await;
    assert_eq!(reply.status, 401);
    assert_eq!(upstream.hits(), 0);
    // The contract: another case is another path, here the public catch-all.
    let reply = get(&gw, &Client::h1(), "/Api/admin/x", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.last().target(), "/Api/admin/x");
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn case_insensitive_route_strips_its_prefix_in_any_case() {
    let (key, idp, upstream, gw) =
        start("case_sensitive = false\nstrip_prefix = \"/api/admin\"").await;
    let token = key.token(&claims(&idp.issuer(), AUD));
    for (path, forwarded) in [
        ("/api/admin/users", "/users"),
        ("/API/Admin/users?x=1", "/users?x=1"),
        ("/Api/ADMIN", "/"),
    ] {
        let reply = get(&gw, &Client::h1(), path, Some(&token)).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(upstream.last().target(), forwarded, "{path}");
    }
}
