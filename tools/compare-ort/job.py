#!/usr/bin/env python3
"""The whole detection job, vigia against a plain Python + ONNX Runtime + numpy loop.

Both sides do the same work from process start to exit on the same video: decode N frames
through ffmpeg, resize each to the model's input (stretch, bilinear), run NanoDet-m, decode its
outputs (GFL distributions, +0.5 cell centres, each cell's best class above the confidence
threshold), NMS per class, and write one JSON line per frame. vigia is `vigia detect SOURCE --max-frames N --threads T -q
--save-json FILE`; the Python side is this script run with `--python-side` (interpreter start,
imports and session creation included, as vigia's model load is). The two alternate round by
round; one untimed run of each first (vigia's model cache, the page cache, ORT's first load).

Prints the median wall time of each side, the ratio (above 1: vigia slower) and how well the
detections agree: the share of Python's boxes that vigia found (same class, IoU >= 0.5, per
frame), of all of them and of those scoring 0.05 or more above the threshold (the two sides resize
with different filters, so scores near the threshold fall on either side of it).

    tools/compare-ort/job.py [--frames 60] [--threads 2] [--rounds 3] [--vigia BIN] [--json F]

Run it with the Python that has onnxruntime and numpy (run.sh makes one:
target/compare-ort-venv); ffmpeg must be on PATH.
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import numpy as np
except ImportError:  # --help works without it; the Python side says what is missing
    np = None

SIDE = 416
STRIDES = (8, 16, 32)
BINS = 11


def video_size(video):
    """(width, height) of the first video stream, from ffprobe."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=width,height", "-of", "csv=p=0", str(video)],
        check=True, capture_output=True, text=True,
    ).stdout
    w, h = out.strip().split(",")[:2]
    return int(w), int(h)


def bilinear_plan(src, dst):
    """Indices and weights of a half-pixel-centred bilinear resize along one axis."""
    x = (np.arange(dst) + 0.5) * src / dst - 0.5
    x = np.clip(x, 0, src - 1)
    lo = np.floor(x).astype(np.int64)
    hi = np.minimum(lo + 1, src - 1)
    return lo, hi, (x - lo).astype(np.float32)


def nms(boxes, scores, iou):
    """Indices kept by greedy non-maximum suppression, best first."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        x1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        union = areas[i] + areas[rest] - inter
        order = rest[inter / np.maximum(union, 1e-9) <= iou]
    return keep


def python_side(args):
    """The plain loop: ffmpeg frames -> numpy -> ORT -> numpy decode -> JSON lines."""
    if np is None:
        sys.exit("job: the Python side needs numpy and onnxruntime (pip install numpy onnxruntime)")
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    session = ort.InferenceSession(str(args.model), so, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    labels = (Path(args.model).parent / "coco80.txt").read_text().split("\n")
    w, h = video_size(args.video)
    rows, cols = bilinear_plan(h, SIDE), bilinear_plan(w, SIDE)
    grids = []
    for s in STRIDES:
        g = SIDE // s + (SIDE % s > 0)
        r, c = np.divmod(np.arange(g * g), g)
        grids.append(((c + 0.5) * s, (r + 0.5) * s, s))
    decoder = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-i", str(args.video), "-frames:v", str(args.frames),
         "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        stdout=subprocess.PIPE,
    )
    frame_bytes = w * h * 3
    with open(args.out, "w") as out:
        for index in range(args.frames):
            raw = decoder.stdout.read(frame_bytes)
            if len(raw) < frame_bytes:
                break
            img = np.frombuffer(raw, np.uint8).reshape(h, w, 3).astype(np.float32)
            (r0, r1, fy), (c0, c1, fx) = rows, cols
            top = img[r0] * (1 - fy)[:, None, None] + img[r1] * fy[:, None, None]
            img = top[:, c0] * (1 - fx)[None, :, None] + top[:, c1] * fx[None, :, None]
            x = (img * (1 / 255)).transpose(2, 0, 1)[None].astype(np.float32)
            outputs = dict(zip(names, session.run(None, {input_name: x})))
            boxes, scores, classes = [], [], []
            for level, (cx, cy, s) in enumerate(grids):
                cls = outputs[f"Identity_{level}:0" if level else "Identity:0"][0]
                reg = outputs[f"Identity_{level + 3}:0"][0]
                best = cls.argmax(axis=1)
                score = cls[np.arange(len(best)), best]
                hit = score >= args.conf
                if not hit.any():
                    continue
                d = reg[hit].reshape(-1, 4, BINS)
                d = np.exp(d - d.max(axis=2, keepdims=True))
                dist = (d / d.sum(axis=2, keepdims=True)) @ np.arange(BINS, dtype=np.float32) * s
                px, py = cx[hit], cy[hit]
                boxes.append(np.stack(
                    [px - dist[:, 0], py - dist[:, 1], px + dist[:, 2], py + dist[:, 3]], axis=1
                ))
                scores.append(score[hit])
                classes.append(best[hit])
            dets = []
            if boxes:
                boxes, scores = np.concatenate(boxes), np.concatenate(scores)
                classes = np.concatenate(classes)
                # Per class: boxes of different classes moved apart never overlap.
                apart = boxes + (classes * 4 * SIDE)[:, None]
                scale = np.array([w / SIDE, h / SIDE] * 2, dtype=np.float32)
                for i in nms(apart, scores, args.iou)[: args.max_det]:
                    b = np.clip(boxes[i] * scale, 0, [w, h, w, h])
                    dets.append({"label": labels[classes[i]], "score": round(float(scores[i]), 4),
                                 "box": [round(float(v), 1) for v in b]})
            out.write(json.dumps({"frame": index, "detections": dets}) + "\n")
            out.flush()
    decoder.stdout.close()
    decoder.wait()


def timed(cmd):
    """Wall seconds of one run of `cmd`; exits with its stderr when it fails."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"job: {' '.join(map(str, cmd))} failed ({done.returncode}): {done.stderr.strip()}")
    return seconds


