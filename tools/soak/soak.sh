#!/usr/bin/env bash
# Soak test: runs `vigia track` on vtest.avi looped for DURATION seconds with every output
# (annotated MP4, JSON lines, MOT tracks, YOLO txt labels, live preview with a viewer polling it)
# and samples the process's resident memory, open file descriptors and threads every INTERVAL
# seconds into a CSV. At the end it stops vigia with Ctrl-C and prints the growth after warm-up.
#
#   tools/soak/soak.sh [DURATION_S=600] [INTERVAL_S=5] [WARMUP_S=120]
#
# Fleet mode (FLEET=1): two cameras of the looped video in one process (`--source a=... --source
# b=...`), publishing to a mosquitto started here (`--mqtt`), with the preview watched: an MJPEG
# viewer on camera a for the whole run, /api/cameras and each camera's frame.jpg every sample.
# A subscriber to `vigia/#` counts the messages the broker delivered; at the end they are compared
# with the messages vigia says it published. VIGIA_ARGS gives the fleet run options (default
# "--workers 2"; "--imgsz 320 --workers 1" leaves a core free).
#
# Environment: VIGIA (binary, default target/release/vigia or $CARGO_TARGET_DIR/release/vigia),
# VIDEO (default ../shared/data/video/vtest.avi), SOAK_DIR (work folder, default a new temp
# folder), SOAK_FPS (the highest frame rate expected, sizes the looped file; default 40).
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${1:-600}
INTERVAL=${2:-5}
WARMUP=${3:-120}
VIGIA=${VIGIA:-${CARGO_TARGET_DIR:-target}/release/vigia}
VIDEO=${VIDEO:-../shared/data/video/vtest.avi}
SOAK_DIR=${SOAK_DIR:-$(mktemp -d /tmp/vigia-soak.XXXXXX)}
SOAK_FPS=${SOAK_FPS:-40}

[ -x "$VIGIA" ] || { echo "soak: $VIGIA not found; build it with cargo build --release -p vigia-cli" >&2; exit 2; }
[ -f "$VIDEO" ] || { echo "soak: $VIDEO not found" >&2; exit 2; }
FLEET=${FLEET:-0}
tools="ffmpeg ffprobe curl"
[ "$FLEET" = 1 ] && tools="$tools mosquitto mosquitto_sub"
for tool in $tools; do
  command -v "$tool" >/dev/null || { echo "soak: $tool not found" >&2; exit 2; }
done
mkdir -p "$SOAK_DIR"

