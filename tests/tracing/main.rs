//! Tracing (extensions section 15), black box: W3C trace context from the
//! client to the upstream, and the spans exported to an OTLP/HTTP
//! collector running inside the test ([`collector`], decoding with
//! `opentelemetry-proto`).
//!
//! | file | covers |
//! |---|---|
//! | `context.rs` | `traceparent`/`tracestate` continued, replaced when malformed, sent with export off, sampling flags |
//! | `spans.rs` | the server span's attributes, nothing secret exported, child spans (upstream call, key-set fetch, introspection, upstream token request) |
//! | `export.rs` | `sample_ratio = 0`, a collector that is down (dropped-span metric), the flush at shutdown, config checks |
//!
//! Export is batched by design, so tests wait for spans (bounded, woken by
//! each export) rather than expecting them at once.

mod collector;
#[path = "../common/mod.rs"]
mod common;
mod context;
mod export;
mod spans;

use collector::{Collector, Span};
use common::assert::assert_forwarded;
use common::idp::{wait_ready, TestIdp};
use common::mint::{claims, with, Key, AUD};
use common::ops::scrape;
use common::{get_with, Gateway, GatewayConfig, Issuer, Reply, Route, Upstream};
use serde_json::json;

/// A client's sampled `traceparent`.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// The introspection client of the `opaque` issuer.
const CLIENT_ID: &str = "gate";
const CLIENT_SECRET: &str = "introspection-secret";

/// `traceparent` with `flags`.
fn traceparent(trace_id: &str, parent_id: &str, flags: &str) -> String {
    format!("00-{trace_id}-{parent_id}-{flags}")
}

/// A `traceparent` the upstream received, split into (trace id, parent id,
/// flags); panics unless it is a well-formed version 00 header.
fn parts(header: Option<&str>) -> (String, String, String) {
    let header = header.expect("the upstream received a traceparent");
    let fields: Vec<&str> = header.split('-').collect();
    assert_eq!(fields.len(), 4, "{header}");
    assert_eq!(fields[0], "00", "{header}");
    assert_eq!((fields[1].len(), fields[2].len()), (32, 16), "{header}");
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    assert!(
        hex(fields[1]) && hex(fields[2]) && hex(fields[3]),
        "{header}"
    );
    assert_ne!(fields[1], "0".repeat(32), "{header}");
    assert_ne!(fields[2], "0".repeat(16), "{header}");
    (
        fields[1].to_string(),
        fields[2].to_string(),
        fields[3].to_string(),
    )
}

/// An identity provider with a signing key, the recording upstream, the
/// collector and a gateway with `tracing` lines in `[tracing]` and:
///
/// | route | auth | upstream |
/// |---|---|---|
/// | `/api/**` | JWT of `corp` (key set at `jwks_uri`) | `echo` |
/// | `/opaque/**` | introspection at the idp (`opaque`) | `echo` |
/// | `/billing/**` | none | `billing`, with its own client-credentials token |
/// | `/open/**` | none | `echo` |
struct Setup {
    idp: TestIdp,
    key: Key,
    upstream: Upstream,
    collector: Collector,
    gw: Gateway,
}

impl Setup {
    /// Export to the test's collector with `tracing` lines added.
    async fn start(tracing: &str) -> Setup {
        let collector = Collector::start().await;
        let lines = format!("otlp_endpoint = \"{}\"\n{tracing}", collector.endpoint());
        Setup::start_with(collector, &lines).await
    }

    /// `[tracing]` exactly as `lines` (the collector runs but may be unused).
    async fn start_with(collector: Collector, lines: &str) -> Setup {
        let key = Key::es256("k1");
        let idp = TestIdp::with_keys(&[&key]).await;
        let upstream = Upstream::echo().await;
        let oauth = format!(
            "[upstreams.billing.oauth]\ngrant = \"client_credentials\"\n\
             token_endpoint = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret = \"{CLIENT_SECRET}\"\n",
            idp.token_endpoint()
        );
        let gw = GatewayConfig::new()
            .admin()
            .issuer(Issuer::new("corp", &idp.issuer()).jwks_uri(&idp.jwks_uri()))
            .issuer(
                Issuer::new("opaque", "https://opaque.idp.test/").introspect_at(
                    &idp.introspection_endpoint(),
                    CLIENT_ID,
                    CLIENT_SECRET,
                ),
            )
            .upstream("echo", &upstream.url())
            .upstream_with("billing", &upstream.url(), &oauth)
            .route(Route::new("/api/**", "echo").issuers(&["corp"]))
            .route(Route::new("/opaque/**", "echo").issuers(&["opaque"]))
            .route(Route::open("/billing/**", "billing"))
            .route(Route::open("/open/**", "echo"))
            .raw(&format!("[tracing]\n{lines}\n"))
            .start()
            .await;
        wait_ready(&gw).await;
        Setup {
            idp,
            key,
            upstream,
            collector,
            gw,
        }
    }

    /// A token of `corp` signed with `key`, with `changes` to its claims.
    fn token_by(&self, key: &Key, changes: serde_json::Value) -> String {
        key.token(&with(&claims(&self.idp.issuer(), AUD), changes))
    }

    fn token(&self) -> String {
        self.token_by(&self.key, json!({ "sub": "alice" }))
    }

    /// `GET path` with `headers`, and the `traceparent` the upstream got.
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (Reply, (String, String, String)) {
        let reply = self
            .gw
            .send(&common::Client::h1(), get_with(path, headers))
            .await;
        let seen = self.upstream.last();
        (reply, parts(seen.header("traceparent")))
    }
}

/// The span of trace `trace_id` with kind server.
async fn server_span(collector: &Collector, trace_id: &str) -> Span {
    let spans = collector
        .wait_for(&format!("server span of {trace_id}"), |spans| {
            spans.iter().any(|s| s.trace_id == trace_id && s.kind == 2)
        })
        .await;
    spans
        .into_iter()
        .find(|s| s.trace_id == trace_id && s.kind == 2)
        .unwrap()
}

/// `tokengate_trace_spans_dropped_total` (0 before it is registered).
async fn dropped(gw: &Gateway) -> f64 {
    let page = scrape(gw.admin_addr()).await;
    if page.has("tokengate_trace_spans_dropped_total", &[]) {
        page.value("tokengate_trace_spans_dropped_total", &[])
    } else {
        0.0
    }
}
