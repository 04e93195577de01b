"""The EKV transistor model (one floating-gate or select transistor), its NumPy reference and
numba kernels; part of :mod:`norsim.device.iv` (which re-exports these names).

    V_P   = [alpha_G (V_G - V_th) + eta (V_D - V_S)] / n        (bulk at 0 V)
    I_D   = I_S [F((V_P - V_S)/U_T) - F((V_P - V_D)/U_T)],   F(x) = ln^2(1 + e^(x/2))
    I_S   = 2 n beta U_T^2,   U_T = k T / q

Two paths with the same signature: :func:`ekv_current_numpy` (reference) and
:func:`ekv_current` (numba, fused, with analytic derivatives); :func:`_ekv_point` is the
scalar form that the split-gate solvers, the V_th solvers and the circuit kernels inline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from norsim.device.config import CellConfig
from norsim.device.vecmath import exp_nonpos, log1p_pos
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
    n = max(cell.slope_factor_n * (1.0 + cell.n_tempco_per_k * (temperature_k - cell.t_ref_k)), 1.0)
    return FgParams(n=n, alpha_g=cell.alpha_g, dibl_eta=cell.dibl_eta,
                    beta=beta, u_t=u_t, dvth=cell.dvth_dt_v_per_k * (temperature_k - cell.t_ref_k))


def _check_finite(name: str, a: np.ndarray) -> tuple[float, float] | None:
    """Raise unless every value is finite; return (min, max) (None for an empty array).
    min and max propagate NaN and show +-inf: no temporary mask of the whole array."""
    if not a.size:
        return None
    lo, hi = float(a.min()), float(a.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = a[~np.isfinite(a)].ravel()[0]
        raise InputError(name, bad, "finite voltages (no NaN or inf)")
    return lo, hi


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
    """ln(1 + e^(x/2)), overflow-free and branch-free (max(h, 0) + ln(1 + e^-|h|))."""
    h = 0.5 * x
    return max(h, 0.0) + np.log1p(np.exp(-abs(h)))


@numba.njit(cache=True, inline="always")
def _sigmoid_half(x):
    """1 / (1 + e^(-x/2)), overflow-free."""
    h = 0.5 * x
    e = np.exp(-abs(h))
    r = 1.0 / (1.0 + e)
    return r if h >= 0.0 else e * r


def _flat_inputs(values, names, finite):
    """Broadcast shape, flat float64 inputs and their index steps for the kernels, and the
    (min, max) of each input named in ``finite`` (by name; non-finite values there raise).

    Scalars (size 1) are passed as length-1 arrays with step 0, full-size C-contiguous arrays
    without a copy, anything else is materialised.
    """
    arrs = [np.asarray(x, dtype=np.float64) for x in values]
    shape = np.broadcast_shapes(*(a.shape for a in arrs))
    flats, steps, ranges = [], np.empty(len(arrs), np.int64), {}
    for i, (name, a) in enumerate(zip(names, arrs)):
        if name in finite:
            ranges[name] = _check_finite(name, a)
        if a.size == 1:
            f, steps[i] = np.array(a, dtype=np.float64).reshape(1), 0
        elif a.shape == shape and a.flags.c_contiguous:
            f, steps[i] = a.reshape(-1), 1
        else:
            f, steps[i] = np.array(np.broadcast_to(a, shape), dtype=np.float64, order="C").reshape(-1), 1
        if not f.flags.writeable:
            f = f.copy()
        flats.append(f)
    return shape, flats, steps, ranges


@numba.njit(cache=True, inline="always", error_model="numpy")
def _sp_half_v(x):
    """:func:`_sp_half` from the branch-free e^x and ln(1 + x) of :mod:`norsim.device.vecmath`
    (within an ulp of it; a loop of these vectorises, one of libm calls does not)."""
    h = 0.5 * x
    return max(h, 0.0) + log1p_pos(exp_nonpos(-abs(h)))


@numba.njit(cache=True, inline="always", error_model="numpy")
def _sigmoid_half_v(x):
    """:func:`_sigmoid_half` with the branch-free exponential."""
    h = 0.5 * x
    e = exp_nonpos(-abs(h))
    r = 1.0 / (1.0 + e)
    return r if h >= 0.0 else e * r


@numba.njit(cache=True, inline="always", error_model="numpy")
def _ekv_i(vg, vd, vs, vth, n0, eta0, i_s0, alpha_g, u_t):
    """EKV current of one element (scalar parameters): the body of the SIMD loops."""
    v_p = (alpha_g * (vg - vth) + eta0 * (vd - vs)) / n0
    lf = _sp_half_v((v_p - vs) / u_t)
    lr = _sp_half_v((v_p - vd) / u_t)
    return i_s0 * (lf * lf - lr * lr)


_CHUNK = 4096  # elements per parallel task: long plain inner loops for the vectoriser


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _ekv_kernel(v_g, v_d, v_s, v_th, n, beta, eta, steps, size, alpha_g, u_t, want_d,
                out_i, out_gd, out_gs):
    s0, s1, s2, s3, s4, s5, s6 = steps[0], steps[1], steps[2], steps[3], steps[4], steps[5], steps[6]
    nchunk = (size + _CHUNK - 1) // _CHUNK
    if s4 == 0 and s5 == 0 and s6 == 0 and not want_d:
        # common case: one n, beta, eta for all elements (no per-cell variation) and current
        # only: the parameter loads and the specific current leave the loop (the same
        # arithmetic as the general path, so the same values). Chunks run in parallel; the
        # loop inside a chunk is branch-free with unit-stride (or hoisted scalar) loads, the
        # two layouts that matter get their own loop so LLVM vectorises it
        n0 = n[0]
        eta0 = eta[0]
        i_s0 = 2.0 * n0 * beta[0] * u_t * u_t
        if s0 == 0 and s1 == 0 and s2 == 0 and s3 == 1:  # one bias, a V_th per element
            vg = v_g[0]
            vd = v_d[0]
            vs = v_s[0]
            for c in numba.prange(nchunk):
                for k in range(c * _CHUNK, min(size, (c + 1) * _CHUNK)):
                    out_i[k] = _ekv_i(vg, vd, vs, v_th[k], n0, eta0, i_s0, alpha_g, u_t)
        elif s0 == 1 and s1 == 1 and s2 == 1 and s3 == 1:  # every terminal per element
            for c in numba.prange(nchunk):
                for k in range(c * _CHUNK, min(size, (c + 1) * _CHUNK)):
                    out_i[k] = _ekv_i(v_g[k], v_d[k], v_s[k], v_th[k], n0, eta0, i_s0,
                                      alpha_g, u_t)
        else:
            for c in numba.prange(nchunk):
                for k in range(c * _CHUNK, min(size, (c + 1) * _CHUNK)):
                    out_i[k] = _ekv_i(v_g[k * s0], v_d[k * s1], v_s[k * s2], v_th[k * s3], n0,
                                      eta0, i_s0, alpha_g, u_t)
        return
    for c in numba.prange(nchunk):
        for k in range(c * _CHUNK, min(size, (c + 1) * _CHUNK)):
            nk = n[k * s4]
            etak = eta[k * s6]
            vd = v_d[k * s1]
            vs = v_s[k * s2]
            v_p = (alpha_g * (v_g[k * s0] - v_th[k * s3]) + etak * (vd - vs)) / nk
            i_s = 2.0 * nk * beta[k * s5] * u_t * u_t
            xf = (v_p - vs) / u_t
            xr = (v_p - vd) / u_t
            lf = _sp_half_v(xf)
            lr = _sp_half_v(xr)
            out_i[k] = i_s * (lf * lf - lr * lr)
            if want_d:
                # dF/dx = ln(1+e^(x/2)) * sigmoid(x/2)
                dff = lf * _sigmoid_half_v(xf)
                dfr = lr * _sigmoid_half_v(xr)
                dvp_dvd = etak / nk
                dvp_dvs = -etak / nk
                out_gd[k] = i_s / u_t * (dff * dvp_dvd - dfr * (dvp_dvd - 1.0))
                out_gs[k] = i_s / u_t * (dff * (dvp_dvs - 1.0) - dfr * dvp_dvs)


_EKV_NAMES = ("v_g", "v_d", "v_s", "v_th", "n", "beta", "dibl_eta")


def ekv_current(v_g, v_d, v_s, v_th, n, alpha_g, beta, dibl_eta, u_t, *, derivatives=False):
    """Fast EKV drain current; with ``derivatives`` also dI/dV_D and dI/dV_S."""
    shape, flat, steps, _ = _flat_inputs((v_g, v_d, v_s, v_th, n, beta, dibl_eta),
                                         _EKV_NAMES, _EKV_NAMES[:4])
    size = int(np.prod(shape))
    out_i = np.empty(size)
    out_gd = np.empty(size if derivatives else 1)
    out_gs = np.empty(size if derivatives else 1)
    _ekv_kernel(*flat, steps, size, float(alpha_g), float(u_t), bool(derivatives),
                out_i, out_gd, out_gs)
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


# ---------------------------------------------- scalar form, NumPy partials ----
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
def _sp_sig_half(x):
    """ln(1 + e^(x/2)) and 1 / (1 + e^(-x/2)) from one exponential (the same values as
    :func:`_sp_half` and :func:`_sigmoid_half`)."""
    h = 0.5 * x
    e = np.exp(-abs(h))
    r = 1.0 / (1.0 + e)
    return max(h, 0.0) + np.log1p(e), (r if h >= 0.0 else e * r)


@numba.njit(cache=True, inline="always")
def _ekv_point(v_g, v_d, v_s, v_th, n, alpha_g, beta, eta, u_t):
    """Scalar EKV: (I, dI/dV_D, dI/dV_S, I_forward + I_reverse, dI/dV_th)."""
    v_p = (alpha_g * (v_g - v_th) + eta * (v_d - v_s)) / n
    i_s = 2.0 * n * beta * u_t * u_t
    xf = (v_p - v_s) / u_t
    xr = (v_p - v_d) / u_t
    lf, sf = _sp_sig_half(xf)
    lr, sr = _sp_sig_half(xr)
    dff = lf * sf
    dfr = lr * sr
    k = eta / n
    gd = i_s / u_t * (dff * k - dfr * (k - 1.0))
    gs = i_s / u_t * (dff * (-k - 1.0) + dfr * k)
    gvth = -i_s / u_t * (alpha_g / n) * (dff - dfr)
    return i_s * (lf * lf - lr * lr), gd, gs, i_s * (lf * lf + lr * lr), gvth
