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
from norsim.device.vecmath import exp_nonpos, log1p_pos, softplus_sigmoid
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


# The internal node's Newton iteration stops once its step is below this (relative to
# max(1 V, |x|)): convergence is quadratic, so the node is then known to O(step^2 / V_DS),
# and the returned current is moved to it to first order (error O(step^2 I / U_T^2)).
NODE_STEP_REL = 1e-10


@numba.njit(cache=True)
def _split_solve(vwl, vcg, vd, vs, vth, nk, bk, ek, alpha_g, u_t, sel_vth, sel_n, sel_beta,
                 sel_eta, max_iter):
    """One split-gate cell: (I, dI/dV_D, dI/dV_S, internal node x, dI/dV_th).

    g(x) = I_sel(V_D -> x) - I_fg(x -> V_S) is strictly decreasing in x and changes sign
    on [min(V_D, V_S), max(V_D, V_S)], so the bracket always holds the root. Newton from
    x = V_D (the FG transistor limits the current in a read, so the first step lands next to
    the root), kept inside the bracket. Convergence is tested on the Newton step *before* the
    bracket is updated: a converged iterate returns at once, moved to x + dx to first order,
    instead of being forced out of a collapsed bracket into a bisection step.
    """
    lo = min(vd, vs)
    hi = max(vd, vs)
    x = vd
    if hi > lo:
        for _ in range(max_iter):
            if x == vd:
                # select transistor at V_DS = 0 (the start): forward = reverse term, so one
                # softplus gives I_sel = 0 and dI/dV_D = -dI/dV_S = I_S F'(x_f) / U_T
                i_s_sel = 2.0 * sel_n * sel_beta * u_t * u_t
                l0, g0 = _sp_sig_half(((vwl - sel_vth) / sel_n - vd) / u_t)
                a = i_s_sel / u_t * (l0 * g0)
                i_sel, b = 0.0, -a
            else:
                i_sel, a, b, s1, q1 = _ekv_point(vwl, vd, x, sel_vth, sel_n, 1.0, sel_beta,
                                                 sel_eta, u_t)
            i_fg, c, e, s2, p = _ekv_point(vcg, x, vs, vth, nk, alpha_g, bk, ek, u_t)
            g = i_sel - i_fg
            dg = b - c  # < 0 (b <= 0 <= c) unless both partials underflow
            if dg < 0.0:
                dx = -g / dg
                if abs(dx) <= NODE_STEP_REL * max(1.0, abs(x)):
                    # |c dx| <= |g|: the first-order move never exceeds the residual. (No
                    # exit on |g| at the rounding floor of I_f + I_r: with an absurdly low
                    # V_th the FG current is all rounding and only the bracket is reliable.)
                    den = c - b
                    return (i_fg + c * dx, a * c / den, -b * e / den,
                            min(max(x + dx, lo), hi), -p * b / den)
                x_new = x + dx
            else:
                x_new = 0.5 * (lo + hi)
            if g > 0.0:
                lo = x
            elif g < 0.0:
                hi = x
            else:
                break
            if not (x_new > lo and x_new < hi):
                x_new = 0.5 * (lo + hi)
            if hi - lo <= 1e-15 * max(1.0, abs(x)):
                x = x_new
                break
            x = x_new
    i_sel, a, b, s1, q1 = _ekv_point(vwl, vd, x, sel_vth, sel_n, 1.0, sel_beta, sel_eta, u_t)
    i_fg, c, e, s2, p = _ekv_point(vcg, x, vs, vth, nk, alpha_g, bk, ek, u_t)
    den = c - b
    i = i_fg if hi > lo else 0.0
    # implicit-function theorem on g(x, V_D, V_S, V_th) = 0
    return i, a * c / den, -b * e / den, x, -p * b / den


@numba.njit(cache=True, parallel=True)
def _split_gate_scalar_kernel(v_wl, v_cg, v_d, v_s, v_th, n, beta, eta, steps, size, alpha_g,
                              u_t, sel_vth, sel_n, sel_beta, sel_eta, max_iter, out_i, out_gd,
                              out_gs, out_vx):
    """Series select + FG transistor for every element by the safeguarded scalar solver
    (:func:`_split_solve`): the reference of :func:`_split_gate_kernel`'s vectorised path
    and its fallback."""
    for k in numba.prange(size):
        i, gd, gs, x, gv = _split_solve(
            v_wl[k * steps[0]], v_cg[k * steps[1]], v_d[k * steps[2]], v_s[k * steps[3]],
            v_th[k * steps[4]], n[k * steps[5]], beta[k * steps[6]], eta[k * steps[7]],
            alpha_g, u_t, sel_vth, sel_n, sel_beta, sel_eta, max_iter)
        out_i[k] = i
        out_gd[k] = gd
        out_gs[k] = gs
        out_vx[k] = x


