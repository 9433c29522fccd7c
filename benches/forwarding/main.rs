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

#[path = "../../tests/common/mint.rs"]
#[allow(dead_code)]
mod mint;

mod bed;
mod pure;
mod servers;
mod table;

use criterion::{Criterion, Throughput};
use std::time::{Duration, Instant};

use crate::bed::Bed;
use crate::pure::{bearer_parse, normalize, route_matching};
use crate::servers::{connect, round_trip};
use crate::table::{concurrency_table, TableRun};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The path requested from `direct` and `public`; the gateway's public
/// route is `/bench/**`.
pub(crate) const PATH: &str = "/bench/ping";
/// The paths of the gateway's routes that require a token with scope `read`.
pub(crate) const JWT_PATH: &str = "/jwt/ping";
pub(crate) const OPAQUE_PATH: &str = "/opaque/ping";
/// The issuers; `.invalid`, so nothing could resolve them.
pub(crate) const JWT_ISS: &str = "https://jwt.bench.invalid/";
pub(crate) const OPAQUE_ISS: &str = "https://opaque.bench.invalid/";
/// The one opaque token (no `.`, so not JWT-shaped) the introspection
/// endpoint calls active.
pub(crate) const OPAQUE_TOKEN: &str = "opaque-bench-2f7c9a41d06e4b8f93a15c7e0d2b6f48";
/// The key set file of the JWT issuer, relative to the config's directory.
pub(crate) const JWKS_FILE: &str = "jwks.json";
/// The upstream's whole answer: small, so the figures are per-request cost.
pub(crate) const UPSTREAM_BODY: &[u8] = b"pong\n";
/// The name the concurrency table answers to as a command-line filter.
pub(crate) const TABLE_NAME: &str = "concurrent";

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
