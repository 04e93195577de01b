"""Branch-free float64 ln, ln(1 + x), cos(2 pi u) and a Box-Muller normal for numba loops
that LLVM can vectorise, each with a NumPy twin doing the same operations in the same order.

The pip builds of llvmlite have no SVML, so a loop calling ``np.log1p``/``np.log``/``np.cos``
stays scalar (a libm call per element). These versions are plain arithmetic and bit
manipulation (fdlibm's polynomials: ``__ieee754_log``, ``__kernel_sin``, ``__kernel_cos``),
accurate to about one ulp, with no branch a vectoriser cannot turn into a select. The NumPy
twins give bit-identical results (IEEE +, -, *, / and sqrt are exact-rounded in both, and
numba does not contract a * b + c into an FMA without ``fastmath``), so a numba kernel and
its NumPy reference stay equal to the last bit.

Domains: :func:`log_pos` for finite normal x > 0 (and +inf); :func:`log1p_pos` for x >= 0
(including +inf); :func:`exp_nonpos` for x <= 0 (including -inf); :func:`cos_turns` for any
finite u (cos(2 pi u)); :func:`box_muller` for u1 in (0, 1], u2 finite;
:func:`softplus_sigmoid` for any h, +-inf included (ln(1 + e^h), 1 / (1 + e^-h) and
1 / (1 + e^h) from one exponential, one logarithm and one division).
"""

from __future__ import annotations

import numba
import numpy as np

_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_SQRT2 = 1.4142135623730951
_MANT = 0x000FFFFFFFFFFFFF
_ONE_BITS = 0x3FF0000000000000

_S1 = -1.66666666666666324348e-01
_S2 = 8.33333333332248946124e-03
_S3 = -1.98412698298579493134e-04
_S4 = 2.75573137070700676789e-06
_S5 = -2.50507602534068634195e-08
_S6 = 1.58969099521155010221e-10
_C1 = 4.16666666666666019037e-02
_C2 = -1.38888888888741095749e-03
_C3 = 2.48015872894767294178e-05
_C4 = -2.75573143513906633035e-07
_C5 = 2.08757232129817482790e-09
_C6 = -1.13596475577881948265e-11
_TWO_PI = 6.283185307179586

_INV_LN2 = 1.44269504088896338700e+00
_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08
_EXP_MIN = -746.0  # exp of anything below rounds to 0


# ------------------------------------------------------------------------ numba -------
@numba.njit(cache=True, inline="always", error_model="numpy")
def log_pos(x):
    """ln x for finite normal x > 0 (fdlibm ``__ieee754_log`` without its branches);
    ln(+inf) = +inf."""
    bits = np.float64(x).view(np.int64)
    e = (bits >> 52) - 1023
    m = np.int64((bits & _MANT) | _ONE_BITS).view(np.float64)  # mantissa in [1, 2)
    big = m > _SQRT2
    m = 0.5 * m if big else m                                    # [sqrt(2)/2, sqrt(2)]
    e = e + 1 if big else e
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    r = t2 + t1
    hfsq = 0.5 * f * f
    dk = float(e)
    out = dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f)
    return out if x < np.inf else x


@numba.njit(cache=True, inline="always", error_model="numpy")
def log1p_pos(x):
    """ln(1 + x) for x >= 0: ln(u) of u = 1 + x plus the rounding of u, (x - (u - 1)) / u."""
    u = 1.0 + x
    out = log_pos(u) + (x - (u - 1.0)) / u
    return out if x < np.inf else x


@numba.njit(cache=True, inline="always", error_model="numpy")
def _pow2(j):
    """2.0 ** j for integer -1022 <= j <= 1023, from the exponent bits."""
    return np.int64((j + 1023) << 52).view(np.float64)


@numba.njit(cache=True, inline="always", error_model="numpy")
def exp_nonpos(x):
    """e^x for x <= 0 (fdlibm ``__ieee754_exp`` without its branches): x = k ln 2 + r,
    |r| <= ln(2)/2, a rational approximation of e^r, then 2^k in two exact halves so that
    results down to the subnormal range come out right; e^-inf = 0."""
    xc = x if x > _EXP_MIN else _EXP_MIN
    k = np.floor(xc * _INV_LN2 + 0.5)
    hi = xc - k * _LN2_HI
    lo = k * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    ki = int(k)
    k1 = ki // 2
    return (y * _pow2(k1)) * _pow2(ki - k1)


