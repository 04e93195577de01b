"""Fixed-point requantisation: the one rounding rule of the QuantModel format.

A real multiplier ``M > 0`` is represented by an integer ``m`` (0 <= m < 2**31) and a right
shift ``n`` (1 <= n <= 62) so that ``M ~= m / 2**n``. Requantising an accumulator ``a``
(|a| < 2**31) computes, exactly in int64::

    y = clamp((a * m + 2**(n-1)) >> n, lo, hi)

where ``>>`` is the arithmetic (flooring) right shift. In words: ``y = floor(a*m/2**n + 1/2)``,
i.e. **round half up** (ties go toward +infinity), then saturate to the output code range.
The same rule with a divisor instead of a shift is used by average pooling:
``floor((s + floor(c/2)) / c)``, which is round half up for every positive count ``c``.

See docs/model-format.md for the whole specification.
"""

from __future__ import annotations

import math

import numpy as np

from norsim.errors import InputError

MULT_BITS = 31          #: multipliers are < 2**31 (a non-negative int32)
SHIFT_MIN = 1           #: smallest right shift (so that the rounding constant 2**(n-1) exists)
SHIFT_MAX = 62          #: largest right shift (a*m + 2**(n-1) stays inside int64)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """Return ``(m, n)`` with ``m / 2**n`` the closest representable value to ``real``.

    ``m`` is normalised to ``[2**30, 2**31)`` (31 significant bits) unless ``real`` is so small
    that the shift would exceed 62, in which case ``n = 62`` and ``m = round(real * 2**62)``
    (possibly 0). ``real`` must be finite, > 0 and < 2**30.
    """
    real = float(real)
    if not math.isfinite(real) or real <= 0.0 or real >= 2.0 ** 30:
        raise InputError("real_multiplier", real, "a finite number in (0, 2**30)")
    frac, exp = math.frexp(real)            # real = frac * 2**exp, frac in [0.5, 1)
    m = int(round(frac * 2 ** MULT_BITS))    # in [2**30, 2**31]
    n = MULT_BITS - exp
    if m == 2 ** MULT_BITS:
        m //= 2
        n -= 1
    if n > SHIFT_MAX:
        m = int(round(real * 2.0 ** SHIFT_MAX))
        n = SHIFT_MAX
    if n < SHIFT_MIN:  # real >= 2**30 was excluded above, so this cannot happen
        raise InputError("real_multiplier", real, "a value needing a right shift >= 1")
    return m, n


def quantize_multipliers(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vector form of :func:`quantize_multiplier`: int64 arrays ``(m, n)``."""
    real = np.asarray(real, dtype=np.float64).reshape(-1)
    pairs = [quantize_multiplier(r) for r in real]
    m = np.array([p[0] for p in pairs], dtype=np.int64)
    n = np.array([p[1] for p in pairs], dtype=np.int64)
    return m, n


def quantize_multiplier_pair(real_a: float, real_b: float) -> tuple[int, int, int]:
    """Two multipliers with one shared shift (residual add): ``(m_a, m_b, n)``.

    The shift is chosen for the larger multiplier; the smaller one gets fewer significant bits.
    """
    big = max(float(real_a), float(real_b))
    _, n = quantize_multiplier(big)
    ma = int(round(float(real_a) * 2.0 ** n))
    mb = int(round(float(real_b) * 2.0 ** n))
    if max(ma, mb) >= 2 ** MULT_BITS:   # rounding pushed it over: one bit less
        n -= 1
        ma = int(round(float(real_a) * 2.0 ** n))
        mb = int(round(float(real_b) * 2.0 ** n))
    return ma, mb, n


