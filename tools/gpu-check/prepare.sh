#!/usr/bin/env bash
# Prepares .gpu/ (ignored by git) for run.sh on a machine with an NVIDIA GPU: the release binary
# and the cuda_engine test binary (built here, packed small: their embedded NanoDet bytes are
# restored from models/ there), the two ../shared fixtures the tests use, and 24 video frames.
# Then, on the GPU machine, from the checkout's root: OUT=some/dir bash .gpu/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/vigia-cuda}"
features="${1:-cuda-13}"
log=$(mktemp)
cargo test --release -p vigia-cli --features "$features" --test cuda_engine --no-run 2>&1 | tee "$log"
test=$(grep -o 'deps/cuda_engine-[0-9a-f]*' "$log" | tail -1 | cut -d/ -f2)
pack=$(mktemp -d)
mkdir -p .gpu/frames
cp tools/gpu-check/{run.sh,pack.py,parity.py,lat.py} .gpu/
cp ../shared/models/yolo/yolov8n-640-hot.onnx ../shared/models/onnx-light/light_resnet50.onnx .gpu/
ffmpeg -v error -y -i ../shared/data/video/vtest.avi -frames:v 24 -q:v 5 .gpu/frames/f%04d.jpg
strip -o "$pack/vigia" "$CARGO_TARGET_DIR/release/vigia"
strip -o "$pack/$test" "$CARGO_TARGET_DIR/release/deps/$test"
echo "$test" > .gpu/testname
pwd -P > .gpu/checkout
echo "$CARGO_TARGET_DIR" > .gpu/target
python3 .gpu/pack.py pack models/nanodet-m-416.onnx .gpu/bins.xz "$pack/vigia" "$pack/$test"
du -sh .gpu
