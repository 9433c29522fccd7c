//! The four kinds of gRPC call through the gateway with a valid token, and
//! what crosses it besides messages: request metadata to the upstream,
//! response metadata and trailers back, no hop-by-hop header but
//! `te: trailers`.

use futures_util::{stream, StreamExt};
use http::Version;
use tokio::sync::mpsc;
use tonic::metadata::MetadataValue;

use crate::common::within;
use crate::echo::EchoRequest;
use crate::fixture::{text, with_token, TRAILER};
use crate::Grpc;

/// Connection-specific headers (RFC 9113 section 8.2.2) besides `te`.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

#[tokio::test]
async fn unary_call_is_answered_through_the_gateway() {
    let g = Grpc::start().await;
    let mut client = g.client().await;
    let reply = within(
        "unary",
        client.unary(with_token(EchoRequest::text("hello"), &g.token())),
    )
    .await
    .expect("unary through the gateway");
    assert_eq!(reply.get_ref().message, "hello");
    assert_eq!(g.echo.hits(), 1);
    let seen = g.echo.last();
    assert_eq!(seen.path, "/test.Echo/Unary");
    assert_eq!(seen.version, Version::HTTP_2);
    assert_eq!(seen.header("content-type"), Some("application/grpc"));
}

#[tokio::test]
async fn server_streaming_call_delivers_every_message_in_order() {
    let g = Grpc::start().await;
    let mut client = g.client().await;
    let request = EchoRequest {
        count: 100,
        ..EchoRequest::text("tick")
    };
    let mut replies = within(
        "server stream",
        client.server_stream(with_token(request, &g.token())),
    )
    .await
    .expect("server stream through the gateway")
    .into_inner();
    let mut indexes = Vec::new();
    while let Some(reply) = within("next message", replies.message())
        .await
        .expect("message")
    {
        assert_eq!(reply.message, "tick");
        indexes.push(reply.index);
    }
    assert_eq!(indexes, (0..100).collect::<Vec<u32>>());
    let trailers = within("trailers", replies.trailers())
        .await
        .expect("trailers")
        .expect("the stream ends with trailers");
    assert_eq!(text(&trailers, TRAILER), Some("ServerStream"));
}

#[tokio::test]
async fn client_streaming_call_sums_every_message() {
    let g = Grpc::start().await;
    let mut client = g.client().await;
    let numbers = stream::iter((1..=1000).map(|number| EchoRequest {
        number,
        message: "x".repeat(100),
        ..EchoRequest::default()
    }));
    let total = within(
        "client stream",
        client.client_stream(with_token(numbers, &g.token())),
    )
    .await
    .expect("client stream through the gateway");
    assert_eq!(total.get_ref().sum, 500_500);
    assert_eq!(total.get_ref().index, 1000, "every message arrived");
}

/// Each message is answered before the next is sent: the request and the
/// response stream both flow while the call is open.
#[tokio::test]
async fn bidi_call_echoes_each_message_in_turn() {
    let g = Grpc::start().await;
    let mut client = g.client().await;
    let (send, outgoing) = mpsc::channel::<EchoRequest>(1);
    let outgoing = stream::unfold(outgoing, |mut rx| async move {
        rx.recv().await.map(|m| (m, rx))
    });
    send.send(EchoRequest::text("first")).await.expect("send");
    let mut replies = within("bidi", client.bidi(with_token(outgoing, &g.token())))
        .await
        .expect("bidi through the gateway")
        .into_inner();
    for (i, word) in ["first", "second", "third"].iter().enumerate() {
        if i > 0 {
            send.send(EchoRequest::text(word)).await.expect("send");
        }
        let reply = within("echo", replies.message())
            .await
            .expect("message")
            .expect("an echo before the stream ends");
        assert_eq!((reply.message.as_str(), reply.index), (*word, i as u32));
    }
    drop(send);
    assert!(within("end", replies.message())
        .await
        .expect("clean end")
        .is_none());
}

#[tokio::test]
async fn metadata_and_trailers_pass_end_to_end() {
    let g = Grpc::start().await;
    let mut client = g.client().await;
    let token = g.token();
    let mut request = with_token(EchoRequest::text("m"), &token);
    let metadata = request.metadata_mut();
    metadata.insert("x-custom", MetadataValue::from_static("custom value"));
    metadata.insert_bin("x-blob-bin", MetadataValue::from_bytes(&[0, 159, 255, 1]));
    let reply = within("unary", client.unary(request))
        .await
        .expect("unary through the gateway");

    // Request metadata reached the upstream as sent.
    let seen = g.echo.last();
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    assert_eq!(seen.header("x-custom"), Some("custom value"));
    assert!(seen.headers.contains_key("x-blob-bin"));
    // Response metadata and the trailer came back.
    let md = reply.metadata();
    assert_eq!(text(md, "x-echo-custom"), Some("custom value"));
    let blob = md.get_bin("x-echo-blob-bin").map(|v| v.to_bytes().ok());
    assert_eq!(blob.flatten().as_deref(), Some(&[0u8, 159, 255, 1][..]));
    assert_eq!(text(md, TRAILER), Some("Unary"));
}

/// gRPC servers require `te: trailers`; nothing else connection-specific
/// reaches the upstream.
#[tokio::test]
async fn upstream_sees_te_trailers_and_no_other_hop_by_hop_header() {
    let g = Grpc::start().await;
    let mut client = g.client().await;
    within(
        "unary",
        client.unary(with_token(EchoRequest::text("h"), &g.token())),
    )
    .await
    .expect("unary through the gateway");
    let seen = g.echo.last();
    assert_eq!(seen.header("te"), Some("trailers"));
    for name in HOP_BY_HOP {
        assert!(
            !seen.headers.contains_key(*name),
            "{name} reached the upstream"
        );
    }
}

/// Calls of every kind share one client connection and keep working
/// after each other.
#[tokio::test]
async fn calls_of_every_kind_share_one_client_connection() {
    let g = Grpc::start().await;
    let mut client = g.client().await;
    let token = g.token();
    for round in 0..3 {
        let reply = client
            .unary(with_token(EchoRequest::text("u"), &token))
            .await;
        assert!(reply.is_ok(), "round {round}: {reply:?}");
        let request = EchoRequest {
            count: 2,
            ..EchoRequest::text("s")
        };
        let replies = within("stream", client.server_stream(with_token(request, &token)))
            .await
            .expect("server stream")
            .into_inner();
        let n = within("messages", replies.count()).await;
        assert_eq!(n, 2, "round {round}");
    }
    assert_eq!(g.echo.hits(), 6);
}
