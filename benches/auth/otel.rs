//! `otel/*`: what tracing adds to a request with a cached JWT.
//!
//! Each iteration is the part of a request tracing touches, around the
//! cached RS256 verification of `verify/cached`: the request's span begun
//! from its headers, verification run inside it, the upstream call's span
//! and `traceparent` formatted, and the server span finished with its
//! attributes. `auth_only` is the verification alone, `export_off` adds
//! tracing without `otlp_endpoint` (ids and the header), `export_on` adds
//! export at `sample_ratio = 1.0` to an OTLP sink on 127.0.0.1:0 (every
//! request sampled: two spans each). Export runs on a runtime of its own,
//! as on the gateway's other workers, so criterion's figures are the
//! request path's share.
//!
//! The criterion loop makes spans far faster than one export task sends
//! them (the queue overflows and the export task keeps a core busy), so
//! `export_on` there is the request path's share under that contention.
//! After criterion, a printed line gives the whole process's CPU per
//! request (from `/proc/self/stat`, so the export task's conversion,
//! encoding and POSTs are in it) over a fixed number of requests with
//! export off and on; with export on the loop waits, parked, for each
//! batch's POST every 256 requests, so no span is dropped (the line says
//! how many were) and every span's export is counted.

use criterion::{Criterion, Throughput};
use http::{HeaderMap, Method};
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{config_text, route_issuers, BoxError};
use tokengate::config::Config;
use tokengate::runtime::Runtime;

/// Requests per variant in the printed CPU line.
const CPU_REQUESTS: u32 = 200_000;
/// Requests between waits for the export: two spans each, one batch.
const PACE: u32 = 256;

/// The gateways with and without export, and the sink's runtime (which
/// also runs the export task).
pub(crate) struct OtelBed {
    off: Runtime,
    on: Runtime,
    sink_rt: tokio::runtime::Runtime,
    posts: Arc<AtomicUsize>,
    /// Notified after each POST the sink answered.
    posted: Arc<tokio::sync::Notify>,
}

impl OtelBed {
    /// Builds both runtimes from the key set in `dir`; starts the sink.
    pub(crate) fn new(
        dir: &std::path::Path,
        rt: &tokio::runtime::Runtime,
    ) -> Result<OtelBed, BoxError> {
        let sink_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let posts = Arc::new(AtomicUsize::new(0));
        let posted = Arc::new(tokio::sync::Notify::new());
        let listener = sink_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let sink = listener.local_addr()?;
        sink_rt.spawn(serve_sink(listener, posts.clone(), posted.clone()));
        let build = |tracing: &str| -> Result<Runtime, BoxError> {
            let text = format!("{}\n[tracing]\n{tracing}\n", config_text(None));
            let config = Config::from_toml(&text, dir, Vec::new())?;
            Ok(Runtime::build(config)?)
        };
        let off = {
            let _enter = rt.enter();
            build("")?
        };
        let on = {
            let _enter = sink_rt.enter();
            let on = build(&endpoint(sink))?;
            on.tracing.start();
            on
        };
        Ok(OtelBed {
            off,
            on,
            sink_rt,
            posts,
            posted,
        })
    }
}

fn endpoint(sink: SocketAddr) -> String {
    format!("otlp_endpoint = \"http://{sink}\"\nsample_ratio = 1.0")
}

/// One traced request's tracing work around a cached verification.
async fn traced(rt: &Runtime, headers: &HeaderMap, token: &str, issuers: &[usize]) -> bool {
    let span = rt.tracing.begin(headers);
    let verified = span
        .instrument(rt.auth.authenticate(token, issuers))
        .await
        .is_ok();
    let (upstream, call) = span.upstream_call("bench");
    drop(call);
    span.finish(Some("/bench/**"), &Method::GET, 200, "forwarded");
    black_box(upstream);
    verified
}