# ---------------------------------------------- split gate: vectorised node solve ----
# An element's node solve is accepted from a vectorised pass once the model's root is within
# this many U_T of the evaluation point (see :func:`_split_step`).
NODE_TAYLOR_STEP_UT = 1e-4
_SG_CHUNK = 512     # elements whose pass state (~120 kB) stays in the L2 cache
_SG_BLOCK = 16384   # elements per parallel task (the chunk buffers are allocated per task)
_SG_PASSES = 6      # vectorised passes before the remaining elements go to _split_solve
_SG_SCALAR_BELOW = 16  # smaller calls run _split_solve directly (no buffers to set up)
_SIXTH = 1.0 / 6.0
_SEL_ON_H = 12.0  # select term by _f_derivs_on if (V_P,sel - max(V_D, V_S)) / (2 U_T) >= this


@numba.njit(cache=True, inline="always", error_model="numpy")
def _f_derivs(x):
    """F(x) = ln^2(1 + e^(x/2)) and F', F'', F''' (branch-free): with L = ln(1 + e^(x/2)),
    s = sigma(x/2), t = 1 - s (each from :func:`softplus_sigmoid`, no cancellation):
    F' = L s, F'' = (s^2 + L s t) / 2, F''' = (3 s^2 t + L s t (t - s)) / 4."""
    L, s, t = softplus_sigmoid(0.5 * x)
    ss = s * s
    lst = L * s * t
    return L * L, L * s, 0.5 * (ss + lst), 0.25 * (3.0 * ss * t + lst * (t - s))


@numba.njit(cache=True, inline="always", error_model="numpy")
def _f_derivs_on(x):
    """:func:`_f_derivs` for x >= 2 _SEL_ON_H (a select transistor far in strong inversion):
    with e = e^(-x/2) <= e^-_SEL_ON_H < 7e-6, ln(1 + e) = e (1 - e (1/2 - e/3)) and
    1 / (1 + e) = 1 - e (1 - e (1 - e)) to within e^4 < 3e-21 (relative), far below the
    rounding of the general formula, without its logarithm and divisions."""
    h = 0.5 * x
    e = exp_nonpos(-h)
    L = h + e * (1.0 - e * (0.5 - e * (1.0 / 3.0)))
    s = 1.0 - e * (1.0 - e * (1.0 - e))
    t = e * s
    ss = s * s
    lst = L * s * t
    return L * L, L * s, 0.5 * (ss + lst), 0.25 * (3.0 * ss * t + lst * (t - s))


@numba.njit(cache=True, inline="always", error_model="numpy")
def _f_derivs_sel(x, far_on):
    """The select term (F and its first three derivatives): :func:`_f_derivs_on` when
    ``far_on`` (one flag per call, so the branch is hoisted out of the vector loop), else
    :func:`_f_derivs`."""
    if far_on:
        return _f_derivs_on(x)
    return _f_derivs(x)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _split_step(a_fg, ek, inv_n, vs, isf, x, lo, hi, fu, f1u, f2u, f3u, fw, f1w, inv_ut,
                iss, tol):
    """One vectorisable step of the split-gate node solve at x (lo <= x <= hi).

    g(x) = I_sel(V_D -> x) - I_fg(x -> V_S) and its first three derivatives come from the
    EKV terms' F, F', F'', F''' (select forward term F(u) given as fu.., reverse term F(w) as
    fw, f1w: it does not depend on x as the select transistor has no DIBL); the root of the
    cubic Taylor model, d (quadratic-model root plus one Newton step on the cubic), is the
    step. Accepted (``ok``) when |d| and the Newton step are <= tol = 1e-4 U_T. Every EKV
    term then moves by |dz| <= 1e-4 in its argument z, and ln(1 + e^(z/2)) is analytic within
    2 pi of the real axis, so (Cauchy's estimate on a unit circle) the Taylor remainders are
    at most e |dz|^4 ~ 3e-16 of the term for F after its cubic polynomial and ~4 e |dz|^3
    ~ 1e-11 of it for F' after its quadratic one (typically F''''/F dz^4/24 ~ 4e-18 and
    dz^3/6 ~ 2e-13). So the model's root is the node to within the terms' rounding, the current at
    it is the FG current's cubic Taylor polynomial at d, and the partials a, b, c, e are moved
    to it to second order (the safeguarded solver evaluates them up to ~step/U_T ~ 4e-9 away);
    the derivatives follow by the implicit-function theorem as in :func:`_split_solve`.
    Otherwise the next point is x + d inside the bracket updated by the sign of g, or its
    midpoint.

    Returns (I, dI/dV_D, dI/dV_S, node, ok, next x, lo, hi).
    """
    gss = iss * inv_ut
    i_sel = iss * (fu - fw)
    a = gss * f1w                      # dI_sel/dV_D (constant in x)
    b = -gss * f1u                     # dI_sel/dx and its x-derivatives
    b1 = gss * inv_ut * f2u
    b2 = -gss * inv_ut * inv_ut * f3u
    kf = ek * inv_n
    km = kf - 1.0
    gsf = isf * inv_ut
    vpf = (a_fg + ek * (x - vs)) * inv_n
    fp, f1p, f2p, f3p = _f_derivs((vpf - vs) * inv_ut)
    fq, f1q, f2q, f3q = _f_derivs((vpf - x) * inv_ut)
    i_fg = isf * (fp - fq)
    c = gsf * (f1p * kf - f1q * km)    # dI_fg/dx and its x-derivatives
    c2 = gsf * inv_ut * (f2p * kf * kf - f2q * km * km)
    c3 = gsf * inv_ut * inv_ut * (f3p * kf * kf * kf - f3q * km * km * km)
    e = gsf * (f1q * kf - f1p * (kf + 1.0))   # dI_fg/dV_S and its x-derivatives
    e1 = gsf * inv_ut * kf * (f2q * km - f2p * (kf + 1.0))
    e2 = gsf * inv_ut * inv_ut * kf * (f3q * km * km - f3p * (kf + 1.0) * kf)
    g = i_sel - i_fg
    g1 = b - c
    g2 = b1 - c2
    g3 = b2 - c3
    disc = max(g1 * g1 - 2.0 * g * g2, 0.0)
    dq = 2.0 * g / (np.sqrt(disc) - g1)
    mp = g1 + dq * (g2 + 0.5 * g3 * dq)
    d = dq - (g3 * dq * dq * dq * _SIXTH) / mp
    xn = x + d
    i = i_fg + d * (c + d * (0.5 * c2 + d * c3 * _SIXTH))
    bs = b + d * (b1 + 0.5 * d * b2)
    cs = c + d * (c2 + 0.5 * d * c3)
    es = e + d * (e1 + 0.5 * d * e2)
    den = cs - bs
    r = 1.0 / den
    gd = a * cs * r
    gs = -bs * es * r
    ok = ((g1 < 0.0) & (mp < 0.0) & (abs(d) <= tol) & (abs(g) <= -tol * g1) & (xn >= lo)
          & (xn <= hi) & (den > 0.0) & (abs(i) < np.inf) & (abs(gd) < np.inf)
          & (abs(gs) < np.inf))
    lo2 = x if g > 0.0 else lo
    hi2 = x if g < 0.0 else hi
    x_next = xn if ((xn > lo2) & (xn < hi2)) else 0.5 * (lo2 + hi2)
    return i, gd, gs, min(max(xn, lo), hi), ok, x_next, lo2, hi2


