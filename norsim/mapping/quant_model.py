"""QuantModel: an integer CNN as a small graph of typed nodes, stored as ``.npz`` + JSON.

This module is the contract between training (a QAT exporter), the exact integer reference
(:mod:`norsim.mapping.reference`) and the analog mapper. The normative description is
``docs/model-format.md``; in short:

* activations are integer *codes* ``q`` with a per-tensor ``scale``: the real value is
  ``q * scale`` (zero point 0; unsigned after ReLU/clip, signed otherwise);
* conv2d/linear weights are signed ``weight_bits``-bit codes with one positive scale per output
  channel (optionally a per-channel zero point), an int32 bias at the accumulator scale
  ``s_in * s_w[o]``, and a fixed-point multiplier/shift per channel that maps the accumulator to
  the output codes (see :mod:`norsim.mapping.requant` for the rounding rule);
* the graph is ``input -> ... -> output`` with conv2d, linear, maxpool2d, avgpool2d,
  global_avgpool, add, flatten, relu and clip nodes; BatchNorm arrives folded.

A file is one ``.npz`` holding the arrays as ``"<node>/<array>"`` and the JSON graph as a uint8
array ``"__graph__"``. :meth:`QuantModel.load` never unpickles and validates everything,
raising :class:`~norsim.errors.FileFormatError` that names the node and array at fault.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable

import numpy as np

from norsim.errors import FileFormatError
from norsim.mapping.requant import (MULT_BITS, SHIFT_MAX, SHIFT_MIN, code_range,
                                    quantize_multiplier_pair, quantize_multipliers,
                                    weight_code_range)

FORMAT_NAME = "norsim-quantmodel"
FORMAT_VERSION = 1
GRAPH_KEY = "__graph__"

WEIGHT_BITS_RANGE = (2, 8)        #: allowed weight_bits (inclusive)
ACT_BITS_RANGE = (1, 16)          #: allowed activation bits (inclusive)
INPUT_BITS_RANGE = (1, 8)         #: allowed bits of the input node (derived from uint8 pixels)
ACC_LIMIT = 2 ** 31               #: |accumulator + bias| must stay below this (int32)
#: relative tolerance between the integer multiplier and the float scales it encodes
SCALE_CONSISTENCY_RTOL = 1e-6


def _err(node: str, what: str, msg: str) -> FileFormatError:
    return FileFormatError(f"node {node!r}, {what}: {msg}")


@dataclass(eq=False)
class TensorSpec:
    """The tensor a node produces, per sample (the batch axis is not part of ``shape``).

    ``shape`` is ``(C, H, W)`` for feature maps and ``(F,)`` for vectors. ``scale`` is a float
    for ordinary activations; for the raw accumulator output of a ``requantize=False`` layer it
    is an array with one scale per channel. Codes lie in ``[lo, hi]``.
    """

    shape: tuple[int, ...]
    bits: int
    signed: bool
    scale: Any

    @property
    def lo(self) -> int:
        return code_range(self.bits, self.signed)[0]

    @property
    def hi(self) -> int:
        return code_range(self.bits, self.signed)[1]

    @property
    def max_abs(self) -> int:
        return max(abs(self.lo), abs(self.hi))


# --------------------------------------------------------------------------- nodes

@dataclass(eq=False)
class Node:
    """Base of all graph nodes: a unique ``name`` and the names of its ``inputs``."""

    name: str
    inputs: tuple[str, ...] = ()

    OP: ClassVar[str] = ""
    ARITY: ClassVar[int] = 1
    ARRAYS: ClassVar[tuple[str, ...]] = ()          #: fields stored in the npz
    OPTIONAL_ARRAYS: ClassVar[tuple[str, ...]] = ()  #: arrays that may be None

    def __post_init__(self) -> None:
        if isinstance(self.inputs, str):
            self.inputs = (self.inputs,)
        self.inputs = tuple(self.inputs)

    # -- serialisation helpers
    def attrs(self) -> dict:
        """JSON attributes (everything but name, inputs and the arrays)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in ("name", "inputs") or f.name in self.ARRAYS:
                continue
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.ARRAYS if getattr(self, k) is not None}

    def infer(self, ins: list[TensorSpec]) -> TensorSpec:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(eq=False)
class Input(Node):
    """The model input: uint8 pixels mapped to codes ``(p >> (8 - bits)) - (2^(bits-1) if
    signed else 0)``; real value ``code * scale``. ``shape`` is ``(C, H, W)``."""

    shape: tuple[int, int, int] = (1, 28, 28)
    bits: int = 8
    signed: bool = False
    scale: float = 1.0 / 255.0

    OP: ClassVar[str] = "input"
    ARITY: ClassVar[int] = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.shape = tuple(self.shape)

    def infer(self, ins):
        n = self.name
        if len(self.shape) != 3 or any(not _is_int(s) or s < 1 for s in self.shape):
            raise _err(n, "shape", f"{self.shape!r}: expected (C, H, W) of positive integers")
        _check_bits(n, "bits", self.bits, INPUT_BITS_RANGE)
        _check_bool(n, "signed", self.signed)
        _check_scale(n, "scale", self.scale)
        return TensorSpec(tuple(int(s) for s in self.shape), int(self.bits), bool(self.signed),
                          float(self.scale))


