#!/usr/bin/env python3
"""Exit-and-return clips: does `vigia follow` stay on one person through an absence?

From any video with people walking, builds clips in which a chosen person is visible for a
while, is absent while others walk, then comes back, and measures what the follower did:

1. Ground truth: `vigia track VIDEO --reid off --save-mot` on the continuous video (or the
   tracks given with `--tracks`). Motion tracks end when a person leaves, so one person who
   walks out and back in has several tracks, and a track may switch people in a crowd:
   `--people FILE` says which tracks (or frame ranges of a track) are one person, as checked
   by eye. Without it every track counts as a different person, and a "stranger" followed
   during the absence may be the target walking back in.
2. For each person, a clip. With `--people`, where the video has one: a real exit and return,
   uncut: at least BEFORE seconds until they walk out (from a moment when a point is on them
   alone), MARGIN seconds of leaving (not scored: they may still show at the border), ABSENCE
   seconds of the time they are away (a longer absence is cut short), MARGIN seconds before
   they come back (not scored) and the first AFTER seconds after they are back. Otherwise (and
   for every track without `--people`), spliced: the first BEFORE seconds of their first long
   track, ABSENCE seconds of the video where they are not visible (at least MARGIN seconds
   away from any of their frames; with `--people`, nobody standing where they were at either
   cut: no tracked box overlaps theirs, and no person detection, even one the tracker had not
   yet confirmed, overlaps it enough to continue their track), then the last AFTER seconds of their last long track.
3. `vigia follow CLIP --target point:X,Y` (their centre in the first frame), with whatever
   extra follow options are given after `--`.
4. Per clip: frames on the target before the absence, frames locked on anyone during it
   (goal 0), frames on the target after the first SETTLE seconds of the return (goal >= 80 %)
   and frames on anyone else after the return (goal 0). A locked box is "on" a person when its
   IoU with their ground-truth box is at least 0.5. OUT/personX.frames.tsv says who the
   follower was locked on at each frame, OUT/personX.events.jsonl holds its events.

Needs only Python 3 and ffmpeg. Example (vtest.avi's tracks and people are in tools/reid/):
    tools/reid/exit_return.py --video ../shared/data/video/vtest.avi --vigia target/release/vigia \
        --tracks tools/reid/vtest.tracks.txt --people tools/reid/vtest.people.txt \
        --out /tmp/exit-return -- --reid off
"""

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict


# The parts of a clip; only before, absence and after are scored.
PARTS = ("before", "leaving", "absence", "returning", "after")


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
    """[(target id, [(first, last, part)])] for the longest tracks: original 1-based frame
    ranges, each part of the clip named (see `PARTS`)."""
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
        plans.append((tid, [(first, first + before - 1, "before"), (*gap, "absence"),
                            (last - after + 1, last, "after")]))
        if len(plans) == args.clips:
            break
    return plans


def read_people(path):
    """name -> [(track id, first frame or None, last frame or None)] from lines such as
    `red-jacket: 26 35 39` or `black-coat: 24:412-500` (a track's frames 412-500 only)."""
    people = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, sep, rest = line.partition(":")
            if not sep or not rest.split():
                sys.exit(f"{path}:{n}: expected `name: track track:first-last ...`")
            parts = []
            for item in rest.split():
                tid, _, frames = item.partition(":")
                try:
                    a, b = (int(x) for x in frames.split("-")) if frames else (None, None)
                    parts.append((int(tid), a, b))
                except ValueError:
                    sys.exit(f"{path}:{n}: `{item}` is not a track id or track:first-last")
            people[name.strip()] = parts
    return people


def relabel(gt, people):
    """Ground truth by person: each box of a listed track (in its frames) gets the person's
    name; every other track stays a person of its own, named by its id."""
    owner = {}
    for name, parts in people.items():
        for tid, a, b in parts:
            owner.setdefault(tid, []).append((name, a, b))
    out = defaultdict(dict)
    for f, ids in gt.items():
        for tid, box in ids.items():
            label = str(tid)
            for name, a, b in owner.get(tid, []):
                if a is None or a <= f <= b:
                    label = name
            if label in out[f]:
                sys.exit(f"frame {f}: two tracks of `{label}` at once; check the people file")
            out[f][label] = box
    return out


def runs(frames, gap):
    """Sorted frames -> [(first, last)] runs with holes of at most `gap` frames (short
    occlusions stay inside a run)."""
    out = []
    for f in frames:
        if out and f - out[-1][1] <= gap:
            out[-1][1] = f
        else:
            out.append([f, f])
    return [tuple(r) for r in out]


