#!/usr/bin/env bash
# Nexmark on snapflow, and optionally on Flink, over the same event file, interleaved run by run
# so that machine drift hits every configuration alike.
#
#   bash benches/nexmark.sh EVENTS_FILE [QUERY...]
#     default queries: q0 q1 q2 q3 q4 q5 q7 q8 q11 q18 (Flink runs only those in its peer:
#     q0 q1 q2 q3 q5 q7 q8 q11)
#
# Each round runs, for every query: snapflow at every parallelism of $PARALLELISMS (default
# "1 2"), exactly-once checkpoints every $CHECKPOINT_MS (default 1000) ms into a fresh directory,
# rows counted and dropped; then, with FLINK=1, the Flink peer's run.sh on the same file (p=2,
# checkpoints every 1 s; installs itself on first use). REPS rounds (default 3).
# Prints every run, then per query and configuration the median (min-max) events/s, the median
# events/s per core (events / wall seconds / min(parallelism, CPUs); Flink: its events/s over
# its parallelism's cores, net runtime) and the row count.
# Make the file with: bash ../shared/peers/nexmark_gen.sh 1000000
# Env: PEERS=../shared/peers  PEERS_SCRATCH (Flink's)  REPS=3  PARALLELISMS="1 2"
#      CHECKPOINT_MS=1000  FLINK=0
set -euo pipefail
EVENTS=${1:?usage: nexmark.sh EVENTS_FILE [QUERY...]}
shift
QUERIES=${*:-q0 q1 q2 q3 q4 q5 q7 q8 q11 q18}
REPS=${REPS:-3}
PARALLELISMS=${PARALLELISMS:-1 2}
CHECKPOINT_MS=${CHECKPOINT_MS:-1000}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PEERS=${PEERS:-$HERE/../shared/peers}
(cd "$HERE" && cargo build -q --release --example nexmark)
BIN=${CARGO_TARGET_DIR:-$HERE/target}/release/examples/nexmark
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/snapflow-nexmark-bench.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
cat "$EVENTS" > /dev/null # warm the page cache
CPUS=$(nproc)

for r in $(seq 1 "$REPS"); do
  for q in $QUERIES; do
    for p in $PARALLELISMS; do
      line=$("$BIN" --query "$q" --input "$EVENTS" --parallelism "$p" \
        --checkpoint-interval-ms "$CHECKPOINT_MS" --checkpoint-dir "$SCRATCH/ckpt" | grep '^RESULT')
      rm -rf "$SCRATCH/ckpt"
      echo "round $r snapflow-p$p $line" | tee -a "$SCRATCH/runs"
    done
    if [ "${FLINK:-0}" = 1 ] && [ -f "$PEERS/flink/nexmark/queries/$q.sql" ]; then
      line=$(bash "$PEERS/flink/nexmark/run.sh" "$EVENTS" "$q" | tail -1)
      p=${PARALLELISM:-2}
      cores=$(( p < CPUS ? p : CPUS ))
      eps=$(sed -n 's/.* events_per_s=\([0-9]*\).*/\1/p' <<< "$line")
      rows=$(sed -n 's/.* rows=\([0-9]*\).*/\1/p' <<< "$line")
      echo "round $r flink-p$p RESULT query=$q rows=$rows events_per_s=$eps events_per_s_per_core=$((eps / cores)) ($line)" \
        | tee -a "$SCRATCH/runs"
    fi
  done
done

python3 - "$SCRATCH/runs" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    config = line.split()[2]
    kv = dict(re.findall(r"(\w+)=(\S+)", line.split("(")[0]))
    runs.setdefault((kv["query"], config), []).append(kv)
print("\n| query | config | events/s median (min-max) | events/s per core median | rows |")
print("|---|---|---|---|---|")
for (q, config), rs in runs.items():
    eps = sorted(float(r["events_per_s"]) for r in rs)
    core = statistics.median(float(r["events_per_s_per_core"]) for r in rs)
    rows = sorted({r["rows"] for r in rs})
    print(f"| {q} | {config} | {statistics.median(eps)/1e3:.0f} K ({eps[0]/1e3:.0f}-{eps[-1]/1e3:.0f}) "
          f"| {core/1e3:.0f} K | {','.join(rows)} |")
PY
