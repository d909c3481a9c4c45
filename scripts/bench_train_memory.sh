#!/usr/bin/env bash
# Peak anonymous memory of `pgraph train` against --memory-budget, on a generated store whose
# features are larger than the smaller budgets (50k items x 256 float32 = 48.8 MiB).
# Results and reading: docs/BENCHMARKS.md, "## train", "Memory".
#
# Usage: scripts/bench_train_memory.sh [path/to/pgraph] [workdir]
# Environment: BUDGETS="16M 64M 256M 1G"  STEPS="--epochs 1 --max-steps-per-epoch 5"
#              FLAGS (extra train flags)  COMPRESSION=zstd|none (the store's chunks)
#
# Peak RssAnon is sampled from /proc every 20 ms while the run lasts (a benchmark, not a
# test: a peak shorter than that can be missed). The baseline is the RssAnon of a process
# that has loaded libtorch and opened the store (`pgraph info`), so "over baseline" is what
# training itself allocates: batches, cache, samplers, the model and its Adam state, and
# fixed costs of a training process (BLAS and thread buffers, the training pairs), which the
# "fixed" row measures with one-pair batches at the smallest budget. Validation is off
# (--eval-pairs 0): it is bounded the same way, but at small budgets slow to measure.
set -euo pipefail
PGRAPH=${1:-build/tools/pgraph}
WORK=${2:-bench-train-memory-out}
BUDGETS=${BUDGETS:-16M 64M 256M 1G}
STEPS=${STEPS:---epochs 1 --max-steps-per-epoch 5}
COMPRESSION=${COMPRESSION:-zstd}
FLAGS=${FLAGS:-}
mkdir -p "$WORK"
STORE="$WORK/store-$COMPRESSION"

if [[ ! -d $STORE ]]; then
  [[ -d $WORK/data ]] || "$PGRAPH" generate --out "$WORK/data" --items 50000 \
    --contexts 100000 --edges 1000000 --dim 256 --seed 7 --npy >/dev/null
  "$PGRAPH" ingest --isolated-items --compression "$COMPRESSION" --store "$STORE" \
    --edges "$WORK/data/edges.tsv" \
    --features "$WORK/data/features.npy" --feature-ids "$WORK/data/feature_ids.txt" >/dev/null
  "$PGRAPH" walk --store "$STORE" --heldout "$WORK/data/truth.tsv" >/dev/null
fi

# peak_anon CMD...: runs CMD, prints "peak_kib seconds" of its RssAnon.
peak_anon() {
  local start peak=0 v
  start=$(date +%s.%N)
  "$@" >"$WORK/last.log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    v=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [[ -n $v && $v -gt $peak ]] && peak=$v
    sleep 0.02
  done
  wait "$pid" || { cat "$WORK/last.log" >&2; return 1; }
  awk -v p="$peak" -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%d %.1f\n", p, e - s}'
}

read -r base _ < <(peak_anon "$PGRAPH" info --store "$STORE")
read -r fixed _ < <(peak_anon "$PGRAPH" train --store "$STORE" --neighbors 10 --hard-negatives off \
  --memory-budget "${BUDGETS%% *}" --batch 1 --negatives 1 --eval-pairs 0 $STEPS $FLAGS)
printf '# store (%s): 50k items x 256 f32 features (48.8 MiB), T=10, batch 512, 500 negatives; %s\n' \
  "$COMPRESSION" "$STEPS"
printf '# baseline (pgraph info, libtorch loaded): RssAnon %d KiB; fixed (train, one-pair batches): +%d KiB\n' \
  "$base" "$((fixed - base))"
printf '%-8s %-11s %9s %14s %15s %8s %s\n' budget mode peak_MiB over_base_MiB over_fixed_MiB pairs/s parts
for b in $BUDGETS; do
  for p in pipeline no-pipeline; do
    extra=""
    [[ $p == no-pipeline ]] && extra="--no-pipeline --torch-threads 1"
    read -r peak _ < <(peak_anon "$PGRAPH" train --store "$STORE" --neighbors 10 \
      --hard-negatives off --eval-pairs 0 --memory-budget "$b" $STEPS $extra $FLAGS)
    parts=$(grep -o '[0-9]* of [0-9]* steps ran in parts ([0-9.]* parts each)' "$WORK/last.log" || true)
    rate=$(grep -o 'epoch 1/1: loss [0-9.]*, [0-9.k]* pairs/s' "$WORK/last.log" | awk '{print $(NF-1)}')
    awk -v b="$b" -v p="$p" -v peak="$peak" -v base="$base" -v fixed="$fixed" -v r="$rate" \
      -v parts="${parts:-whole}" \
      'BEGIN {printf "%-8s %-11s %9.1f %14.1f %15.1f %8s %s\n", b, p, peak / 1024,
              (peak - base) / 1024, (peak - fixed) / 1024, r, parts}'
  done
done