def steadiest(boxes, others, run, length, probe=10):
    """Start of the `length`-frame window of `run` whose first `probe` frames share the widest
    common box, its centre inside nobody else's box: a point there stays on the person, and
    on them only, while the follower acquires them. `others`: frame -> other people's boxes."""
    def width(s):
        if any(f not in boxes for f in range(s, s + probe)):
            return 0.0
        bs = [boxes[f] for f in range(s, s + probe)]
        x1, y1 = max(b[0] for b in bs), max(b[1] for b in bs)
        x2, y2 = min(b[2] for b in bs), min(b[3] for b in bs)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        if any(o[0] <= cx <= o[2] and o[1] <= cy <= o[3]
               for f in range(s, s + probe) for o in others.get(f, ())):
            return 0.0
        return min(x2 - x1, y2 - y1)
    return max(range(run[0], run[1] - length + 2), key=lambda s: (width(s), -s))


def plan_person(boxes, others, detected, n_frames, before, absence, after, margin, hole):
    """The clip segments for one person (frame -> box), or None when they do not fit.
    `others`: frame -> other people's tracked boxes; `detected`: frame -> person detections."""
    frames = sorted(boxes)
    rs = runs(frames, hole)
    # A real exit and return: a long run, a gap that holds the absence, a later long run.
    for i, (a0, a1) in enumerate(rs[:-1]):
        gap_end = rs[i + 1][0] - 1
        if a1 - a0 + 1 < before or gap_end - a1 < absence + 2 * margin:
            continue
        back = next((r for r in rs[i + 1:] if r[1] - r[0] + 1 >= after), None)
        if back:
            # From a moment the target can be pointed at, as they really walk out and later
            # in again; only a long absence is cut short (among strangers, target away).
            b = steadiest(boxes, others, (a0, a1), before)
            s, r = a1 + 1 + margin, back[0] - margin
            return [(b, a1, "before"), (a1 + 1, s - 1, "leaving"),
                    (s, s + absence - 1, "absence"), (r, back[0] - 1, "returning"),
                    (back[0], back[0] + after - 1, "after")]
    # Otherwise a spliced absence from a time they are not in view: their first long run
    # before it and their last one after it, else later and earlier runs, until both cuts
    # are clear.
    seen = set(frames)
    firsts = [r for r in rs if r[1] - r[0] + 1 >= before]
    lasts = [r for r in reversed(rs) if r[1] - r[0] + 1 >= after]
    for first in firsts:
        for last in lasts:
            if last[1] - after + 1 <= first[0] + before - 1:
                continue
            b = steadiest(boxes, others, (first[0], min(first[1], last[1] - after)), before)
            r = last[1] - after + 1
            for s in list(range(last[1] + 1, n_frames + 1)) + list(range(1, first[0])):
                e = s + absence - 1
                if e > n_frames or any(f in seen for f in range(s - margin, e + margin + 1)):
                    continue
                # Nobody where the target was at either cut: a stranger standing there would
                # simply continue the target's motion track across the cut, which no real
                # video does.
                if clear_cut(others.get(s, ()), detected.get(s, ()), boxes[b + before - 1]) \
                        and clear_cut(others.get(e, ()), detected.get(e, ()), boxes[r]):
                    return [(b, b + before - 1, "before"), (s, e, "absence"),
                            (r, last[1], "after")]
    return None


def clear_cut(people, detections, box):
    """Whether none of `people`'s tracked boxes overlaps `box`, and no person detection
    overlaps it enough for the tracker to carry a track on (IoU 0.1, half its least)."""
    return all(iou(p, box) == 0.0 for p in people) and all(
        iou(d, box) < 0.1 for d in detections)


def read_detections(path):
    """frame (1-based) -> [person boxes] from `vigia detect --save-json` lines."""
    out = defaultdict(list)
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            out[d["frame"] + 1] = [o["box"] for o in d["detections"] if o["class_id"] == 0]
    return out


