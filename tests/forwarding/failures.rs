//! Refusals before the upstream (no token, a malformed or unverifiable
//! one), upstream failures (502, 504), large bodies streamed, the header
//! section bound, and the admin health endpoints.

use super::*;

async fn required_gateway() -> (Upstream, Gateway) {
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::new()
        .server("realm = \"test-realm\"")
        .upstream("echo", &upstream.url())
        .route(Route::new("/secure/**", "echo").auth("required"))
        .start()
        .await;
    (upstream, gw)
}

#[tokio::test]
async fn forward_missing_token_on_required_route_is_401_with_challenge() {
    let (upstream, gw) = required_gateway().await;
    let cases: [&[(&str, &str)]; 3] = [
        &[],
        &[("authorization", "Basic dXNlcjpwYXNz")],
        &[("authorization", "Digest username=\"x\"")],
    ];
    for client in [Client::h1(), Client::h2()] {
        for headers in cases {
            let reply = gw.send(&client, get_with("/secure/x", headers)).await;
            let json = reply.gateway_error(401);
            assert_eq!(
                reply.header("www-authenticate"),
                Some("Bearer realm=\"test-realm\""),
                "{headers:?}"
            );
            assert!(
                json.get("error").is_none(),
                "no error code for a missing token: {json}"
            );
        }
        // A token in the query alone is no credential.
        let reply = gw
            .send(&client, request("GET", "/secure/x?access_token=abc"))
            .await;
        reply.gateway_error(401);
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer realm=\"test-realm\"")
        );
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn forward_malformed_bearer_credential_is_400_invalid_request() {
    let (upstream, gw) = required_gateway().await;
    for value in [
        "Bearer a b",
        "Bearer ",
        "Bearer a,b",
        "Bearer \"abc\"",
        "Bearer\ta",
    ] {
        let req = get_with("/secure/x", &[("authorization", value)]);
        let reply = gw.send(&Client::h1(), req).await;
        let json = reply.gateway_error(400);
        assert_eq!(json["error"], "invalid_request", "{value:?}");
        assert_refused(&reply, "test-realm", 400, Some("invalid_request"), None);
    }
    // Two Authorization headers; a query token next to the header.
    let req = get_with(
        "/secure/x",
        &[
            ("authorization", "Bearer abc"),
            ("authorization", "Bearer def"),
        ],
    );
    assert_eq!(
        gw.send(&Client::h1(), req).await.gateway_error(400)["error"],
        "invalid_request"
    );
    let req = get_with(
        "/secure/x?access_token=abc",
        &[("authorization", "Bearer abc")],
    );
    assert_eq!(
        gw.send(&Client::h1(), req).await.gateway_error(400)["error"],
        "invalid_request"
    );
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn forward_unverifiable_token_is_401_and_never_forwarded() {
    let (upstream, gw) = required_gateway().await;
    for token in ["abc.def.ghi", "opaque-token-value"] {
        for client in [Client::h1(), Client::h2()] {
            let req = get_with(
                "/secure/x",
                &[("authorization", &format!("Bearer {token}"))],
            );
            let reply = gw.send(&client, req).await;
            assert_eq!(reply.gateway_error(401)["error"], "invalid_token");
            let challenge = reply.header("www-authenticate").expect("challenge");
            assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
            assert!(
                !String::from_utf8_lossy(&reply.body).contains(token),
                "the token is never echoed"
            );
            assert!(!challenge.contains(token), "the token is never echoed");
        }
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn forward_closed_upstream_port_is_502() {
    let port = closed_port().await;
    let gw = Gateway::start(&api_config(&format!("http://127.0.0.1:{port}"), "")).await;
    for client in [Client::h1(), Client::h2()] {
        let reply = gw.send(&client, request("GET", "/api/x")).await;
        let json = reply.gateway_error(502);
        assert!(json["error"].is_string());
        assert!(reply.header("www-authenticate").is_none());
    }
}

#[tokio::test]
async fn forward_slow_upstream_is_504_after_timeout() {
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::new()
        .upstream_with("echo", &upstream.url(), "timeout_ms = 300")
        .route(Route::open("/api/**", "echo"))
        .start()
        .await;
    let started = Instant::now();
    let reply = gw.get("/api/slow").await;
    let elapsed = started.elapsed();
    let json = reply.gateway_error(504);
    assert!(json["error"].is_string());
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_eq!(upstream.hits(), 1, "the upstream did get the request");

    // A fast answer on the same upstream is unaffected.
    assert_eq!(gw.get("/api/x").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_50_mb_request_body_is_streamed() {
    let (upstream, gw) = echo_gateway("").await;
    for client in [Client::h1(), Client::h2()] {
        let req = Request::post("/api/upload")
            .body(generated(BIG_BODY))
            .expect("request");
        let reply = gw.send(&client, req).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["body_bytes"], BIG_BODY);
        assert_eq!(upstream.last().body_len, BIG_BODY);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_50_mb_response_body_is_streamed() {
    let (upstream, gw) = echo_gateway("").await;
    for client in [Client::h1(), Client::h2()] {
        let resp = client.send(gw.addr(), request("GET", "/api/big")).await;
        assert_eq!(resp.status(), 200);
        let n = within(
            "50 MB response",
            common::client::count_body(resp.into_body()),
        )
        .await
        .expect("body");
        assert_eq!(n, BIG_BODY);
    }
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn forward_header_section_over_max_header_bytes_is_431() {
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::open_api(&upstream.url())
        .server("max_header_bytes = 8192")
        .start()
        .await;

    let fits = get_with("/api/x", &[("x-fill", &"a".repeat(4000))]);
    assert_eq!(gw.send(&Client::h1(), fits).await.status, 200);
    assert_eq!(upstream.hits(), 1);

    let too_big = get_with("/api/x", &[("x-fill", &"a".repeat(16 * 1024))]);
    assert_eq!(gw.send(&Client::h1(), too_big).await.status, 431);

    let many = (0..40).fold(Request::get("/api/x"), |b, i| {
        b.header(format!("x-fill-{i}"), "b".repeat(400))
    });
    assert_eq!(
        gw.send(&Client::h1(), many.body(common::empty()).expect("request"))
            .await
            .status,
        431
    );
    assert_eq!(upstream.hits(), 1, "the oversized requests reached nothing");
}

#[tokio::test]
async fn forward_header_section_over_max_header_bytes_is_431_on_h2() {
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::open_api(&upstream.url())
        .server("max_header_bytes = 8192")
        .start()
        .await;
    let too_big = get_with("/api/x", &[("x-fill", &"a".repeat(16 * 1024))]);
    assert_eq!(gw.send(&Client::h2(), too_big).await.status, 431);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn admin_healthz_and_readyz_answer_200() {
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::open_api(&upstream.url())
        .admin()
        .start()
        .await;
    for path in ["/healthz", "/readyz"] {
        let reply = Client::h1()
            .fetch(gw.admin_addr(), request("GET", path))
            .await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert!(reply.json().is_object());
    }
    assert_eq!(upstream.hits(), 0);
    gw.shutdown().await;
}
