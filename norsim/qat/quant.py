"""Quantisers: straight-through rounding, dynamic-threshold weights, PACT activations.

Notation (docs/qat.md): ``b`` bits, ``Q = 2^(b-1) - 1`` the largest signed weight code,
``s_w = T_w / Q`` the weight step, ``A = 2^b - 1`` the largest unsigned activation code and
``s_a = alpha / A`` the activation step.
"""

from __future__ import annotations

import torch
from torch import nn

from norsim.errors import InputError


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest (half to even, like ``torch.round``) with an identity gradient."""
    return x + (torch.round(x) - x).detach()


def _check_bits(name: str, bits: int, lo: int = 2, hi: int = 16) -> int:
    if not isinstance(bits, int) or isinstance(bits, bool) or not lo <= bits <= hi:
        raise InputError(name, bits, f"an integer number of bits in [{lo}, {hi}]")
    return bits


# ---------------------------------------------------------------------------------------
# weights: dynamic threshold
# ---------------------------------------------------------------------------------------

def mse_threshold(a: torch.Tensor, qmax: int, fractions: torch.Tensor) -> torch.Tensor:
    """Per-row clipping threshold minimising the quantisation MSE of ``a`` (rows x samples).

    ``a`` holds magnitudes (>= 0). Candidates are ``fractions * max(a)`` per row; the
    quantiser is ``s * clip(round(a/s), 0, qmax)`` with ``s = T/qmax``. Returns shape (rows,).
    """
    m = a.amax(dim=1).clamp_min(torch.finfo(a.dtype).tiny)            # (R,)
    cands = fractions[:, None].to(a) * m[None, :]                    # (F, R)
    s = (cands / qmax)[:, :, None]                                    # (F, R, 1)
    q = torch.clamp(torch.round(a[None] / s), 0, qmax) * s           # (F, R, S)
    err = ((q - a[None]) ** 2).mean(dim=2)                            # (F, R)
    best = err.argmin(dim=0)                                          # (R,)
    return cands.gather(0, best[None, :])[0]


def mse_clip(a: torch.Tensor, qmax: int) -> torch.Tensor:
    """MSE-optimal clip of one sample of magnitudes ``a`` (1-D), searched over fractions of
    the maximum *and* over upper quantiles (so that a few outliers cannot hide the optimum)."""
    a = a.reshape(-1).float()
    m = a.max().clamp_min(1e-12)
    q = torch.quantile(a, torch.linspace(0.5, 1.0, 101))
    cands = torch.cat([torch.linspace(0.02, 1.0, 50) * m, q]).clamp_min(1e-12)
    s = (cands / qmax)[:, None]
    err = ((torch.clamp(torch.round(a[None] / s), 0, qmax) * s - a[None]) ** 2).mean(dim=1)
    return cands[err.argmin()].reshape(1)


class WeightQuantizer(nn.Module):
    """Fake-quantise a weight tensor with a dynamic, learnable clipping threshold.

    * ``T_w`` (``threshold``, one per output channel or one per layer) is a parameter: the
      optimiser refines it through the straight-through estimator (gradient of
      ``s_w * clip(round(w/s_w), -Q, Q)`` w.r.t. ``T_w``: ``(round(w/s)-w/s)/Q`` inside the
      range, ``sign(w)`` outside).
    * Every ``reestimate_every`` training steps it is also re-estimated from a random sample
      of ``sample_size`` weights (the MSE-optimal clip among fractions of max|w|) and moved
      towards that estimate by ``momentum`` (exponential smoothing); the first estimate is
      taken as is. So ``s_w = T_w / Q`` follows the weights as they move.
    * ``symmetric=False`` gives the asymmetric option: learnable ``lo``/``hi`` and codes
      ``0 .. 2^b-1`` around an integer zero point.
    """

    def __init__(self, channels: int, bits: int = 4, *, per_channel: bool = True,
                 symmetric: bool = True, reestimate_every: int = 50, momentum: float = 0.3,
                 sample_size: int = 4096, seed: int = 0):
        super().__init__()
        self.bits = _check_bits("weight bits", bits)
        if not 0.0 < momentum <= 1.0:
            raise InputError("momentum", momentum, "a smoothing factor in (0, 1]")
        if reestimate_every < 0:
            raise InputError("reestimate_every", reestimate_every, ">= 0 (0 = never)")
        self.per_channel = per_channel
        self.symmetric = symmetric
        self.reestimate_every = int(reestimate_every)
        self.momentum = float(momentum)
        self.sample_size = int(sample_size)
        n = channels if per_channel else 1
        self.threshold = nn.Parameter(torch.ones(n))          # symmetric: T_w; asym: hi
        self.lo = nn.Parameter(-torch.ones(n), requires_grad=not symmetric)   # asym only
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.seed = int(seed)

    # -- grid ---------------------------------------------------------------------------
    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.symmetric else 2 ** self.bits - 1

    def _rows(self, w: torch.Tensor) -> torch.Tensor:
        return w.reshape(w.shape[0], -1) if self.per_channel else w.reshape(1, -1)

    def _bshape(self, w: torch.Tensor) -> tuple:
        return (-1,) + (1,) * (w.dim() - 1) if self.per_channel else (1,) * w.dim()

    def scale(self) -> torch.Tensor:
        """Step ``s_w`` per channel (or one element)."""
        if self.symmetric:
            return self.threshold.abs().clamp_min(1e-12) / self.qmax
        return (self.threshold - self.lo).clamp_min(1e-12) / self.qmax

    def zero_point(self) -> torch.Tensor:
        """Integer zero point (0 for symmetric codes)."""
        if self.symmetric:
            return torch.zeros_like(self.threshold)
        return torch.round(-self.lo / self.scale()).clamp(0, self.qmax)

    # -- statistics -----------------------------------------------------------------------
    @torch.no_grad()
    def estimate(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(T_hi, T_lo) estimated from a seeded random sample of the weights."""
        rows = self._rows(w.detach()).float()
        if rows.shape[1] > self.sample_size:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(self.step))
            idx = torch.randperm(rows.shape[1], generator=g)[: self.sample_size]
            rows = rows[:, idx]
        fr = torch.linspace(0.2, 1.0, 33)
        if self.symmetric:
            t = mse_threshold(rows.abs(), self.qmax, fr)
            return t, -t
        lo = rows.amin(dim=1).clamp_max(0.0)
        hi = rows.amax(dim=1).clamp_min(0.0)
        del hi
        span = mse_threshold(rows - lo[:, None], self.qmax, fr)     # clip the range from above
        return lo + span, lo

    @torch.no_grad()
    def update(self, w: torch.Tensor) -> None:
        """One dynamic-threshold re-estimation (with smoothing after the first)."""
        hi, lo = self.estimate(w)
        if not bool(self.initialized):
            self.threshold.copy_(hi)
            self.lo.copy_(lo)
            self.initialized.fill_(True)
        else:
            m = self.momentum
            self.threshold.mul_(1 - m).add_(m * hi)
            self.lo.mul_(1 - m).add_(m * lo)

    # -- forward --------------------------------------------------------------------------
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if not bool(self.initialized):
            self.update(w)
        elif self.training and self.reestimate_every and int(self.step) % self.reestimate_every == 0:
            self.update(w)
        if self.training:
            self.step += 1
        shp = self._bshape(w)
        s = self.scale().reshape(shp)
        if self.symmetric:
            q = self.qmax
            return torch.clamp(round_ste(torch.clamp(w / s, -q, q)), -q, q) * s
        z = self.zero_point().detach().reshape(shp)
        codes = round_ste(torch.clamp(w / s + z, 0, self.qmax))
        return (codes - z) * s

    @torch.no_grad()
    def codes(self, w: torch.Tensor) -> torch.Tensor:
        """Integer codes of ``w`` (symmetric: in [-Q, Q]; asymmetric: code - zero point)."""
        shp = self._bshape(w)
        s = self.scale().reshape(shp)
        if self.symmetric:
            return torch.clamp(torch.round(w / s), -self.qmax, self.qmax).to(torch.int64)
        z = self.zero_point().reshape(shp)
        return (torch.clamp(torch.round(w / s + z), 0, self.qmax) - z).to(torch.int64)


