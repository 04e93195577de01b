"""Floating-gate transistor I-V: EKV interpolation from subthreshold to strong inversion.

    V_P   = [alpha_G (V_G - V_th) + eta (V_D - V_S)] / n        (bulk at 0 V)
    I_D   = I_S [F((V_P - V_S)/U_T) - F((V_P - V_D)/U_T)],   F(x) = ln^2(1 + e^(x/2))
    I_S   = 2 n beta U_T^2,   U_T = k T / q

V_th is control-gate referred, so the swing seen from the control gate is
ln(10) n U_T / alpha_G and the strong-inversion limit is (beta / 2n) V_ov^2 with the
floating-gate-referred overdrive V_ov = alpha_G (V_G - V_th) + eta V_DS.

Two paths with the same signature: :func:`ekv_current_numpy` (reference) and
:func:`ekv_current` (numba, fused, with analytic derivatives for the circuit solver).
Temperature dependence of V_th and beta is applied by :func:`params_at_temperature`.

The code is split along its seams: :mod:`norsim.device.iv_ekv` (one transistor: closed form,
NumPy reference, numba kernels), :mod:`norsim.device.iv_split` (the split-gate node solve
and its NumPy reference), :mod:`norsim.device.iv_split_vec` (its vectorised kernel) and
:mod:`norsim.device.iv_vth` (V_th for a target current). This module holds the cell model
and re-exports their public (and test-facing) names, so ``norsim.device.iv`` stays the
import path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from norsim.device.config import CellConfig
from norsim.device.iv_ekv import (  # noqa: F401  (re-exported)
    BOLTZMANN_J_PER_K, ELEMENTARY_CHARGE_C, FgParams, _broadcast, _check_finite, _ekv_kernel,
    _ekv_numpy_partials, _ekv_point, _flat_inputs, _sp_half, _sp_sig_half, _sigmoid_half,
    ekv_current, ekv_current_numpy, fg_current, params_at_temperature, thermal_voltage)
from norsim.device.iv_split import (  # noqa: F401  (re-exported)
    NODE_STEP_REL, _split_gate_numpy, _split_gate_scalar_kernel, _split_solve)
from norsim.device.iv_split_vec import (  # noqa: F401  (re-exported)
    _SEL_ON_H, _SG_BLOCK, _SG_CHUNK, _SG_PASSES, _SG_SCALAR_BELOW, NODE_TAYLOR_STEP_UT,
    _split_gate_kernel, _split_step)
from norsim.device.iv_vth import (  # noqa: F401  (re-exported)
    _vth_direct_kernel, _vth_for_current_numpy, _vth_kernel, vth_for_current)
from norsim.errors import InputError


@dataclass(frozen=True)
class CellModel:
    """A cell population's I-V at one temperature.

    ``current(v_wl, v_cg, v_d, v_s, v_th)`` broadcasts its arguments. For a split-gate
    cell the order is bit line (drain) - select transistor (gate ``v_wl``) - internal node -
    floating-gate transistor (control gate ``v_cg``, threshold ``v_th``) - source line; the
    internal node is solved so both currents are equal. For a stacked-gate cell the word line
    is the control gate (``v_cg`` is ignored). ``v_th`` is the control-gate-referred threshold
    at the reference temperature; the temperature shift is applied here.
    """

    cell_type: str
    fg: FgParams
    sel: FgParams | None
    select_vth: float
    max_iter: int = 200

    def _arrays(self, v_wl, v_cg, v_d, v_s, v_th, n, beta, dibl_eta):
        fg = self.fg
        arrays = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (
            v_wl, v_cg, v_d, v_s, v_th, fg.n if n is None else n,
            fg.beta if beta is None else beta, fg.dibl_eta if dibl_eta is None else dibl_eta)))
        for name, a in zip(("v_wl", "v_cg", "v_d", "v_s", "v_th", "n", "beta", "dibl_eta"),
                           arrays):
            if name != "v_cg" or self.cell_type == "split_gate":  # stacked: v_cg is unused
                _check_finite(name, a)
        return arrays

    def current(self, v_wl, v_cg, v_d, v_s, v_th, *, n=None, beta=None, dibl_eta=None,
                derivatives=False, fast=True):
        """Drain current (A, bit line to source line positive); with ``derivatives`` also
        (dI/dV_D, dI/dV_S) by the implicit-function theorem for the split-gate cell."""
        out = self._evaluate(v_wl, v_cg, v_d, v_s, v_th, n, beta, dibl_eta, fast, derivatives)
        if derivatives:
            return out[0], out[1], out[2]
        return out[0]

    def internal_node(self, v_wl, v_cg, v_d, v_s, v_th, *, n=None, beta=None, dibl_eta=None,
                      fast=True):
        """Voltage of the split-gate cell's internal node (between select and FG transistor)."""
        if self.cell_type != "split_gate":
            raise InputError("cell_type", self.cell_type, "'split_gate' (only it has an internal node)")
        return self._evaluate(v_wl, v_cg, v_d, v_s, v_th, n, beta, dibl_eta, fast, False,
                              want_vx=True)[3]

    def current_scale(self, v_wl, v_cg, v_d, v_s, v_th, *, n=None, beta=None, dibl_eta=None):
        """I_forward + I_reverse of the transistors (the scale of rounding errors)."""
        return self._evaluate(v_wl, v_cg, v_d, v_s, v_th, n, beta, dibl_eta, False, True)[4]

    def _kernel_constants(self):
        """The split-gate kernels' scalar arguments after ``size``: alpha_G, U_T, the V_th
        temperature shift, the select transistor's V_th, n, beta, DIBL, iteration limit."""
        fg, sel = self.fg, self.sel
        return (float(fg.alpha_g), float(fg.u_t), float(fg.dvth),
                float(self.select_vth + sel.dvth), float(sel.n), float(sel.beta),
                float(sel.dibl_eta), int(self.max_iter))

    def _evaluate(self, v_wl, v_cg, v_d, v_s, v_th, n, beta, dibl_eta, fast, want_d,
                  want_vx=False):
        fg = self.fg
        n = fg.n if n is None else n
        beta = fg.beta if beta is None else beta
        eta = fg.dibl_eta if dibl_eta is None else dibl_eta
        if not fast:
            v_wl, v_cg, v_d, v_s, v_th, n, beta, eta = self._arrays(v_wl, v_cg, v_d, v_s, v_th,
                                                                    n, beta, eta)
            vth_t = v_th + fg.dvth
            if self.cell_type == "stacked_gate":
                i, gd, gs, sc = _ekv_numpy_partials(v_wl, v_d, v_s, vth_t, n, fg.alpha_g, beta,
                                                    eta, fg.u_t)
                return i, gd, gs, None, sc
            return _split_gate_numpy(v_wl, v_cg, v_d, v_s, vth_t, n, beta, eta, fg, self.sel,
                                     self.select_vth + self.sel.dvth)
        if self.cell_type == "stacked_gate":
            out = ekv_current(v_wl, v_d, v_s, np.asarray(v_th, dtype=np.float64) + fg.dvth, n,
                              fg.alpha_g, beta, eta, fg.u_t, derivatives=want_d)
            return (out + (None, None)) if want_d else (out, None, None, None, None)
        shape, flat, steps, ranges = _flat_inputs((v_wl, v_cg, v_d, v_s, v_th, n, beta, eta),
                                                  _CELL_NAMES, _CELL_NAMES)
        size = int(np.prod(shape))
        out = [np.empty(size if wanted else 0) for wanted in (True, want_d, want_d, want_vx)]
        consts = self._kernel_constants()
        _split_gate_kernel(*flat, steps, size, *consts, *out, _NO_PASS,
                           *_node_predictor(flat, steps, size, consts, ranges["v_th"]))
        i, gd, gs, vx = (o.reshape(shape) if o.size == size else None for o in out)
        return i, gd, gs, vx, None


