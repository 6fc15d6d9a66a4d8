#!/usr/bin/env bash
# Interop tests: NVIDIA's tritonclient (HTTP and gRPC) against a real `recserve serve` over
# fixtures/models, plus a check that our gRPC protos match the ones tritonclient is compiled with.
#
#   tests/interop/run.sh [pytest args...]
#
# Creates .venv-interop (once) and installs tests/interop/requirements.txt into it, starts
# target/release/recserve (or $RECSERVE_BIN) on two free loopback ports, waits for
# GET /v2/health/ready, runs pytest with RECSERVE_HTTP_URL and RECSERVE_GRPC_URL set, stops the
# server, and exits with pytest's code. Build the binary first: cargo build --release -p recserve
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv-interop"
BIN="${RECSERVE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/recserve}"
READY_TIMEOUT_S="${RECSERVE_READY_TIMEOUT:-60}"

if [[ ! -x "$BIN" ]]; then
    echo "run.sh: $BIN not found; build it with: cargo build --release -p recserve" >&2
    exit 2
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
PY="$VENV/bin/python"

# Two distinct free loopback ports.
read -r HTTP_PORT GRPC_PORT < <("$PY" - <<'PYEOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
PYEOF
)

LOG_DIR="$(mktemp -d -t recserve-interop.XXXXXX)"
SERVER_LOG="$LOG_DIR/recserve.log"
SERVER_PID=""

cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$LOG_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Loopback only, and recserve's own state in the temp dir rather than the work tree.
RECSERVE_HOST=127.0.0.1 RECSERVE_DATA_DIR="$LOG_DIR/data" \
    "$BIN" serve --model-repository fixtures/models --http-port "$HTTP_PORT" --grpc-port "$GRPC_PORT" \
    >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

# Wait for readiness; give up early if the server exits.
if ! "$PY" - "$HTTP_PORT" "$SERVER_PID" "$READY_TIMEOUT_S" <<'PYEOF'
import os, sys, time, urllib.request, urllib.error
port, pid, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout
url = f"http://127.0.0.1:{port}/v2/health/ready"
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        print(f"run.sh: recserve (pid {pid}) exited before becoming ready", file=sys.stderr)
        sys.exit(1)
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except (urllib.error.URLError, ConnectionError, OSError):
        pass
    time.sleep(0.2)
print(f"run.sh: {url} did not answer 200 within {timeout:.0f} s", file=sys.stderr)
sys.exit(1)
PYEOF
then
    echo "---- recserve log ----" >&2
    cat "$SERVER_LOG" >&2 || true
    exit 1
fi

export RECSERVE_HTTP_URL="127.0.0.1:$HTTP_PORT"
export RECSERVE_GRPC_URL="127.0.0.1:$GRPC_PORT"
set +e
"$PY" -m pytest -p no:cacheprovider -q tests/interop "$@"
CODE=$?
set -e
if [[ $CODE -ne 0 ]]; then
    echo "---- recserve log (last 100 lines) ----" >&2
    tail -n 100 "$SERVER_LOG" >&2 || true
fi
exit "$CODE"
