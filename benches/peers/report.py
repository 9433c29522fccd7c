#!/usr/bin/env python3
"""Turns benches/peers/run.sh's raw results into docs/benchmarks/results.md
and latency.svg, and the README's summary block. Standard library only.

The result tables give, per (scenario, target) pair, the median of each
figure over the rounds. The targets are paired: a ratio or a difference is
taken within each round, between runs of the same round, and reported as
the median and the range over the rounds, because the machine's speed
drifts more between rounds than the gaps being measured.
"""

import argparse
import sys
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

# scenario -> (title, baseline target, what it measures)
SCENARIOS = {
    "c1": ("1 connection, HTTP/1.1 keep-alive", "direct",
           "the latency a proxy adds to one request at a time"),
    "c64": ("64 connections, HTTP/1.1 keep-alive", "direct",
            "throughput and latency at saturation (closed loop)"),
    "tls-h1": ("TLS, HTTP/1.1 keep-alive, 64 connections", "nginx",
               "TLS record cost and enforcement; nginx proxies without enforcement"),
    "tls-h2": ("TLS, h2, 64 connections (one stream each)", "nginx",
               "the same over h2"),
    "handshakes": ("TLS handshakes: a new connection per request, 64 at once", "nginx",
                   "full TLS 1.3 handshakes (X25519, P-256 certificate, no resumption) per second"),
    "grpc": ("gRPC unary calls over h2c, 64 connections (one stream each)", "direct",
             "gRPC proxying; nginx's grpc_pass checks no token"),
    "open": ("open loop at a fixed rate, 64 connections", "direct",
             "latency counted from each request's due time, so queueing shows"),
    "wrk": ("wrk -t1 -c64, HTTP/1.1 keep-alive, an nginx `return 200` upstream", "direct",
            "the setup most proxy comparisons use: wrk as the client (its own latency "
            "percentiles, with its coordinated-omission correction) and an nginx answering "
            "`return 200` as the upstream, both on the load generator's core"),
}

TARGETS = {
    "direct": "direct to the upstream (baseline)",
    "tokengate-public": "tokengate, public route (no token)",
    "tokengate-rs256": "tokengate, RS256 JWT (identity cache hit)",
    "tokengate-log": "tokengate, RS256 JWT (identity cache hit), access log on (JSON lines to a file)",
    "tokengate-w2": "tokengate, RS256 JWT (identity cache hit), 2 worker threads on the one core",
    "tokengate-dpop": "tokengate, DPoP-bound RS256 JWT (identity cache hit), a fresh ES256 proof per request",
    "tokengate-es256": "tokengate, ES256 JWT (identity cache hit)",
    "tokengate-opaque": "tokengate, opaque token (introspection cache hit)",
    "tokengate-many": "tokengate, RS256 JWT, 1,000 routes and 20 issuers",
    "tokengate-nocache": "tokengate, RS256 JWT, identity cache off",
    "tokengate-fresh": "tokengate, a fresh RS256 JWT per request",
    "tokengate-fleet": "tokengate, RS256 JWT, 100,000 revocations and a rate limit in Redis",
    "tokengate-revocation": "tokengate, RS256 JWT, 100,000 revocations (no rate limit)",
    "tokengate-h2-upstream": "tokengate, RS256 JWT, HTTP/1.1 client to an h2 upstream",
    "tokengate-grpc": "tokengate, RS256 JWT (identity cache hit), h2 upstream",
    "nginx-grpc": "nginx, grpc_pass (no token check)",
    "nginx": "nginx, plain reverse proxy (no token check)",
    "nginx-log": "nginx, plain reverse proxy, access log on (JSON lines to a file, buffered)",
    "haproxy": "HAProxy, plain reverse proxy (no token check)",
    "haproxy-jwt": "HAProxy, RS256 jwt_verify on every request",
    "haproxy-jwt-fresh": "HAProxy, jwt_verify, a fresh RS256 JWT per request",
}

# Colours of the plot's curves.
COLOURS = {
    "direct": "#7f7f7f",
    "tokengate-rs256": "#1f77b4",
    "tokengate-nocache": "#17becf",
    "tokengate-public": "#aec7e8",
    "nginx": "#2ca02c",
    "haproxy-jwt": "#d62728",
    "haproxy": "#ff9896",
}

# Other work (outside the benchmark) of this many cores disqualifies a run.
DISTURBED = 0.1

METRICS = ["rps", "p50_us", "p90_us", "p99_us", "p999_us", "max_us",
           "proxy_cpu_us_per_req", "proxy_cpu_util", "client_cpu_util", "other_cpu_util"]


def load(path):
    runs = defaultdict(list)
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        r = json.loads(line)
        runs[(r["tags"]["scenario"], r["tags"]["target"])].append(r)
    return runs


