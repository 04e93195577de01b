"""Noise drawn per read: cell white + 1/f noise (Gaussian shortcut) and exact RTN.

Both come from the device layer's noise model (``device.noise``, docs/physics.md "Read
noise"); the array decides how they are sampled during a matrix multiply.

Cell white + 1/f noise (Gaussian shortcut). Every cell's read current has an independent
Gaussian error of variance ``sigma_i^2 = read_noise_sigma_a(I_i)^2`` (shot noise in weak
inversion blending into channel thermal noise, plus integrated 1/f). Independent Gaussians
on one column add to one Gaussian whose variance is the sum of the variances of the cells
that conduct in that cycle: ``var_col = bits @ var_on + (1 - bits) @ var_off`` -- itself a
product, computed in the same BLAS call as the column currents (the variance matrix is
stacked beside the current matrix, doubling that product's width: the variance is not
proportional to the current once 1/f and strong-inversion thermal noise count). One normal
per conversion then carries this variance together with the integrator's kT/C and the
ADC's input-referred noise. (The kernel also has a shot-only mode, variance = c |I|, with no
second product; the array uses it with c = 0 when cell noise is off.)

RTN (exact). Each cell has ``rtn_traps_per_cell`` two-state traps (time constants, amplitudes
and initial states from ``norsim.device.noise.draw_rtn_traps``; the amplitude scale grows
with the programmed level, ``rtn_mean_amplitude``). Trap occupancy is sampled at the start of
every multiply (interval dt = cycles x t_read) from the exact two-state Markov transition

    P(0 -> 1) = p (1 - exp(-dt/tau)),   P(1 -> 0) = (1 - p)(1 - exp(-dt/tau))

and held through the bit-serial cycles of that multiply. Waiting times to the next switch are
geometric, so the cost is O(switches x cycles), not O(batch x cells). A cell's current under
a joint trap state J is taken from the I-V at V_th + sum_t a_t J_t (not linearised, not
additive), tabulated for all 2^T joint states. The process carries on from one call to the
next (calls are taken as back-to-back in time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from norsim.errors import InputError

MAX_TRAPS_PER_CELL = 8  # joint-state tables have 2^T entries per cell


@dataclass
class RtnCells:
    row: np.ndarray  # (n,) int64, cells with traps
    col: np.ndarray  # (n,) int64
    amp_v: np.ndarray  # (n, T) V_th jump of each trap when occupied
    p01: np.ndarray  # (n, T) per-multiply switching probabilities
    p10: np.ndarray  # (n, T)
    state: np.ndarray  # (n, T) int64 0/1: state at the start of the next multiply

    @property
    def n(self) -> int:
        return self.row.size

    @property
    def traps_per_cell(self) -> int:
        return self.amp_v.shape[1]

    def joint_shifts(self) -> np.ndarray:
        """(n, 2^T) V_th shift of each cell for every joint trap state J (bit t = trap t)."""
        t = self.traps_per_cell
        bits = (np.arange(2**t)[:, None] >> np.arange(t)[None, :]) & 1  # (J, T)
        return self.amp_v @ bits.T

    def joint_state(self) -> np.ndarray:
        return (self.state << np.arange(self.traps_per_cell)[None, :]).sum(axis=1)


def make_rtn(device_cfg, vth: np.ndarray, t_multiply_s: float, rng: np.random.Generator,
             enabled: bool) -> RtnCells:
    from norsim.device.noise import draw_rtn_traps, rtn_mean_amplitude

    noise = device_cfg.noise
    t = noise.rtn_traps_per_cell if enabled else 0
    if t > MAX_TRAPS_PER_CELL:
        raise InputError("device.noise.rtn_traps_per_cell", t,
                         f"at most {MAX_TRAPS_PER_CELL} traps per cell in the array's exact RTN")
    if t == 0:
        z = np.zeros((0, 0))
        return RtnCells(np.zeros(0, np.int64), np.zeros(0, np.int64), z, z, z, np.zeros((0, 0), np.int64))
    # time constants at the read temperature (Arrhenius), amplitudes with the chip's wear
    traps = draw_rtn_traps(rng, vth.shape, noise, device_cfg.read.temperature_k)
    amp = rtn_mean_amplitude(vth, noise, device_cfg.cell,
                             device_cfg.retention.pe_cycles)[..., None] * traps.unit_amp
    mix = -np.expm1(-t_multiply_s / traps.tau_s)
    p = traps.p_occupied
    rows, cols = np.indices(vth.shape)
    return RtnCells(rows.ravel().astype(np.int64), cols.ravel().astype(np.int64),
                    amp.reshape(-1, t), (p * mix).reshape(-1, t), ((1 - p) * mix).reshape(-1, t),
                    traps.occupied.reshape(-1, t).astype(np.int64))
