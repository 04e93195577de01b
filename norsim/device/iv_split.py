"""The split-gate cell (select transistor in series with the FG transistor): the safeguarded
scalar node solve, the per-element kernel built on it, and the NumPy bisection reference;
part of :mod:`norsim.device.iv`. The vectorised node solve is in
:mod:`norsim.device.iv_split_vec`.
"""

from __future__ import annotations

import numba
import numpy as np

from norsim.device.iv_ekv import FgParams, _ekv_numpy_partials, _ekv_point, _sp_sig_half

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
