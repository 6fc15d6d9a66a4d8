#!/usr/bin/env bash
# Browser test of the embedded dashboard and the Grafana dashboard's queries: uses $RECSERVE_BIN
# (else builds the release binary), installs the Node dependencies from package-lock.json (playwright-core only: it drives
# Debian's /usr/bin/chromium and never downloads a browser), and runs dashboard.test.mjs, which
# starts `recserve demo` itself, then signin.test.mjs, then fleet.sh (the Fleet page on two replicas
# with a real Prometheus). Fails (never skips) when something is missing.
# Screenshots: bench/results/dashboard/ (or SCREENSHOT_DIR).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

for tool in node npm python3; do
  command -v "$tool" >/dev/null || { echo "tests/dashboard: $tool is required" >&2; exit 1; }
done
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] || { echo "tests/dashboard: no Chromium at $CHROMIUM (apt-get install chromium)" >&2; exit 1; }

# scripts/test-all passes the binary its test build made (RECSERVE_BIN); alone, build release.
if [ -z "${RECSERVE_BIN:-}" ]; then
  cargo build --release --locked -p recserve
  export RECSERVE_BIN="${CARGO_TARGET_DIR:-$root/target}/release/recserve"
fi

cd tests/dashboard
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
node dashboard.test.mjs
node signin.test.mjs
# The Fleet page against two replicas and a real Prometheus scraping them.
bash "$root/tests/dashboard/fleet.sh"
