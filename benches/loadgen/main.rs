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
//! cargo bench --bench loadgen -- run --url ... --tokens dpop.txt --dpop-key dpop-key.pem --dpop-proofs 200000
//! cargo bench --bench loadgen -- upstream --listen 127.0.0.1:18001
//! cargo bench --bench loadgen -- keys --dir DIR --pool 50000
//! cargo bench --bench loadgen -- hold --url ... --connections 10000
//! cargo bench --bench loadgen -- check --url ... --expect 401 --tokens bad.txt
//! cargo bench --bench loadgen                                           # smoke run, in-process
//! ```
//!
//! | mode | does |
//! |---|---|
//! | `run` | closed loop (each connection sends its next request when the previous answer is read) or, with `--rate`, open loop: request `i` is due at `start + i / rate` and its latency is counted from that due time whenever every connection was busy then, so a slow server's queueing shows instead of being hidden (coordinated omission). HTTP/1.1 keep-alive or h2, plain or TLS, or `--handshakes`: a new TLS connection per request. One JSON line on stdout: throughput, error counts, HdrHistogram percentiles (p50 ... max) and a percentile curve, and the CPU time the processes named by `--proxy-pid` and `--side-pid` spent in the measured window. With `--dpop-key`, the token goes in `Authorization: DPoP` and every request carries its own ES256 proof, from a pool of `--dpop-proofs` signed before the run (`dpop`). |
//! | `upstream` | the fast upstream: a current-thread hyper HTTP/1.1 server answering `200 pong` to everything, and an RFC 7662 introspection answer (`active`) to `POST /introspect`; with `--grpc-listen`, also an h2c server answering every gRPC unary call with a small message and `grpc-status: 0` |
//! | `keys` | an RS256 and an ES256 key, the JWK Set tokengate reads, the RS256 public key as PEM for HAProxy, signed tokens (one of each kind, a tampered one, a pool of distinct RS256 tokens, one bound to a DPoP key), the DPoP key, an opaque token, and a throwaway CA and `localhost` certificate |
//! | `hold` | opens N keep-alive connections, one request on each, then holds them idle (for resident-memory measurements) |
//! | `check` | one request, exit status 1 unless the answer has the expected status |
//!
//! Everything runs on one current-thread tokio runtime, so the generator
//! uses exactly one core (the driver pins it, and the upstream, with
//! `taskset`). Traffic goes only where `--url` says; the driver only ever
//! points it at 127.0.0.1.

#[path = "../../tests/common/mint.rs"]
#[allow(dead_code)]
mod mint;

mod cli;
mod client;
mod dpop;
mod keys;
mod load;
mod probe;
mod report;
mod upstream;

use crate::cli::{Cli, Command, RunArgs, TargetArgs};
use crate::client::Target;
use crate::keys::keys_command;
use crate::probe::{check_command, hold_command};
use crate::report::{measure, run_command};
use crate::upstream::{serve_upstream, upstream_command};
use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The `iss` of every benchmark token; `.invalid`, so nothing resolves it.
pub(crate) const ISS: &str = "https://idp.bench.invalid/";
/// The `iss` of issuer `i` in the many-issuers config (`{}` is `i`).
pub(crate) const ISS_PATTERN: &str = "https://idp{}.bench.invalid/";
/// Issuers in the many-issuers config; its tokens come from the last one.
pub(crate) const MANY_ISSUERS: usize = 20;
/// The upstream's whole answer: small, so the figures are per-request cost.
pub(crate) const UPSTREAM_BODY: &[u8] = b"pong\n";
/// The introspection endpoint's path on the upstream.
pub(crate) const INTROSPECT_PATH: &str = "/introspect";
/// Token lifetime: longer than any run, and the pool file is reused while
/// it has more than [`KEYS_MIN_LEFT_S`] to go.
pub(crate) const TOKEN_LIFETIME_S: i64 = 12 * 3600;
pub(crate) const KEYS_MIN_LEFT_S: i64 = 2 * 3600;
/// Connections opened at once by `hold` and before a run (listen backlogs
/// are finite; a refused SYN would cost a second-long retransmit).
pub(crate) const CONNECT_BATCH: usize = 256;

fn main() -> ExitCode {
    // `cargo bench` appends `--bench`; `cargo test --benches` nothing.
    let args = std::env::args().filter(|a| a != "--bench");
    let cli = Cli::parse_from(args);
    tokengate::tls::install_default_provider();
    let result = match cli.command {
        Some(Command::Run(args)) => run_command(&args),
        Some(Command::Check(args)) => check_command(&args),
        Some(Command::Upstream {
            listen,
            grpc_listen,
        }) => upstream_command(listen, grpc_listen),
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
        dpop_key: None,
        dpop_proofs: 1,
        grpc: false,
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
