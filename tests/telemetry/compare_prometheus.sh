#!/usr/bin/env bash
# Compares recserve's embedded series store + PromQL subset with a real Prometheus (Debian's
# package) scraping the same endpoint.
#
# Starts crates/telemetry's `expose` example (deterministic workload, its store scraping itself
# every second) and Prometheus on loopback with a temporary config scraping it every second, waits
# ~30 s, then runs the same instant and range queries against both and compares numerically.
# Prometheus's `job`/`instance` target labels are removed before comparing.
#
# Usage: tests/telemetry/compare_prometheus.sh            (from the repository root)
# Env:   COMPARE_WAIT_SECS (default 30), COMPARE_TOLERANCE (relative, default 0.15),
#        PROMETHEUS (binary, default `prometheus`), RECSERVE_REQUIRE_PROMETHEUS=1 to fail when
#        Prometheus is missing (otherwise the script skips with a notice).
set -euo pipefail

cd "$(dirname "$0")/../.."
WAIT="${COMPARE_WAIT_SECS:-30}"
TOL="${COMPARE_TOLERANCE:-0.15}"
PROM="${PROMETHEUS:-prometheus}"

if ! command -v "$PROM" >/dev/null 2>&1; then
    if [ "${RECSERVE_REQUIRE_PROMETHEUS:-0}" = "1" ]; then
        echo "compare_prometheus: $PROM not found (apt-get install -y prometheus)" >&2
        exit 1
    fi
    echo "NOTICE: compare_prometheus: $PROM not found; skipping" >&2
    exit 0
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
EXPOSE_PORT=$(free_port)
PROM_PORT=$(free_port)
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

cargo build -q -p recserve-telemetry --example expose
TARGET_DIR="${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')}"
EXPOSE_ADDR="127.0.0.1:$EXPOSE_PORT" EXPOSE_SCRAPE_MS=1000 "$TARGET_DIR/debug/examples/expose" >"$TMP/expose.log" 2>&1 &
PIDS+=($!)

cat >"$TMP/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: recserve
    static_configs:
      - targets: ["127.0.0.1:$EXPOSE_PORT"]
YAML
"$PROM" --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$TMP/prometheus.log" 2>&1 &
PIDS+=($!)

for _ in $(seq 1 50); do
    if curl -fsS "http://127.0.0.1:$EXPOSE_PORT/metrics" >/dev/null 2>&1 && \
       curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null 2>&1; then break; fi
    sleep 0.2
done
echo "compare_prometheus: collecting for ${WAIT}s (expose :$EXPOSE_PORT, prometheus :$PROM_PORT)"
sleep "$WAIT"

python3 - "$EXPOSE_PORT" "$PROM_PORT" "$TOL" <<'PY'
import json, math, sys, time, urllib.parse, urllib.request

ours, theirs, tol = f"http://127.0.0.1:{sys.argv[1]}", f"http://127.0.0.1:{sys.argv[2]}", float(sys.argv[3])

def get(base, path, **params):
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)

def key(metric):
    return tuple(sorted((k, v) for k, v in metric.items() if k not in ("job", "instance")))

def close(a, b):
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= max(1e-9, tol * max(abs(a), abs(b)))

