//! Forwarding fidelity (behavior.md sections 1, 2 and 6) over real sockets:
//! what the upstream receives, what the client gets back, and that every
//! request the gateway refuses never reaches the upstream.

mod common;

use common::upstream::BIG_BODY;
use common::{
    api_config, closed_port, full, generated, raw, request, within, Client, Gateway, RawConn,
    Upstream,
};
use http::{Request, Version};
use std::time::{Duration, Instant};

async fn echo_gateway(extra: &str) -> (Upstream, Gateway) {
    let upstream = Upstream::echo().await;
    let gateway = Gateway::start(&api_config(&upstream.url(), extra)).await;
    (upstream, gateway)
}

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
    let toml = format!(
        r#"
[upstreams.based]
url = "{}/base"
[upstreams.plain]
url = "{}"

[[routes]]
path = "/api/**"
upstream = "based"
auth = "none"
strip_prefix = "/api"

[[routes]]
path = "/v1/**"
upstream = "plain"
auth = "none"
strip_prefix = "/v1"

[[routes]]
path = "/keep/**"
upstream = "based"
auth = "none"
"#,
        upstream.url(),
        upstream.url()
    );
    let gw = Gateway::start(&toml).await;
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
    let req = Request::get("/api/x")
        .header("host", "client.example:8080")
        .header("x-forwarded-host", "spoofed.example")
        .body(common::empty())
        .expect("request");
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
    let toml = format!(
        r#"
[upstreams.echo]
url = "{}"
preserve_host = true

[[routes]]
path = "/api/**"
upstream = "echo"
auth = "none"
"#,
        upstream.url()
    );
    let gw = Gateway::start(&toml).await;
    let req = Request::get("/api/x")
        .header("host", "client.example:8080")
        .body(common::empty())
        .expect("request");
    assert_eq!(gw.send(&Client::h1(), req).await.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header("host"), Some("client.example:8080"));
    assert_eq!(seen.header("x-forwarded-host"), Some("client.example:8080"));
}

