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
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from norsim.device.config import CellConfig
from norsim.errors import InputError

BOLTZMANN_J_PER_K = 1.380649e-23
ELEMENTARY_CHARGE_C = 1.602176634e-19


def thermal_voltage(temperature_k: float) -> float:
    """U_T = k T / q in volts."""
    if not np.isfinite(temperature_k) or temperature_k <= 0:
        raise InputError("temperature_k", temperature_k, "a finite temperature > 0 K")
    return BOLTZMANN_J_PER_K * temperature_k / ELEMENTARY_CHARGE_C


@dataclass(frozen=True)
class FgParams:
    """Scalar FG-transistor parameters resolved at one temperature."""

    n: float
    alpha_g: float
    dibl_eta: float
    beta: float
    u_t: float
    dvth: float  # V_th shift from the reference temperature (add to every cell's V_th)

    @property
    def i_spec(self) -> float:
        return 2.0 * self.n * self.beta * self.u_t**2


def params_at_temperature(cell: CellConfig, temperature_k: float) -> FgParams:
    u_t = thermal_voltage(temperature_k)
    beta = cell.beta_a_per_v2 * (temperature_k / cell.t_ref_k) ** (-cell.mobility_exponent)
    return FgParams(n=cell.slope_factor_n, alpha_g=cell.alpha_g, dibl_eta=cell.dibl_eta,
                    beta=beta, u_t=u_t, dvth=cell.dvth_dt_v_per_k * (temperature_k - cell.t_ref_k))


def _check_finite(name: str, a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        bad = a[~np.isfinite(a)].ravel()[0]
        raise InputError(name, bad, "finite voltages (no NaN or inf)")


def _broadcast(v_g, v_d, v_s, v_th, n, beta, dibl_eta):
    arrays = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in
                                   (v_g, v_d, v_s, v_th, n, beta, dibl_eta)))
    for name, a in zip(("v_g", "v_d", "v_s", "v_th"), arrays[:4]):
        _check_finite(name, a)
    return arrays


# ---------------------------------------------------------------- NumPy reference ----
def _softplus_half(x):
    return np.logaddexp(0.0, 0.5 * x)


def ekv_current_numpy(v_g, v_d, v_s, v_th, n, alpha_g, beta, dibl_eta, u_t):
    """Reference EKV drain current (A), drain-to-source positive. Broadcasts."""
    v_g, v_d, v_s, v_th, n, beta, dibl_eta = _broadcast(v_g, v_d, v_s, v_th, n, beta, dibl_eta)
    v_p = (alpha_g * (v_g - v_th) + dibl_eta * (v_d - v_s)) / n
    i_s = 2.0 * n * beta * u_t**2
    return i_s * (_softplus_half((v_p - v_s) / u_t) ** 2 - _softplus_half((v_p - v_d) / u_t) ** 2)


# ---------------------------------------------------------------- numba fast path ----
@numba.njit(cache=True, inline="always")
def _sp_half(x):
    h = 0.5 * x
    if h > 0.0:
        return h + np.log1p(np.exp(-h))
    return np.log1p(np.exp(h))


@numba.njit(cache=True, inline="always")
def _sigmoid_half(x):
    h = 0.5 * x
    if h >= 0.0:
        return 1.0 / (1.0 + np.exp(-h))
    e = np.exp(h)
    return e / (1.0 + e)


@numba.njit(cache=True)
def _ekv_kernel(v_g, v_d, v_s, v_th, n, beta, eta, alpha_g, u_t, out_i, out_gd, out_gs):
    for k in range(v_g.size):
        nk = n[k]
        v_p = (alpha_g * (v_g[k] - v_th[k]) + eta[k] * (v_d[k] - v_s[k])) / nk
        i_s = 2.0 * nk * beta[k] * u_t * u_t
        xf = (v_p - v_s[k]) / u_t
        xr = (v_p - v_d[k]) / u_t
        lf = _sp_half(xf)
        lr = _sp_half(xr)
        out_i[k] = i_s * (lf * lf - lr * lr)
        # dF/dx = ln(1+e^(x/2)) * sigmoid(x/2)
        dff = lf * _sigmoid_half(xf)
        dfr = lr * _sigmoid_half(xr)
        dvp_dvd = eta[k] / nk
        dvp_dvs = -eta[k] / nk
        out_gd[k] = i_s / u_t * (dff * dvp_dvd - dfr * (dvp_dvd - 1.0))
        out_gs[k] = i_s / u_t * (dff * (dvp_dvs - 1.0) - dfr * dvp_dvs)