INSTANT = [
    'recserve_queue_capacity',
    'recserve_model_memory_bytes',
    'sum by (model) (recserve_model_memory_bytes) unless on (model) recserve_model_memory_bytes{model="ranker"}',
    'recserve_queue_capacity > bool 10',
    'recserve_model_memory_bytes > 1500000',
    'recserve_model_memory_bytes{model=~"rank.*"} or recserve_model_memory_bytes{model!~"rank.*"}',
    'recserve_model_memory_bytes and on (model) recserve_queue_capacity{model="retriever"}',
    'count by (stage) (recserve_stage_duration_seconds_count)',
    'sum by (model) (rate(recserve_requests_total[10s]))',
    'sum by (model, outcome) (increase(recserve_requests_total[10s]))',
    'sum(rate(recserve_requests_total{outcome="error"}[10s])) / sum(rate(recserve_requests_total[10s]))',
    'rate(recserve_stage_duration_seconds_count{stage="queue"}[10s])',
    'irate(recserve_requests_total{outcome="ok"}[5s])',
    'histogram_quantile(0.9, sum by (model, le) (rate(recserve_stage_duration_seconds_bucket{stage="inference"}[10s])))',
    'histogram_quantile(0.5, sum without (instance, job, pipeline) (rate(recserve_request_duration_seconds_bucket[10s])))',
    'sum without (instance, job, pipeline) (rate(recserve_stage_duration_seconds_sum[10s])) / sum without (instance, job, pipeline) (rate(recserve_stage_duration_seconds_count[10s]))',
    'avg by (model) (rate(recserve_batch_size_sum[10s]) / rate(recserve_batch_size_count[10s]))',
    'max_over_time(recserve_queue_capacity[20s])',
    'min_over_time(recserve_model_memory_bytes[20s])',
    'count_over_time(recserve_queue_capacity[10s])',
    'sum_over_time(recserve_queue_capacity[10s]) / count_over_time(recserve_queue_capacity[10s])',
    'last_over_time(recserve_model_memory_bytes[10s])',
    'max by (model) (recserve_queue_capacity) - min by (model) (recserve_queue_capacity)',
    'sum(recserve_model_memory_bytes) / 1e6',
    '-recserve_queue_capacity * 2 + 1',
]
RANGE = [
    'sum by (model) (rate(recserve_requests_total[10s]))',
    'recserve_model_memory_bytes',
    'histogram_quantile(0.9, sum by (le) (rate(recserve_stage_duration_seconds_bucket{stage="inference"}[10s])))',
]

now = time.time() - 2.0
failures = 0

def compare(q, a, b, kind):
    global failures
    if a.get("status") != "success" or b.get("status") != "success":
        print(f"FAIL [{kind}] {q}\n  ours: {a}\n  prometheus: {b}")
        failures += 1
        return
    ra, rb = a["data"]["result"], b["data"]["result"]
    if a["data"]["resultType"] == "scalar":
        ok = close(ra[1], rb[1])
        detail = f"{ra[1]} vs {rb[1]}"
    else:
        def series(res):
            out = {}
            for s in res:
                if "value" in s:
                    out[key(s["metric"])] = [s["value"]]
                else:
                    out[key(s["metric"])] = s["values"]
            return out
        sa, sb = series(ra), series(rb)
        ok = set(sa) == set(sb) and len(sa) > 0
        detail = ""
        if not ok:
            detail = f"series differ: ours {sorted(sa)} prometheus {sorted(sb)}"
        else:
            for k in sa:
                va = {round(p[0], 3): p[1] for p in sa[k]}
                vb = {round(p[0], 3): p[1] for p in sb[k]}
                common = sorted(set(va) & set(vb))
                if not common:
                    ok, detail = False, f"{k}: no common timestamps"
                    break
                for t in common:
                    if not close(va[t], vb[t]):
                        ok, detail = False, f"{k} @ {t}: ours {va[t]} prometheus {vb[t]}"
                        break
                if not ok:
                    break
    print(f"{'ok  ' if ok else 'FAIL'} [{kind}] {q}" + ("" if ok else f"\n  {detail}"))
    failures += 0 if ok else 1

for q in INSTANT:
    compare(q, get(ours, "/api/v1/query", query=q, time=f"{now:.3f}"),
            get(theirs, "/api/v1/query", query=q, time=f"{now:.3f}"), "instant")
for q in RANGE:
    p = dict(query=q, start=f"{now - 10:.3f}", end=f"{now:.3f}", step="2s")
    compare(q, get(ours, "/api/v1/query_range", **p), get(theirs, "/api/v1/query_range", **p), "range")

ls = get(ours, "/api/v1/labels")
print(("ok  " if ls["status"] == "success" and "stage" in ls["data"] else "FAIL") + " [labels] /api/v1/labels")
failures += 0 if ls["status"] == "success" and "stage" in ls["data"] else 1
print(f"compare_prometheus: {len(INSTANT) + len(RANGE) + 1 - failures} agreed, {failures} differed")
sys.exit(1 if failures else 0)
PY
