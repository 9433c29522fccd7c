//! Span export: a bounded queue in front of the OTLP/HTTP exporter
//! (`opentelemetry-otlp`, protobuf over our hyper + rustls client). A
//! request ending a span only tries to enqueue it: when the queue is full
//! (the collector is down or slow) the span is dropped and counted in
//! `tokengate_trace_spans_dropped_total`, and so are spans whose export
//! failed. One task sends batches, one at a time.
//!
//! The SDK's `BatchSpanProcessor` would do the batching, but it keeps its
//! drop count to itself and exports from a thread of its own; this
//! processor is the few lines that let the metric count every lost span
//! and keep export on the tokio runtime that drives the hyper client.

use metrics::Counter;
use opentelemetry::Context;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

/// Spans waiting for export; more are dropped.
const QUEUE: usize = 2048;
/// Spans in one export request.
const BATCH: usize = 512;
/// How long a batch waits for more spans before it is sent.
const DELAY: Duration = Duration::from_millis(500);
/// Deadline of one export request, response included.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// `tokengate_trace_spans_dropped_total`.
fn dropped_counter() -> Counter {
    crate::telemetry::trace_spans_dropped()
}

/// What the export task needs; taken once by [`Export::start`].
struct Pending {
    rx: mpsc::Receiver<SpanData>,
    exporter: opentelemetry_otlp::SpanExporter,
}

/// State shared by the processor (in the tracer provider) and the
/// [`Export`] handle the runtime keeps.
struct Shared {
    pending: Mutex<Option<Pending>>,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Wakes the task: to send now (flush) or to finish (`closing`).
    wake: Notify,
    closing: AtomicBool,
}

/// The queue and its export task.
#[derive(Clone)]
pub(super) struct Export(Arc<Shared>);

/// The `SpanProcessor` the tracer provider ends spans into.
pub(super) struct QueueProcessor {
    tx: mpsc::Sender<SpanData>,
    shared: Arc<Shared>,
    dropped: Counter,
}

impl std::fmt::Debug for QueueProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueProcessor")
    }
}

/// The exporter for `traces_uri` and a processor feeding it; no I/O.
pub(super) fn pipeline(traces_uri: &http::Uri) -> Result<(QueueProcessor, Export), String> {
    let client = opentelemetry_http::hyper::HyperClient::new(
        crate::fetch::https_connector()?,
        EXPORT_TIMEOUT,
        None,
    );
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_uri.to_string())
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(client)
        .build()
        .map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let shared = Arc::new(Shared {
        pending: Mutex::new(Some(Pending { rx, exporter })),
        task: Mutex::new(None),
        wake: Notify::new(),
        closing: AtomicBool::new(false),
    });
    let processor = QueueProcessor {
        tx,
        shared: shared.clone(),
        dropped: dropped_counter(),
    };
    Ok((processor, Export(shared)))
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.tx.try_send(span).is_err() {
            self.dropped.increment(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Asks the task to send what is queued and stop; never blocks (the
    /// provider may be dropped on a runtime thread).
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.shared.close();
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = pending.as_mut() {
            p.exporter.set_resource(resource);
        }
    }
}

impl Shared {
    fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

impl Export {
    /// Starts the export task; needs a tokio runtime. Calling it again
    /// does nothing.
    pub(super) fn start(&self) {
        let taken = self
            .0
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(pending) = taken {
            let task = tokio::spawn(run(pending, self.0.clone(), dropped_counter()));
            *self.0.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        }
    }

    /// Sends what is queued and stops the task, waiting at most `wait`.
    pub(super) async fn shutdown(&self, wait: Duration) {
        self.0.close();
        let task = self
            .0
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            if tokio::time::timeout(wait, task).await.is_err() {
                tracing::warn!("span export did not finish within the shutdown wait");
            }
        }
    }

    /// Stops the task once the runtime that owns it is gone (a reload
    /// changed `[tracing]`); it sends what is queued first.
    pub(super) fn close(&self) {
        self.0.close();
    }
}

/// Collects a batch (until it has [`BATCH`] spans, or [`DELAY`] after its
/// first span, or a flush) and sends it, until closed; then sends the rest.
async fn run(mut pending: Pending, shared: Arc<Shared>, dropped: Counter) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut failing = false;
    loop {
        let closing = shared.closing.load(Ordering::Acquire);
        if !closing && !collect(&mut pending.rx, &mut batch, &shared.wake).await {
            // Every sender is gone: nothing more can come.
            if batch.is_empty() {
                break;
            }
        }
        if closing {
            while batch.len() < BATCH {
                match pending.rx.try_recv() {
                    Ok(span) => batch.push(span),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
        }
        if batch.is_empty() {
            continue;
        }
        let count = batch.len() as u64;
        let spans = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
        match pending.exporter.export(spans).await {
            Ok(()) => failing = false,
            Err(e) => {
                dropped.increment(count);
                // The collector's fault: a warning when export starts failing.
                if !failing {
                    tracing::warn!(spans = count, error = %e, "span export failed; spans are dropped until it works again");
                }
                failing = true;
            }
        }
    }
}

/// Fills `batch` from the queue: waits for a first span (or a wake-up),
/// then takes more until the batch is full, [`DELAY`] has passed or a
/// wake-up comes. `false` when the queue is closed.
async fn collect(
    rx: &mut mpsc::Receiver<SpanData>,
    batch: &mut Vec<SpanData>,
    wake: &Notify,
) -> bool {
    tokio::select! {
        n = rx.recv_many(batch, BATCH) => if n == 0 { return false },
        _ = wake.notified() => return true,
    }
    let deadline = tokio::time::Instant::now() + DELAY;
    while batch.len() < BATCH {
        tokio::select! {
            n = rx.recv_many(batch, BATCH - batch.len()) => if n == 0 { return false },
            _ = tokio::time::sleep_until(deadline) => break,
            _ = wake.notified() => break,
        }
    }
    true
}
