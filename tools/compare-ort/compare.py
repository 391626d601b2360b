#!/usr/bin/env python3
"""vigia against ONNX Runtime, interleaved, on identical inputs.

For each model and thread count: one `vigia bench --stdin-rounds` process keeps the model loaded and
writes the exact input tensor it feeds (a preprocessed photo) and its outputs; an ONNX Runtime
session in this process runs the same ONNX file on that tensor with the same number of intra-op
threads (inter-op 1, sequential). The two alternate round by round (the order flips every round),
so both see the same machine load. Before each side's runs the machine idles `--settle` seconds
and one untimed run wakes that side's threads: both runtimes' idle workers poll for a while after a
run, and without the pause ORT's would take vigia's cores (and vice versa), which made vigia's
two-thread figures up to 1.8x too slow. Prints per model: vigia ms, ORT ms (medians of all runs), the
ratio, FLOPs, the share of the CPU's f32 peak each reaches, and the largest output difference. The
ratio is the median over rounds of vigia's fastest run in the round over ORT's, with its quartiles:
a slow stretch of a shared machine slows both sides of a round alike, so it cancels there where the
ratio of the two medians would carry it.
"""

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

# (label, path relative to the checkout or to ../shared, imgsz or None, quick)
BUNDLED = [
    ("nanodet-m-416", "models/nanodet-m-416.onnx", None, True),
    ("efficientnet-lite0-224", "models/efficientnet-lite0-224.onnx", None, True),
    ("mnist-cnn", "models/mnist-cnn.onnx", None, True),
]
SHARED = [
    ("nanodet-m-416", "models/nanodet-m-416.onnx", None, False),
    ("yolov8n-640", "models/yolo/yolov8n-640.onnx", None, False),
    ("yolov8n-320", "models/yolo/yolov8n-320.onnx", None, True),
    ("yolo11n-640", "models/yolo/yolo11n-640.onnx", None, False),
    ("yolo11n-320", "models/yolo/yolo11n-320.onnx", None, False),
    ("efficientnet-lite0-224", "models/efficientnet-lite0-224.onnx", None, False),
    ("centernet-mbv3-512", "models/centernet-mbv3-512.onnx", None, False),
    ("mnist-cnn-reference", "models/mnist-cnn-reference.onnx", None, True),
    ("resnet50", "models/onnx-light/light_resnet50.onnx", None, False),
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_f32(path, shape):
    return np.fromfile(path, dtype="<f4").reshape(shape)


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Vigia:
    """A `vigia bench --stdin-rounds` process holding one loaded model."""

    def __init__(self, exe, model, threads, imgsz, workdir, env=None, extra=()):
        workdir.mkdir(parents=True, exist_ok=True)
        self.input_path = workdir / "input.f32"
        self.output_dir = workdir / "outputs"
        cmd = [
            str(exe), "bench", "--model", str(model), "--threads", str(threads),
            "--runs", "1", "--warmup", "2", "--stdin-rounds",
            "--dump-input", str(self.input_path), "--dump-output", str(self.output_dir),
        ]
        if imgsz:
            cmd += ["--imgsz", str(imgsz)]
        cmd += list(extra)
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env,
        )
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read()
            self.proc.wait()
            raise RuntimeError(f"vigia bench failed on {model}: {err.strip()}")
        self.report = json.loads(line)

    def run(self, n):
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"vigia bench stopped: {self.proc.stderr.read().strip()}")
        return json.loads(line)["times_ms"]

    def input(self):
        meta = json.loads(Path(str(self.input_path) + ".json").read_text())
        return read_f32(self.input_path, meta["shape"])

    def outputs(self):
        meta = json.loads((self.output_dir / "outputs.json").read_text())
        return [read_f32(self.output_dir / o["file"], o["shape"]) for o in meta]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def ort_session(model, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])


def compare_outputs(ours, theirs):
    """Largest absolute difference, relative to the reference's magnitude, over all outputs."""
    worst_abs, worst_rel, notes = 0.0, 0.0, []
    if len(ours) != len(theirs):
        notes.append(f"{len(ours)} outputs vs {len(theirs)}")
    for i, (a, b) in enumerate(zip(ours, theirs)):
        b = np.asarray(b, dtype=np.float32)
        if a.size != b.size:
            notes.append(f"output {i}: shape {list(a.shape)} vs {list(b.shape)}")
            continue
        a = a.reshape(b.shape)
        d = float(np.max(np.abs(a - b))) if a.size else 0.0
        scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
        worst_abs = max(worst_abs, d)
        worst_rel = max(worst_rel, d / scale)
    return worst_abs, worst_rel, notes


