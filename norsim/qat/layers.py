"""Layers of a QAT network: each runs in float mode (pre-training, with BatchNorm) or in
quantised mode (BN folded, weights and activations fake-quantised on the grid that the
exported integer model uses).

Scales flow forward: every layer that consumes activations knows the quantiser of its
input (``in_q``, set when the model is built), so biases are put on the accumulator grid
``s_w * s_in`` exactly as the integer model stores them (int32).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from norsim.qat.fold import fold_bn_into
from norsim.qat.quant import PactQuantizer, WeightQuantizer, fake_quant_bias, mse_clip


class InputQuant(nn.Module):
    """The image input: unsigned ``bits``-bit codes with a fixed step (pixels / 255)."""

    def __init__(self, bits: int = 8, step: float = 1.0 / 255.0):
        super().__init__()
        self.bits = bits
        self.quant = False
        self.register_buffer("step", torch.tensor([step]))

    def scale(self) -> torch.Tensor:
        return self.step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quant:
            return x
        return torch.clamp(torch.round(x / self.step), 0, 2 ** self.bits - 1) * self.step


class QAct(nn.Module):
    """ReLU in float mode; PACT clip + unsigned b-bit codes in quantised mode."""

    def __init__(self, bits: int = 4):
        super().__init__()
        self.pact = PactQuantizer(bits)
        self.quant = False
        self.exact = False

    def scale(self) -> torch.Tensor:
        return self.pact.scale()

    def code_range(self) -> tuple[int, int]:
        return 0, self.pact.levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quant and self.exact and not self.training:
            return x          # the producing layer already requantised (exact mode)
        return self.pact(x) if self.quant else F.relu(x)


class Pass(nn.Module):
    """Base of layers that keep their input's scale (pooling, flatten)."""

    def __init__(self):
        super().__init__()
        object.__setattr__(self, "in_q", None)

    def link(self, in_q) -> None:
        object.__setattr__(self, "in_q", in_q)

    def scale(self) -> torch.Tensor:
        return self.in_q.scale()


class MaxPool(Pass):
    def __init__(self, k: int = 2):
        super().__init__()
        self.k = k

    def forward(self, x):
        return F.max_pool2d(x, self.k)


