//! The response version, and upgrades: a wrong answer to an upgrade, and a
//! WebSocket tunnel closed when its token expires.

use super::*;

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

const WS_REQUEST: &[u8] = b"GET /ws/x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A gateway with the public route `/ws/**` to `upstream`, and a client
/// connection that has sent it [`WS_REQUEST`].
async fn upgrade_through(upstream: &CannedUpstream) -> (Gateway, RawConn) {
    let gw = GatewayConfig::new()
        .upstream("ws", &upstream.url())
        .route(Route::open("/ws/**", "ws"))
        .start()
        .await;
    let mut conn = RawConn::connect(gw.addr()).await;
    conn.write(WS_REQUEST).await.expect("write");
    (gw, conn)
}

#[tokio::test]
async fn upgrade_answered_wrongly_by_the_upstream_is_502_and_closes() {
    let answers: [&'static [u8]; 3] = [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    ];
    for answer in answers {
        let upstream = CannedUpstream::start(answer, false).await;
        let (_gw, mut conn) = upgrade_through(&upstream).await;
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
    let (_gw, mut conn) = upgrade_through(&upstream).await;
    assert_eq!(conn.response().await.status, 101);
}

#[tokio::test]
async fn websocket_tunnel_is_closed_when_its_token_expires() {
    let upstream = Upstream::websocket_echo().await;
    let key = Key::es256("ws");
    let dir = key_set_dir(&key);
    let toml = GatewayConfig::new()
        .admin()
        .issuer(
            Issuer::new("corp", "https://ws.test/")
                .jwks_file("jwks.json")
                .with("leeway_s = 0"),
        )
        .upstream("ws", &upstream.url())
        .route(Route::new("/ws/**", "ws"))
        .render();
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
