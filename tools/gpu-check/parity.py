"""Each dump in argv[2:] against the reference dump argv[1]: per output, the largest difference
relative to the output's largest magnitude, and the absolute one."""
import json, sys, numpy as np
def load(d):
    meta = json.load(open(d + '/outputs.json'))
    return [(o['name'], np.fromfile(d + '/' + o['file'], dtype='<f4').reshape(o['shape'])) for o in meta]
ref = load(sys.argv[1])
for d in sys.argv[2:]:
    try:
        outs = load(d)
    except Exception as e:
        print(f'{d}: no dump ({e})'); continue
    parts, worst = [], 0.0
    for (name, a), (_, b) in zip(outs, ref):
        scale = max(float(np.abs(b).max()), 1e-12)
        diff = float(np.abs(a - b).max())
        worst = max(worst, diff / scale) if np.isfinite(a).all() else float('nan')
        parts.append(f'{name} {diff / scale:.1e} (abs {diff:.1e} of {scale:.1e})')
    print(f'{d}: worst {worst:.2e}; ' + '; '.join(parts))