_CELL_NAMES = ("v_wl", "v_cg", "v_d", "v_s", "v_th", "n", "beta", "dibl_eta")
_NO_PASS = np.empty(0, np.int8)
_NO_TABLE = np.empty(0)
_COMMON_READ_STEPS = (0, 0, 0, 0, 1, 0, 0, 0)  # one bias, n, beta, eta; a V_th per element
_SG_PREDICT_MIN = 16384    # common reads at least this large start pass 0 from a node table
_SG_PREDICT_POINTS = 1024  # table points across the call's V_th range


def _node_predictor(flat, steps, size, consts, th_range):
    """(V_th of the first point, points per volt, node voltages) for
    :func:`_split_gate_kernel`'s pass 0, or an empty table; ``th_range``: (min, max) of the
    call's V_th (from :func:`_flat_inputs`).

    For a common read the node depends on V_th alone and smoothly (the select transistor's
    drop grows with the FG current), so the kernel's own solution on an evenly spaced V_th
    grid, linearly interpolated, lands within the pass-0 acceptance window (1e-4 U_T) of the
    root: on the preset read over V_th in [-0.5, 2.5] V the interpolation is off by <= 8e-8 V
    against a window of 2.6e-6 V. Where it is not (a very wide V_th range), the element is
    simply finished by the next pass: the table only chooses where pass 0 starts.
    """
    if size < _SG_PREDICT_MIN or consts[6] != 0.0 or tuple(steps) != _COMMON_READ_STEPS:
        return 0.0, 0.0, _NO_TABLE
    th_lo, th_hi = th_range
    if not th_hi > th_lo:
        return 0.0, 0.0, _NO_TABLE
    k = _SG_PREDICT_POINTS
    grid = list(flat)
    grid[4] = np.linspace(th_lo, th_hi, k)
    out = [np.empty(k) for _ in range(4)]
    _split_gate_kernel(*grid, steps, k, *consts, *out, _NO_PASS, 0.0, 0.0, _NO_TABLE)
    return th_lo, (k - 1) / (th_hi - th_lo), out[3]


def cell_model(cell_cfg: CellConfig, temperature_k: float) -> CellModel:
    """Resolve a :class:`CellConfig` at ``temperature_k`` into a :class:`CellModel`.

    The select transistor of a split-gate cell has alpha_G = 1, no DIBL, its own n, beta and
    V_th, and the same V_th temperature coefficient and mobility exponent as the FG device.
    """
    if not isinstance(temperature_k, (int, float, np.floating)) or not np.isfinite(temperature_k) \
            or temperature_k <= 0:
        raise InputError("temperature_k", temperature_k, "a finite temperature > 0 K")
    fg = params_at_temperature(cell_cfg, float(temperature_k))
    if cell_cfg.cell_type == "stacked_gate":
        return CellModel("stacked_gate", fg, None, float("nan"))
    t_ratio = temperature_k / cell_cfg.t_ref_k
    sel = FgParams(n=cell_cfg.select_n, alpha_g=1.0, dibl_eta=0.0,
                   beta=cell_cfg.select_beta_a_per_v2 * t_ratio ** (-cell_cfg.mobility_exponent),
                   u_t=fg.u_t, dvth=fg.dvth)
    return CellModel("split_gate", fg, sel, float(cell_cfg.select_vth_v))
