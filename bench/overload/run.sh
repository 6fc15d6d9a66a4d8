#!/usr/bin/env bash
# Overload (issue 8): at twice its capacity, recserve refuses the excess at once (429) while the
# requests it accepts keep their latency.
#
#   bench/overload/run.sh                              # 3 rounds of 10 s, concurrency 32
#   SKIP_BUILD=1 ROUNDS=5 DURATION=8 bench/overload/run.sh
#   RECSERVE_BIN=/path/to/recserve bench/overload/run.sh
#   TARGET=recommend bench/overload/run.sh             # /v1/recommend on the demo shop instead
#
# TARGET=mlp (default): V2 JSON inference of fixtures/models/mlp, 1 row: about 5 µs of model
#   work in about 50 µs of request CPU, so HTTP and JSON dominate.
# TARGET=recommend: /v1/recommend on the demo shop (examples/ecommerce: retrieval, the 200-tree
#   ranker over 200 candidates, rules), bodies from the demo's simulated shoppers: about 2 ms of
#   work per request, so a refusal is cheap next to an answer. Defaults then: CONCURRENCY 8,
#   PROBE_RATE 20.
#
# 1. Capacity: a server with the default limits serving fixtures/models/mlp (V2 JSON, 1 row);
#    `recserve bench --concurrency-range 8:64:x2` (closed loop) shows where throughput stops
#    growing; capacity = the throughput at CONCURRENCY (default 32).
# 2. A server with `--max-in-flight-per-client LIMIT` (default: CONCURRENCY, the saturating
#    concurrency), then ROUNDS rounds, each with (order alternating per round):
#    - capacity alone: closed loop at CONCURRENCY (nothing refused: at most LIMIT in flight);
#    - 2x concurrency: closed loop at 2 × CONCURRENCY: half the workers' requests find the
#      client's share full and are refused; a refused worker sends its next request at once;
#    - 2x rate: open loop (`--request-rate`) at RATE = 2 × the capacity of step 1, over up to
#      OPEN_CONNECTIONS (default 4 × CONCURRENCY) connections from 127.0.0.1: the excess over
#      LIMIT in flight is refused. recserve bench gives accepted req/s and their latency (from
#      the scheduled send time, send lag included) and counts errors by HTTP status. It keeps
#      no latency of failed requests, so bench/overload/probe.py (Python asyncio, raw HTTP/1.1)
#      sends PROBE_RATE req/s (default 200) from the same IP during the run and times its 429
#      and 200 answers separately (during both overload runs).
# Prints one line per run and the medians (with min–max) at the end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
TARGET="${TARGET:-mlp}"
case "$TARGET" in
  mlp) CONCURRENCY="${CONCURRENCY:-32}"; PROBE_RATE="${PROBE_RATE:-200}"
       LOAD=(--model mlp) ;;  # SERVE: a copy of the mlp model, made below
  recommend) CONCURRENCY="${CONCURRENCY:-8}"; PROBE_RATE="${PROBE_RATE:-20}"
       SERVE=(--model-repository "$ROOT/examples/ecommerce/models" --pipelines "$ROOT/examples/ecommerce/pipelines.toml")
       LOAD=(--recommend) ;;
  *) echo "TARGET must be mlp or recommend, not '$TARGET'" >&2; exit 2 ;;
esac
LIMIT="${LIMIT:-$CONCURRENCY}"
OPEN_CONNECTIONS="${OPEN_CONNECTIONS:-$((4 * CONCURRENCY))}"
if [[ "$TARGET" == mlp ]]; then
  mkdir -p "$WORK/models"
  cp -r fixtures/models/mlp "$WORK/models/mlp"
  SERVE=(--model-repository "$WORK/models")
fi

start() { # extra serve flags...
  start_server "$BIN" serve "${SERVE[@]}" --http-port 0 --grpc-port 0 --repository-poll-secs 0 \
    --no-default-rules --data-dir "$WORK/data-$RANDOM" "$@"
}
stop() { stop_server; }