#[tokio::test]
async fn forward_x_forwarded_for_is_replaced_by_the_peer_and_proto_is_http() {
    let (upstream, gw) = echo_gateway("").await;
    for client in [Client::h1(), Client::h2()] {
        let req = Request::get("/api/x")
            .header("x-forwarded-for", "203.0.113.9")
            .header("x-forwarded-proto", "https")
            .body(common::empty())
            .expect("request");
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
    let req = Request::get("/api/x")
        .header("x-forwarded-for", "203.0.113.9")
        .body(common::empty())
        .expect("request");
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
    let req = Request::get("/api/x")
        .header("x-request-id", sane)
        .body(common::empty())
        .expect("request");
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
        let req = Request::get("/api/x")
            .header("x-auth-subject", "admin")
            .header("x-auth-client-id", "root-client")
            .header("x-auth-scope", "admin:all")
            .body(common::empty())
            .expect("request");
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
    let req = Request::get("/api/x")
        .header("x-user", "admin")
        .header("x-tenant", "other")
        .header("x-auth-subject", "not configured here")
        .body(common::empty())
        .expect("request");
    assert_eq!(gw.send(&Client::h1(), req).await.status, 200);
    let seen = upstream.last();
    assert!(!seen.has("x-user"));
    assert!(!seen.has("x-tenant"));
    assert_eq!(seen.header("x-auth-subject"), Some("not configured here"));
}

#[tokio::test]
async fn forward_authorization_is_forwarded_unless_strip_authorization() {
    let (upstream, gw) = echo_gateway("").await;
    let with_auth = || {
        Request::get("/api/x")
            .header("authorization", "Basic dXNlcjpwYXNz")
            .body(common::empty())
            .expect("request")
    };
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
    let names = [
        "x-original-url",
        "x-rewrite-url",
        "x-forwarded-uri",
        "x-forwarded-prefix",
        "x-forwarded-path",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ];
    for client in [Client::h1(), Client::h2()] {
        let mut builder = Request::get("/api/x");
        for name in names {
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
    let req = Request::get("/api/x")
        .header("x_auth_subject", "admin")
        .header("x_custom", "1")
        .header("x-custom", "2")
        .body(common::empty())
        .expect("request");
    assert_eq!(gw.send(&Client::h1(), req).await.status, 200);
    let seen = upstream.last();
    assert!(!seen.has("x_auth_subject"));
    assert!(!seen.has("x_custom"));
    assert_eq!(seen.header("x-custom"), Some("2"));
}

#[tokio::test]
async fn forward_underscore_headers_are_kept_when_allowed() {
    let upstream = Upstream::echo().await;
    let toml = format!(
        "[server]\nallow_underscore_headers = true\n{}",
        api_config(&upstream.url(), "")
    );
    let gw = Gateway::start(&toml).await;
    let req = Request::get("/api/x")
        .header("x_custom", "1")
        .body(common::empty())
        .expect("request");
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
    let toml = format!(
        r#"
[upstreams.echo]
url = "{}"

[[routes]]
path = "/orders/**"
methods = ["GET", "HEAD"]
upstream = "echo"
auth = "none"

[[routes]]
path = "/orders/**"
methods = ["POST"]
upstream = "echo"
auth = "none"
"#,
        upstream.url()
    );
    let gw = Gateway::start(&toml).await;
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

async fn required_gateway() -> (Upstream, Gateway) {
    let upstream = Upstream::echo().await;
    let toml = format!(
        r#"
[server]
realm = "test-realm"

[upstreams.echo]
url = "{}"

[[routes]]
path = "/secure/**"
upstream = "echo"
auth = "required"
"#,
        upstream.url()
    );
    let gw = Gateway::start(&toml).await;
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
            let mut builder = Request::get("/secure/x");
            for (k, v) in headers {
                builder = builder.header(*k, *v);
            }
            let reply = gw
                .send(&client, builder.body(common::empty()).expect("request"))
                .await;
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
        let req = Request::get("/secure/x")
            .header("authorization", value)
            .body(common::empty())
            .expect("request");
        let reply = gw.send(&Client::h1(), req).await;
        let json = reply.gateway_error(400);
        assert_eq!(json["error"], "invalid_request", "{value:?}");
        let challenge = reply.header("www-authenticate").expect("challenge");
        assert!(
            challenge.starts_with("Bearer realm=\"test-realm\""),
            "{challenge}"
        );
        assert!(
            challenge.contains("error=\"invalid_request\""),
            "{challenge}"
        );
    }
    // Two Authorization headers; a query token next to the header.
    let req = Request::get("/secure/x")
        .header("authorization", "Bearer abc")
        .header("authorization", "Bearer def")
        .body(common::empty())
        .expect("request");
    assert_eq!(
        gw.send(&Client::h1(), req).await.gateway_error(400)["error"],
        "invalid_request"
    );
    let req = Request::get("/secure/x?access_token=abc")
        .header("authorization", "Bearer abc")
        .body(common::empty())
        .expect("request");
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
            let req = Request::get("/secure/x")
                .header("authorization", format!("Bearer {token}"))
                .body(common::empty())
                .expect("request");
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
    let toml = format!(
        r#"
[upstreams.echo]
url = "{}"
timeout_ms = 300

[[routes]]
path = "/api/**"
upstream = "echo"
auth = "none"
"#,
        upstream.url()
    );
    let gw = Gateway::start(&toml).await;
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
    let toml = format!(
        "[server]\nmax_header_bytes = 8192\n{}",
        api_config(&upstream.url(), "")
    );
    let gw = Gateway::start(&toml).await;

    let fits = Request::get("/api/x")
        .header("x-fill", "a".repeat(4000))
        .body(common::empty())
        .expect("request");
    assert_eq!(gw.send(&Client::h1(), fits).await.status, 200);
    assert_eq!(upstream.hits(), 1);

    let too_big = Request::get("/api/x")
        .header("x-fill", "a".repeat(16 * 1024))
        .body(common::empty())
        .expect("request");
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
    let toml = format!(
        "[server]\nmax_header_bytes = 8192\n{}",
        api_config(&upstream.url(), "")
    );
    let gw = Gateway::start(&toml).await;
    let too_big = Request::get("/api/x")
        .header("x-fill", "a".repeat(16 * 1024))
        .body(common::empty())
        .expect("request");
    assert_eq!(gw.send(&Client::h2(), too_big).await.status, 431);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn admin_healthz_and_readyz_answer_200() {
    let upstream = Upstream::echo().await;
    let toml = format!(
        "[admin]\nlisten = \"127.0.0.1:9901\"\n{}",
        api_config(&upstream.url(), "")
    );
    let gw = Gateway::start(&toml).await;
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
