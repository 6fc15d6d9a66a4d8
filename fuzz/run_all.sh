#!/bin/sh
# Runs every fuzz target (or those named) for FUZZ_SECONDS (default 600) each, one at a time,
# at the lowest CPU priority, growing fuzz/corpus/<target> from it and the seeds in
# corpus.raw/<target> (make_seeds.py), then minimises the corpus with `cargo fuzz cmin`.
# Logs go to fuzz/logs/<target>.log (not committed); crashes to fuzz/artifacts/<target>/.
set -u
cd "$(dirname "$0")"
FUZZ=$(pwd)
SECONDS_EACH=${FUZZ_SECONDS:-600}
TARGETS=${*:-"v2_json v2_binary grpc_infer promql rule_file model_config recommend_request"}
BUILD="--sanitizer ${FUZZ_SANITIZER:-address} --codegen-units 16 ${FUZZ_TARGET_DIR:+--target-dir $FUZZ_TARGET_DIR}"
mkdir -p logs
for t in $TARGETS; do
  mkdir -p "corpus/$t" "artifacts/$t" corpus.raw/$t
  RUSTC_BOOTSTRAP=1 nice -n 19 cargo fuzz run $BUILD "$t" "corpus/$t" "corpus.raw/$t" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$FUZZ/artifacts/$t/" > "logs/$t.log" 2>&1
  echo "$t: exit $?" >> logs/summary.txt
  RUSTC_BOOTSTRAP=1 nice -n 19 cargo fuzz cmin $BUILD "$t" "corpus/$t" -- -rss_limit_mb=2048 -timeout=10 \
    > "logs/$t.cmin.log" 2>&1
done