class AvgPool(Pass):
    """Average pooling; quantised, the window mean of the codes is rounded half up
    (``floor((sum + floor(k/2)) / k)``, k = window size) at the input's scale, as the
    QuantModel ``avgpool2d`` node does."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k
        self.quant = False

    def forward(self, x):
        y = F.avg_pool2d(x, self.k)
        if not self.quant:
            return y
        s = self.in_q.scale()
        n = self.k * self.k
        total = torch.round(y * n / s)                     # exact integer window sums
        q = torch.floor((total + n // 2) / n) * s
        return y + (q - y).detach()


class Flatten(Pass):
    """Flatten N x C x H x W to N x (C*H*W) in C, H, W order (row-major)."""

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.flatten(x, 1)


class QLayer(nn.Module):
    """A convolution or fully connected layer with optional BatchNorm (folded for QAT)."""

    def __init__(self, kind: str, cin: int, cout: int, *, k: int = 3, stride: int = 1,
                 padding: int = 0, bn: bool = True, w_bits: int = 4, per_channel: bool = True,
                 symmetric: bool = True, reestimate_every: int = 50, seed: int = 0):
        super().__init__()
        self.kind = kind
        if kind == "conv":
            self.op = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=not bn)
            self.bn = nn.BatchNorm2d(cout) if bn else None
        elif kind == "linear":
            self.op = nn.Linear(cin, cout, bias=not bn)
            self.bn = nn.BatchNorm1d(cout) if bn else None
        else:  # pragma: no cover - internal
            raise ValueError(kind)
        self.w_bits = w_bits
        self.wq = WeightQuantizer(cout, w_bits, per_channel=per_channel, symmetric=symmetric,
                                  reestimate_every=reestimate_every, seed=seed)
        self.quant = False
        self.noise_sigma = 0.0          # log-normal weight noise (noise-aware QAT), training only
        # additive output noise (noise-aware QAT against a chip's measured per-layer error),
        # training only: std = out_noise_rel x rms of the bias-free accumulator of the batch
        self.out_noise_rel = 0.0
        self.noise_gen: torch.Generator | None = None
        self.exact = False
        self.fixed_point_rounding = True   # eval mode: requantise as the integer format does
        object.__setattr__(self, "in_q", None)
        object.__setattr__(self, "out_q", None)

    def link_out(self, out_q) -> None:
        """The activation quantiser whose codes this layer's requantisation produces."""
        object.__setattr__(self, "out_q", out_q)

    # the input quantiser is a plain reference, not a registered submodule
    def link(self, in_q) -> None:
        object.__setattr__(self, "in_q", in_q)

    def fold(self) -> None:
        if self.bn is not None:
            fold_bn_into(self.op, self.bn)
            self.bn = None

    def acc_step(self) -> torch.Tensor:
        """Accumulator step ``s_w * s_in`` per output channel."""
        return (self.wq.scale() * self.in_q.scale()).detach()

    def quantized_weight(self) -> torch.Tensor:
        return self.wq(self.op.weight)

    def _apply_op(self, x, w, b):
        if self.kind == "conv":
            return F.conv2d(x, w, b, self.op.stride, self.op.padding)
        return F.linear(x, w, b)

    @torch.no_grad()
    def forward_exact(self, x: torch.Tensor) -> torch.Tensor:
        """Integer-exact evaluation (float64 GEMM of integer codes, int64 fixed-point
        requantisation), the arithmetic of the QuantModel reference executor."""
        from norsim.mapping.requant import quantize_multipliers

        s_in32 = self.in_q.scale().to(torch.float32)
        s_in = float(s_in32.double().reshape(-1)[0])
        xc = torch.round(x.double() / s_in)
        wc = self.wq.codes(self.op.weight)
        cout = wc.shape[0]
        s_w32 = self.wq.scale().detach().to(torch.float32).expand(cout)
        # float32 GEMM is exact while every partial sum stays below 2^24 (as in the reference)
        bound = float(wc.abs().reshape(cout, -1).sum(1).max()) * float(xc.abs().max())
        dt = torch.float32 if bound < 2 ** 24 else torch.float64
        acc = torch.round(self._apply_op(xc.to(dt), wc.to(dt), None)).to(torch.int64)
        if self.op.bias is not None:
            b = torch.round(self.op.bias.detach() / (s_w32 * s_in32)).to(torch.int64)
            acc = acc + (b.reshape(-1, 1, 1) if acc.dim() == 4 else b)
        s_w = s_w32.double()
        if self.out_q is None:
            sc = s_in * s_w
            return acc.double() * (sc.reshape(-1, 1, 1) if acc.dim() == 4 else sc)
        s_out = float(self.out_q.scale().to(torch.float32).double().reshape(-1)[0])
        m, n = quantize_multipliers((s_in * s_w / s_out).numpy())
        m, n = torch.from_numpy(m), torch.from_numpy(n)
        if acc.dim() == 4:
            m, n = m.reshape(-1, 1, 1), n.reshape(-1, 1, 1)
        y = torch.bitwise_right_shift(acc * m + torch.bitwise_left_shift(torch.ones_like(n), n - 1), n)
        lo, hi = self.out_q.code_range()
        return torch.clamp(y, lo, hi).double() * s_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quant and self.exact and not self.training:
            return self.forward_exact(x)
        if not self.quant:
            y = self.op(x)
            return self.bn(y) if self.bn is not None else y
        w = self.quantized_weight()
        if self.training and self.noise_sigma > 0.0:
            z = torch.randn(w.shape, generator=self.noise_gen)
            w = w * torch.exp(self.noise_sigma * z)
        b = self.op.bias
        if b is not None:
            b = fake_quant_bias(b, self.acc_step())
        y = self._apply_op(x, w, b)
        if self.training and self.out_noise_rel > 0.0:
            acc = y.detach()
            if b is not None:
                acc = acc - (b.detach().reshape(-1, 1, 1) if y.dim() == 4 else b.detach())
            z = torch.randn(y.shape, generator=self.noise_gen, device=self.noise_gen.device)
            y = y + (self.out_noise_rel * acc.pow(2).mean().sqrt()) * z.to(y.dtype)
        if not self.training and self.fixed_point_rounding and self.out_q is not None:
            # Evaluated, the requantised value is the format's fixed-point one (multiplier and
            # shift on the exact integer accumulator); a float32 pre-activation within an ulp
            # of a code boundary would otherwise round the other way and the flip propagate.
            # Straight-through: the gradient is that of the float32 graph.
            y = y + (self.forward_exact(x).to(y.dtype) - y).detach()
        return y


