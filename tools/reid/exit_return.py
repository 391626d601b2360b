#!/usr/bin/env python3
"""Exit-and-return clips: does `vigia follow` stay on one person through an absence?

From any video with people walking, builds clips in which a chosen person is visible for a
while, is absent while others walk, then comes back, and measures what the follower did:

1. Ground truth: `vigia track VIDEO --reid off --save-mot` on the continuous video.
2. For each of the longest-visible people, a clip: the first BEFORE seconds of their track,
   ABSENCE seconds of the video where they are not visible (at least MARGIN seconds away from
   their track), then the last AFTER seconds of their track (so they reappear where and how
   they really walked later).
3. `vigia follow CLIP --target point:X,Y` (their centre in the first frame), with whatever
   extra follow options are given after `--`.
4. Per clip: frames on the target before the absence, frames locked on anyone during it
   (goal 0), frames on the target after the first SETTLE seconds of the return (goal >= 80 %)
   and frames on anyone else after the return (goal 0). A locked box is "on" a person when its
   IoU with their ground-truth box is at least 0.5.

Needs only Python 3 and ffmpeg. Example:
    tools/reid/exit_return.py --video ../shared/data/video/vtest.avi --vigia target/release/vigia \
        --clips 4 --out /tmp/exit-return -- --reid off
"""

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict


def read_mot(path):
    """frame (1-based) -> {id: (x1, y1, x2, y2)}"""
    boxes = defaultdict(dict)
    with open(path) as f:
        for line in f:
            p = line.strip().split(",")
            if len(p) < 6:
                continue
            frame, tid = int(float(p[0])), int(float(p[1]))
            x, y, w, h = map(float, p[2:6])
            boxes[frame][tid] = (x, y, x + w, y + h)
    return boxes


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def probe(video):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
         "-show_entries", "stream=width,height,r_frame_rate,nb_read_packets",
         "-of", "json", video],
        check=True, capture_output=True, text=True).stdout
    s = json.loads(out)["streams"][0]
    num, den = s["r_frame_rate"].split("/")
    return int(s["width"]), int(s["height"]), float(num) / float(den), int(s["nb_read_packets"])


def plan_clips(gt, n_frames, fps, args):
    """[(target id, [(first, last) original 1-based frame ranges] x 3)] for the longest tracks."""
    frames_of = defaultdict(list)
    for f, ids in gt.items():
        for tid in ids:
            frames_of[tid].append(f)
    before, absence, after = (round(x * fps) for x in (args.before, args.absence, args.after))
    margin = round(args.margin * fps)
    plans = []
    for tid, fr in sorted(frames_of.items(), key=lambda kv: -len(kv[1])):
        fr.sort()
        first, last = fr[0], fr[-1]
        if last - first + 1 < before + after or len(fr) < 0.9 * (last - first + 1):
            continue
        # An absence window away from the whole track; prefer after it, else before it.
        lo, hi = first - margin, last + margin
        if hi + absence <= n_frames:
            gap = (hi + 1, hi + absence)
        elif lo - absence >= 1:
            gap = (lo - absence, lo - 1)
        else:
            continue
        if any(tid in gt.get(f, {}) for f in range(gap[0], gap[1] + 1)):
            continue
        plans.append((tid, [(first, first + before - 1), gap, (last - after + 1, last)]))
        if len(plans) == args.clips:
            break
    return plans


def pick_point(gt, tid, first, w, h, frames=6):
    """A normalized point inside the person's box over their first frames (the follower's
    point policy needs the candidate to keep containing it while it acquires)."""
    boxes = [gt[f][tid] for f in range(first, first + frames) if tid in gt.get(f, {})]
    x1, y1 = max(b[0] for b in boxes), max(b[1] for b in boxes)
    x2, y2 = min(b[2] for b in boxes), min(b[3] for b in boxes)
    if x1 >= x2 or y1 >= y2:
        x1, y1, x2, y2 = boxes[len(boxes) // 2]
    return ((x1 + x2) / 2 / w, (y1 + y2) / 2 / h)


def cut(video, segments, out):
    parts = []
    labels = []
    for i, (a, b) in enumerate(segments):
        # ffmpeg counts frames from 0; MOT frames from 1.
        parts.append(f"[0:v]trim=start_frame={a - 1}:end_frame={b},setpts=PTS-STARTPTS[s{i}]")
        labels.append(f"[s{i}]")
    graph = ";".join(parts) + ";" + "".join(labels) + f"concat=n={len(segments)}:v=1[out]"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", video, "-filter_complex", graph, "-map", "[out]",
         "-c:v", "libx264", "-preset", "veryfast", "-qp", "10", "-pix_fmt", "yuv420p", out],
        check=True)


