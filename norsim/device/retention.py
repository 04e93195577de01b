"""Retention: per-cell charge relaxation towards the neutral V_th, log-time law, Arrhenius.

    dV_th = -A_cell (V_th - V_th,n) ln(1 + AF(T) t / tau0),  |dV_th| <= |V_th - V_th,n|
    AF(T) = exp[(E_a / k)(1/T_ref - 1/T)]
    A_cell = (a_dec / ln 10) LN(0, sigma)        (per e-fold of time, per volt of V_th - V_th,n)

t is the time since the end of programming (tau0 is a physical time at T_ref, not a
1-second convention). The loss is proportional to the charge stored relative to the neutral
(no net floating-gate charge) V_th and has its sign: cells above V_th,n lose V_th, cells below
it gain, both towards V_th,n, and a cell at V_th,n does not move. A tail of fast-leaking
(defect) cells, whose fraction grows with program/erase cycles, leaks with tail_a_multiplier x
A and activation energy tail_ea_ev. Sources and estimates: docs/parameters.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from norsim.device.config import CellConfig, RetentionConfig
from norsim.device.iv import BOLTZMANN_J_PER_K, ELEMENTARY_CHARGE_C
from norsim.errors import InputError

K_EV_PER_K = BOLTZMANN_J_PER_K / ELEMENTARY_CHARGE_C


def acceleration_factor(temperature_k, ea_ev: float, t_ref_k: float):
    """Arrhenius acceleration AF(T) = exp[(E_a / k)(1/T_ref - 1/T)]."""
    t = np.asarray(temperature_k, dtype=np.float64)
    if not np.all(np.isfinite(t)) or np.any(t <= 0):
        bad = t[~(np.isfinite(t) & (t > 0))].ravel()[0]
        raise InputError("temperature_k", bad, "a finite temperature > 0 K")
    return np.exp(ea_ev / K_EV_PER_K * (1.0 / t_ref_k - 1.0 / t))


def tail_fraction(ret: RetentionConfig) -> float:
    """Fraction of fast-leaking cells after ``pe_cycles`` program/erase cycles."""
    return min(1.0, ret.tail_fraction_fresh + ret.tail_fraction_per_cycle * ret.pe_cycles)


@dataclass
class RetentionCells:
    """Per-cell retention parameters.

    ``a_v``: signed V_th loss per e-fold of time (A_cell (V_th - V_th,n)); ``tail``: the
    fast-leaking mask; ``excess_v``: V_th - V_th,n at the end of programming (the most a cell
    can move; None: unbounded)."""

    a_v: np.ndarray
    tail: np.ndarray  # bool
    excess_v: np.ndarray | None = None


def draw_retention(rng: np.random.Generator, vth_programmed, ret: RetentionConfig,
                   cell: CellConfig | None = None) -> RetentionCells:
    """Draw A of every cell (log-normal) times its charge relative to the neutral V_th."""
    vth = np.asarray(vth_programmed, dtype=np.float64)
    if not np.all(np.isfinite(vth)):
        raise InputError("vth_programmed", vth[~np.isfinite(vth)].ravel()[0], "finite V_th")
    excess = vth - ret.vth_neutral_v
    a = (ret.a_v_per_decade_per_v / np.log(10.0)
         * np.exp(ret.a_sigma_ln * rng.standard_normal(vth.shape)) * excess)
    tail = rng.random(vth.shape) < tail_fraction(ret)
    a = np.where(tail, a * ret.tail_a_multiplier, a)
    return RetentionCells(a, tail, excess)


def vth_shift(cells: RetentionCells, t_s: float, temperature_k: float,
              ret: RetentionConfig) -> np.ndarray:
    """V_th change after ``t_s`` seconds (since the end of programming) at ``temperature_k``:
    negative above the neutral V_th (charge loss), positive below it."""
    if not np.isfinite(t_s) or t_s < 0:
        raise InputError("t_s", t_s, "a finite time >= 0 s")
    af = acceleration_factor(temperature_k, ret.ea_ev, ret.t_ref_k)
    af_tail = acceleration_factor(temperature_k, ret.tail_ea_ev, ret.t_ref_k)
    af_cell = np.where(cells.tail, af_tail, af)
    shift = -cells.a_v * np.log1p(af_cell * t_s / ret.tau0_s)
    if cells.excess_v is not None:  # relaxation stops at the neutral V_th
        lim = np.abs(cells.excess_v)
        shift = np.clip(shift, -lim, lim)
    return shift


def bake(rng: np.random.Generator, vth, t_s: float, temperature_k: float, ret: RetentionConfig,
         cell: CellConfig | None = None, cells: RetentionCells | None = None) -> np.ndarray:
    """V_th ``t_s`` after programming at ``temperature_k`` (draws per-cell A unless given)."""
    vth = np.asarray(vth, dtype=np.float64)
    if cells is None:
        cells = draw_retention(rng, vth, ret, cell)
    return vth + vth_shift(cells, t_s, temperature_k, ret)


def equivalent_time_s(t_s: float, temperature_k: float, ret: RetentionConfig,
                      to_temperature_k: float) -> float:
    """Time at ``to_temperature_k`` that moves intrinsic cells as ``t_s`` at ``temperature_k``."""
    af = acceleration_factor(temperature_k, ret.ea_ev, ret.t_ref_k)
    af_to = acceleration_factor(to_temperature_k, ret.ea_ev, ret.t_ref_k)
    return float(t_s * af / af_to)
