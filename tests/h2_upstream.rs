//! `upstreams.X.protocol = "h2"` (extensions section 13) with plain HTTP
//! clients and upstreams: HTTP/1.1 and h2 clients reach an h2c or
//! TLS-ALPN h2 upstream, `TE: trailers` is the one `TE` passed on,
//! trailers come back, and what a protocol cannot carry is refused with
//! the gRPC answer a gRPC client understands. Real gRPC clients and
//! servers are in `tests/grpc/`.

mod common;

use bytes::Bytes;
use common::{request, within, Client, Gateway, GatewayConfig, Pki, Route, Upstream};
use http::{HeaderMap, HeaderValue, Request, Response, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::TcpListener;

async fn h2_gateway(upstream_url: &str, extra: &str) -> Gateway {
    let toml = GatewayConfig::new()
        .upstream_with("h2", upstream_url, &format!("protocol = \"h2\"\n{extra}"))
        .route(Route::open("/api/**", "h2"))
        .render();
    Gateway::start(&toml).await
}

#[tokio::test]
async fn h2_upstream_is_reached_over_h2c_by_http1_and_h2_clients() {
    let upstream = Upstream::echo().await;
    let gw = h2_gateway(&upstream.url(), "").await;
    for client in [Client::h1(), Client::h2()] {
        let reply = gw.send(&client, request("GET", "/api/x?q=1")).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-upstream"), Some("echo"));
        let seen = upstream.last();
        assert_eq!(seen.version, Version::HTTP_2, "the upstream spoke h2");
        assert_eq!(seen.target(), "/api/x?q=1");
        // The authority is `:authority`, the upstream's own.
        let authority = upstream.addr().to_string();
        assert_eq!(
            seen.uri.authority().map(|a| a.as_str()),
            Some(authority.as_str())
        );
        assert_eq!(seen.uri.scheme_str(), Some("http"));
        assert!(
            !seen.has("host"),
            "no Host field over h2: {:?}",
            seen.headers
        );
    }
    assert_eq!(upstream.hits(), 2);
}

/// A gateway whose `/api/**` goes to an https upstream offering `alpn`,
/// with `protocol = "h2"`.
async fn tls_h2_gateway(alpn: &[&[u8]]) -> (Pki, Upstream, Gateway) {
    let pki = Pki::generate();
    let upstream = Upstream::echo_tls_alpn(&pki, alpn).await;
    let toml = GatewayConfig::new()
        .upstream_with(
            "secure",
            &upstream.url(),
            "ca_file = \"ca.pem\"\nprotocol = \"h2\"",
        )
        .route(Route::open("/api/**", "secure"))
        .render();
    let gw = Gateway::start_in(&toml, pki.dir()).await;
    (pki, upstream, gw)
}

#[tokio::test]
async fn h2_upstream_over_tls_negotiates_h2_by_alpn() {
    let (_pki, upstream, gw) = tls_h2_gateway(&[b"h2"]).await;
    let reply = gw.send(&Client::h1(), request("POST", "/api/x")).await;
    assert_eq!(reply.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.version, Version::HTTP_2);
    assert_eq!(seen.uri.scheme_str(), Some("https"));
}

#[tokio::test]
async fn h2_upstream_over_tls_that_only_speaks_http1_is_502() {
    let (_pki, upstream, gw) = tls_h2_gateway(&[b"http/1.1"]).await;
    let reply = gw.send(&Client::h1(), request("GET", "/api/x")).await;
    // rustls refuses a handshake whose ALPN has nothing in common.
    assert_eq!(reply.status, 502);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn h2_upstream_receives_te_trailers_and_no_other_te() {
    let upstream = Upstream::echo().await;
    let gw = h2_gateway(&upstream.url(), "").await;
    let cases: &[(&str, Option<&str>)] = &[
        ("trailers", Some("trailers")),
        ("gzip, trailers", Some("trailers")),
        ("gzip", None),
        ("trailers;q=0.5", Some("trailers")),
    ];
    for (te, want) in cases {
        let reply = gw
            .send(&Client::h1(), common::get_with("/api/te", &[("te", te)]))
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(upstream.last().header("te"), *want, "client TE {te:?}");
    }
}

#[tokio::test]
async fn http1_upstream_still_receives_no_te() {
    let upstream = Upstream::echo().await;
    let toml = GatewayConfig::new()
        .upstream("h1", &upstream.url())
        .route(Route::open("/api/**", "h1"))
        .render();
    let gw = Gateway::start(&toml).await;
    let reply = gw
        .send(
            &Client::h2(),
            common::get_with("/api/te", &[("te", "trailers")]),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert!(!upstream.last().has("te"));
    assert_eq!(upstream.last().version, Version::HTTP_11);
}

/// An h2c upstream that answers every request with a body and trailers.
async fn trailers_upstream() -> SocketAddr {
    let (addr, _) = h2c_upstream(None, |_req: Request<Incoming>| async {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", HeaderValue::from_static("abc123"));
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let body = Full::new(Bytes::from_static(b"payload"))
            .with_trailers(async move { Some(Ok::<_, Infallible>(trailers)) });
        let mut resp = Response::new(body);
        resp.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
        resp.headers_mut()
            .insert("trailer", HeaderValue::from_static("x-checksum"));
        Ok::<_, Infallible>(resp)
    })
    .await;
    addr
}

/// An h2c (prior knowledge) server on 127.0.0.1:0 answering with
/// `answer`, allowing `streams` concurrent streams per connection (no
/// limit when `None`); its address and its accepted-connection count.
async fn h2c_upstream<F, Fut, B>(
    streams: Option<u32>,
    answer: F,
) -> (SocketAddr, std::sync::Arc<AtomicUsize>)
where
    F: Fn(Request<Incoming>) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .max_concurrent_streams(streams)
                    .serve_connection(TokioIo::new(tcp), service_fn(answer)),
            );
        }
    });
    (addr, connections)
}