echo "== target $TARGET, $(machine)" >&2

# 1. Capacity sweep with the default limit (1024: never reached here).
start
"$BIN" bench --url "http://$ADDR" "${LOAD[@]}" --concurrency-range 8:64:x2 --duration "$DURATION" --warmup 2 \
  --quiet --json-output "$WORK/sweep.json" >&2
stop
RATE="${RATE:-$(python3 - "$WORK/sweep.json" "$CONCURRENCY" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    if r["concurrency"] == int(sys.argv[2]):
        print(round(2 * r["throughput_rps"]))
PY
)}"
echo "== offered load for the overload runs: $RATE req/s (2 × capacity at concurrency $CONCURRENCY)" >&2

# 2. Alternating rounds on one server with the per-client limit.
start --max-in-flight-per-client "$LIMIT"
capacity() { # $1 = round
  "$BIN" bench --url "http://$ADDR" "${LOAD[@]}" --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup 2 \
    --quiet --json-output "$WORK/cap-$1.json" >/dev/null
  python3 - "$WORK/cap-$1.json" <<'PY' >&2
import json, sys
r = json.load(open(sys.argv[1]))[0]
l = r["latency_ms"]
print(f"  capacity  {r['throughput_rps']:8.0f} req/s  p50 {l['p50']:.3f} ms  p99 {l['p99']:.3f} ms  errors {r['errors']}")
PY
}
overload() { # $1 = round, $2 = rate (open loop at RATE) or conc (closed loop at 2 × CONCURRENCY)
  python3 bench/overload/probe.py "http://$ADDR" "$TARGET" "$PROBE_RATE" "$((DURATION + 2))" >"$WORK/probe-$2-$1.json" &
  local probe=$! load
  if [[ "$2" == rate ]]; then load=(--request-rate "$RATE" --max-in-flight "$OPEN_CONNECTIONS")
  else load=(--concurrency "$((2 * CONCURRENCY))"); fi
  "$BIN" bench --url "http://$ADDR" "${LOAD[@]}" "${load[@]}" \
    --duration "$DURATION" --warmup 2 --quiet --json-output "$WORK/over-$2-$1.json" >/dev/null
  wait "$probe"
  python3 - "$WORK/over-$2-$1.json" "$WORK/probe-$2-$1.json" "$2" <<'PY' >&2
import json, sys
r = json.load(open(sys.argv[1]))[0]
p = json.load(open(sys.argv[2]))
l, lag = r["latency_ms"], r["send_lag_ms"] or {"p99": 0.0}
refused = sum(e["count"] for e in r["error_messages"] if e["status"] == 429)
other = r["errors"] - refused
p429, p200 = p.get("429", {}), p.get("200", {})
print(f"  2x {sys.argv[3]:<4}  {r['throughput_rps']:8.0f} req/s accepted  p50 {l['p50']:.3f} ms  p99 {l['p99']:.3f} ms  "
      f"refused {refused / r['duration_s']:.0f}/s  other errors {other}  send lag p99 {lag['p99']:.3f} ms  | "
      f"probe 429 ×{p429.get('count', 0)} p50 {p429.get('p50_ms') or 0:.3f} p99 {p429.get('p99_ms') or 0:.3f} ms, "
      f"200 ×{p200.get('count', 0)} p50 {p200.get('p50_ms') or 0:.3f} p99 {p200.get('p99_ms') or 0:.3f} ms, "
      f"probe transport errors {p.get('transport_errors', 0)}")
if other:
    print("  other errors:", [e for e in r["error_messages"] if e["status"] != 429])
PY
}
for i in $(seq 1 "$ROUNDS"); do
  echo "round $i (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
  if (( i % 2 )); then capacity "$i"; overload "$i" conc; overload "$i" rate
  else overload "$i" rate; overload "$i" conc; capacity "$i"; fi
