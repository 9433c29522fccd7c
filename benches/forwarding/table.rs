//! The concurrency table: closed loops of keep-alive connections against
//! each target in interleaved rounds, and the medians and ratios printed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bed::{Bed, Target};
use crate::servers::{connect, round_trip};
use crate::{BoxError, TABLE_NAME};

/// Whether and how big to run the table, from the command line criterion
/// also reads: `cargo bench` passes `--bench`; `cargo test --benches` does
/// not, and gets a smoke run that only proves the code works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableRun {
    Full,
    Smoke,
    Skip,
}

pub(crate) struct Load {
    pub(crate) connections: usize,
    pub(crate) requests: usize,
    pub(crate) warm_up_requests: usize,
    pub(crate) rounds: usize,
    pub(crate) smoke: bool,
}

/// Criterion options that take a value (so the value is not the filter).
pub(crate) const VALUE_FLAGS: &[&str] = &[
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
    pub(crate) fn from_args(args: &[String]) -> TableRun {
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

    pub(crate) fn load(self) -> Option<Load> {
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
pub(crate) struct RunStats {
    pub(crate) per_second: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
}

/// `connections` keep-alive connections (opened before the clock starts)
/// share a counter of `requests` tickets; each sends its next request as soon
/// as the previous answer is read, until the tickets run out.
pub(crate) async fn closed_loop(
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
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The middle value (the upper one of two middles).
pub(crate) fn median<T: Copy + PartialOrd>(values: &[T]) -> T {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

pub(crate) fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One row of the table: `label`, then requests/s, p50 and p99.
pub(crate) fn row(label: &str, s: &RunStats) {
    println!(
        "{label:<26} {:>10.0} {:>10.1} {:>10.1}",
        s.per_second,
        us(s.p50),
        us(s.p99)
    );
}

/// `a` over `b`, column by column.
pub(crate) fn ratio(label: &str, a: &RunStats, b: &RunStats) {
    println!(
        "{label:<26} {:>10.2} {:>10.2} {:>10.2}",
        a.per_second / b.per_second,
        us(a.p50) / us(b.p50),
        us(a.p99) / us(b.p99)
    );
}

pub(crate) fn concurrency_table(bed: &Bed, load: &Load) -> Result<(), BoxError> {
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
