"""Block erase, soft-program (stacked-gate) and ISPP program-and-verify to a target current.

Injection law (per pulse of width t_p at program-gate voltage V_pgm). The injection rate grows
exponentially with the floating-gate drive alpha_G (V_pgm - V_th), and injected charge raises
V_th during the pulse:
    dV_th/dt = r0 exp[(alpha_G (V_pgm - V_th) - V_0) / s]
which integrates in closed form over the pulse to the expected shift
    <dV_th> = (s / alpha_G) ln(1 + (alpha_G r0 t_p / s) exp[(alpha_G (V_pgm - V_th) - V_0) / s]).
The number of injected electrons is Poisson with mean <dV_th> / dV_e and V_th moves by
N dV_e; the floating-gate potential (V_th) is updated after every pulse. With the staircase
V_pgm = V_start + k dV_pgm the shift per pulse tends to dV_pgm (steady state of ISPP, Suh et
al. 1995) after a transient that starts far below it.

Verify (before each pulse): the cell passes when its read current is at or below the target,
I(V_th + dV_RTN) + noise <= I_target, evaluated in the V_th domain to first order:
V_th + dV_RTN + sigma_v z >= V_th,target with sigma_v = sigma_I(I_target) / |dI/dV_th|.
RTN traps are Markov two-state processes advanced by t_p + t_verify between reads.

Random numbers: each cell has its own counter-based stream (SplitMix64 of the cell seed plus a
counter; the seeds are drawn from the caller's numpy Generator), so the numba kernel (per cell,
in parallel) and the NumPy reference (per pulse, vectorised over cells) draw identical numbers
and results do not depend on the thread count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba
import numpy as np
from scipy.special import gammaln

from norsim.device.config import DeviceConfig
from norsim.device.iv import CellModel
from norsim.device.levels import current_per_vth, read_bias, target_vth
from norsim.device.noise import RtnTraps, draw_rtn_traps, read_noise_sigma_a
from norsim.device.variation import STUCK_OFF, STUCK_ON, CellVariation, no_variation
from norsim.device.vecmath import box_muller, box_muller_np, log1p_pos, log1p_pos_np
from norsim.errors import InputError

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TWO53 = 1.0 / 9007199254740992.0
STRIDE = 64  # counter slots per pulse: 1-2 verify normal, 16-18 program Poisson,
#              24 tuning Poisson, 32.. traps (a Poisson draw's thinning uniforms after the
#              first and PTRS's later attempts use counter + multiples of 2^32, far above
#              every regular counter)
_TRAP_SLOT = 32
# A verify read whose pass would need a noise excursion above FAR_SIGMAS standard deviations
# (with every RTN trap occupied) is decided as a fail without drawing (P < 1e-15); traps are
# then advanced over the skipped interval in one exact Markov step when next needed.
FAR_SIGMAS = 8.0
PTRS_ABOVE = 128.0  # Poisson means from here on use transformed rejection (PTRS); the
#                    tables below cover Poisson(m < 128) to k = 255 (tail < 1e-20)
_INV_K = 1.0 / np.arange(1, 1002, dtype=np.float64)  # 1/k table of the chop-down search
_CHOP_MAX = 1000  # the chop-down table ends at k = 1000 (P(k > 1000) is nil for lam < 64)
# ln k! for k < 4096 (PTRS's acceptance test): a table lookup instead of lgamma per draw, and
# the numba kernel and its NumPy twin read the same numbers
_LOGFACT = gammaln(np.arange(1, 4097, dtype=np.float64))
_NLOGFACT = _LOGFACT.size


def _poisson_tables(m_max: int, length: int, bins: int):
    """CDF rows of Poisson(m) for integer m < m_max (k = 0..length-1, last entry 1) and a
    guide table per row: GUIDE[m, j] = first k with CDF[m, k] >= j / bins."""
    k = np.arange(length, dtype=np.float64)
    cdf = np.ones((m_max, length))
    guide = np.zeros((m_max, bins), np.int64)
    for m in range(1, m_max):
        pmf = np.exp(-m + k * np.log(m) - gammaln(k + 1.0))
        row = np.minimum(np.cumsum(pmf), 1.0)
        row[-1] = 1.0  # the tail beyond length - 1 (< 1e-20 for m < 128) goes to the last entry
        cdf[m] = row
        guide[m] = np.searchsorted(row, np.arange(bins) / bins, side="left")
    return cdf, guide


# Poisson(lam) for lam < PTRS_ABOVE: Poisson(floor lam) by table inversion plus a Poisson(1)
# count thinned with probability frac(lam) (= Poisson(frac lam)); the sum is Poisson(lam)
# exactly, with no transcendental call
_GUIDE_BINS = 256
_PCDF, _PGUIDE = _poisson_tables(int(PTRS_ABOVE), 256, _GUIDE_BINS)
_THIN_UNROLLED = 3
_ONE32 = np.uint64(1) << np.uint64(32)
_TWO32 = np.uint64(2) << np.uint64(32)


# ----------------------------------------------------------------- counter-based RNG ----
@numba.njit(cache=True, inline="always")
def _mix(seed, counter):
    z = seed + (counter + np.uint64(1)) * _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@numba.njit(cache=True, inline="always")
def _uniform(seed, counter):
    """Uniform in (0, 1)."""
    return (float(_mix(seed, counter) >> _S11) + 0.5) * _TWO53


@numba.njit(cache=True, inline="always")
def _normal(seed, counter):
    """Box-Muller normal of the uniforms at ``counter`` and ``counter + 1``."""
    return box_muller(_uniform(seed, counter), _uniform(seed, counter + np.uint64(1)))


@numba.njit(cache=True, inline="always")
def _poisson(lam, seed, counter):
    """Poisson(lam) from the cell's stream at ``counter``.

    lam < PTRS_ABOVE: m = floor(lam) from the guide-table inversion of the uniform at
    ``counter``, plus N ~ Poisson(1) (uniform at counter + 1) thinned to Binomial(N, lam - m)
    by the uniforms at counter + 2 + j 2^32 (j < N): Poisson(m) + Poisson(lam - m).
    lam >= PTRS_ABOVE: transformed rejection with squeeze (PTRS, Hoermann 1993), attempt a
    using the uniforms at counter + 2a 2^32 and counter + (2a + 1) 2^32 (regular counters
    stay far below 2^32).
    """
    if lam <= 0.0:
        return 0.0
    if lam < PTRS_ABOVE:
        m = int(lam)
        r = lam - m
        k = 0
        if m > 0:
            u = _uniform(seed, counter)
            k = _PGUIDE[m, min(int(u * _GUIDE_BINS), _GUIDE_BINS - 1)]
            while u > _PCDF[m, k]:  # rarely taken: the guide entry is nearly always the answer
                k += 1
        u = _uniform(seed, counter + np.uint64(1))
        nn = _PGUIDE[1, min(int(u * _GUIDE_BINS), _GUIDE_BINS - 1)]
        while u > _PCDF[1, nn]:
            nn += 1
        # thinning: the first _THIN_UNROLLED candidates without branches (their uniforms are
        # cheap; a loop with a Poisson(1) trip count mispredicts its exit), the rest in a loop;
        # r = 0 (integer lam) thins every candidate away, as before
        c = counter + np.uint64(2)
        k += (nn > 0) & (_uniform(seed, c) < r)
        k += (nn > 1) & (_uniform(seed, c + _ONE32) < r)
        k += (nn > 2) & (_uniform(seed, c + _TWO32) < r)
        for j in range(_THIN_UNROLLED, nn):
            if _uniform(seed, c + (np.uint64(j) << np.uint64(32))) < r:
                k += 1
        return float(k)
    slam = np.sqrt(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    v_r = 0.9277 - 3.6224 / (b - 2.0)
    for att in range(1000):
        off = np.uint64(2 * att) << np.uint64(32)
        uu = _uniform(seed, counter + off) - 0.5
        v = _uniform(seed, counter + off + (np.uint64(1) << np.uint64(32)))
        us = 0.5 - abs(uu)
        k = np.floor((2.0 * a / us + b) * uu + lam + 0.43)
        if us >= 0.07 and v <= v_r:
            return k
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
        lfk = _LOGFACT[int(k)] if k < _NLOGFACT else math.lgamma(k + 1.0)
        if (np.log(v) + np.log(inv_alpha) - np.log(a / (us * us) + b)
                <= -lam + k * np.log(lam) - lfk):
            return k
    return np.floor(lam + 0.5)  # not reached in practice (acceptance > 0.9 per attempt)


def poisson_cdf_table(lam: float) -> np.ndarray:
    """CDF of Poisson(lam) at k = 0..1000, summed in the chop-down search's order, so that
    inverting one uniform against it (:func:`_poisson_table`) gives exactly the chop-down
    result of :func:`_poisson` for a fixed mean without an exponential per draw."""
    cdf = np.empty(_CHOP_MAX + 1)
    p = float(np.exp(-lam)) if lam > 0 else 1.0
    f = p
    cdf[0] = f
    for k in range(_CHOP_MAX):
        p *= lam * _INV_K[k]
        f += p
        cdf[k + 1] = f
    return cdf


def poisson_table_fast_len(cdf: np.ndarray) -> int:
    """How many leading entries of a :func:`poisson_cdf_table` :func:`_poisson_table` scans
    without branches: up to the first CDF value >= 1 - 1e-9 (a longer search is rare)."""
    return int(min(np.searchsorted(cdf, 1.0 - 1e-9, side="left") + 1, _CHOP_MAX))


@numba.njit(cache=True, inline="always")
def _poisson_table(cdf, nfast, seed, counter):
    """Poisson draw by inversion of one uniform against a :func:`poisson_cdf_table`: the
    first k with u <= cdf[k] (at most _CHOP_MAX). The CDF is nondecreasing, so that k is the
    count of the entries below u; the first ``nfast`` are counted without branches and the
    search goes on past them only when all of them are below u."""
    u = _uniform(seed, counter)
    k = 0
    for j in range(nfast):
        k += u > cdf[j]
    if k == nfast:
        while k < _CHOP_MAX and u > cdf[k]:
            k += 1
    return float(k)


def _poisson_table_np(cdf, seeds, counter):
    """NumPy twin of :func:`_poisson_table`."""
    u = _uniform_np(seeds, counter)
    return np.minimum(np.searchsorted(cdf, u, side="left"), _CHOP_MAX).astype(np.float64)


def _mix_np(seed, counter):
    with np.errstate(over="ignore"):
        z = seed + (np.uint64(counter) + np.uint64(1)) * _GOLDEN
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)


def _uniform_np(seed, counter):
    return ((_mix_np(seed, counter) >> _S11).astype(np.float64) + 0.5) * _TWO53


def _normal_np(seed, counter):
    return box_muller_np(_uniform_np(seed, counter), _uniform_np(seed, counter + 1))


def _table_np(m, u):
    """Inversion of uniforms ``u`` against the Poisson(m) rows of the guide tables."""
    k = _PGUIDE[m, np.minimum((u * _GUIDE_BINS).astype(np.int64), _GUIDE_BINS - 1)]
    while True:
        more = u > _PCDF[m, k]
        if not more.any():
            return k
        k = k + more


def _poisson_np(lam, seeds, counter):
    """NumPy twin of :func:`_poisson` (same algorithm, same stream positions)."""
    lam = np.asarray(lam, dtype=np.float64)
    out = np.zeros_like(lam)
    small = (lam > 0) & (lam < PTRS_ABOVE)
    ls, ss = lam[small], seeds[small]
    m = ls.astype(np.int64)
    r = ls - m
    k = np.where(m > 0, _table_np(m, _uniform_np(ss, counter)), 0)
    u1 = _uniform_np(ss, np.uint64(counter) + np.uint64(1))
    nn = np.where(r > 0, _table_np(np.ones_like(m), u1), 0)
    for j in range(int(nn.max(initial=0))):
        c = np.uint64(counter) + np.uint64(2) + (np.uint64(j) << np.uint64(32))
        k = k + ((j < nn) & (_uniform_np(ss, c) < r))
    out[small] = k
    big = np.flatnonzero(lam >= PTRS_ABOVE)
    if big.size:
        lb, sb = lam[big], seeds[big]
        slam = np.sqrt(lb)
        b = 0.931 + 2.53 * slam
        a = -0.059 + 0.02483 * b
        inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
        v_r = 0.9277 - 3.6224 / (b - 2.0)
        res = np.full(lb.shape, np.nan)
        todo = np.ones(lb.shape, bool)
        for att in range(1000):
            off = np.uint64(2 * att) << np.uint64(32)
            c = np.uint64(counter) + off
            uu = _uniform_np(sb, c) - 0.5
            v = _uniform_np(sb, c + (np.uint64(1) << np.uint64(32)))
            us = 0.5 - np.abs(uu)
            kk = np.floor((2.0 * a / us + b) * uu + lb + 0.43)
            quick = todo & (us >= 0.07) & (v <= v_r)
            res[quick] = kk[quick]
            todo &= ~quick
            cand = todo & ~((kk < 0) | ((us < 0.013) & (v > us)))
            if cand.any():
                with np.errstate(divide="ignore", invalid="ignore"):
                    lhs = np.log(v) + np.log(inv_alpha) - np.log(a / (us * us) + b)
                    lfk = np.where(kk < _NLOGFACT,
                                   _LOGFACT[np.clip(kk, 0, _NLOGFACT - 1).astype(np.int64)],
                                   gammaln(kk + 1.0))
                    rhs = -lb + kk * np.log(lb) - lfk
                acc = cand & (lhs <= rhs)
                res[acc] = kk[acc]
                todo &= ~acc
            if not todo.any():
                break
        res[todo] = np.floor(lb[todo] + 0.5)
        out[big] = res
    return out


# ------------------------------------------------------------------ ISPP kernel ----------
@dataclass(frozen=True)
class _Law:
    alpha_g: float
    r0: float
    v0: float
    s: float
    t_p: float
    dv_e: float
    v_start: float
    step: float
    max_pulses: int
    dt_trap: float
    rtn_mean: float
    rtn_gain: float
    vth_erased: float
    vth_window: float
    verify_rtn: bool
    tune: bool
    tune_step: float
    tune_tol: float
    tune_max: int
    tune_adaptive: bool = False
    tune_gain: float = 1.0


def wear_drive_loss_v(device: DeviceConfig) -> float:
    """Floating-gate drive lost to wear: wear_drive_loss_v x pe_cycles / 1e5 (issue 20)."""
    from norsim.device.noise import ENDURANCE_CYCLES

    return device.programming.wear_drive_loss_v * device.retention.pe_cycles / ENDURANCE_CYCLES


def _law(device: DeviceConfig, model: CellModel) -> _Law:
    from norsim.device.noise import rtn_wear_factor

    p, nz, c = device.programming, device.noise, device.cell
    cyc = device.retention.pe_cycles
    return _Law(model.fg.alpha_g, p.inj_rate_v_per_s, p.inj_offset_v + wear_drive_loss_v(device),
                p.inj_slope_v, p.pulse_width_s, p.dv_per_electron_v, p.ispp_start_v, p.ispp_step_v,
                p.max_pulses, p.pulse_width_s + verify_window_s(device),
                nz.rtn_mean_v * rtn_wear_factor(nz, cyc),
                nz.rtn_level_gain, c.vth_erased_v, c.vth_max_v - c.vth_erased_v,
                p.verify_rtn, p.two_way_tuning, p.tune_step_v, p.tune_tolerance_rel,
                p.tune_max_pulses, p.tune_adaptive, p.tune_gain)


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


def _ispp_numpy(vth0, target, sig_v, tol_v, stuck, seeds, amp, p_occ, decay, occ0,
                z0, kpulse, qpow, lam_scale, dz_per_electron, tune_cdf, law: _Law):
    """NumPy reference of :func:`_ispp_kernel` (vectorised over cells, loop over pulses)."""
    n = vth0.size
    vth = vth0.copy()
    z = z0.copy()
    occ = occ0.copy()
    pulses = np.zeros(n, np.int64)
    verifies = np.zeros(n, np.int64)
    ok = np.zeros(n, bool)
    active = stuck != STUCK_OFF
    verifies[~active] = 1

    lag = np.zeros(n, np.int64)
    amp_sum = np.sum(amp, axis=1)

    def trap_step(base, act):
        for j in range(amp.shape[1]):
            st = occ[:, j].astype(np.float64)
            prob = p_occ[:, j] + (st - p_occ[:, j]) * decay[:, j] ** lag.astype(np.float64)
            new = _uniform_np(seeds, base + _TRAP_SLOT + j) < prob
            occ[:, j] = np.where(act, new, occ[:, j])
        lag[act] = 0

    def rtn_now():
        if not law.verify_rtn:
            return np.zeros(n)
        m = law.rtn_mean * np.maximum(1.0 + law.rtn_gain * (vth - law.vth_erased) / law.vth_window, 0.0)
        return m * np.sum(amp * occ, axis=1)

    for i in range(law.max_pulses + 1):
        base = i * STRIDE
        if i > 0:
            lag += active
        verifies += active
        rmax = 0.0
        if law.verify_rtn:
            rmax = amp_sum * law.rtn_mean * np.maximum(
                1.0 + law.rtn_gain * (vth - law.vth_erased) / law.vth_window, 0.0)
        near = active & (vth + rmax + FAR_SIGMAS * sig_v >= target)
        if law.verify_rtn:
            trap_step(base, near & (lag > 0))
        passed = near & (vth + rtn_now() + sig_v * _normal_np(seeds, base + 1) >= target)
        ok |= passed
        active &= ~passed
        if i == law.max_pulses or not active.any():
            break
        pulses += active
        grow = active & (stuck != STUCK_ON)
        lam = lam_scale * log1p_pos_np(kpulse[i] * z)
        nel = _poisson_np(np.where(grow, lam, 0.0), seeds, base + 16)
        vth = vth + np.where(grow, nel * law.dv_e, 0.0)
        ne = nel.astype(np.int64)
        zq = np.where(ne < qpow.size, qpow[np.minimum(ne, qpow.size - 1)],
                      np.exp(-dz_per_electron * nel))
        z = np.where(grow, z * zq, z)
    ntune = np.zeros(n, np.int64)
    vth_ispp = vth.copy()
    if law.tune:
        active = ok.copy()
        for i in range(law.tune_max + 1):  # the last iteration is a final verify, no pulse
            base = (law.max_pulses + 1 + i) * STRIDE
            if law.verify_rtn:
                lag += active
                trap_step(base, active)
            verifies += active
            err = vth + rtn_now() + sig_v * _normal_np(seeds, base + 1) - target
            active &= ~(np.abs(err) <= tol_v)
            if i == law.tune_max:
                ok &= ~active  # out of tuning pulses and outside tolerance: failed
                break
            if not active.any():
                break
            tune_lam = law.tune_step / law.dv_e
            if law.tune_adaptive:
                lam = np.where(active, np.minimum(tune_lam, law.tune_gain * np.abs(err) / law.dv_e), 0.0)
                nel = _poisson_np(lam, seeds, base + 24)
            elif tune_lam < PTRS_ABOVE:
                nel = _poisson_table_np(tune_cdf, seeds, base + 24)
            else:
                nel = _poisson_np(np.full(n, tune_lam), seeds, base + 24)
            vth = vth + np.where(active, np.where(err > 0, -nel, nel) * law.dv_e, 0.0)
            ntune += active
    return vth, pulses + ntune, verifies, ntune, ok, vth_ispp


# ------------------------------------------------------------------ public API ------------
@dataclass
class ProgramResult:
    """Outcome of erasing and programming a population of cells (arrays of its shape)."""

    vth: np.ndarray              # V_th after programming (reference temperature)
    target_vth: np.ndarray       # V_th that reads the target current
    target_current_a: np.ndarray
    pulses: np.ndarray           # program pulses per cell (ISPP + fine tuning)
    verifies: np.ndarray         # verify reads per cell
    tune_pulses: np.ndarray
    soft_program_pulses: np.ndarray
    verified: np.ndarray         # bool: passed verify
    failed: np.ndarray           # bool: did not reach its target (incl. stuck cells)
    program_time_s: float
    energy_j: float
    traps: RtnTraps | None = field(default=None, repr=False)

    stuck: np.ndarray | None = field(default=None, repr=False)  # int8: 0 ok, 1 on, 2 off
    vth_erased: np.ndarray | None = field(default=None, repr=False)  # after erase (+ soft program)
    vth_ispp: np.ndarray | None = field(default=None, repr=False)    # where ISPP left it

    @property
    def failed_cells(self) -> np.ndarray:
        """Flat indices of the cells that failed to reach their target."""
        return np.flatnonzero(self.failed.ravel())

    @property
    def n_failed(self) -> int:
        """Cells flagged failed: stuck, or not verified within tolerance when the pulse
        budget (max_pulses for ISPP, tune_max_pulses for two-way tuning) ran out."""
        return int(np.count_nonzero(self.failed))

    def report(self) -> dict:
        """Programming report: cells, failures by cause, pulses, verifies, time, energy."""
        stuck = (np.zeros(self.failed.shape, bool) if self.stuck is None
                 else np.asarray(self.stuck).reshape(self.failed.shape) != 0)
        n = int(self.failed.size)
        return {"cells": n, "failed": self.n_failed,
                "failed_stuck": int(np.count_nonzero(stuck)),
                "failed_unconverged": int(np.count_nonzero(self.failed & ~stuck)),
                "failed_fraction": self.n_failed / max(n, 1),
                "pulses_mean": float(np.mean(self.pulses)) if n else 0.0,
                "pulses_max": int(np.max(self.pulses)) if n else 0,
                "verifies_mean": float(np.mean(self.verifies)) if n else 0.0,
                "program_time_s": float(self.program_time_s),
                "energy_j": float(self.energy_j),
                "energy_per_cell_j": float(self.energy_j) / max(n, 1)}


def erase(rng: np.random.Generator, shape, device: DeviceConfig,
          variation: CellVariation | None = None) -> np.ndarray:
    """Block erase: V_th = vth_erased + erase spread + D2D offset; stuck cells pinned."""
    c, p = device.cell, device.programming
    shape = tuple(np.atleast_1d(shape).astype(int))
    vth = c.vth_erased_v + p.erase_sigma_v * rng.standard_normal(shape)
    if variation is not None:
        vth = vth + variation.vth_offset_v
        vth = np.where(variation.stuck == STUCK_ON, c.vth_erased_v, vth)
        vth = np.where(variation.stuck == STUCK_OFF, c.vth_max_v, vth)
    return vth


def soft_program(rng: np.random.Generator, vth, device: DeviceConfig,
                 stuck=None) -> tuple[np.ndarray, np.ndarray]:
    """Stacked-gate over-erase repair: pulse cells below soft_program_vth_v up to it.

    Each soft pulse moves V_th by a Poisson number of electrons with mean
    soft_program_step_v / dV_e. Returns (V_th, soft pulses per cell).
    """
    p = device.programming
    vth = np.array(vth, dtype=np.float64)
    pulses = np.zeros(vth.shape, np.int64)
    if device.cell.cell_type != "stacked_gate":
        return vth, pulses
    movable = np.ones(vth.shape, bool) if stuck is None else (stuck == 0)
    lam = p.soft_program_step_v / p.dv_per_electron_v
    for _ in range(p.max_pulses):
        low = movable & (vth < p.soft_program_vth_v)
        if not low.any():
            break
        vth[low] += rng.poisson(lam, int(low.sum())) * p.dv_per_electron_v
        pulses[low] += 1
    return vth, pulses


def program(rng: np.random.Generator, model: CellModel, device: DeviceConfig, i_target,
            *, variation: CellVariation | None = None, vth_target=None, fast: bool = True,
            vth_erased=None) -> ProgramResult:
    """Erase, program and verify every cell to ``i_target`` (see :func:`_program_once`);
    then up to ``programming.retry_rounds`` rounds re-program the cells that failed (not
    stuck) from where they ended, without a new erase; the pulses, verifies, time and energy
    of the retries are added. Cells still failing stay flagged in ``failed``.
    """
    res = _program_once(rng, model, device, i_target, variation=variation,
                        vth_target=vth_target, fast=fast, vth_erased=vth_erased)
    p = device.programming
    for _ in range(p.retry_rounds):
        stuck = res.stuck.reshape(-1)
        idx = np.flatnonzero(res.failed.reshape(-1) & (stuck == 0))
        if idx.size == 0:
            break
        sub_var = None if variation is None else variation.take(
            np.unravel_index(idx, res.failed.shape))
        if sub_var is not None and sub_var.n.ndim != 1:
            sub_var = None
        sub = _program_once(rng, model, device, res.target_current_a.reshape(-1)[idx],
                            variation=sub_var if variation is not None else None,
                            vth_target=res.target_vth.reshape(-1)[idx], fast=fast,
                            vth_erased=res.vth.reshape(-1)[idx])
        for name in ("vth", "verified", "failed", "vth_ispp"):
            getattr(res, name).reshape(-1)[idx] = getattr(sub, name)
        for name in ("pulses", "verifies", "tune_pulses"):
            getattr(res, name).reshape(-1)[idx] += getattr(sub, name)
        # no erase in a retry
        res.program_time_s += sub.program_time_s - p.erase_time_s
        res.energy_j += sub.energy_j - p.erase_energy_j / p.pump_efficiency
    return res


def _program_once(rng: np.random.Generator, model: CellModel, device: DeviceConfig, i_target,
                  *, variation: CellVariation | None = None, vth_target=None, fast: bool = True,
                  vth_erased=None) -> ProgramResult:
    """Erase a block, soft-program (stacked-gate) and ISPP-program every cell to ``i_target``.

    ``i_target``: target read current of each cell (A) at the nominal read bias;
    ``variation``: per-cell parameters (default: nominal, no stuck cells); ``vth_target``:
    precomputed target V_th (skips the inversion; must belong to the same cells);
    ``vth_erased``: V_th after erase (skips the erase draw); ``fast``: numba kernel (True) or
    the NumPy reference (False), which give identical results.
    """
    i_target = np.asarray(i_target, dtype=np.float64)
    shape = i_target.shape
    if not np.all(np.isfinite(i_target)) or np.any(i_target <= 0):
        bad = i_target[~(np.isfinite(i_target) & (i_target > 0))].ravel()[0]
        raise InputError("i_target", bad, "finite target currents > 0 A")
    var = variation if variation is not None else no_variation(shape, device.cell)
    if var.n.shape != shape:
        raise InputError("variation", var.n.shape, f"per-cell parameters of shape {shape}")
    kw = var.iv_kwargs(model)
    # |dI/dV_th| at the target converts current noise and tolerances to the V_th domain
    if vth_target is None:
        if variation is None:
            vth_target, g = target_vth(model, device, i_target, return_slope=True)
        else:
            vth_target, g = target_vth(model, device, i_target, **kw, return_slope=True)
    else:
        vth_target = np.broadcast_to(np.asarray(vth_target, dtype=np.float64), shape)
        few = _few_values(vth_target) if variation is None else None
        if few is not None:  # nominal: per level
            uniq, inv = few
            g = current_per_vth(model, device, uniq)[inv].reshape(shape)
        else:
            g = current_per_vth(model, device, vth_target, **kw)
    vth_target = np.asarray(vth_target, dtype=np.float64)
    g = np.maximum(g, 1e-300)
    few = _few_values(i_target)  # the noise of a current, once per distinct target
    # an averaged verify integrates verify_reads x verify_time_s: white noise falls as 1/N
    noise_args = (model, device.noise, device.read.temperature_k, verify_window_s(device))
    if few is not None:
        sig_i = read_noise_sigma_a(few[0], *noise_args)[few[1]].reshape(shape)
    else:
        sig_i = read_noise_sigma_a(i_target, *noise_args)
    sig_v = sig_i / g
    p_cfg = device.programming
    tol_v = np.maximum(p_cfg.tune_tolerance_rel * i_target, p_cfg.tune_tolerance_abs_a) / g
    # erase, soft-program
    if vth_erased is None:
        vth0 = erase(rng, shape, device, var)
    else:  # caller-supplied erased state (stuck cells still pinned)
        vth0 = np.broadcast_to(np.asarray(vth_erased, dtype=np.float64), shape).copy()
        vth0 = np.where(var.stuck == STUCK_ON, device.cell.vth_erased_v, vth0)
        vth0 = np.where(var.stuck == STUCK_OFF, device.cell.vth_max_v, vth0)
    vth0, soft = soft_program(rng, vth0, device, var.stuck)
    traps = draw_rtn_traps(rng, shape, device.noise, device.read.temperature_k)
    seeds = rng.integers(0, np.iinfo(np.int64).max, size=shape, dtype=np.int64).astype(np.uint64)
    law = _law(device, model)
    nt = device.noise.rtn_traps_per_cell
    flat = lambda a: np.ascontiguousarray(a, dtype=np.float64).reshape(-1)  # noqa: E731
    ncell = int(np.prod(shape))
    amp = np.ascontiguousarray(traps.unit_amp.reshape(ncell, nt), dtype=np.float64)
    p_occ = np.ascontiguousarray(traps.p_occupied.reshape(ncell, nt))
    decay = np.ascontiguousarray(np.exp(-law.dt_trap / traps.tau_s).reshape(ncell, nt))
    occ0 = np.ascontiguousarray(traps.occupied.reshape(ncell, nt))
    # closed-form pulse: <dV_th> = (s / alpha_G) ln(1 + K_i z), z = exp(-alpha_G V_th / s),
    # K_i = (alpha_G r0 t_p / s) exp((alpha_G V_pgm,i - V_0) / s); an electron multiplies z
    # by exp(-alpha_G dV_e / s)
    a_s = law.alpha_g / law.s
    v_pgm = law.v_start + law.step * np.arange(law.max_pulses + 1)
    kpulse = (law.alpha_g * law.r0 * law.t_p / law.s) * np.exp(
        np.minimum((law.alpha_g * v_pgm - law.v0) / law.s, 700.0))
    z0 = np.exp(np.clip(-a_s * flat(vth0), -700.0, 700.0))
    qpow = np.exp(-a_s * law.dv_e * np.arange(4096))
    lam_scale = 1.0 / (a_s * law.dv_e)
    tune_cdf = poisson_cdf_table(min(law.tune_step / law.dv_e, PTRS_ABOVE))
    args = (flat(vth0), flat(vth_target), flat(sig_v), flat(tol_v),
            np.ascontiguousarray(var.stuck.reshape(-1), dtype=np.int8),
            np.ascontiguousarray(seeds.reshape(-1)), amp, p_occ, decay, occ0,
            z0, kpulse, qpow, lam_scale, a_s * law.dv_e, tune_cdf)
    if fast:
        m = args[0].size
        out = (np.empty(m), np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m, np.int64),
               np.empty(m, np.bool_), np.empty(m))
        _ispp_kernel(*args, poisson_table_fast_len(tune_cdf), law.alpha_g, law.r0, law.v0, law.s, law.t_p, law.dv_e,
                     law.v_start, law.step, int(law.max_pulses), law.rtn_mean, law.rtn_gain,
                     law.vth_erased, law.vth_window, bool(law.verify_rtn), bool(law.tune),
                     law.tune_step, int(law.tune_max), bool(law.tune_adaptive),
                     float(law.tune_gain), *out)
        vth, pulses, verifies, ntune, ok, vth_ispp = out
    else:
        vth, pulses, verifies, ntune, ok, vth_ispp = _ispp_numpy(*args, law)
    stuck = var.stuck.reshape(-1)
    failed = ~ok | (stuck != 0)
    time_s, energy_j = _cost(device, pulses, verifies, soft.reshape(-1), i_target.reshape(-1))
    r = lambda a: a.reshape(shape)  # noqa: E731
    return ProgramResult(r(vth), vth_target.copy(), i_target, r(pulses), r(verifies), r(ntune),
                         soft, r(ok), r(failed), time_s, energy_j, traps, r(stuck.copy()),
                         r(flat(vth0).copy()), r(vth_ispp))


@numba.njit(cache=True, parallel=True)
def _index_of(sorted_values, x, out):
    """out[i] = index of x[i] in ``sorted_values`` (binary search); False if one is absent."""
    n = sorted_values.size
    bad = 0
    for i in numba.prange(x.size):
        v = x[i]
        lo = 0
        hi = n - 1
        while lo < hi:  # the same halving every time: selects, no data-dependent branch
            mid = (lo + hi) // 2
            below = sorted_values[mid] < v
            lo = mid + 1 if below else lo
            hi = hi if below else mid
        out[i] = lo
        bad += sorted_values[lo] != v
    return bad == 0


def _few_values(a, limit: int = 4096):
    """(distinct values, index of each element) of ``a`` flattened when it holds at most
    ``limit`` distinct values, else None: the result of ``np.unique(a, return_inverse=True)``
    without sorting all of ``a`` (candidates from a prefix, then a binary search and a check).
    """
    flat = np.asarray(a, dtype=np.float64).reshape(-1)
    if flat.size == 0:
        return None
    cand = np.unique(flat[:8 * limit])
    if cand.size <= limit:
        idx = np.empty(flat.size, np.int64)
        if _index_of(cand, flat, idx):
            return cand, idx
    uniq, inv = np.unique(flat, return_inverse=True)
    return (uniq, inv.reshape(-1)) if uniq.size <= limit else None


def verify_window_s(device: DeviceConfig) -> float:
    """Duration of one (averaged) verify: verify_reads x verify_time_s."""
    p = device.programming
    return p.verify_reads * p.verify_time_s


def _cost(device: DeviceConfig, pulses, verifies, soft, i_target) -> tuple[float, float]:
    """Program time (cells_in_parallel share the pulses) and energy (pump efficiency)."""
    p = device.programming
    n = pulses.size
    group = p.cells_in_parallel
    pad = (-n) % group
    total = pulses + soft
    if pad:
        total = np.concatenate([total, np.zeros(pad, np.int64)])
        verifies_p = np.concatenate([verifies, np.zeros(pad, np.int64)])
    else:
        verifies_p = verifies
    per_cell_pulses = total.reshape(-1, group)
    per_cell_ver = verifies_p.reshape(-1, group)
    time_s = p.erase_time_s + float(np.sum(per_cell_pulses.max(axis=1)) * p.pulse_width_s
                                    + np.sum(per_cell_ver.max(axis=1)) * verify_window_s(device))
    e_pulse = p.program_current_a * p.program_voltage_v * p.pulse_width_s / p.pump_efficiency
    b = read_bias(device)
    e_verify = float(np.sum(verifies * i_target) * (b.v_d - b.v_s) * verify_window_s(device))
    energy = float(np.sum(total)) * e_pulse + e_verify + p.erase_energy_j / p.pump_efficiency
    return time_s, energy
