#!/usr/bin/env bash
# Frame workers against intra-op threads on a real video: `vigia detect VIDEO --max-frames N` with
# (workers, threads) = (1,1), (2,1), (1,2), interleaved for ROUNDS rounds, per model; prints the
# end-to-end FPS vigia reports for each run and the median per configuration.
#
#   benches/workers-vs-threads.sh [MODEL...]      (default: nanodet-m-416 and yolov8n-320)
#
# Environment: VIGIA (binary, default ${CARGO_TARGET_DIR:-target}/release/vigia), VIDEO (default
# ../shared/data/video/vtest.avi), FRAMES (default 120), ROUNDS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
VIGIA=${VIGIA:-${CARGO_TARGET_DIR:-target}/release/vigia}
VIDEO=${VIDEO:-../shared/data/video/vtest.avi}
FRAMES=${FRAMES:-120}
ROUNDS=${ROUNDS:-3}
[ -x "$VIGIA" ] || { echo "workers-vs-threads: $VIGIA not found (cargo build --release -p vigia-cli)" >&2; exit 2; }
[ -f "$VIDEO" ] || { echo "workers-vs-threads: $VIDEO not found" >&2; exit 2; }
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(nanodet-m-416 ../shared/models/yolo/yolov8n-320.onnx)

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for model in "${models[@]}"; do
  for r in $(seq "$ROUNDS"); do
    for cfg in "1 1" "2 1" "1 2"; do
      set -- $cfg
      # vigia's summary line on stderr: "... N frame(s) in S s (F fps) ..."
      line=$("$VIGIA" detect "$VIDEO" --model "$model" --max-frames "$FRAMES" \
        --workers "$1" --threads "$2" 2>&1 >/dev/null | grep -E "frame\(s\) in" | tail -1)
      fps=$(echo "$line" | grep -oE "[0-9.]+ fps" | head -1 | cut -d' ' -f1)
      echo "$model workers=$1 threads=$2 round=$r fps=${fps:-?}"
      echo "$model $1 $2 ${fps:-0}" >>"$results"
    done
  done
done
echo
echo "| model | workers x threads | median FPS |"
echo "| --- | --- | ---: |"
for model in "${models[@]}"; do
  for cfg in "1 1" "2 1" "1 2"; do
    set -- $cfg
    med=$(awk -v m="$model" -v w="$1" -v t="$2" '$1 == m && $2 == w && $3 == t { print $4 }' "$results" |
      sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "?" }')
    echo "| $(basename "$model" .onnx) | $1 x $2 | $med |"
  done
done
