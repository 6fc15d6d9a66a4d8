#!/usr/bin/env bash
# Cost of the per-client concurrency limiter (issue 8): the same closed-loop load against a
# server with `--max-in-flight-per-client 0` (the limiter off: `ClientLimiter::admit` returns at
# once, no lock, no permit) and one with the default 1024 (every data-plane request takes and
# gives back a place under the limiter's mutex; never refused at this concurrency). Same
# release binary, model (fixtures/models/mlp, V2 JSON, 1 row), load generator (`recserve bench`),
# one fresh server per run, alternating the two ROUNDS times (the order flips every round) so
# drift in the machine's load hits both.
#
#   bench/limits/run.sh                                # 5 rounds of 10 s, concurrency 32
#   SKIP_BUILD=1 ROUNDS=3 DURATION=8 bench/limits/run.sh
#
# Prints one line per run, then medians (min–max) and the ratios 1024 / off.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-10}"
CONCURRENCY="${CONCURRENCY:-32}"
mkdir -p "$WORK/models"
cp -r fixtures/models/mlp "$WORK/models/mlp"
echo "== $(machine)" >&2

run() { # $1 = limit, $2 = run name
  local limit="$1"
  start_server "$BIN" serve --model-repository "$WORK/models" --http-port 0 --grpc-port 0 --repository-poll-secs 0 \
    --no-default-rules --data-dir "$WORK/data-$2" --max-in-flight-per-client "$limit"
  "$BIN" bench --url "http://$ADDR" --model mlp --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup 2 \
    --quiet --json-output "$WORK/$2.json" >/dev/null
  stop_server
  python3 - "$WORK/$2.json" "$limit" <<'PY' >&2
import json, sys
r = json.load(open(sys.argv[1]))[0]
l = r["latency_ms"]
print(f"  limit {sys.argv[2]:>4}: {r['throughput_rps']:8.0f} req/s  p50 {l['p50']:.3f} ms  p99 {l['p99']:.3f} ms  errors {r['errors']}")
PY
}

for i in $(seq 1 "$ROUNDS"); do
  echo "round $i (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
  if (( i % 2 )); then run 0 "off-$i"; run 1024 "on-$i"; else run 1024 "on-$i"; run 0 "off-$i"; fi
done

python3 - "$WORK" "$ROUNDS" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def side(name):
    return [json.load(open(f"{work}/{name}-{i}.json"))[0] for i in range(1, rounds + 1)]
def med(xs, f):
    return f"{statistics.median(xs):{f}} ({min(xs):{f}}–{max(xs):{f}})"
on, off = side("on"), side("off")
for name, rs in (("limit 1024 (default)", on), ("limit 0 (off)", off)):
    print(f"{name}: {med([r['throughput_rps'] for r in rs], '.0f')} req/s, "
          f"p50 {med([r['latency_ms']['p50'] for r in rs], '.3f')} ms, p99 {med([r['latency_ms']['p99'] for r in rs], '.3f')} ms, "
          f"errors {sum(r['errors'] for r in rs)}")
t = statistics.median(r["throughput_rps"] for r in on) / statistics.median(r["throughput_rps"] for r in off)
p = statistics.median(r["latency_ms"]["p99"] for r in on) / statistics.median(r["latency_ms"]["p99"] for r in off)
per = [round(a["throughput_rps"] / b["throughput_rps"], 3) for a, b in zip(on, off)]
print(f"ratio 1024/off: throughput {t:.3f} (per round {per}), p99 {p:.3f}")
PY
