//! The error rows of behavior.md section 2, each with its exact status,
//! challenge, body and headers; the bearer scheme and the token size bound.

use super::*;

#[tokio::test]
async fn section2_no_bearer_credential_is_401_without_error() {
    let s = Setup::start("", "").await;
    let token = s.k.rs.token(&s.claims());
    let cases: Vec<(&str, Request<common::Body>)> = vec![
        ("no Authorization header", request("GET", "/api/x")),
        (
            "Basic scheme",
            with_authorization("/api/x", &[b"Basic dXNlcjpwYXNz"]),
        ),
        (
            "Digest scheme",
            with_authorization("/api/x", &[b"Digest username=\"a\""]),
        ),
        (
            "scheme glued to the token",
            with_authorization("/api/x", &[format!("Bearer{token}").as_bytes()]),
        ),
        (
            "access_token query parameter alone",
            request("GET", &format!("/api/x?access_token={token}")),
        ),
    ];
    for (what, req) in cases {
        for client in [Client::h1(), Client::h2()] {
            let reply = s.gw.send(&client, clone_request(&req)).await;
            assert_eq!(reply.status, 401, "{what}");
            let description = assert_refused(&reply, REALM, 401, None, None);
            assert!(!description.contains(&token), "{what}");
        }
    }
    assert_eq!(
        s.upstream.hits(),
        0,
        "refused requests never reach the upstream"
    );
}

fn clone_request(req: &Request<common::Body>) -> Request<common::Body> {
    let mut out = Request::builder().method(req.method()).uri(req.uri());
    for (name, value) in req.headers() {
        out = out.header(name, value);
    }
    out.body(empty()).expect("request")
}

#[tokio::test]
async fn section2_malformed_bearer_credential_is_400_invalid_request() {
    let s = Setup::start("", "").await;
    let token = s.k.rs.token(&s.claims());
    let t = token.as_bytes();
    let joined = |parts: &[&[u8]]| parts.concat();
    let cases: Vec<(&str, Request<common::Body>)> = vec![
        (
            "empty credential",
            with_authorization("/api/x", &[b"Bearer"]),
        ),
        (
            "only spaces",
            with_authorization("/api/x", &[b"Bearer    "]),
        ),
        (
            "tab after the scheme",
            with_authorization("/api/x", &[&joined(&[b"Bearer\t", t])]),
        ),
        (
            "inner space",
            with_authorization("/api/x", &[&joined(&[b"Bearer ", t, b" extra"])]),
        ),
        (
            "inner tab",
            with_authorization("/api/x", &[&joined(&[b"Bearer ", t, b"\textra"])]),
        ),
        (
            "comma",
            with_authorization("/api/x", &[&joined(&[b"Bearer ", t, b",x"])]),
        ),
        (
            "quotes",
            with_authorization("/api/x", &[&joined(&[b"Bearer \"", t, b"\""])]),
        ),
        (
            "non-ASCII",
            with_authorization("/api/x", &[&joined(&[b"Bearer ", t, "\u{e9}".as_bytes()])]),
        ),
        (
            "padding inside",
            with_authorization("/api/x", &[b"Bearer ab=cd.ef.gh"]),
        ),
        (
            "two Authorization headers",
            with_authorization(
                "/api/x",
                &[&joined(&[b"Bearer ", t]), &joined(&[b"Bearer ", t])],
            ),
        ),
        (
            "valid header plus access_token query",
            with_authorization(
                &format!("/api/x?a=1&access_token={token}"),
                &[&joined(&[b"Bearer ", t])],
            ),
        ),
    ];
    for (what, req) in cases {
        let reply = s.gw.send(&Client::h1(), req).await;
        assert_status(&reply, 400, what);
        let description = assert_refused(&reply, REALM, 400, Some("invalid_request"), None);
        assert!(!description.contains(&token), "{what}");
    }
    assert_eq!(
        s.upstream.hits(),
        0,
        "refused requests never reach the upstream"
    );
}

#[tokio::test]
async fn section2_insufficient_scope_is_403_naming_the_route_scopes() {
    let s = Setup::start("", "").await;
    for scope in ["read write", "admin", "ops", "admin Ops"] {
        let token = s.k.ec.token(&with(&s.claims(), json!({ "scope": scope })));
        let reply = s.call("/admin/panel", &token).await;
        assert_refused(
            &reply,
            REALM,
            403,
            Some("insufficient_scope"),
            Some("admin ops"),
        );
    }
    assert_eq!(s.upstream.hits(), 0);
    let token =
        s.k.ec
            .token(&with(&s.claims(), json!({"scope": "ops read admin"})));
    assert_eq!(s.call("/admin/panel", &token).await.status, 200);
    assert_eq!(s.upstream.hits(), 1);
}

