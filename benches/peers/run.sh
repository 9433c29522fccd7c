#!/usr/bin/env bash
# Latency under load: tokengate against nginx (plain reverse proxy) and
# HAProxy 2.6 (jwt_verify), every proxy on one worker thread pinned to one
# core, the load generator (in-repo, and wrk) and the upstream (in-repo, and
# an nginx `return 200`) on another. Scenarios run interleaved (A B C,
# A B C...) over several rounds; the report pairs the targets within each
# round (median and range over the rounds) and gives the medians.
# docs/benchmarks/methodology.md says what is measured and how.
#
#   benches/peers/run.sh            # 7 rounds of 1 + 3 s per run, about 27
#                                   # minutes on a quiet 2-core machine;
#                                   # writes docs/benchmarks/ and the
#                                   # summary block of README.md
#   benches/peers/run.sh --quick    # 1 round of 2 s, small pools: a smoke
#                                   # run, written to target/bench-peers/report/
#   benches/peers/run.sh --only 'c64/(tokengate-rs256|tokengate-fleet)'
#                                   # only the runs whose SCENARIO/TARGET
#                                   # matches (an extended regex); no memory
#                                   # or criterion part; written to
#                                   # target/bench-peers/report/
#
# Options: --rounds N (7), --duration SECONDS (3, measured after 1 s of
# warm-up), --out DIR (raw results, default target/bench-peers),
# --no-install (never apt-get), --no-build (use the binaries already built:
# $CARGO_TARGET_DIR or target/: dist/tokengate and the newest bench
# executables in release/deps). Environment:
# PROXY_CPU (0), CLIENT_CPU (1), PORT_BASE (18000), OPEN_RATE (requests/s of
# the open-loop runs, 8000), HOLD_CONNECTIONS (10000), QUIET_WAIT (seconds
# to wait at most before a run for other work on the machine to stop, 10),
# QUIET_BUDGET (seconds all those waits may add up to, 300),
# DPOP_RATE (requests/s the DPoP run's pool of proofs is sized for, 40000).
#
# Installs Debian's haproxy, nginx, redis-server and wrk with apt-get when
# they are missing.
# Only 127.0.0.1 is used. Every process started here is stopped by its pid
# on exit.
# The PID_<name> variables are set by start (procs.sh), with printf -v.
# shellcheck disable=SC2154
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PEERS="$ROOT/benches/peers"
cd "$ROOT"

# 7 rounds: the machine's speed drifts by up to a quarter between rounds,
# so the targets are paired within rounds and need rounds more than long
# runs; 3 s keeps a full run under half an hour (methodology.md).
ROUNDS=7
DURATION=3
WARMUP=1
POOL=150000
QUICK=0
INSTALL=1
BUILD=1
OUT="$ROOT/target/bench-peers"
ONLY=""
# The options that shape the results, as machine.json records the command.
SHAPING=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; ROUNDS=1; DURATION=2; WARMUP=0.5; POOL=50000; SHAPING+=" --quick" ;;
        --rounds) ROUNDS="$2"; SHAPING+=" --rounds $2"; shift ;;
        --duration) DURATION="$2"; SHAPING+=" --duration $2"; shift ;;
        --out) OUT="$2"; shift ;;
        --no-install) INSTALL=0 ;;
        --no-build) BUILD=0 ;;
        --only) ONLY="$2"; SHAPING+=" --only '$2'"; shift ;;
        -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done
PROXY_CPU="${PROXY_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
P="${PORT_BASE:-18000}"
OPEN_RATE="${OPEN_RATE:-8000}"
HOLD="${HOLD_CONNECTIONS:-10000}"
[ "$QUICK" = 1 ] && HOLD="${HOLD_CONNECTIONS:-2000}"
# One proof per request of the DPoP run (warm-up included), signed before it.
DPOP_POOL=$(python3 -c 'import math, sys; print(math.ceil(float(sys.argv[1]) * (float(sys.argv[2]) + float(sys.argv[3]))))' \
    "${DPOP_RATE:-40000}" "$WARMUP" "$DURATION")

# shellcheck source=benches/peers/procs.sh
. "$ROOT/benches/peers/procs.sh"

# stop PID: one of ours, and forget it.
stop() {
    local pid="$1" kept=() p
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
    PIDS=("${kept[@]}")
}

# wait_port PORT: until something listens on 127.0.0.1:PORT (10 s at most).
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    die "nothing listens on 127.0.0.1:$1 (see $RUN/*.log)"
}

# port_free PORT: fails when something already listens there.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pids_of PID: PID and its children (nginx's master and worker).
pids_of() { echo "$1$(pgrep -P "$1" | sed 's/^/,/' | tr -d '\n')"; }

# rss_kib PIDS: resident memory of the comma-separated PIDS, summed.
rss_kib() {
    local total=0 pid kib
    for pid in ${1//,/ }; do
        kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${kib:-0}))
    done
    echo "$total"
}

# ---------------------------------------------------------------------------
# Prerequisites

[ "$(nproc)" -ge 2 ] || log "warning: fewer than 2 cores; proxy and load generator share one"
command -v taskset >/dev/null || die "taskset (util-linux) is required"
command -v python3 >/dev/null || die "python3 is required for the report"
if ! command -v haproxy >/dev/null || ! command -v nginx >/dev/null || ! command -v redis-server >/dev/null ||
    ! command -v wrk >/dev/null; then
    [ "$INSTALL" = 1 ] || die "haproxy, nginx, redis-server or wrk is missing (and --no-install was given)"
    log "installing haproxy, nginx, redis-server and wrk (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy nginx redis-server wrk >/dev/null
fi
haproxy -vv 2>/dev/null | grep -q 'OpenSSL' || die "this haproxy is built without OpenSSL (no jwt_verify)"
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((HOLD + 1000)) ] || die "open-file limit $(ulimit -n) is too low for $HOLD connections"

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
RUN="$OUT/run"
KEYS="$OUT/keys"
rm -rf "$RUN"
mkdir -p "$RUN"
RAW="$OUT/raw.jsonl"
MEM="$OUT/memory.jsonl"
: >"$RAW"
: >"$MEM"

