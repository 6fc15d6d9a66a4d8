#!/usr/bin/env bash
# Compares the REAL recserve binary's /api/v1/query answers with a real Prometheus (Debian's
# package) scraping that same binary's /metrics, over recserve_* series produced by live traffic.
#
# Starts target/release/recserve (or $RECSERVE_BIN; honours CARGO_TARGET_DIR) over
# fixtures/models with its series store scraping every second, Prometheus on loopback scraping it
# every second, and a steady load (V2 JSON requests of 1-4 rows to mlp, plus malformed bodies and
# an unknown model), waits COMPARE_WAIT_SECS, then runs the same instant and range queries
# (rate, increase, histogram_quantile, sum/avg/count by, arithmetic, comparisons) against both and
# compares numerically. Prometheus's `job`/`instance` labels are removed before comparing.
#
# Usage: tests/telemetry/compare_recserve.sh   (build first: cargo build --release -p recserve)
# Env:   COMPARE_WAIT_SECS (default 25), COMPARE_TOLERANCE (relative, default 0.15),
#        PROMETHEUS (binary, default `prometheus`), RECSERVE_REQUIRE_PROMETHEUS=1 to fail when
#        Prometheus is missing (otherwise the script skips with a notice).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
WAIT="${COMPARE_WAIT_SECS:-25}"
TOL="${COMPARE_TOLERANCE:-0.15}"
PROM="${PROMETHEUS:-prometheus}"
BIN="${RECSERVE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/recserve}"

if ! command -v "$PROM" >/dev/null 2>&1; then
    if [ "${RECSERVE_REQUIRE_PROMETHEUS:-0}" = "1" ]; then
        echo "compare_recserve: $PROM not found (apt-get install -y prometheus)" >&2
        exit 1
    fi
    echo "NOTICE: compare_recserve: $PROM not found; skipping" >&2
    exit 0
fi
if [[ ! -x "$BIN" ]]; then
    echo "compare_recserve: $BIN not found; build it with: cargo build --release -p recserve" >&2
    exit 2
fi

read -r HTTP_PORT GRPC_PORT PROM_PORT < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
PY
)
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

"$BIN" serve --model-repository fixtures/models --host 127.0.0.1 --http-port "$HTTP_PORT" \
    --grpc-port "$GRPC_PORT" --data-dir "$TMP/recserve" --scrape-interval-secs 1 \
    --repository-poll-secs 0 >"$TMP/recserve.log" 2>&1 &
PIDS+=($!)

cat >"$TMP/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: recserve
    static_configs:
      - targets: ["127.0.0.1:$HTTP_PORT"]
YAML
"$PROM" --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/prometheus" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$TMP/prometheus.log" 2>&1 &
PIDS+=($!)

ready=0
for _ in $(seq 1 300); do
    if curl -fsS "http://127.0.0.1:$HTTP_PORT/v2/health/ready" >/dev/null 2>&1 && \
       curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null 2>&1; then ready=1; break; fi
    sleep 0.2
done
if [ "$ready" != 1 ]; then
    echo "compare_recserve: recserve or prometheus did not become ready" >&2
    tail -20 "$TMP/recserve.log" "$TMP/prometheus.log" >&2
    exit 1
fi

# Steady load: 40 requests/s, one in 10 malformed, one in 20 to a model that does not exist.
python3 - "$HTTP_PORT" <<'PY' &
import http.client, json, sys, time
port = int(sys.argv[1])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
start, i = time.time(), 0
while True:
    rows = 1 + i % 4
    body = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [rows, 16],
                                   "data": [((j * 7 + i) % 13) / 13.0 for j in range(rows * 16)]}]})
    path = "/v2/models/mlp/infer"
    if i % 10 == 3:
        body = "{not json"
    elif i % 20 == 7:
        path = "/v2/models/no_such_model/infer"
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        conn.getresponse().read()
    except Exception:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    i += 1
    delay = start + i / 40.0 - time.time()
    if delay > 0:
        time.sleep(delay)
PY
PIDS+=($!)

echo "compare_recserve: load running; collecting for ${WAIT}s (recserve :$HTTP_PORT, prometheus :$PROM_PORT)"
sleep "$WAIT"

