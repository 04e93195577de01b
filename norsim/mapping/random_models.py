"""Random QuantModels with realistic activation statistics, for tests, golden files and
benchmarks (LeNet- and ResNet-18-shaped networks).

:class:`RandomModelBuilder` adds nodes one at a time and runs each on a calibration batch, so
that every output scale is chosen from the observed distribution (99th percentile maps to the
top code), as a post-training calibration would. With ``dyadic=True`` every scale is
``k * 2**-p`` with small integers, which makes the float computation of the spec exact in
float64 (the golden tests rely on it).
"""

from __future__ import annotations

import math

import numpy as np

from norsim.mapping.quant_model import (Add, Clip, Conv2d, Flatten, GlobalAvgPool,
                                        Input, Linear, MaxPool2d, QuantModel, ReLU)
from norsim.mapping.reference import input_codes, integer_matmul, im2col, run_node
from norsim.mapping.requant import code_range, quantize_multipliers, weight_code_range


def _pow2(x: float) -> float:
    return float(2.0 ** round(math.log2(x)))


class RandomModelBuilder:
    """Build a random model node by node on a calibration batch of input codes."""

    def __init__(self, rng: np.random.Generator, input_node: Input, images: np.ndarray,
                 dyadic: bool = True):
        self.rng = rng
        self.dyadic = dyadic
        self.nodes = [input_node]
        self.model_input = input_node
        self.tensors = {input_node.name: input_codes(input_node, images)}
        self.specs = {input_node.name: (input_node.scale, input_node.bits, input_node.signed)}

    def _weight_scales(self, cout: int) -> np.ndarray:
        if self.dyadic:
            return self.rng.integers(256, 1024, cout).astype(np.float64) * 2.0 ** -10
        return self.rng.uniform(0.25, 1.0, cout)

    def _out_scale(self, real: np.ndarray, bits: int, signed: bool) -> float:
        hi = code_range(bits, signed)[1]
        v = np.abs(real) if signed else real[real > 0]
        q = float(np.percentile(v, 99.0)) if v.size else 1.0
        target = max(q, 1e-12) / hi
        return _pow2(target) if self.dyadic else target

    def _add(self, node):
        x = [self.tensors[s] for s in node.inputs]
        self.tensors[node.name] = run_node(node, x)
        self.nodes.append(node)
        return node.name

    def matmul(self, name: str, src: str, cout: int, *, kernel: int | None = None,
               stride: int = 1, padding: int = 0, weight_bits: int = 4, out_bits: int = 4,
               out_signed: bool = False, zero_point: bool = False,
               requantize: bool = True) -> str:
        """Add a conv2d (``kernel`` given) or linear node with random codes."""
        s_x, _, _ = self.specs[src]
        x = self.tensors[src]
        cin = x.shape[1]
        shape = (cout, cin, kernel, kernel) if kernel else (cout, cin)
        lo, hi = weight_code_range(weight_bits, zero_point)
        w = self.rng.integers(lo, hi + 1, shape).astype(np.int8)
        zp = self.rng.integers(max(lo, -2), min(hi, 2) + 1, cout).astype(np.int8) \
            if zero_point else None
        s_w = self._weight_scales(cout)
        common = dict(weight=w, bias=np.zeros(cout, np.int32), weight_scale=s_w,
                      weight_zero_point=zp, weight_bits=weight_bits, requantize=False)
        if kernel:
            probe = Conv2d(name, (src,), stride=(stride, stride), padding=(padding, padding),
                           **common)
            cols = im2col(x, probe)
        else:
            probe = Linear(name, (src,), **common)
            cols = x
        acc = integer_matmul(cols, probe)
        sd = float(acc.std()) + 1.0
        bias = np.rint(self.rng.normal(0.0, 0.5 * sd, cout)).astype(np.int32)
        probe.bias = bias
        probe.requantize = requantize
        if requantize:
            real = (acc + bias) * (s_x * s_w)
            s_y = self._out_scale(real, out_bits, out_signed)
            m, n = quantize_multipliers(s_x * s_w / s_y)
            probe.multiplier, probe.shift = m.astype(np.int32), n.astype(np.int32)
            probe.out_bits, probe.out_signed, probe.out_scale = out_bits, out_signed, s_y
            self.specs[name] = (s_y, out_bits, out_signed)
        else:
            self.specs[name] = (None, 32, True)
        return self._add(probe)

    def add(self, name: str, a: str, b: str, *, out_bits: int = 4,
            out_signed: bool = False) -> str:
        sa, sb = self.specs[a][0], self.specs[b][0]
        real = self.tensors[a] * sa + self.tensors[b] * sb
        s_y = self._out_scale(real, out_bits, out_signed)
        node = Add.from_scales(name, (a, b), sa, sb, s_y, out_bits=out_bits,
                               out_signed=out_signed)
        self.specs[name] = (s_y, out_bits, out_signed)
        return self._add(node)

    def unary(self, node) -> str:
        s, bits, signed = self.specs[node.inputs[0]]
        if isinstance(node, ReLU):
            bits, signed = (bits - 1 if signed else bits), False
        elif isinstance(node, Clip):
            bits, signed = node.out_bits, node.out_signed
        self.specs[node.name] = (s, bits, signed)
        return self._add(node)

    def build(self, output: str, name: str = "") -> QuantModel:
        return QuantModel(list(self.nodes), output, name=name,
                          metadata={"generator": "norsim.mapping.random_models"}).validate()


