//! Connection lifecycle: graceful drain on shutdown, the idle timeout and
//! the header-read timeout (config.md `[server]`).

mod common;

use common::{request, within, Client, Gateway, GatewayConfig, RawConn, Upstream};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How long a connection the server should close may stay open before
/// the test fails; far above every timeout configured here.
const CLOSE_LIMIT: Duration = Duration::from_secs(10);

async fn gateway(server: &str) -> (Upstream, Gateway) {
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::open_api(&upstream.url())
        .server(server)
        .start()
        .await;
    (upstream, gw)
}

/// Waits until connecting to `addr` is refused (the listener is gone).
/// Polls: nothing else signals that the listening socket was closed.
async fn until_refused(addr: SocketAddr) {
    within("the listener to close", async {
        loop {
            match TcpStream::connect(addr).await {
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => return,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await;
}

fn keep_alive_get(addr: SocketAddr, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn shutdown_drains_an_in_flight_request_and_refuses_new_connections() {
    for client in [Client::h1(), Client::h2()] {
        let (upstream, gw) = gateway("shutdown_grace_ms = 10000").await;
        let addr = gw.addr();
        let in_flight =
            tokio::spawn(async move { client.fetch(addr, request("GET", "/api/hold")).await });
        upstream.arrived().await;

        let started = Instant::now();
        let stopping = tokio::spawn(gw.shutdown());
        until_refused(addr).await;
        assert!(
            !in_flight.is_finished(),
            "the held request must still be pending"
        );
        assert!(
            !stopping.is_finished(),
            "shutdown waits for the in-flight request"
        );

        upstream.release();
        let reply = within("the drained request", in_flight)
            .await
            .expect("client task");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["target"], "/api/hold");
        within("shutdown", stopping).await.expect("shutdown task");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the drain ended with the last request, not the grace period: {:?}",
            started.elapsed()
        );
        assert_eq!(upstream.hits(), 1);
    }
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections_without_waiting_for_grace() {
    let (upstream, gw) = gateway("shutdown_grace_ms = 10000").await;
    let mut idle = RawConn::connect(gw.addr()).await;
    idle.write(&keep_alive_get(gw.addr(), "/api/x"))
        .await
        .expect("write");
    assert_eq!(idle.response().await.status, 200);

    let started = Instant::now();
    gw.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an idle keep-alive connection held the drain: {:?}",
        started.elapsed()
    );
    assert!(
        idle.closed_within(CLOSE_LIMIT).await.is_some(),
        "the idle connection was closed"
    );
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn shutdown_ends_after_the_grace_period() {
    let (upstream, gw) = gateway("shutdown_grace_ms = 300").await;
    let addr = gw.addr();
    let _in_flight = tokio::spawn(async move {
        Client::h1()
            .try_send(addr, request("GET", "/api/hold"))
            .await
    });
    upstream.arrived().await;
    let started = Instant::now();
    gw.shutdown().await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test]
async fn shutdown_after_the_grace_period_closes_remaining_connections() {
    let (upstream, gw) = gateway("shutdown_grace_ms = 300").await;
    let addr = gw.addr();
    let mut held = RawConn::connect(addr).await;
    held.write(&keep_alive_get(addr, "/api/hold"))
        .await
        .expect("write");
    upstream.arrived().await;
    gw.shutdown().await;
    // The upstream still holds the answer: only the gateway can close this.
    assert!(
        held.closed_within(Duration::from_secs(2)).await.is_some(),
        "the in-flight connection outlived serve()"
    );
    upstream.release();
}

#[tokio::test]
async fn shutdown_is_not_held_by_an_idle_admin_connection() {
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::open_api(&upstream.url())
        .server("shutdown_grace_ms = 3000")
        .admin()
        .start()
        .await;
    let mut probe = RawConn::connect(gw.admin_addr()).await;
    probe
        .write(&keep_alive_get(gw.admin_addr(), "/healthz"))
        .await
        .expect("write");
    assert_eq!(probe.response().await.status, 200);

    let started = Instant::now();
    gw.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "an idle admin connection held the drain for {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn idle_timeout_closes_an_idle_keep_alive_connection() {
    let (upstream, gw) = gateway("idle_timeout_ms = 300\nheader_read_timeout_ms = 30000").await;
    let mut conn = RawConn::connect(gw.addr()).await;
    conn.write(&keep_alive_get(gw.addr(), "/api/x"))
        .await
        .expect("write");
    assert_eq!(conn.response().await.status, 200);
    let closed_after = conn
        .closed_within(CLOSE_LIMIT)
        .await
        .expect("the idle connection was not closed");
    assert!(
        closed_after >= Duration::from_millis(200),
        "closed too early: {closed_after:?}"
    );
    assert!(
        conn.received().is_empty(),
        "{:?}",
        String::from_utf8_lossy(conn.received())
    );
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn idle_timeout_closes_an_idle_h2_connection() {
    let (_upstream, gw) = gateway("idle_timeout_ms = 300\nheader_read_timeout_ms = 30000").await;
    let tcp = TcpStream::connect(gw.addr()).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2 handshake");
    let driver = tokio::spawn(conn);
    let req = http::Request::get(format!("http://{}/api/x", gw.addr()))
        .body(common::empty())
        .expect("request");
    let resp = within("h2 request", sender.send_request(req))
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    drop(common::Reply::read(resp).await);
    // The connection driver ends when the server closes the connection.
    let ended = tokio::time::timeout(CLOSE_LIMIT, driver)
        .await
        .expect("the idle h2 connection was not closed");
    assert!(ended.is_ok(), "driver task panicked");
    drop(sender);
}

#[tokio::test]
async fn idle_timeout_does_not_cut_a_slow_in_flight_request() {
    let (upstream, gw) = gateway("idle_timeout_ms = 300").await;
    // The upstream takes three idle periods to answer.
    let reply = gw.get("/api/sleep/900").await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn header_read_timeout_cuts_off_a_partial_request_head() {
    let (upstream, gw) = gateway("header_read_timeout_ms = 300\nidle_timeout_ms = 60000").await;
    let mut conn = RawConn::connect(gw.addr()).await;
    let partial = format!(
        "GET /api/x HTTP/1.1\r\nHost: {}\r\nX-Incomplete: ",
        gw.addr()
    );
    conn.write(partial.as_bytes()).await.expect("write");
    let closed_after = conn
        .closed_within(CLOSE_LIMIT)
        .await
        .expect("the partial head was not cut off");
    assert!(
        closed_after >= Duration::from_millis(250),
        "closed too early: {closed_after:?}"
    );
    assert!(!conn.received().starts_with(b"HTTP/1.1 200"));
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn header_read_timeout_cuts_off_a_trickling_client() {
    let (upstream, gw) = gateway("header_read_timeout_ms = 300\nidle_timeout_ms = 60000").await;
    let addr = gw.addr();
    let mut conn = RawConn::connect(addr).await;
    conn.write(format!("GET /api/x HTTP/1.1\r\nHost: {addr}\r\n").as_bytes())
        .await
        .expect("write");
    let started = Instant::now();
    // A slow client: one header byte every 50 ms (at most 200 bytes, 10 s),
    // always active, never finishing its head.
    for _ in 0..200 {
        if conn.write(b"x").await.is_err() {
            break;
        }
        if conn
            .closed_within(Duration::from_millis(50))
            .await
            .is_some()
        {
            break;
        }
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "the trickling client was served for {elapsed:?}"
    );
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn header_read_timeout_cuts_off_a_silent_client() {
    let (upstream, gw) = gateway("header_read_timeout_ms = 300\nidle_timeout_ms = 30000").await;
    for sent in [&b"PRI * HTTP/2.0\r\n"[..], b""] {
        let mut conn = RawConn::connect(gw.addr()).await;
        conn.write(sent).await.expect("write");
        assert!(
            conn.closed_within(CLOSE_LIMIT).await.is_some(),
            "a client that sent {:?} was not cut off",
            String::from_utf8_lossy(sent)
        );
    }
    assert_eq!(upstream.hits(), 0);
}
