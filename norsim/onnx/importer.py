"""ONNX -> QuantModel: QDQ (QuantizeLinear/DequantizeLinear, int8/uint8/int4/uint4),
QLinearConv/QLinearMatMul and QONNX ``Quant`` graphs, and norsim's own integer graphs.

The walk is symbolic: every ONNX tensor becomes one of

* :class:`Const` (an initializer or ``Constant``),
* :class:`QConst` (integer weight/bias codes with scale and zero point: ``DequantizeLinear``
  or ``Quant`` of an initializer),
* :class:`Act` (a quantised activation that a norsim node produces; ``dq`` says whether the
  ONNX tensor holds the real values or the integer codes ``q``),
* :class:`Pending` (the float result of a conv/gemm/add that waits for its output
  quantiser; ReLU, Clip, MaxPool and Flatten in between are recorded, since max pooling and
  flattening commute with a monotone quantiser),
* the float graph input (pixels / 255).

**Activation zero points** are converted exactly: a tensor quantised with scale ``s`` and
zero point ``z`` becomes norsim codes ``c = q - z`` with the same scale (real value
``(q - z) s = c s``); the producer's clamp ``[lo_q - z, hi_q - z]`` (narrowed by a fused
ReLU or Clip) must then be the range of some ``b``-bit code, signed or unsigned, else the
import stops with the tensor's name. **Rounding:** the imported model rounds half up (the
format's rule); ONNX's QuantizeLinear rounds half to even and computes in float32, so
imported QDQ/QONNX models agree with ONNX Runtime / qonnx within one output step, bit-exact
away from ties. norsim's own integer graphs (:mod:`norsim.onnx.export_int`) import
identically. Float biases are rounded to the accumulator scale ``s_x * s_w`` (half an
accumulator step, docs/model-format.md section 6).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from norsim.errors import FileFormatError
from norsim.mapping.quant_model import (Add, AvgPool2d, Clip, Conv2d, Flatten, GlobalAvgPool,
                                        Input, Linear, MaxPool2d, QuantModel, ReLU)
from norsim.mapping.requant import quantize_multipliers
from norsim.onnx._deps import require_onnx
from norsim.onnx.loader import QONNX_DOMAINS, check_opsets, load_model, to_array

SCALE_RTOL = 1e-5      #: two float32 scales are "the same" within this relative tolerance
PIXEL_SCALE = 1.0 / 255.0

DYNAMIC_OPS = {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear",
               "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}
PASS_OPS = {"Identity", "Dropout"}


@dataclass
class Const:
    arr: np.ndarray


@dataclass
class QConst:
    codes: np.ndarray          # int64
    scale: np.ndarray          # float64, broadcastable to codes
    zp: np.ndarray             # int64, broadcastable to codes
    axis: int | None           # quantisation axis (None: per tensor)
    bits: int
    signed: bool


@dataclass
class Act:
    node: str
    scale: float
    zp: int
    dq: bool
    rank: int                  # ONNX rank (4: NCHW, 2: NF)
    vec: bool = False          # a norsim vector with a 4-D ONNX shape (N, C, 1, 1)
    signed: bool = False
    bits: int = 8


@dataclass
class InputF:
    rank: int = 4


@dataclass
class Pending:
    kind: str                  # "conv" | "linear" | "add"
    onnx_node: str
    data: dict
    relu: bool = False
    clip: tuple | None = None
    post: list = field(default_factory=list)   # ("maxpool", attrs) | ("flatten", {})
    rank: int = 4


def _fail(nd, why: str) -> FileFormatError:
    return FileFormatError(f"node {nd.name or '?'!r} ({nd.op_type}): {why}")


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= SCALE_RTOL * max(abs(a), abs(b))


def _code_spec(lo: int, hi: int):
    """(bits, signed) whose code range is exactly [lo, hi], or None."""
    if lo == 0 and hi >= 1 and (hi + 1) & hi == 0:
        return int(hi).bit_length(), False
    if lo < 0 and hi == -lo - 1 and (-lo) & (-lo - 1) == 0:
        return int(-lo).bit_length(), True
    return None


def _qrange(bits: int, signed: bool, narrow: bool = False) -> tuple[int, int]:
    if signed:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return (lo + 1 if narrow else lo), hi
    return 0, (1 << bits) - 1 - (1 if narrow else 0)


def _dtype_range(onnx, dt: int):
    tp = onnx.TensorProto
    table = {tp.INT8: (8, True), tp.UINT8: (8, False), tp.INT16: (16, True),
             tp.UINT16: (16, False), tp.INT4: (4, True), tp.UINT4: (4, False),
             tp.INT32: (32, True)}
    return table.get(dt)


class Importer:
    def __init__(self, model, where: str, input_shape=None):
        self.onnx = require_onnx()
        self.m = model
        self.g = model.graph
        self.where = where
        self.opset = check_opsets(model, where)
        self.vals: dict[str, object] = {}
        self.nodes: list = []
        self.names: set[str] = set()
        self.input_shape = input_shape
        self.has_input_node = False
        self.bias_rounding: dict = {}
        self.notes: dict[str, float] = {}

    # ----------------------------------------------------------------- helpers
    def name(self, nd, fallback: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", (nd.name or fallback)).strip("_.") or fallback
        n, i = base, 1
        while n in self.names or n == "input":
            i += 1
            n = f"{base}_{i}"
        self.names.add(n)
        return n

    def add_node(self, node) -> str:
        self.nodes.append(node)
        return node.name

    def val(self, nd, i: int):
        if i >= len(nd.input) or not nd.input[i]:
            return None
        v = self.vals.get(nd.input[i])
        if v is None:
            raise _fail(nd, f"input {nd.input[i]!r} has no value")
        return v

    def const(self, nd, i: int, what: str) -> np.ndarray:
        v = self.val(nd, i)
        if v is None:
            return None
        if not isinstance(v, Const):
            raise _fail(nd, f"{what} ({nd.input[i]!r}) must be a constant initializer")
        return v.arr

    def attrs(self, nd) -> dict:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in nd.attribute}

    def scalar_scale(self, nd, s, what="scale") -> float:
        s = np.asarray(s, np.float64).reshape(-1)
        if s.size != 1 or not np.isfinite(s[0]) or s[0] <= 0:
            raise _fail(nd, f"{what} = {s.tolist()[:4]}: expected one positive scale per "
                            f"activation tensor (per-channel activation scales are not "
                            f"representable)")
        return float(s[0])

    # ----------------------------------------------------------------- entry
    def run(self) -> QuantModel:
        from norsim.onnx.loader import check_acyclic

        for t in self.g.initializer:
            self.vals[t.name] = Const(to_array(t, self.where))
        inits = {t.name for t in self.g.initializer}
        ins = [v for v in self.g.input if v.name not in inits]
        if len(ins) != 1:
            raise FileFormatError(f"{self.where}: expected one graph input (the image), found "
                                  f"{[v.name for v in ins]}")
        self.input_info = ins[0]
        self.input_shape = self._input_shape(ins[0])
        self.vals[ins[0].name] = InputF()
        for nd in check_acyclic(self.g, self.where):
            self.visit(nd)
        if len(self.g.output) != 1:
            raise FileFormatError(f"{self.where}: expected one graph output, found "
                                  f"{len(self.g.output)}")
        out = self.finish(self.g.output[0].name)
        model = QuantModel(self.nodes, out, name=self.g.name or "onnx-import",
                           metadata={"source": "onnx", "onnx_file": Path(self.where).name,
                                     "float_bias_rounding_output_steps": self.notes})
        try:
            return model.validate()
        except FileFormatError as exc:
            raise FileFormatError(f"{self.where}: imported graph is not a valid QuantModel: "
                                  f"{exc}") from None

    def _input_shape(self, vi):
        tt = vi.type.tensor_type
        if tt.elem_type not in (self.onnx.TensorProto.FLOAT, self.onnx.TensorProto.FLOAT16,
                                self.onnx.TensorProto.DOUBLE):
            raise FileFormatError(f"{self.where}: input {vi.name!r} has element type "
                                  f"{tt.elem_type}: expected float (pixel / 255)")
        dims = list(tt.shape.dim) if tt.HasField("shape") else []
        self.batch = dims[0].dim_value if dims and dims[0].HasField("dim_value") else -1
        if self.input_shape is not None:
            return tuple(int(d) for d in self.input_shape)
        if len(dims) != 4:
            raise FileFormatError(f"{self.where}: input {vi.name!r} has rank {len(dims)}: "
                                  f"expected (N, C, H, W) (or pass input_shape=(C, H, W))")
        out = []
        for k, d in zip("CHW", dims[1:]):
            if not d.HasField("dim_value") or d.dim_value < 1:
                raise FileFormatError(f"{self.where}: input {vi.name!r}: dimension {k} is "
                                      f"dynamic ({d.dim_param or '?'}): unresolvable; pass "
                                      f"input_shape=(C, H, W)")
            out.append(int(d.dim_value))
        return tuple(out)

    # ----------------------------------------------------------------- ops
    def visit(self, nd):
        op = nd.op_type
        if nd.domain in QONNX_DOMAINS and op == "Quant":
            return self.set(nd, self.quant_qonnx(nd))
        if nd.domain not in ("", "ai.onnx"):
            raise _fail(nd, f"custom domain {nd.domain!r} is not supported")
        if op in DYNAMIC_OPS:
            raise _fail(nd, "dynamic quantization (activation scales computed at run time) "
                            "cannot be represented: quantize statically (QDQ or QLinear)")
        fn = getattr(self, f"op_{op}", None)
        if fn is None:
            raise _fail(nd, "operator not supported by the norsim importer (see docs/onnx.md)")
        self.set(nd, fn(nd))

    def set(self, nd, v):
        self.vals[nd.output[0]] = v

    def op_Constant(self, nd):
        t = self.onnx.helper.get_attribute_value(nd.attribute[0])
        if not isinstance(t, self.onnx.TensorProto):
            raise _fail(nd, "only tensor-valued Constant nodes are supported")
        return Const(to_array(t, self.where))

    def op_Identity(self, nd):
        return self.val(nd, 0)

    op_Dropout = op_Identity

    # -- quantisers
    def op_QuantizeLinear(self, nd):
        x = self.val(nd, 0)
        zt = self.val(nd, 2)
        a = self.attrs(nd)
        dt = a.get("output_dtype", 0)
        if zt is not None:
            z_arr = zt.arr
            dt = self._zp_dtype(nd, 2)
        else:
            z_arr = np.zeros(1)
            dt = dt or self.onnx.TensorProto.UINT8
        rng = _dtype_range(self.onnx, dt)
        if isinstance(x, Const):   # float weights quantized in the graph: the spec's rounding
            if rng is None or rng[0] > 8:
                raise _fail(nd, f"weight type {dt}: expected int8/uint8/int4/uint4")
            return self.quantize_const(nd, x, rng)
        s = self.scalar_scale(nd, self.const(nd, 1, "y_scale"))
        if rng is None or rng[0] > 16:
            raise _fail(nd, f"output type {dt} is not an integer type of <= 16 bits")
        z = np.asarray(z_arr).reshape(-1)
        if z.size != 1:
            raise _fail(nd, "per-channel activation zero points are not representable")
        lo, hi = _qrange(*rng)
        return self.quantize(nd, x, s, int(z[0]), lo, hi, "half-even")

    def quantize_const(self, nd, x: Const, rng) -> QConst:
        """QuantizeLinear of a float initializer: ``saturate(rint(x / s) + z)`` (half to
        even, float32 as the operator computes); DequantizeLinear then passes it on."""
        s = np.asarray(self.const(nd, 1, "y_scale"), np.float32)
        z = self.const(nd, 2, "y_zero_point")
        z = np.zeros(1, np.int64) if z is None else np.asarray(z, np.int64)
        xf = np.asarray(x.arr, np.float32)
        axis = None
        if s.size > 1:
            axis = int(self.attrs(nd).get("axis", 1)) % xf.ndim
            shape = [1] * xf.ndim
            shape[axis] = -1
            sb, zb = s.reshape(shape), z.reshape(shape) if z.size > 1 else z
        else:
            sb, zb = s.reshape(-1)[0], z.reshape(-1)[0]
        if np.any(s <= 0) or not np.all(np.isfinite(s)):
            raise _fail(nd, "every scale must be finite and > 0")
        lo, hi = _qrange(*rng)
        codes = np.clip(np.rint(xf / sb) + zb, lo, hi).astype(np.int64)
        return QConst(codes, s.astype(np.float64).reshape(-1) if axis is not None
                      else s.astype(np.float64), z, axis, *rng)

    def _zp_dtype(self, nd, i):
        name = nd.input[i]
        for t in self.g.initializer:
            if t.name == name:
                return t.data_type
        for n2 in self.g.node:
            if n2.op_type == "Constant" and n2.output[0] == name:
                return n2.attribute[0].t.data_type
        raise _fail(nd, f"zero point {name!r} must be an initializer")

    def op_DequantizeLinear(self, nd):
        x = self.val(nd, 0)
        s = np.asarray(self.const(nd, 1, "x_scale"), np.float64)
        z = self.const(nd, 2, "x_zero_point")
        if isinstance(x, QConst):   # DequantizeLinear(QuantizeLinear(float initializer))
            return x
        if isinstance(x, Const):
            dt = None
            for t in self.g.initializer:
                if t.name == nd.input[0]:
                    dt = t.data_type
            if dt is None:
                for n2 in self.g.node:
                    if n2.op_type == "Constant" and n2.output[0] == nd.input[0]:
                        dt = n2.attribute[0].t.data_type
            rng = _dtype_range(self.onnx, dt)
            if rng is None:
                raise _fail(nd, f"x ({nd.input[0]!r}) has data type {dt}: expected an "
                                f"integer initializer")
            axis = self.attrs(nd).get("axis", 1) if s.size > 1 else None
            if self.attrs(nd).get("block_size", 0):
                raise _fail(nd, "blocked quantization (block_size) is not representable")
            return QConst(np.asarray(x.arr, np.int64), s, np.zeros(1, np.int64) if z is None
                          else np.asarray(z, np.int64), axis, rng[0], rng[1])
        if isinstance(x, Act):
            sc = self.scalar_scale(nd, s, "x_scale")
            zz = 0 if z is None else int(np.asarray(z).reshape(-1)[0])
            if x.dq:
                raise _fail(nd, "input is already dequantized")
            if not _same(sc, x.scale) or zz != x.zp:
                raise _fail(nd, f"scale {sc:.9g} / zero point {zz} differ from the "
                                f"QuantizeLinear that produced {nd.input[0]!r} "
                                f"({x.scale:.9g} / {x.zp})")
            return Act(**{**x.__dict__, "dq": True})
        raise _fail(nd, f"input {nd.input[0]!r} is not quantized codes")

    def quant_qonnx(self, nd):
        a = self.attrs(nd)
        signed = bool(a.get("signed", 1))
        narrow = bool(a.get("narrow", 0))
        mode = a.get("rounding_mode", "ROUND")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        bw = np.asarray(self.const(nd, 3, "bit_width"), np.float64).reshape(-1)
        top = 32 if isinstance(self.val(nd, 0), Const) else 16   # int32 biases
        if bw.size != 1 or bw[0] != int(bw[0]) or not 2 <= bw[0] <= top:
            raise _fail(nd, f"bit_width = {bw.tolist()}: expected one integer in 2..{top}")
        bits = int(bw[0])
        s = np.asarray(self.const(nd, 1, "scale"), np.float64)
        z = np.asarray(self.const(nd, 2, "zeropt"), np.float64)
        if np.any(z != np.round(z)):
            raise _fail(nd, "non-integer zero point is not representable")
        lo, hi = _qrange(bits, signed, narrow)
        x = self.val(nd, 0)
        if isinstance(x, Const):
            xf = np.asarray(x.arr, np.float32)
            # the spec's arithmetic: round(x / scale + zeropt) in the tensor's float type
            v = xf / np.asarray(s, np.float32) + np.asarray(z, np.float32)
            q = {"ROUND": np.rint, "FLOOR": np.floor, "CEIL": np.ceil,
                 "ROUND_TO_ZERO": np.trunc}.get(mode.upper())
            if q is None:
                raise _fail(nd, f"rounding_mode {mode!r}: expected ROUND, FLOOR, CEIL or "
                                f"ROUND_TO_ZERO")
            codes = np.clip(q(v), lo, hi).astype(np.int64)
            axis = None
            if s.size > 1:
                nz = [i for i, d in enumerate(s.shape) if d > 1]
                axis = nz[0] - s.ndim + xf.ndim if len(nz) == 1 else -99
            return QConst(codes, s, z.astype(np.int64), axis, bits, signed)
        if mode.upper() != "ROUND":
            raise _fail(nd, f"rounding_mode {mode!r} on an activation: only ROUND (half to "
                            f"even; imported as half up, within one step) is representable")
        sc = self.scalar_scale(nd, s)
        zz = z.reshape(-1)
        if zz.size != 1:
            raise _fail(nd, "per-channel activation zero points are not representable")
        q = self.quantize(nd, x, sc, int(zz[0]), lo, hi, "half-even")
        return Act(**{**q.__dict__, "dq": True})

    def quantize(self, nd, x, s: float, z: int, lo_q: int, hi_q: int, rounding: str) -> Act:
        lo, hi = lo_q - z, hi_q - z
        if isinstance(x, InputF):
            if not _same(s, PIXEL_SCALE) or lo > 0 or hi < 255:
                raise _fail(nd, f"input quantizer scale {s:.9g}, codes [{lo_q}, {hi_q}], zero "
                                f"point {z}: expected scale 1/255 with all 256 pixel values "
                                f"representable (the norsim input node takes uint8 pixels)")
            if self.has_input_node:
                raise _fail(nd, "the image is quantized twice")
            self.has_input_node = True
            self.add_node(Input("input", [], shape=self.input_shape, bits=8, signed=False,
                                scale=float(s)))
            return Act("input", float(s), z, False, 4, bits=8, signed=False)
        if isinstance(x, Act):
            if not x.dq:
                raise _fail(nd, "input is already quantized")
            if not _same(s, x.scale) or (lo > _lo(x)) or (hi < _hi(x)):
                raise _fail(nd, f"requantizes {nd.input[0]!r} from scale {x.scale:.9g} to "
                                f"{s:.9g} (codes [{lo}, {hi}]) outside a conv/gemm/add: not "
                                f"representable")
            return Act(**{**x.__dict__, "dq": False, "zp": z})
        if isinstance(x, Pending):
            return self.materialize(nd, x, s, z, lo, hi)
        raise _fail(nd, f"cannot quantize {nd.input[0]!r} ({type(x).__name__})")

    # -- materialisation of a pending conv/gemm/add
    def materialize(self, nd, p: Pending, s_y: float, z: int, lo: int, hi: int) -> Act:
        if p.relu:
            lo = max(lo, 0)
        if p.clip is not None:
            a, b = p.clip
            if a is not None:
                lo = max(lo, int(np.rint(a / s_y)))
            if b is not None:
                hi = min(hi, int(np.rint(b / s_y)))
        spec = _code_spec(lo, hi)
        if spec is None:
            raise _fail(nd, f"output codes of {p.onnx_node!r} are clamped to [{lo}, {hi}] "
                            f"(scale {s_y:.9g}, zero point {z}): not the range of a b-bit code; "
                            f"use zero point 0 (symmetric) or 2^(b-1) (unsigned with an "
                            f"offset) activations")
        bits, signed = spec
        name = self.build(p, out=(bits, signed, s_y))
        rank, vec = p.rank, p.data.get("vec", False)
        name, rank, vec = self.apply_post(p, name, rank, vec)
        return Act(name, s_y, z, False, rank, vec=vec, signed=signed, bits=bits)

    def apply_post(self, p: Pending, name: str, rank: int, vec: bool):
        for kind, at in p.post:
            if kind == "maxpool":
                name = self.add_node(MaxPool2d(self.fresh(f"{name}_pool"), [name], **at))
            elif kind == "flatten" and not vec:
                name = self.add_node(Flatten(self.fresh(f"{name}_flatten"), [name]))
                rank, vec = 2, False
            elif kind == "flatten":
                rank, vec = 2, False
        return name, rank, vec

    def fresh(self, base: str) -> str:
        n, i = base, 1
        while n in self.names:
            i += 1
            n = f"{base}_{i}"
        self.names.add(n)
        return n

    def build(self, p: Pending, out) -> str:
        d = p.data
        if p.kind == "add":
            a, b = d["a"], d["b"]
            bits, signed, s_y = out
            node = Add.from_scales(d["name"], [a.node, b.node], a.scale, b.scale, s_y,
                                   out_bits=bits, out_signed=signed)
            return self.add_node(node)
        x: Act = d["x"]
        w, zp, s_w, bias = self.weights(p)
        kw = dict(weight=w, bias=bias, weight_scale=s_w, weight_zero_point=zp,
                  weight_bits=d["wbits"])
        resid, acc_scale = self.bias_rounding.pop(d["name"])
        if out is None:
            kw.update(requantize=False, out_bits=8, out_signed=True, out_scale=1.0)
            steps = float(resid.max(initial=0.0))
        else:
            bits, signed, s_y = out
            steps = float((resid * acc_scale / s_y).max(initial=0.0))
        if steps > 0:   # reported in the model's metadata and by `norsim import`
            self.notes[d["name"]] = steps
        if out is not None:
            m, n = quantize_multipliers(x.scale * s_w / s_y)
            kw.update(multiplier=m.astype(np.int32), shift=n.astype(np.int32), out_bits=bits,
                      out_signed=signed, out_scale=float(s_y), requantize=True)
        if p.kind == "conv":
            node = Conv2d(d["name"], [x.node], stride=d["stride"], padding=d["padding"], **kw)
        else:
            node = Linear(d["name"], [x.node], **kw)
        return self.add_node(node)

    def weights(self, p: Pending):
        """int8 codes, zero points, per-channel scales and int32 bias of a pending conv/gemm
        (with a following BatchNormalization folded into scales and bias)."""
        d = p.data
        q: QConst = d["w"]
        x: Act = d["x"]
        codes = q.codes
        cout = codes.shape[0]
        s_w = _per_channel(q.scale, q.axis, cout, d["nd"], "weight scale")
        zp = _per_channel(q.zp, q.axis, cout, d["nd"], "weight zero point").astype(np.int64)
        bits = q.bits
        if not q.signed:   # unsigned codes: shift into the signed range, zero points too
            off = 1 << (bits - 1)
            codes, zp = codes - off, zp - off
        if not 2 <= bits <= 8:
            raise _fail(d["nd"], f"{bits}-bit weights: the format holds 2..8-bit weights")
        w_real_bias = np.zeros(cout)
        bias_codes = None
        b = d.get("bias")
        acc_scale = x.scale * s_w
        if isinstance(b, QConst):
            bs = _per_channel(b.scale, 0 if b.scale.size > 1 else None, cout, d["nd"],
                              "bias scale")
            if np.any(b.zp != 0):
                raise _fail(d["nd"], "bias with a non-zero zero point")
            bc = b.codes.reshape(-1).astype(np.int64)
            if np.allclose(bs, acc_scale, rtol=SCALE_RTOL, atol=0):
                bias_codes = bc
            else:
                w_real_bias = bc * bs
        elif b is not None:
            w_real_bias = np.asarray(b, np.float64).reshape(-1)
            if w_real_bias.size != cout:
                raise _fail(d["nd"], f"bias has {w_real_bias.size} values, {cout} channels")
        for gamma_eff, beta_eff in d.get("bn", []):
            neg = gamma_eff < 0
            if np.any(gamma_eff == 0):
                raise _fail(d["nd"], "BatchNormalization with a zero scale")
            if np.any(neg):
                codes = np.where(neg.reshape((-1,) + (1,) * (codes.ndim - 1)), -codes, codes)
                zp = np.where(neg, -zp, zp)
            g = np.abs(gamma_eff)
            if bias_codes is not None:   # exact codes stay; the BN shift is rounded
                bias_codes = (np.where(neg, -bias_codes, bias_codes)
                              + np.rint(beta_eff / (acc_scale * g)).astype(np.int64))
            else:
                w_real_bias = gamma_eff * w_real_bias + beta_eff
            s_w = s_w * g
            acc_scale = x.scale * s_w
        if bias_codes is None:
            bias_codes = np.rint(w_real_bias / acc_scale).astype(np.int64)
        elif np.any(w_real_bias):
            bias_codes = bias_codes + np.rint(w_real_bias / acc_scale).astype(np.int64)
        # what rounding a float bias to the accumulator scale left out, in accumulator steps
        resid = np.abs(w_real_bias / acc_scale - np.rint(w_real_bias / acc_scale))
        self.bias_rounding[d["name"]] = (resid, acc_scale)
        lo_w = -(1 << (bits - 1))
        hi_w = (1 << (bits - 1)) - 1
        if codes.min(initial=0) < lo_w or codes.max(initial=0) > hi_w:
            raise _fail(d["nd"], f"weight codes outside the {bits}-bit range")
        use_zp = bool(np.any(zp != 0)) or codes.min(initial=0) < -hi_w
        if np.any(np.abs(bias_codes) >= 2 ** 31):
            raise _fail(d["nd"], "bias does not fit int32 at the accumulator scale")
        return (codes.astype(np.int8), zp.astype(np.int8) if use_zp else None,
                s_w.astype(np.float64), bias_codes.astype(np.int32))

    def _need_act(self, nd, x, rank=None, what="input") -> Act:
        if not isinstance(x, Act) or not x.dq:
            raise _fail(nd, f"{what} {nd.input[0]!r} is not a dequantized activation "
                            f"(expected DequantizeLinear/Quant before this op)")
        if rank is not None and (x.rank != rank or (rank == 4 and x.vec)):
            raise _fail(nd, f"{what} has rank {2 if x.vec else x.rank}, expected {rank}")
        return x

    def _weight(self, nd, i, what="weight") -> QConst:
        w = self.val(nd, i)
        if isinstance(w, Const):
            raise _fail(nd, f"{what} {nd.input[i]!r} is a float initializer: expected "
                            f"quantized weights (DequantizeLinear or Quant of an integer/float "
                            f"initializer)")
        if not isinstance(w, QConst):
            raise _fail(nd, f"{what} {nd.input[i]!r} is not a constant")
        return w

    def op_Conv(self, nd):
        x = self._need_act(nd, self.val(nd, 0), 4)
        w = self._weight(nd, 1)
        if w.codes.ndim != 4:
            raise _fail(nd, f"weight rank {w.codes.ndim}: expected a 2-D convolution")
        if w.axis not in (None, 0):
            raise _fail(nd, f"weight quantization axis {w.axis}: expected 0 (output channels)")
        b = self.val(nd, 2)
        stride, padding = self.conv_attrs(nd, w.codes.shape[2:])
        return Pending("conv", nd.name, {"x": x, "w": w, "bias": _bias_value(nd, b),
                                         "stride": stride, "padding": padding,
                                         "wbits": w.bits, "nd": nd,
                                         "name": self.name(nd, "conv")})

    def conv_attrs(self, nd, kshape):
        a = self.attrs(nd)
        if a.get("group", 1) != 1:
            raise _fail(nd, f"group = {a['group']}: grouped/depthwise convolution is not "
                            f"representable")
        if any(v != 1 for v in a.get("dilations", [1, 1])):
            raise _fail(nd, f"dilations = {a['dilations']}: expected 1")
        ap = a.get("auto_pad", b"NOTSET")
        if (ap.decode() if isinstance(ap, bytes) else ap) not in ("NOTSET", "VALID"):
            raise _fail(nd, f"auto_pad = {ap!r}: expected explicit pads")
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
            raise _fail(nd, f"pads = {pads}: expected symmetric 2-D padding")
        if "kernel_shape" in a and list(a["kernel_shape"]) != list(kshape):
            raise _fail(nd, f"kernel_shape {a['kernel_shape']} differs from the weight's")
        return tuple(a.get("strides", [1, 1])), (pads[0], pads[1])

    def op_Gemm(self, nd):
        a = self.attrs(nd)
        if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
            raise _fail(nd, "alpha, beta must be 1 and transA 0")
        x = self._need_act(nd, self.val(nd, 0), 2)
        w = self._weight(nd, 1)
        if not a.get("transB", 0):
            w = _transpose_w(nd, w)
        elif w.axis not in (None, 0):
            raise _fail(nd, f"weight quantization axis {w.axis}: expected the output axis")
        return Pending("linear", nd.name, {"x": x, "w": w, "bias": _bias_value(nd, self.val(nd, 2)),
                                           "wbits": w.bits, "nd": nd,
                                           "name": self.name(nd, "gemm")}, rank=2)

    def op_MatMul(self, nd):
        x = self._need_act(nd, self.val(nd, 0), 2)
        w = _transpose_w(nd, self._weight(nd, 1))
        return Pending("linear", nd.name, {"x": x, "w": w, "bias": None, "wbits": w.bits,
                                           "nd": nd, "name": self.name(nd, "matmul")}, rank=2)

    def op_Add(self, nd):
        a, b = self.val(nd, 0), self.val(nd, 1)
        if isinstance(b, Pending) and not isinstance(a, Pending):
            a, b = b, a
        if isinstance(a, Pending) and a.kind in ("conv", "linear") and not a.post \
                and not a.relu and a.clip is None and isinstance(b, (Const, QConst)) \
                and a.data.get("bias") is None and not a.data.get("bn"):
            bias = b if isinstance(b, QConst) else np.asarray(b.arr, np.float64)
            if isinstance(b, Const) and a.kind == "conv":
                bias = bias.reshape(-1)
            a.data["bias"] = bias
            return a
        if isinstance(a, Act) and isinstance(b, Act) and a.dq and b.dq:
            if a.rank != b.rank:
                raise _fail(nd, "inputs of different ranks")
            return Pending("add", nd.name, {"a": a, "b": b, "vec": a.vec,
                                            "name": self.name(nd, "add")}, rank=a.rank)
        raise _fail(nd, "expected two dequantized activations (residual add) or a "
                        "conv/gemm output plus a constant bias")

    def op_BatchNormalization(self, nd):
        p = self.val(nd, 0)
        if not isinstance(p, Pending) or p.kind != "conv" or p.post or p.relu or p.clip:
            raise _fail(nd, "BatchNormalization must follow a quantized Conv directly (it is "
                            "folded into the conv's scales and bias)")
        gamma, beta, mean, var = (np.asarray(self.const(nd, i, k), np.float64)
                                  for i, k in enumerate(("scale", "B", "mean", "var"), 1))
        eps = float(self.attrs(nd).get("epsilon", 1e-5))
        g = gamma / np.sqrt(var + eps)
        p.data.setdefault("bn", []).append((g, beta - mean * g))
        return p

    def op_Relu(self, nd):
        x = self.val(nd, 0)
        if isinstance(x, Pending):
            x.relu = True
            return x
        x = self._need_act(nd, x)
        if not x.signed:
            return x
        name = self.add_node(ReLU(self.name(nd, "relu"), [x.node]))
        return Act(**{**x.__dict__, "node": name, "signed": False, "bits": x.bits - 1})

    def op_Clip(self, nd):
        x = self.val(nd, 0)
        a = self.attrs(nd)
        lo = self.const(nd, 1, "min") if len(nd.input) > 1 else a.get("min")
        hi = self.const(nd, 2, "max") if len(nd.input) > 2 else a.get("max")
        lo = None if lo is None else float(np.asarray(lo).reshape(-1)[0])
        hi = None if hi is None else float(np.asarray(hi).reshape(-1)[0])
        if isinstance(x, Pending):
            if x.clip is not None:
                raise _fail(nd, "two clips on one tensor")
            x.clip = (lo, hi)
            return x
        x = self._need_act(nd, x)
        c_lo = -math.inf if lo is None else lo / x.scale
        c_hi = math.inf if hi is None else hi / x.scale
        for bits in range(1, 17):
            for signed in (False, True):
                r = _qrange(bits, signed)
                if np.isclose(r[0], max(c_lo, _lo(x))) and np.isclose(r[1], min(c_hi, _hi(x))):
                    if (bits, signed) == (x.bits, x.signed):
                        return x   # the clip leaves every code as it is
                    name = self.add_node(Clip(self.name(nd, "clip"), [x.node], out_bits=bits,
                                              out_signed=signed))
                    return Act(**{**x.__dict__, "node": name, "signed": signed, "bits": bits})
        raise _fail(nd, f"clip [{lo}, {hi}] at scale {x.scale:.9g} is not the range of a "
                        f"b-bit code")

    def pool_attrs(self, nd, kind):
        a = self.attrs(nd)
        if a.get("ceil_mode", 0):
            raise _fail(nd, "ceil_mode = 1 is not representable")
        if any(v != 1 for v in a.get("dilations", [1, 1])) or a.get("storage_order", 0):
            raise _fail(nd, "dilations/storage_order are not supported")
        k = list(a.get("kernel_shape", []))
        if len(k) != 2:
            raise _fail(nd, f"kernel_shape {k}: expected 2-D pooling")
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if pads[0] != pads[2] or pads[1] != pads[3]:
            raise _fail(nd, f"pads = {pads}: expected symmetric padding")
        ap = a.get("auto_pad", b"NOTSET")
        if (ap.decode() if isinstance(ap, bytes) else ap) not in ("NOTSET", "VALID"):
            raise _fail(nd, f"auto_pad = {ap!r}: expected explicit pads")
        return {"kernel": tuple(k), "stride": tuple(a.get("strides", [1, 1])),
                "padding": (pads[0], pads[1])}

    def op_MaxPool(self, nd):
        if len(nd.output) > 1 and nd.output[1]:
            raise _fail(nd, "the Indices output is not supported")
        at = self.pool_attrs(nd, "max")
        x = self.val(nd, 0)
        if isinstance(x, Pending):
            if x.rank != 4:
                raise _fail(nd, "max pooling of a vector")
            x.post.append(("maxpool", at))
            return x
        if not isinstance(x, Act) or x.rank != 4 or x.vec:
            raise _fail(nd, f"input {nd.input[0]!r} is not a quantized feature map")
        if x.zp and not x.dq:
            pass  # max of codes q = c + z is max of c + z: fine either way
        name = self.add_node(MaxPool2d(self.name(nd, "maxpool"), [x.node], **at))
        return Act(**{**x.__dict__, "node": name})

    def op_AveragePool(self, nd):
        at = self.pool_attrs(nd, "avg")
        if at.pop("padding") != (0, 0):
            raise _fail(nd, "padded average pooling is not representable")
        x = self._need_act(nd, self.val(nd, 0), 4)
        name = self.add_node(AvgPool2d(self.name(nd, "avgpool"), [x.node], **at))
        return Act(**{**x.__dict__, "node": name})

    def op_GlobalAveragePool(self, nd):
        x = self._need_act(nd, self.val(nd, 0), 4)
        name = self.add_node(GlobalAvgPool(self.name(nd, "gap"), [x.node]))
        return Act(**{**x.__dict__, "node": name, "vec": True})

    def op_ReduceMean(self, nd):
        a = self.attrs(nd)
        axes = a.get("axes")
        if axes is None and len(nd.input) > 1:
            axes = self.const(nd, 1, "axes").tolist()
        if sorted(int(v) % 4 for v in (axes or [])) != [2, 3]:
            raise _fail(nd, f"axes {axes}: only the mean over H and W (global pooling) is "
                            f"supported")
        x = self._need_act(nd, self.val(nd, 0), 4)
        name = self.add_node(GlobalAvgPool(self.name(nd, "gap"), [x.node]))
        keep = a.get("keepdims", 1)
        return Act(**{**x.__dict__, "node": name, "vec": bool(keep), "rank": 4 if keep else 2})

    def op_Flatten(self, nd):
        if self.attrs(nd).get("axis", 1) != 1:
            raise _fail(nd, "axis must be 1")
        return self._flatten(nd)

    def _flatten(self, nd):
        x = self.val(nd, 0)
        if isinstance(x, Pending):
            x.post.append(("flatten", {}))
            x.rank = 2
            return x
        if not isinstance(x, Act):
            raise _fail(nd, f"input {nd.input[0]!r} is not a quantized activation")
        if x.rank == 2 or x.vec:
            return Act(**{**x.__dict__, "rank": 2, "vec": False})
        name = self.add_node(Flatten(self.name(nd, "flatten"), [x.node]))
        return Act(**{**x.__dict__, "node": name, "rank": 2})

    def op_Reshape(self, nd):
        shape = np.asarray(self.const(nd, 1, "shape")).reshape(-1)
        if shape.size != 2:
            raise _fail(nd, f"shape {shape.tolist()}: only flattening to (N, features) is "
                            f"supported")
        if shape[1] != -1 and shape[0] not in (0, -1, 1, self.batch):
            raise _fail(nd, f"shape {shape.tolist()}: only (N, -1)-style flattening")
        return self._flatten(nd)

    def op_Squeeze(self, nd):
        x = self.val(nd, 0)
        if isinstance(x, Act) and x.vec:
            return Act(**{**x.__dict__, "rank": 2, "vec": False})
        raise _fail(nd, "only squeezing the 1x1 map of a global pooling is supported")

    # -- QOperator format
    def op_QLinearConv(self, nd):
        x = self._codes_in(nd, 0)
        w = self._qlinear_weight(nd, 3, 4, 5)
        if w.codes.ndim != 4:
            raise _fail(nd, "expected a 2-D convolution")
        b = self.val(nd, 8)
        bias = None
        if b is not None:
            if not isinstance(b, Const):
                raise _fail(nd, "bias must be an int32 initializer")
            bias = QConst(np.asarray(b.arr, np.int64), x.scale * w.scale.reshape(-1), np.zeros(1, np.int64),
                          0, 32, True)
        stride, padding = self.conv_attrs(nd, w.codes.shape[2:])
        p = Pending("conv", nd.name, {"x": Act(**{**x.__dict__, "dq": True}), "w": w,
                                      "bias": bias, "stride": stride, "padding": padding,
                                      "wbits": w.bits, "nd": nd, "name": self.name(nd, "conv")})
        return self._qlinear_out(nd, p, 6, 7)

    def op_QLinearMatMul(self, nd):
        x = self._codes_in(nd, 0)
        if x.rank != 2:
            raise _fail(nd, "expected an (N, features) input")
        w = _transpose_w(nd, self._qlinear_weight(nd, 3, 4, 5))
        p = Pending("linear", nd.name, {"x": Act(**{**x.__dict__, "dq": True}), "w": w,
                                        "bias": None, "wbits": w.bits, "nd": nd,
                                        "name": self.name(nd, "matmul")}, rank=2)
        return self._qlinear_out(nd, p, 6, 7)

    def _codes_in(self, nd, i):
        x = self.val(nd, i)
        if not isinstance(x, Act) or x.dq:
            raise _fail(nd, f"input {nd.input[i]!r} is not quantized codes")
        s = self.scalar_scale(nd, self.const(nd, i + 1, "x_scale"))
        z = int(np.asarray(self.const(nd, i + 2, "x_zero_point")).reshape(-1)[0])
        if not _same(s, x.scale) or z != x.zp:
            raise _fail(nd, f"input scale/zero point {s:.9g}/{z} differ from the producer's "
                            f"{x.scale:.9g}/{x.zp}")
        return x

    def _qlinear_weight(self, nd, i, si, zi) -> QConst:
        w = self.const(nd, i, "weight")
        dt = self._zp_dtype(nd, i)
        rng = _dtype_range(self.onnx, dt)
        if rng is None or rng[0] > 8:
            raise _fail(nd, f"weight type {dt}: expected int8/uint8/int4")
        s = np.asarray(self.const(nd, si, "w_scale"), np.float64)
        z = np.asarray(self.const(nd, zi, "w_zero_point"), np.int64)
        return QConst(np.asarray(w, np.int64), s, z, 0 if s.size > 1 else None, *rng)

    def _qlinear_out(self, nd, p, si, zi):
        s = self.scalar_scale(nd, self.const(nd, si, "y_scale"))
        z = int(np.asarray(self.const(nd, zi, "y_zero_point")).reshape(-1)[0])
        rng = _dtype_range(self.onnx, self._zp_dtype(nd, zi))
        lo, hi = _qrange(*rng)
        return self.materialize(nd, p, s, z, lo - z, hi - z)

    # ----------------------------------------------------------------- output
    def finish(self, out_name: str) -> str:
        v = self.vals.get(out_name)
        if isinstance(v, Act):
            return v.node
        if isinstance(v, Pending) and v.kind in ("conv", "linear"):
            if v.relu or v.clip is not None or v.post:
                raise FileFormatError(f"{self.where}: output {out_name!r}: an unquantized "
                                      f"output must come straight from a conv/gemm (no "
                                      f"ReLU/Clip/pooling after it)")
            return self.build(v, out=None)
        raise FileFormatError(f"{self.where}: output {out_name!r} is "
                              f"{type(v).__name__ if v is not None else 'undefined'}: expected "
                              f"a quantized activation or the float output of a conv/gemm")


def _lo(x: Act) -> int:
    return _qrange(x.bits, x.signed)[0]


def _hi(x: Act) -> int:
    return _qrange(x.bits, x.signed)[1]


def _bias_value(nd, b):
    if b is None:
        return None
    if isinstance(b, QConst):
        return b
    if isinstance(b, Const):
        return np.asarray(b.arr, np.float64)
    raise _fail(nd, "bias must be a constant (float or DequantizeLinear of int32)")


def _transpose_w(nd, w: QConst) -> QConst:
    """(Cin, Cout) MatMul/Gemm weights to (Cout, Cin); the quantization axis must be Cout."""
    if w.codes.ndim != 2:
        raise _fail(nd, f"weight rank {w.codes.ndim}: expected 2")
    if w.axis not in (None, 1, -1):
        raise _fail(nd, f"weight quantization axis {w.axis}: expected the output axis (1)")
    sc, zp = w.scale, w.zp
    if sc.ndim == 2:
        sc = sc.T
    if zp.ndim == 2:
        zp = zp.T
    return QConst(w.codes.T.copy(), sc, zp, 0 if w.axis is not None else None, w.bits, w.signed)


def _per_channel(v, axis, cout, nd, what) -> np.ndarray:
    v = np.asarray(v)
    if v.size == 1:
        return np.full(cout, v.reshape(-1)[0], dtype=np.float64 if v.dtype.kind == "f"
                       else np.int64)
    if axis == -99 or v.size != cout:
        raise _fail(nd, f"{what} has shape {list(v.shape)}: expected 1 or {cout} values along "
                        f"the output channels")
    flat = v.reshape(-1)
    if v.dtype.kind == "f" and (not np.all(np.isfinite(flat)) or np.any(flat <= 0)):
        raise _fail(nd, f"{what}: every scale must be finite and > 0")
    return flat.astype(np.float64 if v.dtype.kind == "f" else np.int64)


def import_onnx(path_or_proto, *, input_shape=None) -> QuantModel:
    """Read an ONNX model and return the equivalent validated QuantModel.

    ``input_shape=(C, H, W)`` resolves a graph input with dynamic C/H/W. The graph input is
    the float image ``pixel / 255`` (NCHW); it must pass through a quantizer of scale 1/255
    (QuantizeLinear or QONNX Quant). Errors are one-line
    :class:`~norsim.errors.FileFormatError` naming the node, op and reason.
    """
    from norsim.onnx.export_int import META_KEY
    from norsim.onnx.int_graph import import_integer_graph

    model = load_model(path_or_proto)
    where = str(path_or_proto) if not hasattr(path_or_proto, "graph") else "<ModelProto>"
    meta = {p.key: p.value for p in model.metadata_props}
    if META_KEY in meta:
        return import_integer_graph(model, meta[META_KEY], where)
    return Importer(model, where, input_shape).run()
