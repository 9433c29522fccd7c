//! Headers the gateway removes or keeps in each direction, request bodies
//! in chunks or after `Expect: 100-continue`, and the answers for no route
//! or a method the route does not allow.

use super::*;

#[tokio::test]
async fn forward_request_hop_by_hop_and_connection_named_headers_are_stripped() {
    let (upstream, gw) = echo_gateway("").await;
    // Raw bytes: a client library would refuse or rewrite some of these.
    let request = format!(
        "POST /api/x HTTP/1.1\r\n\
         Host: {}\r\n\
         Connection: close, X-Secret, x-other\r\n\
         X-Secret: s\r\n\
         X-Other: o\r\n\
         Keep-Alive: timeout=5\r\n\
         Proxy-Connection: keep-alive\r\n\
         TE: trailers\r\n\
         Trailer: x-checksum\r\n\
         Upgrade: h2c\r\n\
         Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\
         HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\
         X-Keep: yes\r\n\
         Content-Length: 5\r\n\
         \r\n\
         hello",
        gw.addr()
    );
    let reply = raw(gw.addr(), request.as_bytes()).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    let seen = upstream.last();
    for gone in [
        "connection",
        "x-secret",
        "x-other",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "http2-settings",
        "transfer-encoding",
    ] {
        assert!(
            !seen.has(gone),
            "{gone} reached the upstream: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header("x-keep"), Some("yes"));
    assert_eq!(seen.body_len, 5);
}

#[tokio::test]
async fn forward_chunked_request_body_arrives_whole() {
    let (upstream, gw) = echo_gateway("").await;
    let request = format!(
        "POST /api/x HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        gw.addr()
    );
    let reply = raw(gw.addr(), request.as_bytes()).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert_eq!(upstream.last().body_len, 11);
}

#[tokio::test]
async fn forward_expect_100_continue_is_answered_before_the_body() {
    let (upstream, gw) = echo_gateway("").await;
    let mut conn = RawConn::connect(gw.addr()).await;
    let head = format!(
        "POST /api/upload HTTP/1.1\r\nHost: {}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        gw.addr()
    );
    conn.write(head.as_bytes()).await.expect("write head");
    // No body is sent until the gateway says so.
    assert_eq!(conn.response().await.status, 100);
    conn.write(b"hello").await.expect("write body");
    let reply = conn.response().await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert_eq!(upstream.last().body_len, 5);
}

#[tokio::test]
async fn forward_response_hop_by_hop_and_proxy_authenticate_are_stripped() {
    let (upstream, gw) = echo_gateway("").await;
    for client in [Client::h1(), Client::h2()] {
        let reply = gw.send(&client, request("GET", "/api/headers")).await;
        assert_eq!(reply.status, 200);
        for gone in [
            "connection",
            "x-hop-secret",
            "x-hop-other",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "trailer",
            "upgrade",
            "te",
        ] {
            assert!(
                !reply.headers.contains_key(gone),
                "{gone} came back: {:?}",
                reply.headers
            );
        }
        assert_eq!(reply.header("x-normal"), Some("kept"));
        assert_eq!(reply.header_all("set-cookie"), vec!["a=1", "b=2"]);
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Basic realm=\"upstream\"")
        );
        assert_eq!(&reply.body[..], b"headers");
    }
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn forward_identity_headers_are_stripped_on_an_auth_none_route() {
    let (upstream, gw) = echo_gateway("").await;
    for client in [Client::h1(), Client::h2()] {
        let req = get_with(
            "/api/x",
            &[
                ("x-auth-subject", "admin"),
                ("x-auth-client-id", "root-client"),
                ("x-auth-scope", "admin:all"),
            ],
        );
        assert_eq!(gw.send(&client, req).await.status, 200);
        let seen = upstream.last();
        for gone in ["x-auth-subject", "x-auth-client-id", "x-auth-scope"] {
            assert!(!seen.has(gone), "{gone} reached the upstream");
        }
    }
}

#[tokio::test]
async fn forward_configured_claim_headers_are_the_ones_stripped() {
    let (upstream, gw) = echo_gateway(
        r#"
[forward]
claims = { sub = "x-user", tenant = "x-tenant" }
"#,
    )
    .await;
    let req = get_with(
        "/api/x",
        &[
            ("x-user", "admin"),
            ("x-tenant", "other"),
            ("x-auth-subject", "not configured here"),
        ],
    );
    assert_eq!(gw.send(&Client::h1(), req).await.status, 200);
    let seen = upstream.last();
    assert!(!seen.has("x-user"));
    assert!(!seen.has("x-tenant"));
    assert_eq!(seen.header("x-auth-subject"), Some("not configured here"));
}

#[tokio::test]
async fn forward_authorization_is_forwarded_unless_strip_authorization() {
    let (upstream, gw) = echo_gateway("").await;
    let with_auth = || get_with("/api/x", &[("authorization", "Basic dXNlcjpwYXNz")]);
    assert_eq!(gw.send(&Client::h1(), with_auth()).await.status, 200);
    assert_eq!(
        upstream.last().header("authorization"),
        Some("Basic dXNlcjpwYXNz")
    );

    let (upstream, gw) = echo_gateway("[forward]\nstrip_authorization = true").await;
    for client in [Client::h1(), Client::h2()] {
        assert_eq!(gw.send(&client, with_auth()).await.status, 200);
        assert!(!upstream.last().has("authorization"));
    }
}

#[tokio::test]
async fn forward_routing_override_headers_are_stripped() {
    let (upstream, gw) = echo_gateway("").await;
    let names = common::header_names::ROUTING_OVERRIDES;
    for client in [Client::h1(), Client::h2()] {
        let mut builder = Request::get("/api/x");
        for &name in names {
            builder = builder.header(name, "/admin");
        }
        assert_eq!(
            gw.send(&client, builder.body(common::empty()).expect("request"))
                .await
                .status,
            200
        );
        let seen = upstream.last();
        for name in names {
            assert!(!seen.has(name), "{name} reached the upstream");
        }
    }
}

#[tokio::test]
async fn forward_underscore_headers_are_dropped_by_default() {
    let (upstream, gw) = echo_gateway("").await;
    let req = get_with(
        "/api/x",
        &[
            ("x_auth_subject", "admin"),
            ("x_custom", "1"),
            ("x-custom", "2"),
        ],
    );
    assert_eq!(gw.send(&Client::h1(), req).await.status, 200);
    let seen = upstream.last();
    assert!(!seen.has("x_auth_subject"));
    assert!(!seen.has("x_custom"));
    assert_eq!(seen.header("x-custom"), Some("2"));
}

#[tokio::test]
async fn forward_underscore_headers_are_kept_when_allowed() {
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::open_api(&upstream.url())
        .server("allow_underscore_headers = true")
        .start()
        .await;
    let req = get_with("/api/x", &[("x_custom", "1")]);
    assert_eq!(gw.send(&Client::h1(), req).await.status, 200);
    assert_eq!(upstream.last().header("x_custom"), Some("1"));
}

#[tokio::test]
async fn forward_no_route_is_404_and_reaches_nothing() {
    let (upstream, gw) = echo_gateway("").await;
    for client in [Client::h1(), Client::h2()] {
        for path in ["/", "/nope", "/apix", "/API/x", "/healthz"] {
            let reply = gw.send(&client, request("GET", path)).await;
            let json = reply.gateway_error(404);
            assert_eq!(json["error"], "not_found", "{path}");
            assert!(reply.header("www-authenticate").is_none());
        }
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn forward_method_not_allowed_is_405_with_allow() {
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::new()
        .upstream("echo", &upstream.url())
        .route(Route::open("/orders/**", "echo").with("methods = [\"GET\", \"HEAD\"]"))
        .route(Route::open("/orders/**", "echo").with("methods = [\"POST\"]"))
        .start()
        .await;
    for client in [Client::h1(), Client::h2()] {
        for method in ["DELETE", "PUT", "PATCH"] {
            let reply = gw.send(&client, request(method, "/orders/1")).await;
            let json = reply.gateway_error(405);
            assert_eq!(json["error"], "method_not_allowed");
            let mut allow: Vec<&str> = reply
                .header("allow")
                .expect("Allow header")
                .split(',')
                .map(str::trim)
                .collect();
            allow.sort_unstable();
            assert_eq!(allow, vec!["GET", "HEAD", "POST"]);
        }
    }
    assert_eq!(upstream.hits(), 0);
    assert_eq!(
        gw.send(&Client::h1(), request("POST", "/orders/1"))
            .await
            .status,
        200
    );
    assert_eq!(upstream.hits(), 1);
}