@dataclass(eq=False)
class _MatMulNode(Node):
    """Shared fields of conv2d and linear (see docs/model-format.md, "conv2d and linear")."""

    weight: np.ndarray = None              # int codes, (Cout, Cin[, kh, kw])
    bias: np.ndarray = None                # int32 (Cout,), at scale s_in * weight_scale
    weight_scale: np.ndarray = None        # float64 (Cout,), > 0
    multiplier: np.ndarray | None = None   # int32 (Cout,), 0 <= m < 2**31
    shift: np.ndarray | None = None        # int32 (Cout,), 1 <= n <= 62
    weight_zero_point: np.ndarray | None = None  # int8 (Cout,) or None
    weight_bits: int = 4
    out_bits: int = 4
    out_signed: bool = False
    out_scale: float = 1.0
    requantize: bool = True

    ARRAYS: ClassVar[tuple[str, ...]] = ("weight", "bias", "weight_scale", "multiplier",
                                         "shift", "weight_zero_point")
    OPTIONAL_ARRAYS: ClassVar[tuple[str, ...]] = ("weight_zero_point", "multiplier", "shift")
    WEIGHT_NDIM: ClassVar[int] = 2

    @property
    def out_channels(self) -> int:
        return int(np.shape(self.weight)[0])

    @property
    def in_channels(self) -> int:
        return int(np.shape(self.weight)[1])

    def weight_matrix(self) -> np.ndarray:
        """``(Cout, K)`` int64 matrix of ``weight - zero_point`` with K in (cin, kh, kw) order."""
        w = np.asarray(self.weight, dtype=np.int64).reshape(self.out_channels, -1)
        if self.weight_zero_point is not None:
            w = w - np.asarray(self.weight_zero_point, dtype=np.int64)[:, None]
        return w

    def float_weight(self) -> np.ndarray:
        """Real weights ``weight_scale[o] * (weight - zero_point[o])`` (float64)."""
        w = self.weight_matrix().astype(np.float64) * np.asarray(self.weight_scale)[:, None]
        return w.reshape(np.shape(self.weight))

    def float_bias(self, in_scale: float) -> np.ndarray:
        """Real bias ``bias[o] * in_scale * weight_scale[o]`` (float64)."""
        return np.asarray(self.bias, dtype=np.float64) * in_scale * np.asarray(self.weight_scale)

    def real_multiplier(self, in_scale: float) -> np.ndarray:
        """The real per-channel multiplier ``in_scale * weight_scale / out_scale``."""
        return in_scale * np.asarray(self.weight_scale, dtype=np.float64) / self.out_scale

    def _check_arrays(self, inp: TensorSpec) -> None:
        n = self.name
        w = _check_array(n, "weight", self.weight, "i", self.WEIGHT_NDIM)
        cout = w.shape[0]
        if cout < 1 or any(s < 1 for s in w.shape):
            raise _err(n, "weight", f"shape {w.shape}: every dimension must be >= 1")
        _check_bits(n, "weight_bits", self.weight_bits, WEIGHT_BITS_RANGE)
        has_zp = self.weight_zero_point is not None
        lo, hi = weight_code_range(int(self.weight_bits), has_zp)
        _check_codes(n, "weight", w, lo, hi, f"{self.weight_bits}-bit weight codes")
        if has_zp:
            zp = _check_array(n, "weight_zero_point", self.weight_zero_point, "i", 1, (cout,))
            _check_codes(n, "weight_zero_point", zp, lo, hi,
                         f"{self.weight_bits}-bit zero points")
        b = _check_array(n, "bias", self.bias, "i", 1, (cout,))
        _check_codes(n, "bias", b, -(2 ** 31), 2 ** 31 - 1, "int32")
        s = _check_array(n, "weight_scale", self.weight_scale, "f", 1, (cout,))
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise _err(n, "weight_scale", "every scale must be finite and > 0")
        _check_bool(n, "requantize", self.requantize)
        # accumulator bound: sum_k |w - z| * max|x| + |bias| < 2**31 for every channel
        l1 = np.abs(self.weight_matrix()).sum(axis=1)
        bound = l1 * inp.max_abs + np.abs(b.astype(np.int64))
        if np.any(bound >= ACC_LIMIT):
            o = int(np.argmax(bound))
            raise _err(n, "weight", f"channel {o}: worst-case |accumulator + bias| = "
                       f"{int(bound[o])} does not fit int32 (input codes up to {inp.max_abs})")
        if not self.requantize:
            for k in ("multiplier", "shift"):
                if getattr(self, k) is not None:
                    raise _err(n, k, "must be absent when requantize is false")
            return
        _check_bits(n, "out_bits", self.out_bits, ACT_BITS_RANGE)
        _check_bool(n, "out_signed", self.out_signed)
        _check_scale(n, "out_scale", self.out_scale)
        for k in ("multiplier", "shift"):
            if getattr(self, k) is None:
                raise _err(n, k, "missing (required when requantize is true)")
        m = _check_array(n, "multiplier", self.multiplier, "i", 1, (cout,))
        _check_codes(n, "multiplier", m, 0, 2 ** MULT_BITS - 1, "0 <= m < 2**31")
        sh = _check_array(n, "shift", self.shift, "i", 1, (cout,))
        _check_codes(n, "shift", sh, SHIFT_MIN, SHIFT_MAX, f"{SHIFT_MIN} <= n <= {SHIFT_MAX}")
        if isinstance(inp.scale, float):
            real = self.real_multiplier(inp.scale)
            _check_multiplier_consistency(n, real, m, sh)

    def _infer_common(self, inp: TensorSpec, shape: tuple[int, ...]) -> TensorSpec:
        if not self.requantize:
            scale = np.asarray(self.weight_scale, dtype=np.float64) * inp.scale
            return TensorSpec(shape, 32, True, scale)
        return TensorSpec(shape, int(self.out_bits), bool(self.out_signed), float(self.out_scale))

    @classmethod
    def _codes_from_float(cls, w_float, b_float, weight_scale, in_scale, out_scale,
                          weight_bits, requantize):
        w_float = np.asarray(w_float, dtype=np.float64)
        s_w = np.broadcast_to(np.asarray(weight_scale, dtype=np.float64),
                              (w_float.shape[0],)).copy()
        lo, hi = weight_code_range(weight_bits, False)
        sw = s_w.reshape((-1,) + (1,) * (w_float.ndim - 1))
        q = np.clip(np.rint(w_float / sw), lo, hi).astype(np.int8)
        b = np.zeros(w_float.shape[0]) if b_float is None else np.asarray(b_float, np.float64)
        bias = np.rint(b / (in_scale * s_w)).astype(np.int64)
        bias = np.clip(bias, -(2 ** 31), 2 ** 31 - 1).astype(np.int32)
        m = sh = None
        if requantize:
            mm, nn = quantize_multipliers(in_scale * s_w / out_scale)
            m, sh = mm.astype(np.int32), nn.astype(np.int32)
        return q, bias, s_w, m, sh


