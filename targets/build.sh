#!/usr/bin/env bash
# Builds the vigia binary for a board or a Rust target triple, from an x86-64 Linux desktop.
#
#   targets/build.sh <board|triple> [--release] [extra cargo arguments...]
#
# boards:  rpi4, rpi5, aarch64       -> aarch64-unknown-linux-gnu        (64-bit Raspberry Pi OS Bookworm, Ubuntu 22.04+; glibc >= 2.35)
#          rpi4-32, rpi3-32, armv7   -> armv7-unknown-linux-gnueabihf    (32-bit Raspberry Pi OS)
#          jetson-nano               -> aarch64-unknown-linux-gnu.2.27   (JetPack 4, Ubuntu 18.04; via cargo-zigbuild)
#          jetson-orin               -> aarch64-unknown-linux-gnu.2.31   (JetPack 5/6, Ubuntu 20.04+; via cargo-zigbuild)
#          static, musl              -> aarch64-unknown-linux-musl       (fully static, mimalloc; via cargo-zigbuild)
# triples: aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf, aarch64-unknown-linux-musl,
#          aarch64-unknown-linux-gnu.<glibc version> (e.g. .2.27)
#
# Needs: apt install gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf qemu-user
#        rustup target add aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf aarch64-unknown-linux-musl
#        for the zig targets: python3 -m venv V && V/bin/pip install cargo-zigbuild (brings zig),
#        then PATH=V/bin:$PATH or VIGIA_ZIG_VENV=V.
# Linker, runner and C compiler per target live in .cargo/config.toml.
# Env: VIGIA_CROSS_TARGET_DIR (default: $CARGO_TARGET_DIR or target/) holds the builds; zig
#      builds go to <that>-zig so the two toolchains do not rebuild each other's C objects.
# Prints the binary's path, `file` output and size.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
what="$1"; shift
profile=dev
extra=()
for a in "$@"; do
  case "$a" in
    --release) profile=release ;;
    -h|--help) usage ;;
    *) extra+=("$a") ;;
  esac
done

features=()
case "$what" in
  rpi4|rpi5|aarch64|aarch64-unknown-linux-gnu) triple=aarch64-unknown-linux-gnu ;;
  rpi4-32|rpi3-32|armv7|armv7-unknown-linux-gnueabihf) triple=armv7-unknown-linux-gnueabihf ;;
  jetson-nano) triple=aarch64-unknown-linux-gnu.2.27 ;;
  jetson-orin) triple=aarch64-unknown-linux-gnu.2.31 ;;
  static|musl|aarch64-unknown-linux-musl) triple=aarch64-unknown-linux-musl; features=(--features mimalloc) ;;
  aarch64-unknown-linux-gnu.2.*) triple="$what" ;;
  -h|--help) usage ;;
  *) echo "targets/build.sh: unknown board or target '$what'" >&2; usage ;;
esac
rust_triple="${triple%%.2.*}"     # the glibc suffix is for zig only

base="${VIGIA_CROSS_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}}"
cargo_cmd=(cargo build)
if [ "$triple" != "$rust_triple" ] || [ "$rust_triple" = aarch64-unknown-linux-musl ]; then
  # zig links against the requested glibc version (or musl) and compiles tract's C/asm kernels.
  if [ -n "${VIGIA_ZIG_VENV:-}" ]; then export PATH="$VIGIA_ZIG_VENV/bin:$PATH"; fi
  command -v cargo-zigbuild >/dev/null || {
    echo "targets/build.sh: $triple needs cargo-zigbuild: python3 -m venv V && V/bin/pip install cargo-zigbuild; then VIGIA_ZIG_VENV=V" >&2
    exit 1
  }
  cargo_cmd=(cargo zigbuild)
  base="$base-zig"
fi
rustup target list --installed 2>/dev/null | grep -qx "$rust_triple" || {
  echo "targets/build.sh: run 'rustup target add $rust_triple' first" >&2
  exit 1
}

export CARGO_TARGET_DIR="$base"
profile_args=()
[ "$profile" = release ] && profile_args=(--release)
# A dev cross build only feeds the qemu test: no debug info keeps it small and quick to link.
[ "$profile" = dev ] && export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-false}"
set -x
"${cargo_cmd[@]}" -p vigia-cli --target "$triple" "${profile_args[@]}" "${features[@]}" "${extra[@]}"
{ set +x; } 2>/dev/null

dir=debug
[ "$profile" = release ] && dir=release
bin="$base/$rust_triple/$dir/vigia"
[ -x "$bin" ] || { echo "targets/build.sh: no binary at $bin" >&2; exit 1; }
echo "$bin"
file "$bin"
echo "size: $(stat -c %s "$bin") bytes ($(( $(stat -c %s "$bin") / 1048576 )) MiB)"
# Old-glibc builds: the binary must not need a newer glibc than the one it was built for.
if [ "$triple" != "$rust_triple" ]; then
  want="${triple#"$rust_triple".}"
  objdump_bin=aarch64-linux-gnu-objdump
  command -v "$objdump_bin" >/dev/null || objdump_bin=objdump
  newest=$("$objdump_bin" -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V -u | tail -n 1)
  echo "newest glibc symbol: GLIBC_$newest (built for $want)"
  if [ "$(printf '%s\n%s\n' "$newest" "$want" | sort -V | tail -n 1)" != "$want" ]; then
    echo "targets/build.sh: $bin needs GLIBC_$newest, newer than $want" >&2
    exit 1
  fi
fi
