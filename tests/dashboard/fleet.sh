#!/usr/bin/env bash
# The dashboard's Fleet page against a real fleet: two `recserve serve` replicas sharing one
# store (a SQLite file here: the lease and the state sync work the same as on MySQL, which
# crates/recserve/tests/fleet.rs covers), a real Prometheus scraping both, steady V2 traffic to
# both; then fleet.mjs checks in headless Chromium that replica 1's Fleet page shows the header
# from /api/v1/fleet and every chart with a series per replica plus the total, with no console
# error. Uses $RECSERVE_BIN and the Node packages run.sh installed. Screenshot: fleet-live.png
# in bench/results/dashboard/ (or SCREENSHOT_DIR).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
: "${RECSERVE_BIN:?RECSERVE_BIN must name the recserve binary}"
command -v prometheus >/dev/null || { echo "tests/dashboard/fleet.sh: prometheus is required (apt-get install prometheus)" >&2; exit 1; }

work="$(mktemp -d -t recserve-fleet-ui.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

prom_port="$(free_port)"
addrs=()
for name in r1 r2; do
  "$RECSERVE_BIN" serve --http-port 0 --grpc-port 0 --repository-poll-secs 0 \
    --model-repository fixtures/models --data-dir "$work/$name" --store "sqlite://$work/fleet.db" \
    --replica "$name" --alert-evaluation leader --evaluator-lease-secs 3 --state-sync-ms 500 \
    --scrape-interval-secs 1 --prometheus-url "http://127.0.0.1:$prom_port" >"$work/$name.out" 2>"$work/$name.log" &
  pids+=($!)
  addr=""
  for _ in $(seq 1 300); do
    addr="$(sed -n 's|^recserve: HTTP on http://\([^ ]*\).*|\1|p' "$work/$name.log" | head -1)"
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "fleet.sh: replica $name did not start:" >&2; cat "$work/$name.log" >&2; exit 1; }
  addrs+=("$addr")
done
echo "fleet.sh: replicas at ${addrs[*]}"

cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: recserve
    static_configs:
      - targets: ['${addrs[0]}', '${addrs[1]}']
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$prom_port/-/ready" >/dev/null 2>&1 && break
  sleep 0.2
done

# Steady traffic to both replicas while the page is checked (about 1 in 10 requests malformed).
body="{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[1,16],\"data\":[$(seq -s, 0 15)]}]}"
(
  while true; do
    for a in "${addrs[@]}"; do
      curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$body" "http://$a/v2/models/mlp/infer" || true
      # and a wrong shape now and then, so the error-ratio charts have something to show
      ((RANDOM % 10)) || curl -sS -o /dev/null -H 'Content-Type: application/json' \
        -d '{"inputs":[{"name":"features","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}' "http://$a/v2/models/mlp/infer" || true
    done
    sleep 0.05
  done
) &
pids+=($!)
sleep 5

shots="${SCREENSHOT_DIR:-$root/bench/results/dashboard}"
mkdir -p "$shots"
cd tests/dashboard
SCREENSHOT="$shots/fleet-live.png" node fleet.mjs "http://${addrs[0]}" 2
