#!/usr/bin/env bash
# Ingest speed against `wc -l` on the same cached file, and peak RSS per edge.
# Usage: scripts/bench_ingest.sh [pgraph] [edges] [workdir]
# Prints one line per run (with its own ratio: ingest / wc -l of the same run) and the best
# and median ratio over RUNS runs (default 3); see docs/BENCHMARKS.md ("ingest").
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
results=()
for i in $(seq "$RUNS"); do
  t=$( { /usr/bin/time -f '%e' wc -l "$F" >/dev/null; } 2>&1 )
  rm -rf "$WORK/store"
  out=$( { /usr/bin/time -f '%e %M' "$PGRAPH" ingest --quiet --store "$WORK/store" --edges "$F" \
      --compression "${COMPRESSION:-none}" >/dev/null; } 2>&1 | tail -n 1)
  set -- $out
  ratio=$(awk -v g="$1" -v w="$t" 'BEGIN { printf "%.1f", g / w }')
  echo "run $i: wc -l ${t}s, ingest ${1}s (${ratio}x wc -l), peak RSS ${2} KiB, load $(cut -d' ' -f1 /proc/loadavg)"
  results+=("$ratio $1 $t $2")
done
# Each run's ratio is ingest / wc -l of that run; best and median over the runs.
printf '%s\n' "${results[@]}" | sort -n | awk -v e="$EDGES" '
  { r[NR] = $1; g[NR] = $2; w[NR] = $3; if ($4 > rss) rss = $4 }
  END {
    m = int((NR + 1) / 2)
    printf "best:   %.1fx wc -l (ingest %.2fs, wc -l %.2fs), %.2fM edges/s\n", r[1], g[1], w[1], e / g[1] / 1e6
    printf "median: %.1fx wc -l (ingest %.2fs, wc -l %.2fs), %.2fM edges/s (goal <= 40x)\n", r[m], g[m], w[m], e / g[m] / 1e6
    printf "peak RSS (max of runs): %.1f bytes/edge (goal <= 40)\n", rss * 1024 / e }'
rm -rf "$WORK/store"