pub(crate) fn otel(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    bed: &OtelBed,
    token: &str,
) -> Result<(), BoxError> {
    let issuers = route_issuers(&bed.off)?;
    let headers = HeaderMap::new();
    // Fills both identity caches; a broken fixture fails here.
    for gw in [&bed.off, &bed.on] {
        if !rt.block_on(traced(gw, &headers, token, &issuers)) {
            return Err("otel fixture: the token does not verify".into());
        }
    }
    let dropped_before = dropped();
    let mut group = c.benchmark_group("otel");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("cached_jwt/auth_only", |b| {
        b.to_async(rt).iter(|| async {
            bed.off
                .auth
                .authenticate(black_box(token), &issuers)
                .await
                .is_ok()
        })
    });
    for (name, gw) in [("export_off", &bed.off), ("export_on", &bed.on)] {
        group.bench_function(format!("cached_jwt/{name}"), |b| {
            b.to_async(rt)
                .iter(|| traced(gw, black_box(&headers), token, &issuers))
        });
    }
    group.finish();
    println!(
        "otel: {} spans dropped during the criterion runs",
        dropped() - dropped_before
    );
    // Skipped when the command line filters for other benchmarks only.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if filters
        .iter()
        .all(|f| "otel/process_cpu".contains(f.as_str()))
    {
        cpu_line(rt, bed, token, &issuers, &headers);
    }
    Ok(())
}

/// Prints the process CPU per request with export off and on.
fn cpu_line(
    rt: &tokio::runtime::Runtime,
    bed: &OtelBed,
    token: &str,
    issuers: &[usize],
    headers: &HeaderMap,
) {
    // Spans left from the criterion runs go first.
    settle(bed);
    let dropped_before = dropped();
    let posts_before = bed.posts.load(Ordering::Relaxed);
    let mut per_request = Vec::new();
    for gw in [&bed.off, &bed.on] {
        let (cpu0, wall0) = (process_cpu(), Instant::now());
        let exporting = std::ptr::eq(gw, &bed.on);
        rt.block_on(async {
            for _ in 0..CPU_REQUESTS / PACE {
                let posts = bed.posts.load(Ordering::Relaxed);
                for _ in 0..PACE {
                    traced(gw, headers, token, issuers).await;
                }
                if exporting {
                    // One full batch is queued: wait (parked, no CPU) for
                    // its POST, so the queue never overflows and every
                    // span's export is in the figure.
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        loop {
                            // Made before the check, so a POST between the
                            // two still wakes it.
                            let next = bed.posted.notified();
                            if bed.posts.load(Ordering::Relaxed) != posts {
                                break;
                            }
                            next.await;
                        }
                    })
                    .await;
                }
            }
        });
        if exporting {
            // The export task sends what is queued and stops, so all of
            // its CPU is counted (the last use of `on`).
            bed.sink_rt
                .block_on(bed.on.tracing.shutdown(Duration::from_secs(30)));
        }
        let wall = wall0.elapsed() / CPU_REQUESTS;
        per_request.push(((process_cpu() - cpu0) / CPU_REQUESTS, wall));
    }
    let ((off, off_wall), (on, on_wall)) = (per_request[0], per_request[1]);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "otel/process_cpu: export off {:.2} µs, on {:.2} µs, added {:.2} µs CPU per request \
         (wall {:.2} / {:.2} µs; {} requests each; {} export POSTs; {} spans dropped)",
        us(off),
        us(on),
        us(on) - us(off),
        us(off_wall),
        us(on_wall),
        CPU_REQUESTS,
        bed.posts.load(Ordering::Relaxed) - posts_before,
        dropped() - dropped_before,
    );
}

/// Waits until the sink has had no POST for a second (bounded: 30 s).
fn settle(bed: &OtelBed) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let posts = bed.posts.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_secs(1));
        if bed.posts.load(Ordering::Relaxed) == posts {
            return;
        }
    }
}

/// utime + stime of the whole process, from `/proc/self/stat` (Linux;
/// zero elsewhere), in clock ticks of 10 ms.
fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// `tokengate_trace_spans_dropped_total` from the metrics page.
fn dropped() -> u64 {
    tokengate::telemetry::render()
        .lines()
        .find_map(|l| l.strip_prefix("tokengate_trace_spans_dropped_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Answers every request 200 with an empty protobuf body and counts them.
async fn serve_sink(
    listener: tokio::net::TcpListener,
    posts: Arc<AtomicUsize>,
    posted: Arc<tokio::sync::Notify>,
) {
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (posts, posted) = (posts.clone(), posted.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let (posts, posted) = (posts.clone(), posted.clone());
                async move {
                    let _ = req.into_body().collect().await;
                    posts.fetch_add(1, Ordering::Relaxed);
                    posted.notify_waiters();
                    let mut resp = http::Response::new(Full::new(bytes::Bytes::new()));
                    resp.headers_mut().insert(
                        "content-type",
                        http::HeaderValue::from_static("application/x-protobuf"),
                    );
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
