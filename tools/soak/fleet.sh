#!/usr/bin/env bash
# Fleet measure: how many live cameras one vigia process keeps up with on this machine. For each
# camera count N in COUNTS it starts N live streams (ffmpeg plays vtest.avi in real time, looped,
# as MPEG-TS over UDP on loopback, one stream per camera), runs `vigia track` on all N in one process
# for DURATION seconds, and prints per-camera processed FPS in steady state against the stream's
# rate, the share of frames dropped to stay current, and the process's CPU use and resident memory.
#
#   tools/soak/fleet.sh [DURATION_S=40] [COUNTS="1 2 3 4"]
#
# Environment: VIGIA (binary, default $CARGO_TARGET_DIR/release/vigia or target/release/vigia),
# VIDEO (default ../shared/data/video/vtest.avi, 10 fps), FLEET_DIR (work folder), and any extra
# vigia options in VIGIA_ARGS (for example "--threads 2" or "--workers 2").
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${1:-40}
COUNTS=${2:-"1 2 3 4"}
VIGIA=${VIGIA:-${CARGO_TARGET_DIR:-target}/release/vigia}
VIDEO=${VIDEO:-../shared/data/video/vtest.avi}
FLEET_DIR=${FLEET_DIR:-$(mktemp -d /tmp/vigia-fleet.XXXXXX)}
VIGIA_ARGS=${VIGIA_ARGS:-}

[ -x "$VIGIA" ] || { echo "fleet: $VIGIA not found; build it with cargo build --release -p vigia-cli" >&2; exit 2; }
[ -f "$VIDEO" ] || { echo "fleet: $VIDEO not found" >&2; exit 2; }
command -v ffmpeg >/dev/null || { echo "fleet: ffmpeg not found (apt install ffmpeg)" >&2; exit 2; }
mkdir -p "$FLEET_DIR"
servers=()
cleanup() { for p in "${servers[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

rate=$(ffprobe -v error -select_streams v:0 -show_entries stream=r_frame_rate -of csv=p=0 "$VIDEO" | awk -F/ '{ printf "%.2f", ($2 ? $1 / $2 : $1) }')
echo "fleet: $(nproc) cores, $VIDEO at $rate fps per camera, $DURATION s per count, work in $FLEET_DIR"
printf '%-8s %-10s %12s %12s %10s %10s %10s\n' cameras camera "fps" "of stream" dropped "cpu %" "rss MB"

for n in $COUNTS; do
  servers=()
  sources=()
  for i in $(seq 1 "$n"); do
    port=$(( 21000 + RANDOM % 20000 ))
    # A camera: the file played in real time, looped, sent whether anyone listens or not.
    ffmpeg -nostdin -v error -re -stream_loop -1 -i "$VIDEO" -c:v mpeg4 -q:v 5 -f mpegts \
      "udp://127.0.0.1:$port?pkt_size=1316" &
    servers+=($!)
    sources+=(--source "cam$i=udp://127.0.0.1:$port")
  done
  sleep 1
  log="$FLEET_DIR/n$n.txt"
  # shellcheck disable=SC2086
  "$VIGIA" track "${sources[@]}" --source-wait 10 --save-json "$FLEET_DIR/n$n.jsonl" $VIGIA_ARGS \
    2>"$log" >/dev/null &
  pid=$!
  sleep "$DURATION"
  cpu_ticks=$(awk '{ print $14 + $15 }' /proc/$pid/stat 2>/dev/null || echo 0)
  rss=$(awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' /proc/$pid/status 2>/dev/null || echo 0)
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" || true
  cleanup
  wait 2>/dev/null || true
  cpu=$(awk -v t="$cpu_ticks" -v hz="$(getconf CLK_TCK)" -v d="$DURATION" 'BEGIN { printf "%.0f", 100 * t / hz / d }')
  # Steady state from each camera's JSON lines (the first seconds go to probing the stream and
  # waiting for a key frame): frames processed per second of capture time, and the share of the
  # stream's frames skipped to stay on the newest.
  for i in $(seq 1 "$n"); do
    jsonl="$FLEET_DIR/n$n.cam$i.jsonl"
    [ "$n" -eq 1 ] && jsonl="$FLEET_DIR/n$n.jsonl"
    awk -v n="$n" -v c="cam$i" -v r="$rate" -v cpu="$cpu" -v rss="$rss" '
      match($0, /"frame":[0-9]+/) { f = substr($0, RSTART + 8, RLENGTH - 8) + 0 }
      match($0, /"time":[0-9.]+/) { t = substr($0, RSTART + 7, RLENGTH - 7) + 0 }
      { if (NR == 1) { f0 = f; t0 = t } lines = NR; f1 = f; t1 = t }
      END {
        fps = (t1 > t0) ? (lines - 1) / (t1 - t0) : 0
        seen = f1 - f0 + 1
        printf "%-8s %-10s %12.1f %11.0f%% %9.0f%% %10s %10s\n", n, c, fps, 100 * fps / r, (seen ? 100 * (seen - lines) / seen : 0), cpu, rss
      }' "$jsonl"
  done
done