# tokengate as shipped: the `dist` profile (fat LTO, one codegen unit), not
# the everyday `release` one. `cargo bench` builds the load generator and the
# auth bench with the `bench` profile, which matches `dist`.
if [ "$BUILD" = 1 ]; then
    log "building tokengate (dist profile) and the load generator (bench profile)"
    cargo build --profile dist --quiet
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
TOKENGATE="$TARGET_DIR/dist/tokengate"
# bench_binary NAME: the executable of the bench target NAME (built first,
# unless --no-build).
bench_binary() {
    if [ "$BUILD" = 1 ]; then
        cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null |
            python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$1"
    else
        find "$TARGET_DIR/release/deps" -maxdepth 1 -type f -executable -name "$1-*" -printf '%T@ %p\n' |
            sort -rn | head -n 1 | cut -d' ' -f2
    fi
}
LOADGEN="$(bench_binary loadgen)"
AUTHBENCH="$(bench_binary auth)"
[ -x "$TOKENGATE" ] || die "no tokengate binary at $TOKENGATE"
[ -x "$LOADGEN" ] || die "the loadgen bench did not build"
[ -x "$AUTHBENCH" ] || die "the auth bench did not build"

log "keys, tokens ($POOL pooled RS256 tokens) and certificates in $KEYS"
"$LOADGEN" keys --dir "$KEYS" --pool "$POOL"
# shellcheck source=/dev/null
. "$KEYS/keys.env"

# ---------------------------------------------------------------------------
# Configurations

# fill TEMPLATE OUT NAME=VALUE...: replaces each @NAME@.
fill() {
    local template="$1" out="$2" kv sed_args=()
    shift 2
    for kv in "$@"; do sed_args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${sed_args[@]}" "$template" >"$out"
}

# routes N: [[routes]] /svc1/** ... /svcN/** (the public route is the first).
routes() {
    local i
    for i in $(seq 1 "$1"); do
        printf '\n[[routes]]\npath = "/svc%d/**"\nupstream = "up"\n' "$i"
    done
}

# more_issuers N: issuers idp1 ... idpN (same keys, their own iss).
more_issuers() {
    local i
    for i in $(seq 1 "$1"); do
        printf '\n[issuers.idp%d]\nissuer = "%s"\njwks_file = "%s/jwks.json"\naudiences = ["%s"]\nalgorithms = ["RS256", "ES256"]\n' \
            "$i" "${ISS_PATTERN//\{\}/$i}" "$KEYS" "$AUD"
    done
}

routes 9 >"$RUN/routes-10"
routes 999 >"$RUN/routes-1000"
: >"$RUN/issuers-1"
more_issuers $((MANY_ISSUERS - 1)) >"$RUN/issuers-20"

# tokengate_config NAME PORT CACHE_SIZE ROUTES ISSUERS TLS(0|1) DPOP(0|1) [EXTRA]
# EXTRA: a file in $RUN appended to the configuration.
tokengate_config() {
    local tls="" dpop=""
    [ "$6" = 1 ] && tls="tls_cert = \"$KEYS/server.pem\"
tls_key = \"$KEYS/server.key\""
    [ "$7" = 1 ] && dpop="
[dpop]"
    fill "$PEERS/tokengate.toml.in" "$RUN/$1.toml.tmp" \
        "PORT=$2" "CACHE_SIZE=$3" "UPSTREAM_PORT=$((P + 1))" "ISS=$ISS" "AUD=$AUD" "KEYS=$KEYS"
    python3 - "$RUN/$1.toml.tmp" "$RUN/$1.toml" "$tls" "$RUN/$5" "$RUN/$4" "$dpop" <<'PY'
import sys
text = open(sys.argv[1]).read()
text = text.replace("@TLS@", sys.argv[3])
text = text.replace("@DPOP@", sys.argv[6])
text = text.replace("@MORE_ISSUERS@", open(sys.argv[4]).read())
text = text.replace("@ROUTES@", open(sys.argv[5]).read())
open(sys.argv[2], "w").write(text)
PY
    rm "$RUN/$1.toml.tmp"
    [ -n "${8:-}" ] && cat "$RUN/$8" >>"$RUN/$1.toml"
    "$TOKENGATE" check --config "$RUN/$1.toml" >/dev/null 2>"$RUN/$1.check.log" ||
        die "tokengate rejects $RUN/$1.toml: $(cat "$RUN/$1.check.log")"
}

# The fleet instance: a revocation list of 100,000 entries in Redis (none
# of them matches the benchmark's tokens) and a rate limit in Redis on
# /svc9/** (high enough never to refuse); /svc8/** has the list alone.
cat >"$RUN/fleet-extra" <<EOF

[redis]
url = "redis://127.0.0.1:$((P + 50))/0"

[revocation]
# The full resync (about 0.3 s of the proxy core's CPU and 0.1 s of Redis's
# for 100,000 entries) happens once at start, not during the runs: every
# 30 s (the default) it landed in whichever run was being measured.
sync_interval_s = 86400

[admin]
listen = "127.0.0.1:$((P + 51))"
api_token = "bench-admin-token-0123"

[rate_limits.bench]
key = "client_id"
requests = 1000000000
window_s = 1
EOF
# The gRPC instance: the upstream's h2c listener as an h2 upstream, for
# gRPC calls (/bench.Echo/**) and for HTTP/1.1 requests (/h2svc/**).
cat >"$RUN/grpc-extra" <<EOF

[upstreams.grpc]
url = "http://127.0.0.1:$((P + 2))"
protocol = "h2"

[[routes]]
path = "/bench.Echo/**"
upstream = "grpc"

[[routes]]
path = "/h2svc/**"
upstream = "grpc"
EOF

