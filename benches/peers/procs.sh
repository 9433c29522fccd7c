# shellcheck shell=bash
# Shared by run.sh and profiles.sh (sourced, not run): logging, and the
# processes a run starts: each is recorded and stopped by its pid on exit.
# The caller sets RUN (the directory for process logs) before `start`.

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CPU CMD...: runs CMD pinned to CPU, logs to $RUN/NAME.log; its
# pid is left in LAST_PID and in the variable PID_<NAME>.
start() {
    local name="$1" cpu="$2"; shift 2
    taskset -c "$cpu" "$@" >"$RUN/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    printf -v "PID_${name//-/_}" '%s' "$LAST_PID"
}