python3 - "$HTTP_PORT" "$PROM_PORT" "$TOL" <<'PY'
import json, math, sys, time, urllib.error, urllib.parse, urllib.request

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

W = "15s"
INSTANT = [
    'recserve_queue_capacity{model="mlp"}',
    'recserve_model_memory_bytes',
    'count(recserve_model_memory_bytes > 0)',
    f'sum by (model, outcome) (rate(recserve_requests_total{{outcome=~"ok|bad_request|not_found"}}[{W}]))',
    f'sum by (model) (increase(recserve_requests_total[{W}]))',
    f'sum(rate(recserve_requests_total{{outcome!="ok"}}[{W}])) / sum(rate(recserve_requests_total[{W}]))',
    f'sum by (stage) (rate(recserve_stage_duration_seconds_count{{model="mlp"}}[{W}]))',
    f'sum without (instance, job, pipeline, outcome) (rate(recserve_requests_total[{W}])) > bool 1',
    f'histogram_quantile(0.5, sum by (le) (rate(recserve_batch_size_bucket{{model="mlp"}}[{W}])))',
    f'histogram_quantile(0.9, sum by (le) (rate(recserve_request_duration_seconds_bucket{{model="mlp"}}[{W}])))',
    f'rate(recserve_batch_size_sum{{model="mlp"}}[{W}]) / rate(recserve_batch_size_count{{model="mlp"}}[{W}])',
    f'sum by (model) (rate(recserve_request_duration_seconds_count[{W}])) * 60',
    f'irate(recserve_requests_total{{model="mlp",outcome="ok"}}[5s]) > 0',
    'recserve_host_cpus',
    f'max_over_time(recserve_queue_capacity{{model="mlp"}}[{W}]) - min_over_time(recserve_queue_capacity{{model="mlp"}}[{W}])',
]
RANGE = [
    'sum by (model) (rate(recserve_requests_total[10s]))',
    'recserve_model_memory_bytes{model="mlp"}',
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
        ok, detail = close(ra[1], rb[1]), f"{ra[1]} vs {rb[1]}"
    else:
        def series(res):
            return {key(s["metric"]): ([s["value"]] if "value" in s else s["values"]) for s in res}
        sa, sb = series(ra), series(rb)
        ok = set(sa) == set(sb) and len(sa) > 0
        detail = "" if ok else f"series differ: ours {sorted(sa)} prometheus {sorted(sb)}"
        if ok:
            for k in sa:
                va = {round(p[0], 3): p[1] for p in sa[k]}
                vb = {round(p[0], 3): p[1] for p in sb[k]}
                common = sorted(set(va) & set(vb))
                if not common:
                    ok, detail = False, f"{k}: no common timestamps"
                    break
                bad = [t for t in common if not close(va[t], vb[t])]
                if bad:
                    ok, detail = False, f"{k} @ {bad[0]}: ours {va[bad[0]]} prometheus {vb[bad[0]]}"
                    break
    print(f"{'ok  ' if ok else 'FAIL'} [{kind}] {q}" + ("" if ok else f"\n  {detail}"))
    failures += 0 if ok else 1

for q in INSTANT:
    t = f"{now:.3f}"
    compare(q, get(ours, "/api/v1/query", query=q, time=t), get(theirs, "/api/v1/query", query=q, time=t), "instant")
for q in RANGE:
    p = dict(query=q, start=f"{now - 8:.3f}", end=f"{now:.3f}", step="2s")
    compare(q, get(ours, "/api/v1/query_range", **p), get(theirs, "/api/v1/query_range", **p), "range")

# Sanity on the data itself: the load really was observed.
mlp = get(ours, "/api/v1/query", query='sum(rate(recserve_requests_total{model="mlp",outcome="ok"}[15s]))', time=f"{now:.3f}")
rate = float(mlp["data"]["result"][0]["value"][1]) if mlp.get("data", {}).get("result") else 0.0
sane = 20.0 < rate < 45.0
print(f"{'ok  ' if sane else 'FAIL'} [load] mlp ok rate {rate:.1f}/s (expected about 34/s)")
failures += 0 if sane else 1
print(f"compare_recserve: {len(INSTANT) + len(RANGE) + 1 - failures} agreed, {failures} differed")
sys.exit(1 if failures else 0)
PY
