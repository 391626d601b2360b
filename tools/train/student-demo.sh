#!/usr/bin/env bash
# The student demonstration, from the repository root:
#
#   tools/train/student-demo.sh
#
# 1. builds vigia and vigia-train (release);
# 2. labels vtest.avi with the bundled NanoDet-m teacher (`vigia-train autolabel`, every EVERY-th
#    frame; the last 20 % of the labelled frames are held out);
# 3. trains the YOLO-style student on the training frames (`vigia-train detect`), which reports its
#    mAP@0.5 against the teacher's labels on the held-out frames (burn, and the exported ONNX run by
#    vigia's detector);
# 4. times `vigia detect` over the whole video with the teacher and with the student (same binary,
#    same threads, alternated ROUNDS times), and `vigia bench` on each model.
#
# Everything lands in OUT (default runs/student-demo); summary.txt holds the numbers.
# Knobs (environment): VIDEO, OUT, EVERY, IMGSZ, WIDTH, EPOCHS, BATCH, THREADS, ROUNDS;
# BUILD=0 uses the release binaries already in the target folder; TRAIN_BIN / VIGIA_BIN point at
# other vigia-train / vigia binaries.
set -euo pipefail
cd "$(dirname "$0")/../.."

VIDEO=${VIDEO:-../shared/data/video/vtest.avi}
OUT=${OUT:-runs/student-demo}
EVERY=${EVERY:-3}
IMGSZ=${IMGSZ:-320x256}
WIDTH=${WIDTH:-16}
EPOCHS=${EPOCHS:-30}
BATCH=${BATCH:-8}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-2}
TEACHER=models/nanodet-m-416.toml

if [ "${BUILD:-1}" != 0 ]; then
  # One package at a time: a joint build unifies their features and rebuilds the dependencies.
  cargo build --release -p vigia-cli
  cargo build --release -p vigia-train
fi
BIN=${CARGO_TARGET_DIR:-target}/release
TRAIN_BIN=${TRAIN_BIN:-$BIN/vigia-train}
VIGIA_BIN=${VIGIA_BIN:-$BIN/vigia}
rm -rf "$OUT"
mkdir -p "$OUT"
exec > >(tee "$OUT/demo.log") 2>&1
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown); vigia-train: $TRAIN_BIN; vigia: $VIGIA_BIN"

now() { date +%s.%N; }

t0=$(now)
"$TRAIN_BIN" autolabel --source "$VIDEO" --out "$OUT/data" --teacher "$TEACHER" \
  --every "$EVERY" --quiet
t1=$(now)
"$TRAIN_BIN" detect --data "$OUT/data/data.yaml" --imgsz "$IMGSZ" --width "$WIDTH" \
  --epochs "$EPOCHS" --batch-size "$BATCH" --out "$OUT/run" --export "$OUT/student.onnx" --quiet
t2=$(now)

frames=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames \
  -of csv=p=0 "$VIDEO")
declare -A best
for round in $(seq "$ROUNDS"); do
  for who in teacher student; do
    model=$TEACHER
    [ "$who" = student ] && model=$OUT/student.toml
    s=$(now)
    "$VIGIA_BIN" detect --model "$model" --source "$VIDEO" --threads "$THREADS" -q \
      --save-json "$OUT/$who.jsonl"
    e=$(now)
    fps=$(echo "$frames / ($e - $s)" | bc -l)
    printf 'round %d %-7s vigia detect: %d frames in %.2f s = %.1f FPS\n' "$round" "$who" "$frames" \
      "$(echo "$e - $s" | bc -l)" "$fps"
    if [ -z "${best[$who]:-}" ] || [ "$(echo "$fps > ${best[$who]}" | bc -l)" = 1 ]; then
      best[$who]=$fps
    fi
  done
done
for who in teacher student; do
  model=$TEACHER
  [ "$who" = student ] && model=$OUT/student.toml
  echo "== vigia bench $who"
  "$VIGIA_BIN" bench --model "$model" --threads "$THREADS" --runs 50 | tee "$OUT/bench-$who.txt"
done

{
  echo "autolabel: $(jq -c .summary "$OUT/data/autolabel.json" 2>/dev/null || cat "$OUT/data/autolabel.json")"
  printf 'autolabel %.0f s, student training command %.0f s (imgsz %s, width %s, %s epochs, batch %s)\n' \
    "$(echo "$t1 - $t0" | bc -l)" "$(echo "$t2 - $t1" | bc -l)" "$IMGSZ" "$WIDTH" "$EPOCHS" "$BATCH"
  grep -E "^vigia-train: (validation mAP|vigia's detector on|wrote)" "$OUT/demo.log" || true
  printf 'vigia detect on %s, %s thread(s), best of %s rounds: teacher %.1f FPS, student %.1f FPS (%.2fx)\n' \
    "$VIDEO" "$THREADS" "$ROUNDS" "${best[teacher]}" "${best[student]}" \
    "$(echo "${best[student]} / ${best[teacher]}" | bc -l)"
} | tee "$OUT/summary.txt"