@dataclass(eq=False)
class Conv2d(_MatMulNode):
    """2-D convolution (cross-correlation, as in PyTorch), NCHW, zero padding with code 0.

    ``weight`` is ``(Cout, Cin, kh, kw)``; ``stride`` and ``padding`` are ``(h, w)`` pairs.
    """

    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    OP: ClassVar[str] = "conv2d"
    WEIGHT_NDIM: ClassVar[int] = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        self.stride = _pair(self.stride)
        self.padding = _pair(self.padding)

    @property
    def kernel_size(self) -> tuple[int, int]:
        return int(np.shape(self.weight)[2]), int(np.shape(self.weight)[3])

    def infer(self, ins):
        (inp,) = ins
        n = self.name
        if len(inp.shape) != 3:
            raise _err(n, "inputs", f"expects a (C, H, W) feature map, got shape {inp.shape}")
        self._check_arrays(inp)
        c, h, w = inp.shape
        if self.in_channels != c:
            raise _err(n, "weight", f"has {self.in_channels} input channels but "
                       f"{self.inputs[0]!r} gives {c}")
        _check_pair(n, "stride", self.stride, 1)
        _check_pair(n, "padding", self.padding, 0)
        kh, kw = self.kernel_size
        ho = _out_size(n, h, kh, self.stride[0], self.padding[0])
        wo = _out_size(n, w, kw, self.stride[1], self.padding[1])
        return self._infer_common(inp, (self.out_channels, ho, wo))

    @classmethod
    def from_float(cls, name: str, inputs, weight: np.ndarray, bias: np.ndarray | None,
                   weight_scale, in_scale: float, out_scale: float, *, stride=(1, 1),
                   padding=(0, 0), weight_bits: int = 4, out_bits: int = 4,
                   out_signed: bool = False, requantize: bool = True) -> "Conv2d":
        """Quantise a float (BN-folded) conv: ``q = clip(rint(w / s_w[o]))`` (narrow range),
        ``bias = rint(b / (in_scale * s_w[o]))``, ``(m, n) = quantize_multiplier(in_scale *
        s_w[o] / out_scale)``. ``rint`` rounds half to even."""
        q, b, s_w, m, sh = cls._codes_from_float(weight, bias, weight_scale, in_scale,
                                                 out_scale, weight_bits, requantize)
        return cls(name, inputs, weight=q, bias=b, weight_scale=s_w, multiplier=m, shift=sh,
                   weight_bits=weight_bits, out_bits=out_bits, out_signed=out_signed,
                   out_scale=float(out_scale), requantize=requantize, stride=stride,
                   padding=padding)


