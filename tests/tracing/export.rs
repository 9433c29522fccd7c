//! Sampling, a collector that is down, the flush at shutdown, and the
//! `[tracing]` checks at load.

use super::*;
use std::path::Path;
use tokengate::config::Config;

#[tokio::test]
async fn sample_ratio_zero_exports_nothing_without_a_sampled_parent() {
    let s = Setup::start("sample_ratio = 0.0").await;
    let (reply, (unsampled, _, flags)) = s.get("/open/x", &[]).await;
    assert_forwarded(&reply, "not sampled");
    assert_eq!(flags, "00", "traceparent still sent, not sampled");

    // A sampled parent decides: this one is exported, after the first.
    let header = traceparent(TRACE_ID, PARENT_ID, "01");
    let (_, (_, _, flags)) = s.get("/open/x", &[("traceparent", &header)]).await;
    assert_eq!(flags, "01");
    server_span(&s.collector, TRACE_ID).await;
    assert!(
        s.collector
            .spans()
            .iter()
            .all(|span| span.trace_id != unsampled),
        "the unsampled request left no span"
    );
}

#[tokio::test]
async fn collector_down_requests_succeed_and_dropped_spans_are_counted() {
    let port = common::closed_port().await;
    let lines = format!("otlp_endpoint = \"http://127.0.0.1:{port}\"");
    let s = Setup::start_with(Collector::start().await, &lines).await;
    let before = dropped(&s.gw).await;
    for n in 0..5 {
        let (reply, (_, _, flags)) = s.get("/open/x", &[]).await;
        assert_forwarded(&reply, &format!("request {n} with the collector down"));
        assert_eq!(flags, "01");
    }
    // Export fails in the background; each request had two spans.
    common::within("dropped spans counted", async {
        while dropped(&s.gw).await < before + 10.0 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn shutdown_flushes_queued_spans() {
    let s = Setup::start("").await;
    let (reply, (trace_id, _, _)) = s.get("/open/x", &[]).await;
    assert_forwarded(&reply, "before shutdown");
    s.gw.shutdown().await;
    let spans = s.collector.spans();
    assert!(
        spans
            .iter()
            .any(|span| span.trace_id == trace_id && span.kind == 2),
        "the last request's span was sent before serve returned: {spans:?}"
    );
}

#[test]
fn tracing_keys_are_checked_at_load() {
    let cases = [
        ("otlp_endpoint = \"grpc://c:4317\"", "tracing.otlp_endpoint"),
        (
            "otlp_endpoint = \"127.0.0.1:4318\"",
            "tracing.otlp_endpoint",
        ),
        ("sample_ratio = 1.5", "tracing.sample_ratio"),
        ("sample_ratio = -0.1", "tracing.sample_ratio"),
        ("service_name = \"\"", "tracing.service_name"),
    ];
    for (line, key) in cases {
        let toml = common::api_config("http://127.0.0.1:9", &format!("[tracing]\n{line}\n"));
        let err = Config::from_toml(&toml, Path::new("."), Vec::new())
            .expect_err(line)
            .to_string();
        assert!(err.contains(key), "{line}: {err}");
    }
    let toml = common::api_config(
        "http://127.0.0.1:9",
        "[tracing]\notlp_endpoint = \"https://otel.example:4318/\"\nsample_ratio = 0.25\n",
    );
    let config = Config::from_toml(&toml, Path::new("."), Vec::new()).expect("valid");
    assert_eq!(
        config.tracing.otlp_traces.map(|u| u.to_string()).as_deref(),
        Some("https://otel.example:4318/v1/traces")
    );
    assert_eq!(config.tracing.sample_ratio, 0.25);
}
