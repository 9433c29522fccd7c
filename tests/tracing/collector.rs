//! A small OTLP/HTTP collector on 127.0.0.1:0: accepts `POST /v1/traces`,
//! decodes each `ExportTraceServiceRequest` with `opentelemetry-proto`,
//! keeps the spans and the raw bodies, and answers 200 with an empty
//! `ExportTraceServiceResponse`. Export is batched, so tests wait for
//! spans with [`Collector::wait_for`] (bounded, woken by each export).

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::common::within;

/// One exported span, flattened with its resource's `service.name`.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub name: String,
    /// `opentelemetry_proto` span kind: 2 server, 3 client.
    pub kind: i32,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub attributes: Vec<(String, String)>,
    /// The status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    bodies: Vec<Bytes>,
}

pub struct Collector {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    /// The number of spans received so far.
    count: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl Collector {
    pub async fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("collector addr");
        let received = Arc::new(Mutex::new(Received::default()));
        let (tx, count) = watch::channel(0);
        let tx = Arc::new(tx);
        let state = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, tx) = (state.clone(), tx.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (state, tx) = (state.clone(), tx.clone());
                        async move { Ok::<_, Infallible>(answer(req, &state, &tx).await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Collector {
            addr,
            received,
            count,
            task,
        }
    }

    /// The `otlp_endpoint` to configure.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.received.lock().unwrap().spans.clone()
    }

    /// Every export body as received, for "never in the export" checks.
    pub fn bodies(&self) -> Vec<Bytes> {
        self.received.lock().unwrap().bodies.clone()
    }

    /// Waits (bounded) until `done` holds for the spans received so far,
    /// and returns them.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let mut count = self.count.clone();
        within(what, async {
            loop {
                let spans = self.spans();
                if done(&spans) {
                    return spans;
                }
                count.changed().await.expect("collector running");
            }
        })
        .await
    }

    /// Waits until the spans of trace `trace_id` include one named `name`.
    pub async fn span_named(&self, trace_id: &str, name: &str) -> Span {
        let spans = self
            .wait_for(&format!("span {name:?} of {trace_id}"), |spans| {
                spans
                    .iter()
                    .any(|s| s.trace_id == trace_id && s.name == name)
            })
            .await;
        spans
            .into_iter()
            .find(|s| s.trace_id == trace_id && s.name == name)
            .unwrap()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    req: Request<Incoming>,
    state: &Mutex<Received>,
    count: &watch::Sender<usize>,
) -> Response<Full<Bytes>> {
    let path_ok = req.method() == Method::POST && req.uri().path() == "/v1/traces";
    let protobuf = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/x-protobuf");
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let (true, true, Ok(body)) = (path_ok, protobuf, body) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let Ok(export) = ExportTraceServiceRequest::decode(body.clone()) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let spans = flatten(export);
    let total = {
        let mut state = state.lock().unwrap();
        state.bodies.push(body);
        state.spans.extend(spans);
        state.spans.len()
    };
    count.send_replace(total);
    let mut resp = Response::new(Full::new(Bytes::from(
        ExportTraceServiceResponse::default().encode_to_vec(),
    )));
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    resp
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = code;
    resp
}

fn flatten(export: ExportTraceServiceRequest) -> Vec<Span> {
    let mut out = Vec::new();
    for rs in export.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| text_attr(&r.attributes, "service.name"))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(Span {
                    service: service.clone(),
                    name: s.name,
                    kind: s.kind,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    attributes: s
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), value_text(kv)))
                        .collect(),
                    status: s.status.map_or(0, |st| st.code),
                });
            }
        }
    }
    out
}

fn text_attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).map(value_text)
}

fn value_text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
