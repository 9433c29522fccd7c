//! What reaches the upstream: method, path, query, headers and body
//! unchanged, the prefix stripped and the base path added, the authority,
//! the client address headers and the request id.

use super::*;

#[tokio::test]
async fn forward_method_path_query_headers_and_body_are_unchanged_over_h1_and_h2() {
    let (upstream, gw) = echo_gateway("").await;
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    for (client, proto) in [
        (Client::h1(), Version::HTTP_11),
        (Client::h2(), Version::HTTP_2),
    ] {
        for method in methods {
            let req = Request::builder()
                .method(method)
                .uri("/api/items/42?b=2&a=1&a=3&e=%20x")
                .header("x-custom", "value-1")
                .header("accept", "application/json")
                .body(full("hello upstream"))
                .expect("request");
            let reply = gw.send(&client, req).await;

            assert_eq!(reply.status, 200, "{method} {proto:?}");
            assert_eq!(reply.version, proto, "the client keeps its own protocol");
            assert_eq!(
                reply.header("x-upstream"),
                Some("echo"),
                "upstream headers come back"
            );
            assert_eq!(reply.header("content-type"), Some("application/json"));
            let json = reply.json();
            assert_eq!(json["method"], method, "the body is the upstream's");
            let seen = upstream.last();
            assert_eq!(seen.method.as_str(), method);
            assert_eq!(seen.target(), "/api/items/42?b=2&a=1&a=3&e=%20x");
            assert_eq!(
                seen.version,
                Version::HTTP_11,
                "the upstream always gets HTTP/1.1"
            );
            assert_eq!(seen.header("x-custom"), Some("value-1"));
            assert_eq!(seen.header("accept"), Some("application/json"));
            assert_eq!(seen.body_len, 14);
        }
    }
    assert_eq!(upstream.hits(), 2 * methods.len());
}

#[tokio::test]
async fn forward_upstream_status_and_head_answers_pass_through() {
    let (upstream, gw) = echo_gateway("").await;
    for client in [Client::h1(), Client::h2()] {
        let reply = gw.send(&client, request("GET", "/api/status/418")).await;
        assert_eq!(reply.status, 418);
        assert_eq!(reply.json()["target"], "/api/status/418");
        let reply = gw.send(&client, request("HEAD", "/api/x")).await;
        assert_eq!(reply.status, 200);
        assert!(reply.body.is_empty());
        assert_eq!(upstream.last().method, "HEAD");
    }
    assert_eq!(upstream.hits(), 4);
}

#[tokio::test]
async fn forward_strip_prefix_then_upstream_base_path() {
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::new()
        .upstream("based", &format!("{}/base", upstream.url()))
        .upstream("plain", &upstream.url())
        .route(Route::open("/api/**", "based").with("strip_prefix = \"/api\""))
        .route(Route::open("/v1/**", "plain").with("strip_prefix = \"/v1\""))
        .route(Route::open("/keep/**", "based"))
        .start()
        .await;
    for (sent, arrived) in [
        ("/api/x?q=1", "/base/x?q=1"),
        ("/api/a/b/c", "/base/a/b/c"),
        ("/api/a%20b/", "/base/a%20b/"),
        ("/v1/x?q=1&r", "/x?q=1&r"),
        ("/v1/deep/er", "/deep/er"),
        ("/keep/x", "/base/keep/x"),
    ] {
        for client in [Client::h1(), Client::h2()] {
            let reply = gw.send(&client, request("GET", sent)).await;
            assert_eq!(reply.status, 200, "{sent}");
            assert_eq!(upstream.last().target(), arrived, "{sent}");
        }
    }
}

