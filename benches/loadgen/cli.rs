//! The command line: the modes and their arguments, and the duration
//! and tag parsers.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "loadgen", about = "tokengate's latency-under-load generator")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Measure one target: closed loop, or open loop with --rate.
    Run(RunArgs),
    /// One request; exit status 1 unless its status is --expect.
    Check(CheckArgs),
    /// Serve the fast upstream (and its introspection endpoint).
    Upstream {
        #[arg(long)]
        listen: SocketAddr,
        /// Also serve gRPC unary calls over h2c here.
        #[arg(long)]
        grpc_listen: Option<SocketAddr>,
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
pub(crate) struct TargetArgs {
    /// http://HOST:PORT/PATH or https://...; HOST resolves once, at start.
    #[arg(long)]
    pub(crate) url: String,
    /// Speak h2 (prior knowledge over plain TCP, ALPN over TLS).
    #[arg(long)]
    pub(crate) h2: bool,
    /// Trust this CA (PEM) for https URLs.
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// Bearer tokens, one a line, used in turn; none: no Authorization.
    #[arg(long, value_name = "FILE")]
    pub(crate) tokens: Option<PathBuf>,
    /// DPoP (RFC 9449): send the one token of --tokens as `DPoP`, each
    /// request with its own proof signed by this P-256 key (PKCS#8 PEM).
    #[arg(long, value_name = "FILE", requires = "tokens")]
    pub(crate) dpop_key: Option<PathBuf>,
    /// Proofs signed before the run, one per request: more than the run
    /// sends, or the gateway refuses the reused ones as replays.
    #[arg(long, default_value_t = 1)]
    pub(crate) dpop_proofs: usize,
    /// gRPC unary calls: `POST` of a small length-prefixed message with
    /// `content-type: application/grpc` and `TE: trailers`; a call
    /// succeeds only with `grpc-status: 0` in the trailers.
    #[arg(long)]
    pub(crate) grpc: bool,
}

#[derive(Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    #[arg(long, default_value_t = 200)]
    pub(crate) expect: u16,
}

#[derive(Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Concurrent connections (closed loop: requests in flight).
    #[arg(long, default_value_t = 64)]
    pub(crate) connections: usize,
    /// The measured window.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Load before the window, not measured (fills pools, warms caches).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub(crate) warmup: Duration,
    /// Open loop at this many requests per second.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// A new connection (TCP + TLS handshake, no resumption) per request.
    #[arg(long)]
    pub(crate) handshakes: bool,
    /// The status a successful answer has; anything else is an error.
    #[arg(long, default_value_t = 200)]
    pub(crate) expect: u16,
    /// Processes whose CPU time in the window is reported as the proxy's.
    #[arg(long, value_delimiter = ',')]
    pub(crate) proxy_pid: Vec<u32>,
    /// Processes sharing the generator's core (the upstream).
    #[arg(long, value_delimiter = ',')]
    pub(crate) side_pid: Vec<u32>,
    /// KEY=VALUE copied into the JSON line (scenario, target, round...).
    #[arg(long, value_parser = parse_tag)]
    pub(crate) tag: Vec<(String, String)>,
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
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

pub(crate) fn parse_tag(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("not KEY=VALUE: {s:?}"))
}
