#!/usr/bin/env bash
# Serving throughput with the request log on (every request recorded: sample rate 1) against
# off (sample rate 0: successful requests leave no record; none fail here), in one run: the same
# release binary, model (fixtures/models/mlp), load generator (`recserve bench`, closed loop) and
# SQLite store, alternating on/off ROUNDS times so that drift in the machine's load hits both.
#
#   bench/logging/run.sh                         # 3 rounds of 10 s each, concurrency 32
#   ROUNDS=5 DURATION=20 bench/logging/run.sh
#   RECOMMEND=1 bench/logging/run.sh             # /v1/recommend on the demo shop instead of V2
#   BEFORE_BIN=/tmp/recserve-before bench/logging/run.sh
#                                                # also an older binary, in the same rounds: each
#                                                # round runs before-on, before-off, on, off
#
# Prints one line per run and the ratio of the medians (on / off). Every server it starts is
# stopped when it exits. Each run also measures the server's CPU time (user + system, from
# /proc/<pid>/stat) over the measured part of the load, per request: throughput on a shared
# machine swings with whatever else runs, CPU per request much less, and on / off of the CPU
# per request is what the throughput ratio tends to when the server has the cores to itself.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
CONCURRENCY="${CONCURRENCY:-32}"

run() { # $1 = sample rate, $2 = binary (default $BIN); prints req/s
  local rate="$1" bin="${2:-$BIN}" data="$WORK/data-$1-$RANDOM"
  if [[ "${RECOMMEND:-0}" == 1 ]]; then
    start_server "$bin" demo --http-port 0 --grpc-port 0 --traffic-rate 0 --data-dir "$data" --no-default-rules \
      --request-log-sample-rate "$rate"
  else
    start_server "$bin" serve --http-port 0 --grpc-port 0 --repository-poll-secs 0 --no-default-rules \
      --data-dir "$data" --request-log-sample-rate "$rate" --model-repository fixtures/models
  fi
  local load=(--url "http://$ADDR" --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup 2
    --json-output "$WORK/report.json")
  if [[ "${RECOMMEND:-0}" == 1 ]]; then load+=(--recommend); else load+=(--model mlp); fi
  cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$PID/stat"; }
  "$BIN" bench "${load[@]}" >/dev/null &
  local loadgen=$! cpu0 cpu1
  sleep 2 # the warm-up
  cpu0="$(cpu_ticks)"
  wait "$loadgen"
  cpu1="$(cpu_ticks)"
  local committed
  committed="$(curl -s "http://$ADDR/metrics" | sed -n 's/^recserve_log_records_committed_total //p')"
  local dropped
  dropped="$(curl -s "http://$ADDR/metrics" | sed -n 's/^recserve_log_records_dropped_total //p')"
  stop_server
  python3 - "$WORK/report.json" "$rate" "$committed" "$dropped" "$(basename "$bin")" "$cpu0" "$cpu1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))[0]
# /proc ticks are 1/100 s.
cpu_us = (float(sys.argv[7]) - float(sys.argv[6])) * 1e4 / max(r['requests'], 1)
print(f"{sys.argv[5]} rate {sys.argv[2]}: {r['throughput_rps']:.0f} req/s  p99 {r['latency_ms']['p99']:.2f} ms  errors {r['errors']}  "
      f"server CPU {cpu_us:.1f} µs/request  log records committed {sys.argv[3]} dropped {sys.argv[4]}", file=sys.stderr)
print(f"{r['throughput_rps']}:{cpu_us}")
PY
}

on=(); off=(); bon=(); boff=()
for i in $(seq 1 "$ROUNDS"); do
  if [[ -n "${BEFORE_BIN:-}" ]]; then
    bon+=("$(run 1 "$BEFORE_BIN")")
    boff+=("$(run 0 "$BEFORE_BIN")")
  fi
  on+=("$(run 1)")
  off+=("$(run 0)")
done
summary() { # $1 = label, $2 = on runs, $3 = off runs
  python3 - "$1" "$2" "$3" <<'PY'
import statistics, sys
label = sys.argv[1]
on = [float(x.split(":")[0]) for x in sys.argv[2].split()]
off = [float(x.split(":")[0]) for x in sys.argv[3].split()]
cpu_on = [float(x.split(":")[1]) for x in sys.argv[2].split()]
cpu_off = [float(x.split(":")[1]) for x in sys.argv[3].split()]
m_on, m_off = statistics.median(on), statistics.median(off)
c_on, c_off = statistics.median(cpu_on), statistics.median(cpu_off)
spread = lambda xs: (max(xs) - min(xs)) / statistics.median(xs) * 100
print(f"{label}request log on (rate 1): median {m_on:.0f} req/s {[round(x) for x in on]} (spread {spread(on):.0f}%); "
      f"server CPU median {c_on:.1f} µs/request {[round(x, 1) for x in cpu_on]}")
print(f"{label}request log off (rate 0): median {m_off:.0f} req/s {[round(x) for x in off]} (spread {spread(off):.0f}%); "
      f"server CPU median {c_off:.1f} µs/request {[round(x, 1) for x in cpu_off]}")
print(f"{label}ratio on/off: {m_on / m_off:.3f}; CPU per request off/on: {c_off / c_on:.3f} "
      f"(the log costs {c_on - c_off:.1f} µs of server CPU per request)")
PY
}
if [[ -n "${BEFORE_BIN:-}" ]]; then
  summary "before ($BEFORE_BIN): " "${bon[*]}" "${boff[*]}"
fi
summary "" "${on[*]}" "${off[*]}"
