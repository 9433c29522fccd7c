//! Distributed tracing (extensions section 15): the W3C trace context a
//! request continues and passes upstream, the sampling decision, and the
//! OpenTelemetry spans the gateway exports (`[tracing]`).
//!
//! Every request gets a [`RequestSpan`]: the caller's trace continued (or a
//! new one) and a span id of the gateway's own, which the upstream receives
//! in `traceparent` whether or not anything is exported. With
//! `otlp_endpoint` set, a sampled request (the caller's `sampled` flag, else
//! `sample_ratio`) records a server span (route pattern, method, status,
//! outcome: never a token or claim value) and child spans for the work
//! done on its behalf: key-set fetches, introspection, upstream token
//! requests ([`child`]) and the upstream call. Export is off the request
//! path ([`export`]); a request never waits for it.
//!
//! Without export, a request costs two random ids and one formatted
//! header; the sampled flag passed upstream is then the caller's.

mod context;
mod export;

use futures_util::future::Either;
use http::{HeaderMap, HeaderValue, Method};
use opentelemetry::context::{FutureExt, WithContext};
use opentelemetry::trace::{
    SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, TraceState, Tracer, TracerProvider,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::future::Future;
use std::time::Duration;

use crate::config::TracingConfig;
pub use context::{traceparent, TraceParent, TRACEPARENT, TRACESTATE};

/// The spans of one configuration: `None` without `otlp_endpoint`.
pub struct Tracing {
    export: Option<Exporting>,
}

struct Exporting {
    tracer: SdkTracer,
    /// Owns the processor; kept so spans can end until the runtime goes.
    _provider: SdkTracerProvider,
    queue: export::Export,
}

/// Stored in the request's OpenTelemetry [`Context`] while its server span
/// records, so [`child`] can start spans below it from anywhere.
#[derive(Clone)]
struct Recording(SdkTracer);

impl Tracing {
    /// Builds the exporter and tracer for `config`; no network I/O.
    pub fn new(config: &TracingConfig) -> Result<Tracing, String> {
        let Some(uri) = &config.otlp_traces else {
            return Ok(Tracing { export: None });
        };
        let (processor, queue) = export::pipeline(uri)?;
        let sampler =
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio)));
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_resource(
                Resource::builder_empty()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("tokengate");
        Ok(Tracing {
            export: Some(Exporting {
                tracer,
                _provider: provider,
                queue,
            }),
        })
    }

    /// Starts the export task, if any; needs a tokio runtime. Calling it
    /// again does nothing.
    pub fn start(&self) {
        if let Some(e) = &self.export {
            e.queue.start();
        }
    }

    /// Sends the queued spans, waiting at most `wait` (at shutdown).
    pub async fn shutdown(&self, wait: Duration) {
        if let Some(e) = &self.export {
            e.queue.shutdown(wait).await;
        }
    }

    /// The span of a request with these headers: the caller's trace
    /// continued when its `traceparent` is valid, else a new trace.
    pub fn begin(&self, headers: &HeaderMap) -> RequestSpan {
        let parent = TraceParent::from_headers(headers);
        let Some(export) = &self.export else {
            return RequestSpan {
                trace_id: parent.map_or_else(new_trace_id, |p| p.trace_id),
                span_id: new_span_id(),
                sampled: parent.is_some_and(|p| p.sampled()),
                continued: parent.is_some(),
                recording: None,
            };
        };
        let parent_cx = match parent {
            Some(p) => Context::new().with_remote_span_context(SpanContext::new(
                p.trace_id.into(),
                p.parent_id.into(),
                TraceFlags::new(p.flags),
                true,
                TraceState::NONE,
            )),
            None => Context::new(),
        };
        let span = export
            .tracer
            .span_builder("request")
            .with_kind(SpanKind::Server)
            .start_with_context(&export.tracer, &parent_cx);
        let sc = opentelemetry::trace::Span::span_context(&span).clone();
        if !sc.is_valid() {
            // The provider is shutting down: no span, ids of our own.
            return Tracing { export: None }.begin(headers);
        }
        let recording = opentelemetry::trace::Span::is_recording(&span).then(|| {
            parent_cx
                .with_span(span)
                .with_value(Recording(export.tracer.clone()))
        });
        RequestSpan {
            trace_id: u128::from_be_bytes(sc.trace_id().to_bytes()),
            span_id: u64::from_be_bytes(sc.span_id().to_bytes()),
            sampled: sc.is_sampled(),
            continued: parent.is_some(),
            recording,
        }
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        if let Some(e) = &self.export {
            e.queue.close();
        }
    }
}

