//! Crossing HTTP versions (extensions section 13): an HTTP/1.1 client
//! reaches an h2 upstream, gRPC included, and an h2 client an HTTP/1.1
//! upstream; hop-by-hop headers stay on their hop both ways, but for
//! `te: trailers`.

use bytes::{BufMut, Bytes, BytesMut};
use http::{Request, Version};
use http_body_util::{BodyExt, Collected};
use prost::Message;

use crate::calls::HOP_BY_HOP;
use crate::common::{full, within, Client, Gateway, GatewayConfig, Route, Upstream};
use crate::echo::{EchoReply, EchoRequest};
use crate::fixture::TRAILER;
use crate::Grpc;

/// The recording echo upstream (HTTP/1.1 and h2c) behind an open `/api/**`
/// route, reached with `upstream_lines` (e.g. `protocol = "h2"`).
async fn echo_behind(upstream_lines: &str) -> (Upstream, Gateway) {
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::new()
        .upstream_with("echo", &upstream.url(), upstream_lines)
        .route(Route::open("/api/**", "echo"))
        .start()
        .await;
    (upstream, gw)
}

/// `POST path` with the hop-by-hop headers an HTTP/1.1 client
/// may send: `Connection` naming `x-hop`, `x-hop`, `Keep-Alive`,
/// `Proxy-Connection`, and `TE: trailers`.
fn post_with_hops(path: &str) -> http::request::Builder {
    Request::post(path)
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "trailers")
}

fn assert_no_hop_by_hop(headers: &http::HeaderMap) {
    for name in HOP_BY_HOP.iter().chain(&["x-hop"]) {
        assert!(
            !headers.contains_key(*name),
            "{name} crossed the hop: {headers:?}"
        );
    }
}

#[tokio::test]
async fn http1_client_reaches_an_h2_upstream() {
    let (upstream, gw) = echo_behind("protocol = \"h2\"").await;
    let body = Bytes::from_static(b"hello over h2");
    let req = post_with_hops("/api/x")
        .body(full(body.clone()))
        .expect("request");
    let reply = gw.send(&Client::h1(), req).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.version, Version::HTTP_11);

    let seen = upstream.last();
    assert_eq!(seen.version, Version::HTTP_2, "forwarded over h2");
    assert_eq!(seen.body_len, body.len() as u64);
    assert_eq!(seen.header("te"), Some("trailers"));
    assert_no_hop_by_hop(&seen.headers);
}

#[tokio::test]
async fn h2_client_reaches_an_http1_upstream() {
    let (upstream, gw) = echo_behind("").await;
    let req = Request::post("/api/x")
        .header("x-custom", "kept")
        .body(full("hello over HTTP/1.1"))
        .expect("request");
    let reply = gw.send(&Client::h2(), req).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.version, Version::HTTP_2);
    let seen = upstream.last();
    assert_eq!(seen.version, Version::HTTP_11, "forwarded over HTTP/1.1");
    assert_eq!(seen.body_len, 19);
    assert_eq!(seen.header("x-custom"), Some("kept"));

    // The upstream's hop-by-hop answer headers stay on its hop.
    let reply = gw
        .send(&Client::h2(), crate::common::request("GET", "/api/headers"))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-normal"), Some("kept"));
    assert_no_hop_by_hop(&reply.headers);
}

/// A unary gRPC call framed by hand over HTTP/1.1, with hop-by-hop
/// headers: the tonic upstream gets it over h2 with `te: trailers` and
/// nothing else connection-specific, and its answer comes back.
#[tokio::test]
async fn grpc_over_http1_reaches_the_h2_upstream() {
    let g = Grpc::start().await;
    let (head, body) = grpc_over_http1(&g, "via HTTP/1.1").await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/grpc"[..])
    );
    assert_eq!(grpc_unframe(body.to_bytes()).message, "via HTTP/1.1");

    let seen = g.echo.last();
    assert_eq!(seen.version, Version::HTTP_2);
    assert_eq!(seen.header("te"), Some("trailers"));
    assert_eq!(seen.header("x-custom"), Some("kept"));
    assert_no_hop_by_hop(&seen.headers);
}

/// behavior.md section 15: an HTTP/1.1 client that sent `TE: trailers`
/// gets the gRPC trailers of the h2 upstream's answer as chunked trailers,
/// without which it cannot tell how the call ended. The upstream's own
/// trailer is undeclared (tonic sends no `Trailer` field), and HTTP/1.1
/// has no place for undeclared trailers.
#[tokio::test]
async fn http1_client_receives_the_h2_upstreams_grpc_trailers() {
    let g = Grpc::start().await;
    let (head, body) = grpc_over_http1(&g, "trailers please").await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.headers.get("transfer-encoding").map(|v| v.as_bytes()),
        Some(&b"chunked"[..])
    );
    let trailers = body.trailers().cloned().unwrap_or_default();
    let value = |name| trailers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(
        value("grpc-status"),
        Some("0"),
        "trailers at the HTTP/1.1 client: {trailers:?} (answer head: {:?})",
        head.headers
    );
    assert_eq!(value(TRAILER), None, "an undeclared trailer cannot pass");
}

/// A unary `test.Echo` call with `message`, framed by hand and sent over
/// HTTP/1.1 with the hop-by-hop headers of [`post_with_hops`]; the
/// answer's head and whole body, trailers included.
async fn grpc_over_http1(g: &Grpc, message: &str) -> (http::response::Parts, Collected<Bytes>) {
    let body = grpc_frame(&EchoRequest::text(message));
    let req = post_with_hops("/test.Echo/Unary")
        .header("content-type", "application/grpc")
        .header("authorization", format!("Bearer {}", g.token()))
        .header("x-custom", "kept")
        .body(full(body))
        .expect("request");
    let (head, body) = Client::h1().send(g.gw.addr(), req).await.into_parts();
    let body = within("answer", body.collect()).await.expect("answer body");
    (head, body)
}

/// One uncompressed gRPC message: flag 0, 4-byte big-endian length, bytes.
fn grpc_frame(message: &impl Message) -> Bytes {
    let encoded = message.encode_to_vec();
    let mut frame = BytesMut::with_capacity(5 + encoded.len());
    frame.put_u8(0);
    frame.put_u32(encoded.len() as u32);
    frame.put_slice(&encoded);
    frame.freeze()
}

fn grpc_unframe(body: Bytes) -> EchoReply {
    assert!(body.len() >= 5, "no gRPC message in {body:?}");
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    assert_eq!(
        (body[0], body.len()),
        (0, 5 + len),
        "one uncompressed message"
    );
    EchoReply::decode(&body[5..]).expect("an EchoReply")
}
