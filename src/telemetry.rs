//! Prometheus metrics: the recorder (installed once per process), the
//! per-route handles the request path uses, and the text the admin
//! listener's `/metrics` serves.
//!
//! Handles are registered when a runtime snapshot is built, so the request
//! path only increments atomics: no label formatting, no map lookups.
//!
//! Counters and gauges go through the `metrics` recorder. The latency
//! histograms are ours (`FixedHistogram`): fixed buckets counted with
//! atomics. The exporter's histograms keep every sample until a scrape
//! drains them, so a gateway nobody scrapes would grow without bound, and
//! the scrape after a busy minute would stall the worker while it sorts
//! millions of samples into buckets.

use metrics::{Counter, Histogram, HistogramFn};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The `outcome` label values of `tokengate_requests_total`.
pub const OUTCOMES: [&str; 12] = [
    "forwarded",
    "missing_token",
    "invalid_request",
    "invalid_token",
    "insufficient_scope",
    "unavailable",
    "not_found",
    "method_not_allowed",
    "upstream_error",
    "request_timeout",
    "metadata",
    "rate_limited",
];

/// Latency buckets in seconds: 100 us to 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A Prometheus histogram over [`BUCKETS`]: a sample costs a bucket search
/// and three atomic additions, and nothing is kept per sample.
#[derive(Default)]
struct FixedHistogram {
    /// Per bucket (not cumulative); samples above the last bound are only
    /// in `count`.
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl HistogramFn for FixedHistogram {
    fn record(&self, seconds: f64) {
        let seconds = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        let i = BUCKETS.partition_point(|&bound| bound < seconds);
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
    }
}

impl FixedHistogram {
    /// Appends the family's sample lines for one label set.
    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Every fixed histogram, by family and rendered label set; one entry per
/// series for the life of the process, so a reload keeps its counts.
type Histograms = BTreeMap<&'static str, BTreeMap<String, Arc<FixedHistogram>>>;

fn histograms() -> &'static Mutex<Histograms> {
    static ALL: OnceLock<Mutex<Histograms>> = OnceLock::new();
    ALL.get_or_init(Default::default)
}

/// The histogram `name{label="value"}`, created on first use.
fn histogram(name: &'static str, label: &str, value: &str) -> Histogram {
    let labels = format!("{label}=\"{}\"", escape_label(value));
    let mut all = histograms().lock().unwrap_or_else(|e| e.into_inner());
    let series = all.entry(name).or_default().entry(labels).or_default();
    Histogram::from_arc(series.clone())
}

/// A label value in the text format: backslash, quote and newline escaped.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn render_histograms(out: &mut String) {
    let all = histograms().lock().unwrap_or_else(|e| e.into_inner());
    for (name, series) in all.iter() {
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (labels, h) in series {
            h.render(name, labels, out);
        }
        out.push('\n');
    }
}

/// The process's Prometheus handle, installing the recorder on first use.
/// If the embedding program installed another recorder, this one renders
/// an empty page.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder: PrometheusRecorder = PrometheusBuilder::new().build_recorder();
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
    let mut page = h.render();
    if !page.is_empty() && !page.ends_with("\n\n") {
        page.push('\n');
    }
    render_histograms(&mut page);
    page
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
            duration: histogram("tokengate_request_duration_seconds", "route", &route),
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
    histogram("tokengate_upstream_duration_seconds", "upstream", upstream)
}

/// `tokengate_open_connections`.
pub fn open_connections() -> &'static metrics::Gauge {
    static GAUGE: OnceLock<metrics::Gauge> = OnceLock::new();
    GAUGE.get_or_init(|| {
        handle();
        metrics::gauge!("tokengate_open_connections")
    })
}

/// Counts a WebSocket tunnel the gateway closed, by reason
/// (`tokengate_tunnels_closed_total{reason}`; `token_expired`).
pub fn tunnel_closed(reason: &'static str) {
    handle();
    metrics::counter!("tokengate_tunnels_closed_total", "reason" => reason).increment(1);
}

/// Counts one token request of an upstream's `oauth` client by result
/// (`tokengate_upstream_token_requests_total{upstream,result}`; `ok`, an
/// RFC 6749 section 5.2 code, or why no answer came).
pub fn upstream_token_request(upstream: &str, result: &'static str) {
    handle();
    metrics::counter!("tokengate_upstream_token_requests_total", "upstream" => upstream.to_string(), "result" => result).increment(1);
}

/// `tokengate_trace_spans_dropped_total`: spans lost to a full export
/// queue or a failed export.
pub fn trace_spans_dropped() -> Counter {
    handle();
    metrics::counter!("tokengate_trace_spans_dropped_total")
}

/// `tokengate_access_log_lines_dropped_total`: access-log lines lost
/// because the log stream did not keep up.
pub fn access_log_lines_dropped() -> Counter {
    handle();
    metrics::counter!("tokengate_access_log_lines_dropped_total")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_histogram_buckets_are_cumulative_with_le_bounds() {
        let h = FixedHistogram::default();
        // On a bound counts in that bucket (le); above the last only in +Inf.
        for seconds in [0.0001, 0.0002, 0.003, 0.003, 20.0, f64::NAN, -1.0] {
            h.record(seconds);
        }
        let mut out = String::new();
        h.render("t_seconds", "route=\"/a\"", &mut out);
        let line = |needle: &str| {
            out.lines()
                .find(|l| l.starts_with(needle))
                .unwrap_or_else(|| panic!("no {needle} in\n{out}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_string()
        };
        // NaN and negative samples count as 0 s.
        assert_eq!(line("t_seconds_bucket{route=\"/a\",le=\"0.0001\"}"), "3");
        assert_eq!(line("t_seconds_bucket{route=\"/a\",le=\"0.00025\"}"), "4");
        assert_eq!(line("t_seconds_bucket{route=\"/a\",le=\"0.0025\"}"), "4");
        assert_eq!(line("t_seconds_bucket{route=\"/a\",le=\"0.005\"}"), "6");
        assert_eq!(line("t_seconds_bucket{route=\"/a\",le=\"10\"}"), "6");
        assert_eq!(line("t_seconds_bucket{route=\"/a\",le=\"+Inf\"}"), "7");
        assert_eq!(line("t_seconds_count{route=\"/a\"}"), "7");
        let sum: f64 = line("t_seconds_sum{route=\"/a\"}").parse().unwrap();
        assert!((sum - 20.0063).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn fixed_histogram_series_is_shared_and_label_values_escaped() {
        let a = histogram("t_shared_seconds", "route", "/x/\"q\"\\\n");
        let b = histogram("t_shared_seconds", "route", "/x/\"q\"\\\n");
        a.record(0.001);
        b.record(0.001);
        let mut page = String::new();
        render_histograms(&mut page);
        assert!(
            page.contains("# TYPE t_shared_seconds histogram\n"),
            "{page}"
        );
        assert!(
            page.contains("t_shared_seconds_count{route=\"/x/\\\"q\\\"\\\\\\n\"} 2\n"),
            "{page}"
        );
    }
}