class QSigned(nn.Module):
    """Signed ``bits``-bit codes ``clamp(floor(x/s + 1/2), -2^(b-1), 2^(b-1)-1)`` with a
    learnable clip ``alpha`` (``s = alpha / (2^(b-1)-1)``, straight-through rounding); identity
    in float mode. Used for the two inputs of a residual add."""

    def __init__(self, bits: int = 8):
        super().__init__()
        self.bits = bits
        self.alpha = nn.Parameter(torch.tensor([4.0]))
        self.quant = False
        self.exact = False

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    def code_range(self) -> tuple[int, int]:
        return -self.qmax - 1, self.qmax

    def scale(self) -> torch.Tensor:
        return self.alpha.detach().abs() / self.qmax

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor, seed: int = 0) -> None:
        a = x.detach().float().reshape(1, -1).abs()
        if a.shape[1] > 65536:
            g = torch.Generator().manual_seed(seed)
            a = a[:, torch.randperm(a.shape[1], generator=g)[:65536]]
        self.alpha.copy_(mse_clip(a, self.qmax).clamp_min(1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quant or (self.exact and not self.training):
            return x
        s = self.alpha.abs() / self.qmax
        v = x / s
        v = v + (torch.floor(v + 0.5) - v).detach()
        return torch.clamp(v, -self.qmax - 1, self.qmax) * s


class BasicBlock(nn.Module):
    """ResNet basic block: conv-BN-act, conv-BN, (+ shortcut: identity or 1x1 conv-BN), act.

    Quantised, the conv2 output and a conv shortcut are requantised to signed 8-bit codes
    (``q_res``, ``q_sc``) and the add produces the block's unsigned ``bits``-bit output
    (the QuantModel ``add`` node with a fused ReLU)."""

    def __init__(self, cin: int, cout: int, stride: int, bits: int, **qkw):
        super().__init__()
        self.conv1 = QLayer("conv", cin, cout, k=3, stride=stride, padding=1, w_bits=bits, **qkw)
        self.act1 = QAct(bits)
        self.conv2 = QLayer("conv", cout, cout, k=3, padding=1, w_bits=bits, **qkw)
        self.q_res = QSigned(8)
        self.shortcut = (QLayer("conv", cin, cout, k=1, stride=stride, w_bits=bits, **qkw)
                         if stride != 1 or cin != cout else None)
        self.q_sc = QSigned(8) if self.shortcut is not None else None
        self.act2 = QAct(bits)
        self.exact = False
        self.fixed_point_rounding = True
        object.__setattr__(self, "in_q", None)
        self.conv1.link_out(self.act1)
        self.conv2.link_out(self.q_res)
        if self.shortcut is not None:
            self.shortcut.link_out(self.q_sc)

    def link(self, in_q) -> None:
        object.__setattr__(self, "in_q", in_q)
        self.conv1.link(in_q)
        self.conv2.link(self.act1)
        if self.shortcut is not None:
            self.shortcut.link(in_q)

    def scale(self) -> torch.Tensor:
        return self.act2.scale()

    @torch.no_grad()
    def _add_exact(self, y: torch.Tensor, sc: torch.Tensor, s_sc: torch.Tensor) -> torch.Tensor:
        from norsim.mapping.requant import quantize_multiplier_pair

        f = lambda t: float(t.to(torch.float32).double().reshape(-1)[0])  # noqa: E731
        s_a, s_b, s_y = f(self.q_res.scale()), f(s_sc), f(self.act2.scale())
        ma, mb, n = quantize_multiplier_pair(s_a / s_y, s_b / s_y)
        a = torch.round(y.double() / s_a).to(torch.int64)
        b = torch.round(sc.double() / s_b).to(torch.int64)
        out = torch.bitwise_right_shift(a * ma + b * mb + (1 << (n - 1)), n)
        lo, hi = self.act2.code_range()
        return torch.clamp(out, lo, hi).double() * s_y

    def forward(self, x):
        if self.exact and not self.training and self.act2.quant:
            y = self.conv2(self.conv1(x))
            if self.shortcut is None:
                return self._add_exact(y, x, self.in_q.scale())
            return self._add_exact(y, self.shortcut(x), self.q_sc.scale())
        y = self.q_res(self.conv2(self.act1(self.conv1(x))))
        sc = x if self.shortcut is None else self.q_sc(self.shortcut(x))
        out = self.act2(y + sc)
        if not self.training and self.fixed_point_rounding and self.act2.quant:
            s_sc = self.in_q.scale() if self.shortcut is None else self.q_sc.scale()
            out = out + (self._add_exact(y, sc, s_sc).to(out.dtype) - out).detach()
        return out


def conv_out(size: int, k: int, stride: int = 1, padding: int = 0) -> int:
    return math.floor((size + 2 * padding - k) / stride) + 1