def plan_people_clips(pgt, detected, names, n_frames, fps, args):
    """[(person, segments)] for the listed people, in the order of the people file."""
    boxes_of = defaultdict(dict)
    for f, ids in pgt.items():
        for label, box in ids.items():
            boxes_of[label][f] = box
    before, absence, after = (round(x * fps) for x in (args.before, args.absence, args.after))
    margin = round(args.margin * fps)
    plans = []
    for name in names:
        others = {f: [b for label, b in ids.items() if label != name] for f, ids in pgt.items()}
        segs = plan_person(boxes_of[name], others, detected, n_frames, before, absence, after,
                           margin,
                           round(fps))
        if segs is None:
            print(f"{name}: not visible long enough for the clip lengths asked; skipped",
                  file=sys.stderr)
            continue
        plans.append((name, segs))
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
    spans = []
    for a, b, _ in segments:
        if spans and spans[-1][1] + 1 == a:
            spans[-1][1] = b
        else:
            spans.append([a, b])
    parts = []
    labels = []
    for i, (a, b) in enumerate(spans):
        # ffmpeg counts frames from 0; MOT frames from 1.
        parts.append(f"[0:v]trim=start_frame={a - 1}:end_frame={b},setpts=PTS-STARTPTS[s{i}]")
        labels.append(f"[s{i}]")
    graph = ";".join(parts) + ";" + "".join(labels) + f"concat=n={len(spans)}:v=1[out]"
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
    originals = [f for a, b, _ in segments for f in range(a, b + 1)]
    phase = [part for a, b, part in segments for _ in range(a, b + 1)]
    settle_frames = round(settle * fps)
    r = {"id": tid, "before_on": 0, "before": 0, "absent_locked": 0, "absent": 0,
         "after_on": 0, "after": 0, "after_wrong": 0, "after_all_wrong": 0, "frames": []}
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
        who = max(people, key=lambda o: iou(box, people[o]), default=None) if locked else None
        if who is not None and iou(box, people[who]) < 0.5:
            who = "?"
        r["frames"].append((i, orig, p,
                            "-" if not locked else f"{who} (id {cmd.get('target_id')})"))
        if p == "before":
            r["before"] += 1
            r["before_on"] += on
        elif p == "absence":
            r["absent"] += 1
            r["absent_locked"] += locked
        elif p == "after":
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
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--tracks", help="MOT tracks of the continuous video to use as ground "
                    "truth (default: made with vigia track --reid off)")
    ap.add_argument("--people", help="which tracks are one person (see read_people)")
    ap.add_argument("--before", type=float, default=5.0, help="seconds visible first")
    ap.add_argument("--absence", type=float, default=9.0, help="seconds absent")
    ap.add_argument("--after", type=float, default=10.0, help="seconds visible after")
    ap.add_argument("--margin", type=float, default=1.0,
                    help="seconds kept between the absence window and the person's track")
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds after the return before frames count")
    ap.add_argument("--out", default="exit-return")
    ap.add_argument("--json", action="store_true", help="print one JSON object per clip")
    ap.add_argument("extra", nargs="*", help="options for vigia follow (after --)")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    w, h, fps, n = probe(args.video)
    gt_path = args.tracks or os.path.join(args.out, "continuous.mot.txt")
    if not os.path.exists(gt_path):
        subprocess.run([args.vigia, "track", args.video, "--reid", "off", "--save-mot", gt_path,
                        "--quiet"] + (["--model", args.model] if args.model else []),
                       check=True, stdout=subprocess.DEVNULL)
    gt = read_mot(gt_path)
    if args.people:
        people = read_people(args.people)
        gt = relabel(gt, people)
        # Every person detection, even at low confidence: ByteTrack's second association
        # continues a track on those, so one where the target was would carry its track on.
        det_path = os.path.join(args.out, "detections.jsonl")
        if not os.path.exists(det_path):
            subprocess.run([args.vigia, "detect", args.video, "--conf", "0.1", "--save-json",
                            det_path, "--quiet"] + (["--model", args.model] if args.model else []),
                           check=True, stdout=subprocess.DEVNULL)
        plans = plan_people_clips(gt, read_detections(det_path), list(people), n, fps, args)
    else:
        plans = plan_clips(gt, n, fps, args)
    if not plans:
        sys.exit("no person is visible long enough for the clip lengths asked")
    results = []
    for plan in plans:
        tid, segments = plan
        # Named by its frames: a clip cut for another plan is never reused.
        cuts = "_".join(f"{a}-{b}" for a, b, _ in segments)
        clip = os.path.join(args.out, f"person{tid}_{cuts}.mp4")
        if not os.path.exists(clip):
            cut(args.video, segments, clip)
        target = pick_point(gt, tid, segments[0][0], w, h, 10 if args.people else 6)
        commands, events, log = follow(args.vigia, args.model, clip, target, args.extra)
        with open(os.path.join(args.out, f"person{tid}.events.jsonl"), "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in events)
        r = score(plan, gt, commands, (w, h), fps, args.settle)
        r["segments"] = segments
        # Who the follower was locked on, frame by frame ("-": not locked, "?": nobody known).
        with open(os.path.join(args.out, f"person{tid}.frames.tsv"), "w") as f:
            f.write("clip_frame\tvideo_frame\tpart\tlocked_on\n")
            f.writelines("\t".join(map(str, row)) + "\n" for row in r.pop("frames"))
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
