"""Weight levels of one cell: target read currents, the nominal read bias and target V_th.

Level L is programmed to ``i_off_a + L * i_unit_a`` at the read bias (level 0, weight zero,
is a deeply programmed, nearly off cell; the same currents the array layer assumes) (signed 4-bit weights on differential pairs:
8 levels, |w| <= 7).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from norsim.device.config import DeviceConfig, LevelsConfig
from norsim.device.iv import CellModel, vth_for_current
from norsim.errors import InputError


@dataclass(frozen=True)
class ReadBias:
    """Terminal voltages of a selected cell during a (verify) read."""

    v_wl: float
    v_cg: float
    v_d: float
    v_s: float


def read_bias(device: DeviceConfig) -> ReadBias:
    """Nominal read bias: split-gate select gate on and control gate at its analog bias;
    stacked-gate word line (= control gate) at the read level."""
    r = device.read
    if device.cell.cell_type == "split_gate":
        return ReadBias(r.v_select_on_v, r.v_cg_read_v, r.v_bl_read_v, r.v_sl_read_v)
    return ReadBias(r.v_cg_read_v, r.v_cg_read_v, r.v_bl_read_v, r.v_sl_read_v)


def level_currents(levels: LevelsConfig) -> np.ndarray:
    """Target read currents (A) of levels 0..levels_per_cell-1."""
    k = np.arange(levels.levels_per_cell, dtype=np.float64)
    out = levels.i_off_a + k * levels.i_unit_a
    if levels.i_off_a >= levels.i_unit_a:
        raise InputError("device.levels.i_off_a", levels.i_off_a,
                         f"a current below i_unit_a ({levels.i_unit_a:g} A)")
    return out


def target_current(levels: LevelsConfig, level) -> np.ndarray:
    """Target current of each cell from its integer level (array of ints)."""
    level = np.asarray(level)
    if level.dtype.kind not in "iu":
        raise InputError("level", level.dtype, "integer levels")
    if level.size and (level.min() < 0 or level.max() >= levels.levels_per_cell):
        bad = level[(level < 0) | (level >= levels.levels_per_cell)].ravel()[0]
        raise InputError("level", int(bad), f"integers in [0, {levels.levels_per_cell - 1}]")
    return level_currents(levels)[level]


def target_vth(model: CellModel, device: DeviceConfig, i_target, *, n=None, beta=None,
               dibl_eta=None, return_slope: bool = False):
    """V_th (reference temperature) at which each cell reads ``i_target`` at the read bias
    (with ``return_slope`` also |dI/dV_th| there)."""
    b = read_bias(device)
    i_target = np.asarray(i_target, dtype=np.float64)
    if i_target.size > 64 and n is None and beta is None and dibl_eta is None:
        uniq, inv = np.unique(i_target, return_inverse=True)
        if uniq.size <= i_target.size // 8:  # nominal cells at a few levels: invert per level
            v, g = vth_for_current(model, uniq, b.v_wl, b.v_cg, b.v_d, b.v_s, return_slope=True)
            idx = inv.reshape(-1)
            v, g = v[idx].reshape(i_target.shape), g[idx].reshape(i_target.shape)
            return (v, g) if return_slope else v
    return vth_for_current(model, i_target, b.v_wl, b.v_cg, b.v_d, b.v_s, n=n, beta=beta,
                           dibl_eta=dibl_eta, return_slope=return_slope)


def read_current(model: CellModel, device: DeviceConfig, vth, **iv_kwargs) -> np.ndarray:
    """Read current of cells with threshold ``vth`` at the nominal read bias."""
    b = read_bias(device)
    return model.current(b.v_wl, b.v_cg, b.v_d, b.v_s, vth, **iv_kwargs)


def current_per_vth(model: CellModel, device: DeviceConfig, vth, *, h: float = 1e-4,
                    **iv_kwargs) -> np.ndarray:
    """|dI/dV_th| at the read bias (central difference; I falls with V_th)."""
    return (read_current(model, device, np.asarray(vth) - h, **iv_kwargs)
            - read_current(model, device, np.asarray(vth) + h, **iv_kwargs)) / (2.0 * h)


# EKV inversion-coefficient bounds of the regions (Enz, Krummenacher, Vittoz 1995)
IC_WEAK_MAX = 0.1
IC_STRONG_MIN = 10.0


def inversion_coefficient(device: DeviceConfig, i_a=None, temperature_k: float | None = None):
    """Inversion coefficient IC = I / I_spec of the floating-gate transistor carrying ``i_a``
    (default: the top level's target current) at ``temperature_k`` (default the read one)."""
    from norsim.device.iv import params_at_temperature

    t = device.read.temperature_k if temperature_k is None else temperature_k
    i = level_currents(device.levels)[-1] if i_a is None else np.asarray(i_a, dtype=np.float64)
    return i / params_at_temperature(device.cell, t).i_spec


def operating_region(device: DeviceConfig, temperature_k: float | None = None) -> str:
    """Region of the top weight level at the read bias: 'subthreshold' (IC < 0.1, where
    the exponential I-V and the subthreshold noise/temperature laws of this layer hold),
    'moderate_inversion' (0.1-10) or 'strong_inversion' (IC > 10)."""
    ic = float(inversion_coefficient(device, temperature_k=temperature_k))
    if ic < IC_WEAK_MAX:
        return "subthreshold"
    return "moderate_inversion" if ic <= IC_STRONG_MIN else "strong_inversion"
