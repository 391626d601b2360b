#!/usr/bin/env python3
"""Two vigia binaries on one model, alternated run by run: before/after figures on a noisy machine.

Each binary holds the model loaded (`vigia bench --stdin-rounds`, as compare.py runs it); the two
alternate, order flipped every pair, each timing the best of 3 runs per turn. Slow stretches of a
shared machine hit both sides of a pair alike, so the median of the per-pair ratios (B / A, below 1:
B faster) and its quartiles say more than either side's own figures.

    tools/compare-ort/ab.py MODEL A_BIN B_BIN [--threads N] [--pairs N]

Run it with the Python that has numpy (run.sh makes one: target/compare-ort-venv). Give each binary
its own model cache when their graph passes differ (VIGIA_CACHE_DIR in a wrapper script): the cache
key holds the crate version, not the pass.
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from compare import Vigia


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("a", help="the binary before")
    p.add_argument("b", help="the binary after")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pairs", type=int, default=20)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vigia-ab-"))
    sides = [Vigia(exe, args.model, args.threads, None, work / name)
             for name, exe in (("a", args.a), ("b", args.b))]
    times = ([], [])
    ratios = []
    try:
        for i in range(args.pairs):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            best = {}
            for side in order:
                best[side] = min(sides[side].run(3))
                times[side].append(best[side])
            ratios.append(best[1] / best[0])
    finally:
        for side in sides:
            side.close()
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    print(f"{args.model.stem}, {args.threads} thread(s), {args.pairs} pairs: "
          f"A min {min(times[0]):.2f} ms, median {statistics.median(times[0]):.2f}; "
          f"B min {min(times[1]):.2f}, median {statistics.median(times[1]):.2f}; "
          f"B/A median {statistics.median(ratios):.3f} (quartiles {q1:.3f}-{q3:.3f})")


if __name__ == "__main__":
    main()
