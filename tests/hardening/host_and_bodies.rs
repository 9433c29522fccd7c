//! Host (RFC 9112 section 3.2), transfer codings and request bodies.

use super::*;

#[tokio::test]
async fn http11_request_without_host_or_with_empty_host_is_400_and_not_forwarded() {
    let upstream = Upstream::echo().await;
    let gw = Gateway::start(&api_config(&upstream.url(), "")).await;
    for request in [
        &b"GET /api/x HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
        &b"GET /api/x HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n"[..],
        &b"GET /api/x HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n"[..],
    ] {
        let reply = raw(gw.addr(), request).await;
        assert_eq!(reply.status, 400, "{}", String::from_utf8_lossy(request));
    }
    assert_eq!(upstream.hits(), 0, "nothing reached the upstream");

    // HTTP/1.0 predates the requirement: forwarded.
    let reply = raw(gw.addr(), b"GET /api/x HTTP/1.0\r\n\r\n").await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn trailing_dot_host_matches_the_host_route_over_http1_and_h2() {
    let upstream = Upstream::echo().await;
    let key = Key::es256("dot");
    let dir = key_set_dir(&key);
    let toml = GatewayConfig::new()
        .issuer(Issuer::new("corp", "https://dot.test/").jwks_file("jwks.json"))
        .upstream("echo", &upstream.url())
        .route(Route::new("/**", "echo").host("secure.local"))
        .route(Route::open("/**", "echo"))
        .render();
    let gw = Gateway::start_in(&toml, dir.path()).await;
    for host in ["secure.local.", "SECURE.local.", "secure.local.:8080"] {
        let reply = raw(
            gw.addr(),
            format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(
            reply.status, 401,
            "Host: {host} must reach the protected route"
        );
    }
    let req = Request::get("http://secure.local.:8080/x")
        .body(common::empty())
        .expect("request");
    let reply = gw.send(&Client::h2(), req).await;
    assert_eq!(reply.status, 401, "h2 :authority with a trailing dot");
    assert_eq!(upstream.hits(), 0);

    // Two trailing dots are no host name.
    let reply = raw(
        gw.addr(),
        b"GET /x HTTP/1.1\r\nHost: secure.local..\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(reply.status, 400);

    let token = key.token(&claims("https://dot.test/", AUD));
    let reply = raw(
        gw.addr(),
        format!(
            "GET /x HTTP/1.1\r\nHost: secure.local.\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn transfer_coding_other_than_chunked_is_501_and_not_forwarded() {
    let upstream = Upstream::echo().await;
    let gw = Gateway::start(&api_config(&upstream.url(), "")).await;
    for te in ["gzip, chunked", "deflate,chunked", "identity, chunked"] {
        let request = format!(
            "POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let reply = raw(gw.addr(), request.as_bytes()).await;
        assert_eq!(reply.status, 501, "Transfer-Encoding: {te}");
        let body = reply.gateway_json().expect("gateway JSON");
        assert_eq!(body["error"], "not_implemented");
    }
    assert_eq!(upstream.hits(), 0);

    // Plain chunked still works.
    let reply = raw(
        gw.addr(),
        b"POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.last().body_len, 5);
}

#[tokio::test]
async fn malformed_chunk_from_the_client_is_400_blamed_on_the_client() {
    let upstream = Upstream::echo().await;
    let toml = api_config(&upstream.url(), "[admin]\nlisten = \"127.0.0.1:0\"\n");
    let gw = Gateway::start(&toml).await;
    for framing in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        &b"5\r\nhelloXX0\r\n\r\n"[..],
        &b"5 5\r\nhello\r\n0\r\n\r\n"[..],
    ] {
        let mut request =
            b"POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend_from_slice(framing);
        let reply = raw(gw.addr(), &request).await;
        assert_eq!(reply.status, 400, "{}", String::from_utf8_lossy(framing));
        let body = reply.gateway_json().expect("gateway JSON");
        assert_eq!(body["error"], "invalid_request");
    }
    let scrape = common::ops::scrape(gw.admin_addr()).await;
    let count = |outcome| {
        scrape.value(
            "tokengate_requests_total",
            &[("route", "/api/**"), ("outcome", outcome)],
        )
    };
    assert_eq!(count("invalid_request"), 3.0);
    assert_eq!(count("upstream_error"), 0.0);
}

#[tokio::test]
async fn stalled_or_trickling_body_gets_408_not_the_upstreams_504() {
    let upstream = Upstream::echo().await;
    // The upstream's own deadline is shorter than the body's: a body still
    // arriving must not be blamed on the upstream.
    let gw = GatewayConfig::new()
        .server("body_read_timeout_ms = 1000")
        .upstream_with("echo", &upstream.url(), "timeout_ms = 400")
        .route(Route::open("/api/**", "echo"))
        .start()
        .await;

    // Stalls after 10 of 100 bytes.
    let mut conn = RawConn::connect(gw.addr()).await;
    conn.write(b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .expect("write");
    let reply = conn.response().await;
    assert_eq!(reply.status, 408);
    assert_eq!(
        reply.gateway_json().expect("JSON")["error"],
        "request_timeout"
    );
    assert!(
        conn.closed_within(Duration::from_secs(5)).await.is_some(),
        "the connection is closed after a 408"
    );

    // Trickles a byte every 100 ms: the deadline covers the whole body.
    let mut conn = RawConn::connect(gw.addr()).await;
    conn.write(b"POST /api/y HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let trickle = async {
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if conn.write(b"x").await.is_err() {
                break;
            }
        }
    };
    within("trickle", trickle).await;
    let reply = conn.response().await;
    assert_eq!(reply.status, 408);
    assert!(started.elapsed() < Duration::from_secs(20));

    // A body that arrives in time is forwarded.
    let reply = raw(
        gw.addr(),
        b"POST /api/z HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert_eq!(reply.status, 200);
}
