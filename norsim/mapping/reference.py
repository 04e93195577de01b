"""The exact integer reference executor of a :class:`~norsim.mapping.quant_model.QuantModel`.

Everything here is integer arithmetic as ``docs/model-format.md`` specifies it; the only
floating-point operation is the GEMM inside :func:`integer_matmul`, which is *exact*: every
operand is a small integer and every partial sum is bounded (by the per-channel L1 norm of the
weights times the largest input code) below 2**24 when float32 is used, or below 2**53 with
float64, so any summation order returns the exact integer. This keeps the reference at BLAS
speed while staying bit exact.

The building blocks are public so that the analog mapper can replace only the matmul::

    cols = im2col(x, node)            # (N*Ho*Wo, Cin*kh*kw) integer matrix
    acc = integer_matmul(cols, node)  # exact int64 accumulators, before bias
    y = requantize(acc, node)         # bias, fixed-point multiplier/shift, clamp
    out = rows_to_nchw(y, n, ho, wo)

or ``matmul_layer(x, node, matmul=my_matmul)`` in one call.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from norsim.errors import InputError
from norsim.mapping.quant_model import (Add, AvgPool2d, Clip, Conv2d, Flatten, GlobalAvgPool,
                                        Input, Linear, MatMulNode, MaxPool2d, QuantModel, ReLU,
                                        TensorSpec)
from norsim.mapping.requant import (apply_multiplier, code_range, div_round_half_up,
                                    requantize_rows, shift_round)

F32_EXACT = 2 ** 24   #: float32 represents every integer of magnitude <= 2**24
F64_EXACT = 2 ** 53   #: float64 likewise for 2**53

MatMul = Callable[[np.ndarray, MatMulNode], np.ndarray]


# --------------------------------------------------------------------------- input

def input_codes(model: QuantModel | Input, images: np.ndarray) -> np.ndarray:
    """uint8 images -> int32 NCHW input codes (``(p >> (8-bits)) - offset``).

    Accepts ``(N, H, W)`` when the model has one channel, ``(N, H, W, C)`` (channels last, as
    the data sets store images; preferred when ambiguous) or ``(N, C, H, W)``.
    """
    node = model.input if isinstance(model, QuantModel) else model
    c, h, w = node.shape
    if not isinstance(images, np.ndarray):
        raise InputError("images", type(images).__name__, "a numpy uint8 array")
    if images.dtype != np.uint8:
        raise InputError("images.dtype", images.dtype, "uint8 pixels (0..255)")
    shp = images.shape
    if images.ndim == 3 and c == 1 and shp[1:] == (h, w):
        x = images[:, None, :, :]
    elif images.ndim == 4 and shp[1:] == (h, w, c):
        x = images.transpose(0, 3, 1, 2)
    elif images.ndim == 4 and shp[1:] == (c, h, w):
        x = images
    else:
        raise InputError("images.shape", shp, f"(N, {h}, {w}, {c}) or (N, {c}, {h}, {w})"
                         + (f" or (N, {h}, {w})" if c == 1 else ""))
    codes = (x >> (8 - node.bits)).astype(np.int32)
    if node.signed:
        codes -= 1 << (node.bits - 1)
    return np.ascontiguousarray(codes)


def _check_codes(x: np.ndarray, spec: TensorSpec, field: str) -> None:
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "iu":
        raise InputError(field, getattr(x, "dtype", type(x).__name__),
                         "an integer numpy array of codes (use input_codes for images)")
    if x.ndim != 1 + len(spec.shape) or tuple(x.shape[1:]) != spec.shape:
        raise InputError(f"{field}.shape", x.shape, f"(N, {', '.join(map(str, spec.shape))})")
    if x.size and (x.min() < spec.lo or x.max() > spec.hi):
        raise InputError(field, f"codes in [{x.min()}, {x.max()}]",
                         f"codes in [{spec.lo}, {spec.hi}] ({spec.bits}-bit, "
                         f"{'signed' if spec.signed else 'unsigned'})")


# --------------------------------------------------------------------------- conv/linear

def conv_output_size(node: Conv2d, h: int, w: int) -> tuple[int, int]:
    kh, kw = node.kernel_size
    return ((h + 2 * node.padding[0] - kh) // node.stride[0] + 1,
            (w + 2 * node.padding[1] - kw) // node.stride[1] + 1)


def im2col(x: np.ndarray, node: Conv2d, dtype=np.int32) -> np.ndarray:
    """Unfold NCHW codes into the ``(N*Ho*Wo, Cin*kh*kw)`` matrix a conv multiplies.

    Rows are output positions in ``(n, ho, wo)`` order; columns follow the weight layout
    ``(cin, kh, kw)``, i.e. ``weight.reshape(Cout, -1)``. Padded positions hold code 0.
    """
    n, c, h, w = x.shape
    kh, kw = node.kernel_size
    ph, pw = node.padding
    sh, sw = node.stride
    ho, wo = conv_output_size(node, h, w)
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :ho, :wo]
    out = np.empty((n, ho, wo, c, kh, kw), dtype=dtype)
    out[...] = win.transpose(0, 2, 3, 1, 4, 5)
    return out.reshape(n * ho * wo, c * kh * kw)


def rows_to_nchw(y: np.ndarray, n: int, ho: int, wo: int) -> np.ndarray:
    """``(N*Ho*Wo, Cout)`` rows back to a contiguous ``(N, Cout, Ho, Wo)`` tensor."""
    return np.ascontiguousarray(y.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2))


def _gemm_dtype(max_abs_x: int, w: np.ndarray):
    bound = int(np.abs(w).sum(axis=1).max(initial=0)) * int(max_abs_x)
    if bound < F32_EXACT:
        return np.float32
    if bound < F64_EXACT:
        return np.float64
    return None


def _exact_gemm_raw(cols: np.ndarray, w: np.ndarray, dtype) -> np.ndarray:
    """``cols @ w.T`` exactly, in a float GEMM of ``dtype`` (int64 matmul if None); the
    result holds exact integers in that dtype."""
    if dtype is None:
        return cols.astype(np.int64) @ w.T
    a = cols if cols.dtype == dtype else cols.astype(dtype)
    return a @ w.T.astype(dtype)


def _exact_gemm(cols: np.ndarray, w: np.ndarray, dtype) -> np.ndarray:
    """``cols @ w.T`` exactly, as int64."""
    return _exact_gemm_raw(cols, w, dtype).astype(np.int64)


def _max_abs(x: np.ndarray) -> int:
    if x.size == 0:
        return 0
    return max(abs(int(x.min())), abs(int(x.max())))


def integer_matmul(cols: np.ndarray, node: MatMulNode) -> np.ndarray:
    """Exact accumulators ``cols @ (weight - zero_point).T``: int64 ``(rows, Cout)``.

    ``cols`` is an integer matrix ``(rows, K)`` (from :func:`im2col`, or the ``(N, Cin)`` input
    of a linear node). Bias and requantisation are not applied.
    """
    w = node.weight_matrix()
    return _exact_gemm(cols, w, _gemm_dtype(_max_abs(cols), w))


def raw_matmul(cols: np.ndarray, node: MatMulNode) -> np.ndarray:
    """``cols @ weight.T`` with the raw codes (what an array holding the codes computes)."""
    w = np.asarray(node.weight, dtype=np.int64).reshape(node.out_channels, -1)
    return _exact_gemm(cols, w, _gemm_dtype(_max_abs(cols), w))


def zero_point_correction(cols: np.ndarray, node: MatMulNode) -> np.ndarray:
    """``-z[o] * sum_k cols[:, k]`` (zeros without zero points), int64 ``(rows, Cout)``."""
    rows = cols.shape[0]
    if node.weight_zero_point is None:
        return np.zeros((rows, node.out_channels), dtype=np.int64)
    s = cols.sum(axis=1, dtype=np.int64)
    return -s[:, None] * np.asarray(node.weight_zero_point, dtype=np.int64)[None, :]


def requantize(acc: np.ndarray, node: MatMulNode) -> np.ndarray:
    """Add the bias and map accumulators (channels on the last axis) to output codes.

    Returns int32 codes, or the int64 ``acc + bias`` for a ``requantize=False`` node.
    """
    t = np.asarray(acc, dtype=np.int64) + np.asarray(node.bias, dtype=np.int64)
    if not node.requantize:
        return t
    lo, hi = code_range(node.out_bits, node.out_signed)
    m = np.asarray(node.multiplier, dtype=np.int64)
    n = np.asarray(node.shift, dtype=np.int64)
    return apply_multiplier(t, m, n, lo, hi).astype(np.int32)


def matmul_layer(x: np.ndarray, node: MatMulNode, matmul: MatMul | None = None) -> np.ndarray:
    """Run one conv2d (NCHW in and out) or linear ((N, Cin) -> (N, Cout)) node.

    ``matmul(cols, node) -> int accumulators (rows, Cout)`` replaces :func:`integer_matmul`
    (the analog mapper's hook); by default the exact BLAS path is used.
    """
    n = x.shape[0]
    if isinstance(node, Conv2d):
        ho, wo = conv_output_size(node, x.shape[2], x.shape[3])
        if matmul is None:
            wm = node.weight_matrix()
            dt = _gemm_dtype(_max_abs(x), wm)
            cols = im2col(x, node, dtype=dt if dt is not None else np.int64)
            acc = _exact_gemm_raw(cols, wm, dt)
        else:
            acc = matmul(im2col(x, node), node)
    else:
        ho = wo = 1
        if matmul is None:
            wm = node.weight_matrix()
            acc = _exact_gemm_raw(x, wm, _gemm_dtype(_max_abs(x), wm))
        else:
            acc = matmul(x, node)
    if not node.requantize:   # raw output: acc + bias, int64, channels last
        out = requantize(np.asarray(acc).astype(np.int64), node)
        return rows_to_nchw(out, n, ho, wo) if isinstance(node, Conv2d) else out
    lo, hi = code_range(node.out_bits, node.out_signed)
    y = requantize_rows(acc, node.bias, node.multiplier, node.shift, lo, hi, n)
    return y.reshape(n, -1, ho, wo) if isinstance(node, Conv2d) else y.reshape(n, -1)


# --------------------------------------------------------------------------- other ops

def _window_slices(x, kernel, stride, out_hw):
    ho, wo = out_hw
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            yield x[:, :, i:i + stride[0] * (ho - 1) + 1:stride[0],
                    j:j + stride[1] * (wo - 1) + 1:stride[1]]


def maxpool2d(x: np.ndarray, node: MaxPool2d) -> np.ndarray:
    n, c, h, w = x.shape
    ph, pw = node.padding
    ho = (h + 2 * ph - node.kernel[0]) // node.stride[0] + 1
    wo = (w + 2 * pw - node.kernel[1]) // node.stride[1] + 1
    if ph or pw:   # padded positions never win: pad with the smallest value of the dtype
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)),
                   constant_values=np.iinfo(x.dtype).min)
    out = None
    for sl in _window_slices(x, node.kernel, node.stride, (ho, wo)):
        out = sl.copy() if out is None else np.maximum(out, sl, out=out)
    return out


def avgpool2d(x: np.ndarray, node: AvgPool2d) -> np.ndarray:
    n, c, h, w = x.shape
    ho = (h - node.kernel[0]) // node.stride[0] + 1
    wo = (w - node.kernel[1]) // node.stride[1] + 1
    total = np.zeros((n, c, ho, wo), dtype=np.int64)
    for sl in _window_slices(x, node.kernel, node.stride, (ho, wo)):
        total += sl
    return div_round_half_up(total, node.kernel[0] * node.kernel[1]).astype(np.int32)


def global_avgpool(x: np.ndarray) -> np.ndarray:
    total = x.sum(axis=(2, 3), dtype=np.int64)
    return div_round_half_up(total, x.shape[2] * x.shape[3]).astype(np.int32)


def add(a: np.ndarray, b: np.ndarray, node: Add) -> np.ndarray:
    prod = a.astype(np.int64) * node.multiplier_a + b.astype(np.int64) * node.multiplier_b
    y = shift_round(prod, node.shift)
    lo, hi = code_range(node.out_bits, node.out_signed)
    return np.clip(y, lo, hi).astype(np.int32)


def run_node(node, ins: list[np.ndarray], matmul: MatMul | None = None) -> np.ndarray:
    """Execute one non-input node on its input tensors (batched)."""
    if isinstance(node, (Conv2d, Linear)):
        return matmul_layer(ins[0], node, matmul)
    if isinstance(node, MaxPool2d):
        return maxpool2d(ins[0], node)
    if isinstance(node, AvgPool2d):
        return avgpool2d(ins[0], node)
    if isinstance(node, GlobalAvgPool):
        return global_avgpool(ins[0])
    if isinstance(node, Add):
        return add(ins[0], ins[1], node)
    if isinstance(node, Flatten):
        return ins[0].reshape(ins[0].shape[0], -1)
    if isinstance(node, ReLU):
        return np.maximum(ins[0], 0)
    if isinstance(node, Clip):
        lo, hi = code_range(node.out_bits, node.out_signed)
        return np.clip(ins[0], lo, hi)
    raise TypeError(f"unknown node type {type(node).__name__}")  # pragma: no cover


# --------------------------------------------------------------------------- whole model

def run_reference(model: QuantModel, x_codes: np.ndarray, return_all: bool = False, *,
                  batch_size: int | None = None, matmul: MatMul | None = None):
    """Run the model exactly on input codes ``(N, C, H, W)`` (see :func:`input_codes`).

    Returns the output codes (int32, or int64 raw accumulators for a ``requantize=False``
    output; :meth:`QuantModel.dequantize_output` turns them into logits). With
    ``return_all=True`` returns ``(output, {node name: codes})`` including the input.
    ``batch_size`` bounds memory by running chunks of the batch.
    """
    order = model.order()
    specs = model.specs()
    inp = model.input
    _check_codes(x_codes, specs[inp.name], "x_codes")
    if batch_size is not None and batch_size < 1:
        raise InputError("batch_size", batch_size, "an integer >= 1 or None")
    n = x_codes.shape[0]
    if n == 0:   # an empty batch: empty tensors of the right shapes and dtypes
        empty = {k: np.zeros((0,) + sp.shape, np.int32 if isinstance(sp.scale, float)
                             else np.int64) for k, sp in specs.items()}
        return (empty[model.output], empty) if return_all else empty[model.output]
    step = n if batch_size is None else batch_size
    outs, alls = [], []
    for start in range(0, n, step):
        xb = np.ascontiguousarray(x_codes[start:start + step], dtype=np.int32)
        tensors = {inp.name: xb}
        users_left = {nd.name: 0 for nd in order}
        for nd in order:
            for s in nd.inputs:
                users_left[s] += 1
        for nd in order:
            if isinstance(nd, Input):
                continue
            tensors[nd.name] = run_node(nd, [tensors[s] for s in nd.inputs], matmul)
            if not return_all:   # free tensors nobody needs any more
                for s in nd.inputs:
                    users_left[s] -= 1
                    if users_left[s] == 0 and s != model.output:
                        del tensors[s]
        outs.append(tensors[model.output])
        if return_all:
            alls.append(tensors)
    out = outs[0] if len(outs) == 1 else np.concatenate(outs)
    if not return_all:
        return out
    merged = alls[0] if len(alls) == 1 else {
        k: np.concatenate([a[k] for a in alls]) for k in alls[0]}
    return out, merged


def predict(model: QuantModel, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Class predictions (argmax of the dequantised output) for uint8 images."""
    codes = run_reference(model, input_codes(model, images), batch_size=batch_size)
    return np.argmax(model.dequantize_output(codes), axis=-1)
