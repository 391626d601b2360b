#!/usr/bin/env bash
# vigia (tract) against ONNX Runtime on the same ONNX files, the same input tensors and the same
# thread counts, interleaved in one invocation; prints a Markdown table and checks the outputs agree.
#
#   tools/compare-ort/run.sh            every model, 1 and 2 threads, 8 rounds
#   tools/compare-ort/run.sh --quick    four small models, 1 thread, 3 rounds (about a minute)
#   tools/compare-ort/run.sh --help     all options (models, threads, rounds, JSON output)
#   tools/compare-ort/run.sh --job [--threads N] [--frames N]
#                                       the whole detection job against a Python + ORT loop
#                                       (job.py; needs ffmpeg)
#
# Needs python3 (with venv), a Rust toolchain and network access to PyPI on first use: the script
# makes its own virtual environment with onnxruntime and numpy, and builds vigia in release mode
# (VIGIA_COMPARE_VENV and VIGIA_BIN choose another environment or binary).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="${VIGIA_COMPARE_VENV:-$target/compare-ort-venv}"

script="$here/compare.py"
if [ "${1:-}" = "--job" ]; then
  script="$here/job.py"
  shift
fi
for arg in "$@"; do
  if [ "$arg" = "-h" ] || [ "$arg" = "--help" ]; then
    py=python3
    [ -x "$venv/bin/python" ] && py="$venv/bin/python"
    exec "$py" "$script" --help
  fi
done

command -v python3 >/dev/null || { echo "compare-ort: python3 is required" >&2; exit 1; }
command -v cargo >/dev/null || { echo "compare-ort: cargo (Rust) is required" >&2; exit 1; }

if ! "$venv/bin/python" -c "import onnxruntime, numpy, onnx" >/dev/null 2>&1; then
  echo "compare-ort: creating $venv with onnxruntime, numpy and onnx" >&2
  python3 -m venv "$venv" || {
    echo "compare-ort: python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
  }
  "$venv/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
  "$venv/bin/pip" install -q onnxruntime numpy onnx
fi

# VIGIA_BIN=path/to/vigia uses an existing build instead of building one.
bin="${VIGIA_BIN:-}"
if [ -z "$bin" ]; then
  echo "compare-ort: building vigia (release)" >&2
  (cd "$root" && cargo build --release -q -p vigia-cli --bin vigia)
  bin="$target/release/vigia"
fi

if [ "$script" = "$here/job.py" ]; then
  command -v ffmpeg >/dev/null || { echo "compare-ort: --job needs ffmpeg (apt-get install ffmpeg)" >&2; exit 1; }
  exec "$venv/bin/python" "$script" --vigia "$bin" "$@"
fi
exec "$venv/bin/python" "$script" --vigia "$bin" --root "$root" "$@"
