//! `[tracing]` (extensions section 15): the OTLP/HTTP collector, the
//! service name and the sample ratio, checked once.

use http::Uri;

use super::builder::Builder;
use super::raw::RawTracing;
use super::TracingConfig;

/// `[tracing]` → [`TracingConfig`]: the endpoint an http(s) URL with a host
/// (empty: no export), the ratio within 0 to 1, a non-empty service name.
pub(super) fn tracing(b: &mut Builder, raw: &RawTracing) -> TracingConfig {
    let otlp_traces = match raw.otlp_endpoint.as_str() {
        "" => None,
        endpoint => traces_uri(endpoint).or_else(|| {
            b.err(
                "tracing.otlp_endpoint",
                "must be an http:// or https:// URL with a host, or empty",
            );
            None
        }),
    };
    if !(0.0..=1.0).contains(&raw.sample_ratio) {
        b.err("tracing.sample_ratio", "must be 0 to 1");
    }
    if raw.service_name.trim().is_empty() {
        b.err("tracing.service_name", "must not be empty");
    }
    TracingConfig {
        otlp_traces,
        service_name: raw.service_name.clone(),
        sample_ratio: raw.sample_ratio.clamp(0.0, 1.0),
    }
}

/// `{endpoint}/v1/traces`, the OTLP/HTTP traces path (one `/` between).
fn traces_uri(endpoint: &str) -> Option<Uri> {
    let base: Uri = endpoint.parse().ok()?;
    let scheme_ok = matches!(base.scheme_str(), Some("http" | "https"));
    if !scheme_ok || base.host().is_none_or(str::is_empty) || base.query().is_some() {
        return None;
    }
    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_uri_accepts_http_urls_only() {
        let cases = [
            (
                "http://127.0.0.1:4318",
                Some("http://127.0.0.1:4318/v1/traces"),
            ),
            (
                "https://otel.example/",
                Some("https://otel.example/v1/traces"),
            ),
            (
                "http://c:4318/prefix",
                Some("http://c:4318/prefix/v1/traces"),
            ),
            ("grpc://c:4317", None),
            ("127.0.0.1:4318", None),
            ("http://", None),
            ("http://c/?q=1", None),
            ("not a url", None),
        ];
        for (endpoint, want) in cases {
            let got = traces_uri(endpoint).map(|u| u.to_string());
            assert_eq!(got.as_deref(), want, "{endpoint}");
        }
    }
}
