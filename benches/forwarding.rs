//! What the gateway costs on the request path, always next to its baseline.
//!
//! * `forwarding`: one GET round trip on a reused HTTP/1.1 keep-alive
//!   connection, `direct` (client → upstream) and `tokengate` (client →
//!   gateway with a public `auth = "none"` route → upstream), in one group so
//!   the report reads as a ratio.
//! * the concurrency table (printed, not criterion: criterion times single
//!   iterations): a closed loop of 32 keep-alive connections, direct and
//!   through the gateway alternating for three rounds; requests/s, p50 and
//!   p99 as medians over the rounds, and the ratios.
//! * `route_matching`, `normalize_path`, `bearer_parse`: the pure functions
//!   every request runs through.
//!
//! Each role runs on its own tokio runtime, as it would in its own process:
//! the upstream on one worker thread, the gateway on two, and the client on
//! the bench's main thread (a current-thread runtime), so the load generator
//! costs the same in both columns. Servers listen on 127.0.0.1:0 and every
//! fixture (runtimes, servers, connections) is built before measuring.
//! `benches/README.md` says how to run it and how to read the figures.

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Builder as RuntimeBuilder;

use tokengate::auth::bearer::{self, Credential};
use tokengate::config::Config;
use tokengate::route::{Match, Pattern, RouteKey, RouteTable};
use tokengate::runtime::{self, Runtime};
use tokengate::server::{serve, Listeners};
use tokengate::target::normalize_path;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The path requested from both targets; the gateway's route is `/bench/**`.
const PATH: &str = "/bench/ping";
/// The upstream's whole answer: small, so the figures are per-request cost.
const UPSTREAM_BODY: &[u8] = b"pong\n";
/// The name the concurrency table answers to as a command-line filter.
const TABLE_NAME: &str = "concurrent";

fn main() -> Result<(), BoxError> {
    let table = TableRun::from_args(&std::env::args().skip(1).collect::<Vec<_>>());
    let mut c = Criterion::default().configure_from_args();
    let bed = Bed::start()?;
    for target in [&bed.direct, &bed.gateway] {
        // A broken fixture fails here, before anything is measured.
        let mut sender = bed.client.block_on(connect(target.addr))?;
        bed.client.block_on(round_trip(&mut sender, target))?;
    }
    if let Some(load) = table.load() {
        concurrency_table(&bed, &load)?;
    }
    forwarding(&mut c, &bed)?;
    route_matching(&mut c)?;
    normalize(&mut c);
    bearer_parse(&mut c);
    c.final_summary();
    Ok(())
}

// ---------------------------------------------------------------------------
// Fixtures

/// The upstream and the gateway, each on its own runtime, and the client's
/// runtime. Fields drop in order: client connections first.
struct Bed {
    client: tokio::runtime::Runtime,
    direct: Target,
    gateway: Target,
    _upstream_rt: tokio::runtime::Runtime,
    _gateway_rt: tokio::runtime::Runtime,
}

/// Where requests go, and what they are called in the report.
#[derive(Clone)]
struct Target {
    name: &'static str,
    addr: SocketAddr,
    host: HeaderValue,
}

