#!/usr/bin/env bash
# Inference on generated graphs with planted communities (`pgraph generate`, walked by
# `pgraph walk`): N items and N/4 items, through infer_bench --stores, which writes a random
# model into both stores and times item order, then the locality order, in one run.
# Results and reading: docs/BENCHMARKS.md, "## infer".
#
# Usage: scripts/bench_infer.sh [build dir] [workdir]
# Environment: ITEMS=1000000 (N; contexts 2N, edges 20N, as the demo's graph), THREADS=2,
#              BUDGET=2G, NAIVE=10 (items of the naive Algorithm 2 sample), COMPRESSION=none
#              (the stores' chunks; zstd works too), LOCALITY=auto
# The walked stores are kept in the workdir and reused (delete it after changing ITEMS).
set -euo pipefail
BUILD=${1:-build}
WORK=${2:-bench-infer-out}
ITEMS=${ITEMS:-1000000}
THREADS=${THREADS:-2}
BUDGET=${BUDGET:-2G}
NAIVE=${NAIVE:-10}
COMPRESSION=${COMPRESSION:-none}
LOCALITY=${LOCALITY:-auto}
PGRAPH="$BUILD/tools/pgraph"
mkdir -p "$WORK"

# store NAME ITEMS: generate, ingest and walk once.
store() {
  local dir="$WORK/$1" n=$2
  [[ -d $dir/store ]] && return 0
  "$PGRAPH" generate --quiet --out "$dir/data" --items "$n" --contexts $((2 * n)) \
    --edges $((20 * n)) --dim 64 --seed 7
  "$PGRAPH" ingest --quiet --isolated-items --compression "$COMPRESSION" --threads "$THREADS" \
    --store "$dir/store" --edges "$dir/data/edges.tsv" --features "$dir/data/features.tsv"
  "$PGRAPH" walk --quiet --threads "$THREADS" --store "$dir/store"
  rm -rf "$dir/data"
}
store n "$ITEMS"
store quarter $((ITEMS / 4))
"$BUILD/tools/bench/infer_bench" --stores "$WORK/n/store,$WORK/quarter/store" \
  --threads "$THREADS" --budget "$BUDGET" --naive-sample "$NAIVE" --locality "$LOCALITY"
