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

The code is split along its seams: :mod:`norsim.device.counter_rng` (the random streams and
Poisson draws), :mod:`norsim.device.ispp_kernel` (the numba program-and-verify kernel),
:mod:`norsim.device.ispp_numpy` (its NumPy reference and the resolved law) and this module
(erase, soft-program, the public :func:`program`, reports, time and energy), which
re-exports the others' names so that ``norsim.device.programming`` stays the import path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from norsim.device.config import DeviceConfig
from norsim.device.counter_rng import (  # noqa: F401  (re-exported)
    _CHOP_MAX, _GUIDE_BINS, _INV_K, _LOGFACT, _NLOGFACT, _PCDF, _PGUIDE, PTRS_ABOVE, _mix,
    _mix_np, _normal, _normal_np, _poisson, _poisson_np, _poisson_table, _poisson_table_np,
    _poisson_tables, _table_np, _uniform, _uniform_np, poisson_cdf_table,
    poisson_table_fast_len)
from norsim.device.iv import CellModel
from norsim.device.ispp_kernel import (  # noqa: F401  (re-exported)
    _BLOCK, _TRAP_SLOT, FAR_SIGMAS, STRIDE, _ispp_kernel, _ispp_scalar_pulse, _rtn_now,
    _trap_update)
from norsim.device.ispp_numpy import _ispp_numpy, _Law
from norsim.device.levels import current_per_vth, read_bias, target_vth
from norsim.device.noise import RtnTraps, draw_rtn_traps, read_noise_sigma_a
from norsim.device.variation import STUCK_OFF, STUCK_ON, CellVariation, no_variation
from norsim.errors import InputError


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