/// Trailers reach h2 clients as they are, and HTTP/1.1 clients that asked
/// for them as chunked trailers: those the upstream declared, and gRPC's.
#[tokio::test]
async fn h2_upstream_trailers_reach_h2_and_http1_clients() {
    let addr = trailers_upstream().await;
    let gw = h2_gateway(&format!("http://{addr}"), "").await;
    for client in [Client::h2(), Client::h1()] {
        let resp = client
            .send(gw.addr(), common::get_with("/api/t", &[("te", "trailers")]))
            .await;
        assert_eq!(resp.status(), 200);
        let collected = within("body", resp.into_body().collect())
            .await
            .expect("body");
        let trailers = collected.trailers().cloned().expect("trailers arrived");
        assert_eq!(trailers.get("x-checksum").unwrap(), "abc123");
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");
        assert_eq!(&collected.to_bytes()[..], b"payload");
    }
}

#[tokio::test]
async fn grpc_request_to_an_http1_upstream_is_refused_as_grpc_unavailable() {
    let upstream = Upstream::echo().await;
    let toml = GatewayConfig::new()
        .upstream("h1", &upstream.url())
        .route(Route::open("/api/**", "h1"))
        .render();
    let gw = Gateway::start(&toml).await;
    let req = Request::post("/api/pkg.Svc/Call")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(common::full(&b"\0\0\0\0\0"[..]))
        .unwrap();
    let reply = gw.send(&Client::h2(), req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/grpc"));
    assert_eq!(reply.header("grpc-status"), Some("14"));
    assert_eq!(
        reply.header("grpc-message"),
        Some("gRPC needs an upstream with protocol \"h2\"")
    );
    assert!(reply.body.is_empty());
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn websocket_upgrade_to_an_h2_upstream_is_502() {
    let upstream = Upstream::echo().await;
    let gw = h2_gateway(&upstream.url(), "").await;
    let req = common::get_with(
        "/api/ws",
        &[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    );
    let reply = gw.send(&Client::h1(), req).await;
    assert_eq!(reply.status, 502);
    assert_eq!(
        reply.json()["error_description"],
        "a WebSocket upgrade needs an upstream with protocol \"http1\""
    );
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn many_concurrent_requests_share_one_h2_upstream_connection() {
    let upstream = Upstream::echo().await;
    let gw = h2_gateway(&upstream.url(), "").await;
    let addr = gw.addr();
    let mut calls = tokio::task::JoinSet::new();
    // Each answer takes 300 ms, so the requests overlap at the upstream:
    // over HTTP/1.1 each would need a connection of its own.
    for _ in 0..50 {
        calls.spawn(async move {
            Client::h1()
                .fetch(addr, request("GET", "/api/sleep/300"))
                .await
                .status
        });
    }
    while let Some(status) = within("calls", calls.join_next()).await {
        assert_eq!(status.expect("task"), 200);
    }
    assert_eq!(upstream.hits(), 50);
    assert_eq!(upstream.connections(), 1, "one multiplexed connection");
}

/// An h2c upstream allowing `streams` concurrent streams per connection;
/// every answer takes 300 ms. Returns its address and its connection count.
async fn limited_upstream(streams: u32) -> (SocketAddr, std::sync::Arc<AtomicUsize>) {
    h2c_upstream(Some(streams), |_req: Request<Incoming>| async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    })
    .await
}

/// At the upstream's SETTINGS_MAX_CONCURRENT_STREAMS a connection is full
/// and another opens; up to max_connections, past which streams queue on
/// the open ones instead of failing.
#[tokio::test]
async fn h2_upstream_stream_limit_opens_more_connections_up_to_the_cap() {
    for (max_connections, want) in [(100, 4), (2, 2)] {
        let (addr, connections) = limited_upstream(2).await;
        let extra = format!("max_connections = {max_connections}");
        let gw = h2_gateway(&format!("http://{addr}"), &extra).await;
        // Warm one connection so the limit is known before the burst (the
        // gateway reads it within 50 ms of the upstream's SETTINGS).
        assert_eq!(gw.get("/api/warm").await.status, 200);
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let gw_addr = gw.addr();
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..8 {
            calls.spawn(async move {
                Client::h1()
                    .fetch(gw_addr, request("GET", "/api/x"))
                    .await
                    .status
            });
        }
        while let Some(status) = within("calls", calls.join_next()).await {
            assert_eq!(status.expect("task"), 200);
        }
        assert_eq!(
            connections.load(Ordering::SeqCst),
            want,
            "8 concurrent streams, 2 per connection, max_connections = {max_connections}"
        );
    }
}