def random_lenet(rng: np.random.Generator, *, dyadic: bool = True, calib_n: int = 64,
                 weight_bits: int = 4, act_bits: int = 4) -> QuantModel:
    """LeNet-5-shaped model on 1x28x28 inputs: conv5-6, pool, conv5-16, pool, fc120, fc84,
    fc10 (raw logits). First layer 8-bit weights, others ``weight_bits``."""
    inp = Input("input", shape=(1, 28, 28), bits=8, signed=False, scale=2.0 ** -8 if dyadic
                else 1 / 255)
    imgs = _blob_images(rng, calib_n, 28, 28, 1)
    b = RandomModelBuilder(rng, inp, imgs, dyadic)
    h = b.matmul("conv1", "input", 6, kernel=5, padding=2, weight_bits=8, out_bits=act_bits)
    h = b.unary(MaxPool2d("pool1", (h,), kernel=2))
    h = b.matmul("conv2", h, 16, kernel=5, weight_bits=weight_bits, out_bits=act_bits)
    h = b.unary(MaxPool2d("pool2", (h,), kernel=2))
    h = b.unary(Flatten("flatten", (h,)))
    h = b.matmul("fc1", h, 120, weight_bits=weight_bits, out_bits=act_bits)
    h = b.matmul("fc2", h, 84, weight_bits=weight_bits, out_bits=act_bits)
    h = b.matmul("fc3", h, 10, weight_bits=8, requantize=False)
    return b.build(h, "lenet5-random")


def random_resnet18(rng: np.random.Generator, *, dyadic: bool = True, calib_n: int = 8,
                    width: int = 64, in_hw: int = 32, classes: int = 10,
                    weight_bits: int = 4, act_bits: int = 4) -> QuantModel:
    """CIFAR-style ResNet-18-shaped model: 3x3 stem, 4 stages x 2 basic blocks (widths
    ``width * (1, 2, 4, 8)``, 1x1 stride-2 shortcuts), global average pool, linear."""
    inp = Input("input", shape=(3, in_hw, in_hw), bits=8, signed=False,
                scale=2.0 ** -8 if dyadic else 1 / 255)
    imgs = _blob_images(rng, calib_n, in_hw, in_hw, 3)
    b = RandomModelBuilder(rng, inp, imgs, dyadic)
    h = b.matmul("stem", "input", width, kernel=3, padding=1, weight_bits=8, out_bits=act_bits)
    cin = width
    for stage in range(4):
        cout = width * 2 ** stage
        for blk in range(2):
            stride = 2 if (stage > 0 and blk == 0) else 1
            p = f"s{stage}b{blk}"
            y = b.matmul(f"{p}_conv1", h, cout, kernel=3, stride=stride, padding=1,
                         weight_bits=weight_bits, out_bits=act_bits)
            y = b.matmul(f"{p}_conv2", y, cout, kernel=3, padding=1, weight_bits=weight_bits,
                         out_bits=8, out_signed=True)
            sc = h
            if stride != 1 or cin != cout:
                sc = b.matmul(f"{p}_down", h, cout, kernel=1, stride=stride,
                              weight_bits=weight_bits, out_bits=8, out_signed=True)
            h = b.add(f"{p}_add", y, sc, out_bits=act_bits, out_signed=False)
            cin = cout
    h = b.unary(GlobalAvgPool("gap", (h,)))
    h = b.matmul("fc", h, classes, weight_bits=8, requantize=False)
    return b.build(h, "resnet18-random")


def _blob_images(rng: np.random.Generator, n: int, h: int, w: int, c: int) -> np.ndarray:
    """Smooth random uint8 images (not white noise), ``(n, h, w)`` or ``(n, h, w, c)``."""
    yy, xx = np.mgrid[0:h, 0:w]
    imgs = np.zeros((n, h, w, c))
    for i in range(n):
        for _ in range(3):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            r = rng.uniform(2, max(h, w) / 3)
            amp = rng.uniform(0.3, 1.0, c)
            imgs[i] += amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
    imgs = np.clip(imgs / max(imgs.max(), 1e-9) * 255, 0, 255).astype(np.uint8)
    return imgs[..., 0] if c == 1 else imgs


blob_images = _blob_images