done
refusals="$(curl -s "http://$ADDR/metrics" | grep '^recserve_limit_refusals_total' || true)"
stop

python3 - "$WORK" "$ROUNDS" "$RATE" "$LIMIT" "$CONCURRENCY" <<'PY'
import json, statistics, sys
work, rounds, rate, limit, conc = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
def load(name):
    return json.load(open(f"{work}/{name}"))
def med(xs):
    return f"{statistics.median(xs):.3f} ({min(xs):.3f}–{max(xs):.3f})" if max(xs) < 100 else \
           f"{statistics.median(xs):.0f} ({min(xs):.0f}–{max(xs):.0f})"
sweep = load("sweep.json")
print("capacity sweep (default limit):", ", ".join(
    f"c{r['concurrency']} {r['throughput_rps']:.0f} req/s p50 {r['latency_ms']['p50']:.3f} p99 {r['latency_ms']['p99']:.3f} ms"
    for r in sweep))
cap = [load(f"cap-{i}.json")[0] for i in range(1, rounds + 1)]
print(f"limit {limit} in flight per client; medians (min–max) over {rounds} rounds:")
print(f"  capacity alone (closed loop at concurrency {conc}): {med([r['throughput_rps'] for r in cap])} req/s, p50 {med([r['latency_ms']['p50'] for r in cap])} ms, "
      f"p99 {med([r['latency_ms']['p99'] for r in cap])} ms, errors {sum(r['errors'] for r in cap)}")
mc = statistics.median(r["throughput_rps"] for r in cap)
pc = statistics.median(r["latency_ms"]["p99"] for r in cap)
for mode, what in (("conc", "closed loop at twice the concurrency"), ("rate", f"open loop at {rate:.0f} req/s")):
    over = [load(f"over-{mode}-{i}.json")[0] for i in range(1, rounds + 1)]
    probe = [load(f"probe-{mode}-{i}.json") for i in range(1, rounds + 1)]
    refused = [sum(e["count"] for e in r["error_messages"] if e["status"] == 429) / r["duration_s"] for r in over]
    other = [r["errors"] - sum(e["count"] for e in r["error_messages"] if e["status"] == 429) for r in over]
    lag = f" (send lag p99 {med([r['send_lag_ms']['p99'] for r in over])} ms)" if mode == "rate" else ""
    print(f"  2x load, {what}:")
    print(f"    accepted: {med([r['throughput_rps'] for r in over])} req/s, p50 {med([r['latency_ms']['p50'] for r in over])} ms, "
          f"p99 {med([r['latency_ms']['p99'] for r in over])} ms{lag}")
    print(f"    refused (429): {med(refused)} /s; errors other than 429: {sum(other)}")
    def probe_stat(status, key):
        xs = [p[status][key] for p in probe if status in p]
        return med(xs) if xs else "n/a"
    print(f"    probe (same IP, {sum(p.get('429', {}).get('count', 0) for p in probe)} refused, "
          f"{sum(p.get('200', {}).get('count', 0) for p in probe)} accepted samples): "
          f"429 p50 {probe_stat('429', 'p50_ms')} p99 {probe_stat('429', 'p99_ms')} ms; "
          f"200 p50 {probe_stat('200', 'p50_ms')} p99 {probe_stat('200', 'p99_ms')} ms; "
          f"transport errors {sum(p.get('transport_errors', 0) for p in probe)}")
    mo = statistics.median(r["throughput_rps"] for r in over)
    po = statistics.median(r["latency_ms"]["p99"] for r in over)
    ratios = [o["throughput_rps"] / c["throughput_rps"] for c, o in zip(cap, over)]
    print(f"    ratio accepted/capacity throughput: {mo / mc:.3f} (per round {[round(x, 3) for x in ratios]}); "
          f"p99 accepted/capacity: {po / pc:.2f}")
PY
echo "$refusals"
