"""The ISPP program-and-verify numba kernel (:func:`_ispp_kernel`): erase state in, every cell
verified and pulsed per its staircase (then two-way tuning) in SIMD blocks of live cells;
part of :mod:`norsim.device.programming`. Its NumPy reference is
:func:`norsim.device.ispp_numpy._ispp_numpy`, which draws the same numbers.
"""

from __future__ import annotations

import numba
import numpy as np

from norsim.device.counter_rng import (_GUIDE_BINS, _PCDF, _PGUIDE, _THIN_UNROLLED, PTRS_ABOVE,
                                       _normal, _poisson, _poisson_table, _uniform)
from norsim.device.vecmath import box_muller, log1p_pos

STRIDE = 64  # counter slots per pulse: 1-2 verify normal, 16-18 program Poisson,
#              24 tuning Poisson, 32.. traps (a Poisson draw's thinning uniforms after the
#              first and PTRS's later attempts use counter + multiples of 2^32, far above
#              every regular counter)
_TRAP_SLOT = 32
# A verify read whose pass would need a noise excursion above FAR_SIGMAS standard deviations
# (with every RTN trap occupied) is decided as a fail without drawing (P < 1e-15); traps are
# then advanced over the skipped interval in one exact Markov step when next needed.
FAR_SIGMAS = 8.0


@numba.njit(cache=True, inline="always")
def _rtn_now(vth, amp, occ, k, rtn_mean, rtn_gain, vth_erased, vth_window):
    m = rtn_mean * max(1.0 + rtn_gain * (vth - vth_erased) / vth_window, 0.0)
    tot = 0.0
    for j in range(amp.shape[1]):
        tot += amp[k, j] * (1.0 if occ[k, j] else 0.0)  # the same sum, without a branch
    return m * tot


@numba.njit(cache=True, inline="always")
def _trap_update(seed, base, k, occ, p_occ, decay, lag):
    for j in range(occ.shape[1]):
        st = 1.0 if occ[k, j] else 0.0
        d = decay[k, j] if lag == 1 else decay[k, j] ** float(lag)  # x ** 1 == x exactly
        prob = p_occ[k, j] + (st - p_occ[k, j]) * d
        occ[k, j] = _uniform(seed, base + np.uint64(_TRAP_SLOT + j)) < prob


_BLOCK = 256  # cells of one parallel task: their pulses run as SIMD loops over the live ones
_NN_COUNT = 6  # Poisson(1) candidates counted against the CDF without a guide walk
_TUNE_COUNT = 16  # tune-draw CDF entries compared without branches