def measure(args, label, model, imgsz, threads, workdir):
    vigia = Vigia(args.vigia, model, threads, imgsz, workdir)
    # The same binary with tract's own convolution kernels, timed in the same rounds.
    tract = Vigia(args.vigia, model, threads, imgsz, workdir / "tract-kernels",
                  extra=["--kernels", "tract"]) if args.tract_kernels else None
    try:
        x = vigia.input()
        sess = ort_session(model, threads)
        feed = {sess.get_inputs()[0].name: x}
        for _ in range(2):
            outs = sess.run(None, feed)
        v_times, o_times, t_times = [], [], []
        # Each round's fastest run per side: the per-round ratios pair runs made seconds apart.
        v_rounds, o_rounds, t_rounds = [], [], []
        sides = ["vigia", "ort"] + (["tract"] if tract else [])
        for r in range(args.rounds):
            order = sides[r % len(sides):] + sides[:r % len(sides)]
            for who in order:
                # Let the other side's idle threads stop spinning (ORT's and vigia's workers
                # poll for a while after a run) so that they do not take this side's cores.
                # Then one untimed run wakes this side's threads: the figures are steady-state
                # speeds, each side alone on the cores.
                time.sleep(args.settle)
                if who == "vigia":
                    runs = vigia.run(args.runs + 1)[1:]
                    v_times += runs
                    v_rounds.append(min(runs))
                elif who == "tract":
                    runs = tract.run(args.runs + 1)[1:]
                    t_times += runs
                    t_rounds.append(min(runs))
                else:
                    sess.run(None, feed)
                    runs = []
                    for _ in range(args.runs):
                        t = time.perf_counter()
                        sess.run(None, feed)
                        runs.append((time.perf_counter() - t) * 1e3)
                    o_times += runs
                    o_rounds.append(min(runs))
        ours, checked = vigia.outputs(), "as timed"
        if len(ours) != len(outs):
            # vigia's graph rewrites cut the model's head (the YOLOv8 box decode runs in Rust), so
            # its outputs are not the model's: check agreement on the same graph loaded uncut.
            uncut = Vigia(args.vigia, model, threads, imgsz, workdir / "uncut",
                          env={**os.environ, "VIGIA_NO_REWRITE": "1"})
            try:
                ours, checked = uncut.outputs(), "uncut graph (timed with the head cut)"
            finally:
                uncut.close()
        abs_diff, rel_diff, notes = compare_outputs(ours, outs)
        report = vigia.report
    finally:
        vigia.close()
        if tract:
            tract.close()
    v_ms, o_ms = statistics.median(v_times), statistics.median(o_times)
    t_ms = statistics.median(t_times) if t_times else None
    paired = [v / o for v, o in zip(v_rounds, o_rounds)]
    q1, ratio, q3 = quartiles(paired)
    t_ratio = statistics.median([t / o for t, o in zip(t_rounds, o_rounds)]) if t_rounds else None
    flops = (report.get("flops") or {}).get("flops")
    peak = report.get("peak_gflops")
    pct = lambda ms: (100.0 * flops / (ms * 1e-3) / 1e9 / peak) if flops and peak else None
    return {
        "model": label,
        "file": str(model),
        "input_shape": report["input_shape"],
        "input": report["input"],
        "threads": threads,
        "vigia_ms": v_ms,
        "ort_ms": o_ms,
        "ratio": ratio,
        "ratio_quartiles": [q1, q3],
        "ratio_of_medians": v_ms / o_ms,
        "tract_kernels_ms": t_ms,
        "tract_kernels_ratio": t_ratio,
        "vigia_kernels": report.get("kernels"),
        "vigia_min_ms": min(v_times),
        "ort_min_ms": min(o_times),
        "pairs": len(v_times),
        "vigia_load_ms": report["load_ms"]["total"],
        "gflops": flops / 1e9 if flops else None,
        "vigia_peak_percent": pct(v_ms),
        "ort_peak_percent": pct(o_ms),
        "peak_gflops": peak,
        "max_abs_diff": abs_diff,
        "max_rel_diff": rel_diff,
        "agree": rel_diff <= args.tolerance and not notes,
        "agreement_checked_on": checked,
        "notes": notes,
    }


