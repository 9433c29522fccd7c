//! The fixture on its own: tonic's client straight to the tonic upstream,
//! no gateway, so that a failure through the gateway is the gateway's.

use futures_util::{stream, StreamExt};
use http::Version;
use std::time::Duration;
use tonic::Code;

use crate::common::within;
use crate::echo::{EchoClient, EchoRequest};
use crate::fixture::{channel, text, EchoUpstream, ABORT_MESSAGE, ABORT_REASON, TRAILER};

async fn direct() -> (EchoUpstream, EchoClient) {
    let echo = EchoUpstream::start().await;
    let client = EchoClient::new(channel(echo.addr()).await);
    (echo, client)
}

#[tokio::test]
async fn direct_every_call_kind_is_answered() {
    let (echo, mut client) = direct().await;

    let mut request = tonic::Request::new(EchoRequest::text("hi"));
    request
        .metadata_mut()
        .insert("x-custom", "one".parse().expect("ASCII"));
    request.set_timeout(Duration::from_secs(5));
    let reply = within("unary", client.unary(request)).await.expect("unary");
    assert_eq!(reply.get_ref().message, "hi");
    assert_eq!(text(reply.metadata(), "x-echo-custom"), Some("one"));
    assert_eq!(
        text(reply.metadata(), "x-echo-grpc-timeout"),
        Some("5000000u")
    );
    assert_eq!(text(reply.metadata(), TRAILER), Some("Unary"));

    let unknown = client.unary_at("test.Nowhere", "Unary", EchoRequest::text("?"));
    let status = within("unknown service", unknown)
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::Unimplemented);

    let request = EchoRequest {
        count: 3,
        ..EchoRequest::text("s")
    };
    let mut replies = within("server stream", client.server_stream(request))
        .await
        .expect("server stream")
        .into_inner();
    let mut indexes = Vec::new();
    while let Some(reply) = within("message", replies.message()).await.expect("message") {
        indexes.push(reply.index);
    }
    assert_eq!(indexes, [0, 1, 2]);

    let numbers = stream::iter((1..=4).map(|number| EchoRequest {
        number,
        ..EchoRequest::default()
    }));
    let total = within("client stream", client.client_stream(numbers))
        .await
        .expect("client stream");
    assert_eq!((total.get_ref().sum, total.get_ref().index), (10, 4));

    let words = stream::iter(["a", "b"].map(EchoRequest::text));
    let echoed: Vec<String> = within("bidi", client.bidi(words))
        .await
        .expect("bidi")
        .into_inner()
        .map(|reply| reply.expect("bidi message").message)
        .collect()
        .await;
    assert_eq!(echoed, ["a", "b"]);

    assert!(echo.calls().iter().all(|c| c.version == Version::HTTP_2));
    assert_eq!(echo.connections(), 1);
}

#[tokio::test]
async fn direct_abort_and_reset_end_after_their_messages() {
    let (echo, mut client) = direct().await;
    let request = EchoRequest {
        count: 2,
        ..EchoRequest::text("x")
    };

    let mut replies = client
        .abort(request.clone())
        .await
        .expect("abort")
        .into_inner();
    for _ in 0..2 {
        assert!(within("message", replies.message())
            .await
            .expect("message")
            .is_some());
    }
    let status = within("status", replies.message())
        .await
        .expect_err("aborted");
    assert_eq!(
        (status.code(), status.message()),
        (Code::Aborted, ABORT_MESSAGE)
    );
    assert!(status.metadata().get(ABORT_REASON).is_some());

    let mut replies = client.reset(request).await.expect("reset").into_inner();
    for _ in 0..2 {
        assert!(within("message", replies.message())
            .await
            .expect("message")
            .is_some());
    }
    echo.release_reset();
    let status = within("reset", replies.message()).await.expect_err("reset");
    assert_ne!(status.code(), Code::Ok, "{status:?}");
}

#[tokio::test]
async fn direct_restart_finishes_calls_in_flight_and_takes_new_connections() {
    let (echo, mut client) = direct().await;
    let slow = EchoRequest {
        delay_ms: 300,
        ..EchoRequest::text("slow")
    };
    let in_flight = tokio::spawn(async move { client.slow(slow).await });
    crate::common::idp::eventually("the slow call arrived", || echo.hits() == 1).await;

    let old = echo.restart();
    let reply = within("call in flight", in_flight).await.expect("task");
    assert_eq!(
        reply
            .expect("the call in flight finishes")
            .get_ref()
            .message,
        "slow"
    );
    within("old server drained", old)
        .await
        .expect("task")
        .expect("old server");

    let mut fresh = EchoClient::new(channel(echo.addr()).await);
    within("new server", fresh.unary(EchoRequest::text("again")))
        .await
        .expect("the new server answers");
    assert_eq!((echo.served_by(1), echo.served_by(2)), (1, 1));
    assert_eq!(echo.connections(), 2);
}