@numba.njit(cache=True, inline="always", error_model="numpy")
def cos_turns(u):
    """cos(2 pi u): u reduced to a in [0, 1/2] turn, then one of fdlibm's kernels on
    |x| <= pi/4 (cos near 0 and 1/2 turn, -sin near 1/4 turn)."""
    a = abs(u - np.floor(u + 0.5))  # distance to the nearest integer, [0, 1/2]
    near_half = a > 0.375
    mid = (a > 0.125) & (a <= 0.375)
    # x: 2 pi a (a <= 1/8), 2 pi (a - 1/4) (1/8 < a <= 3/8), 2 pi (1/2 - a) (a > 3/8)
    t = (0.5 - a) if near_half else ((a - 0.25) if mid else a)
    x = _TWO_PI * t
    z = x * x
    # sin kernel
    v = z * x
    rs = _S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))
    sn = x + v * (_S1 + z * rs)
    # cos kernel
    rc = z * (_C1 + z * (_C2 + z * (_C3 + z * (_C4 + z * (_C5 + z * _C6)))))
    hz = 0.5 * z
    wc = 1.0 - hz
    cs = wc + (((1.0 - wc) - hz) + z * rc)
    res = -sn if mid else cs
    return -res if near_half else res


@numba.njit(cache=True, inline="always", error_model="numpy")
def box_muller(u1, u2):
    """Standard normal sqrt(-2 ln u1) cos(2 pi u2) from two uniforms, u1 in (0, 1]."""
    return np.sqrt(-2.0 * log_pos(u1)) * cos_turns(u2)


@numba.njit(cache=True, inline="always", error_model="numpy")
def softplus_sigmoid(h):
    """(ln(1 + e^h), sigma(h), 1 - sigma(h)) with sigma(h) = 1 / (1 + e^-h), overflow-free:
    e = e^-|h|, u = 1 + e, one reciprocal r = 1 / u serves ln(1 + e) = ln u + (e - (u - 1)) r
    and both sigmoids (r and e r, neither from a subtraction, so 1 - sigma keeps its
    relative accuracy where sigma -> 1)."""
    e = exp_nonpos(-abs(h))
    u = 1.0 + e
    r = 1.0 / u
    sp = max(h, 0.0) + (log_pos(u) + (e - (u - 1.0)) * r)
    er = e * r
    pos = h >= 0.0
    return sp, (r if pos else er), (er if pos else r)


# ------------------------------------------------------------------------ NumPy -------
def log_pos_np(x):
    """NumPy twin of :func:`log_pos` (bit-identical)."""
    x = np.asarray(x, dtype=np.float64)
    bits = x.view(np.int64)
    e = (bits >> 52) - 1023
    m = ((bits & _MANT) | _ONE_BITS).view(np.float64)
    big = m > _SQRT2
    m = np.where(big, 0.5 * m, m)
    e = e + big
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    r = t2 + t1
    hfsq = 0.5 * f * f
    dk = e.astype(np.float64)
    out = dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f)
    return np.where(x < np.inf, out, x)


def log1p_pos_np(x):
    """NumPy twin of :func:`log1p_pos` (bit-identical)."""
    x = np.asarray(x, dtype=np.float64)
    u = 1.0 + x
    with np.errstate(invalid="ignore"):
        out = log_pos_np(u) + (x - (u - 1.0)) / u
    return np.where(x < np.inf, out, x)


def _pow2_np(j):
    return ((j + 1023) << 52).view(np.float64)


def exp_nonpos_np(x):
    """NumPy twin of :func:`exp_nonpos` (bit-identical)."""
    x = np.asarray(x, dtype=np.float64)
    xc = np.where(x > _EXP_MIN, x, _EXP_MIN)
    k = np.floor(xc * _INV_LN2 + 0.5)
    hi = xc - k * _LN2_HI
    lo = k * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    ki = k.astype(np.int64)
    k1 = ki // 2
    return (y * _pow2_np(k1)) * _pow2_np(ki - k1)


def cos_turns_np(u):
    """NumPy twin of :func:`cos_turns` (bit-identical)."""
    u = np.asarray(u, dtype=np.float64)
    a = np.abs(u - np.floor(u + 0.5))
    near_half = a > 0.375
    mid = (a > 0.125) & (a <= 0.375)
    t = np.where(near_half, 0.5 - a, np.where(mid, a - 0.25, a))
    x = _TWO_PI * t
    z = x * x
    v = z * x
    rs = _S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))
    sn = x + v * (_S1 + z * rs)
    rc = z * (_C1 + z * (_C2 + z * (_C3 + z * (_C4 + z * (_C5 + z * _C6)))))
    hz = 0.5 * z
    wc = 1.0 - hz
    cs = wc + (((1.0 - wc) - hz) + z * rc)
    res = np.where(mid, -sn, cs)
    return np.where(near_half, -res, res)


def box_muller_np(u1, u2):
    """NumPy twin of :func:`box_muller` (bit-identical)."""
    return np.sqrt(-2.0 * log_pos_np(u1)) * cos_turns_np(u2)


def softplus_sigmoid_np(h):
    """NumPy twin of :func:`softplus_sigmoid` (bit-identical)."""
    h = np.asarray(h, dtype=np.float64)
    e = exp_nonpos_np(-np.abs(h))
    u = 1.0 + e
    r = 1.0 / u
    sp = np.maximum(h, 0.0) + (log_pos_np(u) + (e - (u - 1.0)) * r)
    er = e * r
    pos = h >= 0.0
    return sp, np.where(pos, r, er), np.where(pos, er, r)
