"""One line from `vigia bench --json` on stdin: latency percentiles, FPS and placement."""
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    print("no result"); sys.exit()
l = d["latency_ms"]
g = d.get("gpu") or {}
print(f"p50 {l['p50']:.3f} ms, mean {l['mean']:.3f}, p90 {l['p90']:.3f}, fps {d['fps']:.1f}"
      + (f"; gpu ops {g.get('gpu_ops')}, cpu ops {len(g.get('cpu_ops', []))}, copies {g.get('copies')}, lowered {g.get('lowered')}" if g else ""))