@dataclass(eq=False)
class Linear(_MatMulNode):
    """Fully connected layer: ``weight`` is ``(Cout, Cin)``, the input a vector of Cin."""

    OP: ClassVar[str] = "linear"
    WEIGHT_NDIM: ClassVar[int] = 2

    def infer(self, ins):
        (inp,) = ins
        n = self.name
        if len(inp.shape) != 1:
            raise _err(n, "inputs", f"expects a vector (flatten first), got shape {inp.shape}")
        self._check_arrays(inp)
        if self.in_channels != inp.shape[0]:
            raise _err(n, "weight", f"has {self.in_channels} inputs but {self.inputs[0]!r} "
                       f"gives {inp.shape[0]}")
        return self._infer_common(inp, (self.out_channels,))

    @classmethod
    def from_float(cls, name: str, inputs, weight: np.ndarray, bias: np.ndarray | None,
                   weight_scale, in_scale: float, out_scale: float = 1.0, *,
                   weight_bits: int = 4, out_bits: int = 8, out_signed: bool = True,
                   requantize: bool = True) -> "Linear":
        """Like :meth:`Conv2d.from_float` for a linear layer."""
        q, b, s_w, m, sh = cls._codes_from_float(weight, bias, weight_scale, in_scale,
                                                 out_scale, weight_bits, requantize)
        return cls(name, inputs, weight=q, bias=b, weight_scale=s_w, multiplier=m, shift=sh,
                   weight_bits=weight_bits, out_bits=out_bits, out_signed=out_signed,
                   out_scale=float(out_scale), requantize=requantize)


@dataclass(eq=False)
class MaxPool2d(Node):
    """Max pooling; padded positions never win (they are ignored). ``padding <= kernel // 2``."""

    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)

    OP: ClassVar[str] = "maxpool2d"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kernel = _pair(self.kernel)
        self.stride = self.kernel if self.stride is None else _pair(self.stride)
        self.padding = _pair(self.padding)

    def infer(self, ins):
        (inp,) = ins
        n = self.name
        if len(inp.shape) != 3:
            raise _err(n, "inputs", f"expects a (C, H, W) feature map, got shape {inp.shape}")
        _check_pair(n, "kernel", self.kernel, 1)
        _check_pair(n, "stride", self.stride, 1)
        _check_pair(n, "padding", self.padding, 0)
        for i in range(2):
            if self.padding[i] > self.kernel[i] // 2:
                raise _err(n, "padding", f"{self.padding}: expected <= kernel // 2")
        c, h, w = inp.shape
        ho = _out_size(n, h, self.kernel[0], self.stride[0], self.padding[0])
        wo = _out_size(n, w, self.kernel[1], self.stride[1], self.padding[1])
        return TensorSpec((c, ho, wo), inp.bits, inp.signed, inp.scale)


@dataclass(eq=False)
class AvgPool2d(Node):
    """Average pooling without padding: ``floor((sum + floor(k/2)) / k)``, k = kh*kw."""

    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] | None = None

    OP: ClassVar[str] = "avgpool2d"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kernel = _pair(self.kernel)
        self.stride = self.kernel if self.stride is None else _pair(self.stride)

    def infer(self, ins):
        (inp,) = ins
        n = self.name
        if len(inp.shape) != 3:
            raise _err(n, "inputs", f"expects a (C, H, W) feature map, got shape {inp.shape}")
        _check_pair(n, "kernel", self.kernel, 1)
        _check_pair(n, "stride", self.stride, 1)
        c, h, w = inp.shape
        ho = _out_size(n, h, self.kernel[0], self.stride[0], 0)
        wo = _out_size(n, w, self.kernel[1], self.stride[1], 0)
        return TensorSpec((c, ho, wo), inp.bits, inp.signed, inp.scale)


@dataclass(eq=False)
class GlobalAvgPool(Node):
    """Mean over H and W with the same rounding as avgpool2d; output is a vector ``(C,)``."""

    OP: ClassVar[str] = "global_avgpool"

    def infer(self, ins):
        (inp,) = ins
        if len(inp.shape) != 3:
            raise _err(self.name, "inputs", f"expects a (C, H, W) map, got shape {inp.shape}")
        return TensorSpec((inp.shape[0],), inp.bits, inp.signed, inp.scale)


