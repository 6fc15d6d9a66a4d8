#!/usr/bin/env bash
# Throughput and latency of recserve against the reference Python service (FastAPI + uvicorn,
# 2 workers, onnxruntime) on the same model, measured in the same run by the same load
# generator, closed loop over loopback.
#
#   bench/run.sh                       # defaults below
#   BENCH_DURATION=30 bench/run.sh     # longer run
#
# Environment (all optional):
#   BENCH_MODEL_DIR    model repository              (fixtures/models)
#   BENCH_MODEL        model name in it              (mlp; version 1 is used for the reference)
#   BENCH_CONCURRENCY  concurrent connections        (32)
#   BENCH_ROWS         rows per request              (1)
#   BENCH_DURATION     measured seconds per server   (10)
#   BENCH_WARMUP       warm-up seconds per server    (2)
#   BENCH_SERVERS      which servers to measure      ("reference recserve")
#   SKIP_BUILD=1       do not run cargo build
#
# Writes bench/results/<time>-<server>.json (the load generator's reports) and
# bench/results/<time>-summary.txt. Only one server runs at a time, so the two do not compete
# for the CPU with each other, only with the load generator. Every server this script starts is
# stopped when it exits, however it exits.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MODEL_DIR="${BENCH_MODEL_DIR:-fixtures/models}"
MODEL="${BENCH_MODEL:-mlp}"
CONCURRENCY="${BENCH_CONCURRENCY:-32}"
ROWS="${BENCH_ROWS:-1}"
DURATION="${BENCH_DURATION:-10}"
WARMUP="${BENCH_WARMUP:-2}"
SERVERS="${BENCH_SERVERS:-reference recserve}"
VENV="$ROOT/.venv-bench"
RESULTS="$ROOT/bench/results"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
ONNX="$MODEL_DIR/$MODEL/1/model.onnx"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- cleanup: stop every server we started (each runs in its own process group) -------------
STARTED_PGIDS=()
stop_group() {
    local pgid="$1"
    kill -0 -- "-$pgid" 2>/dev/null || return 0
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 -- "-$pgid" 2>/dev/null || return 0
        sleep 0.2
    done
    log "process group $pgid did not stop in 10 s; killing it"
    kill -KILL -- "-$pgid" 2>/dev/null || true
}
DATA_DIR=""
LOADGEN_PID=""
cleanup() {
    local pgid
    if [[ -n "$LOADGEN_PID" ]]; then
        kill "$LOADGEN_PID" 2>/dev/null || true
    fi
    for pgid in "${STARTED_PGIDS[@]}"; do
        stop_group "$pgid"
    done
    if [[ -n "$DATA_DIR" ]]; then
        rm -rf "$DATA_DIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build ---------------------------------------------------------------------------------
[[ -f "$ONNX" ]] || die "model $ONNX not found (set BENCH_MODEL_DIR / BENCH_MODEL)"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "cargo build --release"
    cargo build --release
fi
RECSERVE="$ROOT/target/release/recserve"
if [[ -x "$RECSERVE" ]] && "$RECSERVE" bench --help >/dev/null 2>&1; then
    LOADGEN=("$RECSERVE" bench)
else
    log "recserve has no bench subcommand yet; using the loadgen example"
    if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
        cargo build --release -p recserve-loadgen --example loadgen
    fi
    LOADGEN=("$ROOT/target/release/examples/loadgen")
    [[ -x "${LOADGEN[0]}" ]] || die "${LOADGEN[0]} not built"
fi

# --- Python environment for the reference service -------------------------------------------
REQS="$ROOT/bench/reference/requirements.txt"
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
fi
if ! cmp -s "$REQS" "$VENV/.requirements.installed"; then
    log "installing bench/reference/requirements.txt"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
    cp "$REQS" "$VENV/.requirements.installed"
fi
PY="$VENV/bin/python"

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready PID URL LOGFILE: poll URL until it answers 200, fail if PID dies or 60 s pass.
wait_ready() {
    local pid="$1" url="$2" logfile="$3"
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$logfile" >&2 || true
            die "server (pid $pid) exited before it was ready; log: $logfile"
        fi
        if "$PY" - "$url" <<'EOF' 2>/dev/null; then
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=1).status == 200 else 1)
EOF
            return 0
        fi
        sleep 0.2
    done
    tail -n 30 "$logfile" >&2 || true
    die "server at $url not ready after 60 s; log: $logfile"
}

