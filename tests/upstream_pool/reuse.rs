//! When a pooled upstream connection is reused, and when it is not.

use super::*;

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
    // One connection at most: a connection the upstream closed must give
    // its place back.
    let gw = Gateway::start(&upstream.gateway_config("max_connections = 1")).await;
    for i in 1..=5 {
        // Each answer is followed by the upstream closing its side, so the
        // next request must get a new connection. A request that reaches
        // the gateway before the close does is retried on a fresh one.
        let reply = gw.get("/x").await;
        assert_eq!(reply.status, 200);
        assert_eq!(body_text(&reply), format!("conn={i}"));
    }
    assert_eq!(upstream.connections(), 5);
}

#[tokio::test]
async fn pool_connection_of_an_abandoned_response_is_not_reused() {
    let upstream = CountingUpstream::start(AfterAnswer::KeepOpen).await;
    // One connection at most: the abandoned one must give its place back.
    let gw = Gateway::start(&upstream.gateway_config("max_connections = 1")).await;
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