@dataclass(eq=False)
class Add(Node):
    """Residual add: ``y = clamp(floor((a*m_a + b*m_b) / 2**shift + 1/2))``.

    ``m_a ~= 2**shift * s_a / s_y`` and ``m_b ~= 2**shift * s_b / s_y`` align the two scales.
    An unsigned output fuses a ReLU.
    """

    multiplier_a: int = 0
    multiplier_b: int = 0
    shift: int = 1
    out_bits: int = 8
    out_signed: bool = False
    out_scale: float = 1.0

    OP: ClassVar[str] = "add"
    ARITY: ClassVar[int] = 2

    def infer(self, ins):
        a, b = ins
        n = self.name
        if a.shape != b.shape:
            raise _err(n, "inputs", f"shapes differ: {self.inputs[0]!r} {a.shape} vs "
                       f"{self.inputs[1]!r} {b.shape}")
        for x, nm in ((a, self.inputs[0]), (b, self.inputs[1])):
            if not isinstance(x.scale, float) or x.bits > ACT_BITS_RANGE[1]:
                raise _err(n, "inputs", f"{nm!r} is not an activation tensor "
                           f"(raw accumulators cannot be added)")
        for k in ("multiplier_a", "multiplier_b"):
            v = getattr(self, k)
            if not _is_int(v) or not 0 <= v < 2 ** MULT_BITS:
                raise _err(n, k, f"{v!r}: expected an integer in [0, 2**31)")
        if not _is_int(self.shift) or not SHIFT_MIN <= self.shift <= SHIFT_MAX:
            raise _err(n, "shift", f"{self.shift!r}: expected an integer in "
                       f"[{SHIFT_MIN}, {SHIFT_MAX}]")
        _check_bits(n, "out_bits", self.out_bits, ACT_BITS_RANGE)
        _check_bool(n, "out_signed", self.out_signed)
        _check_scale(n, "out_scale", self.out_scale)
        for k, x in (("multiplier_a", a), ("multiplier_b", b)):
            _check_multiplier_consistency(n, np.array([x.scale / self.out_scale]),
                                          np.array([getattr(self, k)]),
                                          np.array([self.shift]), what=k)
        return TensorSpec(a.shape, int(self.out_bits), bool(self.out_signed),
                          float(self.out_scale))

    @classmethod
    def from_scales(cls, name: str, inputs, scale_a: float, scale_b: float, out_scale: float,
                    *, out_bits: int = 8, out_signed: bool = False) -> "Add":
        """Build an add node whose multipliers align ``scale_a`` and ``scale_b`` to
        ``out_scale`` with one shared shift."""
        ma, mb, sh = quantize_multiplier_pair(scale_a / out_scale, scale_b / out_scale)
        return cls(name, inputs, multiplier_a=ma, multiplier_b=mb, shift=sh,
                   out_bits=out_bits, out_signed=out_signed, out_scale=float(out_scale))


@dataclass(eq=False)
class Flatten(Node):
    """``(C, H, W) -> (C*H*W,)`` in C order (channel slowest), as ``torch.flatten(x, 1)``."""

    OP: ClassVar[str] = "flatten"

    def infer(self, ins):
        (inp,) = ins
        return TensorSpec((int(np.prod(inp.shape)),), inp.bits, inp.signed, inp.scale)


@dataclass(eq=False)
class ReLU(Node):
    """``max(x, 0)``; a signed b-bit input gives an unsigned (b-1)-bit output, same scale."""

    OP: ClassVar[str] = "relu"

    def infer(self, ins):
        (inp,) = ins
        if not isinstance(inp.scale, float):
            raise _err(self.name, "inputs", "raw accumulators cannot feed relu")
        bits = inp.bits - 1 if inp.signed else inp.bits
        if bits < 1:
            raise _err(self.name, "inputs", "a 1-bit signed input leaves no positive code")
        return TensorSpec(inp.shape, bits, False, inp.scale)


@dataclass(eq=False)
class Clip(Node):
    """Saturate codes to the range of ``out_bits``/``out_signed``; the scale is unchanged."""

    out_bits: int = 4
    out_signed: bool = False

    OP: ClassVar[str] = "clip"

    def infer(self, ins):
        (inp,) = ins
        _check_bits(self.name, "out_bits", self.out_bits, ACT_BITS_RANGE)
        _check_bool(self.name, "out_signed", self.out_signed)
        if not isinstance(inp.scale, float):
            raise _err(self.name, "inputs", "raw accumulators cannot feed clip")
        return TensorSpec(inp.shape, int(self.out_bits), bool(self.out_signed), inp.scale)


NODE_TYPES: dict[str, type[Node]] = {c.OP: c for c in (
    Input, Conv2d, Linear, MaxPool2d, AvgPool2d, GlobalAvgPool, Add, Flatten, ReLU, Clip)}


# --------------------------------------------------------------------------- model