def ekv_current(v_g, v_d, v_s, v_th, n, alpha_g, beta, dibl_eta, u_t, *, derivatives=False):
    """Fast EKV drain current; with ``derivatives`` also dI/dV_D and dI/dV_S."""
    arrays = _broadcast(v_g, v_d, v_s, v_th, n, beta, dibl_eta)
    shape = arrays[0].shape
    flat = [np.array(a, dtype=np.float64, order="C").reshape(-1) for a in arrays]
    out_i = np.empty(flat[0].size)
    out_gd = np.empty_like(out_i)
    out_gs = np.empty_like(out_i)
    _ekv_kernel(*flat, float(alpha_g), float(u_t), out_i, out_gd, out_gs)
    if derivatives:
        return out_i.reshape(shape), out_gd.reshape(shape), out_gs.reshape(shape)
    return out_i.reshape(shape)


def fg_current(params: FgParams, v_g, v_d, v_s, v_th, *, n=None, beta=None, dibl_eta=None,
               fast=True):
    """EKV current with ``params`` at their temperature; per-cell n/beta/eta optional."""
    fn = ekv_current if fast else ekv_current_numpy
    return fn(v_g, v_d, v_s, np.asarray(v_th) + params.dvth,
              params.n if n is None else n, params.alpha_g,
              params.beta if beta is None else beta,
              params.dibl_eta if dibl_eta is None else dibl_eta, params.u_t)


# ======================================================================================
# Whole cell: stacked-gate (one FG transistor) or split-gate (select + FG in series)
# ======================================================================================
def _ekv_numpy_partials(v_g, v_d, v_s, v_th, n, alpha_g, beta, eta, u_t):
    """NumPy reference of the EKV current and its analytic dI/dV_D, dI/dV_S (no checks)."""
    from scipy.special import expit

    v_p = (alpha_g * (v_g - v_th) + eta * (v_d - v_s)) / n
    i_s = 2.0 * n * beta * u_t**2
    xf = (v_p - v_s) / u_t
    xr = (v_p - v_d) / u_t
    lf = np.logaddexp(0.0, 0.5 * xf)
    lr = np.logaddexp(0.0, 0.5 * xr)
    i = i_s * (lf * lf - lr * lr)
    dff = lf * expit(0.5 * xf)
    dfr = lr * expit(0.5 * xr)
    k = eta / n
    gd = i_s / u_t * (dff * k - dfr * (k - 1.0))
    gs = i_s / u_t * (dff * (-k - 1.0) + dfr * k)
    scale = i_s * (lf * lf + lr * lr)
    return i, gd, gs, scale


@numba.njit(cache=True, inline="always")
def _ekv_point(v_g, v_d, v_s, v_th, n, alpha_g, beta, eta, u_t):
    """Scalar EKV: (I, dI/dV_D, dI/dV_S, I_forward + I_reverse)."""
    v_p = (alpha_g * (v_g - v_th) + eta * (v_d - v_s)) / n
    i_s = 2.0 * n * beta * u_t * u_t
    xf = (v_p - v_s) / u_t
    xr = (v_p - v_d) / u_t
    lf = _sp_half(xf)
    lr = _sp_half(xr)
    dff = lf * _sigmoid_half(xf)
    dfr = lr * _sigmoid_half(xr)
    k = eta / n
    gd = i_s / u_t * (dff * k - dfr * (k - 1.0))
    gs = i_s / u_t * (dff * (-k - 1.0) + dfr * k)
    return i_s * (lf * lf - lr * lr), gd, gs, i_s * (lf * lf + lr * lr)


