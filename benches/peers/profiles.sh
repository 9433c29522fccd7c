#!/usr/bin/env bash
# Proxy CPU per request of two tokengate binaries (say, the `release` and
# the `dist` build) under the same load: the cached RS256 JWT scenario of
# benches/peers/run.sh (64 connections, HTTP/1.1 keep-alive, closed loop,
# identity cache hit), each binary on one worker thread pinned to one core,
# the load generator and the upstream on another. Runs alternate A B, B A,
# A B... over the rounds; the summary gives medians, the spread and B/A.
#
#   benches/peers/profiles.sh A_BINARY B_BINARY    # 10 rounds of 5 s per run, ~2 minutes
#
# Options: --rounds N (10), --duration SECONDS (5), --loadgen PATH (the
# load generator; default: built with `cargo bench --bench loadgen
# --no-run`), --out DIR (raw results, default target/bench-profiles).
# Environment: PROXY_CPU (0), CLIENT_CPU (1), PORT_BASE (18500), WORKERS
# (server.worker_threads of both binaries, 1). Both CPU variables take
# taskset lists: `WORKERS=2 PROXY_CPU=0,1 CLIENT_CPU=0,1` compares two
# workers on both cores, sharing them with the load.
# docs/build.md has the figures this produced.
#
# Only 127.0.0.1 is used. Every process started here is stopped by its pid
# on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PEERS="$ROOT/benches/peers"
cd "$ROOT"

ROUNDS=10
DURATION=5
LOADGEN=""
OUT="$ROOT/target/bench-profiles"
BINS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift ;;
        --duration) DURATION="$2"; shift ;;
        --loadgen) LOADGEN="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        -*) echo "unknown option: $1" >&2; exit 2 ;;
        *) BINS+=("$1") ;;
    esac
    shift
done
[ "${#BINS[@]}" = 2 ] || { echo "usage: $0 A_BINARY B_BINARY [options]" >&2; exit 2; }
PROXY_CPU="${PROXY_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
P="${PORT_BASE:-18500}"
WORKERS="${WORKERS:-1}"

# shellcheck source=benches/peers/procs.sh
. "$ROOT/benches/peers/procs.sh"

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    die "nothing listens on 127.0.0.1:$1 (see $RUN/*.log)"
}

command -v taskset >/dev/null || die "taskset (util-linux) is required"
command -v python3 >/dev/null || die "python3 is required for the summary"
for bin in "${BINS[@]}"; do [ -x "$bin" ] || die "not an executable: $bin"; done
if [ -z "$LOADGEN" ]; then
    log "building the load generator (bench profile)"
    LOADGEN="$(cargo bench --bench loadgen --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "loadgen" and m.get("executable"):
        print(m["executable"])')"
fi
[ -x "$LOADGEN" ] || die "no load generator at '$LOADGEN'"

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
RUN="$OUT/run"
KEYS="$OUT/keys"
rm -rf "$RUN"
mkdir -p "$RUN"
RAW="$OUT/raw.jsonl"
: >"$RAW"

"$LOADGEN" keys --dir "$KEYS" --pool 100 >/dev/null
# shellcheck source=/dev/null
. "$KEYS/keys.env"

# The run.sh `tg` instance: 10 routes, one issuer, identity cache on.
config() {
    python3 - "$PEERS/tokengate.toml.in" "$RUN/$1.toml" "$2" "$((P + 1))" "$ISS" "$AUD" "$KEYS" "$WORKERS" <<'PY'
import sys
template, out, port, upstream, iss, aud, keys, workers = sys.argv[1:]
routes = "".join('\n[[routes]]\npath = "/svc%d/**"\nupstream = "up"\n' % i for i in range(1, 10))
text = open(template).read()
for name, value in (("PORT", port), ("CACHE_SIZE", "100000"), ("UPSTREAM_PORT", upstream),
                    ("ISS", iss), ("AUD", aud), ("KEYS", keys), ("TLS", ""), ("DPOP", ""),
                    ("MORE_ISSUERS", ""), ("ROUTES", routes)):
    text = text.replace("@%s@" % name, value)
assert text.count("worker_threads = 1\n") == 1, "no worker_threads = 1 in the template"
text = text.replace("worker_threads = 1\n", "worker_threads = %s\n" % workers)
open(out, "w").write(text)
PY
}

export RUST_LOG=warn
start upstream "$CLIENT_CPU" "$LOADGEN" upstream --listen "127.0.0.1:$((P + 1))"
UPSTREAM_PID=$LAST_PID
wait_port $((P + 1))
TG_PIDS=()
for i in 0 1; do
    config "tg$i" $((P + 10 + i))
    "${BINS[$i]}" check --config "$RUN/tg$i.toml" >/dev/null 2>"$RUN/tg$i.check.log" ||
        die "${BINS[$i]} rejects $RUN/tg$i.toml: $(cat "$RUN/tg$i.check.log")"
    start "tg$i" "$PROXY_CPU" "${BINS[$i]}" --log-format json --config "$RUN/tg$i.toml"
    TG_PIDS+=("$LAST_PID")
    wait_port $((P + 10 + i))
    taskset -c "$CLIENT_CPU" "$LOADGEN" check --url "http://127.0.0.1:$((P + 10 + i))/svc9/ping" \
        --tokens "$KEYS/token-rs256.txt" 2>>"$RUN/checks.log" || die "tg$i does not answer 200"
done

# measure ROUND I: one run against binary I.
measure() {
    local r="$1" i="$2"
    taskset -c "$CLIENT_CPU" "$LOADGEN" run --url "http://127.0.0.1:$((P + 10 + i))/svc9/ping" \
        --connections 64 --tokens "$KEYS/token-rs256.txt" \
        --duration "${DURATION}s" --warmup 1s \
        --proxy-pid "${TG_PIDS[$i]}" --side-pid "$UPSTREAM_PID" \
        --tag "round=$r" --tag "binary=$i" >>"$RAW" 2>>"$RUN/loadgen.log" ||
        die "run failed (see $RUN/loadgen.log)"
    tail -n 1 "$RUN/loadgen.log" >&2
}

log "A = ${BINS[0]}"
log "B = ${BINS[1]}"
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then measure "$r" 0; measure "$r" 1; else measure "$r" 1; measure "$r" 0; fi
done

python3 - "$RAW" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
def col(i, key):
    return [r[key] for r in runs if r["tags"]["binary"] == str(i)]
def f(x):
    return "%.0f" % x if abs(x) >= 100 else "%.3g" % x
print("%-22s %22s %22s %7s" % ("median (min-max)", "A", "B", "B/A"))
for key, label in (("proxy_cpu_us_per_req", "proxy CPU µs/request"), ("rps", "req/s"),
                   ("p99_us", "p99 µs"), ("other_cpu_util", "other work, cores")):
    a, b = col(0, key), col(1, key)
    ma, mb = statistics.median(a), statistics.median(b)
    print("%-22s %22s %22s %7.3f" % (label, "%s (%s-%s)" % (f(ma), f(min(a)), f(max(a))),
                                     "%s (%s-%s)" % (f(mb), f(min(b)), f(max(b))), mb / ma if ma else 0))
pairs = [b / a for a, b in zip(col(0, "proxy_cpu_us_per_req"), col(1, "proxy_cpu_us_per_req"))]
print("B/A of proxy CPU per request, round by round: median %.3f, min %.3f, max %.3f"
      % (statistics.median(pairs), min(pairs), max(pairs)))
PY