#                name      port      cache   routes      issuers   tls dpop extra
tokengate_config tg        $((P+10)) 100000  routes-10   issuers-1  0   1
tokengate_config tg-nocache $((P+11)) 0      routes-10   issuers-1  0   0
tokengate_config tg-fresh  $((P+12)) 100000  routes-10   issuers-1  0   0
tokengate_config tg-many   $((P+13)) 100000  routes-1000 issuers-20 0   0
tokengate_config tg-tls    $((P+14)) 100000  routes-10   issuers-1  1   0
tokengate_config tg-mem    $((P+40)) 100000  routes-10   issuers-1  0   0
tokengate_config tg-fleet  $((P+15)) 100000  routes-10   issuers-1  0   0   fleet-extra
tokengate_config tg-grpc   $((P+16)) 100000  routes-10   issuers-1  0   0   grpc-extra
# tokengate_variant BASE NAME OLD NEW [OLD NEW]...: NAME's configuration is
# BASE's with each OLD text (found exactly once) replaced by NEW.
tokengate_variant() {
    local base="$1" name="$2"
    shift 2
    python3 - "$RUN/$base.toml" "$RUN/$name.toml" "$@" <<'PY'
import sys
src, dst, *edits = sys.argv[1:]
text = open(src).read()
for old, new in zip(edits[::2], edits[1::2]):
    assert text.count(old) == 1, f"{src}: {old!r} is not there exactly once"
    text = text.replace(old, new)
open(dst, "w").write(text)
PY
    "$TOKENGATE" check --config "$RUN/$name.toml" >/dev/null 2>"$RUN/$name.check.log" ||
        die "tokengate rejects $RUN/$name.toml: $(cat "$RUN/$name.check.log")"
}
# Copies of tg on their own ports: one started with its access log on
# (RUST_LOG=info), one with two worker threads (on the same one core), one
# whose upstream is the `return 200` nginx of the wrk variant.
TG_LISTEN="listen = \"127.0.0.1:$((P + 10))\""
tokengate_variant tg tg-log "$TG_LISTEN" "listen = \"127.0.0.1:$((P + 17))\""
tokengate_variant tg tg-w2 "$TG_LISTEN" "listen = \"127.0.0.1:$((P + 18))\"" \
    "worker_threads = 1" "worker_threads = 2"
tokengate_variant tg tg-r200 "$TG_LISTEN" "listen = \"127.0.0.1:$((P + 19))\"" \
    "url = \"http://127.0.0.1:$((P + 1))\"" "url = \"http://127.0.0.1:$((P + 3))\""

# The rate limit goes on the last route (/svc9/**, the one measured).
python3 - "$RUN/tg-fleet.toml" <<'PY2'
import sys
path = sys.argv[1]
text = open(path).read()
marker = 'path = "/svc9/**"\nupstream = "up"\n'
assert marker in text, "no /svc9/** route"
open(path, "w").write(text.replace(marker, marker + 'rate_limit = "bench"\n'))
PY2
"$TOKENGATE" check --config "$RUN/tg-fleet.toml" >/dev/null 2>"$RUN/tg-fleet.check.log" ||
    die "tokengate rejects $RUN/tg-fleet.toml: $(cat "$RUN/tg-fleet.check.log")"

mkdir -p "$RUN/nginx/tmp" "$RUN/nginx-mem/tmp" "$RUN/nginx-r200/tmp"
fill "$PEERS/nginx.conf.in" "$RUN/nginx/nginx.conf" "RUN=$RUN/nginx" \
    "PORT=$((P + 20))" "TLS_PORT=$((P + 21))" "UPSTREAM_PORT=$((P + 1))" "KEYS=$KEYS" \
    "GRPC_PORT=$((P + 22))" "GRPC_UPSTREAM_PORT=$((P + 2))" \
    "R200_PORT=$((P + 23))" "R200_UPSTREAM_PORT=$((P + 3))" "LOG_PORT=$((P + 24))"
fill "$PEERS/nginx.conf.in" "$RUN/nginx-mem/nginx.conf" "RUN=$RUN/nginx-mem" \
    "PORT=$((P + 41))" "TLS_PORT=$((P + 42))" "UPSTREAM_PORT=$((P + 1))" "KEYS=$KEYS" \
    "GRPC_PORT=$((P + 43))" "GRPC_UPSTREAM_PORT=$((P + 2))" \
    "R200_PORT=$((P + 44))" "R200_UPSTREAM_PORT=$((P + 3))" "LOG_PORT=$((P + 45))"
fill "$PEERS/nginx-return200.conf.in" "$RUN/nginx-r200/nginx.conf" "RUN=$RUN/nginx-r200" "PORT=$((P + 3))"
fill "$PEERS/haproxy.cfg.in" "$RUN/haproxy.cfg" "PORT=$((P + 30))" "JWT_PORT=$((P + 31))" \
    "TLS_PORT=$((P + 32))" "UPSTREAM_PORT=$((P + 1))" "KEYS=$KEYS" "ISS=$ISS" "AUD=$AUD"
for conf in nginx nginx-r200; do
    nginx -t -q -p "$RUN/$conf" -c "$RUN/$conf/nginx.conf" -e "$RUN/$conf/error.log" ||
        die "nginx rejects $RUN/$conf/nginx.conf"
done
haproxy -c -q -f "$RUN/haproxy.cfg" || die "haproxy rejects $RUN/haproxy.cfg"

# Ports, PORT_BASE plus: 1-3 upstreams; 10-19 tokengate; 20-24 nginx;
# 30-32 HAProxy; 40-45 the memory instances; 50-51 Redis, fleet admin.
SERVED=($((P + 1)) $((P + 2)) $((P + 3)) $((P + 10)) $((P + 11)) $((P + 12)) $((P + 13))
    $((P + 14)) $((P + 15)) $((P + 16)) $((P + 17)) $((P + 18)) $((P + 19)) $((P + 20))
    $((P + 21)) $((P + 22)) $((P + 23)) $((P + 24)) $((P + 30)) $((P + 31)) $((P + 32)))
for port in "${SERVED[@]}" $((P + 40)) $((P + 41)) $((P + 42)) $((P + 43)) $((P + 44)) \
    $((P + 45)) $((P + 50)) $((P + 51)); do
    port_free "$port" || die "127.0.0.1:$port is in use; set PORT_BASE"
done

# ---------------------------------------------------------------------------
# Start everything

export RUST_LOG=warn
start upstream "$CLIENT_CPU" "$LOADGEN" upstream --listen "127.0.0.1:$((P + 1))" \
    --grpc-listen "127.0.0.1:$((P + 2))"
# The wrk variant's upstream, on the same core.
start nginx-r200 "$CLIENT_CPU" nginx -p "$RUN/nginx-r200" -c "$RUN/nginx-r200/nginx.conf" \
    -e "$RUN/nginx-r200/error.log"
