#!/usr/bin/env bash
# snapflow's word count side by side with the single-thread baseline (examples/baseline.rs),
# interleaved run by run so that machine drift hits every configuration alike.
#
#   bash benches/compare.sh CORPUS [REPS]        # REPS defaults to 5
#
# Configurations (p = $PARALLELISM, default 2):
#   baseline-emit     one thread, no engine, count + one update per word to /dev/null
#   baseline-count    one thread, no engine, count only
#   snapflow-discard  p tasks per operator, exactly-once checkpoints every 1 s, discard sink
#   snapflow-nockpt   the same without checkpoints (for the checkpoint overhead)
#   snapflow-unchained  as snapflow-discard with --no-chaining (a thread per operator task)
#   snapflow-file     checkpoints every 1 s, exactly-once file sink (output in a scratch dir)
#   flink             only with FLINK_PEER=../shared/peers/flink/run.sh: Apache Flink 2.3, p=2,
#                     exactly-once checkpoints every 1 s (installs itself on first use)
# Prints the median, min and max words/s and the median peak RSS of each, and the ratios.
# Make a corpus with: python3 ../shared/peers/corpus.py --words 20000000 --vocab 100000 \
#   --seed 1 --out /tmp/corpus-20M.txt
set -euo pipefail
CORPUS=${1:?usage: compare.sh CORPUS [REPS]}
REPS=${2:-5}
PAR=${PARALLELISM:-2}
cd "$(dirname "$0")/.."
cargo build --release --quiet --example wordcount --example baseline
BIN=target/release/examples
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/snapflow-compare.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
cat "$CORPUS" > /dev/null # warm the page cache

run() { # NAME COMMAND...: appends "words_per_s peak_rss_mib" to $SCRATCH/NAME
  local name=$1; shift
  local log="$SCRATCH/log"
  if ! "$@" > "$log" 2>&1; then
    echo "$name failed:" >&2; cat "$log" >&2; exit 1
  fi
  local rate rss
  rate=$(sed -n 's/.*elapsed [0-9.]* s, \([0-9.]*\) M words\/s.*/\1/p' "$log")
  rss=$(sed -n 's/.*peak RSS \([0-9.]*\) MiB.*/\1/p' "$log")
  echo "$rate $rss" >> "$SCRATCH/$name"
  printf '  %-17s %6s M words/s  %6s MiB\n' "$name" "$rate" "$rss"
}

wordcount() { # EXTRA_ARGS...
  rm -rf "$SCRATCH/ckpt" "$SCRATCH/out"
  "$BIN/wordcount" --input "$CORPUS" --parallelism "$PAR" "$@"
}

flink() { # prints what `run` parses, from the peer script's RESULT line and /usr/bin/time
  local out
  out=$(bash "$FLINK_PEER" "$CORPUS" -- --parallelism "$PAR" --checkpoint-ms 1000 2>&1)
  local rate kib
  rate=$(echo "$out" | sed -n 's/.*words_per_s=\([0-9]*\).*/\1/p' | head -1)
  kib=$(echo "$out" | sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\).*/\1/p')
  [ -n "$rate" ] || { echo "$out" >&2; return 1; }
  awk -v r="$rate" -v k="$kib" 'BEGIN { printf "elapsed 0 s, %.2f M words/s\npeak RSS %.1f MiB\n", r / 1e6, k / 1024 }'
}

echo "corpus $CORPUS, parallelism $PAR, $REPS rounds; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$REPS"); do
  echo "round $r"
  run baseline-emit "$BIN/baseline" --input "$CORPUS" --mode emit
  run snapflow-discard wordcount --sink discard --checkpoint-dir "$SCRATCH/ckpt"
  run snapflow-nockpt wordcount --sink discard --no-checkpoints
  run snapflow-unchained wordcount --sink discard --checkpoint-dir "$SCRATCH/ckpt" --no-chaining
  run snapflow-file wordcount --output "$SCRATCH/out" --checkpoint-dir "$SCRATCH/ckpt"
  run baseline-count "$BIN/baseline" --input "$CORPUS" --mode count
  if [ -n "${FLINK_PEER:-}" ]; then run flink flink; fi
done

python3 - "$SCRATCH" <<'PY'
import statistics, sys, os
d = sys.argv[1]
names = ["baseline-emit", "baseline-count", "snapflow-discard", "snapflow-nockpt", "snapflow-unchained", "snapflow-file"]
if os.path.exists(os.path.join(d, "flink")):
    names.append("flink")
rows = {}
for n in names:
    runs = [tuple(map(float, l.split())) for l in open(os.path.join(d, n)) if l.strip()]
    rates = [r[0] for r in runs]
    rows[n] = (statistics.median(rates), min(rates), max(rates), statistics.median(r[1] for r in runs))
print()
print(f"{'configuration':<18} {'median':>8} {'min':>7} {'max':>7}  {'peak RSS':>9}   (M words/s)")
for n in names:
    m, lo, hi, rss = rows[n]
    print(f"{n:<18} {m:>8.2f} {lo:>7.2f} {hi:>7.2f}  {rss:>6.1f} MiB")
base = rows["baseline-emit"][0]
# Without a Flink run in this batch, the figure measured in ../shared/peers/README.md.
flink, where = (rows["flink"][0], "in this batch") if "flink" in rows else (2.42, "as in ../shared/peers")
print()
for n in ["snapflow-discard", "snapflow-unchained", "snapflow-file"]:
    m = rows[n][0]
    print(f"{n}: {m / base:.2f}x the single-thread baseline (emit), {m / flink:.1f}x Flink ({flink:.2f} M, {where})")
on, off = rows["snapflow-discard"][0], rows["snapflow-nockpt"][0]
print(f"checkpoint overhead (discard sink, 1 s interval): {(1 - on / off) * 100:+.1f}% (medians)")
PY
