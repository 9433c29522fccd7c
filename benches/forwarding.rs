//! What the gateway costs on the request path, always next to its baseline.
//!
//! * `forwarding`: one GET round trip on a reused HTTP/1.1 keep-alive
//!   connection, `direct` (client → upstream) and `tokengate` (client →
//!   gateway with a public `auth = "none"` route → upstream), in one group so
//!   the report reads as a ratio.
//! * the concurrency table (printed, not criterion: criterion times single
//!   iterations): a closed loop of 32 keep-alive connections against four
//!   targets in five interleaved rounds: `direct`; through the gateway on a
//!   `public` route; `jwt_cached_rs256`, a route requiring a scope, with one
//!   valid RS256 token reused (verified once, then from the identity cache);
//!   and `opaque_cached`, the same with an opaque token the gateway
//!   introspected once (RFC 7662) and then answers from its cache.
//!   Requests/s, p50 and p99 as medians over the rounds, and the ratios
//!   `public/direct`, `jwt_cached/public` and `opaque_cached/jwt_cached`.
//! * `route_matching`, `normalize_path`, `bearer_parse`: the pure functions
//!   every request runs through. Token verification itself is measured in
//!   `benches/auth.rs`.
//!
//! Each role runs on its own tokio runtime, as it would in its own process:
//! the upstream (and the introspection endpoint, idle after its one call)
//! on one worker thread, the gateway on two, and the client on the bench's
//! main thread (a current-thread runtime), so the load generator costs the
//! same in every column. Servers listen on 127.0.0.1:0 and every fixture
//! (runtimes, servers, keys, tokens, connections) is built before measuring.
//! `benches/README.md` says how to run it and how to read the figures.

#[path = "../tests/common/mint.rs"]
#[allow(dead_code)]
mod mint;

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Builder as RuntimeBuilder;

use mint::{claims, now, with, Key, AUD};

use tokengate::auth::bearer::{self, Credential};
use tokengate::config::Config;
use tokengate::gateway::{serve, Listeners};
use tokengate::route::{Match, Pattern, RouteKey, RouteTable};
use tokengate::runtime::{self, Runtime};
use tokengate::target::normalize_path;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The path requested from `direct` and `public`; the gateway's public
/// route is `/bench/**`.
const PATH: &str = "/bench/ping";
/// The paths of the gateway's routes that require a token with scope `read`.
const JWT_PATH: &str = "/jwt/ping";
const OPAQUE_PATH: &str = "/opaque/ping";
/// The issuers; `.invalid`, so nothing could resolve them.
const JWT_ISS: &str = "https://jwt.bench.invalid/";
const OPAQUE_ISS: &str = "https://opaque.bench.invalid/";
/// The one opaque token (no `.`, so not JWT-shaped) the introspection
/// endpoint calls active.
const OPAQUE_TOKEN: &str = "opaque-bench-2f7c9a41d06e4b8f93a15c7e0d2b6f48";
/// The key set file of the JWT issuer, relative to the config's directory.
const JWKS_FILE: &str = "jwks.json";
/// The upstream's whole answer: small, so the figures are per-request cost.
const UPSTREAM_BODY: &[u8] = b"pong\n";
/// The name the concurrency table answers to as a command-line filter.
const TABLE_NAME: &str = "concurrent";