#[tokio::test]
async fn section2_unreachable_issuer_is_503_and_upstream_failures_502_504_without_challenge() {
    let s = Setup::start("", "").await;
    let token = s.k.rs.token(&s.claims());

    let reply = s.call("/dead/x", &token).await;
    let body = reply.gateway_error(502);
    assert!(reply.header("www-authenticate").is_none(), "{body}");

    let reply = s.call("/api/slow", &token).await;
    let body = reply.gateway_error(504);
    assert!(reply.header("www-authenticate").is_none(), "{body}");
    assert_eq!(
        s.upstream.hits(),
        1,
        "the slow request reached the upstream"
    );

    // An issuer whose key set cannot be fetched: 503, never forwarded.
    let upstream = Upstream::echo().await;
    let iss = format!("http://127.0.0.1:{}/", closed_port().await);
    let gw = GatewayConfig::new()
        .issuer(
            Issuer::new("gone", &iss)
                .jwks_uri(&format!("{iss}jwks"))
                .with("jwks_refresh_s = 1"),
        )
        .upstream("echo", &upstream.url())
        .route(Route::new("/api/**", "echo"))
        .start()
        .await;
    let token = s.k.rs.token(&claims(&iss, AUD));
    let reply = gw.send(&Client::h1(), bearer("/api/x", &token)).await;
    let body = reply.gateway_error(503);
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(reply.header("www-authenticate").is_none());
    assert!(reply
        .header("retry-after")
        .is_some_and(|v| v.parse::<u32>().is_ok()));
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive_and_allows_several_spaces() {
    let s = Setup::start("", "").await;
    let token = s.k.rs.token(&s.claims());
    for scheme in ["Bearer ", "bearer ", "BEARER ", "bEaReR ", "Bearer     "] {
        let value = format!("{scheme}{token}");
        let reply =
            s.gw.send(
                &Client::h1(),
                with_authorization("/api/x", &[value.as_bytes()]),
            )
            .await;
        assert_eq!(reply.status, 200, "{scheme:?}");
        let reply =
            s.gw.send(
                &Client::h2(),
                with_authorization("/api/x", &[value.as_bytes()]),
            )
            .await;
        assert_eq!(reply.status, 200, "{scheme:?} over h2");
    }
    assert_eq!(s.upstream.hits(), 10);
}

#[tokio::test]
async fn token_longer_than_max_token_bytes_is_401_without_key_lookup() {
    let s = Setup::start("max_token_bytes = 2048", "").await;
    let fetches = s.idp.jwks_hits();
    let short = s.k.rs.token(&s.claims());
    assert!(short.len() <= 2048, "{}", short.len());
    assert_eq!(s.call("/api/x", &short).await.status, 200);

    // An unknown kid would trigger a key-set refetch if the token were looked at.
    let unknown = s.k.rs.with_kid("unknown-kid-long");
    let long = unknown.token(&with(&s.claims(), json!({"pad": "p".repeat(2000)})));
    assert!(long.len() > 2048);
    let reply = s.call("/api/x", &long).await;
    assert_invalid_token_hides(&reply, REALM, &long, "long token");
    // Exactly at the limit: accepted.
    let mut pad = 0;
    let exact = loop {
        let t =
            s.k.rs
                .token(&with(&s.claims(), json!({ "pad": "p".repeat(pad) })));
        if t.len() >= 2045 {
            break t;
        }
        pad += 1;
    };
    assert!((2045..=2048).contains(&exact.len()), "{}", exact.len());
    assert_eq!(s.call("/api/x", &exact).await.status, 200);
    // A kid over 256 bytes fails without a lookup either.
    let long_kid = s.k.rs.with_kid(&"k".repeat(257)).token(&s.claims());
    assert_invalid_token_hides(
        &s.call("/api/x", &long_kid).await,
        REALM,
        &long_kid,
        "257-byte kid",
    );
    assert_eq!(
        s.idp.jwks_hits(),
        fetches,
        "no key-set fetch for an over-long token or kid"
    );
    assert_eq!(s.upstream.hits(), 2);
    // The counter is sensitive: a 256-byte unknown kid is looked up, and refetched once.
    let unknown = s.k.rs.with_kid(&"k".repeat(256)).token(&s.claims());
    assert_invalid_token_hides(
        &s.call("/api/x", &unknown).await,
        REALM,
        &unknown,
        "256-byte unknown kid",
    );
    assert_eq!(s.idp.jwks_hits(), fetches + 1);
}