@numba.njit(cache=True, inline="always", error_model="numpy")
def _load(dst, src, step, k0, m):
    """dst[:m] = an input's elements k0 .. k0 + m (step 1) or its one value (step 0)."""
    if step == 0:
        v = src[0]
        for j in range(m):
            dst[j] = v
    else:
        s = src[k0:k0 + m]  # a view: unit-stride loads (src[k0 + j] may wrap, so gathers)
        for j in range(m):
            dst[j] = s[j]


@numba.njit(cache=True, inline="always")
def _sinks(want_d, want_vx, ch):
    """Per-task buffers that take a chunk's dI/dV_D, dI/dV_S and node when the caller did
    not ask for them (size 0 when it did)."""
    nd = 0 if want_d else ch
    return np.empty(nd), np.empty(nd), np.empty(0 if want_vx else ch)


@numba.njit(cache=True, inline="always")
def _out_chunk(out_i, out_gd, out_gs, out_vx, sinks, want_d, want_vx, k0, m):
    """A chunk's output slices (I, dI/dV_D, dI/dV_S, node), the :func:`_sinks` standing in
    for the outputs the caller did not ask for."""
    return (out_i[k0:k0 + m], out_gd[k0:k0 + m] if want_d else sinks[0][:m],
            out_gs[k0:k0 + m] if want_d else sinks[1][:m],
            out_vx[k0:k0 + m] if want_vx else sinks[2][:m])


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _split_gate_kernel(v_wl, v_cg, v_d, v_s, v_th, n, beta, eta, steps, size, alpha_g, u_t,
                       dvth, sel_vth, sel_n, sel_beta, sel_eta, max_iter, out_i, out_gd,
                       out_gs, out_vx, out_pass, node_th0, node_inv_h, node_table):
    """Series select + FG transistor for every element: vectorised passes of
    :func:`_split_step` over chunks of elements, the safeguarded :func:`_split_solve` for
    the few left after ``_SG_PASSES`` (and for every element if the select transistor has
    DIBL, or if the call is small). Inputs have steps 0 or 1 (:func:`_flat_inputs`); ``dvth``
    is added to every V_th (the temperature shift).

    Pass 0 evaluates at x = V_D, where the select transistor's two EKV terms coincide (one
    softplus for both, shared by all elements when V_WL and V_D are scalars); each later pass
    runs over the elements not yet accepted, packed to the front of the chunk's buffers.
    ``out_pass`` (if it has ``size`` entries) receives the pass that accepted each element,
    -1 for the scalar solver; ``out_gd`` and ``out_gs`` (together) and ``out_vx`` may be
    empty when the caller does not want them.

    The common read (one bias and one n, beta, eta for every element, a V_th per element)
    runs the same passes with the shared values as scalars: pass 0 writes straight to the
    outputs, the packed per-lane state is only the node bracket, the FG term
    alpha_G (V_CG - V_th) and the element index, and if the select transistor is far in
    strong inversion over the whole bracket its term comes from :func:`_f_derivs_on`.
    Loads and stores go through slices of the inputs and outputs (unit-stride, so vector
    loads and stores rather than gathers and scatters). With a ``node_table`` (the node at
    V_th = node_th0 + k / node_inv_h, from :func:`_node_predictor`) pass 0 of the common read
    starts each element at the table's linear interpolation instead of V_D: close enough
    that pass 0 accepts nearly every element, where from V_D only the subthreshold ones are.
    """
    record = out_pass.size == size
    want_d = out_gd.size == size
    want_vx = out_vx.size == size
    if sel_eta != 0.0 or size < _SG_SCALAR_BELOW:
        for k in numba.prange(size):
            out_i[k], gd, gs, vx, gv = _split_solve(
                v_wl[k * steps[0]], v_cg[k * steps[1]], v_d[k * steps[2]],
                v_s[k * steps[3]], v_th[k * steps[4]] + dvth, n[k * steps[5]],
                beta[k * steps[6]], eta[k * steps[7]], alpha_g, u_t, sel_vth, sel_n, sel_beta,
                sel_eta, max_iter)
            if want_d:
                out_gd[k] = gd
                out_gs[k] = gs
            if want_vx:
                out_vx[k] = vx
            if record:
                out_pass[k] = -1
        return
    inv_ut = 1.0 / u_t
    iss = 2.0 * sel_n * sel_beta * u_t * u_t
    tol = NODE_TAYLOR_STEP_UT * u_t
    s0, s1, s2, s3, s4, s5, s6, s7 = (steps[0], steps[1], steps[2], steps[3], steps[4],
                                      steps[5], steps[6], steps[7])
    sel_shared = s0 == 0 and s2 == 0
    vps_0 = (v_wl[0] - sel_vth) / sel_n
    w0, w1, w2, w3 = _f_derivs((vps_0 - v_d[0]) * inv_ut)
    nblock = (size + _SG_BLOCK - 1) // _SG_BLOCK
    if sel_shared and s1 == 0 and s3 == 0 and s4 == 1 and s5 == 0 and s6 == 0 and s7 == 0:
        # the common read: one bias and one n, beta, eta for all elements, a V_th per element.
        # The same passes with the shared values as scalars: per-lane state is the node
        # bracket, the FG term alpha_G (V_CG - V_th) and the element index
        vd0 = v_d[0]
        vs0 = v_s[0]
        ek0 = eta[0]
        nn0 = n[0]
        inv_n0 = 1.0 / nn0
        isf0 = 2.0 * nn0 * beta[0] * u_t * u_t
        cg0 = v_cg[0]
        lo0 = min(vd0, vs0)
        hi0 = max(vd0, vs0)
        # every iterate x lies in [lo0, hi0]: is the select term's argument large throughout?
        sel_on = 0.5 * (vps_0 - hi0) * inv_ut >= _SEL_ON_H
        # the reverse term by the same formula as the forward one, so that at x = V_D the
        # two are equal to the bit (and I = 0 exactly when V_D = V_S)
        w0, w1, w2, w3 = _f_derivs_sel((vps_0 - vd0) * inv_ut, sel_on)
        predict = node_table.size >= 2
        k_max = np.uint32(max(node_table.size - 2, 0))
        t_max = k_max + 1.0
        for blk in numba.prange(nblock):
            ch = _SG_CHUNK
            idx = np.empty(ch, np.uint32)
            afg = np.empty(ch)
            xx = np.empty(ch)
            lo = np.empty(ch)
            hi = np.empty(ch)
            ri = np.empty(ch)
            rgd = np.empty(ch)
            rgs = np.empty(ch)
            rvx = np.empty(ch)
            rok = np.empty(ch, np.bool_)
            sinks = _sinks(want_d, want_vx, ch)
            b_end = min(size, (blk + 1) * _SG_BLOCK)
            for k0 in range(blk * _SG_BLOCK, b_end, ch):
                m = min(ch, b_end - k0)
                th_c = v_th[k0:k0 + m]
                oi, ogd, ogs, ovx = _out_chunk(out_i, out_gd, out_gs, out_vx, sinks, want_d,
                                               want_vx, k0, m)
                # pass 0 from the interpolated node (or V_D), results straight to the outputs
                if predict:
                    # (a loop of its own: table loads by index in the solve's loop, which
                    # also stores to the outputs, keep it from vectorising)
                    for j in range(m):
                        t = min(max((th_c[j] - node_th0) * node_inv_h, 0.0), t_max)
                        kt = min(np.uint32(t), k_max)
                        xx[j] = node_table[kt] + (t - kt) * (node_table[kt + 1] - node_table[kt])
                else:
                    for j in range(m):
                        xx[j] = vd0
                for j in range(m):
                    a = alpha_g * (cg0 - (th_c[j] + dvth))
                    afg[j] = a
                    x0 = xx[j]
                    u0, u1, u2, u3 = _f_derivs_sel((vps_0 - x0) * inv_ut, sel_on)
                    oi[j], ogd[j], ogs[j], ovx[j], rok[j], xx[j], lo[j], hi[j] = _split_step(
                        a, ek0, inv_n0, vs0, isf0, x0, lo0, hi0, u0, u1, u2, u3, w0, w1,
                        inv_ut, iss, tol)
                if record:
                    op = out_pass[k0:k0 + m]
                    for j in range(m):
                        op[j] = 0
                m2 = 0
                for j in range(m):
                    idx[m2] = j
                    afg[m2] = afg[j]
                    xx[m2] = xx[j]
                    lo[m2] = lo[j]
                    hi[m2] = hi[j]
                    m2 += 0 if rok[j] else 1
                m = m2
                for p in range(1, _SG_PASSES):
                    if m == 0:
                        break
                    for j in range(m):
                        x = xx[j]
                        u0, u1, u2, u3 = _f_derivs_sel((vps_0 - x) * inv_ut, sel_on)
                        ri[j], rgd[j], rgs[j], rvx[j], rok[j], xx[j], lo[j], hi[j] = _split_step(
                            afg[j], ek0, inv_n0, vs0, isf0, x, lo[j], hi[j], u0, u1, u2, u3, w0,
                            w1, inv_ut, iss, tol)
                    left = 0
                    for j in range(m):
                        jj = idx[j]
                        oi[jj] = ri[j]
                        ogd[jj] = rgd[j]
                        ogs[jj] = rgs[j]
                        ovx[jj] = rvx[j]
                        left += 0 if rok[j] else 1
                    if record:
                        for j in range(m):
                            out_pass[k0 + idx[j]] = p
                    if left > 0:  # (usually none: the pass after the first accepts the rest)
                        m2 = 0
                        for j in range(m):
                            idx[m2] = idx[j]
                            afg[m2] = afg[j]
                            xx[m2] = xx[j]
                            lo[m2] = lo[j]
                            hi[m2] = hi[j]
                            m2 += 0 if rok[j] else 1
                    m = left
                for t in range(m):
                    jj = idx[t]
                    oi[jj], ogd[jj], ogs[jj], ovx[jj], gv = _split_solve(
                        v_wl[0], cg0, vd0, vs0, th_c[jj] + dvth, nn0, beta[0], ek0, alpha_g,
                        u_t, sel_vth, sel_n, sel_beta, sel_eta, max_iter)
                    if record:
                        out_pass[k0 + jj] = -1
        return
    for blk in numba.prange(nblock):
        ch = _SG_CHUNK
        # the chunk's inputs, by element (kept for the scalar fallback)
        wl_ = np.empty(ch)
        cg_ = np.empty(ch)
        vd_ = np.empty(ch)
        vs_ = np.empty(ch)
        th_ = np.empty(ch)
        n_ = np.empty(ch)
        b_ = np.empty(ch)
        e_ = np.empty(ch)
        # per-lane state, packed to the front after each pass
        idx = np.empty(ch, np.uint32)
        vps = np.empty(ch)
        afg = np.empty(ch)
        ek = np.empty(ch)
        inv_n = np.empty(ch)
        vs = np.empty(ch)
        isf = np.empty(ch)
        fw = np.empty(ch)
        f1w = np.empty(ch)
        f2w = np.empty(ch)
        f3w = np.empty(ch)
        xx = np.empty(ch)
        lo = np.empty(ch)
        hi = np.empty(ch)
        ri = np.empty(ch)
        rgd = np.empty(ch)
        rgs = np.empty(ch)
        rvx = np.empty(ch)
        rok = np.empty(ch, np.bool_)
        sinks = _sinks(want_d, want_vx, ch)
        b_end = min(size, (blk + 1) * _SG_BLOCK)
        for k0 in range(blk * _SG_BLOCK, b_end, ch):
            m = min(ch, b_end - k0)
            oi, ogd, ogs, ovx = _out_chunk(out_i, out_gd, out_gs, out_vx, sinks, want_d,
                                           want_vx, k0, m)
            _load(wl_, v_wl, s0, k0, m)
            _load(cg_, v_cg, s1, k0, m)
            _load(vd_, v_d, s2, k0, m)
            _load(vs_, v_s, s3, k0, m)
            _load(th_, v_th, s4, k0, m)
            _load(n_, n, s5, k0, m)
            _load(b_, beta, s6, k0, m)
            _load(e_, eta, s7, k0, m)
            for j in range(m):
                th_[j] = th_[j] + dvth
                nn = n_[j]
                inv_n[j] = 1.0 / nn
                afg[j] = alpha_g * (cg_[j] - th_[j])
                isf[j] = 2.0 * nn * b_[j] * u_t * u_t
            if sel_shared:
                for j in range(m):
                    vps[j] = vps_0
                    fw[j] = w0
                    f1w[j] = w1
                    f2w[j] = w2
                    f3w[j] = w3
            else:
                for j in range(m):
                    vps[j] = (wl_[j] - sel_vth) / sel_n
                    fw[j], f1w[j], f2w[j], f3w[j] = _f_derivs((vps[j] - vd_[j]) * inv_ut)
            # pass 0 at x = V_D (the select transistor at V_DS = 0: F(u) = F(w))
            for j in range(m):
                x = vd_[j]
                ri[j], rgd[j], rgs[j], rvx[j], rok[j], xx[j], lo[j], hi[j] = _split_step(
                    afg[j], e_[j], inv_n[j], vs_[j], isf[j], x, min(x, vs_[j]),
                    max(x, vs_[j]), fw[j], f1w[j], f2w[j], f3w[j], fw[j], f1w[j], inv_ut,
                    iss, tol)
            for j in range(m):
                oi[j] = ri[j]
            for j in range(m):
                ogd[j] = rgd[j]
            for j in range(m):
                ogs[j] = rgs[j]
            for j in range(m):
                ovx[j] = rvx[j]
            if record:
                op = out_pass[k0:k0 + m]
                for j in range(m):
                    op[j] = 0
            # pack the lanes still iterating (branch-free: every lane is copied, the write
            # position only advances past the ones not accepted)
            m2 = 0
            for j in range(m):
                idx[m2] = j
                vps[m2] = vps[j]
                afg[m2] = afg[j]
                ek[m2] = e_[j]
                inv_n[m2] = inv_n[j]
                vs[m2] = vs_[j]
                isf[m2] = isf[j]
                fw[m2] = fw[j]
                f1w[m2] = f1w[j]
                xx[m2] = xx[j]
                lo[m2] = lo[j]
                hi[m2] = hi[j]
                m2 += 0 if rok[j] else 1
            m = m2
            for p in range(1, _SG_PASSES):
                if m == 0:
                    break
                for j in range(m):
                    x = xx[j]
                    u0, u1, u2, u3 = _f_derivs((vps[j] - x) * inv_ut)
                    ri[j], rgd[j], rgs[j], rvx[j], rok[j], xx[j], lo[j], hi[j] = _split_step(
                        afg[j], ek[j], inv_n[j], vs[j], isf[j], x, lo[j], hi[j], u0, u1, u2,
                        u3, fw[j], f1w[j], inv_ut, iss, tol)
                m2 = 0
                for j in range(m):
                    jj = idx[j]
                    oi[jj] = ri[j]
                    ogd[jj] = rgd[j]
                    ogs[jj] = rgs[j]
                    ovx[jj] = rvx[j]
                    if record:
                        out_pass[k0 + jj] = p
                    idx[m2] = idx[j]
                    vps[m2] = vps[j]
                    afg[m2] = afg[j]
                    ek[m2] = ek[j]
                    inv_n[m2] = inv_n[j]
                    vs[m2] = vs[j]
                    isf[m2] = isf[j]
                    fw[m2] = fw[j]
                    f1w[m2] = f1w[j]
                    xx[m2] = xx[j]
                    lo[m2] = lo[j]
                    hi[m2] = hi[j]
                    m2 += 0 if rok[j] else 1
                m = m2
            # the rest: the safeguarded scalar solver from scratch
            for t in range(m):
                j = idx[t]
                oi[j], ogd[j], ogs[j], ovx[j], gv = _split_solve(
                    wl_[j], cg_[j], vd_[j], vs_[j], th_[j], n_[j], b_[j], e_[j], alpha_g,
                    u_t, sel_vth, sel_n, sel_beta, sel_eta, max_iter)
                if record:
                    out_pass[k0 + j] = -1


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


