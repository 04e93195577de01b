"""Retention: per-cell charge loss with a log-time law and Arrhenius acceleration.

    dV_th = -A_cell ln(1 + AF(T) t / tau0),      AF(T) = exp[(E_a / k)(1/T_ref - 1/T)]
    A_cell = (A_dec / ln 10) * LN(0, sigma) * (1 + g (V_th - V_th,erased) / (V_th,max - V_th,erased))

A_dec is the loss per decade of time (A_dec / ln 10 per e-fold) of a cell at the lowest stored
charge; it grows with stored charge (factor g). A tail of fast-leaking (defect) cells, whose
fraction grows with program/erase cycles, leaks with tail_a_multiplier x A and activation
energy tail_ea_ev.
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
    """Per-cell retention parameters: A (V per e-fold) and the fast-leaking tail mask."""

    a_v: np.ndarray
    tail: np.ndarray  # bool


def draw_retention(rng: np.random.Generator, vth_programmed, ret: RetentionConfig,
                   cell: CellConfig) -> RetentionCells:
    """Draw A of every cell (log-normal, growing with the charge stored at ``vth_programmed``)."""
    vth = np.asarray(vth_programmed, dtype=np.float64)
    if not np.all(np.isfinite(vth)):
        raise InputError("vth_programmed", vth[~np.isfinite(vth)].ravel()[0], "finite V_th")
    frac = (vth - cell.vth_erased_v) / (cell.vth_max_v - cell.vth_erased_v)
    charge = np.maximum(1.0 + ret.charge_gain * frac, 0.0)
    a = ret.a_v_per_decade / np.log(10.0) * np.exp(ret.a_sigma_ln * rng.standard_normal(vth.shape)) * charge
    tail = rng.random(vth.shape) < tail_fraction(ret)
    a = np.where(tail, a * ret.tail_a_multiplier, a)
    return RetentionCells(a, tail)


def vth_shift(cells: RetentionCells, t_s: float, temperature_k: float,
              ret: RetentionConfig) -> np.ndarray:
    """V_th change (negative: charge loss) after ``t_s`` seconds at ``temperature_k``."""
    if not np.isfinite(t_s) or t_s < 0:
        raise InputError("t_s", t_s, "a finite time >= 0 s")
    af = acceleration_factor(temperature_k, ret.ea_ev, ret.t_ref_k)
    af_tail = acceleration_factor(temperature_k, ret.tail_ea_ev, ret.t_ref_k)
    af_cell = np.where(cells.tail, af_tail, af)
    return -cells.a_v * np.log1p(af_cell * t_s / ret.tau0_s)


def bake(rng: np.random.Generator, vth, t_s: float, temperature_k: float, ret: RetentionConfig,
         cell: CellConfig, cells: RetentionCells | None = None) -> np.ndarray:
    """V_th after a bake of ``t_s`` at ``temperature_k`` (draws per-cell A unless given)."""
    vth = np.asarray(vth, dtype=np.float64)
    if cells is None:
        cells = draw_retention(rng, vth, ret, cell)
    return vth + vth_shift(cells, t_s, temperature_k, ret)