def summarise(runs):
    """(scenario, target) -> medians, error totals, rounds, and flags."""
    out = {}
    for key, all_runs in runs.items():
        # Runs during which other work took a tenth of a core or more are
        # left out, unless every round was disturbed.
        rs = [r for r in all_runs if r.get("other_cpu_util", 0.0) < DISTURBED] or all_runs
        s = {m: statistics.median(r.get(m, 0.0) for r in rs) for m in METRICS}
        s["rounds_total"] = len(all_runs)
        s["errors"] = sum(r["status_errors"] + r["io_errors"] for r in rs)
        s["requests"] = sum(r["requests"] for r in rs)
        s["rounds"] = len(rs)
        s["first_error"] = next((r["first_error"] for r in rs if r.get("first_error")), None)
        s["wrapped"] = any(r.get("tokens_wrapped") or r.get("proofs_wrapped") for r in rs)
        s["rate"] = rs[0].get("rate")
        rps = [r["rps"] for r in rs]
        s["rps_spread"] = (max(rps) - min(rps)) / s["rps"] if s["rps"] else 0.0
        per_req = [r["proxy_cpu_us_per_req"] for r in rs]
        s["cpu_spread"] = max(per_req) - min(per_req)
        s["queued"] = statistics.median(r.get("queued", 0) for r in rs)
        # The generator's core was the bottleneck, not the proxy.
        s["client_bound"] = (key[1] != "direct" and s["client_cpu_util"] > 0.93
                             and s["proxy_cpu_util"] < 0.9)
        # Other work on the machine took a tenth of a core or more.
        s["disturbed"] = s["other_cpu_util"] >= DISTURBED
        curves = [dict((p, v) for p, v in r["curve"]) for r in rs]
        s["curve"] = [(p, statistics.median(c[p] for c in curves)) for p in sorted(curves[0])]
        out[key] = s
    return out


def fmt_int(x):
    return f"{x:,.0f}"


