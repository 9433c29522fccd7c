//! Calls that end other than well: deadlines (`grpc-timeout` passes
//! through; the upstream's response-head timeout is `DEADLINE_EXCEEDED`),
//! an upstream that ends a stream with an error status or resets it
//! mid-call, and a long-lived bidirectional stream that outlives the
//! response-head timeout.

use futures_util::stream;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::Code;

use crate::common::idp::eventually;
use crate::common::within;
use crate::echo::{EchoClient, EchoRequest};
use crate::fixture::{text, with_token, ABORT_MESSAGE, ABORT_REASON, TRAILER};
use crate::Grpc;

/// The upstream `timeout_ms` of the tests that need it to run out.
const HEAD_TIMEOUT: Duration = Duration::from_millis(300);

async fn with_head_timeout() -> Grpc {
    Grpc::start_with(&format!("timeout_ms = {}", HEAD_TIMEOUT.as_millis())).await
}

/// `grpc-timeout` parsed (gRPC over HTTP/2: 1-8 digits and a unit).
fn grpc_timeout(value: &str) -> Duration {
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().expect("grpc-timeout digits");
    match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        other => panic!("grpc-timeout unit {other:?}"),
    }
}

#[tokio::test]
async fn deadline_grpc_timeout_reaches_the_upstream() {
    let g = Grpc::start().await;
    let mut client = g.client().await;
    let mut request = with_token(EchoRequest::text("d"), &g.token());
    request.set_timeout(Duration::from_secs(5));
    let reply = within("unary", client.unary(request))
        .await
        .expect("unary with a deadline");
    let echoed =
        text(reply.metadata(), "x-echo-grpc-timeout").expect("the upstream saw grpc-timeout");
    let timeout = grpc_timeout(echoed);
    assert!(
        timeout <= Duration::from_secs(5) && timeout > Duration::from_secs(4),
        "grpc-timeout {echoed} at the upstream"
    );
}

/// Past the client's deadline the call ends at the deadline and the
/// upstream's handler is dropped unfinished. tonic ends a call at its own
/// deadline with `CANCELLED` "Timeout expired" (whichever of client and
/// server notices first), so that is the status this client reports.
#[tokio::test]
async fn deadline_past_it_the_call_ends_and_the_upstream_stops() {
    let g = Grpc::start().await;
    let mut client = g.client().await;
    let slow = EchoRequest {
        delay_ms: 10_000,
        ..EchoRequest::text("late")
    };
    let mut request = with_token(slow, &g.token());
    request.set_timeout(Duration::from_millis(400));
    let started = Instant::now();
    let status = within("slow call", client.slow(request))
        .await
        .expect_err("past the deadline");
    let took = started.elapsed();
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    assert!(took < Duration::from_secs(2), "ended after {took:?}");
    assert_eq!(g.echo.hits(), 1, "the call reached the upstream");
    eventually("the upstream stopped the slow call", || {
        g.echo.abandoned() == 1
    })
    .await;
}

/// A response head later than the upstream's `timeout_ms` is 504, which a
/// gRPC client sees as `DEADLINE_EXCEEDED`.
#[tokio::test]
async fn deadline_upstream_head_timeout_is_deadline_exceeded() {
    let g = with_head_timeout().await;
    let mut client = g.client().await;
    let slow = EchoRequest {
        delay_ms: 10_000,
        ..EchoRequest::text("late")
    };
    let started = Instant::now();
    let status = within("slow call", client.slow(with_token(slow, &g.token())))
        .await
        .expect_err("no head within timeout_ms");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(status.message(), "the upstream did not answer in time");
    assert!(started.elapsed() < Duration::from_secs(3));
    eventually("the upstream stopped the slow call", || {
        g.echo.abandoned() == 1
    })
    .await;
}

