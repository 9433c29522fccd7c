//! A load generator for latency under load, and the small servers and
//! fixtures around it. `benches/peers/run.sh` drives it against tokengate,
//! nginx and HAProxy; `docs/benchmarks/methodology.md` says how the figures
//! are made and read.
//!
//! ```sh
//! cargo bench --bench loadgen -- run --url http://127.0.0.1:8080/p --connections 64 --duration 5s
//! cargo bench --bench loadgen -- run --url ... --rate 5000            # open loop
//! cargo bench --bench loadgen -- run --url https://... --tls-ca ca.pem --h2
//! cargo bench --bench loadgen -- run --url https://... --tls-ca ca.pem --handshakes
//! cargo bench --bench loadgen -- upstream --listen 127.0.0.1:18001
//! cargo bench --bench loadgen -- keys --dir DIR --pool 50000
//! cargo bench --bench loadgen -- hold --url ... --connections 10000
//! cargo bench --bench loadgen -- check --url ... --expect 401 --tokens bad.txt
//! cargo bench --bench loadgen                                           # smoke run, in-process
//! ```
//!
//! | mode | does |
//! |---|---|
//! | `run` | closed loop (each connection sends its next request when the previous answer is read) or, with `--rate`, open loop: request `i` is due at `start + i / rate` and its latency is counted from that due time whenever every connection was busy then, so a slow server's queueing shows instead of being hidden (coordinated omission). HTTP/1.1 keep-alive or h2, plain or TLS, or `--handshakes`: a new TLS connection per request. One JSON line on stdout: throughput, error counts, HdrHistogram percentiles (p50 ... max) and a percentile curve, and the CPU time the processes named by `--proxy-pid` and `--side-pid` spent in the measured window. |
//! | `upstream` | the fast upstream: a current-thread hyper HTTP/1.1 server answering `200 pong` to everything, and an RFC 7662 introspection answer (`active`) to `POST /introspect` |
//! | `keys` | an RS256 and an ES256 key, the JWK Set tokengate reads, the RS256 public key as PEM for HAProxy, signed tokens (one of each kind, a tampered one, a pool of distinct RS256 tokens), an opaque token, and a throwaway CA and `localhost` certificate |
//! | `hold` | opens N keep-alive connections, one request on each, then holds them idle (for resident-memory measurements) |
//! | `check` | one request, exit status 1 unless the answer has the expected status |
//!
//! Everything runs on one current-thread tokio runtime, so the generator
//! uses exactly one core (the driver pins it, and the upstream, with
//! `taskset`). Traffic goes only where `--url` says; the driver only ever
//! points it at 127.0.0.1.

#[path = "../tests/common/mint.rs"]
#[allow(dead_code)]
mod mint;

use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use http::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The `iss` of every benchmark token; `.invalid`, so nothing resolves it.
const ISS: &str = "https://idp.bench.invalid/";
/// The `iss` of issuer `i` in the many-issuers config (`{}` is `i`).
const ISS_PATTERN: &str = "https://idp{}.bench.invalid/";
/// Issuers in the many-issuers config; its tokens come from the last one.
const MANY_ISSUERS: usize = 20;
/// The upstream's whole answer: small, so the figures are per-request cost.
const UPSTREAM_BODY: &[u8] = b"pong\n";
/// The introspection endpoint's path on the upstream.
const INTROSPECT_PATH: &str = "/introspect";
/// Token lifetime: longer than any run, and the pool file is reused while
/// it has more than [`KEYS_MIN_LEFT_S`] to go.
const TOKEN_LIFETIME_S: i64 = 12 * 3600;
const KEYS_MIN_LEFT_S: i64 = 2 * 3600;
/// Connections opened at once by `hold` and before a run (listen backlogs
/// are finite; a refused SYN would cost a second-long retransmit).
const CONNECT_BATCH: usize = 256;

