//! Route policy through real sockets (behavior.md sections 1 and 2,
//! config.md `auth`, `scopes`, `any_scopes`, `issuers`, `scope_claims`):
//! what each `auth` mode forwards, how scopes are read from tokens and
//! checked on every request (cached identities included), and that a route
//! only trusts its own issuers. Every refusal is checked at the upstream too.

mod common;

use common::assert::{assert_insufficient_scope, assert_refused, assert_status, DEFAULT_REALM};
use common::idp::{issuer_table, wait_ready, TestIdp};
use common::mint::{claims, with, Key, AUD};
use common::{
    closed_port, empty, get_with, request, Client, Gateway, GatewayConfig, Issuer, Reply, Route,
    Upstream,
};
use http::Request;
use serde_json::{json, Value};

const IDENTITY_HEADERS: [&str; 3] = ["x-auth-subject", "x-auth-client-id", "x-auth-scope"];

struct Setup {
    a: TestIdp,
    b: TestIdp,
    key_a: Key,
    key_b: Key,
    upstream: Upstream,
    gw: Gateway,
}

impl Setup {
    /// Issuer `a` reads `scope` then `scp`; issuer `b` reads `scp` then `scope`.
    async fn start() -> Setup {
        let key_a = Key::es256("a-1");
        let key_b = Key::eddsa("b-1");
        let a = TestIdp::with_keys(&[&key_a]).await;
        let b = TestIdp::with_keys(&[&key_b]).await;
        let upstream = Upstream::echo().await;
        let gw = GatewayConfig::new()
            .admin_with(&format!(
                "{}\n{}",
                issuer_table("a", &a, ""),
                issuer_table("b", &b, "scope_claims = [\"scp\", \"scope\"]")
            ))
            .upstream("echo", &upstream.url())
            .route(Route::open("/public/**", "echo"))
            .route(Route::new("/optional/**", "echo").auth("optional"))
            .route(Route::new("/read/**", "echo").scopes(&["read"]))
            .route(Route::new("/both/**", "echo").scopes(&["read", "write"]))
            .route(Route::new("/any/**", "echo").any_scopes(&["admin", "support"]))
            .route(
                Route::new("/mixed/**", "echo")
                    .scopes(&["read"])
                    .any_scopes(&["x:1", "y:2"]),
            )
            .route(Route::new("/only-a/**", "echo").issuers(&["a"]))
            .route(Route::new("/api/**", "echo"))
            .start()
            .await;
        wait_ready(&gw).await;
        Setup {
            a,
            b,
            key_a,
            key_b,
            upstream,
            gw,
        }
    }

    /// A token from issuer `a` with `changes` applied to the usual claims.
    fn token_a(&self, changes: Value) -> String {
        self.key_a
            .token(&with(&claims(&self.a.issuer(), AUD), changes))
    }

    fn token_b(&self, changes: Value) -> String {
        self.key_b
            .token(&with(&claims(&self.b.issuer(), AUD), changes))
    }

    /// `GET path` with the token (if any) and spoofed identity headers.
    async fn call(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = Request::get(path)
            .header("x-auth-subject", "mallory")
            .header("x-auth-client-id", "evil-app")
            .header("x-auth-scope", "admin read write");
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        self.gw
            .send(&Client::h1(), req.body(empty()).expect("request"))
            .await
    }
}

async fn send_bearer(gw: &Gateway, path: &str, token: &str) -> Reply {
    let req = get_with(path, &[("authorization", &format!("Bearer {token}"))]);
    gw.send(&Client::h1(), req).await
}

#[tokio::test]
async fn auth_none_forwards_without_a_token_and_strips_identity_headers() {
    let s = Setup::start().await;
    let invalid = s.token_a(json!({"exp": 1}));
    for token in [None, Some("not-even-a-jwt"), Some(invalid.as_str())] {
        let reply = s.call("/public/x", token).await;
        assert_eq!(reply.status, 200, "{token:?}");
        let seen = s.upstream.last();
        for name in IDENTITY_HEADERS {
            assert!(!seen.has(name), "spoofed {name} reached the upstream");
        }
    }
    assert_eq!(s.upstream.hits(), 3);
}

