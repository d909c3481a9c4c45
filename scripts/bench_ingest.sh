#!/usr/bin/env bash
# Ingest speed against `wc -l` on the same cached file, and peak RSS per edge.
# Usage: scripts/bench_ingest.sh [pgraph] [edges] [workdir]
# Prints one line per run and the ratios; see docs/BENCHMARKS.md ("ingest").
set -euo pipefail
PGRAPH=${1:-build/tools/pgraph}
EDGES=${2:-50000000}
WORK=${3:-/tmp/pgraph-bench-ingest}
RUNS=${RUNS:-3}
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)"; exit 1; }
mkdir -p "$WORK"
if [ ! -f "$WORK/g/edges.tsv" ] || [ "$(cat "$WORK/g/.edges" 2>/dev/null)" != "$EDGES" ]; then
  "$PGRAPH" generate --out "$WORK/g" --items $((EDGES / 50)) --contexts $((EDGES / 25)) \
    --edges "$EDGES" --dim 8 --seed 1 >/dev/null
  echo "$EDGES" > "$WORK/g/.edges"
fi
F="$WORK/g/edges.tsv"
cat "$F" > /dev/null  # warm the page cache
printf 'file %s: %s bytes, %s edges\n' "$F" "$(stat -c %s "$F")" "$EDGES"
best_wc=999999; best_ing=999999; rss=0
for i in $(seq "$RUNS"); do
  t=$( { /usr/bin/time -f '%e' wc -l "$F" >/dev/null; } 2>&1 )
  best_wc=$(echo "$t $best_wc" | awk '{print ($1<$2)?$1:$2}')
  rm -rf "$WORK/store"
  out=$( { /usr/bin/time -f '%e %M' "$PGRAPH" ingest --quiet --store "$WORK/store" --edges "$F" \
      --compression "${COMPRESSION:-none}" >/dev/null; } 2>&1 | tail -n 1)
  set -- $out
  echo "run $i: wc -l ${t}s, ingest ${1}s, peak RSS ${2} KiB"
  best_ing=$(echo "$1 $best_ing" | awk '{print ($1<$2)?$1:$2}')
  rss=$2
done
awk -v w="$best_wc" -v g="$best_ing" -v r="$rss" -v e="$EDGES" 'BEGIN {
  printf "best: wc -l %.2fs, ingest %.2fs -> %.1fx wc -l (goal <= 40x), %.2fM edges/s, %.1f bytes/edge peak RSS (goal <= 40)\n",
         w, g, g / w, e / g / 1e6, r * 1024 / e }'
rm -rf "$WORK/store"
