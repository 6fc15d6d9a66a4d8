# Shared by bench/*/run.sh (sourced after `set -euo pipefail`): the repository root as the
# working directory, the recserve binary, a scratch directory removed at exit, and one server at
# a time started in the background and stopped again.
#
# Sets ROOT, BIN (RECSERVE_BIN, else $CARGO_TARGET_DIR/release/recserve, built first unless
# SKIP_BUILD=1 or RECSERVE_BIN is set) and WORK; start_server sets PID and ADDR (host:port).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${RECSERVE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/recserve}"
[[ -n "${RECSERVE_BIN:-}" || "${SKIP_BUILD:-0}" == 1 ]] || cargo build --release --locked -p recserve >&2
WORK="$(mktemp -d)"
PID=""
ADDR=""

bench_cleanup() {
  if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap bench_cleanup EXIT

# start_server COMMAND [ARGS...]: runs a recserve command (serve, demo) in the background with
# its standard error in $WORK/err, and returns once it has printed its HTTP address and answers
# /v2/health/ready. Exits with the server's log if it stops or is not ready within a minute.
start_server() {
  "$@" >/dev/null 2>"$WORK/err" &
  PID=$!
  ADDR=""
  for _ in $(seq 1 600); do
    ADDR="$(sed -n 's/^recserve: HTTP on http:\/\/\([0-9.:]*\).*/\1/p' "$WORK/err" | head -1)"
    if [[ -n "$ADDR" ]] && curl -sf "http://$ADDR/v2/health/ready" >/dev/null; then return 0; fi
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$WORK/err" >&2
  echo "bench: the server ($*) did not become ready" >&2
  exit 1
}

stop_server() {
  if [[ -n "$PID" ]]; then kill "$PID"; wait "$PID" 2>/dev/null || true; fi
  PID=""
}

# One line about the machine for the top of a report.
machine() {
  echo "$(date -u +%FT%TZ), nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg)"
}
