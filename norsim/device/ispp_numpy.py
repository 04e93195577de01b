"""The NumPy reference of the ISPP kernel (vectorised over cells, a loop over pulses) and
the resolved programming law both paths read; part of :mod:`norsim.device.programming`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from norsim.device.counter_rng import (PTRS_ABOVE, _normal_np, _poisson_np, _poisson_table_np,
                                       _uniform_np)
from norsim.device.ispp_kernel import _TRAP_SLOT, FAR_SIGMAS, STRIDE
from norsim.device.variation import STUCK_OFF, STUCK_ON
from norsim.device.vecmath import log1p_pos_np


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
