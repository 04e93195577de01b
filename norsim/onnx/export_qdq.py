"""QuantModel -> ONNX QDQ graph (float operators between QuantizeLinear/DequantizeLinear).

The second, portable export: any QDQ-aware runtime or compiler reads it. Input ``x`` is the
float image ``pixel / 255`` (NCHW), quantised by ``QuantizeLinear`` (scale 1/255, uint8);
weights are ``DequantizeLinear`` of INT4/INT8 initializers (per-channel scales and zero
points, axis 0), biases ``DequantizeLinear`` of int32 at ``s_x * s_w``; every requantised
output is ``QuantizeLinear`` to the smallest integer type that holds
it: activations INT8/UINT8/INT16/UINT16 after a float ``Clip`` to the code range when the
width is not 8 or 16 (ONNX Runtime 1.32 mis-fuses UINT4 activations), weights INT4/INT8;
then ``DequantizeLinear``.
Opset 21 (INT4 types).

**Agreement:** ONNX Runtime computes the convolutions in float32 and rounds half to even, the
format in fixed point and half up, so output codes agree with the integer reference within
one step (bit-exact away from ties); :func:`norsim.onnx.export_int.export_integer` is the
bit-exact export. Only the default input (8-bit unsigned pixels) is expressible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from norsim.errors import InputError
from norsim.mapping.quant_model import (Add, AvgPool2d, Clip, Conv2d, Flatten, GlobalAvgPool,
                                        Input, Linear, MatMulNode, MaxPool2d, QuantModel, ReLU)
from norsim.mapping.requant import code_range
from norsim.onnx._deps import require_onnx
from norsim.onnx.export_int import _Builder

OPSET = 21
INPUT_NAME = "x"
OUTPUT_NAME = "y"
#: activation containers; ONNX Runtime 1.32 mis-fuses UINT4 activations into MaxPool, so
#: 4-bit activations travel as uint8/int8 after a float Clip
ACT_WIDTHS = (8, 16)


def _qtype(onnx, bits: int, signed: bool, widths=(4, 8, 16)):
    tp = onnx.TensorProto
    table = {4: (tp.INT4, tp.UINT4), 8: (tp.INT8, tp.UINT8), 16: (tp.INT16, tp.UINT16)}
    for width in widths:
        s_t, u_t = table[width]
        if bits <= width:
            return width, (s_t if signed else u_t)
    raise InputError("out_bits", bits, "at most 16 bits")


def _zero(onnx, dtype_enum, name: str, shape=()):
    return onnx.helper.make_tensor(name, dtype_enum, list(shape),
                                   [0] * int(np.prod(shape, dtype=np.int64)))


class _QDQ(_Builder):
    def typed(self, name: str, dtype_enum, arr: np.ndarray) -> str:
        arr = np.asarray(arr)
        self.inits.append(self.onnx.helper.make_tensor(name, dtype_enum, list(arr.shape),
                                                       arr.reshape(-1).tolist()))
        return name

    def qdq(self, x: str, scale: float, bits: int, signed: bool, pre: str) -> str:
        """Quantise a float tensor to ``bits``/``signed`` codes at ``scale``, dequantise."""
        width, dt = _qtype(self.onnx, bits, signed, ACT_WIDTHS)
        lo, hi = code_range(bits, signed)
        if width != bits:
            x = self.op("Clip", [x, self.const(f"{pre}.clip_lo", np.array(lo * scale, np.float32)),
                                 self.const(f"{pre}.clip_hi", np.array(hi * scale, np.float32))],
                        f"{pre}:clipped", pre)
        s = self.const(f"{pre}.y_scale", np.array(scale, np.float32))
        self.inits.append(_zero(self.onnx, dt, f"{pre}.y_zp"))
        q = self.op("QuantizeLinear", [x, s, f"{pre}.y_zp"], f"{pre}:q", pre)
        return self.op("DequantizeLinear", [q, s, f"{pre}.y_zp"], f"{pre}:dq", pre)


def _matmul(b: _QDQ, nd: MatMulNode, x: str, s_x: float) -> str:
    pre = nd.name
    tp = b.onnx.TensorProto
    bits = int(nd.weight_bits)
    _, wt = _qtype(b.onnx, bits, True)
    w = np.asarray(nd.weight, np.int64)
    if isinstance(nd, Linear):
        w = w.T   # MatMul weight (Cin, Cout), quantization axis 1
    axis = 0 if isinstance(nd, Conv2d) else 1
    sw = np.asarray(nd.weight_scale, np.float32)
    zp = (np.zeros(nd.out_channels, np.int64) if nd.weight_zero_point is None
          else np.asarray(nd.weight_zero_point, np.int64))
    b.typed(f"{pre}.W", wt, w)
    b.typed(f"{pre}.w_zp", wt, zp)
    wdq = b.op("DequantizeLinear", [f"{pre}.W", b.const(f"{pre}.w_scale", sw), f"{pre}.w_zp"],
               f"{pre}:w", pre, axis=axis)
    bscale = (np.float64(s_x) * np.asarray(nd.weight_scale)).astype(np.float32)
    b.typed(f"{pre}.bias_q", tp.INT32, np.asarray(nd.bias, np.int64))
    bdq = b.op("DequantizeLinear", [f"{pre}.bias_q", b.const(f"{pre}.b_scale", bscale)],
               f"{pre}:b", pre, axis=0)
    if isinstance(nd, Conv2d):
        ph, pw = nd.padding
        y = b.op("Conv", [x, wdq, bdq], f"{pre}:y", pre, kernel_shape=list(nd.kernel_size),
                 strides=list(nd.stride), pads=[ph, pw, ph, pw])
    else:
        y = b.op("MatMul", [x, wdq], f"{pre}:mm", pre)
        y = b.op("Add", [y, bdq], f"{pre}:y", pre)
    if not nd.requantize:
        return y
    return b.qdq(y, float(nd.out_scale), int(nd.out_bits), bool(nd.out_signed), pre)


def build_qdq_graph(model: QuantModel):
    """The ONNX ``ModelProto`` of :func:`export_qdq`."""
    onnx = require_onnx()
    model.validate()
    specs = model.specs()
    inp = model.input
    if inp.bits != 8 or inp.signed:
        raise InputError("input node", f"bits={inp.bits}, signed={inp.signed}",
                         "8-bit unsigned pixels for the QDQ export (use export_integer)")
    b = _QDQ()
    t: dict[str, str] = {}
    for nd in model.order():
        sp = [specs[s] for s in nd.inputs]
        ins = [t[s] for s in nd.inputs]
        if isinstance(nd, Input):
            t[nd.name] = b.qdq(INPUT_NAME, float(nd.scale), 8, False, nd.name)
        elif isinstance(nd, (Conv2d, Linear)):
            t[nd.name] = _matmul(b, nd, ins[0], sp[0].scale)
        elif isinstance(nd, MaxPool2d):
            ph, pw = nd.padding
            t[nd.name] = b.op("MaxPool", ins, f"{nd.name}:y", nd.name,
                              kernel_shape=list(nd.kernel), strides=list(nd.stride),
                              pads=[ph, pw, ph, pw])
        elif isinstance(nd, AvgPool2d):
            y = b.op("AveragePool", ins, f"{nd.name}:y", nd.name,
                     kernel_shape=list(nd.kernel), strides=list(nd.stride))
            t[nd.name] = b.qdq(y, sp[0].scale, sp[0].bits, sp[0].signed, nd.name)
        elif isinstance(nd, GlobalAvgPool):
            y = b.op("GlobalAveragePool", ins, f"{nd.name}:y4", nd.name)
            y = b.op("Flatten", [y], f"{nd.name}:y", nd.name, axis=1)
            t[nd.name] = b.qdq(y, sp[0].scale, sp[0].bits, sp[0].signed, nd.name)
        elif isinstance(nd, Add):
            y = b.op("Add", ins, f"{nd.name}:y", nd.name)
            t[nd.name] = b.qdq(y, float(nd.out_scale), int(nd.out_bits), bool(nd.out_signed),
                               nd.name)
        elif isinstance(nd, Flatten):
            t[nd.name] = b.op("Flatten", ins, f"{nd.name}:y", nd.name, axis=1)
        elif isinstance(nd, ReLU):
            t[nd.name] = b.op("Relu", ins, f"{nd.name}:y", nd.name)
        elif isinstance(nd, Clip):
            lo, hi = code_range(nd.out_bits, nd.out_signed)
            s = sp[0].scale
            t[nd.name] = b.op("Clip", [ins[0], b.const(f"{nd.name}.lo", np.array(lo * s, np.float32)),
                                       b.const(f"{nd.name}.hi", np.array(hi * s, np.float32))],
                              f"{nd.name}:y", nd.name)
    b.op("Identity", [t[model.output]], OUTPUT_NAME, "output")
    c, h, w = inp.shape
    tp = onnx.TensorProto
    g = onnx.helper.make_graph(
        b.nodes, model.name or "norsim",
        [onnx.helper.make_tensor_value_info(INPUT_NAME, tp.FLOAT, ["N", c, h, w])],
        [onnx.helper.make_tensor_value_info(OUTPUT_NAME, tp.FLOAT,
                                            ["N"] + [None] * len(model.output_spec.shape))],
        initializer=b.inits)
    m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                               producer_name="norsim")
    m.ir_version = 10
    onnx.checker.check_model(m)
    return m


def export_qdq(model: QuantModel, path: str | Path | None = None):
    """Write ``model`` as a QDQ graph to ``path`` (if given); return the ``ModelProto``.
    Input ``x`` float32 ``pixel / 255`` NCHW, output ``y`` float (real values: logits)."""
    m = build_qdq_graph(model)
    if path is not None:
        Path(path).write_bytes(m.SerializeToString())
    return m
