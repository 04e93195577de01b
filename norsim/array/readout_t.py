"""Column-major fast path of the array readout (issue 17), with its NumPy reference twin.

The fast bit-serial path keeps the column currents transposed, ``cur_t`` (columns,
vector x cycle): one BLAS product ``g.T @ planes.T``. Each physical column's readings then lie
contiguous in memory, so

* the exact RTN corrections (``kernels.rtn_corrections``: one contiguous row per column that
  holds trapped cells) are added while the readout reads them, instead of by a transposed add
  into the row-major currents (which cost as much as the readout itself);
* the readout runs along each channel's readings with unit stride (vectorised loads instead of
  a gather per conversion).

The arithmetic per conversion is that of ``kernels.readout`` (same normals, addressed by the
same counters ``counter0 + n * H + h``, same clipping, INL, rounding and shift-add); only the
float32 currents are summed in another order (the BLAS product of the transposed operands and
the RTN correction added in float64), a change of a few float32 ulps of a column current.

Cell read-noise variance (``var_mode``):

* 0: shot only, ``par[P_SHOT] |I|`` (the array uses it with 0 when cell noise is off);
* 1: exact: rows ``var_off + p`` of ``cur_t`` hold the per-cell variance product
  ``planes @ (v_on - v_off)`` of physical column p;
* 2: bounded ratio: ``vratio[p] * cur_t[p]``, the column's variance per unit of current times
  the current, with no second product. ``NorArray`` uses it only where the worst-case error of
  the resulting noise sigma, times the largest normal the counter hash can draw, stays below
  ``VARIANCE_ERROR_LIMIT_LSB`` (see ``variance_ratio``); ``array.noise.cell_variance =
  'exact'`` always uses mode 1.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from norsim.array.kernels import (P_CONST_VAR, P_HI, P_INL, P_ISAT, P_LO, P_NOISE_LSB, P_SHOT,
                                  P_STEP, _convert, _hash_normals, _inv_norm, _inv_norm_numpy,
                                  _uniform_numpy, readout_numpy)

#: the bounded-ratio variance is used only where its worst-case effect on one conversion,
#: |d sigma| x Z_MAX, is below this (LSB); issue 17 allows errors below 1/10 LSB
VARIANCE_ERROR_LIMIT_LSB = 0.1
#: the largest |z| the counter-hash sampler can return (its smallest uniform is 2^-54)
Z_MAX = float(abs(_inv_norm_numpy(np.array([0.5 / 9007199254740992.0]))[0]))


def variance_ratio(g: np.ndarray, v: np.ndarray):
    """Per physical column: (ratio r_p = sum V / sum G, worst-case |sum_S (V - r_p G)| over
    every subset S of rows (A^2)).

    ``g`` (rows, P) is the current matrix the product uses (on minus off current), ``v``
    (rows, P) the per-cell variance matrix (on minus off variance). The bound is the larger
    of the summed positive and summed negative residuals: the worst a set of active rows can
    do. r_p zeroes the residuals' sum, which balances the two."""
    g = np.asarray(g, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    sg = g.sum(axis=0)
    r = np.divide(v.sum(axis=0), sg, out=np.zeros(g.shape[1]), where=sg != 0)
    e = v - r[None, :] * g
    bound = np.maximum(np.clip(e, 0, None).sum(axis=0), np.clip(-e, 0, None).sum(axis=0))
    return r, bound


def sigma_error_bound_lsb(bound_a2: np.ndarray, channels, step_a: float,
                          const_var_lsb2: float, vleak_a2: np.ndarray) -> float:
    """Worst |sigma_ratio - sigma_exact| of any conversion (LSB): |d var| / (2 sqrt(var_min))
    with var_min the variance no conversion goes below (kT/C + ADC noise + the leaking
    cells' variance). Infinite when that floor is 0."""
    inv2 = 1.0 / (step_a * step_a)
    pos, neg = channels["pos"], channels["neg"]
    e = bound_a2[pos] * inv2
    vmin = const_var_lsb2 + np.maximum(vleak_a2[pos], 0) * inv2
    if np.all(neg >= 0):
        e = e + bound_a2[neg] * inv2
        vmin = vmin + np.maximum(vleak_a2[neg], 0) * inv2
    if e.size == 0:
        return 0.0
    if np.any(vmin <= 0):
        return math.inf
    return float(np.max(e / (2.0 * np.sqrt(vmin))))


@numba.njit(cache=True, fastmath={"reassoc", "nsz"})
def _sum_reassoc(b, m):
    """Sum of ``b[:m]`` (float64), reassociated so that it vectorises (the charge's sum
    order is free: its tests hold it to 1e-12 relative)."""
    s = 0.0
    for i in range(m):
        s += b[i]
    return s


@numba.njit(cache=True, inline="always", error_model="numpy")
def _rtn_shared(ib, wb, sb, su, stix, crow, sr, w1r, srho, vconst, key, ctr0, ncolp):
    """Approximate RTN tier (``rtn_tier``) on one column's readings of a chunk: add the
    shared part ``sqrt(r_k) sqrt(I) sqrt(rho) z_b`` (one normal per multiply, counter
    ``ctr0 + b P``) to the currents ``ib`` and leave the white variance
    ``(1 - rho) r_k I + vconst`` in ``wb`` (I = max(product current, 0))."""
    nv = sb.size
    ncyc = sr.size
    _hash_normals(key, ctr0, ncolp, nv, su, sb, stix)
    for b in range(nv):
        zz = srho * sb[b]
        for k in range(ncyc):
            i = b * ncyc + k
            c = np.float64(crow[i])
            c = c if c > 0.0 else 0.0
            ib[i] = ib[i] + (sr[k] * math.sqrt(c)) * zz
            wb[i] = w1r[k] * c + vconst


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _readout_t_kernel(cur_t, corr, slot, start, leak, nbits, ch_pos, ch_neg, ch_tgt, ch_coef,
                      ch_adc, adc_gain, adc_offset, par, key, counter0, z, use_hash, analog,
                      var_mode, var_off, vratio, vleak, rtn_on, rtn_sr, rtn_w1r, rtn_srho,
                      rtn_vconst, rtn_key, mult0, sum_charge, out_t):
    """The fused periphery of :func:`readout_t` (its arguments, flattened). ``sum_charge``:
    every physical column is read by exactly one channel, so the kernel also sums each
    column's readings with their RTN corrections as it reads them (no second pass over the
    currents); returns those sums per chunk (nchunk, P), else a (1, P) zero array."""
    nrows = cur_t.shape[1]
    nvec = nrows // nbits
    nch = ch_pos.size
    ncol = out_t.shape[0]
    isat = par[P_ISAT]
    inv_step = 1.0 / par[P_STEP]
    shot = par[P_SHOT] * inv_step * inv_step
    vscale = inv_step * inv_step
    cvar = par[P_CONST_VAR] * inv_step * inv_step + par[P_NOISE_LSB] * par[P_NOISE_LSB]
    lo = par[P_LO]
    hi = par[P_HI]
    inv_span = 1.0 / (hi - lo)
    inl4 = 4.0 * par[P_INL]
    has_var = var_mode > 0 or rtn_on
    ncolp = leak.size
    # rows per multiply: the shift-add's nbits, or (per-conversion codes, nbits = 1) the
    # approximate RTN tier's cycles per multiply; chunks hold whole multiplies
    ncyc = rtn_sr.shape[1]
    rpm = nbits if nbits > ncyc else ncyc
    nmul = nrows // rpm
    nchunk = max(1, min(nmul, max(4, nmul // 256)))  # long unit-stride runs per channel
    charge_part = np.zeros((nchunk if sum_charge else 1, ncolp))
    for ck in numba.prange(nchunk):
        n0 = (ck * nmul // nchunk) * rpm
        n1 = ((ck + 1) * nmul // nchunk) * rpm
        v0 = n0 // nbits
        v1 = n1 // nbits
        m = n1 - n0
        zb = np.empty(m)
        ub = np.empty(m)
        ib = np.empty(m)
        qb = np.empty(m)
        vb = np.empty(m)
        cb = np.empty(m)
        ab = np.empty(v1 - v0)
        tix = np.empty(m, dtype=np.int64)
        wb = np.zeros(m)   # approximate RTN tier: white fast-trap variance (A^2)
        sb = np.empty(m // rpm)
        su = np.empty(m // rpm)
        stix = np.empty(m // rpm, dtype=np.int64)
        for h in range(nch):
            if use_hash:
                _hash_normals(key, counter0 + n0 * nch + h, nch, m, ub, zb, tix)
            else:
                zv = z[n0:n0 + m]
                for i in range(m):
                    zb[i] = zv[i, h]
            # unit-stride views indexed from 0 (no negative-index test: the loops vectorise)
            p = ch_pos[h]
            crow = cur_t[p, n0:n0 + m]
            lp = leak[p]
            sp = slot[p]
            if sp >= 0:
                crr = corr[sp, start + n0:start + n0 + m]
                for i in range(m):
                    ib[i] = np.float64(crow[i]) + np.float64(crr[i])
            else:
                for i in range(m):
                    ib[i] = np.float64(crow[i])
            if sum_charge:
                charge_part[ck, p] += _sum_reassoc(ib, m)
            if rtn_on:
                _rtn_shared(ib, wb, sb, su, stix, crow, rtn_sr[p], rtn_w1r[p], rtn_srho[p],
                            rtn_vconst[p], rtn_key, (mult0 + n0 // rpm) * ncolp + p, ncolp)
            for i in range(m):
                ib[i] += lp
            vl = vleak[p]
            if var_mode == 1:
                vrow = cur_t[var_off + p, n0:n0 + m]
                for i in range(m):
                    vb[i] = ((np.float64(vrow[i]) + wb[i]) + vl) * vscale
            elif var_mode == 2:
                rp = vratio[p]
                for i in range(m):
                    vb[i] = ((rp * np.float64(crow[i]) + wb[i]) + vl) * vscale
            elif rtn_on:
                for i in range(m):
                    vb[i] = (wb[i] + 0.0) * vscale
            if analog:
                q = ch_neg[h]
                qrow = cur_t[q, n0:n0 + m]
                lq = leak[q]
                sq = slot[q]
                if sq >= 0:
                    crq = corr[sq, start + n0:start + n0 + m]
                    for i in range(m):
                        qb[i] = np.float64(qrow[i]) + np.float64(crq[i])
                else:
                    for i in range(m):
                        qb[i] = np.float64(qrow[i])
                if sum_charge:
                    charge_part[ck, q] += _sum_reassoc(qb, m)
                if rtn_on:
                    _rtn_shared(qb, wb, sb, su, stix, qrow, rtn_sr[q], rtn_w1r[q],
                                rtn_srho[q], rtn_vconst[q], rtn_key,
                                (mult0 + n0 // rpm) * ncolp + q, ncolp)
                for i in range(m):
                    qb[i] += lq
                vl = vleak[q]
                if var_mode == 1:
                    vrow = cur_t[var_off + q, n0:n0 + m]
                    for i in range(m):
                        vb[i] += ((np.float64(vrow[i]) + wb[i]) + vl) * vscale
                elif var_mode == 2:
                    rq = vratio[q]
                    for i in range(m):
                        vb[i] += ((rq * np.float64(qrow[i]) + wb[i]) + vl) * vscale
                elif rtn_on:
                    for i in range(m):
                        vb[i] += (wb[i] + 0.0) * vscale
            g_h = adc_gain[ch_adc[h]] * inv_step
            o_h = adc_offset[ch_adc[h]]
            for i in range(m):
                cb[i] = _convert(ib[i], qb[i], vb[i], zb[i], g_h, o_h, isat, shot, cvar,
                                 analog, has_var, lo, hi, inv_span, inl4)
            t = ch_tgt[h]
            coef = ch_coef[h]
            for b in range(v1 - v0):
                a = 0.0
                for k in range(nbits):
                    a += float(1 << k) * cb[b * nbits + k]
                ab[b] = coef * a
            if t >= 0:
                orow = out_t[t, v0:v1]
                for b in range(v1 - v0):
                    orow[b] += ab[b]
            else:
                for j in range(ncol):
                    orow = out_t[j, v0:v1]
                    for b in range(v1 - v0):
                        orow[b] += ab[b]
    return charge_part


def _prep(cur_t, corr, slot, leak, channels, vratio, vleak, var_mode, p):
    leak = np.ascontiguousarray(leak, dtype=np.float64)
    vleak = np.zeros(p) if vleak is None else np.ascontiguousarray(vleak, dtype=np.float64)
    vratio = np.zeros(p) if vratio is None else np.ascontiguousarray(vratio, dtype=np.float64)
    if corr is None or slot is None:
        corr = np.zeros((1, 1), dtype=cur_t.dtype)
        slot = np.full(p, -1, dtype=np.int64)
    analog = bool(np.all(channels["neg"] >= 0))
    if not analog and np.any(channels["neg"] >= 0):
        raise ValueError("channels must be all analog (neg >= 0) or all digital (neg = -1)")
    if var_mode == 1 and cur_t.shape[0] != 2 * p:
        raise ValueError("var_mode 1 needs the variance rows p..2p-1 in cur_t")
    return corr, np.ascontiguousarray(slot, dtype=np.int64), leak, vleak, vratio, analog


def _rtn_args(rtn, p, nbits):
    """The RTN tier's arrays as both twins use them: (on, sqrt(ratio), (1 - rho) ratio,
    sqrt(rho), vconst, key, mult0)."""
    if rtn is None:
        return (False, np.zeros((p, nbits)), np.zeros((p, nbits)), np.zeros(p), np.zeros(p),
                np.uint64(0), np.int64(0))
    ratio, rho, vconst, key, mult0 = rtn
    ratio = np.ascontiguousarray(ratio, dtype=np.float64)
    if ratio.ndim != 2 or ratio.shape[0] != p or (nbits != 1 and ratio.shape[1] != nbits):
        raise ValueError(f"rtn ratio of shape {ratio.shape}, expected {(p, nbits)} (or "
                         f"(P, cycles) for per-conversion codes, nbits = 1)")
    rho = np.asarray(rho, dtype=np.float64)
    return (True, np.sqrt(np.maximum(ratio, 0.0)),
            np.ascontiguousarray((1.0 - rho)[:, None] * ratio),
            np.sqrt(np.clip(rho, 0.0, 1.0)), np.ascontiguousarray(vconst, dtype=np.float64),
            np.uint64(key), np.int64(mult0))


def readout_t(cur_t, leak, nbits, channels, adc_gain, adc_offset, par, *, corr=None, slot=None,
              start=0, key=0, counter0=0, z=None, n_out_cols, var_mode=0, vratio=None,
              vleak=None, rtn=None):
    """Fused periphery on column-major currents (numba). Returns (codes combined per logical
    column (B, C), charge (P,)).

    ``cur_t`` (P or 2P, B*nbits): column currents without the leakage ``leak`` (P,) (rows
    P..2P-1: the variance product, ``var_mode`` 1). ``corr`` (slots, N) and ``slot`` (P,)
    (-1: none): RTN corrections of physical column p in ``corr[slot[p], start + n]``.
    ``z`` (B*nbits, H) normals, else the counter hash under ``key`` (counter
    ``counter0 + n*H + h``), as :func:`norsim.array.kernels.readout`.
    ``rtn``: the approximate RTN tier's (ratio (P, nbits), shared fraction rho (P,), constant
    variance (P,) A^2, key, index of the chunk's first multiply) (``norsim.array.rtn_tier``):
    physical column p's reading in cycle k of multiply b gets ``sqrt(rho r I) z`` (I its
    product current, r = ratio[p, k], z = the counter-hash normal ``(mult0 + b) P + p``) and
    its conversion the variance ``(1 - rho) r I + vconst``; None: off.
    """
    p = leak.size
    cur_t = np.ascontiguousarray(cur_t)
    nrows = cur_t.shape[1]
    corr, slot, leak, vleak, vratio, analog = _prep(cur_t, corr, slot, leak, channels, vratio,
                                                    vleak, var_mode, p)
    out_t = np.zeros((n_out_cols, nrows // nbits), dtype=np.float64)
    use_hash = z is None
    zz = np.zeros((1, 1)) if use_hash else np.ascontiguousarray(z, dtype=np.float64)
    # the kernel sums the charge as it reads when each physical column has one reader
    reads = np.bincount(channels["pos"], minlength=p)[:p]
    if analog:
        reads = reads + np.bincount(channels["neg"], minlength=p)[:p]
    sum_charge = reads.size == p and bool(np.all(reads == 1))
    part = _readout_t_kernel(cur_t, corr, slot, int(start), leak, int(nbits),
                      *(np.ascontiguousarray(channels[k], dtype=np.int64)
                        for k in ("pos", "neg", "tgt")),
                      np.ascontiguousarray(channels["coef"], dtype=np.float64),
                      np.ascontiguousarray(channels["adc"], dtype=np.int64),
                      np.ascontiguousarray(adc_gain, dtype=np.float64),
                      np.ascontiguousarray(adc_offset, dtype=np.float64),
                      np.ascontiguousarray(par, dtype=np.float64), np.uint64(key),
                      np.int64(counter0), zz, use_hash, analog, int(var_mode), int(p), vratio,
                      vleak, *_rtn_args(rtn, p, int(nbits)), sum_charge, out_t)
    if sum_charge:
        return out_t.T, part.sum(axis=0) + nrows * leak
    charge = cur_t[:p].sum(axis=1, dtype=np.float64) + nrows * leak
    has = slot >= 0
    if has.any():  # row sums of the slice in place (no gathered copy)
        charge[has] += corr[:, start:start + nrows].sum(axis=1, dtype=np.float64)[slot[has]]
    return out_t.T, charge


def readout_t_numpy(cur_t, leak, nbits, channels, adc_gain, adc_offset, par, *, corr=None,
                    slot=None, start=0, key=0, counter0=0, z=None, n_out_cols, var_mode=0,
                    vratio=None, vleak=None, rtn=None):
    """Reference twin of :func:`readout_t`: the row-major currents it stands for, with the RTN
    corrections added and (var_mode 2) the ratio variance as explicit columns, through
    :func:`norsim.array.kernels.readout_numpy`."""
    p = np.asarray(leak).size
    cur_t = np.asarray(cur_t)
    nrows = cur_t.shape[1]
    corr, slot, leak, vleak, vratio, _ = _prep(cur_t, corr, slot, leak, channels, vratio,
                                               vleak, var_mode, p)
    raw = cur_t[:p].astype(np.float64)
    cur = raw.copy()
    has = slot >= 0
    if has.any():
        cur[has] += corr[slot[has], start:start + nrows].astype(np.float64)
    white = 0.0
    if rtn is not None:  # approximate RTN tier: shared normal per multiply, white variance
        _, sr, w1r, srho, vconst, rkey, mult0 = _rtn_args(rtn, p, int(nbits))
        ncyc = sr.shape[1]
        k = np.arange(nrows) % ncyc
        b = np.arange(nrows) // ncyc
        ctr = ((int(mult0) + b)[None, :] * p + np.arange(p)[:, None]).astype(np.uint64)
        zs = _inv_norm_numpy(_uniform_numpy(rkey, ctr))
        c = np.maximum(raw, 0.0)
        cur = cur + (sr[:, k] * np.sqrt(c)) * (srho[:, None] * zs)
        white = w1r[:, k] * c + vconst[:, None]
    if var_mode == 1:
        cur = np.concatenate([cur, cur_t[p:2 * p].astype(np.float64) + white])
    elif var_mode == 2:
        cur = np.concatenate([cur, vratio[:, None] * raw + white])
    elif rtn is not None:
        cur = np.concatenate([cur, white + 0.0])
        vleak = np.zeros(p)
    par = np.array(par, dtype=np.float64)
    if var_mode == 0 and rtn is None:
        vleak = None
    return readout_numpy(cur.T, leak, nbits, channels, np.asarray(adc_gain, np.float64),
                         np.asarray(adc_offset, np.float64), par, key=key, counter0=counter0,
                         z=z, n_out_cols=n_out_cols, vleak=vleak)