@dataclass(eq=False)
class QuantModel:
    """An integer network: ``nodes`` (any order; sorted topologically on validation), the
    name of the ``output`` node, a model ``name`` and free-form JSON ``metadata``."""

    nodes: list[Node]
    output: str
    name: str = ""
    metadata: dict = field(default_factory=dict)

    _specs: dict | None = field(default=None, init=False, repr=False, compare=False)
    _order: list | None = field(default=None, init=False, repr=False, compare=False)

    # -- access
    def node(self, name: str) -> Node:
        for nd in self.nodes:
            if nd.name == name:
                return nd
        raise KeyError(name)

    @property
    def input(self) -> Input:
        """The single input node."""
        ins = [nd for nd in self.nodes if isinstance(nd, Input)]
        if len(ins) != 1:
            raise FileFormatError(f"graph: expected exactly one input node, found {len(ins)}")
        return ins[0]

    def order(self) -> list[Node]:
        """Nodes in a topological order (validates the model on first use)."""
        if self._order is None:
            self.validate()
        return list(self._order)

    def specs(self) -> dict[str, TensorSpec]:
        """The :class:`TensorSpec` each node produces (validates on first use)."""
        if self._specs is None:
            self.validate()
        return dict(self._specs)

    @property
    def output_spec(self) -> TensorSpec:
        return self.specs()[self.output]

    # -- validation
    def validate(self) -> "QuantModel":
        """Check names, edges, arity, acyclicity, every array and attribute; infer shapes.

        Raises :class:`FileFormatError` naming the node (and array) at fault. Returns self.
        """
        self._specs = self._order = None
        by_name: dict[str, Node] = {}
        for nd in self.nodes:
            if not isinstance(nd, Node) or type(nd) not in NODE_TYPES.values():
                raise FileFormatError(f"graph: {nd!r} is not a norsim node")
            if not isinstance(nd.name, str) or not nd.name or "/" in nd.name \
                    or nd.name == GRAPH_KEY:
                raise FileFormatError(f"graph: bad node name {nd.name!r} (non-empty, no '/')")
            if nd.name in by_name:
                raise _err(nd.name, "name", "duplicate node name")
            by_name[nd.name] = nd
        n_inputs = [nd.name for nd in self.nodes if isinstance(nd, Input)]
        if len(n_inputs) != 1:
            raise FileFormatError(f"graph: expected exactly one input node, found "
                                  f"{len(n_inputs)} {n_inputs}")
        if self.output not in by_name:
            raise FileFormatError(f"graph: output node {self.output!r} does not exist")
        for nd in self.nodes:
            if len(nd.inputs) != nd.ARITY:
                raise _err(nd.name, "inputs", f"{list(nd.inputs)}: {nd.OP} takes "
                           f"{nd.ARITY} input(s)")
            for src in nd.inputs:
                if src not in by_name:
                    raise _err(nd.name, "inputs", f"refers to missing node {src!r}")
        # Kahn's algorithm; leftovers are on (or behind) a cycle
        indeg = {nd.name: len(nd.inputs) for nd in self.nodes}
        users: dict[str, list[str]] = {nd.name: [] for nd in self.nodes}
        for nd in self.nodes:
            for src in nd.inputs:
                users[src].append(nd.name)
        ready = [nd.name for nd in self.nodes if indeg[nd.name] == 0]
        order: list[str] = []
        while ready:
            cur = ready.pop(0)
            order.append(cur)
            for u in users[cur]:
                indeg[u] -= 1
                if indeg[u] == 0:
                    ready.append(u)
        if len(order) != len(self.nodes):
            left = [nd.name for nd in self.nodes if nd.name not in set(order)]
            raise FileFormatError(f"graph: cycle through nodes {left}")
        # every node must contribute to the output
        needed = {self.output}
        stack = [self.output]
        while stack:
            for src in by_name[stack.pop()].inputs:
                if src not in needed:
                    needed.add(src)
                    stack.append(src)
        unused = [n for n in order if n not in needed]
        if unused:
            raise FileFormatError(f"graph: nodes {unused} do not lead to output "
                                  f"{self.output!r}")
        specs: dict[str, TensorSpec] = {}
        for name in order:
            nd = by_name[name]
            ins = [specs[s] for s in nd.inputs]
            for s, sp in zip(nd.inputs, ins):
                if not isinstance(sp.scale, float):
                    raise _err(name, "inputs", f"{s!r} outputs raw accumulators "
                               f"(requantize=false) and may only be the model output")
            specs[name] = nd.infer(ins)
        self._specs = specs
        self._order = [by_name[n] for n in order]
        return self

    # -- float view (for exporters and the float check of the spec)
    def float_params(self) -> dict[str, dict[str, np.ndarray]]:
        """Real weights and biases of every conv2d/linear node: ``{name: {"weight", "bias",
        "in_scale", "out_scale"}}``."""
        specs = self.specs()
        out = {}
        for nd in self.order():
            if isinstance(nd, _MatMulNode):
                s_in = specs[nd.inputs[0]].scale
                out[nd.name] = {"weight": nd.float_weight(), "bias": nd.float_bias(s_in),
                                "in_scale": s_in, "out_scale": specs[nd.name].scale}
        return out

    def dequantize_output(self, codes: np.ndarray) -> np.ndarray:
        """Real output values (logits): ``codes * scale`` (per channel for raw accumulators)."""
        return np.asarray(codes, dtype=np.float64) * self.output_spec.scale

    # -- I/O
    def graph_dict(self) -> dict:
        nodes = []
        for nd in self.order():
            d = {"name": nd.name, "op": nd.OP, "inputs": list(nd.inputs)}
            for k, v in nd.attrs().items():
                d[k] = _json_value(v)
            nodes.append(d)
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "name": self.name,
                "output": self.output, "metadata": self.metadata, "nodes": nodes}

    def save(self, path: str | Path) -> Path:
        """Validate and write one compressed ``.npz`` (arrays + JSON graph). Returns the path."""
        self.validate()
        arrays: dict[str, np.ndarray] = {}
        for nd in self.order():
            for k, v in nd.arrays().items():
                arrays[f"{nd.name}/{k}"] = np.ascontiguousarray(v, dtype=_CANON_DTYPES[k])
        graph = json.dumps(self.graph_dict(), indent=1, sort_keys=False).encode("utf-8")
        arrays[GRAPH_KEY] = np.frombuffer(graph, dtype=np.uint8)
        path = Path(path)
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "QuantModel":
        """Read and fully validate a model file; never unpickles."""
        from norsim.safeio import load_npz

        path = Path(path)
        if not path.exists():
            raise FileFormatError(f"{path}: no such model file")
        arrays = load_npz(path, "model")
        keys = set(arrays)
        if GRAPH_KEY not in keys:
            raise FileFormatError(f"{path}: no {GRAPH_KEY!r} array (not a norsim model)")
        g = arrays.pop(GRAPH_KEY)
        if g.dtype != np.uint8 or g.ndim != 1:
            raise FileFormatError(f"{path}: {GRAPH_KEY!r} must be a 1-D uint8 array")
        try:
            graph = json.loads(g.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FileFormatError(f"{path}: graph JSON is corrupt ({exc})") from None
        try:
            return cls.from_graph(graph, arrays)
        except FileFormatError as exc:
            raise FileFormatError(f"{path}: {exc}") from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError,
                OverflowError) as exc:  # a value of the wrong JSON type deep in the graph
            raise FileFormatError(f"{path}: malformed graph ({type(exc).__name__}: {exc})") \
                from None

    @classmethod
    def from_onnx(cls, path, **kwargs) -> "QuantModel":
        """Import an ONNX model (needs the ``onnx`` extra; see :mod:`norsim.onnx`)."""
        from norsim.onnx import import_onnx

        return import_onnx(path, **kwargs)

    @classmethod
    def from_graph(cls, graph: dict, arrays: dict[str, np.ndarray]) -> "QuantModel":
        """Build and validate a model from a parsed JSON graph and its arrays."""
        if not isinstance(graph, dict):
            raise FileFormatError("graph: the JSON document must be an object")
        if graph.get("format") != FORMAT_NAME:
            raise FileFormatError(f"graph: format = {graph.get('format')!r}, expected "
                                  f"{FORMAT_NAME!r}")
        ver = graph.get("format_version")
        if ver != FORMAT_VERSION:
            raise FileFormatError(f"graph: format_version = {ver!r}; this norsim reads "
                                  f"version {FORMAT_VERSION}")
        unknown = set(graph) - {"format", "format_version", "name", "output", "metadata",
                                "nodes"}
        if unknown:
            raise FileFormatError(f"graph: unknown top-level keys {sorted(unknown)}")
        nodes_json = graph.get("nodes")
        if not isinstance(nodes_json, list):
            raise FileFormatError("graph: 'nodes' must be a list")
        used: set[str] = set()
        nodes: list[Node] = []
        for i, d in enumerate(nodes_json):
            if not isinstance(d, dict):
                raise FileFormatError(f"graph: nodes[{i}] is not an object")
            name = d.get("name")
            if not isinstance(name, str):
                raise FileFormatError(f"graph: nodes[{i}] has no string 'name'")
            op = d.get("op")
            if not isinstance(op, str) or op not in NODE_TYPES:
                raise _err(name, "op", f"{op!r}: expected one of {sorted(NODE_TYPES)}")
            ncls = NODE_TYPES[op]
            inputs = d.get("inputs")
            if not isinstance(inputs, list) or not all(isinstance(s, str) for s in inputs):
                raise _err(name, "inputs", f"{inputs!r}: expected a list of node names")
            flds = {f.name: f for f in dataclasses.fields(ncls)}
            attr_names = [k for k in flds if k not in ("name", "inputs") + ncls.ARRAYS]
            extra = set(d) - {"name", "op", "inputs"} - set(attr_names)
            if extra:
                raise _err(name, "attributes", f"unknown keys {sorted(extra)} for {op}")
            kwargs: dict[str, Any] = {}
            for k in attr_names:
                if k not in d:
                    raise _err(name, k, "missing attribute")
                kwargs[k] = _attr_from_json(name, k, d[k], flds[k].default)
            for k in ncls.ARRAYS:
                key = f"{name}/{k}"
                if key in arrays:
                    a = arrays[key]
                    want = _CANON_DTYPES[k]
                    if a.dtype != want:
                        raise _err(name, k, f"array {key!r} has dtype {a.dtype}, expected "
                                   f"{np.dtype(want).name}")
                    kwargs[k] = a
                    used.add(key)
                elif k in ncls.OPTIONAL_ARRAYS:
                    kwargs[k] = None
                else:
                    raise _err(name, k, f"array {key!r} is missing from the file")
            try:
                nodes.append(ncls(name=name, inputs=tuple(inputs), **kwargs))
            except (TypeError, ValueError) as exc:
                raise _err(name, "attributes", str(exc)) from None
        stray = sorted(set(arrays) - used)
        if stray:
            raise FileFormatError(f"graph: arrays {stray} belong to no node")
        output = graph.get("output")
        if not isinstance(output, str):
            raise FileFormatError("graph: 'output' must be a node name")
        meta = graph.get("metadata", {})
        if not isinstance(meta, dict):
            raise FileFormatError("graph: 'metadata' must be an object")
        model = cls(nodes=nodes, output=output, name=str(graph.get("name", "")), metadata=meta)
        return model.validate()