impl Target {
    fn new(name: &'static str, addr: SocketAddr) -> Result<Target, BoxError> {
        Ok(Target {
            name,
            addr,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    fn request(&self) -> Result<Request<Empty<Bytes>>, http::Error> {
        Request::get(PATH)
            .header(HOST, self.host.clone())
            .body(Empty::new())
    }
}

impl Bed {
    fn start() -> Result<Bed, BoxError> {
        let client = RuntimeBuilder::new_current_thread().enable_all().build()?;
        let upstream_rt = RuntimeBuilder::new_multi_thread()
            .worker_threads(1)
            .thread_name("upstream")
            .enable_all()
            .build()?;
        let gateway_rt = RuntimeBuilder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tokengate")
            .enable_all()
            .build()?;

        let listener = upstream_rt.block_on(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))?;
        let upstream_addr = listener.local_addr()?;
        upstream_rt.spawn(upstream(listener));

        let config = Config::from_toml(&gateway_config(upstream_addr), Path::new("."), Vec::new())?;
        // The gateway's pooled upstream clients belong to its runtime.
        let shared = {
            let _enter = gateway_rt.enter();
            runtime::shared(Runtime::build(config)?)
        };
        let listener = gateway_rt.block_on(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))?;
        let gateway_addr = listener.local_addr()?;
        let listeners = Listeners {
            gateway: listener,
            admin: None,
        };
        gateway_rt.spawn(serve(shared, listeners, std::future::pending()));

        Ok(Bed {
            client,
            direct: Target::new("direct", upstream_addr)?,
            gateway: Target::new("tokengate", gateway_addr)?,
            _upstream_rt: upstream_rt,
            _gateway_rt: gateway_rt,
        })
    }
}

/// One public route to the upstream: the gateway's path with no token work.
fn gateway_config(upstream: SocketAddr) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[upstreams.bench]
url = "http://{upstream}"

[[routes]]
path = "/bench/**"
upstream = "bench"
auth = "none"
"#
    )
}

