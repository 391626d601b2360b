#!/bin/bash
# GPU checks (prepared by tools/gpu-check/prepare.sh into .gpu/) on a machine with an NVIDIA GPU: the cuda_engine tests, output parity and latency
# (f32, f16, f32 with TF32 allowed; tract on the CPU beside them). Output in $OUT.
set -u
R=$(pwd -P); G=$R/.gpu
exec > >(tee "$OUT/log.txt") 2>&1
date; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
# The test binary has the build machine's checkout and target paths baked in.
B=$(cat "$G/checkout")
if [ "$R" != "$B" ]; then mkdir -p "$(dirname "$B")"; rm -rf "$B"; ln -s "$R" "$B"; fi
S=$(dirname "$R")/shared
mkdir -p "$S/models/yolo" "$S/models/onnx-light"
ln -sf "$G/yolov8n-640-hot.onnx" "$S/models/yolo/"; ln -sf "$G/light_resnet50.onnx" "$S/models/onnx-light/"
T=$(cat "$G/target")/release; mkdir -p "$T/deps"
python3 "$G/pack.py" unpack "$R/models/nanodet-m-416.onnx" "$G/bins.xz" "$T" || exit 3
mv "$T/$(cat "$G/testname")" "$T/deps/"
export LD_LIBRARY_PATH=$(python3 - <<'P'
import glob, os
dirs = []
for root in ['/usr/local/cuda', '/opt/torch/.venv']:
    for p in ['libcudart.so.13', 'libcublas.so.13', 'libcublasLt.so.13', 'libnvrtc.so.13', 'libcudnn.so.9']:
        for f in sorted(glob.glob(root + '/**/' + p, recursive=True)):
            d = os.path.dirname(os.path.realpath(f))
            if d not in dirs:
                dirs.append(d)
print(':'.join(dirs))
P
)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
V=$T/vigia; TB=$T/deps/$(cat "$G/testname")
MODELS="models/nanodet-m-416.toml models/efficientnet-lite0-224.toml .gpu/yolov8n-640-hot.onnx .gpu/light_resnet50.onnx"
cd "$R"
echo "== tests (vigia sets NVIDIA_TF32_OVERRIDE=0)"
(cd runtime/cli && timeout 150 "$TB" --test-threads 1 --nocapture) > "$OUT/tests.txt" 2>&1; echo "tests rc=$?"
grep -E "^test |f32 |f16 |panicked|differs|GPU:|operators" "$OUT/tests.txt" | head -30
echo "== parity on the bundled photo"
for m in $MODELS; do
  n=$(basename $m | cut -d. -f1); rm -rf /tmp/d-$n-*
  timeout 120 $V bench -m $m --engine tract --runs 1 --warmup 0 --dump-output /tmp/d-$n-cpu > /dev/null 2>&1
  timeout 120 $V bench -m $m --engine cuda --runs 1 --warmup 0 --dump-output /tmp/d-$n-gpu 2>&1 | grep -E "^gpu|rror"
  timeout 120 $V bench -m $m --engine cuda --half --runs 1 --warmup 0 --dump-output /tmp/d-$n-gpu16 2>&1 | grep -E "^gpu|rror"
  python3 .gpu/parity.py /tmp/d-$n-cpu /tmp/d-$n-gpu /tmp/d-$n-gpu16
done
echo "== latency"
for m in $MODELS; do
  for cfg in "cuda f32|--engine cuda --runs 200 --warmup 20|" "cuda f16|--engine cuda --half --runs 200 --warmup 20|" \
             "cuda f32 TF32 allowed|--engine cuda --runs 200 --warmup 20|1" \
             "tract 1 thread|--engine tract --threads 1 --runs 10 --warmup 2|" "tract 16 threads|--engine tract --threads 16 --runs 40 --warmup 5|"; do
    IFS='|' read -r label args tf <<< "$cfg"
    if [ -n "$tf" ]; then export NVIDIA_TF32_OVERRIDE=$tf; else unset NVIDIA_TF32_OVERRIDE; fi
    echo "$m $label: $(timeout 120 $V bench -m $m $args --json 2>/dev/null | python3 .gpu/lat.py)"
  done
done
unset NVIDIA_TF32_OVERRIDE
echo "== every command on --engine cuda"
timeout 60 $V detect .gpu/frames --engine cuda -q | wc -l
timeout 60 $V detect .gpu/frames --engine auto --max-frames 2 2>&1 >/dev/null | grep -iE "engine|gpu"
date
