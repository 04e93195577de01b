"""Small QuantModels and ORT helpers for the tests/test_onnx_*.py files (built here, never
read from ../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from norsim.mapping.quant_model import AvgPool2d, Clip, Flatten, GlobalAvgPool, Input, MaxPool2d, ReLU
from norsim.mapping.random_models import RandomModelBuilder


def all_ops_model(seed: int = 0, signed_input: bool = True):
    """Every QuantModel op: signed 4-bit input, zero-point weights, signed outputs, relu,
    clip, max/avg pooling, residual add, global average pooling, raw linear output."""
    rng = np.random.default_rng(seed)
    inp = Input("input", shape=(3, 12, 12), bits=4 if signed_input else 8,
                signed=signed_input, scale=1 / 17 if signed_input else 1 / 255)
    imgs = rng.integers(0, 256, (16, 12, 12, 3), dtype=np.uint8)
    b = RandomModelBuilder(rng, inp, imgs, dyadic=False)
    h = b.matmul("c1", "input", 6, kernel=3, padding=1, weight_bits=8, out_bits=8,
                 out_signed=True, zero_point=True)
    h = b.unary(ReLU("r1", [h]))
    h = b.unary(MaxPool2d("mp", [h], kernel=(3, 3), stride=(2, 2), padding=(1, 1)))
    a = b.matmul("c2", h, 6, kernel=3, padding=1, out_bits=4)
    c = b.matmul("c3", h, 6, kernel=1, out_bits=4)
    h = b.add("add", a, c, out_bits=5, out_signed=False)
    h = b.unary(Clip("clip", [h], out_bits=4, out_signed=False))
    h = b.unary(AvgPool2d("ap", [h], kernel=(2, 2), stride=(1, 1)))
    h = b.matmul("c4", h, 5, kernel=2, stride=2, out_bits=6, out_signed=True)
    g = b.unary(GlobalAvgPool("gap", [h]))
    g = b.matmul("fc1", g, 7, out_bits=8, out_signed=True, zero_point=True)
    f = b.matmul("fc2", g, 4, weight_bits=8, requantize=False)
    return b.build(f, name="all-ops"), imgs


def ort_int8_weight_max() -> int:
    """The largest |int8 weight| ONNX Runtime's CPU kernels multiply exactly with uint8
    activations. On an x86 CPU without VNNI its u8s8 GEMM adds pairs of products in int16
    (vpmaddubsw), which saturates at 32767 < 2 x 255 x 127: measured on session 10's AVX2
    EPYC, a QLinear graph with full-range weights differed from the exact integer result by up
    to 24 output steps, and by none with weights in [-63, 63]; its quantizer's
    ``reduce_range`` (7-bit weights) exists for those CPUs. 63 there, 127 elsewhere (VNNI's
    vpdpbusd and ARM's dot products accumulate in int32)."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return 127
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return 63
    return 127 if ("avx512_vnni" in flags or "avx_vnni" in flags) else 63


def run_ort(model_proto, feeds: dict):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(model_proto.SerializeToString(), so,
                             providers=["CPUExecutionProvider"])
    return s.run(None, feeds)[0]
