#!/usr/bin/env python3
"""Turns benches/peers/run.sh's raw results into docs/benchmarks/results.md
and latency.svg. Standard library only.

Every figure is the median over the rounds of one (scenario, target) pair;
ratios are ratios of those medians, all measured in the same run.
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
}

TARGETS = {
    "direct": "direct to the upstream (baseline)",
    "tokengate-public": "tokengate, public route (no token)",
    "tokengate-rs256": "tokengate, RS256 JWT (identity cache hit)",
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


def targets(stats, growth=None, dpop=None, fleet=None):
    """The issue's targets: (target, measured, met) rows."""
    rows = []

    def row(name, measured, met, note=""):
        rows.append((name, measured, ("met" if met else "**missed**") + note))

    plain = get(stats, "c64", "tokengate-rs256")
    for target, what in (("tokengate-revocation", "a revocation list of 100,000 entries"),
                         ("tokengate-fleet", "100,000 revocations and a rate limit in Redis")):
        f = get(stats, "c64", target)
        if plain and f:
            added = f["proxy_cpu_us_per_req"] - plain["proxy_cpu_us_per_req"]
            row(f"cached RS256 JWT with {what}: < 2 µs added CPU per request",
                f"{f['proxy_cpu_us_per_req']:.1f} vs {plain['proxy_cpu_us_per_req']:.1f} µs = {added:+.1f} µs "
                f"(rounds spread over {f['cpu_spread']:.1f} and {plain['cpu_spread']:.1f} µs); "
                f"{fmt_int(f['rps'])} vs {fmt_int(plain['rps'])} req/s; p99 {fmt_lat(f['p99_us'])} vs "
                f"{fmt_lat(plain['p99_us'])}", added < 2.0)
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
    tg, ng = get(stats, "grpc", "tokengate-grpc"), get(stats, "grpc", "nginx-grpc")
    if tg and ng:
        r = tg["rps"] / ng["rps"]
        row("gRPC unary with JWT enforcement: throughput ≥ nginx grpc_pass",
            f"{fmt_int(tg['rps'])} vs {fmt_int(ng['rps'])} calls/s = {r:.2f}× (CPU per call "
            f"{tg['proxy_cpu_us_per_req']:.1f} vs {ng['proxy_cpu_us_per_req']:.1f} µs; p99 "
            f"{fmt_lat(tg['p99_us'])} vs {fmt_lat(ng['p99_us'])})", r >= 1.0)

    tg, ng = get(stats, "c64", "tokengate-rs256"), get(stats, "c64", "nginx")
    if tg and ng:
        r = tg["rps"] / ng["rps"]
        row("cached RS256 JWT enforcement, 64 connections: throughput ≥ nginx plain proxying",
            f"{fmt_int(tg['rps'])} vs {fmt_int(ng['rps'])} req/s = {r:.2f}× "
            f"(CPU per request {tg['proxy_cpu_us_per_req']:.1f} vs {ng['proxy_cpu_us_per_req']:.1f} µs)",
            r >= 1.0)
        row("… and p99 ≤ nginx's",
            f"{fmt_lat(tg['p99_us'])} vs {fmt_lat(ng['p99_us'])} = {tg['p99_us'] / ng['p99_us']:.2f}×",
            tg["p99_us"] <= ng["p99_us"])
    nc, hj = get(stats, "c64", "tokengate-nocache"), get(stats, "c64", "haproxy-jwt")
    if nc and hj:
        r = nc["rps"] / hj["rps"]
        row("identity cache off (RS256 verified per request): throughput ≥ 1.5× HAProxy jwt_verify",
            f"{fmt_int(nc['rps'])} vs {fmt_int(hj['rps'])} req/s = {r:.2f}×", r >= 1.5)
    for sc, label in (("tls-h1", "HTTP/1.1"), ("tls-h2", "h2")):
        t, n = get(stats, sc, "tokengate-rs256"), get(stats, sc, "nginx")
        if t and n:
            r = t["rps"] / n["rps"]
            row(f"TLS keep-alive ({label}) with JWT enforcement: throughput ≥ nginx HTTPS plain proxying",
                f"{fmt_int(t['rps'])} vs {fmt_int(n['rps'])} req/s = {r:.2f}×", r >= 1.0)
    t, n = get(stats, "handshakes", "tokengate-rs256"), get(stats, "handshakes", "nginx")
    if t and n:
        r = t["rps"] / n["rps"]
        row("full TLS handshakes/s ≥ nginx's",
            f"{fmt_int(t['rps'])} vs {fmt_int(n['rps'])} /s = {r:.2f}× "
            f"(CPU per handshake {t['proxy_cpu_us_per_req']:.0f} vs {n['proxy_cpu_us_per_req']:.0f} µs)",
            r >= 1.0)
    many, ten = get(stats, "c64", "tokengate-many"), get(stats, "c64", "tokengate-rs256")
    if growth:
        small, large = growth["10_routes_1_issuer"], growth["1000_routes_20_issuers"]
        added = large["median_ns"] - small["median_ns"]
        load = ""
        if many and ten:
            d_cpu = many["proxy_cpu_us_per_req"] - ten["proxy_cpu_us_per_req"]
            load = (f"; under load {d_cpu:+.2f} µs proxy CPU per request, within the "
                    f"{ten['cpu_spread']:.1f} µs spread of the 10-route rounds alone")
        row("1,000 routes and 20 issuers add < 1 µs per request (vs 10 routes, 1 issuer)",
            f"{added:+.0f} ns per request: route lookup, cached identity against the route's "
            f"issuers and scope check take {large['median_ns']:.0f} vs {small['median_ns']:.0f} ns "
            f"(criterion, in process, on the proxy's core){load}",
            added < 1000.0)
    elif many and ten:
        d_cpu = many["proxy_cpu_us_per_req"] - ten["proxy_cpu_us_per_req"]
        row("1,000 routes and 20 issuers add < 1 µs per request (vs 10 routes, 1 issuer)",
            f"{d_cpu:+.2f} µs proxy CPU per request (rounds of the 10-route run alone spread "
            f"over {ten['cpu_spread']:.1f} µs)", d_cpu < 1.0)
    bearer, bound = get(stats, "c64", "tokengate-rs256"), get(stats, "c64", "tokengate-dpop")
    if bearer and bound and dpop:
        sig = dpop["es256_signature"]["median_ns"] / 1e3
        whole = dpop["verify_es256"]["median_ns"] / 1e3
        remembered = dpop.get("verify_and_remember_es256")
        remembered = (f", with the replay-cache insert of a new proof's `jti` "
                      f"{remembered['median_ns'] / 1e3:.1f} µs" if remembered else "")
        added = bound["proxy_cpu_us_per_req"] - bearer["proxy_cpu_us_per_req"]
        row("DPoP (a fresh ES256 proof per request, cached token), 64 connections: "
            "CPU per request ≤ cached bearer + one ES256 signature check + 3 µs",
            f"{bound['proxy_cpu_us_per_req']:.1f} vs {bearer['proxy_cpu_us_per_req']:.1f} µs = "
            f"{added:+.1f} µs, against {sig:.1f} + 3 µs (one ES256 signature check, criterion on the "
            f"proxy's core; the whole `Dpop::verify` of one proof {whole:.1f} µs{remembered}); "
            f"rounds spread over {bound['cpu_spread']:.1f} and {bearer['cpu_spread']:.1f} µs",
            added <= sig + 3.0)
    d, t, n = get(stats, "c1", "direct"), get(stats, "c1", "tokengate-rs256"), get(stats, "c1", "nginx")
    if d and t and n:
        at, an = t["p50_us"] - d["p50_us"], n["p50_us"] - d["p50_us"]
        row("added latency at 1 connection (p50 over direct, cached RS256 JWT) ≤ nginx's",
            f"+{at:.1f} µs vs +{an:.1f} µs", at <= an)
    return rows


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
    ap.add_argument("--readme", help="a Markdown file whose block between the peers "
                    "summary markers is replaced by this run's summary")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    stats = summarise(load(args.raw))
    machine = json.loads(Path(args.machine).read_text())
    mem_md, mem = memory_table(args.memory)

    md = ["# tokengate against nginx and HAProxy: latency under load", "",
          f"Produced{' on ' + machine['date'] if machine.get('date') else ''} by `{machine['command']}` "
          f"on {machine['cpu']} ({machine['cores']} cores, "
          f"{machine['memory_gib']} GiB{', ' + machine['virtualization'] if machine.get('virtualization') else ''}), "
          f"{machine['os']}, Linux {machine['kernel']}; {machine['rustc']}; tokengate {machine['tokengate']}; "
          f"nginx {machine['nginx']}; {machine['haproxy']}.", "",
          f"Every proxy runs one worker thread pinned to core {machine['proxy_cpu']}; the load generator "
          f"and the upstream share core {machine['client_cpu']}. {machine['rounds']} round(s), each run "
          f"{machine['warmup_s']} s of warm-up then {machine['duration_s']} s measured, every scenario "
          "interleaved with its peers; figures are medians over the rounds (leaving out runs disturbed by "
          "other work on the machine), ratios are ratios of medians. "
          f"The whole run took {machine['elapsed_s'] // 60} min. See [methodology.md](methodology.md).", "",
          "## Targets", "",
          "| target | measured | |", "|---|---|---|"]
    growth = json.loads(Path(args.growth).read_text()) if args.growth else None
    dpop = json.loads(Path(args.dpop).read_text()) if args.dpop else None
    fleet = json.loads(Path(args.fleet).read_text()) if args.fleet else None
    for name, measured, verdict in targets(stats, growth, dpop, fleet):
        md.append(f"| {name} | {measured} | {verdict} |")
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
           "core or more during every round of this row.", ""]
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
        splice_summary(Path(args.readme), summary(stats, growth, dpop, machine, mem))
    svg_plot(stats, [
        ("c64", "closed loop, 64 connections (HTTP/1.1)",
         ["direct", "tokengate-rs256", "tokengate-nocache", "nginx", "haproxy-jwt"]),
        ("open", f"open loop, {fmt_int(machine['open_rate'])} requests/s",
         ["direct", "tokengate-rs256", "nginx", "haproxy-jwt"]),
    ], out / "latency.svg")


README_BEGIN = "<!-- peers summary: written by benches/peers/run.sh -->"
README_END = "<!-- end of peers summary -->"


def summary(stats, growth, dpop, machine, mem):
    """The README's excerpt: machine, targets, the 64-connection table, memory."""
    md = [f"From `{machine['command']}`{' (' + machine['date'] + ')' if machine.get('date') else ''} "
          f"at tokengate {machine['tokengate']} on {machine['cpu']} "
          f"({machine['cores']} cores, {machine['memory_gib']} GiB"
          f"{', ' + machine['virtualization'] if machine.get('virtualization') else ''}), "
          f"{machine['os']}, nginx {machine['nginx'].replace('nginx/', '')}, "
          f"{machine['haproxy'].split(' - ')[0].replace('HAProxy version ', 'HAProxy ')}; "
          f"{machine['rounds']} rounds, medians.", "",
          "| target (one proxy core each, same run) | measured | |", "|---|---|---|"]
    md += [f"| {n} | {m} | {v} |" for n, m, v in targets(stats, growth, dpop)]
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