fn main() -> Result<(), BoxError> {
    let table = TableRun::from_args(&std::env::args().skip(1).collect::<Vec<_>>());
    let mut c = Criterion::default().configure_from_args();
    tokengate::tls::install_default_provider();
    let bed = Bed::start()?;
    // A broken fixture fails here, before anything is measured. These first
    // requests are also what fill the identity and introspection caches.
    bed.client.block_on(bed.check())?;
    if let Some(load) = table.load() {
        concurrency_table(&bed, &load)?;
        bed.check_introspections()?;
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
    public: Target,
    jwt: Target,
    opaque: Target,
    /// Calls the introspection endpoint has answered.
    introspections: Arc<AtomicUsize>,
    _upstream_rt: tokio::runtime::Runtime,
    _gateway_rt: tokio::runtime::Runtime,
}

/// Where requests go, with which credential, and what they are called in
/// the report.
#[derive(Clone)]
struct Target {
    name: &'static str,
    addr: SocketAddr,
    host: HeaderValue,
    path: &'static str,
    /// The `Authorization` value every request carries, if any.
    authorization: Option<HeaderValue>,
}

impl Target {
    fn new(name: &'static str, addr: SocketAddr, path: &'static str) -> Result<Target, BoxError> {
        Ok(Target {
            name,
            addr,
            host: HeaderValue::from_str(&addr.to_string())?,
            path,
            authorization: None,
        })
    }

    fn with_bearer(mut self, token: &str) -> Result<Target, BoxError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))?;
        value.set_sensitive(true);
        self.authorization = Some(value);
        Ok(self)
    }

    fn request(&self) -> Result<Request<Empty<Bytes>>, http::Error> {
        let mut req = Request::get(self.path).header(HOST, self.host.clone());
        if let Some(value) = &self.authorization {
            req = req.header(AUTHORIZATION, value.clone());
        }
        req.body(Empty::new())
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
        let introspections = Arc::new(AtomicUsize::new(0));
        let listener = upstream_rt.block_on(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))?;
        let introspect_addr = listener.local_addr()?;
        upstream_rt.spawn(introspection_endpoint(listener, introspections.clone()));

        // The JWT issuer's key set, in a file the gateway reads at build.
        let key = Key::rs256("bench-rs256");
        let keys_dir = tempfile::tempdir()?;
        let set = serde_json::json!({ "keys": [key.jwk()] });
        std::fs::write(keys_dir.path().join(JWKS_FILE), set.to_string())?;
        // Valid for an hour: far longer than the bench runs.
        let jwt = key.token(&with(
            &claims(JWT_ISS, AUD),
            serde_json::json!({ "exp": now() + 3_600 }),
        ));

        let config = Config::from_toml(
            &gateway_config(upstream_addr, introspect_addr),
            keys_dir.path(),
            Vec::new(),
        )?;
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
            direct: Target::new("direct", upstream_addr, PATH)?,
            public: Target::new("public", gateway_addr, PATH)?,
            jwt: Target::new("jwt_cached_rs256", gateway_addr, JWT_PATH)?.with_bearer(&jwt)?,
            opaque: Target::new("opaque_cached", gateway_addr, OPAQUE_PATH)?
                .with_bearer(OPAQUE_TOKEN)?,
            introspections,
            _upstream_rt: upstream_rt,
            _gateway_rt: gateway_rt,
        })
    }

    /// Every target of the concurrency table, baseline first.
    fn targets(&self) -> [&Target; 4] {
        [&self.direct, &self.public, &self.jwt, &self.opaque]
    }

    /// One request per target answers 200 with the upstream's body; on the
    /// routes that require a token, one without it answers 401 (the
    /// enforcement being measured is on); one introspection call so far.
    async fn check(&self) -> Result<(), BoxError> {
        for target in self.targets() {
            let mut sender = connect(target.addr).await?;
            round_trip(&mut sender, target).await?;
            if target.authorization.is_some() {
                let anonymous = Target {
                    authorization: None,
                    ..target.clone()
                };
                sender.ready().await?;
                let status = sender.send_request(anonymous.request()?).await?.status();
                if status != StatusCode::UNAUTHORIZED {
                    return Err(
                        format!("{}: {status} without a token, not 401", target.name).into(),
                    );
                }
            }
        }
        self.check_introspections()
    }

    /// `opaque_cached` is what its name says: one introspection call in all.
    fn check_introspections(&self) -> Result<(), BoxError> {
        match self.introspections.load(Ordering::Relaxed) {
            1 => Ok(()),
            n => Err(format!("opaque_cached: {n} introspection calls, expected 1").into()),
        }
    }
}

/// A public route, a JWT route and an opaque-token route, all to the one
/// upstream. The JWT issuer's keys are in [`JWKS_FILE`]; the opaque issuer
/// has only introspection, its answers cached for an hour so that one call
/// serves the whole run (the default `cache_ttl_s` is 60 s).
fn gateway_config(upstream: SocketAddr, introspect: SocketAddr) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[issuers.jwt]
issuer = "{JWT_ISS}"
jwks_file = "{JWKS_FILE}"
audiences = ["{AUD}"]

[issuers.opaque]
issuer = "{OPAQUE_ISS}"
audiences = ["{AUD}"]

[issuers.opaque.introspection]
endpoint = "http://{introspect}/introspect"
client_id = "tokengate-bench"
client_secret = "bench-secret"
cache_ttl_s = 3600