# Redis for the fleet instance, on the load generator's core like the
# upstream: no persistence, loopback only.
start redis "$CLIENT_CPU" redis-server --port $((P + 50)) --bind 127.0.0.1 --save "" \
    --appendonly no --dir "$RUN"
wait_port $((P + 50))
REDIS=(redis-cli -p $((P + 50)))
# 100,000 revocations (80,000 jti, 10,000 sub, 10,000 client_id), written
# straight into the hash the fleet reads at start; none matches a
# benchmark token.
python3 - "$(date +%s)" <<'PY2' | "${REDIS[@]}" --pipe >"$RUN/redis-seed.log"
import json, sys
now = int(sys.argv[1])
def resp(*args):
    out = [f"*{len(args)}\r\n"]
    for a in args:
        b = a.encode()
        out.append(f"${len(b)}\r\n{a}\r\n")
    return "".join(out)
kinds = [("jti", 80000), ("sub", 10000), ("client_id", 10000)]
lines = []
n = 0
for kind, count in kinds:
    for i in range(count):
        n += 1
        entry = {"id": f"rv{n:06d}", kind: f"revoked-{kind}-{i}", "created_at": now, "expires_at": now + 86400}
        lines.append(resp("HSET", "tokengate:revocations", entry["id"], json.dumps(entry)))
sys.stdout.write("".join(lines))
PY2
[ "$("${REDIS[@]}" HLEN tokengate:revocations)" = 100000 ] || die "the revocation list was not seeded (see $RUN/redis-seed.log)"
for name in tg tg-nocache tg-fresh tg-many tg-tls tg-fleet tg-grpc tg-w2 tg-r200; do
    start "$name" "$PROXY_CPU" "$TOKENGATE" --log-format json --config "$RUN/$name.toml"
done
# Its access log (one JSON event per request, on stderr) goes to
# $RUN/tg-log.log, a file, as start redirects it.
start tg-log "$PROXY_CPU" env RUST_LOG=info "$TOKENGATE" --log-format json --config "$RUN/tg-log.toml"
start nginx "$PROXY_CPU" nginx -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" -e "$RUN/nginx/error.log"
start haproxy "$PROXY_CPU" haproxy -db -f "$RUN/haproxy.cfg"
for port in "${SERVED[@]}"; do
    wait_port "$port"
done
NGINX_PIDS="$(pids_of "$PID_nginx")"
R200_PIDS="$(pids_of "$PID_nginx_r200")"

U="http://127.0.0.1"
S="https://127.0.0.1"
TOK_RS="$KEYS/token-rs256.txt"
TOK_ES="$KEYS/token-es256.txt"
TOK_OPAQUE="$KEYS/token-opaque.txt"
TOK_MANY="$KEYS/token-many.txt"
TOK_POOL="$KEYS/tokens-rs256-pool.txt"
TOK_BAD="$KEYS/token-bad.txt"
TOK_DPOP="$KEYS/token-dpop.txt"
DPOP_KEY=(--dpop-key "$KEYS/dpop-key.pem")

# Every target answers as expected before anything is measured, and the
# enforcing ones refuse a token signed by another key.
check() { taskset -c "$CLIENT_CPU" "$LOADGEN" check "$@" 2>>"$RUN/checks.log" || die "check failed: $*"; }
log "checking every target"
check --url "$U:$((P + 1))/svc9/ping"
check --url "$U:$((P + 10))/public/ping"
check --url "$U:$((P + 10))/svc9/ping" --tokens "$TOK_RS"
check --url "$U:$((P + 10))/svc9/ping" --tokens "$TOK_ES"
check --url "$U:$((P + 10))/svc9/ping" --tokens "$TOK_OPAQUE"
check --url "$U:$((P + 10))/svc9/ping" --tokens "$TOK_BAD" --expect 401
check --url "$U:$((P + 10))/svc9/ping" --expect 401
check --url "$U:$((P + 10))/svc9/ping" --tokens "$TOK_DPOP" "${DPOP_KEY[@]}"
check --url "$U:$((P + 10))/svc9/ping" --tokens "$TOK_DPOP" --expect 401
check --url "$U:$((P + 11))/svc9/ping" --tokens "$TOK_RS"
check --url "$U:$((P + 13))/svc999/ping" --tokens "$TOK_MANY"
check --url "$S:$((P + 14))/svc9/ping" --tokens "$TOK_RS" --tls-ca "$KEYS/ca.pem"
check --url "$S:$((P + 14))/svc9/ping" --tokens "$TOK_RS" --tls-ca "$KEYS/ca.pem" --h2
check --url "$U:$((P + 20))/svc9/ping"
check --url "$S:$((P + 21))/svc9/ping" --tls-ca "$KEYS/ca.pem"
check --url "$S:$((P + 21))/svc9/ping" --tls-ca "$KEYS/ca.pem" --h2
check --url "$U:$((P + 30))/svc9/ping"
check --url "$U:$((P + 31))/svc9/ping" --tokens "$TOK_RS"
check --url "$U:$((P + 31))/svc9/ping" --tokens "$TOK_BAD" --expect 401
check --url "$U:$((P + 31))/svc9/ping" --expect 401
check --url "$S:$((P + 32))/svc9/ping" --tokens "$TOK_RS" --tls-ca "$KEYS/ca.pem" --h2
check --url "$U:$((P + 15))/svc9/ping" --tokens "$TOK_RS"
check --url "$U:$((P + 15))/svc8/ping" --tokens "$TOK_RS"
check --url "$U:$((P + 15))/svc9/ping" --tokens "$TOK_BAD" --expect 401
GRPC=(--h2 --grpc)
check --url "$U:$((P + 2))/bench.Echo/Call" "${GRPC[@]}"
check --url "$U:$((P + 22))/bench.Echo/Call" "${GRPC[@]}"
check --url "$U:$((P + 16))/bench.Echo/Call" "${GRPC[@]}" --tokens "$TOK_RS"
check --url "$U:$((P + 16))/h2svc/ping" --tokens "$TOK_RS"
check --url "$U:$((P + 17))/svc9/ping" --tokens "$TOK_RS"
check --url "$U:$((P + 18))/svc9/ping" --tokens "$TOK_RS"
check --url "$U:$((P + 24))/svc9/ping" --tokens "$TOK_RS"
check --url "$U:$((P + 3))/svc9/ping" --tokens "$TOK_RS"
check --url "$U:$((P + 23))/svc9/ping" --tokens "$TOK_RS"
check --url "$U:$((P + 19))/svc9/ping" --tokens "$TOK_RS"
check --url "$U:$((P + 19))/svc9/ping" --tokens "$TOK_BAD" --expect 401

