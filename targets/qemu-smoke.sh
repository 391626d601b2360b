#!/usr/bin/env bash
# Runs a cross-built vigia under qemu-user on models/samples/person.jpg and checks its detections
# equal the x86-64 build's: same classes, boxes within 1 px, scores within 1e-3. Also classifies
# the same photo with EfficientNet-Lite0, whose depthwise convolutions run on vigia's own kernels
# (NEON on ARM, AVX on x86-64), and checks both builds give the same top-5; and runs `vigia doctor`
# and the model cache (cold write, then cached read) on the ARM binary.
#
#   targets/qemu-smoke.sh <triple|board> [--release]
#
# Builds the host binary (cargo build -p vigia-cli) and the cross binary (targets/build.sh), or takes
# them from VIGIA_HOST_BIN / VIGIA_CROSS_BIN. Needs qemu-user and the cross toolchains.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 1 ] || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
what="$1"; shift
release=()
[ "${1:-}" = --release ] && release=(--release)
dir=debug
[ ${#release[@]} -gt 0 ] && dir=release

# The emulated CPU: a Cortex-A72 (Raspberry Pi 4) / Cortex-A15 rather than qemu's default `max`,
# whose extra features (SVE, ...) qemu emulates some 15x slower on tract's kernels.
case "$what" in
  armv7*|rpi4-32|rpi3-32) export QEMU_CPU="${QEMU_CPU:-cortex-a15}" ;;
  *) export QEMU_CPU="${QEMU_CPU:-cortex-a72}" ;;
esac
case "$what" in
  aarch64-unknown-linux-gnu*|rpi4|rpi5|aarch64|jetson-nano|jetson-orin)
    runner=(qemu-aarch64 -L /usr/aarch64-linux-gnu) ;;
  armv7-unknown-linux-gnueabihf|armv7|rpi4-32|rpi3-32)
    runner=(qemu-arm -L /usr/arm-linux-gnueabihf) ;;
  aarch64-unknown-linux-musl|musl|static)
    runner=(qemu-aarch64) ;;
  *) echo "qemu-smoke.sh: unknown target '$what'" >&2; exit 2 ;;
esac
command -v "${runner[0]}" >/dev/null || { echo "qemu-smoke.sh: ${runner[0]} missing (apt install qemu-user)" >&2; exit 1; }

host_target="${CARGO_TARGET_DIR:-$PWD/target}"
# VIGIA_HOST_BIN / VIGIA_CROSS_BIN: use these binaries instead of building them.
host_bin="${VIGIA_HOST_BIN:-}"
if [ -z "$host_bin" ]; then
  cargo build -q -p vigia-cli "${release[@]}"
  host_bin="$host_target/$dir/vigia"
fi
cross_bin="${VIGIA_CROSS_BIN:-}"
[ -n "$cross_bin" ] || cross_bin=$(targets/build.sh "$what" "${release[@]}" | sed -n '1p')
[ -x "$cross_bin" ] || { echo "qemu-smoke.sh: cross build failed; run targets/build.sh $what" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(detect models/samples/person.jpg --imgsz 416 --threads 1 --no-half -q)

t0=$(date +%s.%N)
"$host_bin" "${args[@]}" --no-cache > "$work/x86.json"
t1=$(date +%s.%N)
"${runner[@]}" "$cross_bin" "${args[@]}" --no-cache > "$work/arm.json"
t2=$(date +%s.%N)
"${runner[@]}" "$cross_bin" "${args[@]}" --cache-dir "$work/cache" > "$work/arm-cold.json"
"${runner[@]}" "$cross_bin" "${args[@]}" --cache-dir "$work/cache" > "$work/arm-cached.json"
t3=$(date +%s.%N)
ls "$work/cache"/*.nnef.tar >/dev/null || { echo "qemu-smoke.sh: the ARM binary wrote no cache entry" >&2; exit 1; }
classify=(classify models/samples/person.jpg --model models/efficientnet-lite0-224.onnx --threads 1 --no-cache -q)
"$host_bin" "${classify[@]}" > "$work/x86-classify.json"
"${runner[@]}" "$cross_bin" "${classify[@]}" > "$work/arm-classify.json"
"${runner[@]}" "$cross_bin" doctor > "$work/doctor.txt"
grep -q "tract 0.23" "$work/doctor.txt" || { cat "$work/doctor.txt"; echo "qemu-smoke.sh: doctor report incomplete" >&2; exit 1; }
case "$what" in
  armv7*|rpi4-32|rpi3-32) ;;
  *) grep -qE "^  vigia kernels +neon" "$work/doctor.txt" || { cat "$work/doctor.txt"; echo "qemu-smoke.sh: the ARM binary does not use the NEON kernels" >&2; exit 1; } ;;
esac

python3 - "$work" <<'EOF'
import json, sys, os
work = sys.argv[1]
def dets(name):
    with open(os.path.join(work, name)) as f:
        lines = [json.loads(l) for l in f if l.strip()]
    assert len(lines) == 1, f"{name}: expected one JSON line, got {len(lines)}"
    return sorted(lines[0]["detections"], key=lambda d: (-d["score"], d["class_id"]))
ref = dets("x86.json")
assert ref, "the x86 binary found nothing in person.jpg"
for name in ("arm.json", "arm-cold.json", "arm-cached.json"):
    got = dets(name)
    assert len(got) == len(ref), f"{name}: {len(got)} detections, x86 has {len(ref)}"
    for r, g in zip(ref, got):
        assert r["class_id"] == g["class_id"], f"{name}: class {g['class_id']} != {r['class_id']}"
        assert abs(r["score"] - g["score"]) <= 1e-3, f"{name}: score {g['score']} vs {r['score']}"
        worst = max(abs(a - b) for a, b in zip(r["box"], g["box"]))
        assert worst <= 1.0, f"{name}: box {g['box']} vs {r['box']} ({worst:.2f} px)"
print(f"qemu-smoke: {len(ref)} detections identical to x86 (boxes within 1 px, scores within 1e-3), "
      "uncached, cold-cache and cached runs")
def top(name):
    with open(os.path.join(work, name)) as f:
        lines = [json.loads(l) for l in f if l.strip()]
    assert len(lines) == 1 and "top" in lines[0], f"{name}: {lines}"
    return lines[0]["top"]
ref, got = top("x86-classify.json"), top("arm-classify.json")
assert [c["class_id"] for c in got] == [c["class_id"] for c in ref], f"top-5 {got} vs {ref}"
worst = max(abs(a["score"] - b["score"]) for a, b in zip(ref, got))
assert worst <= 1e-3, f"classify scores differ by {worst}"
print(f"qemu-smoke: EfficientNet-Lite0 top-5 identical to x86 ({ref[0]['label']} {ref[0]['score']}), "
      f"scores within {worst:.1e}")
EOF
sed -n '1p' "$work/doctor.txt"
grep -E "^  (cpu|chosen|vigia kernels) " "$work/doctor.txt"
python3 -c 'import sys; t = [float(x) for x in sys.argv[3:]]
print(f"qemu-smoke: x86 {t[1]-t[0]:.1f} s, {sys.argv[1]} under qemu ({sys.argv[2]}) {t[2]-t[1]:.1f} s (uncached), "
      f"{t[3]-t[2]:.1f} s (cache write + cached read)")' "$what" "$QEMU_CPU" "$t0" "$t1" "$t2" "$t3"
