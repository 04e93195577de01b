"""Read noise of the cell current: white (shot / thermal), 1/f and random telegraph noise.

White noise, bandwidth B = 1 / (2 t_read) of an integrate-for-t_read read:
    S_white = 2 q I / (1 + IC) + 4 k T gamma g_m IC / (1 + IC),   IC = I / I_spec
(shot noise of the subthreshold current -- Sarpeshkar et al. 1993 -- blended into the
strong-inversion channel thermal noise with the inversion coefficient), with the EKV
transconductance g_m = I / (n U_T) * 2 / (1 + sqrt(1 + 4 IC)) (floating-gate referred).
1/f noise: S = K_f I^2 / f integrated from f_low to B: sigma^2 = K_f I^2 ln(B / f_low).
RTN: each cell has ``rtn_traps_per_cell`` trap sites, each holding an active two-state trap
with probability ``rtn_trap_probability`` (an inactive site has amplitude 0); capture and
emission times are log-uniform in [tau_min, tau_max] at rtn_t_ref_k and thermally activated,
tau_x(T) = tau_x(T_ref) exp[(E_x / k)(1/T - 1/T_ref)] (x = capture, emission); the V_th
amplitude of a trap is exponential with mean rtn_mean_v (1 + gain (V_th - V_th,erased) /
(V_th,max - V_th,erased)). An occupied trap raises V_th. Occupancy in equilibrium is
tau_e / (tau_c + tau_e); after a time dt a trap in state s is occupied with probability
p + (s - p) exp(-dt / tau), 1/tau = 1/tau_c + 1/tau_e.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from norsim.device.config import CellConfig, NoiseConfig
from norsim.device.iv import BOLTZMANN_J_PER_K, ELEMENTARY_CHARGE_C, CellModel
from norsim.errors import InputError

K_EV_PER_K = BOLTZMANN_J_PER_K / ELEMENTARY_CHARGE_C


def bandwidth_hz(t_read_s: float) -> float:
    """Noise bandwidth of an integrating read of duration t_read: 1 / (2 t_read)."""
    if not np.isfinite(t_read_s) or t_read_s <= 0:
        raise InputError("t_read_s", t_read_s, "a finite read time > 0 s")
    return 1.0 / (2.0 * t_read_s)


def white_noise_psd(i_a, model: CellModel, noise: NoiseConfig, temperature_k: float):
    """One-sided white-noise current PSD (A^2/Hz) of cells conducting ``i_a``."""
    i = np.abs(np.asarray(i_a, dtype=np.float64))
    fg = model.fg
    ic = i / fg.i_spec
    g_m = i / (fg.n * fg.u_t) * 2.0 / (1.0 + np.sqrt(1.0 + 4.0 * ic))
    w = 1.0 / (1.0 + ic)
    return (2.0 * ELEMENTARY_CHARGE_C * i * w
            + 4.0 * BOLTZMANN_J_PER_K * temperature_k * noise.thermal_gamma * g_m * (1.0 - w))


def read_noise_sigma_a(i_a, model: CellModel, noise: NoiseConfig, temperature_k: float,
                       t_read_s: float) -> np.ndarray:
    """Standard deviation (A) of one read's current from white and 1/f noise."""
    i = np.asarray(i_a, dtype=np.float64)
    if not np.all(np.isfinite(i)):
        raise InputError("i_a", i[~np.isfinite(i)].ravel()[0], "finite currents")
    bw = bandwidth_hz(t_read_s)
    var = np.zeros_like(i)
    if noise.shot_thermal:
        var = var + white_noise_psd(i, model, noise, temperature_k) * bw
    if noise.flicker_kf > 0 and bw > noise.flicker_f_low_hz:
        var = var + noise.flicker_kf * i**2 * np.log(bw / noise.flicker_f_low_hz)
    return np.sqrt(var)


# ------------------------------------------------------------------------------- RTN ----
@dataclass
class RtnTraps:
    """Two-state traps of a cell population: arrays shaped (*cells, traps)."""

    unit_amp: np.ndarray  # exponential(1) amplitude, scaled by the level-dependent mean
    tau_c_s: np.ndarray
    tau_e_s: np.ndarray
    occupied: np.ndarray  # bool

    @property
    def p_occupied(self) -> np.ndarray:
        return self.tau_e_s / (self.tau_c_s + self.tau_e_s)

    @property
    def tau_s(self) -> np.ndarray:
        return self.tau_c_s * self.tau_e_s / (self.tau_c_s + self.tau_e_s)


ENDURANCE_CYCLES = 1.0e5  # rated P/E endurance the wear coefficients refer to ([R] table)


def rtn_wear_factor(noise: NoiseConfig, pe_cycles: float) -> float:
    """Growth of the mean RTN amplitude after ``pe_cycles`` program/erase cycles:
    1 + rtn_wear_gain x pe_cycles / 1e5."""
    if not np.isfinite(pe_cycles) or pe_cycles < 0:
        raise InputError("pe_cycles", pe_cycles, "a finite cycle count >= 0")
    return 1.0 + noise.rtn_wear_gain * float(pe_cycles) / ENDURANCE_CYCLES


