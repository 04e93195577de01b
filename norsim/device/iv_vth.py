"""The inverse problem: the V_th that reads a target current at a bias (numba kernels and
the NumPy reference); part of :mod:`norsim.device.iv`, which re-exports
:func:`vth_for_current`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numba
import numpy as np

from norsim.device.iv_ekv import _check_finite, _ekv_point, _flat_inputs, _sp_sig_half
from norsim.device.iv_split import _split_solve
from norsim.errors import InputError

if TYPE_CHECKING:  # (the cell model imports this module's function)
    from norsim.device.iv import CellModel

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