_LN2 = float(np.log(2.0))


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _vth_direct_kernel(i_t, v_wl, v_cg, v_d, v_s, n, beta, eta, steps, size, split, alpha_g,
                       u_t, dvth, sel_vth, sel_n, sel_beta, max_iter, tol, out_vth, out_ok,
                       out_slope):
    """V_th for a target current without solving the cell's node per iterate.

    With the current I fixed, the split-gate cell's select transistor (no DIBL) fixes the
    internal node in closed form: I = I_S,sel [F(u) - F(w)] with F(z) = ln^2(1 + e^(z/2)),
    u = (V_P,sel - x) / U_T and w = (V_P,sel - V_D) / U_T, so u = F^-1(F(w) + I / I_S,sel)
    with F^-1(y) = 2 ln(e^sqrt(y) - 1). (A stacked-gate cell: x = V_D.) The FG transistor
    then needs the pinch-off voltage V_P with G(p) = F(p) - F(p - d) = I / I_S,
    p = (V_P - V_S) / U_T, d = (x - V_S) / U_T: G is log-concave (F' = ln(1 + e^(z/2))
    sigma(z/2) is a product of log-concave functions, G its convolution with a box), so
    Newton on ln G from below the root climbs to it without overshooting. The start is the
    largest of three lower bounds from F'(z) <= e^z and F'(z) <= max(z / 2, 0) + ln 2:
    G(p) <= e^p (1 - e^-d) and, for p >= 0, G(p) <= d (p / 2 + ln 2) and
    G(p) <= (p / 2 + ln 2)^2.
    V_th follows from V_P = (alpha_G (V_G - V_th) + eta (x - V_S)) / n; |dI/dV_th| by the
    implicit-function theorem as in :func:`_split_solve`. ``out_ok`` is False where the
    current is out of reach (node at or below V_S, or no finite solution).
    """
    for k in numba.prange(size):
        it = i_t[k * steps[0]]
        vd = v_d[k * steps[3]]
        vs = v_s[k * steps[4]]
        nk = n[k * steps[5]]
        bk = beta[k * steps[6]]
        ek = eta[k * steps[7]]
        b_sel = 0.0
        if split:
            vps = (v_wl[k * steps[1]] - sel_vth) / sel_n
            gss = 2.0 * sel_n * sel_beta * u_t
            lw, sw = _sp_sig_half((vps - vd) / u_t)
            lu = np.sqrt(lw * lw + it / (gss * u_t))     # F(u) = lu^2
            u = 2.0 * np.log(np.expm1(lu))
            x = vps - u_t * u
            su = 1.0 / (1.0 + np.exp(-0.5 * u))
            b_sel = -gss * lu * su                       # dI_sel / dx
            vg = v_cg[k * steps[2]]
        else:
            x = vd
            vg = v_wl[k * steps[1]]
        d = (x - vs) / u_t
        r = it / (2.0 * nk * bk * u_t * u_t)
        ok = False
        p = 0.0
        if d > 0.0 and r > 0.0:  # (else the node is at or below V_S: out of reach)
            ln_r = np.log(r)
            p = ln_r - np.log(-np.expm1(-d))
            p_strong = max(2.0 * (r / d - _LN2), 2.0 * (np.sqrt(r) - _LN2))
            if p_strong >= 0.0 and p_strong > p:  # (those two bounds hold for p >= 0)
                p = p_strong
            tol_p = tol * alpha_g / (nk * u_t)
            for _ in range(max_iter):
                lf, sf = _sp_sig_half(p)
                lr, sr = _sp_sig_half(p - d)
                g = (lf - lr) * (lf + lr)
                dg = lf * sf - lr * sr
                if not (g > 0.0 and dg > 0.0):
                    break
                step = (ln_r - np.log(g)) * g / dg
                p += step
                if abs(step) <= tol_p:
                    ok = np.isfinite(p)
                    break
        lf, sf = _sp_sig_half(p)
        lr, sr = _sp_sig_half(p - d)
        gsf = 2.0 * nk * bk * u_t
        kk = ek / nk
        p_vth = -gsf * (alpha_g / nk) * (lf * sf - lr * sr)    # dI_fg / dV_th
        if split:
            c = gsf * (lf * sf * kk - lr * sr * (kk - 1.0))     # dI_fg / dx
            slope = p_vth * b_sel / (c - b_sel)
        else:
            slope = -p_vth
        v_p = vs + u_t * p
        out_vth[k] = vg - (nk * v_p - ek * (x - vs)) / alpha_g - dvth
        out_ok[k] = ok
        out_slope[k] = slope


