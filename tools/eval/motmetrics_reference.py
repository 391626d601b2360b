#!/usr/bin/env python3
"""Reference MOT metrics from py-motmetrics, printed as one JSON object.

Usage: motmetrics_reference.py GT.txt HYP.txt [--iou-threshold 0.5] [--gt-min-confidence -1]

Both files are loaded with ``motmetrics.io.loadtxt`` (MOTChallenge 2D format) and compared with
``motmetrics.utils.compare_to_groundtruth(gt, hyp, 'iou', distth=1 - iou_threshold)``, the library
defaults that ``vigia::mot::evaluate`` reproduces. Undefined values (0/0) are printed as null.

py-motmetrics 1.4.0 calls ``np.asfarray``, removed in NumPy 2: install it with ``numpy<2``, e.g.
``pip install motmetrics==1.4.0 numpy==1.26.4 pandas==2.2.3 scipy==1.14.1``.
"""

import argparse
import json
import math
import sys

METRICS = [
    "num_frames",
    "mota",
    "motp",
    "idf1",
    "idp",
    "idr",
    "idtp",
    "idfp",
    "idfn",
    "num_switches",
    "num_false_positives",
    "num_misses",
    "num_objects",
    "num_predictions",
    "num_matches",
    "num_unique_objects",
    "mostly_tracked",
    "partially_tracked",
    "mostly_lost",
    "num_fragmentations",
    "precision",
    "recall",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gt", help="ground truth, MOTChallenge text")
    parser.add_argument("hyp", help="tracker output, MOTChallenge text")
    parser.add_argument("--iou-threshold", type=float, default=0.5,
                        help="smallest IoU of a match (default 0.5)")
    parser.add_argument("--gt-min-confidence", type=float, default=-1.0,
                        help="drop ground-truth rows whose column 7 is below this "
                             "(loadtxt default -1; MOTChallenge's devkit uses 1)")
    args = parser.parse_args()
    try:
        import motmetrics as mm
    except ImportError as e:
        print(f"cannot import motmetrics: {e}", file=sys.stderr)
        return 3

    gt = mm.io.loadtxt(args.gt, fmt="mot15-2D", min_confidence=args.gt_min_confidence)
    hyp = mm.io.loadtxt(args.hyp, fmt="mot15-2D")
    acc = mm.utils.compare_to_groundtruth(gt, hyp, "iou", distth=1.0 - args.iou_threshold)
    summary = mm.metrics.create().compute(acc, metrics=METRICS, name="seq")
    out = {}
    for name in METRICS:
        value = summary[name].iloc[0]
        value = float(value)
        if math.isnan(value) or math.isinf(value):
            out[name] = None
        elif value.is_integer() and name not in ("mota", "motp", "idf1", "idp", "idr",
                                                   "precision", "recall"):
            out[name] = int(value)
        else:
            out[name] = value
    out["motmetrics_version"] = getattr(mm, "__version__", "unknown")
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