#[tokio::test]
async fn auth_optional_forwards_anonymously_but_never_downgrades_a_bad_token() {
    let s = Setup::start().await;
    let reply = s.call("/optional/x", None).await;
    assert_eq!(reply.status, 200);
    let seen = s.upstream.last();
    for name in IDENTITY_HEADERS {
        assert!(!seen.has(name), "anonymous request carries {name}");
    }
    assert_eq!(s.upstream.hits(), 1);

    let refused = [
        ("expired", s.token_a(json!({"exp": 1}))),
        (
            "wrong audience",
            s.token_a(json!({"aud": "https://evil.test"})),
        ),
        (
            "unknown issuer",
            s.key_a.token(&claims("https://evil.test/", AUD)),
        ),
        (
            "bad signature",
            s.key_a
                .jwt(&claims(&s.a.issuer(), AUD))
                .signed_by(&Key::es256("a-1"))
                .encode(),
        ),
        ("opaque", "opaque-token".to_string()),
    ];
    for (what, token) in &refused {
        let reply = s.call("/optional/x", Some(token)).await;
        assert_refused(&reply, DEFAULT_REALM, 401, Some("invalid_token"), None);
        assert_eq!(
            s.upstream.hits(),
            1,
            "{what}: a bad token on an optional route is refused"
        );
    }
    let reply =
        s.gw.send(
            &Client::h1(),
            get_with("/optional/x", &[("authorization", "Bearer a b")]),
        )
        .await;
    assert_refused(&reply, DEFAULT_REALM, 400, Some("invalid_request"), None);

    let reply = s
        .call("/optional/x", Some(&s.token_a(json!({"sub": "alice"}))))
        .await;
    assert_eq!(reply.status, 200);
    let seen = s.upstream.last();
    assert_eq!(seen.header("x-auth-subject"), Some("alice"));
    assert_eq!(seen.header("x-auth-client-id"), Some("app-1"));
    assert_eq!(seen.header("x-auth-scope"), Some("read write"));
    assert_eq!(s.upstream.hits(), 2);
}

#[tokio::test]
async fn required_route_without_a_token_is_401() {
    let s = Setup::start().await;
    for path in ["/api/x", "/read/x", "/only-a/x"] {
        let reply = s.gw.send(&Client::h1(), request("GET", path)).await;
        let body = reply.gateway_error(401);
        assert!(body.get("error").is_none(), "{body}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer realm=\"tokengate\"")
        );
    }
    assert_eq!(s.upstream.hits(), 0);
}

#[tokio::test]
async fn scopes_all_of_and_any_of() {
    let s = Setup::start().await;
    // (route, granted scope string, expected status)
    let cases = [
        ("/read/x", "read", 200),
        ("/read/x", "write read", 200),
        ("/read/x", "READ", 403),
        ("/read/x", "reader", 403),
        ("/read/x", "", 403),
        ("/both/x", "read write", 200),
        ("/both/x", "write  read", 200),
        ("/both/x", "read", 403),
        ("/both/x", "write", 403),
        ("/any/x", "support", 200),
        ("/any/x", "admin other", 200),
        ("/any/x", "read write", 403),
        ("/mixed/x", "read y:2", 200),
        ("/mixed/x", "read", 403),
        ("/mixed/x", "x:1 y:2", 403),
        ("/api/x", "", 200),
    ];
    let challenge = |route: &str| match route {
        "/read/x" => "read",
        "/both/x" => "read write",
        "/any/x" => "admin support",
        _ => "read x:1 y:2",
    };
    let mut forwarded = 0;
    for (route, scope, status) in cases {
        let reply = s
            .call(route, Some(&s.token_a(json!({ "scope": scope }))))
            .await;
        if status == 200 {
            assert_eq!(reply.status, 200, "{route} with {scope:?}");
            forwarded += 1;
        } else {
            assert_insufficient_scope(&reply, challenge(route));
        }
        assert_eq!(s.upstream.hits(), forwarded, "{route} with {scope:?}");
    }
    // No scope claim at all: no scopes.
    let reply = s
        .call("/read/x", Some(&s.token_a(json!({"scope": null}))))
        .await;
    assert_insufficient_scope(&reply, "read");
    assert_eq!(s.upstream.hits(), forwarded);
}

#[tokio::test]
async fn scopes_from_string_or_array_in_scope_claims_order() {
    let s = Setup::start().await;
    // Issuer a: `scope` first. Issuer b: `scp` first.
    let cases = [
        (
            "a: scp array alone",
            s.token_a(json!({"scope": null, "scp": ["read", "write"]})),
            200,
        ),
        (
            "a: scope string wins over scp",
            s.token_a(json!({"scope": "read", "scp": ["read", "write"]})),
            403,
        ),
        (
            "a: scope string has both",
            s.token_a(json!({"scope": "write read", "scp": ["read"]})),
            200,
        ),
        (
            "b: scp array wins over scope",
            s.token_b(json!({"scope": "read write", "scp": ["read"]})),
            403,
        ),
        (
            "b: scp array has both",
            s.token_b(json!({"scope": "read", "scp": ["write", "read"]})),
            200,
        ),
        (
            "b: scp as a string",
            s.token_b(json!({"scope": null, "scp": "read write"})),
            200,
        ),
        (
            "b: scope alone",
            s.token_b(json!({"scope": "read write"})),
            200,
        ),
    ];
    let mut forwarded = 0;
    for (what, token, status) in &cases {
        let reply = s.call("/both/x", Some(token)).await;
        if *status == 200 {
            assert_status(&reply, 200, what);
            forwarded += 1;
        } else {
            assert_insufficient_scope(&reply, "read write");
        }
        assert_eq!(s.upstream.hits(), forwarded, "{what}");
    }
    // A scope array must hold strings only.
    let reply = s
        .call("/api/x", Some(&s.token_b(json!({"scp": ["read", 1]}))))
        .await;
    assert_refused(&reply, DEFAULT_REALM, 401, Some("invalid_token"), None);
    assert_eq!(s.upstream.hits(), forwarded);
}