#[derive(Parser)]
#[command(name = "loadgen", about = "tokengate's latency-under-load generator")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Measure one target: closed loop, or open loop with --rate.
    Run(RunArgs),
    /// One request; exit status 1 unless its status is --expect.
    Check(CheckArgs),
    /// Serve the fast upstream (and its introspection endpoint).
    Upstream {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Write keys, key sets, tokens and a TLS certificate into --dir.
    Keys {
        #[arg(long)]
        dir: PathBuf,
        /// Distinct RS256 tokens in tokens-rs256-pool.txt.
        #[arg(long, default_value_t = 50_000)]
        pool: usize,
    },
    /// Open --connections keep-alive connections and hold them idle.
    Hold {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// How long to hold them at most (the driver stops it sooner).
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        duration: Duration,
    },
}

/// Where requests go and what they carry.
#[derive(Args, Clone)]
struct TargetArgs {
    /// http://HOST:PORT/PATH or https://...; HOST resolves once, at start.
    #[arg(long)]
    url: String,
    /// Speak h2 (prior knowledge over plain TCP, ALPN over TLS).
    #[arg(long)]
    h2: bool,
    /// Trust this CA (PEM) for https URLs.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Bearer tokens, one a line, used in turn; none: no Authorization.
    #[arg(long, value_name = "FILE")]
    tokens: Option<PathBuf>,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long, default_value_t = 200)]
    expect: u16,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Concurrent connections (closed loop: requests in flight).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// The measured window.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Load before the window, not measured (fills pools, warms caches).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Open loop at this many requests per second.
    #[arg(long)]
    rate: Option<f64>,
    /// A new connection (TCP + TLS handshake, no resumption) per request.
    #[arg(long)]
    handshakes: bool,
    /// The status a successful answer has; anything else is an error.
    #[arg(long, default_value_t = 200)]
    expect: u16,
    /// Processes whose CPU time in the window is reported as the proxy's.
    #[arg(long, value_delimiter = ',')]
    proxy_pid: Vec<u32>,
    /// Processes sharing the generator's core (the upstream).
    #[arg(long, value_delimiter = ',')]
    side_pid: Vec<u32>,
    /// KEY=VALUE copied into the JSON line (scenario, target, round...).
    #[arg(long, value_parser = parse_tag)]
    tag: Vec<(String, String)>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (e.g. 5s, 500ms, 2m)"))?;
    if !(0.0..=86_400.0).contains(&(value * scale)) {
        return Err(format!("duration out of range: {s:?}"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("not KEY=VALUE: {s:?}"))
}

fn main() -> ExitCode {
    // `cargo bench` appends `--bench`; `cargo test --benches` nothing.
    let args = std::env::args().filter(|a| a != "--bench");
    let cli = Cli::parse_from(args);
    tokengate::tls::install_default_provider();
    let result = match cli.command {
        Some(Command::Run(args)) => run_command(&args),
        Some(Command::Check(args)) => check_command(&args),
        Some(Command::Upstream { listen }) => upstream_command(listen),
        Some(Command::Keys { dir, pool }) => keys_command(&dir, pool),
        Some(Command::Hold {
            target,
            connections,
            duration,
        }) => hold_command(&target, connections, duration),
        None => smoke(),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn current_thread() -> Result<tokio::runtime::Runtime, BoxError> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

// ---------------------------------------------------------------------------
// Targets and connections

/// A resolved `--url` with everything a request needs, built once.
struct Target {
    addr: SocketAddr,
    /// The Host header (HTTP/1.1).
    authority: HeaderValue,
    /// Path and query (HTTP/1.1) or the absolute URI (h2).
    request_uri: Uri,
    h2: bool,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// `Bearer ...` values, used in turn.
    tokens: Vec<HeaderValue>,
}

impl Target {
    fn new(args: &TargetArgs, resumption: bool) -> Result<Target, BoxError> {
        let uri: Uri = args.url.parse()?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("{}: the URL must be http or https", args.url).into()),
        };
        let host = uri.host().ok_or("the URL has no host")?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addr = (host.trim_matches(['[', ']']), port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| format!("{host} does not resolve"))?;
        let authority = HeaderValue::from_str(uri.authority().map_or(host, |a| a.as_str()))?;
        let request_uri = if args.h2 {
            uri.clone()
        } else {
            uri.path_and_query()
                .map_or("/", |p| p.as_str())
                .parse::<Uri>()?
        };
        let tls = if https {
            let ca = args
                .tls_ca
                .as_deref()
                .ok_or("an https URL needs --tls-ca")?;
            let alpn: &[u8] = if args.h2 { b"h2" } else { b"http/1.1" };
            let config = client_tls(ca, alpn, resumption)?;
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())?;
            Some((TlsConnector::from(config), name))
        } else {
            None
        };
        let tokens = match &args.tokens {
            Some(path) => read_tokens(path)?,
            None => Vec::new(),
        };
        Ok(Target {
            addr,
            authority,
            request_uri,
            h2: args.h2,
            tls,
            tokens,
        })
    }

    /// A GET with the `n`th token (in turn); `close` asks the server to
    /// close the connection after answering (HTTP/1.1).
    fn request(&self, n: usize, close: bool) -> Request<Empty<Bytes>> {
        let mut req = Request::new(Empty::new());
        *req.uri_mut() = self.request_uri.clone();
        let headers = req.headers_mut();
        if !self.h2 {
            headers.insert(HOST, self.authority.clone());
            if close {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
        }
        if !self.tokens.is_empty() {
            headers.insert(AUTHORIZATION, self.tokens[n % self.tokens.len()].clone());
        }
        req
    }
}

fn read_tokens(path: &Path) -> Result<Vec<HeaderValue>, BoxError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let tokens = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a header value: {e}", path.display()))?;
    if tokens.is_empty() {
        return Err(format!("no token in {}", path.display()).into());
    }
    Ok(tokens)
}