# The video looped often enough to outlast the run (stream copy: no re-encoding).
frames=$(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$VIDEO")
loops=$(( DURATION * SOAK_FPS / frames + 1 ))
looped="$SOAK_DIR/looped.avi"
ffmpeg -nostdin -v error -y -stream_loop "$loops" -i "$VIDEO" -c copy "$looped"
echo "soak: $VIDEO x $((loops + 1)) -> $looped; $DURATION s, samples every $INTERVAL s, warm-up $WARMUP s"

port=$(( 20000 + RANDOM % 20000 ))
helpers=()
if [ "$FLEET" = 1 ]; then
  mqtt_port=$(( port + 1 ))
  mosquitto -p "$mqtt_port" >"$SOAK_DIR/mosquitto.log" 2>&1 &
  helpers+=($!)
  sleep 1
  # Every message on vigia's topics, one line each (payloads have no newlines).
  mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -q 1 -v -t 'vigia/#' >"$SOAK_DIR/mqtt.txt" 2>&1 &
  helpers+=($!)
  sleep 1
  # shellcheck disable=SC2086 # VIGIA_ARGS is a list of options
  "$VIGIA" track --source "a=$looped" --source "b=$looped" ${VIGIA_ARGS:---workers 2} \
    --save "$SOAK_DIR/video" --save-json "$SOAK_DIR/out.jsonl" \
    --save-mot "$SOAK_DIR/tracks.txt" \
    --mqtt "mqtt://127.0.0.1:$mqtt_port" --device soak \
    --serve "127.0.0.1:$port" 2>"$SOAK_DIR/stderr.txt" &
  pid=$!
  sleep 5
  # A viewer that watches camera a's stream for the whole run.
  curl -s -N --retry 10 --retry-connrefused -o /dev/null "http://127.0.0.1:$port/cameras/a/stream.mjpg" &
  helpers+=($!)
  jsonl="$SOAK_DIR/out.*.jsonl"
else
  "$VIGIA" track "$looped" \
    --save-video "$SOAK_DIR/out.mp4" --save-json "$SOAK_DIR/out.jsonl" \
    --save-mot "$SOAK_DIR/tracks.txt" --save-txt "$SOAK_DIR/labels" \
    --serve "127.0.0.1:$port" -q 2>"$SOAK_DIR/stderr.txt" &
  pid=$!
  jsonl="$SOAK_DIR/out.jsonl"
fi
trap 'kill -INT $pid 2>/dev/null || true; kill ${helpers[*]:-} 2>/dev/null || true' EXIT

csv="$SOAK_DIR/soak.csv"
echo "t_s,rss_kb,fds,threads,frames" >"$csv"
start=$(date +%s)
while :; do
  now=$(( $(date +%s) - start ))
  [ -d /proc/$pid ] || { echo "soak: vigia ended early after $now s" >&2; tail -5 "$SOAK_DIR/stderr.txt" >&2; exit 1; }
  # A viewer: stats and one frame per sample (exercises the preview server and its encoder).
  curl -s -m 2 -o /dev/null "http://127.0.0.1:$port/stats.json" || true
  curl -s -m 2 -o /dev/null "http://127.0.0.1:$port/frame.jpg" || true
  if [ "$FLEET" = 1 ]; then
    curl -s -m 2 -o /dev/null "http://127.0.0.1:$port/api/cameras" || true
    curl -s -m 2 -o /dev/null "http://127.0.0.1:$port/cameras/b/frame.jpg" || true
  fi
  rss=$(awk '/^VmRSS:/ {print $2}' /proc/$pid/status)
  threads=$(awk '/^Threads:/ {print $2}' /proc/$pid/status)
  fds=$(ls /proc/$pid/fd | wc -l)
  # shellcheck disable=SC2086 # $jsonl is a glob in fleet mode
  lines=$(cat $jsonl 2>/dev/null | wc -l)
  echo "$now,$rss,$fds,$threads,$lines" >>"$csv"
  [ "$now" -ge "$DURATION" ] && break
  sleep "$INTERVAL"
done

trap - EXIT
kill -INT $pid
wait $pid && status=0 || status=$?
echo "soak: vigia exited with $status; $(tail -1 "$csv" | cut -d, -f5) frames"
if [ "$FLEET" = 1 ]; then
  sleep 2
  kill "${helpers[@]}" 2>/dev/null || true
  published=$(grep -o 'mqtt: [0-9]* message(s) published' "$SOAK_DIR/stderr.txt" | grep -o '[0-9]*' || echo "?")
  received=$(wc -l <"$SOAK_DIR/mqtt.txt")
  events=$(grep -c '^vigia/soak/[ab]/events ' "$SOAK_DIR/mqtt.txt" || true)
  echo "soak: mqtt: vigia published $published message(s); the subscriber received $received ($events track events)"
  grep 'mqtt:' "$SOAK_DIR/stderr.txt" || true
fi

awk -F, -v warm="$WARMUP" '
  NR == 1 { next }
  $1 >= warm && !base { base = $2; fd0 = $3; th0 = $4; f0 = $5; t0 = $1 }
  base { last = $2; if ($2 > max) max = $2; fdmax = ($3 > fdmax ? $3 : fdmax); fdmin = (fdmin == "" || $3 < fdmin ? $3 : fdmin)
         thmax = ($4 > thmax ? $4 : thmax); thmin = (thmin == "" || $4 < thmin ? $4 : thmin); t1 = $1; f1 = $5 }
  END {
    if (!base) { print "soak: no sample after the warm-up"; exit 1 }
    printf "soak: after warm-up (%d s .. %d s, %d frames, %.1f fps):\n", t0, t1, f1 - f0, (f1 - f0) / (t1 - t0 > 0 ? t1 - t0 : 1)
    printf "  RSS   %d kB -> %d kB at the end (max %d kB): growth %+.2f %% (max %+.2f %%)\n", base, last, max, 100 * (last - base) / base, 100 * (max - base) / base
    printf "  fds   %d at warm-up, %d..%d after\n", fd0, fdmin, fdmax
    printf "  threads %d at warm-up, %d..%d after\n", th0, thmin, thmax
  }' "$csv"
echo "soak: samples in $csv"
[ "$status" -eq 0 ]
