//! Defects found by black-box and adversarial testing, each pinned here:
//! requests without `Host`, hosts with a trailing dot, transfer codings
//! other than `chunked`, broken and slow request bodies, client-address
//! headers, `access_token` in forwarded queries, h2 cookies, an HTTP/1.0
//! upstream's version, and WebSocket handshakes the upstream answers
//! wrongly or tunnels that outlive their token.
//!
//! Every test asserts what the client gets and what reached the upstream.

mod common;

use common::mint::{claims, now, with, Key, AUD};
use common::{api_config, raw, within, Client, Gateway, RawConn, Upstream};
use futures_util::{SinkExt, StreamExt};
use http::Request;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// An upstream that answers every request head it reads with fixed bytes,
/// and counts the heads; `close` ends the connection after each answer.
struct CannedUpstream {
    addr: SocketAddr,
    heads: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CannedUpstream {
    async fn start(answer: &'static [u8], close: bool) -> CannedUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(AtomicUsize::new(0));
        let counter = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = stream.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            counter.fetch_add(1, Ordering::SeqCst);
                            if stream.write_all(answer).await.is_err() || close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        CannedUpstream { addr, heads, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn heads(&self) -> usize {
        self.heads.load(Ordering::SeqCst)
    }
}

impl Drop for CannedUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A directory holding `jwks.json` with `key`, for a `jwks_file` issuer.
fn key_set_dir(key: &Key) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("jwks.json"),
        json!({ "keys": [key.jwk()] }).to_string(),
    )
    .expect("write key set");
    dir
}

// ---------------------------------------------------------------------------
// Host (RFC 9112 section 3.2)

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
    let toml = format!(
        r#"
[issuers.corp]
issuer = "https://dot.test/"
jwks_file = "jwks.json"
audiences = ["{AUD}"]

[upstreams.echo]
url = "{}"

[[routes]]
host = "secure.local"
path = "/**"
upstream = "echo"

[[routes]]
path = "/**"
upstream = "echo"
auth = "none"
"#,
        upstream.url()
    );
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

// ---------------------------------------------------------------------------
// Transfer codings and request bodies

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
    let toml = format!(
        r#"
[server]
body_read_timeout_ms = 1000

[upstreams.echo]
url = "{}"
timeout_ms = 400

[[routes]]
path = "/api/**"
upstream = "echo"
auth = "none"
"#,
        upstream.url()
    );
    let gw = Gateway::start(&toml).await;

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

// ---------------------------------------------------------------------------
// Headers

#[tokio::test]
async fn client_address_headers_are_replaced_unless_the_peer_is_trusted() {
    let upstream = Upstream::echo().await;
    let spoof = [
        ("x-real-ip", "198.51.100.1"),
        ("true-client-ip", "198.51.100.2"),
        ("x-client-ip", "198.51.100.3"),
        ("x-cluster-client-ip", "198.51.100.4"),
        ("forwarded-for", "198.51.100.5"),
    ];
    let spoofed = |xff: Option<&str>| {
        let mut req = Request::get("/api/x");
        for (k, v) in spoof {
            req = req.header(k, v);
        }
        if let Some(xff) = xff {
            req = req.header("x-forwarded-for", xff);
        }
        req.body(common::empty()).expect("request")
    };

    let gw = Gateway::start(&api_config(&upstream.url(), "")).await;
    let reply = gw.send(&Client::h1(), spoofed(None)).await;
    assert_eq!(reply.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
    for (name, _) in &spoof[1..] {
        assert!(
            !seen.has(name),
            "{name} from an untrusted peer reached the upstream"
        );
    }

    let trusted = format!(
        "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n{}",
        api_config(&upstream.url(), "")
    );
    let gw = Gateway::start(&trusted).await;
    let reply = gw
        .send(&Client::h1(), spoofed(Some("203.0.113.9, 127.0.0.5")))
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header("true-client-ip"), Some("198.51.100.2"));
    assert_eq!(
        seen.header("x-real-ip"),
        Some("198.51.100.1"),
        "a trusted proxy's X-Real-IP is kept"
    );

    // Without an X-Real-IP of its own, the nearest untrusted address of the
    // chain is the client.
    let req = Request::get("/api/x")
        .header("x-forwarded-for", "203.0.113.9, 127.0.0.5")
        .body(common::empty())
        .expect("request");
    gw.send(&Client::h1(), req).await;
    assert_eq!(upstream.last().header("x-real-ip"), Some("203.0.113.9"));
}

#[tokio::test]
async fn h2_cookie_fields_are_joined_for_an_http1_upstream() {
    let upstream = Upstream::echo().await;
    let gw = Gateway::start(&api_config(&upstream.url(), "")).await;
    let req = Request::get("/api/x")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("cookie", "c=3")
        .body(common::empty())
        .expect("request");
    let reply = gw.send(&Client::h2(), req).await;
    assert_eq!(reply.status, 200);
    let seen = upstream.last();
    let cookies: Vec<_> = seen.headers.get_all("cookie").iter().collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert_eq!(seen.header("cookie"), Some("a=1; b=2; c=3"));
}

#[tokio::test]
async fn access_token_query_parameters_are_removed_with_strip_authorization() {
    let upstream = Upstream::echo().await;
    let stripping = api_config(&upstream.url(), "[forward]\nstrip_authorization = true\n");
    let gw = Gateway::start(&stripping).await;
    for (target, forwarded) in [
        ("/api/x?a=1&access_token=leaked&b=2", "/api/x?a=1&b=2"),
        ("/api/x?access_token=leaked", "/api/x"),
        ("/api/x?access%5Ftoken=leaked&c", "/api/x?c"),
        ("/api/x?access_tokens=kept", "/api/x?access_tokens=kept"),
    ] {
        let reply = gw.get(target).await;
        assert_eq!(reply.status, 200, "{target}");
        assert_eq!(upstream.last().target(), forwarded, "{target}");
    }

    let keeping = Gateway::start(&api_config(&upstream.url(), "")).await;
    keeping.get("/api/x?access_token=t&b=2").await;
    assert_eq!(upstream.last().target(), "/api/x?access_token=t&b=2");
}

// ---------------------------------------------------------------------------
// Response version

#[tokio::test]
async fn http10_upstream_answers_the_client_in_http11_with_keep_alive() {
    let upstream =
        CannedUpstream::start(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", true).await;
    let gw = Gateway::start(&api_config(&upstream.url(), "")).await;
    let mut conn = RawConn::connect(gw.addr()).await;
    for n in 0..2 {
        conn.write(b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .expect("write");
        let reply = conn.response().await;
        assert!(
            reply.head.starts_with("HTTP/1.1 200"),
            "request {n}: {}",
            reply.head
        );
        assert_eq!(reply.body, b"ok");
    }
    assert_eq!(
        upstream.heads(),
        2,
        "both requests on one client connection"
    );
}

// ---------------------------------------------------------------------------
// WebSocket

const WS_REQUEST: &[u8] = b"GET /ws/x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[tokio::test]
async fn upgrade_answered_wrongly_by_the_upstream_is_502_and_closes() {
    let answers: [&'static [u8]; 3] = [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    ];
    for answer in answers {
        let upstream = CannedUpstream::start(answer, false).await;
        let toml = format!(
            "[upstreams.ws]\nurl = \"{}\"\n\n[[routes]]\npath = \"/ws/**\"\nupstream = \"ws\"\nauth = \"none\"\n",
            upstream.url()
        );
        let gw = Gateway::start(&toml).await;
        let mut conn = RawConn::connect(gw.addr()).await;
        conn.write(WS_REQUEST).await.expect("write");
        let reply = conn.response().await;
        let what = String::from_utf8_lossy(answer);
        assert_eq!(reply.status, 502, "{what}");
        assert!(
            conn.closed_within(Duration::from_secs(5)).await.is_some(),
            "the client connection is closed: {what}"
        );
        assert_eq!(upstream.heads(), 1);
    }

    // The right accept value opens the tunnel.
    let upstream = CannedUpstream::start(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        false,
    )
    .await;
    let toml = format!(
        "[upstreams.ws]\nurl = \"{}\"\n\n[[routes]]\npath = \"/ws/**\"\nupstream = \"ws\"\nauth = \"none\"\n",
        upstream.url()
    );
    let gw = Gateway::start(&toml).await;
    let mut conn = RawConn::connect(gw.addr()).await;
    conn.write(WS_REQUEST).await.expect("write");
    assert_eq!(conn.response().await.status, 101);
}

#[tokio::test]
async fn websocket_tunnel_is_closed_when_its_token_expires() {
    let upstream = Upstream::websocket_echo().await;
    let key = Key::es256("ws");
    let dir = key_set_dir(&key);
    let toml = format!(
        r#"
[admin]
listen = "127.0.0.1:0"

[issuers.corp]
issuer = "https://ws.test/"
jwks_file = "jwks.json"
audiences = ["{AUD}"]
leeway_s = 0

[upstreams.ws]
url = "{}"

[[routes]]
path = "/ws/**"
upstream = "ws"
"#,
        upstream.url()
    );
    let gw = Gateway::start_in(&toml, dir.path()).await;
    let lifetime = 3;
    let token = key.token(&with(
        &claims("https://ws.test/", AUD),
        json!({ "exp": now() + lifetime }),
    ));
    let mut request = format!("ws://{}/ws/chat", gw.addr())
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let started = Instant::now();
    let (mut ws, _) = within("handshake", tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake");
    within("send", ws.send(Message::text("hi")))
        .await
        .expect("send");
    let echoed = within("echo", ws.next())
        .await
        .expect("open")
        .expect("message");
    assert_eq!(echoed, Message::text("hi"));

    // The tunnel ends at the token's exp, not before and not much after.
    let ended = within("the tunnel to close", async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return started.elapsed(),
                Some(Ok(Message::Close(_))) => return started.elapsed(),
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended >= Duration::from_millis(1000) && ended < Duration::from_secs(lifetime as u64 + 5),
        "closed after {ended:?}"
    );
    let scrape = common::ops::scrape(gw.admin_addr()).await;
    assert_eq!(
        scrape.value(
            "tokengate_tunnels_closed_total",
            &[("reason", "token_expired")]
        ),
        1.0
    );
}
