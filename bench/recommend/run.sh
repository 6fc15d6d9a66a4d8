#!/usr/bin/env bash
# `/v1/recommend` latency at fixed request rates on a 100k-item catalog (open loop), with the
# time per pipeline stage from the server's /metrics. See BENCHMARKS.md, "Recommendation
# pipeline".
#
#   bench/recommend/run.sh                         # defaults below
#   SKIP_BUILD=1 BENCH_RATES="500" bench/recommend/run.sh
#
# Environment (all optional):
#   BENCH_RATES        request rates, requests/s, one run each   ("250 500 1000")
#   BENCH_DURATION     measured seconds per rate                 (30)
#   BENCH_WARMUP       warm-up seconds per rate (same rate)      (5)
#   BENCH_TILES        catalog size in copies of the 5,000 demo items (20 → 100k)
#   BENCH_CATALOG      catalog directory (made if missing)       (bench/results/catalog-<N>)
#   BENCH_SERVER_CPUS  taskset CPU list for the server, e.g. "1" (default: not pinned)
#   BENCH_MODEL_REPOSITORY  models to serve                      (examples/ecommerce/models)
#   BENCH_RANKER_INSTANCES  serve a copy of the repository whose ranker has this many inference
#                      threads (`instance_count`; default: the repository's own config, 1)
#   BENCH_PYTHON       Python with numpy for the catalog         (.venv-train, .venv-fixtures, python3)
#   SKIP_BUILD=1       do not run cargo build
#   CARGO_TARGET_DIR   where the recserve binary is              (target)
#
# Writes bench/results/<time>-recommend-<rate>.json (load generator reports), -stages-<rate>.txt
# (per-stage table), -steal-<rate>.txt (the host's CPU steal over the run, %), -server.log and
# -summary.txt. The server is stopped however the script exits.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

RATES="${BENCH_RATES:-250 500 1000}"
DURATION="${BENCH_DURATION:-30}"
WARMUP="${BENCH_WARMUP:-5}"
TILES="${BENCH_TILES:-20}"
CATALOG="${BENCH_CATALOG:-$ROOT/bench/results/catalog-$((TILES * 5))k}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
RESULTS="$ROOT/bench/results"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"

