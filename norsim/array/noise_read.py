"""Noise drawn per read: RTN traps (exact two-state Markov sampling) and the Gaussian shortcut.

Shot / thermal noise (Gaussian shortcut). Independent Gaussian cell noises on one column
add to one Gaussian whose variance is the sum of the cells' variances. Subthreshold channel
noise is shot noise (2 q I per unit bandwidth); integrated over ``t_read`` it gives a
current-equivalent variance ``q I / t_read`` per cell, so the column's variance is
``shot_factor q I_column / t_read`` -- the product "bit-plane @ per-cell variance" equals the
column current times a constant and costs nothing extra. The kernel adds it per conversion
together with kT/C and the ADC's input-referred noise (one normal per conversion).

RTN (exact). Each cell holds an RTN trap with probability ``rtn_trap_fraction``; an occupied
trap raises its V_th by an exponential amplitude (mean ``rtn_dvth_mean_v``, drawn once per
array). Occupancy is a two-state Markov process with stationary occupancy p and correlation
time tau, sampled at the start of each multiply (interval dt = cycles x t_read) and frozen
through the cycles of that multiply:

    P(0 -> 1) = p (1 - exp(-dt/tau)),   P(1 -> 0) = (1 - p)(1 - exp(-dt/tau))

The waiting time to the next switch is geometric, so a batch costs O(switches), not
O(batch x cells). The current change of an occupied trap's cell is computed from the I-V
at V_th + dV (not linearised), for every drive the cell sees. The process carries on from
one ``matmul`` call to the next (calls are taken as back-to-back in time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from norsim.array.config import ReadNoiseConfig


@dataclass
class RtnTraps:
    row: np.ndarray  # (n,) int64
    col: np.ndarray  # (n,) int64
    dvth_v: np.ndarray  # (n,)
    state: np.ndarray  # (n,) int64 0/1, state at the start of the next multiply
    p01: float
    p10: float

    @property
    def n(self) -> int:
        return self.row.size


def make_traps(ncfg: ReadNoiseConfig, shape: tuple[int, int], t_multiply_s: float,
               rng: np.random.Generator) -> RtnTraps:
    rows, cols = shape
    has = rng.random(shape) < ncfg.rtn_trap_fraction if ncfg.rtn_enabled else np.zeros(shape, bool)
    r, c = np.nonzero(has)
    amp = rng.exponential(ncfg.rtn_dvth_mean_v, size=r.size)
    p = ncfg.rtn_occupancy
    state = (rng.random(r.size) < p).astype(np.int64)
    mix = -np.expm1(-t_multiply_s / ncfg.rtn_tau_s)
    return RtnTraps(r.astype(np.int64), c.astype(np.int64), amp, state, p * mix, (1 - p) * mix)