def code_range(bits: int, signed: bool) -> tuple[int, int]:
    """Integer range of a ``bits``-wide activation code: two's complement or unsigned."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def weight_code_range(bits: int, has_zero_point: bool) -> tuple[int, int]:
    """Range of weight codes: narrow symmetric ``[-(2^(b-1)-1), 2^(b-1)-1]`` without zero
    points (so |w| <= 7 for 4 bits, the differential-pair convention), full two's complement
    ``[-2^(b-1), 2^(b-1)-1]`` with zero points."""
    hi = (1 << (bits - 1)) - 1
    return (-hi - 1 if has_zero_point else -hi), hi


def shift_round(prod: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """``floor(prod / 2**n + 1/2)`` for int64 ``prod`` (round half up), vectorised."""
    n = np.asarray(n, dtype=np.int64)
    one = np.int64(1)
    return (prod + (one << (n - 1))) >> n


def apply_multiplier(acc: np.ndarray, m: np.ndarray | int, n: np.ndarray | int,
                     lo: int, hi: int) -> np.ndarray:
    """``clamp(floor(acc * m / 2**n + 1/2), lo, hi)`` exactly in int64.

    ``m`` and ``n`` broadcast against ``acc`` (per-channel values on the last axis, say).
    """
    acc = np.asarray(acc, dtype=np.int64)
    prod = acc * np.asarray(m, dtype=np.int64)
    y = shift_round(prod, n)
    np.clip(y, lo, hi, out=y)
    return y


def div_round_half_up(total: np.ndarray, count: int) -> np.ndarray:
    """``floor((total + floor(count/2)) / count)``: round half up of ``total / count``."""
    total = np.asarray(total, dtype=np.int64)
    return (total + (count // 2)) // count


# --------------------------------------------------------------------------- fused kernel
# Requantise matmul rows and scatter them to NCHW in one pass (the reference executor's hot
# loop). ``requantize_rows_numpy`` is the plain NumPy twin; tests prove them equal.

def requantize_rows_numpy(acc: np.ndarray, bias: np.ndarray, m: np.ndarray, n: np.ndarray,
                          lo: int, hi: int, batch: int) -> np.ndarray:
    """``(batch*P, C)`` exact-integer accumulators (any int or float dtype holding integers)
    -> int32 ``(batch, C, P)`` codes: ``clamp((acc + bias) * m + 2^(n-1)) >> n``."""
    t = np.asarray(acc).astype(np.int64) + np.asarray(bias, dtype=np.int64)
    y = apply_multiplier(t, np.asarray(m, np.int64), np.asarray(n, np.int64), lo, hi)
    c = y.shape[1]
    return np.ascontiguousarray(y.reshape(batch, -1, c).transpose(0, 2, 1)).astype(np.int32)


def _make_kernel():
    from numba import njit

    @njit(cache=True, nogil=True)
    def kernel(acc, bias, m, n, lo, hi, batch, out):   # pragma: no cover - compiled
        rows, c = acc.shape
        p = rows // batch
        for b in range(batch):
            for q in range(p):
                r = b * p + q
                for ch in range(c):
                    t = np.int64(acc[r, ch]) + bias[ch]
                    y = (t * m[ch] + (np.int64(1) << (n[ch] - 1))) >> n[ch]
                    if y < lo:
                        y = lo
                    elif y > hi:
                        y = hi
                    out[b, ch, q] = y
    return kernel


_KERNEL = None
_KERNEL_DTYPES = (np.float32, np.float64, np.int64)


def requantize_rows(acc: np.ndarray, bias: np.ndarray, m: np.ndarray, n: np.ndarray,
                    lo: int, hi: int, batch: int) -> np.ndarray:
    """numba twin of :func:`requantize_rows_numpy` (same arguments, same result)."""
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _make_kernel()
    acc = np.asarray(acc)
    if acc.dtype not in _KERNEL_DTYPES:
        acc = acc.astype(np.int64)
    acc = np.ascontiguousarray(acc)
    rows, c = acc.shape
    if batch < 1 or rows % batch:
        raise InputError("batch", batch, f"a positive divisor of the {rows} rows")
    out = np.empty((batch, c, rows // batch), dtype=np.int32)
    _KERNEL(acc, np.ascontiguousarray(bias, dtype=np.int64),
            np.ascontiguousarray(m, dtype=np.int64), np.ascontiguousarray(n, dtype=np.int64),
            np.int64(lo), np.int64(hi), np.int64(batch), out)
    return out