# Both access logs are written (nginx's buffer is flushed within a second).
for _ in $(seq 50); do
    grep -q '"method"' "$RUN/nginx/access.log" 2>/dev/null &&
        grep -q 'tokengate::access' "$RUN/tg-log.log" && break
    sleep 0.1
done
grep -q '"method"' "$RUN/nginx/access.log" 2>/dev/null || die "nginx wrote no access log to $RUN/nginx/access.log"
grep -q 'tokengate::access' "$RUN/tg-log.log" || die "tokengate wrote no access log to $RUN/tg-log.log"

# The fleet instance holds the whole list before it is measured.
for _ in $(seq 100); do
    held=$(python3 - "http://127.0.0.1:$((P + 51))/revocations" <<'PY2' 2>/dev/null || echo 0
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer bench-admin-token-0123"})
print(len(json.load(urllib.request.urlopen(req, timeout=5))["revocations"]))
PY2
)
    [ "$held" = 100000 ] && break
    sleep 0.2
done
[ "$held" = 100000 ] || die "the fleet instance holds $held revocations, not 100000"

# Redis operations per request on the rate-limited route: 200 requests
# with nothing else running.
"${REDIS[@]}" CONFIG RESETSTAT >/dev/null
for _ in $(seq 200); do check --url "$U:$((P + 15))/svc9/ping" --tokens "$TOK_RS"; done
"${REDIS[@]}" INFO commandstats >"$RUN/redis-commandstats.txt"
FLEET="$OUT/fleet.json"
python3 - "$RUN/redis-commandstats.txt" "$FLEET" <<'PY2'
import json, re, sys
calls = {}
for line in open(sys.argv[1]):
    m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line.strip())
    if m and m.group(1) not in ("info", "config|resetstat", "config"):
        calls[m.group(1)] = int(m.group(2))
json.dump({"requests": 200, "redis_commands": sum(calls.values()), "by_command": calls},
          open(sys.argv[2], "w"), indent=1)
PY2
log "Redis commands for 200 rate-limited requests: $(tr -d '\n ' <"$FLEET")"

# ---------------------------------------------------------------------------
# The runs

# busy_ticks: CPU ticks the whole machine has spent busy.
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# wait_quiet: on a shared machine, wait (up to QUIET_WAIT seconds) until
# other work uses less than a tenth of a core, so it does not land in the
# measurement. Whatever still runs is recorded per run (other_cpu_util)
# and flagged in the report. The waits of a whole run add up to
# QUIET_BUDGET seconds at most, so a long build elsewhere cannot stretch
# a full run by more; after that, runs just keep half a second apart.
QUIET_LEFT=$((2 * ${QUIET_BUDGET:-300}))
wait_quiet() {
    local waited=0 a b
    if [ "$QUIET_LEFT" -le 0 ]; then
        sleep 0.5
        return 0
    fi
    while [ "$waited" -lt $((2 * ${QUIET_WAIT:-10})) ] && [ "$QUIET_LEFT" -gt 0 ]; do
        a=$(busy_ticks); sleep 0.5; b=$(busy_ticks)
        [ $((b - a)) -le 5 ] && return 0
        waited=$((waited + 1))
        QUIET_LEFT=$((QUIET_LEFT - 1))
    done
    [ "$QUIET_LEFT" -gt 0 ] || log "warning: the QUIET_BUDGET of waits for a quiet machine is spent; no more waiting"
    log "warning: the machine is busy with other work; measuring anyway"
}

# measure ROUND SCENARIO TARGET PROXY_PIDS LOADGEN_ARGS...: one run; its
# JSON line goes to $RAW.
measure() {
    local round="$1" scenario="$2" target="$3" pids="$4"
    shift 4
    [ -z "$ONLY" ] || [[ "$scenario/$target" =~ $ONLY ]] || return 0
    wait_quiet
    local pid_args=()
    [ -n "$pids" ] && pid_args=(--proxy-pid "$pids")
    if ! taskset -c "$CLIENT_CPU" "$LOADGEN" run "$@" \
        --duration "${DURATION}s" --warmup "${WARMUP}s" \
        "${pid_args[@]}" --side-pid "$PID_upstream" \
        --tag "round=$round" --tag "scenario=$scenario" --tag "target=$target" \
        >>"$RAW" 2>>"$RUN/loadgen.log"; then
        log "warning: run failed: $scenario / $target (see $RUN/loadgen.log)"
    fi
    tail -n 1 "$RUN/loadgen.log" >&2
}

# measure_wrk ROUND SCENARIO TARGET PROXY_PIDS URL: one wrk run (one
# thread, 64 connections, the RS256 token as a fixed header) after an
# unmeasured one for the warm-up; wrk.py turns it into a line like the load
# generator's, with the proxy's CPU sampled from /proc around the run.
measure_wrk() {
    local round="$1" scenario="$2" target="$3" pids="$4" url="$5"
    [ -z "$ONLY" ] || [[ "$scenario/$target" =~ $ONLY ]] || return 0
    wait_quiet
    if ! taskset -c "$CLIENT_CPU" python3 "$PEERS/wrk.py" --url "$url" --token-file "$TOK_RS" \
        --connections 64 --duration "$DURATION" --warmup "$WARMUP" --cpu "$CLIENT_CPU" \
        --proxy-pid "$pids" --side-pid "$R200_PIDS" \
        --tag "round=$round" --tag "scenario=$scenario" --tag "target=$target" \
        >>"$RAW" 2>>"$RUN/loadgen.log"; then
        log "warning: run failed: $scenario / $target (see $RUN/loadgen.log)"
    fi
    tail -n 1 "$RUN/loadgen.log" >&2
}

