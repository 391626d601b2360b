#!/usr/bin/env bash
# Trains the same MNIST CNN on the GPU and on the CPU (flex) with identical settings and prints
# the wall time, the per-epoch times and the held-out accuracy of each.
#
#   tools/train/device-speed.sh [VIGIA_TRAIN] [DATA] [EPOCHS=6] [BATCH=64,256]
#
# VIGIA_TRAIN: a vigia-train built with the GPU feature (default
# ${CARGO_TARGET_DIR:-target}/release/vigia-train); DATA: mnist_5k.csv.gz or an MNIST idx folder.
# DEVICES: the --device values to compare, in order (default "cuda flex"; "wgpu flex" for Vulkan);
# RUN_TIMEOUT: seconds allowed to each training run (default 0: no limit).
# Each run writes its run folder (metrics.csv, plots, ONNX with its tract parity check) under
# ${SPEED_DIR:-/tmp/vigia-train-speed}; the summary goes to stdout and SPEED_DIR/summary.txt.
set -uo pipefail
VT=${1:-${CARGO_TARGET_DIR:-target}/release/vigia-train}
DATA=${2:-../shared/data/mnist/mnist_5k.csv.gz}
EPOCHS=${3:-6}
BATCHES=${4:-64,256}
DEVICES=${DEVICES:-cuda flex}
RUN_TIMEOUT=${RUN_TIMEOUT:-0}
DIR=${SPEED_DIR:-/tmp/vigia-train-speed}
mkdir -p "$DIR"

[ -x "$VT" ] || { echo "device-speed: $VT not found (cargo build --release -p vigia-train --features cuda|wgpu)" >&2; exit 2; }
[ -e "$DATA" ] || { echo "device-speed: $DATA not found" >&2; exit 2; }

summary="$DIR/summary.txt"
: >"$summary"
for batch in ${BATCHES//,/ }; do
  for device in $DEVICES; do
    out="$DIR/$device-b$batch"
    start=$(date +%s.%N)
    timeout "$RUN_TIMEOUT" "$VT" classify --data "$DATA" --epochs "$EPOCHS" --batch-size "$batch" --shift 2 \
      --device "$device" --out "$out" --no-agreement --quiet >"$out.log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    wall=$(awk "BEGIN { printf \"%.1f\", $end - $start }")
    result=$(grep -o 'held-out accuracy .*' "$out.log" | tail -1)
    echo "device=$device batch=$batch epochs=$EPOCHS rc=$rc wall_s=$wall ${result:-(no result)}" | tee -a "$summary"
    grep '^epoch' "$out.log" | sed 's/^/    /' | tee -a "$summary"
    [ $rc -eq 0 ] || tail -20 "$out.log"
  done
done