def rtn_mean_amplitude(vth, noise: NoiseConfig, cell: CellConfig,
                       pe_cycles: float = 0.0) -> np.ndarray:
    """Mean RTN V_th amplitude of a cell at threshold ``vth`` (grows with program level and,
    with ``pe_cycles`` (device.retention.pe_cycles), with wear)."""
    frac = (np.asarray(vth, dtype=np.float64) - cell.vth_erased_v) / (cell.vth_max_v - cell.vth_erased_v)
    mean = noise.rtn_mean_v * (rtn_wear_factor(noise, pe_cycles) if pe_cycles else 1.0)
    return mean * np.maximum(1.0 + noise.rtn_level_gain * frac, 0.0)


def rtn_time_factor(temperature_k, ea_ev: float, t_ref_k: float):
    """Arrhenius factor of a trap time constant: tau(T) / tau(T_ref) =
    exp[(E_a / k)(1/T - 1/T_ref)] (longer when colder)."""
    t = np.asarray(temperature_k, dtype=np.float64)
    if not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise InputError("temperature_k", t.ravel()[0] if t.size else t, "a finite temperature > 0 K")
    return np.exp(ea_ev / K_EV_PER_K * (1.0 / t - 1.0 / t_ref_k))


def rtn_at_temperature(traps: RtnTraps, noise: NoiseConfig, from_k: float,
                       to_k: float) -> RtnTraps:
    """The same traps with capture / emission times moved from ``from_k`` to ``to_k``
    (states kept; the next Markov step relaxes them to the new occupancy)."""
    fc = rtn_time_factor(to_k, noise.rtn_ea_capture_ev, from_k)
    fe = rtn_time_factor(to_k, noise.rtn_ea_emission_ev, from_k)
    return RtnTraps(traps.unit_amp, traps.tau_c_s * fc, traps.tau_e_s * fe, traps.occupied)


def draw_rtn_traps(rng: np.random.Generator, shape, noise: NoiseConfig,
                   temperature_k: float | None = None) -> RtnTraps:
    """Draw the traps of ``shape`` cells (time constants at ``temperature_k``, default
    rtn_t_ref_k; amplitudes, 0 on inactive sites; equilibrium states)."""
    full = tuple(np.atleast_1d(shape)) + (noise.rtn_traps_per_cell,)
    lo, hi = np.log(noise.rtn_tau_min_s), np.log(noise.rtn_tau_max_s)
    tau_c = np.exp(rng.uniform(lo, hi, full))
    tau_e = np.exp(rng.uniform(lo, hi, full))
    if temperature_k is not None and temperature_k != noise.rtn_t_ref_k:
        tau_c = tau_c * rtn_time_factor(temperature_k, noise.rtn_ea_capture_ev, noise.rtn_t_ref_k)
        tau_e = tau_e * rtn_time_factor(temperature_k, noise.rtn_ea_emission_ev, noise.rtn_t_ref_k)
    amp = rng.exponential(1.0, full)
    occ = rng.random(full) < tau_e / (tau_c + tau_e)
    if noise.rtn_trap_probability < 1.0:  # drawn last: the draws above keep their stream
        amp = np.where(rng.random(full) < noise.rtn_trap_probability, amp, 0.0)
    return RtnTraps(amp, tau_c, tau_e, occ)


def advance_rtn(traps: RtnTraps, rng: np.random.Generator, dt_s: float) -> RtnTraps:
    """Markov step of every trap over ``dt_s`` (exact two-state transition probability)."""
    p = traps.p_occupied
    prob = p + (traps.occupied - p) * np.exp(-dt_s / traps.tau_s)
    return RtnTraps(traps.unit_amp, traps.tau_c_s, traps.tau_e_s,
                    rng.random(prob.shape) < prob)


def rtn_dvth(traps: RtnTraps, vth, noise: NoiseConfig, cell: CellConfig,
             pe_cycles: float = 0.0) -> np.ndarray:
    """V_th shift of each cell from its traps in their present states."""
    return (rtn_mean_amplitude(vth, noise, cell, pe_cycles)
            * np.sum(traps.unit_amp * traps.occupied, axis=-1))


def sample_rtn_read(rng: np.random.Generator, vth, noise: NoiseConfig, cell: CellConfig,
                    traps: RtnTraps | None = None, pe_cycles: float = 0.0) -> np.ndarray:
    """RTN V_th shift of each cell for one read (states drawn from equilibrium occupancy).

    With ``traps`` the cells keep their own amplitudes and time constants; without, traps are
    drawn afresh. The array layer draws this once per input vector and keeps it frozen across
    the bit-serial cycles of that read (the cycles are far shorter than the trap times).
    """
    vth = np.asarray(vth, dtype=np.float64)
    if traps is None:
        traps = draw_rtn_traps(rng, vth.shape, noise)
    elif traps.unit_amp.shape[:-1] != vth.shape:
        raise InputError("traps", traps.unit_amp.shape, f"traps for cells of shape {vth.shape}")
    occ = rng.random(traps.unit_amp.shape) < traps.p_occupied
    return rtn_mean_amplitude(vth, noise, cell, pe_cycles) * np.sum(traps.unit_amp * occ, axis=-1)