def follow(vigia, model, clip, target, extra):
    cmd = [vigia, "follow", clip, "--target", f"point:{target[0]:.4f},{target[1]:.4f}",
           "--quiet"] + (["--model", model] if model else []) + extra
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"vigia follow failed ({run.returncode}): {' '.join(cmd)}\n{run.stderr}")
    commands, events = [], []
    for line in run.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("type") == "event":
            events.append(msg)
        elif msg.get("type") == "command" and msg.get("reason") == "follow":
            # Watchdog and shutdown stops are not per-frame decisions.
            commands.append(msg)
    return commands, events, run.stderr


def score(plan, gt, commands, size, fps, settle):
    tid, segments = plan
    w, h = size
    originals = [f for a, b in segments for f in range(a, b + 1)]
    phase = [p for p, (a, b) in enumerate(segments) for _ in range(a, b + 1)]
    settle_frames = round(settle * fps)
    r = {"id": tid, "before_on": 0, "before": 0, "absent_locked": 0, "absent": 0,
         "after_on": 0, "after": 0, "after_wrong": 0, "after_all_wrong": 0}
    first_after = None
    for cmd in commands:
        i = round(cmd["time"] * fps)
        if i >= len(originals):
            continue
        orig, p = originals[i], phase[i]
        people = gt.get(orig, {})
        box = cmd.get("target_box")
        locked = cmd.get("state") == "locked" and box is not None
        if locked:
            box = (box[0] * w, box[1] * h, box[2] * w, box[3] * h)
        on = locked and tid in people and iou(box, people[tid]) >= 0.5
        wrong = locked and not on and any(
            iou(box, b) >= 0.5 for o, b in people.items() if o != tid)
        if p == 0:
            r["before"] += 1
            r["before_on"] += on
        elif p == 1:
            r["absent"] += 1
            r["absent_locked"] += locked
        else:
            first_after = i if first_after is None else first_after
            r["after_all_wrong"] += wrong
            if i - first_after >= settle_frames:
                r["after"] += 1
                r["after_on"] += on
                r["after_wrong"] += wrong
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", required=True)
    ap.add_argument("--vigia", default="target/release/vigia")
    ap.add_argument("--model", help="detector (default: vigia's bundled model)")
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--before", type=float, default=5.0, help="seconds visible first")
    ap.add_argument("--absence", type=float, default=9.0, help="seconds absent")
    ap.add_argument("--after", type=float, default=10.0, help="seconds visible after")
    ap.add_argument("--margin", type=float, default=2.0,
                    help="seconds kept between the absence window and the person's track")
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds after the return before frames count")
    ap.add_argument("--out", default="exit-return")
    ap.add_argument("--json", action="store_true", help="print one JSON object per clip")
    ap.add_argument("extra", nargs="*", help="options for vigia follow (after --)")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    w, h, fps, n = probe(args.video)
    gt_path = os.path.join(args.out, "continuous.mot.txt")
    if not os.path.exists(gt_path):
        subprocess.run([args.vigia, "track", args.video, "--reid", "off", "--save-mot", gt_path,
                        "--quiet"] + (["--model", args.model] if args.model else []),
                       check=True, stdout=subprocess.DEVNULL)
    gt = read_mot(gt_path)
    plans = plan_clips(gt, n, fps, args)
    if not plans:
        sys.exit("no person is visible long enough for the clip lengths asked")
    results = []
    for plan in plans:
        tid, segments = plan
        clip = os.path.join(args.out, f"person{tid}.mp4")
        if not os.path.exists(clip):
            cut(args.video, segments, clip)
        target = pick_point(gt, tid, segments[0][0], w, h)
        commands, events, log = follow(args.vigia, args.model, clip, target, args.extra)
        with open(os.path.join(args.out, f"person{tid}.events.jsonl"), "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in events)
        r = score(plan, gt, commands, (w, h), fps, args.settle)
        r["segments"] = segments
        results.append(r)
        if args.json:
            print(json.dumps(r))
        else:
            print(f"person {tid}: on target before {r['before_on']}/{r['before']}, "
                  f"locked during absence {r['absent_locked']}/{r['absent']}, "
                  f"on target after {args.settle:g} s {r['after_on']}/{r['after']}, "
                  f"on someone else after {r['after_wrong']}/{r['after']} "
                  f"({r['after_all_wrong']} counting the first {args.settle:g} s)")
    ok = all(r["absent_locked"] == 0 and r["after_wrong"] == 0 and r["after"] > 0
             and r["after_on"] >= 0.8 * r["after"] for r in results)
    print(f"{sum(1 for _ in results)} clips: {'all meet' if ok else 'NOT all meet'} the goals "
          "(0 locked frames during the absence, >= 80 % on target after, 0 on anyone else)",
          file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