#[tokio::test]
async fn forward_preserve_host_false_sends_upstream_authority() {
    let (upstream, gw) = echo_gateway("").await;
    let req = get_with(
        "/api/x",
        &[
            ("host", "client.example:8080"),
            ("x-forwarded-host", "spoofed.example"),
        ],
    );
    assert_eq!(gw.send(&Client::h1(), req).await.status, 200);
    let seen = upstream.last();
    assert_eq!(
        seen.header("host"),
        Some(upstream.addr().to_string().as_str())
    );
    assert_eq!(seen.header("x-forwarded-host"), Some("client.example:8080"));

    // h2: the original host is the :authority.
    assert_eq!(
        gw.send(&Client::h2(), request("GET", "/api/x"))
            .await
            .status,
        200
    );
    let seen = upstream.last();
    assert_eq!(
        seen.header("host"),
        Some(upstream.addr().to_string().as_str())
    );
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(gw.addr().to_string().as_str())
    );
}

#[tokio::test]
async fn forward_preserve_host_true_keeps_client_host() {
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::new()
        .upstream_with("echo", &upstream.url(), "preserve_host = true")
        .route(Route::open("/api/**", "echo"))
        .start()
        .await;
    let req = get_with("/api/x", &[("host", "client.example:8080")]);
    assert_eq!(gw.send(&Client::h1(), req).await.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header("host"), Some("client.example:8080"));
    assert_eq!(seen.header("x-forwarded-host"), Some("client.example:8080"));
}

#[tokio::test]
async fn forward_x_forwarded_for_is_replaced_by_the_peer_and_proto_is_http() {
    let (upstream, gw) = echo_gateway("").await;
    for client in [Client::h1(), Client::h2()] {
        let req = get_with(
            "/api/x",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
            ],
        );
        assert_eq!(gw.send(&client, req).await.status, 200);
        let seen = upstream.last();
        assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(seen.headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    }
}

#[tokio::test]
async fn forward_x_forwarded_for_is_appended_for_a_trusted_proxy() {
    let upstream = Upstream::echo().await;
    let toml = format!(
        r#"
[server]
trusted_proxies = ["127.0.0.1/32"]
{}"#,
        api_config(&upstream.url(), "")
    );
    let gw = Gateway::start(&toml).await;
    let req = get_with("/api/x", &[("x-forwarded-for", "203.0.113.9")]);
    assert_eq!(gw.send(&Client::h1(), req).await.status, 200);
    assert_eq!(
        upstream.last().header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );

    // Without an incoming value there is nothing to append to.
    assert_eq!(gw.get("/api/x").await.status, 200);
    assert_eq!(upstream.last().header("x-forwarded-for"), Some("127.0.0.1"));
}

fn is_sane_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
}

#[tokio::test]
async fn forward_x_request_id_kept_when_sane_generated_otherwise() {
    let (upstream, gw) = echo_gateway("").await;
    let sane = "req-42.a_b:c";
    let req = get_with("/api/x", &[("x-request-id", sane)]);
    let reply = gw.send(&Client::h1(), req).await;
    assert_eq!(upstream.last().header("x-request-id"), Some(sane));
    assert_eq!(reply.header("x-request-id"), Some(sane));

    let long = "a".repeat(129);
    for insane in [
        None,
        Some("has space"),
        Some("<script>"),
        Some(long.as_str()),
        Some("a/b"),
    ] {
        let mut builder = Request::get("/api/x");
        if let Some(v) = insane {
            builder = builder.header("x-request-id", v);
        }
        let reply = gw
            .send(
                &Client::h1(),
                builder.body(common::empty()).expect("request"),
            )
            .await;
        let seen = upstream.last();
        let at_upstream = seen.header("x-request-id").expect("a generated id");
        assert!(is_sane_request_id(at_upstream), "{at_upstream:?}");
        assert_ne!(Some(at_upstream), insane);
        assert_eq!(
            reply.header("x-request-id"),
            Some(at_upstream),
            "the response carries the same id"
        );
        assert_eq!(reply.header_all("x-request-id").len(), 1);
    }

    // Generated ids differ between requests.
    let a = gw.get("/api/x").await;
    let b = gw.get("/api/x").await;
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));

    // Refusals carry one too.
    let reply = gw.get("/nowhere").await;
    assert!(reply.header("x-request-id").is_some_and(is_sane_request_id));
}