def frames_of(path):
    """Per frame, the (label, box, score) of a JSON lines file (vigia's or this script's)."""
    return [
        [(d["label"], d["box"], d["score"]) for d in json.loads(line)["detections"]]
        for line in Path(path).read_text().splitlines()
    ]


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def agreement(vigia_frames, python_frames, min_score):
    """(boxes Python found scoring `min_score` or more, of those matched by a vigia box of the
    same class with IoU >= 0.5, vigia's boxes)."""
    found = matched = 0
    for v, p in zip(vigia_frames, python_frames):
        free = list(v)
        for label, b, score in p:
            if score < min_score:
                continue
            found += 1
            same = [c for c in free if c[0] == label]
            best = max(same, key=lambda c: iou(b, c[1]), default=None)
            if best is not None and iou(b, best[1]) >= 0.5:
                matched += 1
                free.remove(best)
    return found, matched, sum(len(v) for v in vigia_frames)


def main():
    root = Path(__file__).resolve().parents[2]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vigia", default=str(root / "target/release/vigia"), help="vigia binary")
    p.add_argument("--model", type=Path, default=root / "models/nanodet-m-416.onnx")
    p.add_argument("--video", type=Path, default=root.parent / "shared/data/video/vtest.avi")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--conf", type=float, default=0.25)
    p.add_argument("--iou", type=float, default=0.45)
    p.add_argument("--max-det", type=int, default=300)
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--python-side", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.python_side:
        return python_side(args)
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            sys.exit(f"job: {tool} is not on PATH (apt-get install ffmpeg)")
    for what, path in (("--vigia", args.vigia), ("--model", args.model), ("--video", args.video)):
        if not Path(path).exists():
            sys.exit(f"job: {what} {path} does not exist")
    work = Path(tempfile.mkdtemp(prefix="vigia-job-"))
    vigia_out, python_out = work / "vigia.jsonl", work / "python.jsonl"
    common = ["--frames", str(args.frames), "--threads", str(args.threads), "--conf",
              str(args.conf), "--iou", str(args.iou), "--max-det", str(args.max_det)]
    python_cmd = [sys.executable, __file__, "--python-side", "--model", str(args.model),
                  "--video", str(args.video), "--out", str(python_out)] + common
    vigia_cmd = [args.vigia, "detect", str(args.video), "--model", str(args.model),
                 "--max-frames", str(args.frames), "--threads", str(args.threads), "-q",
                 "--conf", str(args.conf), "--iou", str(args.iou), "--max-det",
                 str(args.max_det), "--save-json", str(vigia_out)]
    timed(vigia_cmd)
    timed(python_cmd)
    times = {"vigia": [], "python": []}
    for r in range(args.rounds):
        sides = [("vigia", vigia_cmd), ("python", python_cmd)]
        for name, cmd in sides if r % 2 == 0 else sides[::-1]:
            times[name].append(timed(cmd))
    v, py = statistics.median(times["vigia"]), statistics.median(times["python"])
    vigia_frames, python_frames = frames_of(vigia_out), frames_of(python_out)
    found, matched, vigia_boxes = agreement(vigia_frames, python_frames, 0.0)
    clear = agreement(vigia_frames, python_frames, args.conf + 0.05)
    print(f"# {args.frames} frames of {args.video.name}, {args.model.name}, {args.threads} "
          f"thread(s), {args.rounds} alternated rounds, median wall seconds")
    print("| vigia s | Python + ORT s | ratio | vigia FPS | Python FPS | boxes agreeing | "
          f"scoring >= {args.conf + 0.05:.2f} |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    share = f"{matched}/{found} ({100 * matched / max(found, 1):.0f} %), vigia {vigia_boxes}"
    sure = f"{clear[1]}/{clear[0]} ({100 * clear[1] / max(clear[0], 1):.1f} %)"
    print(f"| {v:.2f} | {py:.2f} | {v / py:.2f} | {args.frames / v:.1f} | "
          f"{args.frames / py:.1f} | {share} | {sure} |")
    if args.json:
        args.json.write_text(json.dumps({
            "frames": args.frames, "threads": args.threads, "rounds": args.rounds,
            "vigia_s": times["vigia"], "python_s": times["python"], "ratio": v / py,
            "python_boxes": found, "matched": matched, "vigia_boxes": vigia_boxes,
            "python_boxes_clear": clear[0], "matched_clear": clear[1],
        }, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