# A fresh identity cache for every fresh-token run: restart tg-fresh.
restart_fresh() {
    stop "$PID_tg_fresh"
    start tg-fresh "$PROXY_CPU" "$TOKENGATE" --log-format json --config "$RUN/tg-fresh.toml"
    wait_port $((P + 12))
}

one_round() {
    local r="$1" c1=(--connections 1) c64=(--connections 64) ca=(--tls-ca "$KEYS/ca.pem")
    # One connection: the latency each proxy adds.
    measure "$r" c1 direct "" --url "$U:$((P + 1))/svc9/ping" "${c1[@]}" --tokens "$TOK_RS"
    measure "$r" c1 tokengate-public "$PID_tg" --url "$U:$((P + 10))/public/ping" "${c1[@]}"
    measure "$r" c1 tokengate-rs256 "$PID_tg" --url "$U:$((P + 10))/svc9/ping" "${c1[@]}" --tokens "$TOK_RS"
    measure "$r" c1 nginx "$NGINX_PIDS" --url "$U:$((P + 20))/svc9/ping" "${c1[@]}" --tokens "$TOK_RS"
    measure "$r" c1 haproxy-jwt "$PID_haproxy" --url "$U:$((P + 31))/svc9/ping" "${c1[@]}" --tokens "$TOK_RS"

    # 64 connections, HTTP/1.1 keep-alive, closed loop.
    measure "$r" c64 direct "" --url "$U:$((P + 1))/svc9/ping" "${c64[@]}" --tokens "$TOK_RS"
    measure "$r" c64 tokengate-public "$PID_tg" --url "$U:$((P + 10))/public/ping" "${c64[@]}"
    measure "$r" c64 nginx "$NGINX_PIDS" --url "$U:$((P + 20))/svc9/ping" "${c64[@]}" --tokens "$TOK_RS"
    # nginx's server with an access log, in the same process as the one above.
    measure "$r" c64 nginx-log "$NGINX_PIDS" --url "$U:$((P + 24))/svc9/ping" "${c64[@]}" --tokens "$TOK_RS"
    measure "$r" c64 haproxy "$PID_haproxy" --url "$U:$((P + 30))/svc9/ping" "${c64[@]}" --tokens "$TOK_RS"
    measure "$r" c64 tokengate-rs256 "$PID_tg" --url "$U:$((P + 10))/svc9/ping" "${c64[@]}" --tokens "$TOK_RS"
    # tg's configuration with the access log on, then with two worker threads.
    measure "$r" c64 tokengate-log "$PID_tg_log" --url "$U:$((P + 17))/svc9/ping" "${c64[@]}" --tokens "$TOK_RS"
    measure "$r" c64 tokengate-w2 "$PID_tg_w2" --url "$U:$((P + 18))/svc9/ping" "${c64[@]}" --tokens "$TOK_RS"
    # The same instance and route, a DPoP-bound token: a fresh proof per request.
    measure "$r" c64 tokengate-dpop "$PID_tg" --url "$U:$((P + 10))/svc9/ping" "${c64[@]}" --tokens "$TOK_DPOP" \
        "${DPOP_KEY[@]}" --dpop-proofs "$DPOP_POOL"
    # The same token at the fleet instance: 100,000 revocations, and a rate
    # limit in Redis (/svc9) or none (/svc8).
    measure "$r" c64 tokengate-fleet "$PID_tg_fleet" --url "$U:$((P + 15))/svc9/ping" "${c64[@]}" --tokens "$TOK_RS"
    measure "$r" c64 tokengate-revocation "$PID_tg_fleet" --url "$U:$((P + 15))/svc8/ping" "${c64[@]}" --tokens "$TOK_RS"
    # HTTP/1.1 client, h2 upstream.
    measure "$r" c64 tokengate-h2-upstream "$PID_tg_grpc" --url "$U:$((P + 16))/h2svc/ping" "${c64[@]}" --tokens "$TOK_RS"
    measure "$r" c64 tokengate-es256 "$PID_tg" --url "$U:$((P + 10))/svc9/ping" "${c64[@]}" --tokens "$TOK_ES"
    measure "$r" c64 tokengate-opaque "$PID_tg" --url "$U:$((P + 10))/svc9/ping" "${c64[@]}" --tokens "$TOK_OPAQUE"
    measure "$r" c64 tokengate-many "$PID_tg_many" --url "$U:$((P + 13))/svc999/ping" "${c64[@]}" --tokens "$TOK_MANY"
    measure "$r" c64 tokengate-nocache "$PID_tg_nocache" --url "$U:$((P + 11))/svc9/ping" "${c64[@]}" --tokens "$TOK_RS"
    measure "$r" c64 haproxy-jwt "$PID_haproxy" --url "$U:$((P + 31))/svc9/ping" "${c64[@]}" --tokens "$TOK_RS"
    restart_fresh
    measure "$r" c64 tokengate-fresh "$PID_tg_fresh" --url "$U:$((P + 12))/svc9/ping" "${c64[@]}" --tokens "$TOK_POOL"
    measure "$r" c64 haproxy-jwt-fresh "$PID_haproxy" --url "$U:$((P + 31))/svc9/ping" "${c64[@]}" --tokens "$TOK_POOL"

    # wrk, one thread and 64 connections, against an nginx answering
    # `return 200` itself: the setup most proxy comparisons use.
    measure_wrk "$r" wrk direct "" "$U:$((P + 3))/svc9/ping"
    measure_wrk "$r" wrk nginx "$NGINX_PIDS" "$U:$((P + 23))/svc9/ping"
    measure_wrk "$r" wrk tokengate-rs256 "$PID_tg_r200" "$U:$((P + 19))/svc9/ping"

    # TLS, keep-alive: HTTP/1.1, then h2 (one stream at a time per connection).
    measure "$r" tls-h1 tokengate-rs256 "$PID_tg_tls" --url "$S:$((P + 14))/svc9/ping" "${c64[@]}" "${ca[@]}" --tokens "$TOK_RS"
    measure "$r" tls-h1 nginx "$NGINX_PIDS" --url "$S:$((P + 21))/svc9/ping" "${c64[@]}" "${ca[@]}" --tokens "$TOK_RS"
    measure "$r" tls-h1 haproxy-jwt "$PID_haproxy" --url "$S:$((P + 32))/svc9/ping" "${c64[@]}" "${ca[@]}" --tokens "$TOK_RS"
    measure "$r" tls-h2 tokengate-rs256 "$PID_tg_tls" --url "$S:$((P + 14))/svc9/ping" "${c64[@]}" "${ca[@]}" --tokens "$TOK_RS" --h2
    measure "$r" tls-h2 nginx "$NGINX_PIDS" --url "$S:$((P + 21))/svc9/ping" "${c64[@]}" "${ca[@]}" --tokens "$TOK_RS" --h2
    measure "$r" tls-h2 haproxy-jwt "$PID_haproxy" --url "$S:$((P + 32))/svc9/ping" "${c64[@]}" "${ca[@]}" --tokens "$TOK_RS" --h2

    # A full TLS handshake (no resumption) and one HTTP/1.1 request per connection.
    measure "$r" handshakes tokengate-rs256 "$PID_tg_tls" --url "$S:$((P + 14))/svc9/ping" "${c64[@]}" "${ca[@]}" --tokens "$TOK_RS" --handshakes
    measure "$r" handshakes nginx "$NGINX_PIDS" --url "$S:$((P + 21))/svc9/ping" "${c64[@]}" "${ca[@]}" --tokens "$TOK_RS" --handshakes
    measure "$r" handshakes haproxy-jwt "$PID_haproxy" --url "$S:$((P + 32))/svc9/ping" "${c64[@]}" "${ca[@]}" --tokens "$TOK_RS" --handshakes

    # gRPC unary calls over h2c, one stream at a time per connection.
    local grpc=(--connections 64 --h2 --grpc)
    measure "$r" grpc direct "" --url "$U:$((P + 2))/bench.Echo/Call" "${grpc[@]}"
    measure "$r" grpc nginx-grpc "$NGINX_PIDS" --url "$U:$((P + 22))/bench.Echo/Call" "${grpc[@]}"
    measure "$r" grpc tokengate-grpc "$PID_tg_grpc" --url "$U:$((P + 16))/bench.Echo/Call" "${grpc[@]}" --tokens "$TOK_RS"

    # Open loop at a fixed rate: latency from each request's due time.
    local open=(--connections 64 --rate "$OPEN_RATE")
    measure "$r" open direct "" --url "$U:$((P + 1))/svc9/ping" "${open[@]}" --tokens "$TOK_RS"
    measure "$r" open tokengate-rs256 "$PID_tg" --url "$U:$((P + 10))/svc9/ping" "${open[@]}" --tokens "$TOK_RS"
    measure "$r" open nginx "$NGINX_PIDS" --url "$U:$((P + 20))/svc9/ping" "${open[@]}" --tokens "$TOK_RS"
    measure "$r" open haproxy-jwt "$PID_haproxy" --url "$U:$((P + 31))/svc9/ping" "${open[@]}" --tokens "$TOK_RS"
}