/// A client trusting only `ca`, offering one ALPN protocol and only the
/// X25519 key exchange: nginx and HAProxy (OpenSSL 3.0) have no
/// post-quantum hybrid, and rustls would otherwise pick X25519MLKEM768 with
/// tokengate, so every proxy does the same handshake.
fn client_tls(
    ca: &Path,
    alpn: &[u8],
    resumption: bool,
) -> Result<Arc<rustls::ClientConfig>, BoxError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    if !resumption {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// One client connection, either protocol.
enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl Sender {
    /// Sends `req` and reads the whole answer; the status, or why not.
    async fn round_trip(&mut self, req: Request<Empty<Bytes>>) -> Result<StatusCode, BoxError> {
        let resp: Response<Incoming> = match self {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
        };
        let status = resp.status();
        resp.into_body().collect().await?;
        Ok(status)
    }
}

/// Opens a connection to `target` (TCP, TLS if https, the HTTP handshake);
/// its driver runs as a task on the caller's runtime.
async fn connect(target: &Target) -> Result<Sender, BoxError> {
    let tcp = TcpStream::connect(target.addr).await?;
    tcp.set_nodelay(true)?;
    match &target.tls {
        None => handshake(tcp, target.h2).await,
        Some((connector, name)) => {
            let stream = connector.connect(name.clone(), tcp).await?;
            let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            let wanted: &[u8] = if target.h2 { b"h2" } else { b"http/1.1" };
            if alpn.as_deref().is_some_and(|p| p != wanted) || (target.h2 && alpn.is_none()) {
                return Err("the server did not agree to the ALPN protocol offered".into());
            }
            handshake(stream, target.h2).await
        }
    }
}

async fn handshake<T>(io: T, h2: bool) -> Result<Sender, BoxError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    if h2 {
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        Ok(Sender::H2(sender))
    } else {
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        Ok(Sender::H1(sender))
    }
}

