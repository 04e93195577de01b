"""The array's view of one cell: current at given terminal voltages, V_th for a target current.

Uses the device layer's ``norsim.device.iv.cell_model`` (split- and stacked-gate cells) and
``vth_for_current``. Word-line levels: for split-gate cells the word line is the select gate
and the control gate sits at ``v_cg_read_v``; for stacked-gate cells the word line is the
control gate, "on" at ``v_cg_read_v`` and "off" at ``v_select_off_v``. The bit line sits at
the clamp's ``v_bl_read_v A / (1 + A)``.
"""

from __future__ import annotations

import numpy as np

from norsim.device.config import DeviceConfig
from norsim.device.iv import cell_model, vth_for_current
from norsim.errors import InputError


class ArrayCell:
    """Cell I-V at the array's bias: word line, control gate, clamped bit line, source line."""

    def __init__(self, device: DeviceConfig, clamp_gain: float):
        self.device = device
        r = device.read
        self.model = cell_model(device.cell, r.temperature_k)
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

    def vth_for_current(self, i_target, *, v_wl=None, v_cg=None):
        """V_th at which the cell conducts ``i_target`` at the given bias (device layer)."""
        i_target = np.asarray(i_target, dtype=np.float64)
        if not np.all(np.isfinite(i_target)) or np.any(i_target <= 0):
            raise InputError("i_target", i_target[~(np.isfinite(i_target) & (i_target > 0))].ravel()[0],
                             "finite currents > 0 A")
        v_wl = self.v_on if v_wl is None else v_wl
        v_cg = self.v_cg if v_cg is None else v_cg
        return np.asarray(vth_for_current(self.model, i_target, v_wl, v_cg, self.v_d, self.v_s),
                          dtype=np.float64)

    def gate_for_current(self, i_target, v_th):
        """Input-gate amplitude at which a cell of ``v_th`` conducts ``i_target`` (current mirror)."""
        def f(v):
            wl, cg = self.gates_for_amplitude(v)
            return np.log(self.current(v_th, v_wl=wl, v_cg=cg))
        return solve_monotone(f, np.log(np.asarray(i_target, dtype=np.float64)), -10.0, 20.0,
                              decreasing=False)


def solve_monotone(f, target, lo, hi, *, decreasing, iters=200):
    """Solve f(x) = target elementwise for a monotone f on [lo, hi] by bisection (to 1e-15)."""
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