[upstreams.bench]
url = "http://{upstream}"

[[routes]]
path = "/bench/**"
upstream = "bench"
auth = "none"

[[routes]]
path = "/jwt/**"
upstream = "bench"
issuers = ["jwt"]
scopes = ["read"]

[[routes]]
path = "/opaque/**"
upstream = "bench"
issuers = ["opaque"]
scopes = ["read"]
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

/// A minimal RFC 7662 endpoint on [`introspect`]; counts calls.
async fn introspection_endpoint(listener: TcpListener, calls: Arc<AtomicUsize>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let calls = calls.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                calls.fetch_add(1, Ordering::Relaxed);
                async move { Ok::<_, Infallible>(introspect(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// [`OPAQUE_TOKEN`] is active for an hour with the same `scope`, `sub` and
/// `client_id` as the JWT (so both routes forward the same identity
/// headers); any other token is inactive.
async fn introspect(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let wanted = format!("token={OPAQUE_TOKEN}&");
    let active = match req.into_body().collect().await {
        Ok(body) => body.to_bytes().starts_with(wanted.as_bytes()),
        Err(_) => false,
    };
    let answer = if active {
        serde_json::json!({
            "active": true,
            "scope": "read write",
            "exp": now() + 3_600,
            "sub": "alice",
            "client_id": "app-1",
        })
    } else {
        serde_json::json!({ "active": false })
    };
    let mut resp = Response::new(Full::new(Bytes::from(answer.to_string())));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
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
    // The ids predate the table's scenario names; kept so saved baselines
    // still compare.
    for (id, target) in [("direct", &bed.direct), ("tokengate", &bed.public)] {
        let mut sender = bed.client.block_on(connect(target.addr))?;
        group.bench_function(id, |b| {
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
                rounds: 5,
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

/// One row of the table: `label`, then requests/s, p50 and p99.
fn row(label: &str, s: &RunStats) {
    println!(
        "{label:<26} {:>10.0} {:>10.1} {:>10.1}",
        s.per_second,
        us(s.p50),
        us(s.p99)
    );
}

/// `a` over `b`, column by column.
fn ratio(label: &str, a: &RunStats, b: &RunStats) {
    println!(
        "{label:<26} {:>10.2} {:>10.2} {:>10.2}",
        a.per_second / b.per_second,
        us(a.p50) / us(b.p50),
        us(a.p99) / us(b.p99)
    );
}

fn concurrency_table(bed: &Bed, load: &Load) -> Result<(), BoxError> {
    let targets = bed.targets();
    println!(
        "{TABLE_NAME}: closed loop, {} keep-alive HTTP/1.1 connections, {} GETs per run, {} round(s), each starting one target later{}",
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
        "{:<26} {:>10} {:>10} {:>10}",
        "round target", "req/s", "p50 µs", "p99 µs"
    );
    let mut runs: [Vec<RunStats>; 4] = Default::default();
    for round in 0..load.rounds {
        // Rotating the order keeps any one target from always running right
        // after another (a warm pool, a busy core).
        let mut stats: [Option<RunStats>; 4] = [None; 4];
        for k in 0..targets.len() {
            let i = (round + k) % targets.len();
            stats[i] = Some(bed.client.block_on(closed_loop(
                targets[i],
                load.connections,
                load.requests,
            ))?);
        }
        for (i, s) in stats.into_iter().enumerate() {
            let s = s.ok_or("concurrency table: a target was not run")?;
            row(&format!("{:<7} {}", round + 1, targets[i].name), &s);
            runs[i].push(s);
        }
    }

    let medians = runs.each_ref().map(|r| RunStats {
        per_second: median(&r.iter().map(|s| s.per_second).collect::<Vec<_>>()),
        p50: median(&r.iter().map(|s| s.p50).collect::<Vec<_>>()),
        p99: median(&r.iter().map(|s| s.p99).collect::<Vec<_>>()),
    });
    for (target, m) in targets.iter().zip(&medians) {
        row(&format!("{:<7} {}", "median", target.name), m);
    }
    let [direct, public, jwt, opaque] = medians;
    ratio("public/direct", &public, &direct);
    ratio("jwt_cached/public", &jwt, &public);
    ratio("opaque_cached/jwt_cached", &opaque, &jwt);
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
                case_sensitive: true,
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