/// One request's place in its trace.
pub struct RequestSpan {
    trace_id: u128,
    /// The gateway's span for this request.
    span_id: u64,
    sampled: bool,
    /// The caller's `traceparent` was valid: its `tracestate` goes on too.
    continued: bool,
    /// The context holding the recording server span; `None`: nothing is
    /// recorded for this request.
    recording: Option<Context>,
}

/// What the upstream request carries: `traceparent`, and whether the
/// caller's `tracestate` may go with it.
pub struct UpstreamTrace {
    pub traceparent: HeaderValue,
    pub keep_tracestate: bool,
}

impl RequestSpan {
    /// Runs `fut` with the server span as the current context when it
    /// records, so spans started by [`child`] inside are its children.
    pub fn instrument<F: Future>(&self, fut: F) -> Either<WithContext<F>, F> {
        match &self.recording {
            Some(cx) => Either::Left(fut.with_context(cx.clone())),
            None => Either::Right(fut),
        }
    }

    /// The upstream call: its client span when recording, and the trace
    /// context the upstream receives (naming that span, else the gateway's
    /// server span).
    pub fn upstream_call(&self, upstream: &str) -> (UpstreamTrace, Option<ChildSpan>) {
        let call = self.recording.as_ref().and_then(|cx| {
            start_child(
                cx,
                "upstream call",
                KeyValue::new("tokengate.upstream", upstream.to_string()),
            )
        });
        let span_id = call.as_ref().map_or(self.span_id, ChildSpan::span_id);
        let trace = UpstreamTrace {
            traceparent: traceparent(self.trace_id, span_id, self.sampled),
            keep_tracestate: self.continued,
        };
        (trace, call)
    }

    /// Ends the server span with what the access log also reports.
    pub fn finish(self, route: Option<&str>, method: &Method, status: u16, outcome: &'static str) {
        let Some(cx) = self.recording else {
            return;
        };
        let span = cx.span();
        span.update_name(match route {
            Some(route) => format!("{} {route}", method.as_str()),
            None => method.as_str().to_string(),
        });
        let mut attributes = Vec::with_capacity(4);
        if let Some(route) = route {
            attributes.push(KeyValue::new("http.route", route.to_string()));
        }
        attributes.push(KeyValue::new(
            "http.request.method",
            method.as_str().to_string(),
        ));
        attributes.push(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        attributes.push(KeyValue::new("tokengate.outcome", outcome));
        span.set_attributes(attributes);
        if status >= 500 {
            span.set_status(Status::error(outcome));
        }
        span.end();
    }
}

/// A span of work done for a request (a fetch, a call); ends when dropped.
pub struct ChildSpan(Context);

impl ChildSpan {
    fn span_id(&self) -> u64 {
        u64::from_be_bytes(self.0.span().span_context().span_id().to_bytes())
    }

    /// Marks the work as failed, with a reason from a fixed list (never a
    /// value from the network).
    pub fn failed(&self, reason: &'static str) {
        self.0.span().set_status(Status::error(reason));
    }

    /// The upstream call's outcome: the response status, or `None` when
    /// no response came.
    pub fn answered(&self, status: Option<u16>) {
        match status {
            Some(status) => self.0.span().set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            )),
            None => self.failed("the upstream call failed"),
        }
    }
}

impl Drop for ChildSpan {
    fn drop(&mut self) {
        self.0.span().end();
    }
}

/// A client span `name` below the current request's server span, when
/// that one records; `None` otherwise (no export, not sampled, or work
/// not done for a request, such as a scheduled key-set refresh).
pub fn child(name: &'static str, attribute: KeyValue) -> Option<ChildSpan> {
    Context::map_current(|cx| start_child(cx, name, attribute))
}

fn start_child(cx: &Context, name: &'static str, attribute: KeyValue) -> Option<ChildSpan> {
    let Recording(tracer) = cx.get::<Recording>()?;
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Client)
        .with_attributes([attribute])
        .start_with_context(tracer, cx);
    Some(ChildSpan(cx.with_span(span)))
}

/// `fut` with the current context, for work spawned on a request's behalf
/// (a shared fetch): its [`child`] spans stay in the request's trace.
pub fn in_current_context<F: Future>(fut: F) -> WithContext<F> {
    fut.with_current_context()
}

fn new_trace_id() -> u128 {
    rand::random::<u128>().max(1)
}

fn new_span_id() -> u64 {
    rand::random::<u64>().max(1)
}
