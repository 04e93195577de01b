"""Moments of the RTN of norsim's trap model, for the fits.

A cell has ``rtn_traps_per_cell`` sites, each active with probability p_a, with exponential(1)
unit amplitude u scaled by the level-dependent mean m(V_th) (:func:`rtn_mean_amplitude`), and
capture / emission times log-uniform in [tau_min, tau_max] (Arrhenius-moved to the measurement
temperature); the occupancy is p = tau_e / (tau_c + tau_e). Moments over (tau_c, tau_e) are
taken on a fixed quasi-random grid (deterministic, no generator needed).
"""

from __future__ import annotations

import numpy as np

from norsim.device.config import DeviceConfig, NoiseConfig
from norsim.device.noise import rtn_mean_amplitude, rtn_time_factor

_GRID = 96  # points per axis of the (ln tau_c, ln tau_e) grid


def _tau_grid(nz: NoiseConfig, temperature_k: float):
    lo, hi = np.log(nz.rtn_tau_min_s), np.log(nz.rtn_tau_max_s)
    g = lo + (np.arange(_GRID) + 0.5) / _GRID * (hi - lo)
    tc, te = np.meshgrid(np.exp(g), np.exp(g), indexing="ij")
    tc = tc * rtn_time_factor(temperature_k, nz.rtn_ea_capture_ev, nz.rtn_t_ref_k)
    te = te * rtn_time_factor(temperature_k, nz.rtn_ea_emission_ev, nz.rtn_t_ref_k)
    return tc.ravel(), te.ravel()


def occupancy_moments(nz: NoiseConfig, temperature_k: float) -> tuple[float, float]:
    """E[p] and E[p^2] of a trap's equilibrium occupancy."""
    tc, te = _tau_grid(nz, temperature_k)
    p = te / (tc + te)
    return float(p.mean()), float((p**2).mean())


def rtn_vth_offset(dev: DeviceConfig, vth: float,
                   temperature_k: float | None = None) -> tuple[float, float]:
    """Mean and cell-to-cell standard deviation of a cell's time-averaged RTN V_th shift
    m sum_j u_j b_j p_j (what a fit of a swept cell's V_th absorbs)."""
    nz = dev.noise
    t = nz.rtn_t_ref_k if temperature_k is None else temperature_k
    ep, ep2 = occupancy_moments(nz, t)
    m = float(rtn_mean_amplitude(vth, nz, dev.cell, dev.retention.pe_cycles))
    k, pa = nz.rtn_traps_per_cell, nz.rtn_trap_probability
    mean = m * k * pa * ep
    var = m**2 * k * (2.0 * pa * ep2 - (pa * ep) ** 2)
    return mean, float(np.sqrt(max(var, 0.0)))


def reference_sample_variances(nz: NoiseConfig, temperature_k: float, reads: int, dt_s: float,
                               cells: int = 20000) -> np.ndarray:
    """Sample variances (ddof=1) of the RTN V_th shift of ``cells`` model cells with unit mean
    amplitude, over a record of ``reads`` reads ``dt_s`` apart (Markov steps of each trap): the
    distribution a measured cell's RTN variance / m^2 is drawn from. A fixed internal seed: it
    is a property of the model, not a draw of the data."""
    from norsim.device.noise import advance_rtn, draw_rtn_traps

    rng = np.random.default_rng(12345)
    traps = draw_rtn_traps(rng, (cells,), nz, temperature_k)
    s1 = np.zeros(cells)
    s2 = np.zeros(cells)
    for r in range(reads):
        if r:
            traps = advance_rtn(traps, rng, dt_s)
        v = np.sum(traps.unit_amp * traps.occupied, axis=-1)
        s1 += v
        s2 += v * v
    return (s2 - s1 * s1 / reads) / (reads - 1)