log() { printf '[bench/recommend] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

SERVER_PGID=""
DATA_DIR=""
cleanup() {
    if [[ -n "$SERVER_PGID" ]] && kill -0 -- "-$SERVER_PGID" 2>/dev/null; then
        kill -TERM -- "-$SERVER_PGID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 -- "-$SERVER_PGID" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL -- "-$SERVER_PGID" 2>/dev/null || true
    fi
    [[ -n "$DATA_DIR" ]] && rm -rf "$DATA_DIR"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build ---------------------------------------------------------------------------------
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "cargo build --release -p recserve"
    cargo build --release -p recserve
fi
RECSERVE="$TARGET_DIR/release/recserve"
[[ -x "$RECSERVE" ]] || die "$RECSERVE not built (unset SKIP_BUILD, or set CARGO_TARGET_DIR)"
"$RECSERVE" bench --help | grep -q -- '--request-rate' || die "$RECSERVE bench has no --request-rate; rebuild"

# --- catalog ---------------------------------------------------------------------------------
PY="${BENCH_PYTHON:-}"
if [[ -z "$PY" ]]; then
    for candidate in "$ROOT/.venv-train/bin/python" "$ROOT/.venv-fixtures/bin/python" python3; do
        if "$candidate" -c 'import numpy' 2>/dev/null; then PY="$candidate"; break; fi
    done
fi
if [[ ! -f "$CATALOG/pipelines.toml" ]]; then
    [[ -n "$PY" ]] || die "no Python with numpy (set BENCH_PYTHON)"
    log "making the catalog: $TILES tiles → $CATALOG"
    "$PY" bench/recommend/make_catalog.py --out "$CATALOG" --tiles "$TILES"
fi

# --- server ----------------------------------------------------------------------------------
mkdir -p "$RESULTS"
MODELS="${BENCH_MODEL_REPOSITORY:-examples/ecommerce/models}"
if [[ -n "${BENCH_RANKER_INSTANCES:-}" ]]; then
    COPY="$RESULTS/$STAMP-models"
    cp -r "$MODELS" "$COPY"
    # A top-level key must come before the [validation] table.
    { echo "instance_count = $BENCH_RANKER_INSTANCES"; cat "$MODELS/ranker/config.toml"; } >"$COPY/ranker/config.toml"
    MODELS="$COPY"
    log "ranker instance_count = $BENCH_RANKER_INSTANCES ($MODELS)"
fi
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
DATA_DIR="$(mktemp -d -t recserve-recbench-XXXXXX)"
SERVER_LOG="$RESULTS/$STAMP-recommend-server.log"
PIN=()
if [[ -n "${BENCH_SERVER_CPUS:-}" ]]; then PIN=(taskset -c "$BENCH_SERVER_CPUS"); fi
log "starting the server on :$PORT ${PIN[*]} (building the HNSW index takes a few seconds per 100k items)"
setsid "${PIN[@]}" "$RECSERVE" serve --model-repository "$MODELS" \
    --pipelines "$CATALOG/pipelines.toml" --host 127.0.0.1 --http-port "$PORT" --grpc-port 0 \
    --data-dir "$DATA_DIR" --repository-poll-secs 0 >"$SERVER_LOG" 2>&1 &
SERVER_PGID=$!
URL="http://127.0.0.1:$PORT"
for i in $(seq 1 1200); do
    kill -0 "$SERVER_PGID" 2>/dev/null || { tail -n 30 "$SERVER_LOG" >&2; die "the server exited; log: $SERVER_LOG"; }
    if curl -sf "$URL/v1/scenarios" >/dev/null 2>&1 && curl -sf "$URL/v2/health/ready" >/dev/null 2>&1; then break; fi
    [[ $i -lt 1200 ]] || die "server not ready after 10 minutes; log: $SERVER_LOG"
    sleep 0.5
done
log "server ready"

# --- the rates ---------------------------------------------------------------------------------
# The host's CPU steal (time the VM's cores were runnable but not running) over each rate: on a
# shared host it decides the tail (BENCHMARKS.md).
cpu_ticks() { awk '/^cpu /{ total = 0; for (i = 2; i <= NF; i++) total += $i; print $9, total; exit }' /proc/stat; }
for rate in $RATES; do
    curl -sf "$URL/metrics" >"$RESULTS/$STAMP-metrics-before-$rate.txt"
    log "rate $rate/s: ${DURATION}s after ${WARMUP}s warm-up"
    read -r steal0 total0 < <(cpu_ticks)
    "$RECSERVE" bench --url "$URL" --recommend --request-rate "$rate" --duration "$DURATION" \
        --warmup "$WARMUP" --json-output "$RESULTS/$STAMP-recommend-$rate.json" --quiet
    read -r steal1 total1 < <(cpu_ticks)
    awk -v s="$((steal1 - steal0))" -v t="$((total1 - total0))" \
        'BEGIN { printf "%.1f\n", (t > 0 ? 100 * s / t : 0) }' >"$RESULTS/$STAMP-steal-$rate.txt"
    curl -sf "$URL/metrics" >"$RESULTS/$STAMP-metrics-after-$rate.txt"
    python3 bench/recommend/stages.py "$RESULTS/$STAMP-metrics-before-$rate.txt" \
        "$RESULTS/$STAMP-metrics-after-$rate.txt" | tee "$RESULTS/$STAMP-stages-$rate.txt"
done

# --- summary -------------------------------------------------------------------------------------
python3 - "$RESULTS" "$STAMP" $RATES <<'PYEOF' | tee "$RESULTS/$STAMP-recommend-summary.txt"
import json, sys
from pathlib import Path
results, stamp, rates = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
print("/v1/recommend, 100k-item catalog, open loop (latency from the scheduled send time)")
print(f"{'rate/s':>7} {'achieved':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7} "
      f"{'steal %':>8}")
for rate in rates:
    r = json.loads((results / f"{stamp}-recommend-{rate}.json").read_text())[0]
    lat = r["latency_ms"]
    steal = (results / f"{stamp}-steal-{rate}.txt").read_text().strip()
    print(f"{rate:>7} {r['throughput_rps']:>9.1f} {lat['p50']:>8.2f} {lat['p90']:>8.2f} {lat['p99']:>8.2f} "
          f"{lat['max']:>8.2f} {r['errors']:>7} {steal:>8}")
PYEOF
log "results in $RESULTS/$STAMP-*"