/// An upstream that ends a stream with an error status: the client gets
/// every message sent before it, then that status with its trailers.
#[tokio::test]
async fn abort_mid_stream_the_status_follows_the_messages_sent() {
    let g = Grpc::start().await;
    let mut client = g.client().await;
    let request = EchoRequest {
        count: 3,
        ..EchoRequest::text("a")
    };
    let mut replies = within("abort", client.abort(with_token(request, &g.token())))
        .await
        .expect("the call starts")
        .into_inner();
    for i in 0..3 {
        let reply = within("message", replies.message()).await.expect("message");
        assert_eq!(reply.map(|r| r.index), Some(i));
    }
    let status = within("status", replies.message())
        .await
        .expect_err("the upstream's status");
    assert_eq!(
        (status.code(), status.message()),
        (Code::Aborted, ABORT_MESSAGE)
    );
    assert_eq!(text(status.metadata(), ABORT_REASON), Some("on purpose"));
    assert_eq!(text(status.metadata(), TRAILER), Some("Abort"));
}

/// An upstream that resets the stream mid-call (`RST_STREAM`, no
/// trailers): the client gets the messages sent before it and then an
/// error, never a clean end; the same client connection and the
/// gateway's upstream connection serve the next calls.
#[tokio::test]
async fn reset_mid_stream_is_an_error_and_the_gateway_serves_on() {
    let g = Grpc::start().await;
    let mut client = g.client().await;
    let request = EchoRequest {
        count: 2,
        ..EchoRequest::text("r")
    };
    let mut replies = within("reset", client.reset(with_token(request, &g.token())))
        .await
        .expect("the call starts")
        .into_inner();
    for i in 0..2 {
        let reply = within("message", replies.message()).await.expect("message");
        assert_eq!(reply.map(|r| r.index), Some(i));
    }
    g.echo.release_reset();
    let end = within("after the reset", replies.message()).await;
    let status = end.expect_err("a reset stream must end in an error, not cleanly");
    assert_ne!(status.code(), Code::Ok);

    serves_a_unary_call(&g, &mut client).await;
    let mut other = g.client().await;
    serves_a_unary_call(&g, &mut other).await;
}

async fn serves_a_unary_call(g: &Grpc, client: &mut EchoClient) {
    let reply = within(
        "unary",
        client.unary(with_token(EchoRequest::text("next"), &g.token())),
    )
    .await
    .expect("the gateway serves the next call");
    assert_eq!(reply.get_ref().message, "next");
}

/// Once the response head arrived, the upstream's `timeout_ms` no longer
/// applies: a bidirectional stream stays open for several times that long,
/// messages flowing both ways.
#[tokio::test]
async fn long_lived_bidi_outlives_the_response_head_timeout() {
    let g = with_head_timeout().await;
    let mut client = g.client().await;
    let (send, outgoing) = mpsc::channel::<EchoRequest>(1);
    let outgoing = stream::unfold(outgoing, |mut rx| async move {
        rx.recv().await.map(|m| (m, rx))
    });
    let mut replies = within("bidi", client.bidi(with_token(outgoing, &g.token())))
        .await
        .expect("the stream opens")
        .into_inner();
    let started = Instant::now();
    for i in 0..4u32 {
        // Time passing is the behaviour under test.
        tokio::time::sleep(HEAD_TIMEOUT).await;
        send.send(EchoRequest::text(&format!("m{i}")))
            .await
            .expect("send");
        let reply = within("echo", replies.message())
            .await
            .unwrap_or_else(|s| panic!("message {i} after {:?}: {s:?}", started.elapsed()))
            .expect("an echo before the stream ends");
        assert_eq!(reply.message, format!("m{i}"));
    }
    assert!(started.elapsed() >= HEAD_TIMEOUT * 4);
    drop(send);
    assert!(within("end", replies.message())
        .await
        .expect("clean end")
        .is_none());
    let trailers = within("trailers", replies.trailers())
        .await
        .expect("trailers");
    assert!(trailers.is_some_and(|t| t.contains_key(TRAILER)));
}