#[tokio::test]
async fn scopes_are_checked_on_every_request_for_cached_identities() {
    let s = Setup::start().await;
    let token = s.token_a(json!({"scope": "read"}));
    assert_eq!(s.call("/read/x", Some(&token)).await.status, 200);
    assert_eq!(s.call("/read/x", Some(&token)).await.status, 200);
    let reply = s.call("/both/x", Some(&token)).await;
    assert_insufficient_scope(&reply, "read write");
    let reply = s.call("/any/x", Some(&token)).await;
    assert_insufficient_scope(&reply, "admin support");
    assert_eq!(s.call("/read/y", Some(&token)).await.status, 200);
    assert_eq!(s.upstream.hits(), 3);
}

#[tokio::test]
async fn route_issuers_refuse_a_valid_token_of_another_issuer() {
    let s = Setup::start().await;
    let from_b = s.token_b(json!({}));
    assert_eq!(
        s.call("/api/x", Some(&from_b)).await.status,
        200,
        "b is trusted on /api"
    );
    let reply = s.call("/only-a/x", Some(&from_b)).await;
    assert_refused(&reply, DEFAULT_REALM, 401, Some("invalid_token"), None);
    // A fresh token of b, never verified before, is refused the same way.
    let fresh_b = s.token_b(json!({"sub": "bob"}));
    assert_refused(
        &s.call("/only-a/x", Some(&fresh_b)).await,
        DEFAULT_REALM,
        401,
        Some("invalid_token"),
        None,
    );
    assert_eq!(s.upstream.hits(), 1);
    assert_eq!(
        s.call("/only-a/x", Some(&s.token_a(json!({}))))
            .await
            .status,
        200
    );
    assert_eq!(s.upstream.hits(), 2);
}

/// config.md: "A JWT is matched to an issuer by its `iss` among the route's
/// issuers, then verified with that issuer's keys only." A token naming an
/// issuer the route does not trust must be refused as invalid (401) without
/// consulting that issuer, even when that issuer cannot be consulted at all.
#[tokio::test]
async fn route_issuers_do_not_consult_an_issuer_the_route_does_not_trust() {
    let key_a = Key::es256("a-1");
    let a = TestIdp::with_keys(&[&key_a]).await;
    let b = TestIdp::with_keys(&[&Key::eddsa("b-1")]).await;
    let upstream = Upstream::echo().await;
    let down = format!("http://127.0.0.1:{}/", closed_port().await);
    let gw = GatewayConfig::new()
        .issuer(issuer_table("a", &a, ""))
        .issuer(issuer_table("b", &b, ""))
        .issuer(Issuer::new("down", &down).jwks_uri(&format!("{down}jwks")))
        .upstream("echo", &upstream.url())
        .route(Route::new("/only-a/**", "echo").issuers(&["a"]))
        .start()
        .await;
    // Issuer a is up: its tokens work once its keys are in.
    let ok = key_a.token(&claims(&a.issuer(), AUD));
    common::idp::eventually("issuer a loaded", || a.jwks_hits() >= 1).await;
    let mut status = 0;
    for _ in 0..100 {
        status = send_bearer(&gw, "/only-a/x", &ok).await.status.as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
    // A token of the untrusted issuer b with an unknown kid: 401, and b's
    // key set is not refetched on its behalf.
    common::idp::eventually("issuer b loaded", || b.jwks_hits() >= 1).await;
    let b_fetches = b.jwks_hits();
    let reply = send_bearer(
        &gw,
        "/only-a/x",
        &Key::eddsa("b-unknown").token(&claims(&b.issuer(), AUD)),
    )
    .await;
    assert_refused(&reply, DEFAULT_REALM, 401, Some("invalid_token"), None);
    assert_eq!(
        b.jwks_hits(),
        b_fetches,
        "an issuer the route does not trust is not consulted"
    );
    // A token naming the untrusted, unreachable issuer: 401, not "issuer unavailable".
    let reply = send_bearer(
        &gw,
        "/only-a/x",
        &Key::es256("d-1").token(&claims(&down, AUD)),
    )
    .await;
    assert_refused(&reply, DEFAULT_REALM, 401, Some("invalid_token"), None);
    assert_eq!(upstream.hits(), 1);
}