STARTED=$(date +%s)
for r in $(seq 1 "$ROUNDS"); do
    log "round $r of $ROUNDS"
    one_round "$r"
done

# What the two access logs hold: lines, bytes and a sample line.
ACCESS="$OUT/access-logs.json"
sleep 1.5 # nginx flushes its buffer within a second
python3 - "$RUN/tg-log.log" "$RUN/nginx/access.log" "$ACCESS" <<'PY'
import json, sys
def scan(path, marker):
    lines = size = 0
    sample = None
    with open(path, "rb") as f:
        for line in f:
            if marker in line:
                lines += 1
                size += len(line)
                sample = sample or line.decode(errors="replace").strip()
    return {"lines": lines, "bytes": size, "sample": sample}
json.dump({"tokengate": scan(sys.argv[1], b"tokengate::access"),
           "nginx": scan(sys.argv[2], b'"method"')}, open(sys.argv[3], "w"), indent=1)
PY

# ---------------------------------------------------------------------------
# Resident memory: fresh instances, idle, then holding $HOLD connections.
# tokengate and nginx only: HAProxy reserves two descriptors per connection
# and would need a higher open-file limit than many machines allow.

# memory NAME PIDS URL: idle RSS after a few requests, then with $HOLD idle
# keep-alive connections open (each has served one request).
memory() {
    local name="$1" pids="$2" url="$3"
    for _ in 1 2 3; do check --url "$url"; done
    sleep 1
    local idle held holding
    idle=$(rss_kib "$pids")
    start "hold-$name" "$CLIENT_CPU" "$LOADGEN" hold --url "$url" --connections "$HOLD" --duration 120s
    local hold_pid
    eval "hold_pid=\$PID_hold_${name//-/_}"
    for _ in $(seq 600); do
        grep -q '^holding' "$RUN/hold-$name.log" 2>/dev/null && break
        kill -0 "$hold_pid" 2>/dev/null || die "hold against $name exited: $(cat "$RUN/hold-$name.log")"
        sleep 0.1
    done
    holding=$(sed -n 's/^holding \([0-9]*\).*/\1/p' "$RUN/hold-$name.log")
    [ -n "$holding" ] || die "hold against $name did not get its connections"
    # tokengate parks an HTTP/1.1 connection after 1 s of quiet
    # (server::PARK_AFTER) and returns the freed pages a moment later;
    # the last connection got its request just before "holding".
    sleep 3
    held=$(rss_kib "$pids")
    stop "$hold_pid"
    printf '{"target":"%s","idle_kib":%s,"held_kib":%s,"connections":%s}\n' \
        "$name" "$idle" "$held" "$holding" >>"$MEM"
    log "memory $name: idle $idle KiB, $held KiB with $holding connections"
}

if [ -z "$ONLY" ]; then
log "resident memory with $HOLD idle connections"
start tg-mem "$PROXY_CPU" "$TOKENGATE" --log-format json --config "$RUN/tg-mem.toml"
start nginx-mem "$PROXY_CPU" nginx -p "$RUN/nginx-mem" -c "$RUN/nginx-mem/nginx.conf" -e "$RUN/nginx-mem/error.log"
wait_port $((P + 40)); wait_port $((P + 41))
memory tokengate "$PID_tg_mem" "$U:$((P + 40))/public/ping"
memory nginx "$(pids_of "$PID_nginx_mem")" "$U:$((P + 41))/svc9/ping"
fi

