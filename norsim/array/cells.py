"""The array's view of one cell: current at given terminal voltages, V_th for a target current.

Uses the device layer's ``norsim.device.iv.cell_model`` (split- and stacked-gate) when it
exists. Until then a stand-in is built from ``fg_current`` (the stacked-gate EKV transistor);
for split-gate cells the select transistor is a smooth switch
``1 / (1 + exp(-(V_sel - V_th,sel) / (n_sel U_T)))`` multiplying the floating-gate current.

Word-line levels: for split-gate cells the word line is the select gate and the control gate
sits at ``v_cg_read_v``; for stacked-gate cells the word line is the control gate, "on" at
``v_cg_read_v`` and "off" at ``v_select_off_v``.
"""

from __future__ import annotations

import numpy as np

from norsim.device.config import DeviceConfig
from norsim.errors import InputError


class _FallbackCellModel:
    """Stand-in with the device layer's ``CellModel.current`` signature."""

    def __init__(self, cell_cfg, temperature_k: float):
        from norsim.device.iv import params_at_temperature

        self.cell_cfg = cell_cfg
        self.params = params_at_temperature(cell_cfg, temperature_k)

    def current(self, v_wl, v_cg, v_d, v_s, v_th, *, derivatives=False, fast=True):
        from norsim.device.iv import fg_current

        c = self.cell_cfg
        if c.cell_type == "stacked_gate":
            return fg_current(self.params, v_wl, v_d, v_s, v_th, fast=fast)
        i_fg = fg_current(self.params, v_cg, v_d, v_s, v_th, fast=fast)
        x = (np.asarray(v_wl, dtype=np.float64) - c.select_vth_v) / (c.select_n * self.params.u_t)
        return i_fg * 0.5 * (1.0 + np.tanh(0.5 * x))  # logistic, overflow-free


def _device_cell_model(device: DeviceConfig, temperature_k: float):
    try:
        from norsim.device.iv import cell_model  # type: ignore[attr-defined]
    except ImportError:
        return _FallbackCellModel(device.cell, temperature_k)
    return cell_model(device.cell, temperature_k)


class ArrayCell:
    """Cell I-V at the array's bias: word line, control gate, clamped bit line, source line."""

    def __init__(self, device: DeviceConfig, clamp_gain: float):
        self.device = device
        r = device.read
        self.model = _device_cell_model(device, r.temperature_k)
        self.split = device.cell.cell_type == "split_gate"
        self.v_d = r.v_bl_read_v * clamp_gain / (1.0 + clamp_gain)
        self.v_s = r.v_sl_read_v
        self.v_cg = r.v_cg_read_v
        self.v_on = r.v_select_on_v if self.split else r.v_cg_read_v
        self.v_off = r.v_select_off_v

    # the voltages of a row that is driven with analog amplitude v on its "input" gate
    def gates_for_amplitude(self, v):
        """(v_wl, v_cg) when the input amplitude ``v`` drives the control gate (select on)."""
        if self.split:
            return self.v_on, v
        return v, self.v_cg

    def current(self, v_th, *, v_wl=None, v_cg=None, v_d=None):
        """Cell current (A); defaults: selected row at nominal bias."""
        v_wl = self.v_on if v_wl is None else v_wl
        v_cg = self.v_cg if v_cg is None else v_cg
        v_d = self.v_d if v_d is None else v_d
        return np.asarray(self.model.current(v_wl, v_cg, v_d, self.v_s, v_th), dtype=np.float64)

    def on_current(self, v_th):
        return self.current(v_th)

    def off_current(self, v_th):
        """Leakage of a cell in an unselected row (word line at its off level)."""
        if self.split:
            return self.current(v_th, v_wl=self.v_off)
        return self.current(v_th, v_wl=self.v_off, v_cg=self.v_off)

    def vth_for_current(self, i_target, *, v_wl=None, v_cg=None, tol_rel=1e-13):
        """V_th at which the cell conducts ``i_target`` at the given bias (bisection + secant).

        Uses the device layer's ``vth_for_current`` when it exists.
        """
        i_target = np.asarray(i_target, dtype=np.float64)
        if not np.all(np.isfinite(i_target)) or np.any(i_target <= 0):
            raise InputError("i_target", i_target[~(np.isfinite(i_target) & (i_target > 0))].ravel()[0],
                             "finite currents > 0 A")
        v_wl = self.v_on if v_wl is None else v_wl
        v_cg = self.v_cg if v_cg is None else v_cg
        try:
            from norsim.device.iv import vth_for_current  # type: ignore[attr-defined]
        except ImportError:
            vth_for_current = None
        if vth_for_current is not None and not isinstance(self.model, _FallbackCellModel):
            return np.asarray(vth_for_current(self.model, i_target, v_wl, v_cg, self.v_d, self.v_s),
                              dtype=np.float64)
        return solve_monotone(lambda vth: np.log(self.current(vth, v_wl=v_wl, v_cg=v_cg)),
                              np.log(i_target), -10.0, 20.0, decreasing=True, tol=tol_rel)

    def gate_for_current(self, i_target, v_th):
        """Input-gate amplitude at which a cell of ``v_th`` conducts ``i_target`` (current mirror)."""
        def f(v):
            wl, cg = self.gates_for_amplitude(v)
            return np.log(self.current(v_th, v_wl=wl, v_cg=cg))
        return solve_monotone(f, np.log(np.asarray(i_target, dtype=np.float64)), -10.0, 20.0,
                              decreasing=False, tol=1e-13)

    def didvth(self, v_th, h=1e-6):
        """dI/dV_th of a selected cell at nominal bias (central difference)."""
        return (self.on_current(v_th + h) - self.on_current(v_th - h)) / (2 * h)


def solve_monotone(f, target, lo, hi, *, decreasing, tol=1e-13, iters=200):
    """Solve f(x) = target elementwise for a monotone f on [lo, hi] by bisection."""
    target = np.asarray(target, dtype=np.float64)
    a = np.full(target.shape, lo, dtype=np.float64)
    b = np.full(target.shape, hi, dtype=np.float64)
    for _ in range(iters):
        m = 0.5 * (a + b)
        above = f(m) > target
        if decreasing:
            a = np.where(above, m, a)
            b = np.where(above, b, m)
        else:
            b = np.where(above, m, b)
            a = np.where(above, a, m)
        if np.max(b - a) < 1e-15:
            break
    x = 0.5 * (a + b)
    return x
