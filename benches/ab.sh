#!/usr/bin/env bash
# Two builds of the wordcount example side by side on one corpus, interleaved run by run, to
# measure what a change to the data path costs: the build before it against the build after.
#
#   bash benches/ab.sh BEFORE_WORDCOUNT AFTER_WORDCOUNT CORPUS [REPS]    # REPS defaults to 5
#
# e.g. with the build before in a worktree:
#   git worktree add /tmp/before <commit> && (cd /tmp/before && cargo build --release --example wordcount)
#   bash benches/ab.sh /tmp/before/target/release/examples/wordcount \
#       target/release/examples/wordcount /tmp/corpus-20M.txt
# Each round runs both builds with the discard sink and with the exactly-once file sink (p =
# $PARALLELISM, default 2, checkpoints every 1 s), and prints the median, min and max words/s.
set -euo pipefail
BEFORE=${1:?usage: ab.sh BEFORE_WORDCOUNT AFTER_WORDCOUNT CORPUS [REPS]}
AFTER=${2:?usage: ab.sh BEFORE_WORDCOUNT AFTER_WORDCOUNT CORPUS [REPS]}
CORPUS=${3:?usage: ab.sh BEFORE_WORDCOUNT AFTER_WORDCOUNT CORPUS [REPS]}
REPS=${4:-5}
PAR=${PARALLELISM:-2}
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/snapflow-ab.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
cat "$CORPUS" > /dev/null # warm the page cache

run() { # NAME BIN SINK_ARGS...: appends words/s to $SCRATCH/NAME
  local name=$1 bin=$2; shift 2
  rm -rf "$SCRATCH/ckpt" "$SCRATCH/out"
  local log="$SCRATCH/log"
  if ! "$bin" --input "$CORPUS" --parallelism "$PAR" --checkpoint-dir "$SCRATCH/ckpt" "$@" > "$log" 2>&1; then
    echo "$name failed:" >&2; cat "$log" >&2; exit 1
  fi
  local rate
  rate=$(sed -n 's/.*elapsed [0-9.]* s, \([0-9.]*\) M words\/s.*/\1/p' "$log")
  echo "$rate" >> "$SCRATCH/$name"
  printf '  %-16s %6s M words/s\n' "$name" "$rate"
}

echo "corpus $CORPUS, parallelism $PAR, $REPS rounds; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$REPS"); do
  echo "round $r"
  run before-discard "$BEFORE" --sink discard
  run after-discard "$AFTER" --sink discard
  run before-file "$BEFORE" --output "$SCRATCH/out"
  run after-file "$AFTER" --output "$SCRATCH/out"
done

echo "summary (M words/s: median, min-max)"
for name in before-discard after-discard before-file after-file; do
  sort -n "$SCRATCH/$name" | awk -v n="$name" '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "  %-16s %6.2f (%.2f-%.2f)\n", n, m, v[1], v[NR] }'
done