@numba.njit(cache=True)
def _split_gate_kernel(v_wl, v_cg, v_d, v_s, v_th, n, beta, eta, alpha_g, u_t,
                       sel_vth, sel_n, sel_beta, sel_eta, max_iter, out_i, out_gd, out_gs,
                       out_vx):
    """Series select + FG transistor; solve the internal node by safeguarded Newton.

    g(x) = I_sel(V_D -> x) - I_fg(x -> V_S) is strictly decreasing in x and changes sign
    on [min(V_D, V_S), max(V_D, V_S)], so the bracket always holds the root.
    """
    for k in range(v_wl.size):
        vd = v_d[k]
        vs = v_s[k]
        lo = min(vd, vs)
        hi = max(vd, vs)
        if hi == lo:
            out_i[k] = 0.0
            i_f, c, e, sc = _ekv_point(v_cg[k], vd, vs, v_th[k], n[k], alpha_g, beta[k],
                                       eta[k], u_t)
            i_s_, a, b, sc2 = _ekv_point(v_wl[k], vd, vd, sel_vth, sel_n, 1.0, sel_beta,
                                         sel_eta, u_t)
            den = c - b
            out_gd[k] = a * c / den
            out_gs[k] = -b * e / den
            out_vx[k] = vd
            continue
        # start at the drain: in the usual read the FG transistor limits the current and the
        # first Newton step from there lands within the select transistor's small drop
        x = vd
        for _ in range(max_iter):
            i_sel, a, b, s1 = _ekv_point(v_wl[k], vd, x, sel_vth, sel_n, 1.0, sel_beta,
                                         sel_eta, u_t)
            i_fg, c, e, s2 = _ekv_point(v_cg[k], x, vs, v_th[k], n[k], alpha_g, beta[k],
                                        eta[k], u_t)
            g = i_sel - i_fg
            if g > 0.0:
                lo = x
            elif g < 0.0:
                hi = x
            else:
                break
            dg = b - c  # < 0
            x_new = x - g / dg if dg < 0.0 else 0.5 * (lo + hi)
            if not (x_new > lo and x_new < hi):
                x_new = 0.5 * (lo + hi)
            # quadratic convergence: a step of 1e-14 V leaves an error far below one ulp
            if abs(x_new - x) <= 1e-14 * max(1.0, abs(x)) or hi - lo <= 1e-15 * max(1.0, abs(x)):
                x = x_new
                break
            x = x_new
        i_sel, a, b, s1 = _ekv_point(v_wl[k], vd, x, sel_vth, sel_n, 1.0, sel_beta,
                                     sel_eta, u_t)
        i_fg, c, e, s2 = _ekv_point(v_cg[k], x, vs, v_th[k], n[k], alpha_g, beta[k],
                                    eta[k], u_t)
        out_i[k] = i_fg
        den = c - b
        out_gd[k] = a * c / den
        out_gs[k] = -b * e / den
        out_vx[k] = x


def _split_gate_numpy(v_wl, v_cg, v_d, v_s, v_th, n, beta, eta, fg: FgParams, sel: FgParams,
                      sel_vth: float, iterations: int = 200):
    """NumPy reference for the split-gate cell: plain bisection of the internal node."""
    lo = np.minimum(v_d, v_s)
    hi = np.maximum(v_d, v_s)
    for _ in range(iterations):
        x = 0.5 * (lo + hi)
        i_sel = _ekv_numpy_partials(v_wl, v_d, x, sel_vth, sel.n, 1.0, sel.beta,
                                    sel.dibl_eta, sel.u_t)[0]
        i_fg = _ekv_numpy_partials(v_cg, x, v_s, v_th, n, fg.alpha_g, beta, eta, fg.u_t)[0]
        g = i_sel - i_fg
        lo = np.where(g > 0, x, lo)
        hi = np.where(g < 0, x, hi)
        done = g == 0
        lo = np.where(done, x, lo)
        hi = np.where(done, x, hi)
    x = 0.5 * (lo + hi)
    i_sel, a, b, s1 = _ekv_numpy_partials(v_wl, v_d, x, sel_vth, sel.n, 1.0, sel.beta,
                                          sel.dibl_eta, sel.u_t)
    i_fg, c, e, s2 = _ekv_numpy_partials(v_cg, x, v_s, v_th, n, fg.alpha_g, beta, eta, fg.u_t)
    den = c - b
    i_fg = np.where(v_d == v_s, 0.0, i_fg)
    return i_fg, a * c / den, -b * e / den, x, s1 + s2


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
            _check_finite(name, a)
        return arrays

    def current(self, v_wl, v_cg, v_d, v_s, v_th, *, n=None, beta=None, dibl_eta=None,
                derivatives=False, fast=True):
        """Drain current (A, bit line to source line positive); with ``derivatives`` also
        (dI/dV_D, dI/dV_S) by the implicit-function theorem for the split-gate cell."""
        out = self._evaluate(v_wl, v_cg, v_d, v_s, v_th, n, beta, dibl_eta, fast)
        if derivatives:
            return out[0], out[1], out[2]
        return out[0]

    def internal_node(self, v_wl, v_cg, v_d, v_s, v_th, *, n=None, beta=None, dibl_eta=None,
                      fast=True):
        """Voltage of the split-gate cell's internal node (between select and FG transistor)."""
        if self.cell_type != "split_gate":
            raise InputError("cell_type", self.cell_type, "'split_gate' (only it has an internal node)")
        return self._evaluate(v_wl, v_cg, v_d, v_s, v_th, n, beta, dibl_eta, fast)[3]

    def current_scale(self, v_wl, v_cg, v_d, v_s, v_th, *, n=None, beta=None, dibl_eta=None):
        """I_forward + I_reverse of the transistors (the scale of rounding errors)."""
        return self._evaluate(v_wl, v_cg, v_d, v_s, v_th, n, beta, dibl_eta, False)[4]

    def _evaluate(self, v_wl, v_cg, v_d, v_s, v_th, n, beta, dibl_eta, fast):
        v_wl, v_cg, v_d, v_s, v_th, n, beta, eta = self._arrays(v_wl, v_cg, v_d, v_s, v_th,
                                                                n, beta, dibl_eta)
        fg = self.fg
        vth_t = v_th + fg.dvth
        if self.cell_type == "stacked_gate":
            if fast:
                i, gd, gs = ekv_current(v_wl, v_d, v_s, vth_t, n, fg.alpha_g, beta, eta, fg.u_t,
                                        derivatives=True)
                return i, gd, gs, None, None
            i, gd, gs, sc = _ekv_numpy_partials(v_wl, v_d, v_s, vth_t, n, fg.alpha_g, beta,
                                                eta, fg.u_t)
            return i, gd, gs, None, sc
        sel = self.sel
        sel_vth = self.select_vth + sel.dvth
        if not fast:
            return _split_gate_numpy(v_wl, v_cg, v_d, v_s, vth_t, n, beta, eta, fg, sel, sel_vth)
        shape = v_wl.shape
        flat = [np.array(a, dtype=np.float64, order="C").reshape(-1) for a in (v_wl, v_cg, v_d, v_s, vth_t, n, beta, eta)]
        out = [np.empty(flat[0].size) for _ in range(4)]
        _split_gate_kernel(*flat, float(fg.alpha_g), float(fg.u_t), float(sel_vth),
                           float(sel.n), float(sel.beta), float(sel.dibl_eta), int(self.max_iter),
                           *out)
        i, gd, gs, vx = (o.reshape(shape) for o in out)
        return i, gd, gs, vx, None


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


