#!/usr/bin/env python3
"""Quantizes the shared MNIST CNN to int8 with ONNX Runtime, in both ONNX quantization formats,
and records ONNX Runtime's outputs on held-out digits as the reference for vigia's int8 test.

    python3 -m venv V && V/bin/pip install onnx==1.17.0 onnxruntime==1.20.1 numpy==1.26.4
    V/bin/python targets/int8/make_int8.py [../shared]

Writes, next to this script:
  mnist-int8-qoperator.onnx  QOperator format: QuantizeLinear -> QLinearConv ... -> DequantizeLinear
  mnist-int8-qdq.onnx        QDQ format: float Conv between DequantizeLinear/QuantizeLinear pairs
  mnist-int8-reference.json  20 held-out digits (pixels, label) and ONNX Runtime's logits for
                             the float model and both int8 models
Only Conv is quantized (static, per-tensor, uint8 activations, int8 weights, calibrated on 200
training digits): ONNX Runtime's QOperator Gemm is a com.microsoft QGemm no other runtime reads.
"""
import gzip
import json
import os
import sys

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_static)

here = os.path.dirname(os.path.abspath(__file__))
shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "..", "shared")
src = os.path.join(shared, "models", "mnist-cnn-reference.onnx")
rows = np.loadtxt(gzip.open(os.path.join(shared, "data", "mnist", "mnist_5k.csv.gz")),
                  delimiter=",", dtype=np.float32)
pixels, labels = rows[:, :784] / 255.0, rows[:, 784].astype(int)
# The model was trained on the first 4000 rows: calibrate there, test on the held-out 1000.
calib = pixels[0:4000:20][:200]
test_ix = np.arange(4000, 5000, 50)[:20]


class Digits(CalibrationDataReader):
    def __init__(self, images, name):
        self.it = iter([{name: im.reshape(1, 1, 28, 28)} for im in images])

    def get_next(self):
        return next(self.it, None)


name = ort.InferenceSession(src).get_inputs()[0].name
outputs = {}
for fmt, suffix in ((QuantFormat.QOperator, "qoperator"), (QuantFormat.QDQ, "qdq")):
    dst = os.path.join(here, f"mnist-int8-{suffix}.onnx")
    quantize_static(src, dst, Digits(calib, name), quant_format=fmt,
                    op_types_to_quantize=["Conv"], per_channel=False,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    outputs[suffix] = dst


def logits(path):
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return [s.run(None, {name: pixels[i].reshape(1, 1, 28, 28)})[0][0].tolist() for i in test_ix]


ref = {
    "input": name,
    "digits": [{"pixels": pixels[i].tolist(), "label": int(labels[i])} for i in test_ix],
    "float": logits(src),
    "qoperator": logits(outputs["qoperator"]),
    "qdq": logits(outputs["qdq"]),
    "onnxruntime": ort.__version__,
}
with open(os.path.join(here, "mnist-int8-reference.json"), "w") as f:
    json.dump(ref, f)
for k in ("float", "qoperator", "qdq"):
    acc = np.mean([np.argmax(l) == d["label"] for l, d in zip(ref[k], ref["digits"])])
    print(f"{k}: {acc * 100:.0f}% of {len(test_ix)} held-out digits")
