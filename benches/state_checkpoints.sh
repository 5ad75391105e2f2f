#!/usr/bin/env bash
# Issue 14's end-to-end figures: word count with 1 M keys of state at p = 2, 1% of the keys
# written between checkpoints, incremental checkpoints on and off, then a kill -9 and the
# recovery of the rerun.
#
#   cargo build --release --example wordcount && bash benches/state_checkpoints.sh [KEYS] [LINES]
#
# The corpus: KEYS distinct words once each (KEYS/10 lines of 10), then LINES lines drawn
# from a hot set of KEYS/100 words, so that whatever the speed at most 1% of the keys change
# between two checkpoints. The source is limited to 200k lines/s so that the run spans many
# 1 s checkpoints. Per mode it prints wordcount's checkpoint report (task thread blocked by a
# snapshot, max and p99; bytes per checkpoint; duration), then kills a run after 6 s and
# prints the rerun's recovery line (process start to the first word counted and to the first
# completed checkpoint).
set -euo pipefail
KEYS=${1:-1000000}
LINES=${2:-3000000}
PAR=${PARALLELISM:-2}
BIN=${WORDCOUNT:-${CARGO_TARGET_DIR:-target}/release/examples/wordcount}
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/snapflow-state.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
CORPUS="$SCRATCH/corpus.txt"
python3 - "$KEYS" "$LINES" "$CORPUS" <<'PY'
import random, sys
keys, lines, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = random.Random(1)
hot = max(keys // 100, 1)
with open(path, "w") as out:
    for start in range(0, keys, 10):
        out.write(" ".join(f"w{k}" for k in range(start, min(start + 10, keys))) + "\n")
    for _ in range(lines):
        out.write(" ".join(f"w{rng.randrange(hot) * 100}" for _ in range(10)) + "\n")
PY
echo "corpus: $KEYS keys, then $LINES lines over $((KEYS / 100)) hot keys; p=$PAR; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in incremental full; do
  flag=()
  [ "$mode" = full ] && flag=(--no-incremental-checkpoints)
  echo "== $mode checkpoints: a whole run"
  rm -rf "$SCRATCH/ckpt"
  "$BIN" --input "$CORPUS" --parallelism "$PAR" --sink discard --max-rate 200000 \
    --checkpoint-dir "$SCRATCH/ckpt" "${flag[@]}" | grep -E "checkpoint|blocked|bytes|elapsed"
  echo "== $mode checkpoints: killed after 6 s, then rerun"
  rm -rf "$SCRATCH/ckpt"
  timeout -s KILL 6 "$BIN" --input "$CORPUS" --parallelism "$PAR" --sink discard \
    --max-rate 200000 --checkpoint-dir "$SCRATCH/ckpt" "${flag[@]}" > /dev/null 2>&1 || true
  "$BIN" --input "$CORPUS" --parallelism "$PAR" --sink discard --max-rate 200000 \
    --checkpoint-dir "$SCRATCH/ckpt" "${flag[@]}" | grep -E "resumed|recovery"
done