/// Opens `n` connections, at most [`CONNECT_BATCH`] at a time; each one's
/// result, in order.
async fn connect_many(target: &Arc<Target>, n: usize) -> Vec<Result<Sender, BoxError>> {
    let permits = Arc::new(Semaphore::new(CONNECT_BATCH));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (target, permits) = (target.clone(), permits.clone());
            tokio::spawn(async move {
                let _permit = permits.acquire().await?;
                connect(&target).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for task in tasks {
        out.push(task.await.map_err(BoxError::from).and_then(|r| r));
    }
    out
}

// ---------------------------------------------------------------------------
// run: the measurement

/// When the phases begin and end, and the pacing of an open loop.
#[derive(Clone, Copy)]
struct Plan {
    start: Instant,
    /// Measurement starts here (requests due or sent before are warm-up).
    measure: Instant,
    end: Instant,
    /// Open loop: requests per second (request `i` is due at `i / rate`).
    rate: Option<f64>,
}

impl Plan {
    fn due(&self, i: u64) -> Option<Instant> {
        let rate = self.rate?;
        Some(self.start + Duration::from_secs_f64(i as f64 / rate))
    }
}

/// What the workers share: the target, the plan, and two counters.
struct Shared {
    target: Arc<Target>,
    plan: Plan,
    handshakes: bool,
    expect: StatusCode,
    /// Open loop: the next request number (its due time follows from it).
    ticket: AtomicU64,
    /// The next token to use.
    token: AtomicUsize,
}

/// One worker's measurements, merged at the end.
struct Tally {
    latency: Histogram<u64>,
    /// Answers with another status than expected.
    status_errors: u64,
    /// Failed connects, and requests that got no whole answer.
    io_errors: u64,
    /// Open loop: requests that had to wait for a free connection.
    queued: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Result<Tally, BoxError> {
        Ok(Tally {
            // 1 ns to 100 s at three significant digits.
            latency: Histogram::new_with_bounds(1, 100_000_000_000, 3)?,
            status_errors: 0,
            io_errors: 0,
            queued: 0,
            first_error: None,
        })
    }

    fn error(&mut self, what: String) {
        self.io_errors += 1;
        self.first_error.get_or_insert(what);
    }

    fn merge(&mut self, other: Tally) -> Result<(), BoxError> {
        self.latency.add(&other.latency)?;
        self.status_errors += other.status_errors;
        self.io_errors += other.io_errors;
        self.queued += other.queued;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        Ok(())
    }
}

/// One connection's loop: take the next request (closed loop: at once;
/// open loop: the next due time), send it, record it if it belongs to the
/// measured window.
async fn worker(shared: Arc<Shared>, mut conn: Option<Sender>) -> Result<Tally, BoxError> {
    let mut tally = Tally::new()?;
    let plan = shared.plan;
    loop {
        let now = Instant::now();
        // `from`: where this request's latency is counted from.
        let (from, measured) = match plan.rate {
            None => {
                if now >= plan.end {
                    break;
                }
                (now, now >= plan.measure)
            }
            Some(_) => {
                let i = shared.ticket.fetch_add(1, Ordering::Relaxed);
                let Some(due) = plan.due(i) else { break };
                if due >= plan.end {
                    break;
                }
                if now >= due {
                    // Every connection was busy at the due time: the wait
                    // is the server's doing, so it counts.
                    if due >= plan.measure {
                        tally.queued += 1;
                    }
                    (due, due >= plan.measure)
                } else {
                    // Idle until due. tokio's timer wakes up to a
                    // millisecond late; that lateness is the generator's,
                    // so the clock starts at the actual send.
                    tokio::time::sleep_until(due.into()).await;
                    (Instant::now(), due >= plan.measure)
                }
            }
        };
        let sender = match conn.as_mut() {
            Some(sender) => sender,
            None => match connect(&shared.target).await {
                Ok(sender) => conn.insert(sender),
                Err(e) => {
                    if measured {
                        tally.error(format!("connect: {e}"));
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            },
        };
        let n = shared.token.fetch_add(1, Ordering::Relaxed);
        let req = shared.target.request(n, shared.handshakes);
        let result = sender.round_trip(req).await;
        let done = Instant::now();
        match result {
            Ok(status) if status == shared.expect => {
                if measured {
                    let ns = (done - from).as_nanos().max(1) as u64;
                    tally.latency.saturating_record(ns);
                }
            }
            Ok(status) => {
                if measured {
                    tally.status_errors += 1;
                    tally
                        .first_error
                        .get_or_insert_with(|| format!("status {status}"));
                }
            }
            Err(e) => {
                if measured {
                    tally.error(format!("request: {e}"));
                }
                conn = None;
            }
        }
        if shared.handshakes {
            conn = None;
        }
    }
    Ok(tally)
}

/// Nanoseconds of CPU the processes `pids` (all their threads) have used.
/// Threads that have exited are not counted, which is fine for servers
/// whose threads live as long as they do.
fn cpu_ns(pids: &[u32]) -> u64 {
    let mut total = 0;
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// Nanoseconds every core of the machine has spent busy or stolen by the
/// hypervisor (`/proc/stat`: user, nice, system, irq, softirq, steal; in
/// USER_HZ ticks, 100 a second).
fn machine_busy_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| ticks.get(i).copied().unwrap_or(0))
        .sum();
    busy * 10_000_000
}

/// CPU used by the proxy, by the generator and its neighbours (the
/// upstream), and by the whole machine.
#[derive(Clone, Copy, Default)]
struct CpuSample {
    proxy: u64,
    client: u64,
    machine: u64,
}

fn cpu_sample(args: &RunArgs) -> CpuSample {
    CpuSample {
        proxy: cpu_ns(&args.proxy_pid),
        client: cpu_ns(&[std::process::id()]) + cpu_ns(&args.side_pid),
        machine: machine_busy_ns(),
    }
}

/// Percentiles for the latency-percentile curve: 0, 50, 75, 90, ... up to
/// 99.999 (evenly spaced in log(1 / (1 - p))), then the maximum.
fn curve_points() -> Vec<f64> {
    let mut points: Vec<f64> = (0..=20)
        .map(|k| 100.0 * (1.0 - 10f64.powf(-(k as f64) / 4.0)))
        .collect();
    points.push(100.0);
    points
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

fn run_command(args: &RunArgs) -> Result<bool, BoxError> {
    if args.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err("--rate must be positive".into());
    }
    let target = Target::new(&args.target, !args.handshakes)?;
    let rt = current_thread()?;
    let report = rt.block_on(measure(args, target))?;
    println!("{report}");
    let ok = report["requests"].as_u64().unwrap_or(0) > 0;
    Ok(ok)
}

async fn measure(args: &RunArgs, target: Target) -> Result<Value, BoxError> {
    let target = Arc::new(target);
    let mut conns = Vec::with_capacity(args.connections);
    if args.handshakes {
        conns.resize_with(args.connections, || None);
    } else {
        for conn in connect_many(&target, args.connections).await {
            conns.push(Some(
                conn.map_err(|e| format!("cannot open the connections: {e}"))?,
            ));
        }
    }
    let start = Instant::now();
    let plan = Plan {
        start,
        measure: start + args.warmup,
        end: start + args.warmup + args.duration,
        rate: args.rate,
    };
    let shared = Arc::new(Shared {
        target,
        plan,
        handshakes: args.handshakes,
        expect: StatusCode::from_u16(args.expect)?,
        ticket: AtomicU64::new(0),
        token: AtomicUsize::new(0),
    });
    let workers: Vec<_> = conns
        .into_iter()
        .map(|conn| tokio::spawn(worker(shared.clone(), conn)))
        .collect();

    tokio::time::sleep_until(plan.measure.into()).await;
    let (cpu0, t0, tokens0) = (
        cpu_sample(args),
        Instant::now(),
        shared.token.load(Ordering::Relaxed),
    );
    tokio::time::sleep_until(plan.end.into()).await;
    let (cpu1, t1) = (cpu_sample(args), Instant::now());

    let mut tally = Tally::new()?;
    for w in workers {
        tally.merge(w.await??)?;
    }
    let window = (t1 - t0).as_secs_f64();
    let h = &tally.latency;
    let requests = h.len();
    let proxy_cpu = cpu1.proxy.saturating_sub(cpu0.proxy) as f64 / 1e9;
    let client_cpu = cpu1.client.saturating_sub(cpu0.client) as f64 / 1e9;
    // Whatever else ran meanwhile: other processes, or the hypervisor.
    let other_cpu =
        (cpu1.machine.saturating_sub(cpu0.machine) as f64 / 1e9 - proxy_cpu - client_cpu).max(0.0);
    let pool = shared.target.tokens.len();
    let used = shared.token.load(Ordering::Relaxed);
    let tags: serde_json::Map<String, Value> = args
        .tag
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let curve: Vec<Value> = curve_points()
        .into_iter()
        .map(|p| json!([p, us(h.value_at_percentile(p))]))
        .collect();
    let report = json!({
        "tags": tags,
        "url": args.target.url,
        "mode": if args.rate.is_some() { "open" } else { "closed" },
        "rate": args.rate,
        "connections": args.connections,
        "protocol": if args.target.h2 { "h2" } else { "http/1.1" },
        "tls": shared.target.tls.is_some(),
        "handshakes": args.handshakes,
        "window_s": window,
        "requests": requests,
        "rps": requests as f64 / window,
        "status_errors": tally.status_errors,
        "io_errors": tally.io_errors,
        "first_error": tally.first_error,
        "queued": tally.queued,
        "mean_us": h.mean() / 1e3,
        "p50_us": us(h.value_at_quantile(0.50)),
        "p90_us": us(h.value_at_quantile(0.90)),
        "p99_us": us(h.value_at_quantile(0.99)),
        "p999_us": us(h.value_at_quantile(0.999)),
        "max_us": us(h.max()),
        "curve": curve,
        "proxy_cpu_util": proxy_cpu / window,
        "proxy_cpu_us_per_req": if requests > 0 { proxy_cpu * 1e6 / requests as f64 } else { 0.0 },
        "client_cpu_util": client_cpu / window,
        "other_cpu_util": other_cpu / window,
        "tokens": pool,
        "tokens_wrapped": pool > 1 && used > pool,
        "tokens_in_window": used.saturating_sub(tokens0),
    });
    eprintln!(
        "{:>28} {:>9.0} req/s  p50 {:>8.1} µs  p99 {:>8.1} µs  p99.9 {:>8.1} µs  max {:>9.1} µs  errors {}/{}  proxy cpu {:>3.0}%  client cpu {:>3.0}%  other {:>3.0}%",
        args.tag
            .iter()
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join("/"),
        report["rps"].as_f64().unwrap_or(0.0),
        report["p50_us"].as_f64().unwrap_or(0.0),
        report["p99_us"].as_f64().unwrap_or(0.0),
        report["p999_us"].as_f64().unwrap_or(0.0),
        report["max_us"].as_f64().unwrap_or(0.0),
        tally.status_errors,
        tally.io_errors,
        100.0 * proxy_cpu / window,
        100.0 * client_cpu / window,
        100.0 * other_cpu / window,
    );
    Ok(report)
}

// ---------------------------------------------------------------------------
// check and hold

fn check_command(args: &CheckArgs) -> Result<bool, BoxError> {
    let target = Target::new(&args.target, true)?;
    let status = current_thread()?.block_on(async {
        let mut conn = connect(&target).await?;
        conn.round_trip(target.request(0, false)).await
    })?;
    let ok = status.as_u16() == args.expect;
    eprintln!(
        "{}: {status} (expected {}){}",
        args.target.url,
        args.expect,
        if ok { "" } else { " FAILED" }
    );
    Ok(ok)
}

fn hold_command(args: &TargetArgs, n: usize, duration: Duration) -> Result<bool, BoxError> {
    let target = Arc::new(Target::new(args, true)?);
    current_thread()?.block_on(async move {
        let opened = connect_many(&target, n).await;
        let mut held = Vec::with_capacity(n);
        let mut first_error = None;
        // One request on each, one at a time (so the proxy's upstream pool
        // stays at one connection), then every connection sits idle in
        // keep-alive.
        for (i, conn) in opened.into_iter().enumerate() {
            match conn {
                Ok(mut sender) => match sender.round_trip(target.request(i, false)).await {
                    Ok(status) if status.is_success() => held.push(sender),
                    Ok(status) => {
                        first_error.get_or_insert(format!("status {status}"));
                    }
                    Err(e) => {
                        first_error.get_or_insert(e.to_string());
                    }
                },
                Err(e) => {
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        if let Some(e) = &first_error {
            eprintln!(
                "hold: {} of {n} connections failed; first: {e}",
                n - held.len()
            );
        }
        println!("holding {} connections", held.len());
        std::io::stdout().flush()?;
        tokio::time::sleep(duration).await;
        drop(held);
        Ok::<_, BoxError>(())
    })?;
    Ok(true)
}

// ---------------------------------------------------------------------------
// upstream

fn upstream_command(listen: SocketAddr) -> Result<bool, BoxError> {
    current_thread()?.block_on(async move {
        let listener = TcpListener::bind(listen).await?;
        eprintln!("upstream listening on {}", listener.local_addr()?);
        serve_upstream(listener).await;
        Ok::<_, BoxError>(())
    })?;
    Ok(true)
}

/// A minimal HTTP/1.1 keep-alive server: `200 pong` to everything, and an
/// active introspection answer to `POST /introspect`.
async fn serve_upstream(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(upstream_answer))
                .await;
        });
    }
}

async fn upstream_answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() == Method::POST && req.uri().path() == INTROSPECT_PATH {
        // The form is read and ignored: every token is active.
        let _ = req.into_body().collect().await;
        let answer = json!({
            "active": true,
            "iss": ISS,
            "aud": mint::AUD,
            "sub": "alice",
            "client_id": "app-1",
            "scope": "read write",
            "exp": mint::now() + 3_600,
        });
        let mut resp = Response::new(Full::new(Bytes::from(answer.to_string())));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(resp);
    }
    Ok(Response::new(Full::new(Bytes::from_static(UPSTREAM_BODY))))
}

// ---------------------------------------------------------------------------
// keys

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> Result<(), BoxError> {
    let path = dir.join(name);
    std::fs::write(&path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

/// Whether `dir` already holds a key set whose tokens live long enough and
/// a pool at least `pool` long (RSA signing is slow: reuse it).
fn keys_fresh(dir: &Path, pool: usize) -> bool {
    let Ok(stamp) = std::fs::read_to_string(dir.join("stamp.json")) else {
        return false;
    };
    let Ok(stamp) = serde_json::from_str::<Value>(&stamp) else {
        return false;
    };
    stamp["exp"].as_i64().unwrap_or(0) > mint::now() + KEYS_MIN_LEFT_S
        && stamp["pool"].as_u64().unwrap_or(0) >= pool as u64
}

fn keys_command(dir: &Path, pool: usize) -> Result<bool, BoxError> {
    std::fs::create_dir_all(dir)?;
    if keys_fresh(dir, pool) {
        eprintln!("keys: {} is recent enough, kept", dir.display());
        return Ok(true);
    }
    let started = Instant::now();
    let rs = mint::Key::rs256("bench-rs");
    let es = mint::Key::es256("bench-es");
    let exp = mint::now() + TOKEN_LIFETIME_S;
    let claims = |iss: &str| mint::with(&mint::claims(iss, mint::AUD), json!({ "exp": exp }));

    write(
        dir,
        "jwks.json",
        json!({ "keys": [rs.jwk(), es.jwk()] }).to_string(),
    )?;
    write(dir, "rs256.pem", rs.spki_pem())?;
    write(dir, "token-rs256.txt", rs.token(&claims(ISS)) + "\n")?;
    write(dir, "token-es256.txt", es.token(&claims(ISS)) + "\n")?;
    let last_issuer = ISS_PATTERN.replace("{}", &(MANY_ISSUERS - 1).to_string());
    write(
        dir,
        "token-many.txt",
        rs.token(&claims(&last_issuer)) + "\n",
    )?;
    // Signed by another key: a gateway that verifies answers 401.
    let stranger = mint::Key::rsa(1, mint::Alg::RS256, "bench-rs");
    write(
        dir,
        "token-bad.txt",
        rs.jwt(&claims(ISS)).signed_by(&stranger).encode() + "\n",
    )?;
    let opaque: String = (0..43)
        .map(|i| {
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            alphabet[(i * 37 + 11) % alphabet.len()] as char
        })
        .collect();
    write(dir, "token-opaque.txt", format!("opq_{opaque}\n"))?;

    // The pool: distinct tokens (each has its own jti), signed on every core.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunks: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (rs, claims) = (&rs, &claims);
                s.spawn(move || {
                    let mine = pool / threads + usize::from(t < pool % threads);
                    let mut out = String::with_capacity(mine * 700);
                    for _ in 0..mine {
                        out.push_str(&rs.token(&claims(ISS)));
                        out.push('\n');
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    write(dir, "tokens-rs256-pool.txt", chunks.concat())?;
    write_pki(dir)?;
    write(
        dir,
        "keys.env",
        format!(
            "ISS='{ISS}'\nAUD='{}'\nISS_PATTERN='{ISS_PATTERN}'\nMANY_ISSUERS={MANY_ISSUERS}\n",
            mint::AUD
        ),
    )?;
    write(
        dir,
        "stamp.json",
        json!({ "exp": exp, "pool": pool }).to_string(),
    )?;
    eprintln!(
        "keys: wrote {} ({pool} pooled tokens) in {:.1} s",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(true)
}

/// A throwaway CA and a P-256 certificate for `localhost` and 127.0.0.1:
/// `ca.pem`, `server.pem`, `server.key`, and `server-haproxy.pem` (chain
/// and key in one file, as HAProxy's `crt` wants).
fn write_pki(dir: &Path) -> Result<(), BoxError> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tokengate bench CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    write(dir, "ca.pem", ca.pem())?;
    write(dir, "server.pem", cert.pem())?;
    write(dir, "server.key", key.serialize_pem())?;
    write(dir, "server-haproxy.pem", cert.pem() + &key.serialize_pem())?;
    Ok(())
}

// ---------------------------------------------------------------------------
// smoke: no subcommand (`cargo bench` with no filter, `cargo test --benches`)

/// Proves the generator works without any outside process: an in-process
/// upstream, a short closed loop and a short open loop against it.
fn smoke() -> Result<bool, BoxError> {
    let upstream_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = upstream_rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    upstream_rt.spawn(serve_upstream(listener));
    eprintln!("loadgen smoke run against an in-process upstream at {addr} (figures meaningless)");
    let target = TargetArgs {
        url: format!("http://{addr}/smoke"),
        h2: false,
        tls_ca: None,
        tokens: None,
    };
    for rate in [None, Some(500.0)] {
        let args = RunArgs {
            target: target.clone(),
            connections: 4,
            duration: Duration::from_millis(300),
            warmup: Duration::from_millis(50),
            rate,
            handshakes: false,
            expect: 200,
            proxy_pid: Vec::new(),
            side_pid: Vec::new(),
            tag: vec![(
                "smoke".into(),
                if rate.is_some() { "open" } else { "closed" }.into(),
            )],
        };
        let report = current_thread()?.block_on(measure(&args, Target::new(&target, true)?))?;
        let errors = report["status_errors"].as_u64().unwrap_or(1)
            + report["io_errors"].as_u64().unwrap_or(1);
        if report["requests"].as_u64().unwrap_or(0) == 0 || errors > 0 {
            return Err(format!("smoke run failed: {report}").into());
        }
    }
    Ok(true)
}