@numba.njit(cache=True, parallel=True)
def _vth_kernel(i_t, v_wl, v_cg, v_d, v_s, n, beta, eta, steps, size, split, alpha_g, u_t,
                dvth, sel_vth, sel_n, sel_beta, sel_eta, max_iter, tol, out_vth, out_ok,
                out_slope):
    """Newton on ln I(V_th) - ln I_target per element, each iterate's node solved by
    :func:`_split_solve`, safeguarded by a bracket (the general path: a select transistor
    with DIBL; the reference of :func:`_vth_direct_kernel`).

    ln I is concave and decreasing in V_th (slope -alpha_G/(n U_T) in weak inversion, flatter
    above), so Newton converges from the weak-inversion start; bisection or a bounded step
    takes over whenever a step leaves the bracket.
    """
    for k in numba.prange(size):
        it = i_t[k * steps[0]]
        vwl = v_wl[k * steps[1]]
        vcg = v_cg[k * steps[2]]
        vd = v_d[k * steps[3]]
        vs = v_s[k * steps[4]]
        nk = n[k * steps[5]]
        bk = beta[k * steps[6]]
        ek = eta[k * steps[7]]
        lnt = np.log(it)
        vg = vcg if split else vwl
        # start: forward weak-inversion current I = I_S exp((V_P - V_S) / U_T)
        vp = vs + u_t * np.log(it / (2.0 * nk * bk * u_t * u_t))
        vth = vg - (nk * vp - ek * (vd - vs)) / alpha_g
        lo = -np.inf
        hi = np.inf
        ok = False
        di = 0.0
        for _ in range(max_iter):
            if split:
                cur, gd, gs, x, di = _split_solve(vwl, vcg, vd, vs, vth, nk, bk, ek, alpha_g,
                                                  u_t, sel_vth, sel_n, sel_beta, sel_eta, 200)
            else:
                cur, gd, gs, sc, di = _ekv_point(vwl, vd, vs, vth, nk, alpha_g, bk, ek, u_t)
            if cur > 0.0:
                h = np.log(cur) - lnt
                if h > 0.0:
                    lo = vth
                else:
                    hi = vth
                new = vth - h * cur / di if di < 0.0 else np.nan
            else:  # current underflowed: V_th far too high
                hi = vth
                new = np.nan
            if not (new > lo and new < hi):
                if np.isfinite(lo) and np.isfinite(hi):
                    new = 0.5 * (lo + hi)
                elif np.isfinite(lo):
                    new = lo + 1.0
                else:
                    new = hi - 1.0
            if abs(new - vth) <= tol:
                vth = new
                ok = True
                break
            vth = new
        out_vth[k] = vth - dvth
        out_ok[k] = ok
        out_slope[k] = -di  # |dI/dV_th| at the last iterate (within tol of the solution)


