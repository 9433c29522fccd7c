//! Prometheus metrics: the recorder (installed once per process), the
//! per-route handles the request path uses, and the text the admin
//! listener's `/metrics` serves.
//!
//! Handles are registered when a runtime snapshot is built, so the request
//! path only increments atomics: no label formatting, no map lookups.

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use std::sync::OnceLock;
use std::time::Duration;

/// The `outcome` label values of `tokengate_requests_total`.
pub const OUTCOMES: [&str; 9] = [
    "forwarded",
    "missing_token",
    "invalid_request",
    "invalid_token",
    "insufficient_scope",
    "unavailable",
    "not_found",
    "method_not_allowed",
    "upstream_error",
];

/// Latency buckets in seconds: 100 us to 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

fn builder() -> PrometheusBuilder {
    let b = PrometheusBuilder::new();
    b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .unwrap_or_else(|_| PrometheusBuilder::new())
}

/// The process's Prometheus handle, installing the recorder on first use.
/// If the embedding program installed another recorder, this one renders
/// an empty page.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder: PrometheusRecorder = builder().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder is already installed; /metrics will be empty");
        }
        handle
    })
}

/// Renders the scrape page.
pub fn render() -> String {
    let h = handle();
    h.run_upkeep();
    h.render()
}

/// Counters and histogram of one route (or of requests that matched none).
pub struct RouteMetrics {
    outcomes: [Counter; OUTCOMES.len()],
    duration: Histogram,
}

impl RouteMetrics {
    pub fn new(route: &str) -> RouteMetrics {
        handle();
        let route = route.to_string();
        RouteMetrics {
            outcomes: OUTCOMES.map(|o| metrics::counter!("tokengate_requests_total", "route" => route.clone(), "outcome" => o)),
            duration: metrics::histogram!("tokengate_request_duration_seconds", "route" => route),
        }
    }

    pub fn record(&self, outcome: &str, elapsed: Duration) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[i].increment(1);
        }
        self.duration.record(elapsed.as_secs_f64());
    }
}

/// `tokengate_upstream_duration_seconds` for one upstream.
pub fn upstream_duration(upstream: &str) -> Histogram {
    handle();
    metrics::histogram!("tokengate_upstream_duration_seconds", "upstream" => upstream.to_string())
}

/// `tokengate_open_connections`.
pub fn open_connections() -> &'static metrics::Gauge {
    static GAUGE: OnceLock<metrics::Gauge> = OnceLock::new();
    GAUGE.get_or_init(|| {
        handle();
        metrics::gauge!("tokengate_open_connections")
    })
}

/// Counts a configuration reload by result (`ok` or `error`).
pub fn reload(result: &'static str) {
    handle();
    metrics::counter!("tokengate_config_reloads_total", "result" => result).increment(1);
}

/// `tokengate_cache_hits_total` / `_misses_total` for one cache, registered
/// once so that a cache lookup only bumps an atomic.
#[derive(Clone)]
pub struct CacheCounters {
    pub hits: Counter,
    pub misses: Counter,
}

impl CacheCounters {
    /// `cache` is `identity` or `introspection`.
    pub fn new(cache: &'static str) -> CacheCounters {
        handle();
        CacheCounters {
            hits: metrics::counter!("tokengate_cache_hits_total", "cache" => cache),
            misses: metrics::counter!("tokengate_cache_misses_total", "cache" => cache),
        }
    }
}
