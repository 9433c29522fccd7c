//! TLS on both sides: the gateway's own listener (ALPN h2 and http/1.1,
//! handshake timeout) and https upstreams trusted through `ca_file`.

mod common;

use common::client::{send_on, tls_connect};
use common::{
    api_config, get_with, request, within, Client, Gateway, GatewayConfig, Pki, Route, Upstream,
};
use http::Version;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

async fn tls_gateway(pki: &Pki, server_extra: &str) -> (Upstream, Gateway) {
    let upstream = Upstream::echo().await;
    let toml = GatewayConfig::open_api(&upstream.url())
        .server(&format!(
            "tls_cert = \"server.pem\"\ntls_key = \"server.key\"\n{server_extra}"
        ))
        .render();
    let gw = Gateway::start_in(&toml, pki.dir()).await;
    (upstream, gw)
}

#[tokio::test]
async fn tls_listener_negotiates_h2_and_http11_by_alpn() {
    let pki = Pki::generate();
    let (upstream, gw) = tls_gateway(&pki, "").await;
    let authority = format!("localhost:{}", gw.addr().port());
    // (ALPN offered, ALPN negotiated, HTTP version spoken)
    type Case = (&'static [&'static [u8]], Option<&'static [u8]>, Version);
    let cases: [Case; 3] = [
        (&[b"h2", b"http/1.1"], Some(b"h2"), Version::HTTP_2),
        (&[b"http/1.1"], Some(b"http/1.1"), Version::HTTP_11),
        (&[], None, Version::HTTP_11),
    ];
    for (offered, negotiated, version) in cases {
        let tcp = TcpStream::connect(gw.addr()).await.expect("connect");
        let tls = tls_connect(tcp, pki.client_config(offered)).await;
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            negotiated,
            "offered {offered:?}"
        );
        let req = get_with("/api/x?q=1", &[("x-forwarded-proto", "http")]);
        let resp = send_on(tls, version == Version::HTTP_2, "https", &authority, req)
            .await
            .expect("request over TLS");
        let reply = common::Reply::read(resp).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.version, version);
        let seen = upstream.last();
        assert_eq!(seen.target(), "/api/x?q=1");
        assert_eq!(seen.version, Version::HTTP_11);
        assert_eq!(
            seen.header("x-forwarded-proto"),
            Some("https"),
            "set by the gateway, not the client"
        );
        assert_eq!(seen.header("x-forwarded-host"), Some(authority.as_str()));
    }
    assert_eq!(upstream.hits(), 3);
}

#[tokio::test]
async fn tls_listener_answers_refusals_over_tls() {
    let pki = Pki::generate();
    let (upstream, gw) = tls_gateway(&pki, "").await;
    for client in [Client::h1().tls(&pki), Client::h2().tls(&pki)] {
        assert_eq!(gw.send(&client, request("GET", "/api/x")).await.status, 200);
        let reply = gw.send(&client, request("GET", "/elsewhere")).await;
        assert_eq!(reply.gateway_error(404)["error"], "not_found");
        let reply = gw.send(&client, request("GET", "/api/../admin")).await;
        assert_eq!(reply.gateway_error(400)["error"], "invalid_request");
    }
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn tls_listener_does_not_serve_plain_http() {
    let pki = Pki::generate();
    let (upstream, gw) = tls_gateway(&pki, "").await;
    let request = format!(
        "GET /api/x HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        gw.addr()
    );
    let mut stream = TcpStream::connect(gw.addr()).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .expect("write");
    let mut answer = Vec::new();
    // Closed after at most a TLS alert; never an HTTP answer.
    let _ = within("plain HTTP on TLS", stream.read_to_end(&mut answer)).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn tls_handshake_timeout_cuts_off_a_silent_client() {
    let pki = Pki::generate();
    let (upstream, gw) = tls_gateway(&pki, "tls_handshake_timeout_ms = 300").await;
    let mut stream = TcpStream::connect(gw.addr()).await.expect("connect");
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("the silent connection was not closed within 10 s");
    let elapsed = started.elapsed();
    assert!(matches!(read, Ok(0) | Err(_)), "expected EOF, got {read:?}");
    assert!(
        elapsed >= Duration::from_millis(250),
        "closed too early: {elapsed:?}"
    );
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn tls_https_upstream_trusted_through_ca_file() {
    let pki = Pki::generate();
    let upstream = Upstream::echo_tls(&pki).await;
    let toml = GatewayConfig::new()
        .upstream_with("secure", &upstream.url(), "ca_file = \"ca.pem\"")
        .route(Route::open("/api/**", "secure"))
        .render();
    let gw = Gateway::start_in(&toml, pki.dir()).await;
    for client in [Client::h1(), Client::h2()] {
        let reply = gw.send(&client, request("GET", "/api/x?q=1")).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-upstream"), Some("echo"));
    }
    let seen = upstream.last();
    assert_eq!(seen.target(), "/api/x?q=1");
    assert_eq!(seen.version, Version::HTTP_11);
    assert_eq!(
        seen.header("host"),
        Some(upstream.addr().to_string().as_str())
    );
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn tls_https_upstream_without_ca_file_is_502() {
    let pki = Pki::generate();
    let upstream = Upstream::echo_tls(&pki).await;
    let gw = Gateway::start(&api_config(&upstream.url(), "")).await;
    for client in [Client::h1(), Client::h2()] {
        let reply = gw.send(&client, request("GET", "/api/x")).await;
        assert!(reply.gateway_error(502)["error"].is_string());
    }
    assert_eq!(upstream.hits(), 0, "an untrusted upstream gets no request");
}

#[tokio::test]
async fn tls_keep_alive_connection_serves_requests_after_parking() {
    let pki = Pki::generate();
    let (upstream, gw) = tls_gateway(&pki, "").await;
    let tcp = TcpStream::connect(gw.addr()).await.expect("connect");
    let tls = tls_connect(tcp, pki.client_config(&[b"http/1.1"])).await;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .expect("HTTP/1.1 over TLS");
    tokio::spawn(conn);
    let authority = format!("localhost:{}", gw.addr().port());
    for i in 0..3 {
        let req = http::Request::get(format!("/api/parked/{i}"))
            .header("host", &authority)
            .body(common::empty())
            .expect("request");
        let resp = within("response", sender.send_request(req))
            .await
            .expect("response on the same connection");
        assert_eq!(common::Reply::read(resp).await.status, 200);
        // Quiet long enough for the connection to park between requests.
        tokio::time::sleep(tokengate::server::PARK_AFTER + Duration::from_millis(700)).await;
    }
    assert_eq!(upstream.hits(), 3);
    assert_eq!(upstream.connections(), 1);
}
