#!/usr/bin/env python3
"""One wrk run of benches/peers/run.sh, as one JSON line in the shape the
load generator (`loadgen run`) writes: throughput, latency percentiles and
curve, errors, and the CPU time of the proxy, of the client side and of
everything else on the machine over the run. Standard library only.

wrk has no warm-up of its own: a first, unmeasured wrk run (--warmup
seconds, whole seconds as wrk takes them) fills pools and caches, then the
measured run goes. wrk cannot read other processes' CPU, so this script
samples it around the measured run:
- the proxy: the sum over the --proxy-pid processes and all their threads
  of /proc/PID/task/TID/schedstat (nanoseconds on a CPU), as loadgen does;
- the client side: wrk's own CPU (its rusage, from wait4) plus the
  --side-pid processes (the upstream on the same core);
- the machine: busy and stolen time from /proc/stat, minus both.

Errors (socket errors, answers outside 2xx/3xx) come from wrk's text
output (--latency). The request count, the run's duration as wrk timed it,
the latency percentiles and the curve come from wrk's own histogram through
a `done()` hook, which prints them as exact microseconds where the text
rounds them (the hook defines no `request` or `response` function, so wrk
keeps its static, pre-formatted request and its per-request path is
unchanged). The text's Requests/sec and 50/75/90/99 % figures are kept in
the line, under "wrk".
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time

# The percentiles of loadgen's curve: 0, 43.8, 68.4, 82.2, 90, ... 99.999
# (evenly spaced in log(1 / (1 - p))), then the maximum.
CURVE = [100.0 * (1.0 - 10 ** (-k / 4.0)) for k in range(21)] + [100.0]

# The percentiles asked of wrk's histogram: the curve's (but 100, which
# wrk's percentile() does not define: the maximum stands for it) and the
# report's columns.
POINTS = sorted(set(round(p, 6) for p in CURVE[:-1]) | {50.0, 75.0, 90.0, 99.0, 99.9})

# wrk's `done()` hook: one line, `WRK_HISTOGRAM {...}`, with the latency
# (µs) at each of POINTS, the maximum and mean, the requests and the
# duration (µs).
HOOK = """
local points = {%s}
done = function(summary, latency, requests)
  local parts = {}
  for _, p in ipairs(points) do
    parts[#parts + 1] = string.format("[%%.10g,%%d]", p, latency:percentile(p))
  end
  io.write(string.format('WRK_HISTOGRAM {"at":[%%s],"max_us":%%d,"mean_us":%%.3f,' ..
    '"requests":%%d,"duration_us":%%d}\\n', table.concat(parts, ","), latency.max,
    latency.mean, summary.requests, summary.duration))
end
""" % ", ".join(f"{p:.10g}" for p in POINTS)

UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def cpu_ns(pids):
    """Nanoseconds on a CPU of the processes `pids`, all their threads."""
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


def machine_busy_ns():
    """Nanoseconds every core has spent busy or stolen (/proc/stat: user,
    nice, system, irq, softirq, steal; USER_HZ ticks, 100 a second)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                ticks = [int(v) for v in line.split()[1:]]
                return sum(ticks[i] for i in (0, 1, 2, 5, 6, 7) if i < len(ticks)) * 10_000_000
    return 0


def pid_list(text):
    return [int(p) for p in text.split(",") if p.strip()] if text else []


def parse_text(out):
    """What wrk prints: requests/sec, the --latency distribution (µs),
    requests, socket errors and non-2xx/3xx answers."""
    text = {"latency_distribution_us": {}}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if not m:
        raise ValueError("no Requests/sec line in wrk's output")
    text["requests_per_s"] = float(m.group(1))
    for pct, value, unit in re.findall(r"^\s+(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M):
        text["latency_distribution_us"][pct] = float(value) * UNITS_US[unit]
    m = re.search(r"^\s+(\d+) requests in ([\d.]+)(us|ms|s|m|h)", out, re.M)
    text["requests"] = int(m.group(1)) if m else 0
    text["duration_us"] = float(m.group(2)) * UNITS_US[m.group(3)] if m else 0.0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    text["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                     map(int, m.groups()))) if m else {}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    text["non_2xx_3xx"] = int(m.group(1)) if m else 0
    return text


def wrk_command(args, seconds, script):
    cmd = ["taskset", "-c", args.cpu, args.wrk, "-t1", f"-c{args.connections}", f"-d{seconds}s",
           "--latency", "-H", f"Authorization: Bearer {args.token}"]
    if script:
        cmd += ["-s", script]
    return cmd + [args.url]


def run(args):
    seconds = max(1, math.ceil(args.duration))
    warmup = math.ceil(args.warmup) if args.warmup > 0 else 0
    proxy, side = pid_list(args.proxy_pid), pid_list(args.side_pid)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(HOOK)
        script = f.name
    try:
        if warmup:
            subprocess.run(wrk_command(args, warmup, None), check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with tempfile.TemporaryFile("w+") as out:
            p0, s0, m0, t0 = cpu_ns(proxy), cpu_ns(side), machine_busy_ns(), time.monotonic()
            child = subprocess.Popen(wrk_command(args, seconds, script), stdout=out,
                                     stderr=subprocess.STDOUT, text=True)
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
            p1, s1, m1, t1 = cpu_ns(proxy), cpu_ns(side), machine_busy_ns(), time.monotonic()
            out.seek(0)
            output = out.read()
    finally:
        os.unlink(script)
    if child.returncode != 0:
        raise RuntimeError(f"wrk exited with {child.returncode}: {output.strip()}")
    m = re.search(r"^WRK_HISTOGRAM (\{.*\})$", output, re.M)
    if not m:
        raise ValueError(f"wrk printed no histogram (is its Lua support missing?): {output.strip()}")
    hist = json.loads(m.group(1))
    text = parse_text(output)

    elapsed = t1 - t0
    window = hist["duration_us"] / 1e6
    status_errors = text["non_2xx_3xx"]
    io_errors = sum(text["socket_errors"].values())
    ok = max(hist["requests"] - status_errors, 0)
    proxy_cpu = (p1 - p0) / 1e9
    client_cpu = usage.ru_utime + usage.ru_stime + (s1 - s0) / 1e9
    other_cpu = max((m1 - m0) / 1e9 - proxy_cpu - client_cpu, 0.0)
    at = {round(p, 6): float(v) for p, v in hist["at"]}
    at[100.0] = float(hist["max_us"])

    def pct(p):
        return at[round(p, 6)]

    curve = [[p, pct(p)] for p in CURVE]
    first_error = None
    if status_errors:
        first_error = f"{status_errors} answers outside 2xx/3xx"
    elif io_errors:
        first_error = f"socket errors {text['socket_errors']}"
    tags = dict(t.split("=", 1) for t in args.tag)
    return {
        "tags": tags,
        "client": "wrk",
        "url": args.url,
        "mode": "closed",
        "rate": None,
        "connections": args.connections,
        "protocol": "http/1.1",
        "tls": False,
        "handshakes": False,
        "window_s": window,
        "requests": ok,
        "rps": ok / window if window > 0 else 0.0,
        "status_errors": status_errors,
        "io_errors": io_errors,
        "first_error": first_error,
        "queued": 0,
        "mean_us": float(hist["mean_us"]),
        "p50_us": pct(50.0),
        "p90_us": pct(90.0),
        "p99_us": pct(99.0),
        "p999_us": pct(99.9),
        "max_us": float(hist["max_us"]),
        "curve": curve,
        "proxy_cpu_util": proxy_cpu / elapsed,
        "proxy_cpu_us_per_req": proxy_cpu * 1e6 / hist["requests"] if hist["requests"] else 0.0,
        "client_cpu_util": client_cpu / elapsed,
        "other_cpu_util": other_cpu / elapsed,
        "tokens": 1,
        "tokens_wrapped": False,
        "tokens_in_window": hist["requests"],
        "dpop_proofs": 0,
        "proofs_wrapped": False,
        "wrk": text,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--token-file", required=True, help="the bearer token: its first line")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--duration", type=float, required=True, help="seconds measured")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load first")
    ap.add_argument("--cpu", required=True, help="the core wrk is pinned to")
    ap.add_argument("--proxy-pid", default="", help="comma-separated: the proxy's processes")
    ap.add_argument("--side-pid", default="", help="comma-separated: processes on wrk's core")
    ap.add_argument("--tag", action="append", default=[], help="KEY=VALUE copied into the line")
    ap.add_argument("--wrk", default="wrk")
    args = ap.parse_args()
    with open(args.token_file) as f:
        args.token = f.readline().strip()
    report = run(args)
    print(json.dumps(report))
    print(f"{'/'.join(report['tags'].values()):>28} {report['rps']:>9.0f} req/s  "
          f"p50 {report['p50_us']:>8.1f} µs  p99 {report['p99_us']:>8.1f} µs  "
          f"p99.9 {report['p999_us']:>8.1f} µs  max {report['max_us']:>9.1f} µs  "
          f"errors {report['status_errors']}/{report['io_errors']}  "
          f"proxy cpu {100 * report['proxy_cpu_util']:>3.0f}%  "
          f"client cpu {100 * report['client_cpu_util']:>3.0f}%  "
          f"other {100 * report['other_cpu_util']:>3.0f}%  (wrk)", file=sys.stderr)
    return 0 if report["requests"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