# start_server NAME LOGFILE CMD...: starts CMD in its own process group; sets SERVER_PID.
start_server() {
    local name="$1" logfile="$2"
    shift 2
    log "starting $name: $*"
    setsid "$@" >"$logfile" 2>&1 &
    SERVER_PID=$!
    STARTED_PGIDS+=("$SERVER_PID")
}

# measure NAME PORT: runs the load generator, writes $RESULTS/$STAMP-NAME.json.
measure() {
    local name="$1" port="$2"
    local out="$RESULTS/$STAMP-$name.json"
    log "measuring $name: concurrency $CONCURRENCY, rows $ROWS, ${DURATION}s (+${WARMUP}s warm-up)"
    # In the background, so that a signal reaches the traps at once rather than after the run.
    "${LOADGEN[@]}" --url "http://127.0.0.1:$port" --model "$MODEL" \
        --concurrency "$CONCURRENCY" --rows "$ROWS" --duration "$DURATION" --warmup "$WARMUP" \
        --json-output "$out" --quiet &
    LOADGEN_PID=$!
    wait "$LOADGEN_PID"
    LOADGEN_PID=""
}

mkdir -p "$RESULTS"
MEASURED=()

# --- the reference service ------------------------------------------------------------------
if [[ " $SERVERS " == *" reference "* ]]; then
    port="$(free_port)"
    logfile="$RESULTS/$STAMP-reference.log"
    start_server reference "$logfile" "$PY" bench/reference/server.py \
        --model "$ONNX" --model-name "$MODEL" --host 127.0.0.1 --port "$port" --workers 2
    wait_ready "$SERVER_PID" "http://127.0.0.1:$port/v2/health/ready" "$logfile"
    measure reference "$port"
    stop_group "$SERVER_PID"
    MEASURED+=(reference)
fi

# --- recserve ---------------------------------------------------------------------------------
if [[ " $SERVERS " == *" recserve "* ]]; then
    if [[ -x "$RECSERVE" ]] && "$RECSERVE" serve --help >/dev/null 2>&1; then
        port="$(free_port)"
        logfile="$RESULTS/$STAMP-recserve.log"
        DATA_DIR="$(mktemp -d -t recserve-bench-XXXXXX)"
        start_server recserve "$logfile" "$RECSERVE" serve \
            --model-repository "$MODEL_DIR" --host 127.0.0.1 --http-port "$port" --grpc-port 0 \
            --data-dir "$DATA_DIR"
        wait_ready "$SERVER_PID" "http://127.0.0.1:$port/v2/health/ready" "$logfile"
        measure recserve "$port"
        stop_group "$SERVER_PID"
        MEASURED+=(recserve)
    else
        log "skipping recserve: $RECSERVE has no serve subcommand yet"
    fi
fi

# --- summary ----------------------------------------------------------------------------------
[[ ${#MEASURED[@]} -gt 0 ]] || die "nothing measured"
summary="$RESULTS/$STAMP-summary.txt"
"$PY" - "$RESULTS" "$STAMP" "${MEASURED[@]}" <<'EOF' | tee "$summary"
import json, sys
from pathlib import Path

results, stamp, names = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
reports = {n: json.loads((results / f"{stamp}-{n}.json").read_text())[0] for n in names}
first = next(iter(reports.values()))
print(f"model {first['model']}, concurrency {first['concurrency']}, {first['rows']} row(s) per "
      f"request, {'binary' if first['binary'] else 'JSON'} tensors")
print(f"{'server':<10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>8}")
for n, r in reports.items():
    lat = r["latency_ms"]
    print(f"{n:<10} {r['throughput_rps']:>10.1f} {lat['p50']:>8.2f} {lat['p99']:>8.2f} "
          f"{r['errors']:>8}")
if "reference" in reports and "recserve" in reports:
    ref, rs = reports["reference"], reports["recserve"]
    if ref["throughput_rps"] > 0:
        print(f"throughput ratio recserve / reference: "
              f"{rs['throughput_rps'] / ref['throughput_rps']:.2f}x")
    print(f"p99: recserve {rs['latency_ms']['p99']:.2f} ms, "
          f"reference {ref['latency_ms']['p99']:.2f} ms")
EOF
log "results in $RESULTS/$STAMP-*"
