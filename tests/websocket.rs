//! WebSocket upgrades (behavior.md section 6): checked like any request,
//! then tunnelled both ways.

mod common;

use common::{api_config, raw, within, Gateway, GatewayConfig, Route, Upstream};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

async fn ws_gateway() -> (Upstream, Gateway) {
    let upstream = Upstream::websocket_echo().await;
    let gw = GatewayConfig::new()
        .upstream("ws", &upstream.url())
        .route(Route::open("/ws/**", "ws").with("methods = [\"GET\"]"))
        .route(Route::open("/post-only/**", "ws").with("methods = [\"POST\"]"))
        .route(Route::new("/secure/**", "ws").auth("required"))
        .start()
        .await;
    (upstream, gw)
}

fn ws_url(gw: &Gateway, path: &str) -> String {
    format!("ws://{}{path}", gw.addr())
}

#[tokio::test]
async fn websocket_messages_are_echoed_through_the_gateway() {
    let (upstream, gw) = ws_gateway().await;
    let (mut ws, resp) = within(
        "WebSocket handshake",
        tokio_tungstenite::connect_async(ws_url(&gw, "/ws/echo?room=1")),
    )
    .await
    .expect("handshake through the gateway");
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().get("sec-websocket-accept").is_some());

    let messages = [
        Message::text("hello"),
        Message::binary(vec![0u8, 1, 2, 254, 255]),
        Message::text("ünïcødé ✓"),
        Message::binary(vec![7u8; 200_000]),
        Message::text(""),
    ];
    for msg in &messages {
        within("send", ws.send(msg.clone())).await.expect("send");
        let echoed = within("echo", ws.next())
            .await
            .expect("the tunnel closed")
            .expect("a message");
        assert_eq!(&echoed, msg);
    }
    within("close", ws.close(None)).await.expect("close");

    assert_eq!(upstream.hits(), 1, "one handshake reached the upstream");
    let seen = upstream.last();
    assert_eq!(seen.target(), "/ws/echo?room=1");
    assert_eq!(
        seen.header("upgrade")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("websocket")
    );
    assert!(seen.has("sec-websocket-key"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
}

#[tokio::test]
async fn websocket_upgrade_is_checked_like_any_request() {
    let (upstream, gw) = ws_gateway().await;
    for (path, status) in [
        ("/post-only/x", 405),
        ("/secure/x", 401),
        ("/nowhere", 404),
        ("/ws/../secure/x", 400),
    ] {
        let err = within(
            "refused handshake",
            tokio_tungstenite::connect_async(ws_url(&gw, path)),
        )
        .await
        .expect_err("the handshake must be refused");
        match err {
            WsError::Http(resp) => assert_eq!(resp.status(), status, "{path}"),
            other => panic!("{path}: expected an HTTP refusal, got {other:?}"),
        }
    }
    assert_eq!(
        upstream.hits(),
        0,
        "no refused upgrade reached the upstream"
    );
}

#[tokio::test]
async fn websocket_other_upgrades_are_not_tunnelled() {
    let upstream = Upstream::echo().await;
    let gw = Gateway::start(&api_config(&upstream.url(), "")).await;
    let request = format!(
        "GET /api/x HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
        gw.addr()
    );
    let reply = raw(gw.addr(), request.as_bytes()).await;
    assert_eq!(
        reply.status, 200,
        "an ordinary answer, no 101: {}",
        reply.head
    );
    let seen = upstream.last();
    for gone in ["upgrade", "connection", "http2-settings"] {
        assert!(!seen.has(gone), "{gone} reached the upstream");
    }
}
