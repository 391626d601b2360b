#!/usr/bin/env bash
# Transfer-learning demonstration on mnist_5k: pretrain the CNN on digits 0-4, then fine-tune on
# digits 5-9 with K labelled images per class, against training from scratch on the same images
# (same epochs, same seed, same held-out 5-9 digits). Run from the repository root:
#   tools/train/transfer-demo.sh            (TRAIN_BIN selects the binary, K the list of sizes)
set -euo pipefail
TRAIN_BIN=${TRAIN_BIN:-${CARGO_TARGET_DIR:-target}/release/vigia-train}
DATA=${DATA:-../shared/data/mnist/mnist_5k.csv.gz}
OUT=${OUT:-runs/transfer}
EPOCHS=${EPOCHS:-20}
K_LIST=${K:-"20 50"}
mkdir -p "$OUT"

"$TRAIN_BIN" classify --data "$DATA" --only-classes 0,1,2,3,4 --epochs 8 --shift 2 \
  --no-agreement --quiet --out "$OUT/pre04" 2>&1 | grep -E "held-out|wrote .*onnx"

for K in $K_LIST; do
  common=(--data "$DATA" --only-classes 5,6,7,8,9 --per-class-limit "$K" --epochs "$EPOCHS"
          --batch-size 16 --no-agreement --quiet)
  for mode in scratch freeze0 freeze1 freeze2; do
    case $mode in
      scratch) extra=() ;;
      freeze*) extra=(--init "$OUT/pre04/model.onnx" --freeze "${mode#freeze}") ;;
    esac
    acc=$("$TRAIN_BIN" classify "${common[@]}" "${extra[@]}" --out "$OUT/k$K-$mode" 2>&1 \
      | grep -o "held-out accuracy [0-9.]*% ([0-9]* of [0-9]*)")
    echo "K=$K $mode: $acc"
  done
done
