//! The trace context the upstream receives.

use super::*;

#[tokio::test]
async fn client_traceparent_is_continued_upstream_and_in_the_export() {
    let s = Setup::start("").await;
    let header = traceparent(TRACE_ID, PARENT_ID, "01");
    let token = format!("Bearer {}", s.token());
    let (reply, (trace_id, parent_id, flags)) = s
        .get(
            "/api/x",
            &[
                ("authorization", &token),
                ("traceparent", &header),
                ("tracestate", "vendor=abc,other=1"),
            ],
        )
        .await;
    assert_forwarded(&reply, "traced request");
    assert_eq!(trace_id, TRACE_ID, "the caller's trace goes on");
    assert_ne!(
        parent_id, PARENT_ID,
        "the upstream's parent is the gateway's span"
    );
    assert_eq!(flags, "01", "sampled, as the caller decided");
    assert_eq!(
        s.upstream.last().header("tracestate"),
        Some("vendor=abc,other=1"),
        "tracestate passed on with a valid traceparent"
    );

    let server = server_span(&s.collector, TRACE_ID).await;
    assert_eq!(
        server.parent_span_id, PARENT_ID,
        "the caller's span is the parent"
    );
    let call = s.collector.span_named(TRACE_ID, "upstream call").await;
    assert_eq!(
        call.span_id, parent_id,
        "the upstream's traceparent names the call span"
    );
    assert_eq!(call.parent_span_id, server.span_id);
    assert_eq!(call.kind, 3, "a client span");
}

#[tokio::test]
async fn malformed_traceparent_is_replaced_and_its_tracestate_dropped() {
    let s = Setup::start("").await;
    for bad in [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "garbage",
    ] {
        let (reply, (trace_id, _, _)) = s
            .get(
                "/open/x",
                &[("traceparent", bad), ("tracestate", "vendor=abc")],
            )
            .await;
        assert_forwarded(&reply, bad);
        assert_ne!(trace_id, TRACE_ID, "{bad}: a new trace");
        assert!(
            !s.upstream.last().has("tracestate"),
            "{bad}: tracestate dropped"
        );
        let server = server_span(&s.collector, &trace_id).await;
        assert_eq!(server.parent_span_id, "", "{bad}: a root span");
    }
}

#[tokio::test]
async fn two_traceparent_fields_start_a_new_trace() {
    let s = Setup::start("").await;
    let header = traceparent(TRACE_ID, PARENT_ID, "01");
    let (reply, (trace_id, _, _)) = s
        .get(
            "/open/x",
            &[("traceparent", &header), ("traceparent", &header)],
        )
        .await;
    assert_forwarded(&reply, "two traceparent fields");
    assert_ne!(trace_id, TRACE_ID);
}

#[tokio::test]
async fn traceparent_is_sent_upstream_with_export_off() {
    let s = Setup::start_with(Collector::start().await, "").await;
    let header = traceparent(TRACE_ID, PARENT_ID, "01");
    let (reply, (trace_id, parent_id, flags)) = s
        .get(
            "/open/x",
            &[("traceparent", &header), ("tracestate", "k=v")],
        )
        .await;
    assert_forwarded(&reply, "continued, export off");
    assert_eq!((trace_id.as_str(), flags.as_str()), (TRACE_ID, "01"));
    assert_ne!(parent_id, PARENT_ID, "the gateway's own span id");
    assert_eq!(s.upstream.last().header("tracestate"), Some("k=v"));

    let unsampled = traceparent(TRACE_ID, PARENT_ID, "00");
    let (_, (_, _, flags)) = s.get("/open/x", &[("traceparent", &unsampled)]).await;
    assert_eq!(flags, "00", "the caller's decision passes through");

    let (reply, (first, _, flags)) = s.get("/open/x", &[]).await;
    assert_forwarded(&reply, "new trace, export off");
    assert_eq!(flags, "00", "nothing recorded: not sampled");
    let (_, (second, _, _)) = s.get("/open/x", &[]).await;
    assert_ne!(first, second, "each request starts its own trace");
    assert!(s.collector.spans().is_empty(), "nothing is exported");
}