# ---------------------------------------------------------------------------
# In process, with criterion on the proxy's core (benches/auth.rs):
# - config growth: what 1,000 routes and 20 issuers add to the per-request
#   work that depends on the configuration (route lookup, the route's
#   issuers, cached identity, scopes). A difference under 1 us is far below
#   what throughput on a shared machine can resolve (group config_growth);
# - one ES256 DPoP proof's verification (group dpop);
# - the RS256 verification floor of the identity-cache-off row: the whole
#   token check (verify/uncached/RS256) and the signature alone
#   (rs256/tokengate_signature).

GROWTH="$OUT/growth.json"
DPOP_VERIFY="$OUT/dpop.json"
RS256_VERIFY="$OUT/rs256.json"
# criterion_medians DIR OUT NAME...: the median (and its confidence
# interval) of each benchmark DIR/NAME, as JSON in OUT.
criterion_medians() {
    python3 - "$@" <<'PY'
import json, pathlib, sys
base, dest, names = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
out = {}
for name in names:
    est = json.loads((base / name / "new" / "estimates.json").read_text())
    out[name] = {"median_ns": est["median"]["point_estimate"],
                 "low_ns": est["median"]["confidence_interval"]["lower_bound"],
                 "high_ns": est["median"]["confidence_interval"]["upper_bound"]}
json.dump(out, open(dest, "w"), indent=1)
PY
}
# medians_line FILE SCALE UNIT: "name 1.2 unit, ..." for the log.
medians_line() {
    python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(", ".join("%s %.1f %s" % (k, v["median_ns"] / float(sys.argv[2]), sys.argv[3]) for k, v in d.items()))' "$@"
}
if [ -z "$ONLY" ]; then
log "criterion on the proxy's core: config_growth, dpop, verify/uncached/RS256 and rs256/tokengate_signature of benches/auth.rs"
rm -rf "$OUT/criterion"
CRITERION_HOME="$OUT/criterion" taskset -c "$PROXY_CPU" "$AUTHBENCH" \
    --bench '^(config_growth|dpop)/|^verify/uncached/RS256$|^rs256/tokengate_signature$' \
    --noplot >"$RUN/criterion.log" 2>&1 || die "the auth bench failed (see $RUN/criterion.log)"
criterion_medians "$OUT/criterion/config_growth" "$GROWTH" 10_routes_1_issuer 1000_routes_20_issuers
criterion_medians "$OUT/criterion/dpop" "$DPOP_VERIFY" \
    verify_es256 es256_signature es256_key_parse verify_and_remember_es256
criterion_medians "$OUT/criterion" "$RS256_VERIFY" verify/uncached/RS256 rs256/tokengate_signature
log "config growth: $(medians_line "$GROWTH" 1 ns)"
log "DPoP: $(medians_line "$DPOP_VERIFY" 1000 µs)"
log "RS256: $(medians_line "$RS256_VERIFY" 1000 µs)"
fi

# ---------------------------------------------------------------------------
# Machine and report

python3 - "$OUT/machine.json" <<PY
import json, os, platform, subprocess, sys
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return ""
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
info = {
    "cpu": cpu,
    "cores": os.cpu_count(),
    "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    "kernel": platform.release(),
    "os": sh(". /etc/os-release && echo \$PRETTY_NAME"),
    "virtualization": ", ".join(v for v in (
        sh("systemd-detect-virt --vm 2>/dev/null | grep -v none | sed 's/.*/& virtual machine/'")
        or sh("grep -qw hypervisor /proc/cpuinfo && echo 'virtual machine'"),
        sh("systemd-detect-virt --container 2>/dev/null | grep -v none | sed 's/.*/& container/'")) if v),
    "rustc": sh("rustc --version"),
    "tokengate": sh("git -C '$ROOT' rev-parse --short HEAD") + (" (with uncommitted changes)" if sh("git -C '$ROOT' status --porcelain -- src Cargo.toml") else ""),
    "nginx": sh("nginx -v 2>&1").replace("nginx version: ", ""),
    "haproxy": sh("haproxy -v | head -1"),
    "wrk": sh("wrk -v 2>&1 | head -1").split(" [")[0],
    "rounds": $ROUNDS, "duration_s": $DURATION, "warmup_s": $WARMUP,
    "open_rate": $OPEN_RATE, "hold_connections": $HOLD, "pool": $POOL, "dpop_pool": $DPOP_POOL,
    "proxy_cpu": "$PROXY_CPU", "client_cpu": "$CLIENT_CPU",
    "command": "benches/peers/run.sh$SHAPING",
    "date": sh("date -u +%F"),
    "elapsed_s": $(($(date +%s) - STARTED)),
}
json.dump(info, open(sys.argv[1], "w"), indent=1)
PY

REPORT="$ROOT/docs/benchmarks"
[ "$QUICK" = 1 ] || [ -n "$ONLY" ] && REPORT="$OUT/report"
mkdir -p "$REPORT"
cp "$RAW" "$REPORT/raw.jsonl"
cp "$MEM" "$REPORT/memory.jsonl"
cp "$OUT/machine.json" "$REPORT/machine.json"
cp "$FLEET" "$REPORT/fleet.json"
cp "$ACCESS" "$REPORT/access-logs.json"
EXTRA_ARGS=(--fleet "$FLEET" --access-logs "$ACCESS")
if [ -z "$ONLY" ]; then
    cp "$GROWTH" "$REPORT/growth.json"
    cp "$DPOP_VERIFY" "$REPORT/dpop.json"
    cp "$RS256_VERIFY" "$REPORT/rs256.json"
    EXTRA_ARGS+=(--growth "$GROWTH" --dpop "$DPOP_VERIFY" --rs256 "$RS256_VERIFY")
fi
[ "$QUICK" = 1 ] || [ -n "$ONLY" ] || EXTRA_ARGS+=(--readme "$ROOT/README.md")
python3 "$PEERS/report.py" --raw "$RAW" --memory "$MEM" --machine "$OUT/machine.json" \
    --out "$REPORT" "${EXTRA_ARGS[@]}"
log "done in $(($(date +%s) - STARTED)) s: $REPORT/results.md, $REPORT/latency.svg"