def vth_for_current(model: CellModel, i_target, v_wl, v_cg, v_d, v_s, *, n=None, beta=None,
                    dibl_eta=None, tol_v: float = 1e-9, max_iter: int = 100) -> np.ndarray:
    """The (reference-temperature, control-gate-referred) V_th giving ``i_target`` at a bias.

    I_D falls monotonically with V_th, so ln I_D(V_th) - ln i_target is inverted by the
    Illinois (modified regula falsi) method inside a bracket that is widened until it holds
    the root. Needs V_D > V_S and i_target > 0 (below the current of V_th -> -inf).
    """
    arrays = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (
        i_target, v_wl, v_cg, v_d, v_s)))
    i_t, v_wl, v_cg, v_d, v_s = arrays
    for name, a in zip(("i_target", "v_wl", "v_cg", "v_d", "v_s"), arrays):
        _check_finite(name, a)
    if np.any(i_t <= 0):
        raise InputError("i_target", i_t[i_t <= 0].ravel()[0], "a current > 0 A")
    if np.any(v_d <= v_s):
        raise InputError("v_d", v_d[v_d <= v_s].ravel()[0], "a drain voltage above v_s")
    extra = dict(n=n, beta=beta, dibl_eta=dibl_eta)

    def h(vth):
        i = model.current(v_wl, v_cg, v_d, v_s, vth, **extra)
        return np.log(np.maximum(i, 1e-300)) - np.log(i_t)

    a = np.full(i_t.shape, -1.0)
    b = np.full(i_t.shape, 1.0)
    fa, fb = h(a), h(b)
    for _ in range(60):  # widen: fa > 0 (current too high) and fb < 0
        bad_a = fa <= 0
        bad_b = fb >= 0
        if not (bad_a.any() or bad_b.any()):
            break
        a = np.where(bad_a, a - 2.0 * (b - a), a)
        b = np.where(bad_b, b + 2.0 * (b - a), b)
        fa, fb = h(a), h(b)
    if np.any(fa <= 0):
        k = np.flatnonzero((fa <= 0).ravel())[0]
        raise InputError("i_target", i_t.ravel()[k],
                         "a current the cell can reach at this bias (below its V_th -> -inf limit)")
    side = np.zeros(i_t.shape)
    for _ in range(max_iter):
        c = (a * fb - b * fa) / (fb - fa)
        c = np.where(np.isfinite(c) & (c > a) & (c < b), c, 0.5 * (a + b))
        fc = h(c)
        pos = fc > 0
        # root lies in [c, b] where fc > 0, else in [a, c]
        a_new = np.where(pos, c, a)
        fa_new = np.where(pos, fc, fa)
        b_new = np.where(pos, b, c)
        fb_new = np.where(pos, fb, fc)
        # Illinois: halve the retained end's value when the same end is kept twice
        fb_new = np.where(pos & (side == 1), fb_new * 0.5, fb_new)
        fa_new = np.where(~pos & (side == -1), fa_new * 0.5, fa_new)
        side = np.where(pos, 1, -1)
        a, b, fa, fb = a_new, b_new, fa_new, fb_new
        if np.all((b - a) < tol_v) or np.all(np.abs(fc) < 1e-12):
            break
    return c