def fake_quant_bias(b: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """Bias on the accumulator grid ``s_w * s_x`` (int32 in the integer model), STE rounding."""
    return round_ste(b / step) * step


# ---------------------------------------------------------------------------------------
# activations: PACT
# ---------------------------------------------------------------------------------------

class _PactQuant(torch.autograd.Function):
    """y = floor(clip(x, 0, alpha) / s + 1/2) * s, s = alpha / (2^b - 1).

    Backward (PACT, Choi et al. 2018, straight-through): dy/dx = 1 for 0 < x < alpha,
    else 0; dy/dalpha = 1 for x >= alpha, else 0.
    """

    @staticmethod
    def forward(ctx, x, alpha, levels: int):
        ctx.save_for_backward(x, alpha)
        s = alpha / levels
        # round half up, the QuantModel requantisation rule (floor(v + 1/2))
        return torch.floor(torch.clamp(torch.minimum(x, alpha), min=0.0) / s + 0.5) * s

    @staticmethod
    def backward(ctx, g):
        x, alpha = ctx.saved_tensors
        inside = (x > 0) & (x < alpha)
        gx = g * inside.to(g.dtype)
        ga = (g * (x >= alpha).to(g.dtype)).sum().reshape(alpha.shape)
        return gx, ga, None


def pact_quant(x: torch.Tensor, alpha: torch.Tensor, bits: int) -> torch.Tensor:
    """PACT clip + unsigned ``bits``-bit uniform quantisation with the PACT gradients."""
    return _PactQuant.apply(x, alpha, 2 ** bits - 1)


class PactQuantizer(nn.Module):
    """Learnable activation clip ``alpha`` (L2-regularised by the trainer), then b-bit codes."""

    def __init__(self, bits: int = 4, alpha: float = 6.0):
        super().__init__()
        self.bits = _check_bits("activation bits", bits)
        self.alpha = nn.Parameter(torch.tensor([float(alpha)]))

    @property
    def levels(self) -> int:
        return 2 ** self.bits - 1

    def scale(self) -> torch.Tensor:
        return self.alpha.detach().abs() / self.levels

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor, max_samples: int = 65536, seed: int = 0) -> None:
        """Initialise alpha at the MSE-optimal clip of the positive part of ``x``."""
        a = x.detach().float().reshape(-1).clamp_min(0.0)
        if a.numel() > max_samples:
            g = torch.Generator().manual_seed(seed)
            a = a[torch.randperm(a.numel(), generator=g)[:max_samples]]
        self.alpha.copy_(mse_clip(a, self.levels).clamp_min(1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pact_quant(x, self.alpha, self.bits)
