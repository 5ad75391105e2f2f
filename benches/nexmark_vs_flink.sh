#!/usr/bin/env bash
# snapflow's Nexmark results against the Flink peer's, row for row, on the same event file.
#
#   bash benches/nexmark_vs_flink.sh [EVENTS] [QUERY...]
#     EVENTS: events in the file (default 100000); QUERY: default q0 q1 q2 q3 q5 q7 q8 q11
#
# 1. The event file: $PEERS_SCRATCH/nexmark/events-EVENTS.json, made by the peer's
#    nexmark_gen.sh if missing (cargo-installs the generator once, ~2 min). snapflow's own
#    `nexmark --generate-file` must write the same bytes (checked by md5).
# 2. Each query runs on snapflow (p=2, checkpoints every 1 s, exactly-once file sink) over the
#    file; the committed CSV files are concatenated.
# 3. compare.py diff against the peer's plain-Python reference (reference.py) of the query.
# 4. compare.py diff against Flink's own result when it is there: $EXPECTED_DIR/events-EVENTS/
#    QUERY.csv, or, for big results, the canon_md5 in $EXPECTED_DIR/counts-events-EVENTS.tsv.
#    RUN_FLINK=1 makes them first with the peer's expected.sh (installs ~330 MB of Flink jars
#    into $PEERS_SCRATCH once, then runs Flink once per query).
#
# Env: PEERS=../shared/peers  PEERS_SCRATCH=${TMPDIR:-/tmp}/snapflow-peers
#      EXPECTED_DIR=$PEERS_SCRATCH/nexmark-expected-csv  PARALLELISM=2  RUN_FLINK=0
# Exit status 1 if any comparison differs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
PEERS=${PEERS:-$HERE/../shared/peers}
export PEERS_SCRATCH=${PEERS_SCRATCH:-${TMPDIR:-/tmp}/snapflow-peers}
export EXPECTED_DIR=${EXPECTED_DIR:-$PEERS_SCRATCH/nexmark-expected-csv}
EVENTS=${1:-100000}
[ $# -gt 0 ] && shift
QUERIES=${*:-q0 q1 q2 q3 q5 q7 q8 q11}
NX=$PEERS/flink/nexmark
FILE=$PEERS_SCRATCH/nexmark/events-$EVENTS.json
NAME=events-$EVENTS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nexmark-vs-flink.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

(cd "$HERE" && cargo build -q --release --example nexmark)
BIN=${CARGO_TARGET_DIR:-$HERE/target}/release/examples/nexmark

[ -f "$FILE" ] || bash "$PEERS/nexmark_gen.sh" "$EVENTS" >&2
"$BIN" --generate-file "$WORK/generated.json" --events "$EVENTS" > /dev/null
if [ "$(md5sum < "$WORK/generated.json")" != "$(md5sum < "$FILE")" ]; then
  echo "DIFFERENT: snapflow's generated events differ from $FILE" >&2
  exit 1
fi
echo "events: snapflow's generator writes $FILE byte for byte ($(md5sum < "$FILE" | cut -d' ' -f1))"
rm -f "$WORK/generated.json"

if [ "${RUN_FLINK:-0}" = 1 ]; then
  bash "$NX/expected.sh" "$FILE" $QUERIES >&2
fi

status=0
for q in $QUERIES; do
  out=$WORK/$q
  "$BIN" --query "$q" --input "$FILE" --output "$out/rows" --checkpoint-dir "$out/ckpt" \
    --parallelism "${PARALLELISM:-2}" > "$out.log"
  find "$out/rows" -type f ! -path '*/[._]*' -exec cat {} + > "$out.csv"
  rows=$(wc -l < "$out.csv")
  if python3 "$NX/reference.py" "$FILE" "$q" "$out.reference.csv" > /dev/null 2>&1; then
    if r=$(python3 "$NX/compare.py" diff "$out.reference.csv" "$out.csv"); then
      echo "$q: $rows rows; reference.py: $r"
    else
      echo "$q: $rows rows; reference.py: $r"; status=1
    fi
  else
    echo "$q: $rows rows; reference.py has no $q"
  fi
  if [ -f "$EXPECTED_DIR/$NAME/$q.csv" ]; then
    if r=$(python3 "$NX/compare.py" diff "$EXPECTED_DIR/$NAME/$q.csv" "$out.csv"); then
      echo "$q: Flink: $r"
    else
      echo "$q: Flink: $r"; status=1
    fi
  elif [ -f "$EXPECTED_DIR/counts-$NAME.tsv" ] && grep -q "^$q	" "$EXPECTED_DIR/counts-$NAME.tsv"; then
    want=$(grep "^$q	" "$EXPECTED_DIR/counts-$NAME.tsv" | cut -f5)
    got=$(python3 "$NX/compare.py" canon "$out.csv" | sed 's/.*canon_md5=//')
    if [ "$want" = "$got" ]; then echo "$q: Flink: same canon_md5 $got"; else
      echo "$q: Flink: DIFFERENT canon_md5 (Flink $want, snapflow $got)"; status=1; fi
  else
    echo "$q: Flink: no expected result in $EXPECTED_DIR (RUN_FLINK=1 makes it)"
  fi
done
exit $status