@numba.njit(cache=True, inline="always", error_model="numpy")
def _ispp_scalar_pulse(i, q, base, kp, c_k, c_vth, c_z, c_seed, c_tgt, c_sig, c_amps, c_stuck,
                       c_last, occ, amp, p_occ, decay, qpow, lam_scale, dz_per_electron, dv_e,
                       rtn_mean, rtn_gain, vth_erased, vth_window, verify_rtn, last):
    """One ISPP iteration (verify, then a pulse unless it passed or ``last``) of local cell
    ``q`` exactly as :func:`_ispp_numpy`; True if the cell passed verify."""
    k = c_k[q]
    seed = c_seed[q]
    vth = c_vth[q]
    rmax = 0.0
    if verify_rtn:
        rmax = c_amps[q] * rtn_mean * max(1.0 + rtn_gain * (vth - vth_erased) / vth_window, 0.0)
    if vth + rmax + FAR_SIGMAS * c_sig[q] >= c_tgt[q]:
        lag = i - c_last[q]
        if verify_rtn and lag > 0:
            _trap_update(seed, base, k, occ, p_occ, decay, lag)
            c_last[q] = i
        rtn = _rtn_now(vth, amp, occ, k, rtn_mean, rtn_gain, vth_erased, vth_window) \
            if verify_rtn else 0.0
        if vth + rtn + c_sig[q] * _normal(seed, base + np.uint64(1)) >= c_tgt[q]:
            return True
    if last or c_stuck[q]:  # no pulse / a stuck-on cell is pulsed without moving
        return False
    z = c_z[q]
    lam = lam_scale * log1p_pos(kp * z)
    nel = _poisson(lam, seed, base + np.uint64(16))
    c_vth[q] = vth + nel * dv_e
    ne = int(nel)
    c_z[q] = z * (qpow[ne] if ne < qpow.size else np.exp(-dz_per_electron * nel))
    return False


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _ispp_kernel(vth0, target, sig_v, tol_v, stuck, seeds, amp, p_occ, decay, occ0,
                 z0, kpulse, qpow, lam_scale, dz_per_electron, tune_cdf, tune_nfast,
                 alpha, r0, v0, s, t_p, dv_e, v_start, step, max_pulses, rtn_mean, rtn_gain,
                 vth_erased, vth_window, verify_rtn, tune, tune_step, tune_max,
                 tune_adaptive, tune_gain,
                 out_vth, out_pulses, out_verifies, out_tune, out_ok, out_vth_ispp):
    """Per cell exactly as :func:`_ispp_numpy`; blocks of cells run in parallel.

    A block copies the state of its live cells into contiguous local arrays. Every pulse is
    one branch-free loop over them that LLVM vectorises (injection mean by
    :func:`log1p_pos`, the Poisson draw of :func:`_poisson` by table look-ups and counts,
    the two-way tuning verify with :func:`box_muller`), which marks the rare cells that need
    the scalar path (verify near the target, a guide-table walk, a long thinning, a mean
    beyond the tables); those are redone by the scalar code, identical to the reference.
    Finished cells leave the local arrays (compaction) after the pulse.
    """
    ncell = vth0.size
    ntrap = amp.shape[1]
    occ = occ0.copy()
    tune_lam = tune_step / dv_e
    nrow = _PCDF.shape[1]
    c1 = _PCDF[1, :_NN_COUNT].copy()
    tc = np.ones(_TUNE_COUNT)
    for j in range(min(_TUNE_COUNT, tune_cdf.size)):
        tc[j] = tune_cdf[j]
    tune_vec = tune_lam < PTRS_ABOVE
    m_cap = PTRS_ABOVE - 0.5
    lag_exit = np.zeros(ncell, np.int64)
    nblk = (ncell + _BLOCK - 1) // _BLOCK
    for blk in numba.prange(nblk):
        k0 = blk * _BLOCK
        k1 = min(ncell, k0 + _BLOCK)
        nb = k1 - k0
        c_k = np.empty(nb, np.int64)
        c_vth = np.empty(nb)
        c_z = np.empty(nb)
        c_seed = np.empty(nb, np.uint64)
        c_tgt = np.empty(nb)
        c_sig = np.empty(nb)
        c_amps = np.empty(nb)
        c_stuck = np.empty(nb, np.bool_)
        c_last = np.zeros(nb, np.int64)
        c_flag = np.empty(nb, np.bool_)
        c_kk = np.empty(nb, np.int64)
        c_done = np.zeros(nb, np.bool_)
        na = 0
        for k in range(k0, k1):
            out_vth[k] = vth0[k]
            out_pulses[k] = 0
            out_verifies[k] = 0
            out_tune[k] = 0
            out_ok[k] = False
            if stuck[k] == 2:  # stuck off: reads below every target, never pulsed
                out_verifies[k] = 1
                continue
            tot = 0.0
            for j in range(ntrap):
                tot += amp[k, j]
            c_k[na] = k
            c_vth[na] = vth0[k]
            c_z[na] = z0[k]
            c_seed[na] = seeds[k]
            c_tgt[na] = target[k]
            c_sig[na] = sig_v[k]
            c_amps[na] = tot
            c_stuck[na] = stuck[k] == 1
            na += 1
        # ---------------------------------------------------------------- ISPP ----
        for i in range(max_pulses + 1):
            if na == 0:
                break
            base = np.uint64(i) * np.uint64(STRIDE)
            kp = kpulse[i]
            last = i == max_pulses
            nflag = 0
            if not last:
                b16 = base + np.uint64(16)
                b17 = base + np.uint64(17)
                b18 = base + np.uint64(18)
                for q in range(na):  # SIMD: the common pulse, flags for the scalar path
                    vth = c_vth[q]
                    z = c_z[q]
                    seed = c_seed[q]
                    rmax = 0.0
                    if verify_rtn:
                        rmax = c_amps[q] * rtn_mean * max(
                            1.0 + rtn_gain * (vth - vth_erased) / vth_window, 0.0)
                    near = vth + rmax + FAR_SIGMAS * c_sig[q] >= c_tgt[q]
                    lam = lam_scale * log1p_pos(kp * z)
                    lc = lam if lam < m_cap else m_cap  # NaN -> m_cap (flagged below)
                    m = int(lc)
                    r = lam - m
                    u0 = _uniform(seed, b16)
                    gi = int(u0 * _GUIDE_BINS)
                    gi = gi if gi < _GUIDE_BINS - 1 else _GUIDE_BINS - 1
                    g = _PGUIDE[m, gi]  # (module constants: gathers LLVM can vectorise)
                    g1 = g + 1 if g < nrow - 1 else nrow - 1
                    kk = g + (u0 > _PCDF[m, g])
                    walk = u0 > _PCDF[m, g1]
                    u1 = _uniform(seed, b17)
                    nn = 0
                    for j in range(_NN_COUNT):
                        nn += u1 > c1[j]
                    for j in range(_THIN_UNROLLED + 1):
                        kk += (nn > j) & (_uniform(seed, b18 + (np.uint64(j) << np.uint64(32))) < r)
                    fl = near | walk | (nn > _THIN_UNROLLED + 1) | (not (lam < PTRS_ABOVE)) \
                        | c_stuck[q]
                    c_flag[q] = fl
                    nflag += fl
                    c_vth[q] = vth if fl else vth + float(kk) * dv_e
                    c_kk[q] = kk
                for q in range(na):  # separate: a gather from qpow next to a store blocks SIMD
                    c_z[q] = c_z[q] if c_flag[q] else c_z[q] * qpow[c_kk[q]]
            ndone = 0
            for q in range(na if (last or nflag) else 0):
                if last or c_flag[q]:
                    passed = _ispp_scalar_pulse(
                        i, q, base, kp, c_k, c_vth, c_z, c_seed, c_tgt, c_sig, c_amps, c_stuck,
                        c_last, occ, amp, p_occ, decay, qpow, lam_scale, dz_per_electron, dv_e,
                        rtn_mean, rtn_gain, vth_erased, vth_window, verify_rtn, last)
                    if passed or last:
                        k = c_k[q]
                        out_vth[k] = c_vth[q]
                        out_pulses[k] = i
                        out_verifies[k] = i + 1
                        out_ok[k] = passed
                        lag_exit[k] = i - c_last[q]  # trap lag when it left ISPP
                        c_done[q] = True
                        ndone += 1
            if ndone:
                w = 0
                for q in range(na):
                    if c_done[q]:
                        c_done[q] = False
                        continue
                    c_k[w] = c_k[q]
                    c_vth[w] = c_vth[q]
                    c_z[w] = c_z[q]
                    c_seed[w] = c_seed[q]
                    c_tgt[w] = c_tgt[q]
                    c_sig[w] = c_sig[q]
                    c_amps[w] = c_amps[q]
                    c_stuck[w] = c_stuck[q]
                    c_last[w] = c_last[q]
                    w += 1
                na = w
        for k in range(k0, k1):  # V_th where ISPP left each cell (before tuning)
            out_vth_ispp[k] = out_vth[k]
        if not tune:
            continue
        # ------------------------------------------------------- two-way tuning ----
        # local state: cell, V_th, seed, target, sigma, tolerance, trap lag on entry, traps
        t_lag = np.zeros(nb, np.int64)
        t_tol = np.empty(nb)
        t_amp = np.empty((ntrap, nb))
        t_pocc = np.empty((ntrap, nb))
        t_dec = np.empty((ntrap, nb))
        t_occ = np.empty((ntrap, nb))
        t_rsum = np.empty(nb)  # sum of the occupied traps' unit amplitudes
        t_code = np.empty(nb, np.int8)  # 0: tuned by the SIMD loop, 1: in tolerance, 2: scalar
        na = 0
        for k in range(k0, k1):
            if not out_ok[k]:
                continue
            c_k[na] = k
            c_vth[na] = out_vth[k]
            c_seed[na] = seeds[k]
            c_tgt[na] = target[k]
            c_sig[na] = sig_v[k]
            t_tol[na] = tol_v[k]
            t_lag[na] = lag_exit[k]
            for j in range(ntrap):
                t_amp[j, na] = amp[k, j]
                t_pocc[j, na] = p_occ[k, j]
                t_dec[j, na] = decay[k, j]
                t_occ[j, na] = 1.0 if occ[k, j] else 0.0
            na += 1
        for i in range(tune_max + 1):  # the last iteration is a final verify, no pulse
            if na == 0:
                break
            t_last = i == tune_max
            base = np.uint64(max_pulses + 1 + i) * np.uint64(STRIDE)
            for q in range(na):
                t_rsum[q] = 0.0
            if verify_rtn:
                for j in range(ntrap):
                    bj = base + np.uint64(_TRAP_SLOT + j)
                    if i == 0:  # first read after ISPP: lag + 1 intervals (a power)
                        for q in range(na):
                            d = t_dec[j, q] ** float(t_lag[q] + 1) if t_lag[q] else t_dec[j, q]
                            prob = t_pocc[j, q] + (t_occ[j, q] - t_pocc[j, q]) * d
                            t_occ[j, q] = 1.0 if _uniform(c_seed[q], bj) < prob else 0.0
                    else:
                        for q in range(na):  # SIMD: one interval since the last read
                            prob = t_pocc[j, q] + (t_occ[j, q] - t_pocc[j, q]) * t_dec[j, q]
                            t_occ[j, q] = 1.0 if _uniform(c_seed[q], bj) < prob else 0.0
                    for q in range(na):
                        t_rsum[q] += t_amp[j, q] * t_occ[j, q]
            b1 = base + np.uint64(1)
            b2 = base + np.uint64(2)
            b24 = base + np.uint64(24)
            ndone = 0
            nflag = 0
            for q in range(na):  # SIMD: verify read, tolerance test, tuning pulse
                vth = c_vth[q]
                seed = c_seed[q]
                rtn = 0.0
                if verify_rtn:
                    rtn = rtn_mean * max(1.0 + rtn_gain * (vth - vth_erased) / vth_window,
                                         0.0) * t_rsum[q]
                zn = box_muller(_uniform(seed, b1), _uniform(seed, b2))
                err = vth + rtn + c_sig[q] * zn - c_tgt[q]
                dn = abs(err) <= t_tol[q]
                u = _uniform(seed, b24)
                cnt = 0
                for j in range(_TUNE_COUNT):
                    cnt += u > tc[j]
                fl = ((not tune_vec) | (cnt >= _TUNE_COUNT) | tune_adaptive) & (not t_last)
                ndone += dn
                nflag += fl & (not dn)
                t_code[q] = 1 if dn else (2 if fl else 0)
                dv = float(cnt) * dv_e
                c_vth[q] = (vth + (-dv if err > 0 else dv)) if not (dn | fl | t_last) else vth
            if nflag:
                for q in range(na):
                    if t_code[q] == 2:  # the same err again, then the scalar draw
                        vth = c_vth[q]
                        seed = c_seed[q]
                        rtn = 0.0
                        if verify_rtn:
                            rtn = rtn_mean * max(1.0 + rtn_gain * (vth - vth_erased) / vth_window,
                                                 0.0) * t_rsum[q]
                        err = vth + rtn + c_sig[q] * _normal(seed, b1) - c_tgt[q]
                        if tune_adaptive:  # model-based: a mean shift of gain x the error
                            nel = _poisson(min(tune_lam, tune_gain * abs(err) / dv_e), seed, b24)
                        elif tune_lam < PTRS_ABOVE:
                            nel = _poisson_table(tune_cdf, tune_nfast, seed, b24)
                        else:
                            nel = _poisson(tune_lam, seed, b24)
                        dv = nel * dv_e
                        c_vth[q] = vth + (-dv if err > 0 else dv)
            if ndone or t_last:
                w = 0
                for q in range(na):
                    dn = t_code[q] == 1
                    if dn or t_last:  # in tolerance, or out of pulses: flagged failed
                        k = c_k[q]
                        out_vth[k] = c_vth[q]
                        out_tune[k] = i
                        out_pulses[k] += i
                        out_verifies[k] += i + 1
                        out_ok[k] = dn
                        continue
                    c_k[w] = c_k[q]
                    c_vth[w] = c_vth[q]
                    c_seed[w] = c_seed[q]
                    c_tgt[w] = c_tgt[q]
                    c_sig[w] = c_sig[q]
                    t_tol[w] = t_tol[q]
                    for j in range(ntrap):
                        t_amp[j, w] = t_amp[j, q]
                        t_pocc[j, w] = t_pocc[j, q]
                        t_dec[j, w] = t_dec[j, q]
                        t_occ[j, w] = t_occ[j, q]
                    w += 1
                na = w
