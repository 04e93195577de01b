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
    flat = [np.ascontiguousarray(a).ravel() for a in arrays]
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
