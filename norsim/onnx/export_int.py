"""QuantModel -> ONNX graph of integer operators, bit-exact with the integer reference.

The graph takes uint8 pixels ``(N, C, H, W)`` (input ``pixels``) and returns int32 output
codes (output ``codes``): exactly :func:`norsim.mapping.reference.run_reference` of
:func:`~norsim.mapping.reference.input_codes`. Every activation travels as int32 codes.

* input: ``BitShift`` (uint8, right, when ``bits < 8``), ``Cast`` int32, ``Sub`` the offset
  of a signed input;
* conv2d / linear: ``ConvInteger`` / ``MatMulInteger`` on uint8 codes (signed codes travel
  as ``code + 128`` with zero point 128, so padding is real zero), int8 weights, per-channel
  weight zero points as the correction term ``-z[o] * window sum`` (a second ConvInteger /
  MatMulInteger with ones: ONNX Runtime takes only a scalar ``w_zero_point``), ``Add`` int32
  bias; then the requantisation of
  docs/model-format.md section 3 in int64: ``p = t * m + 2^(n-1)``,
  ``y = (p - Mod(p, 2^n)) / 2^n`` (``Mod`` with ``fmod = 0`` takes the divisor's sign, so
  this is the flooring shift), ``Max``/``Min`` clamp, ``Cast`` int32;
* maxpool2d: ``MaxPool`` on uint8/int8 codes (float32 above 8 bits: exact below 2^24);
* avgpool2d: window sums by a depthwise float32 ``Conv`` of ones (exact: integer sums below
  2^24, checked), then ``floor((S + k//2) / k)`` in int64; global_avgpool: ``ReduceSum``
  int64 and the same division; add: both multipliers and one shift in int64;
* flatten: ``Flatten``; relu / clip: ``Max``/``Min`` int32.

The QuantModel's graph (attributes, float scales) rides along in the metadata property
``norsim.quantmodel`` so that :func:`norsim.onnx.importer.import_onnx` can rebuild the model
from the initializers (the integers) identically.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from norsim.errors import InputError
from norsim.mapping.quant_model import (Add, AvgPool2d, Clip, Conv2d, Flatten, GlobalAvgPool,
                                        Input, Linear, MatMulNode, MaxPool2d, QuantModel, ReLU)
from norsim.mapping.requant import code_range
from norsim.onnx._deps import require_onnx

OPSET = 17
META_KEY = "norsim.quantmodel"
INPUT_NAME = "pixels"
OUTPUT_NAME = "codes"
F32_EXACT = 2 ** 24


class _Builder:
    def __init__(self):
        self.onnx = require_onnx()
        self.nodes = []
        self.inits = []
        self._n = 0

    def const(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(self, op: str, inputs: list[str], out: str, prefix: str, **attrs) -> str:
        self._n += 1
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out],
                                                     name=f"{prefix}/{op}_{self._n}", **attrs))
        return out


def _floor_div(b: _Builder, p: str, d: str, pre: str) -> str:
    """floor(p / d) for int64 ``p`` and positive int64 ``d`` (exact)."""
    r = b.op("Mod", [p, d], f"{pre}:mod", pre, fmod=0)
    s = b.op("Sub", [p, r], f"{pre}:exact", pre)
    return b.op("Div", [s, d], f"{pre}:div", pre)


def _clamp(b: _Builder, x: str, lo: int, hi: int, dtype, pre: str) -> str:
    a = b.op("Max", [x, b.const(f"{pre}.lo", np.array(lo, dtype))], f"{pre}:max", pre)
    return b.op("Min", [a, b.const(f"{pre}.hi", np.array(hi, dtype))], f"{pre}:min", pre)


def _requant(b: _Builder, t32: str, m, n, lo, hi, shape, pre) -> str:
    t = b.op("Cast", [t32], f"{pre}:t64", pre, to=b.onnx.TensorProto.INT64)
    m = np.asarray(m, np.int64).reshape(shape)
    n = np.asarray(n, np.int64).reshape(shape)
    p = b.op("Mul", [t, b.const(f"{pre}.m", m)], f"{pre}:prod", pre)
    p = b.op("Add", [p, b.const(f"{pre}.r", np.left_shift(np.int64(1), n - 1))], f"{pre}:p", pre)
    y = _floor_div(b, p, b.const(f"{pre}.d", np.left_shift(np.int64(1), n)), pre)
    y = _clamp(b, y, lo, hi, np.int64, pre)
    return b.op("Cast", [y], f"{pre}:codes", pre, to=b.onnx.TensorProto.INT32)


def _to_uint8(b: _Builder, x: str, spec, pre: str) -> tuple[str, str | None]:
    """int32 codes -> (uint8 tensor, zero-point initializer or None)."""
    if spec.bits > 8:
        raise InputError(f"node {pre!r} input", f"{spec.bits}-bit codes",
                         "at most 8-bit codes into conv2d/linear for the ONNX integer export")
    if not spec.signed:
        return b.op("Cast", [x], f"{pre}:x_u8", pre, to=b.onnx.TensorProto.UINT8), None
    s = b.op("Add", [x, b.const(f"{pre}.x_off", np.array(128, np.int32))], f"{pre}:x_off", pre)
    u = b.op("Cast", [s], f"{pre}:x_u8", pre, to=b.onnx.TensorProto.UINT8)
    return u, b.const(f"{pre}.x_zp", np.array(128, np.uint8))


def _zp_correction(b: _Builder, acc: str, rowsum: str, zp, shape, pre: str) -> str:
    """``acc - z[o] * rowsum`` (the correction term of docs/model-format.md section 2)."""
    negz = b.const(f"{pre}.neg_w_zp", (-np.asarray(zp, np.int32)).reshape(shape))
    corr = b.op("Mul", [rowsum, negz], f"{pre}:zp_corr", pre)
    return b.op("Add", [acc, corr], f"{pre}:acc_zp", pre)


def _matmul(b: _Builder, nd: MatMulNode, x: str, spec) -> str:
    pre = nd.name
    xu, xzp = _to_uint8(b, x, spec, pre)
    w = np.asarray(nd.weight, np.int8)
    zp = None if nd.weight_zero_point is None else np.asarray(nd.weight_zero_point, np.int8)
    if isinstance(nd, Conv2d):
        ins = [xu, b.const(f"{pre}.W", w)]
        if xzp is not None or zp is not None:
            ins.append(xzp if xzp is not None else b.const(f"{pre}.x_zp", np.array(0, np.uint8)))
        ph, pw = nd.padding
        attrs = dict(kernel_shape=list(nd.kernel_size), strides=list(nd.stride),
                     pads=[ph, pw, ph, pw])
        acc = b.op("ConvInteger", ins, f"{pre}:acc", pre, **attrs)
        shape = (-1, 1, 1)
        if zp is not None:   # -z[o] * window sum (ORT has no per-channel w_zero_point)
            ones = b.const(f"{pre}.ones", np.ones((1,) + w.shape[1:], np.int8))
            rs = b.op("ConvInteger", [ins[0], ones] + ins[2:3], f"{pre}:rowsum", pre, **attrs)
            acc = _zp_correction(b, acc, rs, zp, shape, pre)
    else:
        ins = [xu, b.const(f"{pre}.W", np.ascontiguousarray(w.T))]
        if xzp is not None or zp is not None:
            ins.append(xzp if xzp is not None else b.const(f"{pre}.x_zp", np.array(0, np.uint8)))
        acc = b.op("MatMulInteger", ins, f"{pre}:acc", pre)
        shape = (-1,)
        if zp is not None:
            ones = b.const(f"{pre}.ones", np.ones((w.shape[1], 1), np.int8))
            rs = b.op("MatMulInteger", [ins[0], ones] + ins[2:3], f"{pre}:rowsum", pre)
            acc = _zp_correction(b, acc, rs, zp, shape, pre)
    bias = np.asarray(nd.bias, np.int32).reshape(shape)
    t = b.op("Add", [acc, b.const(f"{pre}.bias", bias)], f"{pre}:t", pre)
    if not nd.requantize:
        return t
    lo, hi = code_range(nd.out_bits, nd.out_signed)
    return _requant(b, t, nd.multiplier, nd.shift, lo, hi, shape, pre)


def _maxpool(b: _Builder, nd: MaxPool2d, x: str, spec) -> str:
    pre = nd.name
    tp = b.onnx.TensorProto
    if spec.bits <= 8:
        dt = tp.INT8 if spec.signed else tp.UINT8
    else:
        dt = tp.FLOAT
    c = b.op("Cast", [x], f"{pre}:x", pre, to=dt)
    ph, pw = nd.padding
    y = b.op("MaxPool", [c], f"{pre}:y", pre, kernel_shape=list(nd.kernel),
             strides=list(nd.stride), pads=[ph, pw, ph, pw])
    return b.op("Cast", [y], f"{pre}:codes", pre, to=tp.INT32)


def _round_div(b: _Builder, s64: str, k: int, pre: str) -> str:
    s = b.op("Add", [s64, b.const(f"{pre}.half", np.array(k // 2, np.int64))], f"{pre}:s", pre)
    y = _floor_div(b, s, b.const(f"{pre}.k", np.array(k, np.int64)), pre)
    return b.op("Cast", [y], f"{pre}:codes", pre, to=b.onnx.TensorProto.INT32)


def _avgpool(b: _Builder, nd: AvgPool2d, x: str, spec) -> str:
    pre = nd.name
    tp = b.onnx.TensorProto
    k = nd.kernel[0] * nd.kernel[1]
    if k * spec.max_abs >= F32_EXACT:
        raise InputError(f"node {pre!r} kernel", nd.kernel, "window sums below 2^24 "
                         "(ONNX integer export sums in float32)")
    c = spec.shape[0]
    f = b.op("Cast", [x], f"{pre}:xf", pre, to=tp.FLOAT)
    ones = b.const(f"{pre}.ones", np.ones((c, 1) + tuple(nd.kernel), np.float32))
    s = b.op("Conv", [f, ones], f"{pre}:sum", pre, group=c, kernel_shape=list(nd.kernel),
             strides=list(nd.stride))
    s64 = b.op("Cast", [s], f"{pre}:sum64", pre, to=tp.INT64)
    return _round_div(b, s64, k, pre)


def _global_avgpool(b: _Builder, nd: GlobalAvgPool, x: str, spec) -> str:
    pre = nd.name
    x64 = b.op("Cast", [x], f"{pre}:x64", pre, to=b.onnx.TensorProto.INT64)
    s = b.op("ReduceSum", [x64, b.const(f"{pre}.axes", np.array([2, 3], np.int64))],
             f"{pre}:sum", pre, keepdims=0)
    return _round_div(b, s, spec.shape[1] * spec.shape[2], pre)


def _add(b: _Builder, nd: Add, xa: str, xb: str) -> str:
    pre = nd.name
    tp = b.onnx.TensorProto
    a = b.op("Cast", [xa], f"{pre}:a64", pre, to=tp.INT64)
    c = b.op("Cast", [xb], f"{pre}:b64", pre, to=tp.INT64)
    pa = b.op("Mul", [a, b.const(f"{pre}.ma", np.array(nd.multiplier_a, np.int64))],
              f"{pre}:pa", pre)
    pb = b.op("Mul", [c, b.const(f"{pre}.mb", np.array(nd.multiplier_b, np.int64))],
              f"{pre}:pb", pre)
    p = b.op("Add", [pa, pb], f"{pre}:sum", pre)
    p = b.op("Add", [p, b.const(f"{pre}.r", np.array(1 << (nd.shift - 1), np.int64))],
             f"{pre}:p", pre)
    y = _floor_div(b, p, b.const(f"{pre}.d", np.array(1 << nd.shift, np.int64)), pre)
    lo, hi = code_range(nd.out_bits, nd.out_signed)
    y = _clamp(b, y, lo, hi, np.int64, pre)
    return b.op("Cast", [y], f"{pre}:codes", pre, to=tp.INT32)


def _input(b: _Builder, nd: Input) -> str:
    pre = nd.name
    x = INPUT_NAME
    if nd.bits < 8:
        x = b.op("BitShift", [x, b.const(f"{pre}.sh", np.array(8 - nd.bits, np.uint8))],
                 f"{pre}:shifted", pre, direction="RIGHT")
    x = b.op("Cast", [x], f"{pre}:x32", pre, to=b.onnx.TensorProto.INT32)
    if nd.signed:
        x = b.op("Sub", [x, b.const(f"{pre}.off", np.array(1 << (nd.bits - 1), np.int32))],
                 f"{pre}:codes", pre)
    return x


def _metadata(model: QuantModel) -> str:
    ws = {nd.name: [float(s) for s in np.asarray(nd.weight_scale, np.float64)]
          for nd in model.order() if isinstance(nd, MatMulNode)}
    return json.dumps({"graph": model.graph_dict(), "weight_scale": ws})


def build_integer_graph(model: QuantModel):
    """The ONNX ``ModelProto`` of :func:`export_integer` (not written to disk)."""
    onnx = require_onnx()
    model.validate()
    specs = model.specs()
    b = _Builder()
    t: dict[str, str] = {}
    for nd in model.order():
        ins = [t[s] for s in nd.inputs]
        sp = [specs[s] for s in nd.inputs]
        if isinstance(nd, Input):
            t[nd.name] = _input(b, nd)
        elif isinstance(nd, (Conv2d, Linear)):
            t[nd.name] = _matmul(b, nd, ins[0], sp[0])
        elif isinstance(nd, MaxPool2d):
            t[nd.name] = _maxpool(b, nd, ins[0], sp[0])
        elif isinstance(nd, AvgPool2d):
            t[nd.name] = _avgpool(b, nd, ins[0], sp[0])
        elif isinstance(nd, GlobalAvgPool):
            t[nd.name] = _global_avgpool(b, nd, ins[0], sp[0])
        elif isinstance(nd, Add):
            t[nd.name] = _add(b, nd, ins[0], ins[1])
        elif isinstance(nd, Flatten):
            t[nd.name] = b.op("Flatten", ins, f"{nd.name}:codes", nd.name, axis=1)
        elif isinstance(nd, ReLU):
            t[nd.name] = b.op("Max", [ins[0], b.const(f"{nd.name}.zero", np.array(0, np.int32))],
                              f"{nd.name}:codes", nd.name)
        elif isinstance(nd, Clip):
            lo, hi = code_range(nd.out_bits, nd.out_signed)
            t[nd.name] = _clamp(b, ins[0], lo, hi, np.int32, nd.name)
        else:  # pragma: no cover - NODE_TYPES is closed
            raise InputError("node", nd.OP, "a QuantModel op")
    b.op("Identity", [t[model.output]], OUTPUT_NAME, "output")
    c, h, w = model.input.shape
    tp = onnx.TensorProto
    g = onnx.helper.make_graph(
        b.nodes, model.name or "norsim",
        [onnx.helper.make_tensor_value_info(INPUT_NAME, tp.UINT8, ["N", c, h, w])],
        [onnx.helper.make_tensor_value_info(OUTPUT_NAME, tp.INT32, ["N"] + [None] * (len(model.output_spec.shape)))],
        initializer=b.inits)
    m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                               producer_name="norsim")
    m.ir_version = 8
    onnx.helper.set_model_props(m, {META_KEY: _metadata(model)})
    onnx.checker.check_model(m)
    return m


def export_integer(model: QuantModel, path: str | Path | None = None):
    """Write ``model`` as an ONNX integer graph to ``path`` (if given); return the
    ``ModelProto``. Input ``pixels`` uint8 NCHW, output ``codes`` int32."""
    m = build_integer_graph(model)
    if path is not None:
        Path(path).write_bytes(m.SerializeToString())
    return m