# --------------------------------------------------------------------------- helpers

_CANON_DTYPES = {"weight": np.int8, "bias": np.int32, "weight_scale": np.float64,
                 "multiplier": np.int32, "shift": np.int32, "weight_zero_point": np.int8}


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _pair(v) -> tuple[int, int]:
    if _is_int(v):
        return (int(v), int(v))
    t = tuple(v)
    return t  # validated in infer


def _check_pair(node, what, v, lo):
    if len(v) != 2 or not all(_is_int(x) and x >= lo for x in v):
        raise _err(node, what, f"{v!r}: expected two integers >= {lo}")


def _check_bits(node, what, v, rng):
    if not _is_int(v) or not rng[0] <= v <= rng[1]:
        raise _err(node, what, f"{v!r}: expected an integer in [{rng[0]}, {rng[1]}]")


def _check_bool(node, what, v):
    if not isinstance(v, (bool, np.bool_)):
        raise _err(node, what, f"{v!r}: expected true or false")


def _check_scale(node, what, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.floating)) \
            or not math.isfinite(float(v)) or float(v) <= 0:
        raise _err(node, what, f"{v!r}: expected a finite number > 0")


def _check_array(node, what, a, kind, ndim, shape=None) -> np.ndarray:
    if a is None:
        raise _err(node, what, "array is missing")
    if not isinstance(a, np.ndarray):
        raise _err(node, what, f"expected a numpy array, got {type(a).__name__}")
    if a.dtype.kind not in (("i", "u") if kind == "i" else ("f",)):
        raise _err(node, what, f"dtype {a.dtype}: expected "
                   f"{'an integer' if kind == 'i' else 'a floating'} dtype")
    if a.ndim != ndim or (shape is not None and a.shape != shape):
        raise _err(node, what, f"shape {a.shape}: expected "
                   f"{shape if shape is not None else f'{ndim} dimensions'}")
    return a


