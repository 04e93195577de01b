"""numba kernels of the fast array path, each with a plain NumPy reference twin.

* ``hash_normal`` / ``hash_normal_numpy``: counter-based standard normals. A 64-bit key drawn
  from the caller's ``numpy.random.Generator`` is mixed with the element's counter by
  splitmix64; the top 53 bits give a uniform u in (0, 1) and the inverse normal CDF
  (Acklam's rational approximation, relative error < 1.2e-9) gives the normal. The same key
  and counter give the same number in both twins, so the kernels stay reproducible and
  testable while drawing tens of millions of normals per batch at memory speed.
* ``readout`` / ``readout_numpy``: the fused periphery of one batch: leakage, integrator
  clipping, analog subtraction, per-read Gaussian noise (shot + kT/C + ADC input-referred),
  ADC gain/offset/INL, rounding and clipping, digital subtraction and the shift-add.
* ``rtn_apply`` / ``rtn_apply_numpy`` (module ``rtn_kernels``): exact
  two-state Markov sampling of every trap at the start of each multiply (geometric waiting
  times between switches), adding the current change of each trapped cell to the column
  readings of the multiplies while it differs from the batch's base state.
* ``bitplanes`` / ``bitplanes_numpy``: unsigned codes -> 0/1 float32 bit-planes.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
_TWO_M53 = 1.0 / 9007199254740992.0

# Acklam's inverse normal CDF coefficients
_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
      1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
      6.680131188771972e+01, -1.328068155288572e+01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
      -2.549671010228718e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
      3.754408661907416e+00)
_P_LOW = 0.02425


# ------------------------------------------------------------------ counter-hash normals ----
@numba.njit(cache=True, inline="always")
def _splitmix(key, counter):
    z = key + (counter + np.uint64(1)) * _M1
    z = (z ^ (z >> np.uint64(30))) * _M2
    z = (z ^ (z >> np.uint64(27))) * _M3
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def _uniform(key, counter):
    return (np.int64(_splitmix(key, counter) >> np.uint64(11)) + 0.5) * _TWO_M53


@numba.njit(cache=True, inline="always", error_model="numpy")
def _inv_norm(u):
    if u < _P_LOW:
        q = np.sqrt(-2.0 * np.log(u))
        return ((((( _C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / \
            ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)
    if u > 1.0 - _P_LOW:
        q = np.sqrt(-2.0 * np.log(1.0 - u))
        return -((((( _C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / \
            ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)
    p = u - 0.5
    r = p * p
    return (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * p / \
        (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)


@numba.njit(cache=True, error_model="numpy")
def _hash_normal_kernel(key, start, out):
    for i in range(out.size):
        out[i] = _inv_norm(_uniform(key, np.uint64(start) + np.uint64(i)))


def hash_normal(key: int, start: int, n: int) -> np.ndarray:
    """n standard normals for counters start .. start+n-1 under ``key`` (numba)."""
    out = np.empty(int(n), dtype=np.float64)
    _hash_normal_kernel(np.uint64(key), np.uint64(start), out)
    return out


def _splitmix_numpy(key, counters):
    with np.errstate(over="ignore"):
        z = np.uint64(key) + (counters.astype(np.uint64) + np.uint64(1)) * _M1
        z = (z ^ (z >> np.uint64(30))) * _M2
        z = (z ^ (z >> np.uint64(27))) * _M3
    return z ^ (z >> np.uint64(31))


def _uniform_numpy(key, counters):
    return ((_splitmix_numpy(key, counters) >> np.uint64(11)).astype(np.float64) + 0.5) * _TWO_M53


def _inv_norm_numpy(u):
    u = np.asarray(u, dtype=np.float64)
    out = np.empty_like(u)
    lo = u < _P_LOW
    hi = u > 1.0 - _P_LOW
    mid = ~(lo | hi)
    p = u[mid] - 0.5
    r = p * p
    a, b, c, d = _A, _B, _C, _D
    out[mid] = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * p / \
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)
    for mask, sign, uu in ((lo, 1.0, u[lo]), (hi, -1.0, 1.0 - u[hi])):
        q = np.sqrt(-2.0 * np.log(uu))
        out[mask] = sign * (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0)
    return out


def hash_normal_numpy(key: int, start: int, n: int) -> np.ndarray:
    """Reference twin of :func:`hash_normal`."""
    counters = np.arange(int(start), int(start) + int(n), dtype=np.uint64)
    return _inv_norm_numpy(_uniform_numpy(key, counters))


def hash_uniform_numpy(key: int, counters) -> np.ndarray:
    return _uniform_numpy(key, np.asarray(counters, dtype=np.uint64))


#: integer input-code dtypes the bit-plane kernels read as they are (a network's im2col codes
#: are int32: converting each tile's slice to int64 doubled the memory the kernels stream)
CODE_DTYPES = (np.dtype(np.int64), np.dtype(np.int32), np.dtype(np.int16), np.dtype(np.uint8))


def code_rows(x) -> np.ndarray:
    """Input codes ``x`` (B, R) with unit stride along its rows, in int64 or one of
    :data:`CODE_DTYPES`, copied only if they are not: a column slice of a wider batch (each
    tile's rows of a layer's inputs) is read in place by the kernels (their loops run along
    rows), which saves a copy of the batch per tile."""
    x = np.asarray(x)
    if (x.dtype in CODE_DTYPES and x.ndim == 2
            and (x.shape[1] <= 1 or x.strides[1] == x.itemsize)):
        return x
    return np.ascontiguousarray(x, dtype=np.int64)


# ------------------------------------------------------------------------- bit-planes ----
@numba.njit(cache=True, parallel=True)
def _bitplanes_kernel(x, nbits, out):
    nb, nr = x.shape
    for b in numba.prange(nb):
        for k in range(nbits):
            row = out[b * nbits + k]
            for r in range(nr):
                row[r] = np.float32((x[b, r] >> k) & 1)


def bitplanes(x: np.ndarray, nbits: int) -> np.ndarray:
    """(B, R) unsigned codes -> (B*nbits, R) float32 planes, row b*nbits+k = bit k of x[b]."""
    x = code_rows(x)
    out = np.empty((x.shape[0] * nbits, x.shape[1]), dtype=np.float32)
    _bitplanes_kernel(x, int(nbits), out)
    return out


@numba.njit(cache=True, parallel=True)
def _bitplanes_stats_kernel(x, nbits, runs_of, out, active, runs):
    """:func:`_bitplanes_kernel` that also counts, per vector, the rows active in each cycle
    and the runs of ones of its codes (``runs_of[v]``: runs in code v), as it reads them."""
    nb, nr = x.shape
    mask = runs_of.size - 1
    for b in numba.prange(nb):
        for k in range(nbits):
            row = out[b * nbits + k]
            a = 0
            for r in range(nr):
                bit = (x[b, r] >> k) & 1
                row[r] = np.float32(bit)
                a += bit
            active[b * nbits + k] = a
        n = 0
        for r in range(nr):
            n += runs_of[x[b, r] & mask]
        runs[b] = n


def bitplanes_stats(x: np.ndarray, nbits: int, active: np.ndarray) -> tuple[np.ndarray, int]:
    """:func:`bitplanes` and :func:`wl_stats` in one pass over the codes: returns the planes
    and the runs of ones, and writes the active rows per cycle into ``active`` (B*nbits,)."""
    x = code_rows(x)
    if nbits > 12:  # a runs table of 2^nbits entries would not stay in cache
        a, runs = wl_stats(x, nbits)
        active[:] = a
        return bitplanes(x, nbits), runs
    out = np.empty((x.shape[0] * nbits, x.shape[1]), dtype=np.float32)
    runs = np.empty(x.shape[0], dtype=np.int64)
    _bitplanes_stats_kernel(x, int(nbits), _runs_table(int(nbits)), out, active, runs)
    return out, int(runs.sum())


@functools.lru_cache(maxsize=None)
def _runs_table(nbits: int) -> np.ndarray:
    """Runs of consecutive one-bits in each nbits-bit code (index: the code)."""
    v = np.arange(1 << nbits, dtype=np.int64)
    starts = v & ~(v << 1)
    return np.array([bin(int(s)).count("1") for s in starts], dtype=np.int64)


@numba.njit(cache=True, parallel=True)
def _bitplanes_t_kernel(x, nbits, out):
    # blocks of vectors (their rows of x stay in cache while every output row takes its
    # slice), blocks in parallel: a transpose, not a strided read of x per output row
    nb, nr = x.shape
    blk = 64
    for ib in numba.prange((nb + blk - 1) // blk):
        b0 = ib * blk
        b1 = min(b0 + blk, nb)
        for r in range(nr):
            row = out[r]
            for b in range(b0, b1):
                v = x[b, r]
                for k in range(nbits):
                    row[b * nbits + k] = (v >> k) & 1


def bitplanes_t(x: np.ndarray, nbits: int) -> np.ndarray:
    """(B, R) unsigned codes -> (R, B*nbits) uint8 planes, [r, b*nbits+k] = bit k of x[b, r]."""
    x = code_rows(x)
    out = np.empty((x.shape[1], x.shape[0] * nbits), dtype=np.uint8)
    _bitplanes_t_kernel(x, int(nbits), out)
    return out


def bitplanes_numpy(x: np.ndarray, nbits: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    k = np.arange(nbits, dtype=np.int64)
    planes = (x[:, None, :] >> k[None, :, None]) & 1
    return planes.reshape(x.shape[0] * nbits, x.shape[1]).astype(np.float32)


# ---------------------------------------------------------------------- fused readout ----
# Parameter vector layout of the readout (float64), shared by both twins.
P_STEP, P_LO, P_HI, P_INL, P_SHOT, P_CONST_VAR, P_NOISE_LSB, P_ISAT = range(8)
N_PARAMS = 8


@numba.njit(cache=True, inline="always", error_model="numpy")
def _central(u):
    # Acklam's central rational with the coefficients of _A, _B written out (vectorises)
    p = u - 0.5
    r = p * p
    num = (((((-3.969683028665376e+01 * r + 2.209460984245205e+02) * r
              - 2.759285104469687e+02) * r + 1.383577518672690e+02) * r
            - 3.066479806614716e+01) * r + 2.506628277459239e+00) * p
    den = (((((-5.447609879822406e+01 * r + 1.615858368580409e+02) * r
              - 1.556989798598866e+02) * r + 6.680131188771972e+01) * r
            - 1.328068155288572e+01) * r + 1.0)
    return num / den


@numba.njit(cache=True, inline="always", error_model="numpy")
def _tail(u):
    """Acklam's tail branch for u < P_LOW or u > 1 - P_LOW (literal coefficients)."""
    low = u < 0.5
    q = math.sqrt(-2.0 * math.log(u if low else 1.0 - u))
    t = (((((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e+00) * q
           - 2.549671010228718e+00) * q + 4.374664141464968e+00) * q + 2.938163982698783e+00) / \
        ((((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e+00) * q
          + 3.754408661907416e+00) * q + 1.0)
    return t if low else -t


@numba.njit(cache=True, inline="always", error_model="numpy")
def _hash_normals(key, base, stride, m, ub, zb, tix):
    """Standard normals ``zb[:m]`` of counters ``base + i stride`` under ``key``: the
    uniforms (``ub``) and the central rational for all (vectorises), then the ~5 % tail
    draws, their indices compacted into ``tix`` first so that the compiler cannot
    if-convert the (log, sqrt) tail onto every lane."""
    b0, st = np.uint64(base), np.uint64(stride)  # unsigned throughout (uint64 + int64 is a float)
    for i in range(m):
        u = _uniform(key, b0 + np.uint64(i) * st)
        ub[i] = u
        zb[i] = _central(u)
    nt = 0
    for i in range(m):
        u = ub[i]
        tix[nt] = i
        nt += 1 if (u < _P_LOW or u > 1.0 - _P_LOW) else 0
    for j in range(nt):
        i = tix[j]
        zb[i] = _tail(ub[i])


@numba.njit(cache=True, inline="always", error_model="numpy")
def _convert(ip, iq, var, z, g_h, o_h, isat, shot, cvar, analog, has_var, lo, hi, inv_span,
             inl4):
    """One ADC conversion, shared by ``readout`` and ``readout_t._readout_t_kernel``: the
    positive (``ip``) and, ``analog``, negative (``iq``) column currents with leakage and RTN
    (A) -> integrator clipping, analog subtraction, read-noise variance (``var``, LSB^2, the
    summed cell variance when ``has_var``, else shot noise ``shot |I|``) plus ``cvar``, gain
    ``g_h`` (1/A) and offset, one normal ``z``, INL, rounding and the code range."""
    ip = isat if ip > isat else ip
    ip = -isat if ip < -isat else ip
    reading = ip
    if analog:
        iq = isat if iq > isat else iq
        reading = ip - iq
    if has_var:
        var = var + cvar
    else:
        var = shot * abs(ip) + cvar
        if analog:
            var += shot * abs(iq)
    v = reading * g_h + o_h + math.sqrt(var) * z
    u = (v - lo) * inv_span
    u = 0.0 if u < 0.0 else u
    u = 1.0 if u > 1.0 else u
    v += inl4 * u * (1.0 - u)
    c = math.floor(v + 0.5)
    c = lo if c < lo else c
    return hi if c > hi else c


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _readout_kernel(cur, leak, nbits, ch_pos, ch_neg, ch_tgt, ch_coef, ch_adc, adc_gain,
                    adc_offset, par, key, counter0, z, use_hash, analog, var_off, vleak, out):
    nrows = cur.shape[0]
    nvec = nrows // nbits
    nch = ch_pos.size
    ncol = out.shape[1]
    isat = par[P_ISAT]
    inv_step = 1.0 / par[P_STEP]
    shot = par[P_SHOT] * inv_step * inv_step
    vscale = inv_step * inv_step
    cvar = par[P_CONST_VAR] * inv_step * inv_step + par[P_NOISE_LSB] * par[P_NOISE_LSB]
    lo = par[P_LO]
    hi = par[P_HI]
    inv_span = 1.0 / (hi - lo)
    inl4 = 4.0 * par[P_INL]
    has_var = var_off >= 0
    g_ch = np.empty(nch)
    o_ch = np.empty(nch)
    for h in range(nch):
        g_ch[h] = adc_gain[ch_adc[h]] * inv_step
        o_ch[h] = adc_offset[ch_adc[h]]
    nchunk = min(nvec, 64)
    for ck in numba.prange(nchunk):
        zb = np.empty(nch)
        ub = np.empty(nch)
        ib = np.empty(nch)
        qb = np.empty(nch)
        vb = np.empty(nch)
        acc = np.empty(nch)
        tix = np.empty(nch, dtype=np.int64)
        for b in range(ck * nvec // nchunk, (ck + 1) * nvec // nchunk):
            acc[:] = 0.0
            for k in range(nbits):
                n = b * nbits + k
                w = float(1 << k)
                if use_hash:
                    _hash_normals(key, np.uint64(counter0 + n * nch), 1, nch, ub, zb, tix)
                else:
                    for h in range(nch):
                        zb[h] = z[n, h]
                crow = cur[n]
                for h in range(nch):
                    p = ch_pos[h]
                    ib[h] = crow[p] + leak[p]
                if analog:
                    for h in range(nch):
                        q = ch_neg[h]
                        qb[h] = crow[q] + leak[q]
                if var_off >= 0:  # per-cell variances summed by the BLAS product
                    for h in range(nch):
                        p = ch_pos[h]
                        vb[h] = (crow[var_off + p] + vleak[p]) * vscale
                    if analog:
                        for h in range(nch):
                            q = ch_neg[h]
                            vb[h] += (crow[var_off + q] + vleak[q]) * vscale
                for h in range(nch):
                    acc[h] += w * _convert(ib[h], qb[h], vb[h], zb[h], g_ch[h], o_ch[h],
                                           isat, shot, cvar, analog, has_var, lo, hi,
                                           inv_span, inl4)
            for h in range(nch):
                t = ch_tgt[h]
                if t >= 0:
                    out[b, t] += ch_coef[h] * acc[h]
                else:
                    for j in range(ncol):
                        out[b, j] += ch_coef[h] * acc[h]


def readout(cur, leak, nbits, channels, adc_gain, adc_offset, par, *, key=0, counter0=0,
            z=None, n_out_cols, vleak=None):
    """Fused periphery (numba). Returns (codes combined per logical column (B, C), charge (P,)).

    ``cur`` (B*nbits, P) or (B*nbits, 2P): column currents without the constant leakage
    ``leak`` (P,); with 2P columns the second half holds each column's summed cell-noise
    variance (A^2) without the constant ``vleak`` (P,), else the cell noise is shot noise
    ``par[P_SHOT] |I|``.
    ``channels``: dict of int arrays pos, neg (-1 none), tgt (-1 = every column), coef, adc.
    Noise normals come from the counter hash under ``key`` (counter ``counter0 + n*H + h``)
    or, if ``z`` is given, from ``z`` (B*nbits, H).
    """
    cur = np.ascontiguousarray(cur)
    nrows = cur.shape[0]
    nvec = nrows // nbits
    out = np.zeros((nvec, n_out_cols), dtype=np.float64)
    use_hash = z is None
    zz = np.zeros((1, 1), dtype=np.float64) if use_hash else np.ascontiguousarray(z, dtype=np.float64)
    leak = np.ascontiguousarray(leak, dtype=np.float64)
    analog = bool(np.all(channels["neg"] >= 0))
    if not analog and np.any(channels["neg"] >= 0):
        raise ValueError("channels must be all analog (neg >= 0) or all digital (neg = -1)")
    p = leak.size
    var_off = p if cur.shape[1] == 2 * p else -1
    vleak = np.zeros(p) if vleak is None else np.ascontiguousarray(vleak, dtype=np.float64)
    _readout_kernel(cur, leak, int(nbits),
                    *(np.ascontiguousarray(channels[k], dtype=np.int64) for k in ("pos", "neg", "tgt")),
                    np.ascontiguousarray(channels["coef"], dtype=np.float64),
                    np.ascontiguousarray(channels["adc"], dtype=np.int64),
                    np.ascontiguousarray(adc_gain, dtype=np.float64),
                    np.ascontiguousarray(adc_offset, dtype=np.float64),
                    np.ascontiguousarray(par, dtype=np.float64), np.uint64(key),
                    np.int64(counter0), zz, use_hash, analog, int(var_off), vleak, out)
    charge = cur[:, :p].sum(axis=0, dtype=np.float64) + nrows * leak
    return out, charge


def readout_numpy(cur, leak, nbits, channels, adc_gain, adc_offset, par, *, key=0, counter0=0,
                  z=None, n_out_cols, vleak=None):
    """Plain NumPy reference twin of :func:`readout`."""
    cur = np.asarray(cur, dtype=np.float64)
    nrows = cur.shape[0]
    nvec = nrows // nbits
    nch = channels["pos"].size
    if z is None:
        counters = counter0 + np.arange(nrows * nch, dtype=np.uint64)
        z = _inv_norm_numpy(_uniform_numpy(key, counters)).reshape(nrows, nch)
    leak = np.asarray(leak, dtype=np.float64)
    p = leak.size
    vcur = cur[:, p:] if cur.shape[1] == 2 * p else None
    cur = cur[:, :p]
    vleak = np.zeros(p) if vleak is None else np.asarray(vleak, dtype=np.float64)
    tot = cur + leak[None, :]
    isat = par[P_ISAT]
    inv_step = 1.0 / par[P_STEP]
    shot = par[P_SHOT] * inv_step * inv_step
    cvar = par[P_CONST_VAR] * inv_step * inv_step + par[P_NOISE_LSB] * par[P_NOISE_LSB]
    lo, hi = par[P_LO], par[P_HI]
    pos = np.clip(tot[:, channels["pos"]], -isat, isat)
    analog = bool(np.all(channels["neg"] >= 0))
    reading = pos
    if analog:
        neg = np.minimum(tot[:, channels["neg"]], isat)
        reading = pos - neg
    if vcur is not None:
        vs = inv_step * inv_step
        var = (vcur[:, channels["pos"]] + vleak[channels["pos"]]) * vs
        if analog:
            var = var + (vcur[:, channels["neg"]] + vleak[channels["neg"]]) * vs
        var = var + cvar
    else:
        var = shot * np.abs(pos) + cvar
        if analog:
            var = var + shot * np.abs(neg)
    g = (adc_gain[channels["adc"]] * inv_step)[None, :]
    o = adc_offset[channels["adc"]][None, :]
    v = reading * g + o + np.sqrt(var) * z
    u = np.clip((v - lo) * (1.0 / (hi - lo)), 0.0, 1.0)
    v = v + 4.0 * par[P_INL] * u * (1.0 - u)
    codes = np.clip(np.floor(v + 0.5), lo, hi)
    weights = (2.0 ** np.arange(nbits))[None, :, None]
    acc = (codes.reshape(nvec, nbits, nch) * weights).sum(axis=1)  # (B, H)
    out = np.zeros((nvec, n_out_cols))
    for h in range(nch):
        t = channels["tgt"][h]
        if t >= 0:
            out[:, t] += channels["coef"][h] * acc[:, h]
        else:
            out += channels["coef"][h] * acc[:, h][:, None]
    charge = cur.sum(axis=0, dtype=np.float64) + nrows * leak
    return out, charge


# ------------------------------------------------------------------ word-line stats ----
@numba.njit(cache=True, parallel=True)
def _wl_stats_kernel(x, nbits, active):
    nb, nr = x.shape
    mask = (1 << nbits) - 1
    runs = 0
    for b in numba.prange(nb):  # vectors in parallel; runs summed as a reduction
        n_runs = 0
        for k in range(nbits):
            active[b * nbits + k] = 0
        for r in range(nr):
            v = x[b, r] & mask
            s = v & ~(v << 1)  # first bit of each run of ones
            while s:
                n_runs += 1
                s &= s - 1
            for k in range(nbits):
                active[b * nbits + k] += (v >> k) & 1
        runs += n_runs
    return runs


@numba.njit(cache=True, parallel=True)
def _wl_stats_hist_kernel(x, nbits, runs_of, active):
    """:func:`_wl_stats_kernel` for short codes (nbits <= 6): a histogram of each vector's
    codes (one increment per row), then active rows and runs from its 2^nbits bins (issue
    17: the per-row bit loop with its stores cost ~5x more)."""
    nb, nr = x.shape
    ncode = 1 << nbits
    mask = ncode - 1
    runs = 0
    for b in numba.prange(nb):
        hv = np.zeros(ncode, dtype=np.int64)
        xb = x[b]
        for r in range(nr):
            hv[xb[r] & mask] += 1
        n_runs = 0
        for k in range(nbits):
            a = 0
            for v in range(ncode):
                a += hv[v] * ((v >> k) & 1)
            active[b * nbits + k] = a
        for v in range(ncode):
            n_runs += hv[v] * runs_of[v]
        runs += n_runs
    return runs


def wl_stats(x: np.ndarray, nbits: int):
    """Bit-serial word-line statistics: (active rows per cycle (B*nbits,), runs of ones).

    A run of consecutive one-bits is one word-line pulse held over those cycles: 2 toggles.
    """
    x = code_rows(x)
    active = np.empty(x.shape[0] * nbits, dtype=np.int64)
    if nbits <= 6:
        runs = _wl_stats_hist_kernel(x, int(nbits), _runs_table(int(nbits)), active)
    else:
        runs = _wl_stats_kernel(x, int(nbits), active)
    return active, int(runs)


def wl_stats_numpy(x: np.ndarray, nbits: int):
    x = np.asarray(x, dtype=np.int64) & ((1 << nbits) - 1)
    planes = bitplanes_numpy(x, nbits)
    active = planes.sum(axis=1).astype(np.int64)
    starts = x & ~(x << 1)
    runs = sum(bin(int(v)).count("1") for v in starts.ravel()) if starts.size < 10**6 else \
        int(np.unpackbits(starts.astype(">u8").view(np.uint8)).sum())
    return active, int(runs)