/// A minimal HTTP/1.1 upstream: 200 and [`UPSTREAM_BODY`] to everything.
async fn upstream(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|_req| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(UPSTREAM_BODY))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Opens one keep-alive HTTP/1.1 connection; its driver runs on the caller's
/// runtime.
async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One GET, body read to the end, answer checked.
async fn round_trip(
    sender: &mut SendRequest<Empty<Bytes>>,
    target: &Target,
) -> Result<(), BoxError> {
    sender.ready().await?;
    let resp = sender.send_request(target.request()?).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if status != StatusCode::OK || body != UPSTREAM_BODY {
        return Err(format!("{}: unexpected answer {status} {body:?}", target.name).into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// forwarding: one round trip, direct vs through the gateway

fn forwarding(c: &mut Criterion, bed: &Bed) -> Result<(), BoxError> {
    let mut group = c.benchmark_group("forwarding");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    for target in [&bed.direct, &bed.gateway] {
        let mut sender = bed.client.block_on(connect(target.addr))?;
        group.bench_function(target.name, |b| {
            b.iter_custom(|iters| {
                bed.client.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        if let Err(e) = round_trip(&mut sender, target).await {
                            panic!("{}: request failed: {e}", target.name);
                        }
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// The concurrency table

/// Whether and how big to run the table, from the command line criterion
/// also reads: `cargo bench` passes `--bench`; `cargo test --benches` does
/// not, and gets a smoke run that only proves the code works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TableRun {
    Full,
    Smoke,
    Skip,
}

struct Load {
    connections: usize,
    requests: usize,
    warm_up_requests: usize,
    rounds: usize,
    smoke: bool,
}

/// Criterion options that take a value (so the value is not the filter).
const VALUE_FLAGS: &[&str] = &[
    "-c",
    "--color",
    "--colour",
    "-s",
    "--save-baseline",
    "-b",
    "--baseline",
    "--baseline-lenient",
    "--format",
    "--profile-time",
    "--load-baseline",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--plotting-backend",
    "--output-format",
];

impl TableRun {
    /// Skipped when listing or profiling, and when a filter is given that
    /// is not part of [`TABLE_NAME`] (`cargo bench --bench forwarding --
    /// route_matching` runs only that group; `-- concurrent` only the table).
    fn from_args(args: &[String]) -> TableRun {
        let has = |flag: &str| {
            args.iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
        };
        if has("--list") || has("--ignored") || has("--profile-time") {
            return TableRun::Skip;
        }
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            if VALUE_FLAGS.contains(&arg.as_str()) {
                rest.next();
            } else if !arg.starts_with('-') && !TABLE_NAME.contains(arg.as_str()) {
                return TableRun::Skip;
            }
        }
        if has("--bench") && !has("--test") {
            TableRun::Full
        } else {
            TableRun::Smoke
        }
    }

    fn load(self) -> Option<Load> {
        match self {
            TableRun::Full => Some(Load {
                connections: 32,
                requests: 20_000,
                warm_up_requests: 2_000,
                rounds: 3,
                smoke: false,
            }),
            TableRun::Smoke => Some(Load {
                connections: 32,
                requests: 320,
                warm_up_requests: 0,
                rounds: 1,
                smoke: true,
            }),
            TableRun::Skip => None,
        }
    }
}

/// One closed-loop run's figures.
#[derive(Debug, Clone, Copy)]
struct RunStats {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// `connections` keep-alive connections (opened before the clock starts)
/// share a counter of `requests` tickets; each sends its next request as soon
/// as the previous answer is read, until the tickets run out.
async fn closed_loop(
    target: &Target,
    connections: usize,
    requests: usize,
) -> Result<RunStats, BoxError> {
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        senders.push(connect(target.addr).await?);
    }
    let tickets = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            let tickets = tickets.clone();
            let target = target.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(requests / connections + 1);
                while tickets.fetch_add(1, Ordering::Relaxed) < requests {
                    let sent = Instant::now();
                    round_trip(&mut sender, &target).await?;
                    latencies.push(sent.elapsed());
                }
                Ok::<_, BoxError>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(requests);
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    Ok(RunStats {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
    })
}

/// Nearest-rank percentile of an ascending slice.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The middle value (the upper one of two middles).
fn median<T: Copy + PartialOrd>(values: &[T]) -> T {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn concurrency_table(bed: &Bed, load: &Load) -> Result<(), BoxError> {
    let targets = [&bed.direct, &bed.gateway];
    println!(
        "{TABLE_NAME}: closed loop, {} keep-alive HTTP/1.1 connections, {} GETs per run, {} round(s){}",
        load.connections,
        load.requests,
        load.rounds,
        if load.smoke { " (smoke run: figures meaningless)" } else { "" },
    );
    bed.client.block_on(async {
        // Fills the gateway's upstream pool and wakes every path once.
        for target in targets {
            if load.warm_up_requests > 0 {
                closed_loop(target, load.connections, load.warm_up_requests).await?;
            }
        }
        Ok::<_, BoxError>(())
    })?;

    println!(
        "{:<7} {:<10} {:>10} {:>10} {:>10}",
        "round", "target", "req/s", "p50 µs", "p99 µs"
    );
    let mut runs: [Vec<RunStats>; 2] = [Vec::new(), Vec::new()];
    for round in 1..=load.rounds {
        for (i, target) in targets.iter().enumerate() {
            let stats =
                bed.client
                    .block_on(closed_loop(target, load.connections, load.requests))?;
            println!(
                "{:<7} {:<10} {:>10.0} {:>10.1} {:>10.1}",
                round,
                target.name,
                stats.per_second,
                us(stats.p50),
                us(stats.p99)
            );
            runs[i].push(stats);
        }
    }

    let medians = runs.each_ref().map(|r| RunStats {
        per_second: median(&r.iter().map(|s| s.per_second).collect::<Vec<_>>()),
        p50: median(&r.iter().map(|s| s.p50).collect::<Vec<_>>()),
        p99: median(&r.iter().map(|s| s.p99).collect::<Vec<_>>()),
    });
    for (target, m) in targets.iter().zip(&medians) {
        println!(
            "{:<7} {:<10} {:>10.0} {:>10.1} {:>10.1}",
            "median",
            target.name,
            m.per_second,
            us(m.p50),
            us(m.p99)
        );
    }
    let [direct, gateway] = medians;
    println!(
        "{:<18} {:>10.2} {:>10.2} {:>10.2}",
        "tokengate/direct",
        gateway.per_second / direct.per_second,
        us(gateway.p50) / us(direct.p50),
        us(gateway.p99) / us(direct.p99)
    );
    println!();
    Ok(())
}

// ---------------------------------------------------------------------------
// Pure functions

/// Short runs: these are nanosecond functions, so 1 s + 3 s is plenty.
fn short(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

/// `n` routes of one realistic shape; the request matches only the last one.
fn route_keys(n: usize) -> Result<Vec<RouteKey>, String> {
    (0..n)
        .map(|i| {
            Ok(RouteKey {
                host: None,
                pattern: Pattern::parse(&format!("/svc{i}/v1/*/items/**"))?,
                methods: Some(vec![Method::GET, Method::HEAD]),
            })
        })
        .collect()
}

/// The baseline the trie replaces: every pattern in file order.
fn linear_find(keys: &[RouteKey], path: &str, method: &Method) -> Option<usize> {
    keys.iter().position(|k| {
        k.methods.as_ref().is_none_or(|m| m.contains(method)) && k.pattern.matches(path)
    })
}

fn route_matching(c: &mut Criterion) -> Result<(), BoxError> {
    let mut group = c.benchmark_group("route_matching");
    short(&mut group);
    for n in [10, 1_000] {
        let keys = route_keys(n)?;
        let table = RouteTable::new(keys.clone());
        let path = format!("/svc{}/v1/42/items/7", n - 1);
        if table.find(None, &path, &Method::GET) != Match::Found(n - 1)
            || linear_find(&keys, &path, &Method::GET) != Some(n - 1)
        {
            return Err(
                format!("route_matching fixture: {path} must match route {}", n - 1).into(),
            );
        }
        group.bench_with_input(BenchmarkId::new("trie", n), path.as_str(), |b, path| {
            b.iter(|| table.find(black_box(None), black_box(path), &Method::GET))
        });
        group.bench_with_input(
            BenchmarkId::new("linear_scan", n),
            path.as_str(),
            |b, path| b.iter(|| linear_find(&keys, black_box(path), &Method::GET)),
        );
    }
    group.finish();
    Ok(())
}

fn normalize(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize_path");
    short(&mut group);
    let cases = [
        // Already normal: borrowed, no allocation.
        ("typical", "/api/v1/orders/12345/items"),
        // Unreserved escapes decoded, others upper-cased: allocates.
        ("escaped", "/api/v1/caf%c3%a9/%7Euser/a%20b%2Dc"),
    ];
    for (name, path) in cases {
        assert!(
            normalize_path(path).is_ok(),
            "normalize_path fixture {path}"
        );
        group.bench_with_input(BenchmarkId::from_parameter(name), path, |b, path| {
            b.iter(|| normalize_path(black_box(path)).map(|p| p.len()))
        });
    }
    group.finish();
}

/// A JWT-shaped token (header.payload.signature, about 900 bytes).
fn jwt_like() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    let part = |len: usize, seed: usize| -> String {
        (0..len)
            .map(|i| ALPHABET[(i * 7 + seed) % ALPHABET.len()] as char)
            .collect()
    };
    format!(
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.{}.{}",
        part(520, 3),
        part(342, 11)
    )
}

fn bearer_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("bearer_parse");
    short(&mut group);
    let token = jwt_like();
    let mut headers = HeaderMap::new();
    match HeaderValue::from_str(&format!("Bearer {token}")) {
        Ok(v) => headers.insert(AUTHORIZATION, v),
        Err(e) => panic!("bearer_parse fixture: {e}"),
    };
    let cases = [
        ("header", None),
        // The query is scanned for a competing `access_token`.
        ("header_and_query", Some("page=2&limit=50&sort=created")),
    ];
    for (name, query) in cases {
        assert_eq!(
            bearer::extract(&headers, query, 8_192),
            Ok(Credential::Bearer(token.as_str())),
            "bearer_parse fixture {name}"
        );
        group.bench_with_input(BenchmarkId::from_parameter(name), &query, |b, query| {
            b.iter(|| bearer::extract(black_box(&headers), black_box(*query), 8_192).is_ok())
        });
    }
    group.finish();
}