def _check_codes(node, what, a, lo, hi, desc):
    if a.size and (a.min() < lo or a.max() > hi):
        bad = a[(a < lo) | (a > hi)].reshape(-1)[0]
        raise _err(node, what, f"code {int(bad)} out of range [{lo}, {hi}] ({desc})")


def _check_multiplier_consistency(node, real, m, sh, what="multiplier"):
    real = np.asarray(real, dtype=np.float64)
    target = real * np.exp2(np.asarray(sh, dtype=np.float64))
    err = np.abs(np.asarray(m, dtype=np.float64) - target)
    bad = err > 1.0 + SCALE_CONSISTENCY_RTOL * target
    if np.any(bad):
        o = int(np.argmax(bad))
        raise _err(node, what, f"channel {o}: m / 2**n = {float(m[o]) / 2.0 ** int(sh[o]):.9g}"
                   f" but the scales give {float(real[o]):.9g}")


def _out_size(node, size, k, s, p) -> int:
    o = (size + 2 * p - k) // s + 1
    if size + 2 * p < k or o < 1:
        raise _err(node, "kernel", f"kernel {k} (padding {p}) does not fit input size {size}")
    return int(o)


def _json_value(v):
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    return v


def _attr_from_json(node, key, v, default):
    """Type-check a JSON attribute against the field's default type."""
    if isinstance(default, bool):
        if not isinstance(v, bool):
            raise _err(node, key, f"{v!r}: expected true or false")
        return v
    if isinstance(default, int):
        if not _is_int(v):
            raise _err(node, key, f"{v!r}: expected an integer")
        return int(v)
    if isinstance(default, float):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _err(node, key, f"{v!r}: expected a number")
        return float(v)
    if isinstance(default, tuple) or default is None:
        if v is None:
            return None
        if not isinstance(v, list) or not all(_is_int(x) for x in v):
            raise _err(node, key, f"{v!r}: expected a list of integers")
        return tuple(int(x) for x in v)
    return v


def iter_matmul_nodes(model: QuantModel) -> Iterable[_MatMulNode]:
    """The conv2d and linear nodes in execution order (what a mapper places on arrays)."""
    return [nd for nd in model.order() if isinstance(nd, _MatMulNode)]


MatMulNode = _MatMulNode