def vth_for_current(model: CellModel, i_target, v_wl, v_cg, v_d, v_s, *, n=None, beta=None,
                    dibl_eta=None, fast: bool = True, tol_v: float = 1e-11,
                    max_iter: int = 100, return_slope: bool = False, newton: bool = False):
    """The (reference-temperature, control-gate-referred) V_th giving ``i_target`` at a bias.

    I_D falls monotonically with V_th. The numba path fixes the current and solves the
    cell for its pinch-off voltage (:func:`_vth_direct_kernel`: the split-gate node in
    closed form, then a Newton iteration on the FG transistor alone); with ``newton`` (and
    always for a select transistor with DIBL) it runs a safeguarded Newton iteration on
    ln I_D(V_th) - ln i_target instead, solving the whole cell per iterate. ``fast=False``
    runs the NumPy reference (Illinois / modified regula falsi in a widened bracket). Needs
    V_D > V_S and 0 < i_target below the current of V_th -> -inf. With ``return_slope``
    (numba path) also |dI/dV_th| at the solution.
    """
    if not fast:
        if return_slope:
            raise InputError("return_slope", True, "fast=True (the numba path computes it)")
        return _vth_for_current_numpy(model, i_target, v_wl, v_cg, v_d, v_s, n=n, beta=beta,
                                      dibl_eta=dibl_eta, tol_v=max(tol_v, 1e-10),
                                      max_iter=max_iter)
    fg = model.fg
    names = ("i_target", "v_wl", "v_cg", "v_d", "v_s", "n", "beta", "dibl_eta")
    shape, flat, steps, _ = _flat_inputs(
        (i_target, v_wl, v_cg, v_d, v_s, fg.n if n is None else n,
         fg.beta if beta is None else beta, fg.dibl_eta if dibl_eta is None else dibl_eta),
        names, names)
    i_t, _, _, v_d_f, v_s_f = flat[:5]
    if np.any(i_t <= 0):
        raise InputError("i_target", i_t[i_t <= 0].ravel()[0], "a current > 0 A")
    vd_b, vs_b = np.broadcast_arrays(v_d_f if steps[3] else v_d_f[0], v_s_f if steps[4] else v_s_f[0])
    if np.any(vd_b <= vs_b):
        raise InputError("v_d", vd_b[vd_b <= vs_b].ravel()[0], "a drain voltage above v_s")
    size = int(np.prod(shape))
    out = np.empty(size)
    ok = np.empty(size, np.bool_)
    slope = np.empty(size)
    split = model.cell_type == "split_gate"
    sel = model.sel if split else fg
    sel_vth = model.select_vth + sel.dvth if split else 0.0
    if newton or (split and sel.dibl_eta != 0.0):
        _vth_kernel(*flat, steps, size, split, float(fg.alpha_g), float(fg.u_t), float(fg.dvth),
                    float(sel_vth), float(sel.n), float(sel.beta), float(sel.dibl_eta),
                    int(max_iter), float(tol_v), out, ok, slope)
    else:
        _vth_direct_kernel(*flat, steps, size, split, float(fg.alpha_g), float(fg.u_t),
                           float(fg.dvth), float(sel_vth), float(sel.n), float(sel.beta),
                           int(max_iter), float(tol_v), out, ok, slope)
    if not ok.all():
        k = int(np.flatnonzero(~ok)[0])
        raise InputError("i_target", float(i_t[k * steps[0]]),
                         "a current the cell can reach at this bias (below its V_th -> -inf limit)")
    if return_slope:
        return out.reshape(shape), slope.reshape(shape)
    return out.reshape(shape)


def _vth_for_current_numpy(model: CellModel, i_target, v_wl, v_cg, v_d, v_s, *, n=None,
                           beta=None, dibl_eta=None, tol_v: float = 1e-9,
                           max_iter: int = 100) -> np.ndarray:
    """NumPy reference of :func:`vth_for_current` (Illinois method on ln I)."""
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
        i = model.current(v_wl, v_cg, v_d, v_s, vth, **extra, fast=False)
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
