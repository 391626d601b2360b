#!/usr/bin/env python3
"""Per-layer time of vigia against ONNX Runtime on one model, one thread count.

vigia's side is `vigia bench --profile --json` (every node of the plan it runs, timed one by one);
ORT's is its own session profiling (`enable_profiling`), the median of each node over the runs
after the first five. Nodes are matched by the ONNX node name: vigia suffixes its rewrites
(`.vigia`, `.einsum`, `.prefused`, `split-over-...`, `.blocked`) and ORT names each kernel after the node's
output tensor (`..._output_0`, `...:0`; `_nchwc` for its blocked layout). Both sides fuse activations and residual
sums into the convolution before them but name the result differently (vigia after the
convolution, ORT after the last node it fused), so with the `onnx` package installed each name is
first traced back through such element-wise nodes to the convolution or product they start from.
Rows are sorted by how much longer vigia takes, so the layers to work on come first; nodes one
side fused away show `-` on that side.

Per-node timing adds a small cost per node on both sides: the sums are for finding layers, and
whole-model ratios come from compare.py.

    tools/compare-ort/layers.py MODEL.onnx [--threads N] [--runs N] [--rounds N] [--top N] [--vigia BIN]

Run it with the Python that has onnxruntime (run.sh makes one: target/compare-ort-venv).
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort

# Element-wise nodes both runtimes fuse into the convolution or product before them.
FUSED_AFTER = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Mul", "Add",
               "BatchNormalization"}
ANCHORS = {"Conv", "Gemm", "MatMul", "ConvTranspose"}
VIGIA_SUFFIX = re.compile(r"(\.einsum|\.ab)?\.(vigia|prefused|split-over.*|concat-einsum.*)(\.blocked)?$")
ORT_SUFFIX = re.compile(r"_nchwc$")


def fused_anchor(model):
    """A function from an ONNX node name to the convolution its fused group starts from.

    Walks back from an element-wise node through inputs made by other element-wise nodes or
    anchors, preferring an anchor whose output feeds nothing else (the convolution the
    activation or residual sum was fused into). Names it cannot trace map to themselves; without
    the `onnx` package every name does."""
    try:
        import onnx
    except ImportError:
        print("layers: no `onnx` package, fused nodes are joined by name only "
              "(pip install onnx)", file=sys.stderr)
        return lambda name: re.sub(r"_output_0$", "", name)
    graph = onnx.load(model, load_external_data=False).graph
    producer = {out: n for n in graph.node for out in n.output}
    by_name = {n.name: n for n in graph.node}
    readers = collections.Counter(i for n in graph.node for i in n.input)

    def trace(node, depth=0):
        if node.op_type in ANCHORS or node.op_type not in FUSED_AFTER or depth > 4:
            return node if node.op_type in ANCHORS else None
        feeding = [producer[i] for i in node.input if i in producer]
        feeding.sort(key=lambda n: (readers[n.output[0]] != 1, n.op_type not in ANCHORS))
        for n in feeding:
            found = trace(n, depth + 1)
            if found is not None:
                return found
        return None

    def anchor(name):
        node = by_name.get(name) or producer.get(name)
        if node is None and name.endswith("_output_0"):
            node = by_name.get(name[: -len("_output_0")])
        found = trace(node) if node is not None else None
        if found is not None and found.name:
            return found.name
        return node.name if node is not None and node.name else re.sub(r"_output_0$", "", name)

    return anchor


def ort_layers(model, threads, runs):
    """ms per ONNX node name: ORT's profile, median over the runs after warm-up."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in first.shape]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    warmup = 5
    for _ in range(warmup + runs):
        session.run(None, {first.name: x})
    path = session.end_profiling()
    with open(path) as f:
        events = json.load(f)
    os.remove(path)
    times = collections.defaultdict(list)
    for e in events:
        name = e.get("name", "")
        if e.get("cat") == "Node" and name.endswith("_kernel_time"):
            times[ORT_SUFFIX.sub("", name[: -len("_kernel_time")])].append(e["dur"] / 1e3)
    return {name: sorted(t[warmup:])[len(t[warmup:]) // 2] for name, t in times.items() if t[warmup:]}


def vigia_layers(vigia, model, threads, runs):
    """(ms per run summed, [(node, op, ms, GFLOP/s)]) from `vigia bench --profile --json`."""
    cmd = [vigia, "bench", "--model", model, "--threads", str(threads), "--runs", str(runs),
           "--profile", "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"layers: {' '.join(cmd)} failed:\n{done.stderr}")
    profile = json.loads(done.stdout)["profile"]
    return profile["ms_per_run"], [
        (n["node"], n["op"], n["ms"], n["gflops_per_s"]) for n in profile["nodes"]
    ]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3,
                   help="alternated profiles per side; each node's fastest is kept (default 3)")
    p.add_argument("--top", type=int, default=30, help="rows to print (default 30)")
    p.add_argument("--vigia", default="target/release/vigia", help="vigia binary")
    a = p.parse_args()
    if not os.path.isfile(a.model):
        sys.exit(f"layers: {a.model}: no such file")
    if not os.access(a.vigia, os.X_OK):
        sys.exit(f"layers: {a.vigia}: no vigia binary there (cargo build --release -p vigia-cli, or --vigia)")
    anchor = fused_anchor(a.model)
    # Alternate the two sides and keep each node's fastest round, so that a slow stretch of a
    # shared machine during one side's profile does not show up as a gap.
    vigia_best, ort_best = {}, {}
    for _ in range(a.rounds):
        _, nodes = vigia_layers(a.vigia, a.model, a.threads, a.runs)
        for node, op, ms, gflops in nodes:
            if node not in vigia_best or ms < vigia_best[node][1]:
                vigia_best[node] = (op, ms, gflops)
        for name, ms in ort_layers(a.model, a.threads, a.runs).items():
            ort_best[name] = min(ms, ort_best.get(name, ms))
    nodes = [(node, op, ms, g) for node, (op, ms, g) in vigia_best.items()]
    vigia_total = sum(ms for _, _, ms, _ in nodes)
    ort_ms = collections.defaultdict(float)
    for name, ms in ort_best.items():
        ort_ms[anchor(name)] += ms
    ort_ms = dict(ort_ms)
    by_name = collections.defaultdict(lambda: [0.0, [], None])
    for node, op, ms, gflops in nodes:
        row = by_name[anchor(VIGIA_SUFFIX.sub("", node))]
        row[0] += ms
        row[1].append(op)
        row[2] = gflops if len(row[1]) == 1 else None
    rows = [(ms - ort_ms.get(name, 0.0), ms, ort_ms.get(name), "+".join(sorted(set(ops))), name, g)
            for name, (ms, ops, g) in by_name.items()]
    rows += [(-ms, None, ms, "-", name, None) for name, ms in ort_ms.items() if name not in by_name]
    rows.sort(key=lambda r: -r[0])
    print(f"# {os.path.basename(a.model)}, {a.threads} thread(s): vigia {vigia_total:.2f} ms, "
          f"ORT {sum(ort_ms.values()):.2f} ms summed over nodes")
    print("| vigia - ORT ms | vigia ms | ORT ms | vigia GFLOP/s | vigia op | node |")
    print("| ---: | ---: | ---: | ---: | --- | --- |")
    fmt = lambda v, f: "-" if v is None else f % v
    for gap, v, o, op, name, g in rows[: a.top]:
        print(f"| {gap:+.3f} | {fmt(v, '%.3f')} | {fmt(o, '%.3f')} | {fmt(g, '%.0f')} | {op} | {name} |")


if __name__ == "__main__":
    main()
