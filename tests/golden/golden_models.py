"""Small golden QuantModels with random codes, built deterministically from a seed.

``python tests/golden/golden_models.py`` rewrites ``tests/golden/<name>.npz`` (the model) and
``tests/golden/<name>.io.npz`` (``x_codes``: the fixed input codes, ``output``: the reference
output codes, and ``t/<node>``: every node's codes). The test suite rebuilds each model from
scratch, checks it equals the committed file, checks the integer reference against a direct
float computation of the spec, and checks the committed outputs. Any later path (the analog
mapper with ideal settings, an exporter) must reproduce these numbers bit for bit.

All scales are dyadic (k * 2**-p), so the float computation of the spec is exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from norsim.mapping.quant_model import (AvgPool2d, Clip, Flatten, GlobalAvgPool, Input,
                                        MaxPool2d, QuantModel, ReLU)
from norsim.mapping.random_models import RandomModelBuilder, blob_images

HERE = Path(__file__).resolve().parent
N_IMAGES = 6


def _images(rng, shape_chw):
    c, h, w = shape_chw
    return blob_images(rng, N_IMAGES, h, w, c)


def golden_lenet_tiny() -> tuple[QuantModel, np.ndarray]:
    """conv (8-bit first layer, padding) -> maxpool -> conv (stride 2, zero points, 3-bit)
    -> flatten -> linear (signed 6-bit) -> relu -> clip (4-bit) -> linear (raw logits)."""
    rng = np.random.default_rng(1001)
    inp = Input("input", shape=(1, 12, 12), bits=8, signed=False, scale=2.0 ** -8)
    imgs = _images(rng, inp.shape)
    b = RandomModelBuilder(rng, inp, imgs)
    h = b.matmul("conv1", "input", 4, kernel=3, padding=1, weight_bits=8, out_bits=4)
    h = b.unary(MaxPool2d("pool1", (h,), kernel=2))
    h = b.matmul("conv2", h, 6, kernel=3, stride=2, padding=1, weight_bits=3, out_bits=4,
                 zero_point=True)
    h = b.unary(Flatten("flatten", (h,)))
    h = b.matmul("fc1", h, 12, weight_bits=4, out_bits=6, out_signed=True)
    h = b.unary(ReLU("relu", (h,)))
    h = b.unary(Clip("clip", (h,), out_bits=4, out_signed=False))
    h = b.matmul("fc2", h, 10, weight_bits=8, requantize=False)
    return b.build(h, "golden_lenet_tiny"), imgs


def golden_resnet_tiny() -> tuple[QuantModel, np.ndarray]:
    """Signed (centred) 8-bit input, stem conv, 3x3/2 maxpool with padding, two residual
    blocks (identity and 1x1 stride-2 shortcut), global average pool, 8-bit signed linear."""
    rng = np.random.default_rng(1002)
    inp = Input("input", shape=(3, 10, 10), bits=8, signed=True, scale=2.0 ** -7)
    imgs = _images(rng, inp.shape)
    b = RandomModelBuilder(rng, inp, imgs)
    h = b.matmul("stem", "input", 8, kernel=3, padding=1, weight_bits=8, out_bits=4)
    h = b.unary(MaxPool2d("pool", (h,), kernel=3, stride=2, padding=1))
    y = b.matmul("b1_conv1", h, 8, kernel=3, padding=1, out_bits=4)
    y = b.matmul("b1_conv2", y, 8, kernel=3, padding=1, out_bits=8, out_signed=True)
    h = b.add("b1_add", y, h, out_bits=4)
    y = b.matmul("b2_conv1", h, 16, kernel=3, stride=2, padding=1, out_bits=4)
    y = b.matmul("b2_conv2", y, 16, kernel=3, padding=1, out_bits=8, out_signed=True)
    sc = b.matmul("b2_down", h, 16, kernel=1, stride=2, out_bits=8, out_signed=True,
                  zero_point=True)
    h = b.add("b2_add", y, sc, out_bits=4)
    h = b.unary(GlobalAvgPool("gap", (h,)))
    h = b.matmul("fc", h, 10, weight_bits=8, out_bits=8, out_signed=True)
    return b.build(h, "golden_resnet_tiny"), imgs


def golden_avgpool_mlp() -> tuple[QuantModel, np.ndarray]:
    """4-bit input (p >> 4), 3x3 average pooling (odd count), 2-bit weights, signed 5-bit
    conv output, relu, 2x2/1 average pooling (even count: ties), linear with zero points."""
    rng = np.random.default_rng(1003)
    inp = Input("input", shape=(1, 9, 9), bits=4, signed=False, scale=2.0 ** -4)
    imgs = _images(rng, inp.shape)
    b = RandomModelBuilder(rng, inp, imgs)
    h = b.unary(AvgPool2d("avg1", ("input",), kernel=3))
    h = b.matmul("conv", h, 4, kernel=3, padding=1, weight_bits=2, out_bits=5, out_signed=True)
    h = b.unary(ReLU("relu", (h,)))
    h = b.unary(AvgPool2d("avg2", (h,), kernel=2, stride=1))
    h = b.unary(Flatten("flatten", (h,)))
    h = b.matmul("fc", h, 5, weight_bits=4, zero_point=True, requantize=False)
    return b.build(h, "golden_avgpool_mlp"), imgs


GOLDEN = {"golden_lenet_tiny": golden_lenet_tiny, "golden_resnet_tiny": golden_resnet_tiny,
          "golden_avgpool_mlp": golden_avgpool_mlp}


def write_all(directory: Path = HERE) -> None:
    from norsim.mapping.reference import input_codes, run_reference
    for name, fn in GOLDEN.items():
        model, imgs = fn()
        model.save(directory / f"{name}.npz")
        x = input_codes(model, imgs)
        out, tensors = run_reference(model, x, return_all=True)
        np.savez_compressed(directory / f"{name}.io.npz", images=imgs, x_codes=x, output=out,
                            **{f"t/{k}": v for k, v in tensors.items()})


if __name__ == "__main__":
    write_all()