def quartiles(values):
    """(first quartile, median, third quartile); all three the value when there is one."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def models(args):
    root, shared = Path(args.root), Path(args.root).parent / "shared"
    seen, out = set(), []
    for base, table in ((root, BUNDLED), (shared, SHARED)):
        for label, rel, imgsz, quick in table:
            path = base / rel
            if args.quick and not quick:
                continue
            if args.models and label not in args.models:
                continue
            if not path.is_file():
                if base == shared and not shared.is_dir():
                    continue
                print(f"note: {path} not found, skipped", file=sys.stderr)
                continue
            digest = sha256(path)
            if digest in seen:
                continue
            seen.add(digest)
            out.append((label, path, imgsz))
    if not shared.is_dir():
        print(f"note: {shared} is absent: only the bundled models are compared", file=sys.stderr)
    return out


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def ms(v):
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 10 else f"{v:.1f}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vigia", default="target/release/vigia", help="vigia binary")
    p.add_argument("--root", default=".", help="vigia checkout (../shared is looked up next to it)")
    p.add_argument("--quick", action="store_true", help="small models, 1 thread, 3 rounds")
    p.add_argument("--threads", type=int, nargs="+", help="thread counts (default 1 2; quick: 1)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 8; quick: 3)")
    p.add_argument("--runs", type=int, default=3, help="runs per side per round (default 3)")
    p.add_argument("--settle", type=float, default=0.2,
                   help="seconds of idle before each side's runs (default 0.2)")
    p.add_argument("--models", nargs="+", help="only these labels (e.g. nanodet-m-416 yolov8n-320)")
    p.add_argument("--tolerance", type=float, default=1e-3,
                   help="largest output difference accepted, relative to max(1, max |ORT output|)")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--tract-kernels", action="store_true",
                   help="also time vigia with tract's own convolution kernels (--kernels tract)")
    args = p.parse_args()
    args.threads = args.threads or ([1] if args.quick else [1, 2])
    args.rounds = args.rounds or (3 if args.quick else 8)
    if min(args.threads) < 1 or args.rounds < 1 or args.runs < 1:
        p.error("--threads, --rounds and --runs must be at least 1")
    if not Path(args.vigia).is_file():
        p.error(f"vigia binary {args.vigia} not found (build it with cargo build --release)")

    todo = models(args)
    if not todo:
        p.error("no model to compare")
    started = time.time()
    results = []
    print(f"# vigia vs ONNX Runtime {ort.__version__} on {cpu_name()} ({os.cpu_count()} CPUs), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    print(f"# {args.rounds} interleaved rounds x {args.runs} runs per side; median ms; ratio = "
          f"vigia / ORT (above 1: vigia slower), the median over rounds of each round's fastest "
          f"runs, with its quartiles\n", flush=True)
    tk = args.tract_kernels
    header = ("| model | input | threads | vigia ms | ORT ms | ratio | ratio quartiles | "
              + ("tract-kernels ms | tract-kernels ratio | " if tk else "")
              + "GFLOP | vigia % peak | ORT % peak | max abs diff | agree |")
    print(header)
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | " + ("---: | ---: | " if tk else "")
          + "---: | ---: | ---: | ---: | --- |")
    failures = 0
    with tempfile.TemporaryDirectory(prefix="vigia-compare-ort-") as tmp:
        for label, path, imgsz in todo:
            for threads in args.threads:
                work = Path(tmp) / f"{label}-{threads}"
                work.mkdir()
                try:
                    r = measure(args, label, path, imgsz, threads, work)
                except Exception as e:  # report and go on with the next model
                    failures += 1
                    print(f"| {label} | - | {threads} | failed: {str(e).splitlines()[0][:200]} ||||||||||",
                          flush=True)
                    continue
                results.append(r)
                shape = "x".join(str(d) for d in r["input_shape"])
                agree = "yes" if r["agree"] else "**NO** " + "; ".join(r["notes"])
                if r["agreement_checked_on"] != "as timed":
                    agree += " (head cut; checked uncut)"
                tract_cols = (f"{ms(r['tract_kernels_ms'])} | {r['tract_kernels_ratio']:.2f} | "
                              if tk else "")
                print(f"| {label} | {shape} | {threads} | {ms(r['vigia_ms'])} | {ms(r['ort_ms'])} | "
                      f"{r['ratio']:.2f} | {r['ratio_quartiles'][0]:.2f}-{r['ratio_quartiles'][1]:.2f} | "
                      f"{tract_cols}{fmt(r['gflops'], '.3f')} | "
                      f"{fmt(r['vigia_peak_percent'], '.1f')} | {fmt(r['ort_peak_percent'], '.1f')} | "
                      f"{r['max_abs_diff']:.2e} | {agree} |", flush=True)
    peak = next((r["peak_gflops"] for r in results if r["threads"] == 1 and r["peak_gflops"]), None)
    if peak:
        print(f"\n% peak: FLOPs (2 x conv/matmul MACs counted from the graph by vigia) per second over "
              f"{peak:.1f} GFLOP/s per thread (`vigia bench` prints the assumption).")
    print(f"Total time {time.time() - started:.0f} s.")
    if args.json:
        args.json.write_text(json.dumps({
            "cpu": cpu_name(), "cpus": os.cpu_count(), "onnxruntime": ort.__version__,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "rounds": args.rounds, "runs": args.runs, "results": results,
        }, indent=2))
    disagree = [r["model"] for r in results if not r["agree"]]
    if disagree:
        print(f"outputs differ beyond tolerance {args.tolerance}: {', '.join(sorted(set(disagree)))}")
    sys.exit(1 if failures or disagree else 0)


if __name__ == "__main__":
    main()
