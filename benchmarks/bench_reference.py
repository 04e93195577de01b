"""Images per second of the exact integer reference vs a float32 NumPy forward of the same
network (LeNet-shaped on 1x28x28 and ResNet-18-shaped on 3x32x32, random codes).

The float32 forward uses the real-valued weights and biases of the same QuantModel
(im2col + float32 GEMM, bias, ReLU/clip at the activation range, pooling, residual adds), so
both sides do the same arithmetic work in the same process. Prints one JSON line (the last)
with ``ratio_vs_float32`` = integer seconds / float32 seconds per image (target <= 3).

Usage: python benchmarks/bench_reference.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from _threads import pin, record
from norsim.mapping import reference as ref
from norsim.mapping.quant_model import (Add, AvgPool2d, Clip, Conv2d, Flatten, GlobalAvgPool,
                                        Input, Linear, MaxPool2d, QuantModel, ReLU)
from norsim.mapping.random_models import blob_images, random_lenet, random_resnet18
from norsim.mapping.requant import code_range


class Float32Forward:
    """A plain float32 NumPy forward of a QuantModel's real-valued network."""

    def __init__(self, model: QuantModel):
        self.model = model
        self.order = model.order()
        specs = model.specs()
        self.params = {}
        for nd in self.order:
            if isinstance(nd, (Conv2d, Linear)):
                s_x = specs[nd.inputs[0]].scale
                w = nd.float_weight().astype(np.float32)
                b = nd.float_bias(s_x).astype(np.float32)
                lo = hi = None
                if nd.requantize:
                    lo_c, hi_c = code_range(nd.out_bits, nd.out_signed)
                    lo, hi = np.float32(lo_c * nd.out_scale), np.float32(hi_c * nd.out_scale)
                self.params[nd.name] = (w.reshape(w.shape[0], -1).T.copy(), b, lo, hi)
            elif isinstance(nd, Add):
                lo_c, hi_c = code_range(nd.out_bits, nd.out_signed)
                self.params[nd.name] = (np.float32(lo_c * nd.out_scale),
                                        np.float32(hi_c * nd.out_scale))

    def _conv(self, x, nd):
        n, c, h, w = x.shape
        kh, kw = nd.kernel_size
        (ph, pw), (sh, sw) = nd.padding, nd.stride
        if ph or pw:
            x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :ho, :wo]
        cols = np.empty((n, ho, wo, c, kh, kw), np.float32)
        cols[...] = win.transpose(0, 2, 3, 1, 4, 5)
        wm, b, lo, hi = self.params[nd.name]
        y = cols.reshape(n * ho * wo, -1) @ wm
        y += b
        if lo is not None:
            np.clip(y, lo, hi, out=y)
        return np.ascontiguousarray(y.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        t = {}
        for nd in self.order:
            if isinstance(nd, Input):
                t[nd.name] = x
                continue
            a = t[nd.inputs[0]]
            if isinstance(nd, Conv2d):
                y = self._conv(a, nd)
            elif isinstance(nd, Linear):
                wm, b, lo, hi = self.params[nd.name]
                y = a @ wm + b
                if lo is not None:
                    np.clip(y, lo, hi, out=y)
            elif isinstance(nd, MaxPool2d):
                y = ref.maxpool2d(a, nd) if not any(nd.padding) else _fmaxpool(a, nd)
            elif isinstance(nd, AvgPool2d):
                n_, c_, h_, w_ = a.shape
                win = sliding_window_view(a, nd.kernel, axis=(2, 3))[:, :, ::nd.stride[0],
                                                                      ::nd.stride[1]]
                y = win.mean(axis=(4, 5), dtype=np.float32)
            elif isinstance(nd, GlobalAvgPool):
                y = a.mean(axis=(2, 3), dtype=np.float32)
            elif isinstance(nd, Add):
                lo, hi = self.params[nd.name]
                y = np.clip(a + t[nd.inputs[1]], lo, hi)
            elif isinstance(nd, Flatten):
                y = a.reshape(a.shape[0], -1)
            elif isinstance(nd, ReLU):
                y = np.maximum(a, 0)
            elif isinstance(nd, Clip):
                y = a
            else:  # pragma: no cover
                raise TypeError(nd)
            t[nd.name] = y
        return t[self.model.output]


def _fmaxpool(x, nd):
    ph, pw = nd.padding
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    win = sliding_window_view(x, nd.kernel, axis=(2, 3))[:, :, ::nd.stride[0], ::nd.stride[1]]
    return win.max(axis=(4, 5))


def _best_time(fn, reps):
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench(name, model, batch, reps, rng):
    c, h, w = model.input.shape
    imgs = blob_images(rng, batch, h, w, c)
    x_codes = ref.input_codes(model, imgs)
    x_float = (x_codes * model.input.scale).astype(np.float32)
    fwd = Float32Forward(model)
    ref.run_reference(model, x_codes)          # warm up both
    fwd(x_float)
    t_int = _best_time(lambda: ref.run_reference(model, x_codes), reps)
    t_f32 = _best_time(lambda: fwd(x_float), reps)
    # sanity: the float network and the integer network agree on most predictions
    agree = float(np.mean(np.argmax(model.dequantize_output(ref.run_reference(model, x_codes)),
                                    -1) == np.argmax(fwd(x_float), -1)))
    return {"model": name, "batch": batch, "int_images_per_s": round(batch / t_int, 1),
            "float32_images_per_s": round(batch / t_f32, 1),
            "ratio_vs_float32": round(t_int / t_f32, 3), "argmax_agreement": round(agree, 3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small batches, one repetition")
    args = ap.parse_args(argv)
    pin()
    rng = np.random.default_rng(0)
    reps = 1 if args.quick else 3
    rows = [bench("lenet5", random_lenet(rng, calib_n=32), 64 if args.quick else 512, reps,
                  rng),
            bench("resnet18_cifar", random_resnet18(rng, calib_n=4), 4 if args.quick else 32,
                  reps, rng)]
    for r in rows:
        print(json.dumps({**r, **record()}))
    print(json.dumps({
        "bench": "reference", "ratio_vs_float32": max(r["ratio_vs_float32"] for r in rows),
        "target_ratio": 3.0, "per_model": {r["model"]: r for r in rows},
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "machine": platform.machine(),
        "numpy": np.__version__, **record()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
