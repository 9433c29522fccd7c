//! `run`: opening the connections, running the workers, and the JSON
//! line: throughput, errors, latency percentiles and the curve, and the
//! CPU time of the measured processes.

use http::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::cli::RunArgs;
use crate::client::{connect_many, Target};
use crate::load::{worker, Plan, Shared, Tally};
use crate::{current_thread, BoxError};

/// Nanoseconds of CPU the processes `pids` (all their threads) have used.
/// Threads that have exited are not counted, which is fine for servers
/// whose threads live as long as they do.
pub(crate) fn cpu_ns(pids: &[u32]) -> u64 {
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
pub(crate) fn machine_busy_ns() -> u64 {
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
pub(crate) struct CpuSample {
    pub(crate) proxy: u64,
    pub(crate) client: u64,
    pub(crate) machine: u64,
}

pub(crate) fn cpu_sample(args: &RunArgs) -> CpuSample {
    CpuSample {
        proxy: cpu_ns(&args.proxy_pid),
        client: cpu_ns(&[std::process::id()]) + cpu_ns(&args.side_pid),
        machine: machine_busy_ns(),
    }
}

/// Percentiles for the latency-percentile curve: 0, 50, 75, 90, ... up to
/// 99.999 (evenly spaced in log(1 / (1 - p))), then the maximum.
pub(crate) fn curve_points() -> Vec<f64> {
    let mut points: Vec<f64> = (0..=20)
        .map(|k| 100.0 * (1.0 - 10f64.powf(-(k as f64) / 4.0)))
        .collect();
    points.push(100.0);
    points
}

pub(crate) fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

pub(crate) fn run_command(args: &RunArgs) -> Result<bool, BoxError> {
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

pub(crate) async fn measure(args: &RunArgs, target: Target) -> Result<Value, BoxError> {
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
    let proofs = shared.target.proofs.len();
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
        "dpop_proofs": proofs,
        "proofs_wrapped": proofs > 0 && used > proofs,
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
