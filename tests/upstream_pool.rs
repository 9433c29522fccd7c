//! Upstream connection reuse (behavior.md section 6) against a raw-TCP
//! upstream that numbers its connections and puts the number in every
//! answer: which connection served a request is visible to the test.

mod common;

use common::{Client, Gateway};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Size of the `/big` answer: far more than socket buffers hold.
const BIG: usize = 8 << 20;

/// What the upstream does after each answer.
#[derive(Clone, Copy, PartialEq)]
enum AfterAnswer {
    KeepOpen,
    /// Closes the connection without having announced it.
    Close,
}

struct CountingUpstream {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl CountingUpstream {
    async fn start(after: AfterAnswer) -> CountingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let id = counter.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(serve(stream, id, after));
            }
        });
        CountingUpstream { addr, accepted }
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn gateway_config(&self, upstream_extra: &str) -> String {
        format!(
            r#"
[upstreams.raw]
url = "http://{}"
{upstream_extra}

[[routes]]
path = "/**"
upstream = "raw"
auth = "none"
"#,
            self.addr
        )
    }
}

/// Answers every request head on the connection: `/big` with [`BIG`]
/// bytes, anything else with `conn=<id>`.
async fn serve(mut stream: TcpStream, id: usize, after: AfterAnswer) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        buf.drain(..head_end);
        let body = if head.starts_with("GET /big ") {
            vec![b'x'; BIG]
        } else {
            format!("conn={id}").into_bytes()
        };
        let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
        if stream.write_all(answer.as_bytes()).await.is_err()
            || stream.write_all(&body).await.is_err()
        {
            return;
        }
        if after == AfterAnswer::Close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

fn body_text(reply: &common::Reply) -> String {
    String::from_utf8_lossy(&reply.body).to_string()
}

#[tokio::test]
async fn pool_sequential_requests_share_one_upstream_connection() {
    let upstream = CountingUpstream::start(AfterAnswer::KeepOpen).await;
    let gw = Gateway::start(&upstream.gateway_config("")).await;
    for i in 0..20 {
        let reply = gw.get(&format!("/item/{i}")).await;
        assert_eq!(reply.status, 200);
        assert_eq!(body_text(&reply), "conn=1", "request {i}");
    }
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn pool_connection_closed_by_the_upstream_is_not_reused() {
    let upstream = CountingUpstream::start(AfterAnswer::Close).await;
    let gw = Gateway::start(&upstream.gateway_config("")).await;
    for i in 1..=5 {
        // Each answer is followed by the upstream closing its side; once the
        // gateway has seen that, the next request must get a new connection.
        let reply = gw.get("/x").await;
        assert_eq!(reply.status, 200);
        assert_eq!(body_text(&reply), format!("conn={i}"));
        // The close reaches the gateway's connection task asynchronously; a
        // request sent before it arrives races the close (as with any
        // keep-alive client), which this test is not about.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(upstream.connections(), 5);
}

#[tokio::test]
async fn pool_connection_of_an_abandoned_response_is_not_reused() {
    let upstream = CountingUpstream::start(AfterAnswer::KeepOpen).await;
    let gw = Gateway::start(&upstream.gateway_config("")).await;
    assert_eq!(body_text(&gw.get("/first").await), "conn=1");

    // A client that reads the head of a large answer and goes away: the
    // upstream connection (the idle conn=1, reused) still has most of the
    // body in flight.
    let client = Client::h1();
    let resp = client.send(gw.addr(), common::request("GET", "/big")).await;
    assert_eq!(resp.status(), 200);
    drop(resp);

    // Later requests must not be answered on that connection (they would
    // read the rest of the old body as their answer): a new one serves them.
    for _ in 0..3 {
        let reply = gw.get("/after").await;
        assert_eq!(reply.status, 200);
        let text = body_text(&reply);
        assert_eq!(text.get(..40).unwrap_or(&text), "conn=2");
    }
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test]
async fn pool_large_answer_read_to_the_end_returns_its_connection() {
    let upstream = CountingUpstream::start(AfterAnswer::KeepOpen).await;
    let gw = Gateway::start(&upstream.gateway_config("")).await;
    let big = gw.get("/big").await;
    assert_eq!(big.status, 200);
    assert_eq!(big.body.len(), BIG);
    let reply = gw.get("/after").await;
    assert_eq!(body_text(&reply), "conn=1");
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn pool_idle_connection_older_than_pool_idle_timeout_is_closed() {
    let upstream = CountingUpstream::start(AfterAnswer::KeepOpen).await;
    let gw = Gateway::start(&upstream.gateway_config("pool_idle_timeout_ms = 100")).await;
    assert_eq!(body_text(&gw.get("/a").await), "conn=1");
    assert_eq!(body_text(&gw.get("/b").await), "conn=1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(body_text(&gw.get("/c").await), "conn=2");
}

#[tokio::test]
async fn pool_max_idle_per_host_zero_opens_a_connection_per_request() {
    let upstream = CountingUpstream::start(AfterAnswer::KeepOpen).await;
    let gw = Gateway::start(&upstream.gateway_config("pool_max_idle_per_host = 0")).await;
    for i in 1..=3 {
        assert_eq!(body_text(&gw.get("/x").await), format!("conn={i}"));
    }
}

#[tokio::test]
async fn pool_concurrent_requests_open_connections_then_reuse_them() {
    let upstream = CountingUpstream::start(AfterAnswer::KeepOpen).await;
    let gw = Arc::new(Gateway::start(&upstream.gateway_config("")).await);
    for _round in 0..3 {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let gw = gw.clone();
            tasks.push(tokio::spawn(async move { gw.get("/x").await.status }));
        }
        for task in tasks {
            assert_eq!(task.await.expect("task"), 200);
        }
    }
    let opened = upstream.connections();
    assert!(
        (1..=8).contains(&opened),
        "8 concurrent requests at a time need at most 8 connections, got {opened}"
    );
}