def fmt_us(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def fmt_lat(x):
    return f"{x / 1000:,.2f} ms" if x >= 1000 else f"{x:.0f} µs" if x >= 100 else f"{x:.1f} µs"


def table(stats, scenario):
    title, baseline, what = SCENARIOS[scenario]
    rows = [(t, s) for (sc, t), s in stats.items() if sc == scenario]
    if not rows:
        return ""
    order = list(TARGETS)
    rows.sort(key=lambda ts: order.index(ts[0]) if ts[0] in order else 99)
    base = stats.get((scenario, baseline))
    rate = rows[0][1]["rate"]
    head = f"### {title}" + (f": {fmt_int(rate)} requests/s" if rate else "")
    lines = [head, "", f"{what[0].upper()}{what[1:]}; ratios against **{baseline}**.", "",
             "| target | rounds | req/s | spread | vs " + baseline + " | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | errors | proxy CPU µs/req | proxy CPU |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for target, s in rows:
        ratio = f"{s['rps'] / base['rps']:.2f}×" if base and base["rps"] else "-"
        if target == baseline:
            ratio = "1"
        mark = " †" if s["client_bound"] else ""
        mark += " ‡" if s["wrapped"] else ""
        mark += " §" if s["disturbed"] else ""
        cpu = "-" if target == "direct" else f"{s['proxy_cpu_us_per_req']:.1f}"
        util = "-" if target == "direct" else f"{100 * s['proxy_cpu_util']:.0f}%"
        lines.append(
            f"| {TARGETS.get(target, target)}{mark} | {s['rounds']}/{s['rounds_total']} | {fmt_int(s['rps'])} | "
            f"±{50 * s['rps_spread']:.0f}% | {ratio} | "
            f"{fmt_us(s['p50_us'])} | {fmt_us(s['p90_us'])} | {fmt_us(s['p99_us'])} | "
            f"{fmt_us(s['p999_us'])} | {fmt_us(s['max_us'])} | {s['errors']} | {cpu} | {util} |")
    return "\n".join(lines) + "\n"


def get(stats, scenario, target):
    return stats.get((scenario, target))


# ---------------------------------------------------------------------------
# Paired figures

class Paired:
    """One figure computed within each round from runs of that round, over
    the rounds in which every run it needs was made and none was disturbed
    by other work (or over all of them, flagged, when every round was)."""

    def __init__(self, rounds, values, disturbed):
        self.rounds = rounds
        self.values = values
        self.disturbed = disturbed
        self.median = statistics.median(values)
        self.lo, self.hi = min(values), max(values)

    def text(self, fmt):
        """`0.83× (0.75–0.90, 7 rounds)`, `+1.2 µs (-0.4 to +2.0, 7 rounds)`."""
        n = len(self.values)
        mark = " §" if self.disturbed else ""
        if n == 1:
            return f"{fmt(self.median)} (1 round){mark}"
        return f"{fmt(self.median)} ({fmt.bare(self.lo)}{fmt.dash}{fmt.bare(self.hi)}, {n} rounds){mark}"


def paired(runs, keys, f):
    """f(run, run, ...) of the (scenario, target) `keys`, round by round; None
    when no round has them all."""
    per = [{r["tags"]["round"]: r for r in runs.get(k, [])} for k in keys]
    common = set(per[0]).intersection(*per[1:])
    rounds = sorted(common, key=lambda rd: int(rd) if rd.isdigit() else rd)
    if not rounds:
        return None
    clean = [rd for rd in rounds
             if all(p[rd].get("other_cpu_util", 0.0) < DISTURBED for p in per)]
    use = clean or rounds
    values = [f(*(p[rd] for p in per)) for rd in use]
    if any(v is None for v in values):
        return None
    return Paired(use, values, not clean)


def rps_ratio(a, b):
    return a["rps"] / b["rps"] if b["rps"] else math.inf


def cpu_of(r):
    return r["proxy_cpu_us_per_req"]


class Fmt:
    """How a figure is written: with its unit, bare (in a range), and the
    range's separator."""

    def __init__(self, spec, unit, dash):
        self.spec, self.unit, self.dash = spec, unit, dash

    def bare(self, x):
        return format(x, self.spec)

    def __call__(self, x):
        return self.bare(x) + self.unit


times = Fmt(".2f", "×", "–")
plus_us = Fmt("+.1f", " µs", " to ")


def verdict(met):
    return "met" if met else "**missed**"


def targets(stats, runs, growth=None, dpop=None, fleet=None, rs256=None, mem=None, access=None):
    """The issue's targets: rows of (target, measured, verdict, paired figure
    or None, its format)."""
    rows = []

    def row(name, measured, met, fig=None, fmt=None):
        rows.append((name, measured, verdict(met), fig, fmt))

    def ratio_row(name, scenario, a, b, threshold, what="req/s", extra=""):
        """Throughput of a over b, paired, met when the median ≥ threshold."""
        sa, sb = get(stats, scenario, a), get(stats, scenario, b)
        fig = paired(runs, [(scenario, a), (scenario, b)], rps_ratio)
        if sa and sb and fig:
            more = extra(sa, sb) if callable(extra) else extra
            row(name, f"{fig.text(times)}; medians {fmt_int(sa['rps'])} vs {fmt_int(sb['rps'])} {what}{more}",
                fig.median >= threshold, fig, times)

    def cpu_per(label):
        return lambda sa, sb: (f", {label} {sa['proxy_cpu_us_per_req']:.1f} vs "
                               f"{sb['proxy_cpu_us_per_req']:.1f} µs")

    # Cached JWT against nginx, the headline: in-repo client and upstream,
    # then wrk and nginx `return 200`.
    ratio_row("cached RS256 JWT enforcement, 64 connections: throughput ≥ nginx plain proxying",
              "c64", "tokengate-rs256", "nginx", 1.0, extra=cpu_per("CPU per request"))
    tg, ng = get(stats, "c64", "tokengate-rs256"), get(stats, "c64", "nginx")
    fig = paired(runs, [("c64", "tokengate-rs256"), ("c64", "nginx")],
                 lambda a, b: a["p99_us"] / b["p99_us"] if b["p99_us"] else math.inf)
    if tg and ng and fig:
        row("… and p99 ≤ nginx's",
            f"{fig.text(times)}; medians {fmt_lat(tg['p99_us'])} vs {fmt_lat(ng['p99_us'])}",
            fig.median <= 1.0, fig, times)
    ratio_row("… the same with wrk (-t1 -c64) and an nginx `return 200` upstream: throughput ≥ nginx",
              "wrk", "tokengate-rs256", "nginx", 1.0, extra=cpu_per("CPU per request"))

    # Identity cache off against HAProxy, and the verification floor.
    floor = ""
    if rs256:
        whole = rs256["verify/uncached/RS256"]["median_ns"] / 1e3
        sig = rs256["rs256/tokengate_signature"]["median_ns"] / 1e3
        floor = (f"; the floor: one RS256 verify = {whole:.1f} µs (the whole token check, "
                 f"`verify/uncached/RS256`; its signature alone {sig:.1f} µs; criterion on the "
                 f"proxy's core)")
    ratio_row("identity cache off (RS256 verified per request): throughput ≥ 1.5× HAProxy jwt_verify",
              "c64", "tokengate-nocache", "haproxy-jwt", 1.5,
              extra=lambda sa, sb: (f", CPU per request {sa['proxy_cpu_us_per_req']:.1f} vs "
                                    f"{sb['proxy_cpu_us_per_req']:.1f} µs{floor}"))

    # Added latency at one connection: each proxy's p50 over direct's in
    # the same round.
    d, t, n = get(stats, "c1", "direct"), get(stats, "c1", "tokengate-rs256"), get(stats, "c1", "nginx")
    keys = [("c1", "direct"), ("c1", "tokengate-rs256"), ("c1", "nginx")]
    added_t = paired(runs, keys, lambda d, t, n: t["p50_us"] - d["p50_us"])
    added_n = paired(runs, keys, lambda d, t, n: n["p50_us"] - d["p50_us"])
    gap = paired(runs, keys, lambda d, t, n: t["p50_us"] - n["p50_us"])
    if d and t and n and gap:
        row("added latency at 1 connection (p50 over direct, cached RS256 JWT) ≤ nginx's",
            f"tokengate {added_t.text(plus_us)}, nginx {added_n.text(plus_us)}; "
            f"tokengate minus nginx {gap.text(plus_us)}", gap.median <= 0.0, gap, plus_us)

    for sc, label in (("tls-h1", "HTTP/1.1"), ("tls-h2", "h2")):
        ratio_row(f"TLS keep-alive ({label}) with JWT enforcement: throughput ≥ nginx HTTPS plain proxying",
                  sc, "tokengate-rs256", "nginx", 1.0)

    # Resident memory of idle keep-alive connections.
    tgm = next((m for m in mem or [] if m["target"] == "tokengate"), None)
    ngm = next((m for m in mem or [] if m["target"] == "nginx"), None)
    if tgm:
        held = "" if tgm["connections"] >= 10000 else f" (only {tgm['connections']:,} connections held)"
        nginx_per = f" (nginx {ngm['per_conn']:.1f} KiB)" if ngm else ""
        row("idle keep-alive connections, 10,000 clients: ≤ 4 KiB resident per connection, and idle RSS < 20 MiB",
            f"{tgm['per_conn']:.1f} KiB per connection{nginx_per}, {tgm['held_kib'] / 1024:.0f} MiB "
            f"with {tgm['connections']:,} connections{held}; idle {tgm['idle_kib'] / 1024:.1f} MiB",
            tgm["per_conn"] <= 4.0 and tgm["idle_kib"] < 20 * 1024)

    # The access log's cost per request, each proxy against itself in the
    # same round.
    keys = [("c64", "tokengate-log"), ("c64", "tokengate-rs256"), ("c64", "nginx-log"), ("c64", "nginx")]
    if all(get(stats, *k) for k in keys):
        cost_t = paired(runs, keys, lambda tl, t, nl, n: cpu_of(tl) - cpu_of(t))
        cost_n = paired(runs, keys, lambda tl, t, nl, n: cpu_of(nl) - cpu_of(n))
        more = paired(runs, keys, lambda tl, t, nl, n: (cpu_of(tl) - cpu_of(t)) - (cpu_of(nl) - cpu_of(n)))
        kept_t = paired(runs, keys, lambda tl, t, nl, n: rps_ratio(tl, t))
        kept_n = paired(runs, keys, lambda tl, t, nl, n: rps_ratio(nl, n))
        both = paired(runs, keys, lambda tl, t, nl, n: rps_ratio(tl, nl))
        size = ""
        if access and access["tokengate"]["lines"] and access["nginx"]["lines"]:
            size = (f"; lines of {access['tokengate']['bytes'] / access['tokengate']['lines']:.0f} vs "
                    f"{access['nginx']['bytes'] / access['nginx']['lines']:.0f} bytes")
        row("access log on (one JSON line per request to a file): its CPU per request ≤ nginx's access_log",
            f"tokengate {cost_t.text(plus_us)}, nginx {cost_n.text(plus_us)} per request; tokengate minus "
            f"nginx {more.text(plus_us)}; throughput kept: tokengate {kept_t.text(times)}, nginx "
            f"{kept_n.text(times)}; cached RS256 JWT with its log vs nginx with its log "
            f"{both.text(times)}{size}", more.median <= 0.0, more, plus_us)

    # Worker threads: two on the one core must not cost more per request.
    w1, w2 = get(stats, "c64", "tokengate-rs256"), get(stats, "c64", "tokengate-w2")
    fig = paired(runs, [("c64", "tokengate-w2"), ("c64", "tokengate-rs256")],
                 lambda a, b: cpu_of(a) / cpu_of(b) if cpu_of(b) else math.inf)
    thr = paired(runs, [("c64", "tokengate-w2"), ("c64", "tokengate-rs256")], rps_ratio)
    if w1 and w2 and fig:
        row("worker_threads = 2 (on the same one core): CPU per request ≤ 1 worker's",
            f"{fig.text(times)}; medians {w2['proxy_cpu_us_per_req']:.1f} vs "
            f"{w1['proxy_cpu_us_per_req']:.1f} µs; throughput {thr.text(times)}",
            fig.median <= 1.0, fig, times)

    # Not to regress.
    ratio_row("full TLS handshakes/s ≥ nginx's", "handshakes", "tokengate-rs256", "nginx", 1.0, what="/s",
              extra=cpu_per("CPU per handshake"))
    many, ten = get(stats, "c64", "tokengate-many"), get(stats, "c64", "tokengate-rs256")
    under = paired(runs, [("c64", "tokengate-many"), ("c64", "tokengate-rs256")],
                   lambda a, b: cpu_of(a) - cpu_of(b))
    if growth:
        small, large = growth["10_routes_1_issuer"], growth["1000_routes_20_issuers"]
        added = large["median_ns"] - small["median_ns"]
        load = f"; under load {under.text(plus_us)} proxy CPU per request" if many and ten and under else ""
        row("1,000 routes and 20 issuers add < 1 µs per request (vs 10 routes, 1 issuer)",
            f"{added:+.0f} ns per request: route lookup, cached identity against the route's "
            f"issuers and scope check take {large['median_ns']:.0f} vs {small['median_ns']:.0f} ns "
            f"(criterion, in process, on the proxy's core){load}",
            added < 1000.0)
    elif many and ten and under:
        row("1,000 routes and 20 issuers add < 1 µs per request (vs 10 routes, 1 issuer)",
            f"{under.text(plus_us)} proxy CPU per request", under.median < 1.0, under, plus_us)
    bearer, bound = get(stats, "c64", "tokengate-rs256"), get(stats, "c64", "tokengate-dpop")
    fig = paired(runs, [("c64", "tokengate-dpop"), ("c64", "tokengate-rs256")],
                 lambda a, b: cpu_of(a) - cpu_of(b))
    if bearer and bound and dpop and fig:
        sig = dpop["es256_signature"]["median_ns"] / 1e3
        whole = dpop["verify_es256"]["median_ns"] / 1e3
        remembered = dpop.get("verify_and_remember_es256")
        remembered = (f", with the replay-cache insert of a new proof's `jti` "
                      f"{remembered['median_ns'] / 1e3:.1f} µs" if remembered else "")
        row("DPoP (a fresh ES256 proof per request, cached token), 64 connections: "
            "CPU per request ≤ cached bearer + one ES256 signature check + 3 µs",
            f"{fig.text(plus_us)} (medians {bound['proxy_cpu_us_per_req']:.1f} vs "
            f"{bearer['proxy_cpu_us_per_req']:.1f} µs), against {sig:.1f} + 3 µs (one ES256 signature "
            f"check, criterion on the proxy's core; the whole `Dpop::verify` of one proof "
            f"{whole:.1f} µs{remembered})",
            fig.median <= sig + 3.0, fig, plus_us)
    ratio_row("gRPC unary with JWT enforcement: throughput ≥ nginx grpc_pass", "grpc",
              "tokengate-grpc", "nginx-grpc", 1.0, what="calls/s", extra=cpu_per("CPU per call"))
    for target, what in (("tokengate-revocation", "a revocation list of 100,000 entries"),
                         ("tokengate-fleet", "100,000 revocations and a rate limit in Redis")):
        f, plain = get(stats, "c64", target), get(stats, "c64", "tokengate-rs256")
        fig = paired(runs, [("c64", target), ("c64", "tokengate-rs256")], lambda a, b: cpu_of(a) - cpu_of(b))
        if f and plain and fig:
            row(f"cached RS256 JWT with {what}: < 2 µs added CPU per request",
                f"{fig.text(plus_us)} (medians {f['proxy_cpu_us_per_req']:.1f} vs "
                f"{plain['proxy_cpu_us_per_req']:.1f} µs); {fmt_int(f['rps'])} vs "
                f"{fmt_int(plain['rps'])} req/s; p99 {fmt_lat(f['p99_us'])} vs {fmt_lat(plain['p99_us'])}",
                fig.median < 2.0, fig, plus_us)
    if fleet:
        # Commands a Lua script calls are counted by Redis too, but run
        # inside the one EVALSHA: round trips are the client's commands.
        calls = fleet["by_command"]
        trips = calls.get("evalsha", 0) + calls.get("eval", 0)
        inside = {k: v for k, v in calls.items() if k in ("get", "set", "time")}
        other = {k: v for k, v in calls.items() if k not in ("evalsha", "eval", "get", "set", "time")}
        per = trips / fleet["requests"]
        detail = ", ".join(f"{k.upper()} {v}" for k, v in sorted(inside.items()))
        rest = ", ".join(f"{k.upper()} {v}" for k, v in sorted(other.items())) or "none"
        row("rate limit in Redis: at most one Redis round trip per request",
            f"{per:.2f} round trips per request: {trips} EVALSHA for {fleet['requests']} requests "
            f"(inside the script: {detail}; other commands meanwhile: {rest})", per <= 1.0)
    return rows


def round_table(rows):
    """Every paired target figure, round by round."""
    rows = [r for r in rows if r[3]]
    if not rows:
        return ""
    rounds = sorted({rd for r in rows for rd in r[3].rounds}, key=lambda rd: int(rd) if rd.isdigit() else rd)
    out = ["| target | " + " | ".join(f"round {rd}" for rd in rounds) + " | median (range) |",
           "|---|" + "--:|" * len(rounds) + "---|"]
    for name, _, _, fig, fmt in rows:
        by = dict(zip(fig.rounds, fig.values))
        cells = [fmt(by[rd]) if rd in by else "-" for rd in rounds]
        out.append(f"| {name} | " + " | ".join(cells) + f" | {fig.text(fmt)} |")
    return "\n".join(out) + "\n"


def access_log_table(runs, access):
    """Per round: each proxy's CPU per request without and with its access
    log, what the log costs, and the throughput it keeps."""
    keys = [("c64", "tokengate-rs256"), ("c64", "tokengate-log"), ("c64", "nginx"), ("c64", "nginx-log")]
    per = [{r["tags"]["round"]: r for r in runs.get(k, [])} for k in keys]
    rounds = sorted(set(per[0]).intersection(*per[1:]), key=lambda rd: int(rd) if rd.isdigit() else rd)
    if not rounds:
        return ""
    out = ["| round | tokengate CPU µs/req, off → on | cost | throughput kept | "
           "nginx CPU µs/req, off → on | cost | throughput kept | tokengate minus nginx |",
           "|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for rd in rounds:
        t, tl, n, nl = (p[rd] for p in per)
        ct, cn = cpu_of(tl) - cpu_of(t), cpu_of(nl) - cpu_of(n)
        mark = " §" if any(p[rd].get("other_cpu_util", 0.0) >= DISTURBED for p in per) else ""
        out.append(f"| {rd}{mark} | {cpu_of(t):.1f} → {cpu_of(tl):.1f} | {ct:+.1f} | {times(rps_ratio(tl, t))} | "
                   f"{cpu_of(n):.1f} → {cpu_of(nl):.1f} | {cn:+.1f} | {times(rps_ratio(nl, n))} | "
                   f"{ct - cn:+.1f} |")
    md = "\n".join(out) + "\n"
    if access:
        for name in ("tokengate", "nginx"):
            a = access.get(name) or {}
            if a.get("lines"):
                md += (f"\n{name}: {a['lines']:,} lines, {a['bytes'] / a['lines']:.0f} bytes a line on "
                       f"average; one of them:\n\n```\n{a['sample']}\n```\n")
    return md


def memory_table(path):
    lines = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            lines.append(json.loads(line))
    if not lines:
        return "", []
    out = ["| proxy | idle RSS | RSS with idle keep-alive connections | connections | KiB per connection |",
           "|---|--:|--:|--:|--:|"]
    for m in lines:
        per = (m["held_kib"] - m["idle_kib"]) / max(m["connections"], 1)
        m["per_conn"] = per
        out.append(f"| {m['target']} | {m['idle_kib'] / 1024:.1f} MiB | {m['held_kib'] / 1024:.1f} MiB | "
                   f"{m['connections']:,} | {per:.1f} |")
    return "\n".join(out) + "\n", lines


# ---------------------------------------------------------------------------
# The plot

def svg_plot(stats, panels, path):
    """Latency-percentile curves, one panel per (scenario, targets)."""
    width, height = 980, 440
    pw, ph = 400, 300
    left0, top = 70, 60
    gap = 90
    max_k = 16  # up to the 99.99th percentile
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>']
    for i, (scenario, title, wanted) in enumerate(panels):
        x0 = left0 + i * (pw + gap)
        curves = []
        for target in wanted:
            s = stats.get((scenario, target))
            if not s:
                continue
            pts = [(p, v) for p, v in s["curve"] if p < 100.0]
            pts = [(-math.log10(1 - p / 100.0), v) for p, v in pts]
            pts = [(x, max(v, 1.0)) for x, v in pts if x <= max_k / 4 + 1e-9]
            curves.append((target, pts))
        if not curves:
            continue
        vals = [v for _, pts in curves for _, v in pts]
        lo = 10 ** math.floor(math.log10(min(vals)))
        hi = 10 ** math.ceil(math.log10(max(vals)))
        if hi / lo < 100:
            hi = lo * 100

        def sx(x):
            return x0 + x / (max_k / 4) * pw

        def sy(v):
            return top + ph - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * ph

        parts.append(f'<text x="{x0 + pw / 2}" y="{top - 30}" text-anchor="middle" font-size="14" '
                     f'font-weight="bold">{title}</text>')
        parts.append(f'<rect x="{x0}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
        for k, label in ((0, "0"), (1, "90"), (2, "99"), (3, "99.9"), (4, "99.99")):
            x = sx(k)
            parts.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{top + ph}" stroke="#ddd"/>')
            parts.append(f'<text x="{x}" y="{top + ph + 16}" text-anchor="middle">{label}</text>')
        parts.append(f'<text x="{x0 + pw / 2}" y="{top + ph + 34}" text-anchor="middle">percentile</text>')
        decade = lo
        while decade <= hi * 1.0001:
            for m in (1, 2, 5):
                v = decade * m
                if v > hi * 1.0001:
                    break
                y = sy(v)
                parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + pw}" y2="{y:.1f}" '
                             f'stroke="{"#ccc" if m == 1 else "#eee"}"/>')
                label = f"{v / 1000:g} ms" if v >= 1000 else f"{v:g}"
                parts.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
            decade *= 10
        parts.append(f'<text x="{x0 - 52}" y="{top + ph / 2}" text-anchor="middle" '
                     f'transform="rotate(-90 {x0 - 52} {top + ph / 2})">latency (µs)</text>')
        for j, (target, pts) in enumerate(curves):
            colour = COLOURS.get(target, "#9467bd")
            d = " ".join(f"{'M' if n == 0 else 'L'}{sx(x):.1f},{sy(v):.1f}" for n, (x, v) in enumerate(pts))
            parts.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="2"/>')
            ly = top + 14 + j * 16
            parts.append(f'<line x1="{x0 + 10}" y1="{ly - 4}" x2="{x0 + 30}" y2="{ly - 4}" '
                         f'stroke="{colour}" stroke-width="2"/>')
            parts.append(f'<text x="{x0 + 36}" y="{ly}">{target}</text>')
    parts.append(f'<text x="{width / 2}" y="{height - 12}" text-anchor="middle" fill="#555">'
                 'medians over the rounds; one proxy core; tokengate-rs256: cached RS256 JWT; '
                 'haproxy-jwt: jwt_verify on every request; nginx: no token check</text>')
    parts.append("</svg>")
    Path(path).write_text("\n".join(parts) + "\n")


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--memory", required=True)
    ap.add_argument("--machine", required=True)
    ap.add_argument("--growth", help="config_growth medians from benches/auth.rs (JSON)")
    ap.add_argument("--dpop", help="dpop group medians from benches/auth.rs (JSON)")
    ap.add_argument("--fleet", help="Redis commands counted for rate-limited requests (JSON)")
    ap.add_argument("--rs256", help="verify/uncached/RS256 and rs256/tokengate_signature medians "
                    "from benches/auth.rs (JSON)")
    ap.add_argument("--access-logs", help="lines, bytes and a sample line of each access log (JSON)")
    ap.add_argument("--readme", help="a Markdown file whose block between the peers "
                    "summary markers is replaced by this run's summary")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    runs = load(args.raw)
    stats = summarise(runs)
    machine = json.loads(Path(args.machine).read_text())
    mem_md, mem = memory_table(args.memory)

    md = ["# tokengate against nginx and HAProxy: latency under load", "",
          f"Produced{' on ' + machine['date'] if machine.get('date') else ''} by `{machine['command']}` "
          f"on {machine['cpu']} ({machine['cores']} cores, "
          f"{machine['memory_gib']} GiB{', ' + machine['virtualization'] if machine.get('virtualization') else ''}), "
          f"{machine['os']}, Linux {machine['kernel']}; {machine['rustc']}; tokengate {machine['tokengate']}; "
          f"nginx {machine['nginx']}; {machine['haproxy']}"
          f"{'; ' + machine['wrk'] if machine.get('wrk') else ''}.", "",
          f"Every proxy runs one worker thread pinned to core {machine['proxy_cpu']}; the load generator "
          f"and the upstream share core {machine['client_cpu']}. {machine['rounds']} round(s), each run "
          f"{machine['warmup_s']} s of warm-up then {machine['duration_s']} s measured, every scenario "
          "interleaved with its peers. The targets are paired: each ratio or difference is taken "
          "within a round, between runs minutes apart, and given as the median and the range "
          "(min–max) over the rounds, met or missed on the median; rounds in which other work on the "
          "machine disturbed a run they need are left out. The result tables give medians over the "
          "rounds (leaving out disturbed runs). "
          f"The whole run took {machine['elapsed_s'] // 60} min. See [methodology.md](methodology.md).", "",
          "## Targets", "",
          "| target | measured: median (range, rounds) | |", "|---|---|---|"]
    def optional(path):
        return json.loads(Path(path).read_text()) if path else None
    growth, dpop, fleet = optional(args.growth), optional(args.dpop), optional(args.fleet)
    rs256, access = optional(args.rs256), optional(args.access_logs)
    rows = targets(stats, runs, growth, dpop, fleet, rs256, mem, access)
    for name, measured, verdict, _, _ in rows:
        md.append(f"| {name} | {measured} | {verdict} |")
    by_round = round_table(rows)
    if by_round:
        md += ["", "### The target figures round by round", "",
               "Each cell is computed from runs of that round only.", "", by_round]
    md += ["", "## Results", ""]
    for scenario in SCENARIOS:
        t = table(stats, scenario)
        if t:
            md += [t]
    md += ["Columns: rounds: the runs the medians are taken over (a run during which other work "
           "outside the benchmark used a tenth of a core or more is left out, unless all were); "
           "requests/s completed in the measured window; spread: half the range of "
           "requests/s over the rounds, relative to the median; HdrHistogram percentiles of "
           "successful requests; errors (unexpected status or failed connection) summed over the rounds; "
           "proxy CPU: the proxy's CPU time in the window (all its threads, from /proc) per request, "
           "and as a share of its one core.", "",
           "† the load generator's core was saturated while the proxy's was not: the throughput is a "
           "floor of the proxy's; compare CPU µs per request.", "",
           "‡ the token pool ran out and tokens were used again (some requests hit the cache), "
           "or the DPoP run's proofs did (the reused ones are refused as replays).", "",
           "§ other work (processes outside this benchmark, or the hypervisor) used a tenth of a "
           "core or more during every round of this row (in a paired figure: in every round, "
           "during one of the runs it needs).", ""]
    logs = access_log_table(runs, access)
    if logs:
        md += ["## Access logs", "",
               "The cached-RS256-JWT runs at 64 connections of tokengate (`tg`, `RUST_LOG=warn`) and of "
               "the same configuration with `RUST_LOG=info` (one JSON access-log event per request on "
               "standard error, to a file), and nginx's plain proxying without and with `access_log` "
               "(one JSON line per request, `buffer=64k flush=1s`), round by round. Cost: the "
               "difference in proxy CPU per request; throughput kept: with the log over without.", "",
               logs]
    if mem_md:
        md += ["## Resident memory", "",
               f"Fresh instances; idle after three requests, then with {mem[0]['connections']:,} "
               "idle keep-alive connections open, each having served one request "
               "(the sum over nginx's master and worker).", "", mem_md]
        tg = next((m for m in mem if m["target"] == "tokengate"), None)
        ng = next((m for m in mem if m["target"] == "nginx"), None)
        if tg and ng:
            md += [f"tokengate: {tg['per_conn']:.1f} KiB per connection, nginx: {ng['per_conn']:.1f} KiB "
                   f"({tg['per_conn'] / ng['per_conn']:.1f}×).", ""]
    md += ["## Latency percentiles", "", "![latency percentiles](latency.svg)", ""]
    errors = [(k, s["first_error"]) for k, s in stats.items() if s["errors"]]
    if errors:
        md += ["## Errors", ""]
        md += [f"- {sc} / {t}: {e}" for (sc, t), e in errors]
        md += [""]
    (out / "results.md").write_text("\n".join(md))
    if args.readme:
        splice_summary(Path(args.readme), summary(stats, rows, machine, mem))
    svg_plot(stats, [
        ("c64", "closed loop, 64 connections (HTTP/1.1)",
         ["direct", "tokengate-rs256", "tokengate-nocache", "nginx", "haproxy-jwt"]),
        ("open", f"open loop, {fmt_int(machine['open_rate'])} requests/s",
         ["direct", "tokengate-rs256", "nginx", "haproxy-jwt"]),
    ], out / "latency.svg")


README_BEGIN = "<!-- peers summary: written by benches/peers/run.sh -->"
README_END = "<!-- end of peers summary -->"


def summary(stats, rows, machine, mem):
    """The README's excerpt: machine, targets, the 64-connection table, memory."""
    md = [f"From `{machine['command']}`{' (' + machine['date'] + ')' if machine.get('date') else ''} "
          f"at tokengate {machine['tokengate']} on {machine['cpu']} "
          f"({machine['cores']} cores, {machine['memory_gib']} GiB"
          f"{', ' + machine['virtualization'] if machine.get('virtualization') else ''}), "
          f"{machine['os']}, nginx {machine['nginx'].replace('nginx/', '')}, "
          f"{machine['haproxy'].split(' - ')[0].replace('HAProxy version ', 'HAProxy ')}; "
          f"{machine['rounds']} round{'s' if machine['rounds'] != 1 else ''}; each target figure is "
          "taken within a round, then the median (min–max) over the rounds.", "",
          "| target (one proxy core each, same run) | measured: median (range, rounds) | |", "|---|---|---|"]
    md += [f"| {n} | {m} | {v} |" for n, m, v, _, _ in rows]
    md += ["", "64 connections, HTTP/1.1 keep-alive, closed loop (medians):", "",
           "| | req/s | p50 µs | p99 µs | proxy CPU µs/request |", "|---|--:|--:|--:|--:|"]
    for target in TARGETS:
        st = stats.get(("c64", target))
        if st:
            cpu = "-" if target == "direct" else f"{st['proxy_cpu_us_per_req']:.1f}"
            md.append(f"| {TARGETS[target]} | {fmt_int(st['rps'])} | {fmt_us(st['p50_us'])} | "
                      f"{fmt_us(st['p99_us'])} | {cpu} |")
    if mem:
        parts = [f"{m['target']} {m['idle_kib'] / 1024:.0f} MiB idle, {m['held_kib'] / 1024:.0f} MiB "
                 f"held ({m['per_conn']:.1f} KiB per connection)" for m in mem]
        md += ["", f"Resident memory with {mem[0]['connections']:,} idle keep-alive connections: "
               + "; ".join(parts) + "."]
    return "\n".join(md) + "\n"


def splice_summary(readme, text):
    """Replaces the block between the markers (kept) in `readme`."""
    body = readme.read_text()
    start, end = body.find(README_BEGIN), body.find(README_END)
    if start < 0 or end < start:
        print(f"warning: {readme} has no peers summary markers; not updated", file=sys.stderr)
        return
    head = body[:start + len(README_BEGIN)]
    readme.write_text(head + "\n" + text + body[end:])


if __name__ == "__main__":
    main()
