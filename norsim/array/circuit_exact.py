"""Circuit mode's branch-free exact cell evaluation: :func:`_exact_row` (a row of cells,
twin :func:`~norsim.array.circuit_iv._split_point` per cell) with :func:`_ekv_v`
(twin: the device layer's ``_ekv_point``), the local model's currents by truncated
exponential series (:func:`_model_currents`, twin
:func:`~norsim.array.circuit_iv.local_model_lines_reference`) and :func:`eval_batch`
(a batch, batch-last, for Newton-Krylov).
"""

from __future__ import annotations

import numba
import numpy as np

from norsim.array.circuit_iv import _split_point
from norsim.device.vecmath import exp_nonpos, log1p_pos as log1p_unit


# ------------------------------------- branch-free exact evaluation (vectorised) ----
# branch-free fdlibm exp / ln(1 + x) (norsim.device.vecmath), so that a loop of EKV
# evaluations vectorises (the pip llvmlite has no SVML: a loop calling np.exp / np.log1p
# stays scalar)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _ekv_v(v_g, v_d, v_s, v_th, n, alpha_g, beta, eta, u_t):
    """The device layer's EKV point (norsim.device.iv ``_ekv_point``: I, dI/dV_D, dI/dV_S,
    I_f + I_r) with the branch-free exp and ln(1 + x), and multiplications by 1/n and
    1/(2 U_T) for its divisions (within a few ulps of ``_ekv_point``)."""
    inv_n = 1.0 / n
    v_p = (alpha_g * (v_g - v_th) + eta * (v_d - v_s)) * inv_n
    i_s = 2.0 * n * beta * u_t * u_t
    h_ut = 0.5 / u_t
    hf = (v_p - v_s) * h_ut
    hr = (v_p - v_d) * h_ut
    ef = exp_nonpos(-abs(hf))
    er = exp_nonpos(-abs(hr))
    lf = max(hf, 0.0) + log1p_unit(ef)
    lr = max(hr, 0.0) + log1p_unit(er)
    rf = 1.0 / (1.0 + ef)
    rr = 1.0 / (1.0 + er)
    dff = lf * (rf if hf >= 0.0 else ef * rf)
    dfr = lr * (rr if hr >= 0.0 else er * rr)
    k = eta * inv_n
    g_s = i_s * (2.0 * h_ut)
    gd = g_s * (dff * k - dfr * (k - 1.0))
    gs = g_s * (dff * (-k - 1.0) + dfr * k)
    return i_s * (lf * lf - lr * lr), gd, gs, i_s * (lf * lf + lr * lr)


@numba.njit(cache=True, error_model="numpy")
def _exact_row(split, vwl, v_cg, v_bl, v_sl, u, v, ua, va, vth, n, beta, eta, alpha_g, u_t,
               sel_vth, sel_n, sel_beta, sel_eta, max_iter, newton_dx, wa_max, wb_max,
               ia, la, lb, xa, xda, xsa, buf):
    """Exact evaluation of one row of cells (C,) at drops u, v: the next Newton anchor.

    Split-gate cells: the internal node, predicted from the previous anchor (xa and its
    sensitivities at drops ua, va), takes one Newton step in a branch-free loop that LLVM
    vectorises; a cell whose step does not meet :func:`_split_point`'s stopping test (or
    whose prediction left the bracket) is redone by :func:`_split_point` itself. Writes the
    anchor (ia, la, lb, xa, xda, xsa; ua is the caller's) and, per cell, buf[7] the ratio of
    its w_a, w_b to the tile's (for the contraction bound), buf[8], buf[9] |a|, |b| (0 on
    the linear branch).
    """
    cols = u.size
    if split:
        for c in range(cols):
            uu = u[c]
            vv = v[c]
            vd = v_bl - uu
            vs = v_sl + vv
            x = xa[c] - xda[c] * (uu - ua[c]) + xsa[c] * (vv - va[c])
            i_sel, a, b, s_sel = _ekv_v(vwl, vd, x, sel_vth, sel_n, 1.0, sel_beta, sel_eta,
                                        u_t)
            i_fg, cc, e, s_fg = _ekv_v(v_cg, x, vs, vth[c], n[c], alpha_g, beta[c], eta[c],
                                       u_t)
            g = i_sel - i_fg
            dg = b - cc
            dx = -g / dg
            ok = ((x > min(vd, vs)) & (x < max(vd, vs)) & (dg < 0.0)
                  & ((abs(g) <= 8e-16 * (s_sel + s_fg)) | (abs(dx) <= newton_dx)))
            inv = 1.0 / max(cc - b, 1e-300)
            buf[0, c] = i_fg + cc * dx
            buf[1, c] = a * cc * inv
            buf[2, c] = -b * e * inv
            buf[3, c] = x + dx
            buf[4, c] = a * inv
            buf[5, c] = -e * inv
            buf[6, c] = 1.0 if ok else 0.0
            buf[7, c] = x
        for c in range(cols):  # the rare cell the one-step update does not settle
            if buf[6, c] == 0.0:
                (buf[0, c], buf[1, c], buf[2, c], buf[3, c], buf[4, c],
                 buf[5, c]) = _split_point(vwl, v_cg, v_bl - u[c], v_sl + v[c], vth[c], n[c],
                                           beta[c], eta[c], buf[7, c], alpha_g, u_t, sel_vth,
                                           sel_n, sel_beta, sel_eta, max_iter, newton_dx)
    else:
        for c in range(cols):
            buf[0, c], buf[1, c], buf[2, c], _s = _ekv_v(vwl, v_bl - u[c], v_sl + v[c], vth[c],
                                                        n[c], alpha_g, beta[c], eta[c], u_t)
    for c in range(cols):
        i1 = buf[0, c]
        gd1 = buf[1, c]
        gs1 = buf[2, c]
        pos = i1 > 0.0
        a1 = gd1 / i1 if pos else gd1
        b1 = gs1 / i1 if pos else gs1
        ia[c] = i1
        la[c] = a1
        lb[c] = b1
        if split:
            xa[c] = buf[3, c]
            xda[c] = buf[4, c]
            xsa[c] = buf[5, c]
        aa = abs(a1)
        bb = abs(b1)
        w1 = aa * i1 if pos else aa
        w2 = bb * i1 if pos else bb
        # the tile's bound scales by max w_new / w_max (G^-1 >= 0); w_max = 0 < w: no bound
        wm1 = wa_max[c]
        wm2 = wb_max[c]
        q1 = (w1 / wm1 if wm1 > 0.0 else np.inf) if w1 > 0.0 else 0.0
        q2 = (w2 / wm2 if wm2 > 0.0 else np.inf) if w2 > 0.0 else 0.0
        buf[7, c] = max(q1, q2)
        buf[8, c] = aa if pos else 0.0
        buf[9, c] = bb if pos else 0.0


EXP_SERIES = ((1e-4, 3), (4e-3, 5), (3e-2, 8))  # (max |t|, degree): remainder <= 6e-18


@numba.njit(cache=True)
def _exp_mode(t_max):
    """Which exponential :func:`_model_currents` uses when every |exponent| <= t_max:
    Taylor series of degree 3, 5 or 8 (remainder e^t t^(n+1) / (n+1)! <= 6e-18 relative, below
    the rounding of exp itself) or exp (mode 4)."""
    if t_max <= 1e-4:
        return 1
    if t_max <= 4e-3:
        return 2
    if t_max <= 3e-2:
        return 3
    return 4


@numba.njit(cache=True, inline="always")
def _series(mode, t):
    """e^t - 1 by its Taylor series of degree 3, 5 or 8 (mode 1, 2, 3)."""
    if mode == 1:
        return t * (1.0 + t * (0.5 + t * (1.0 / 6.0)))
    if mode == 2:
        return t * (1.0 + t * (0.5 + t * (1.0 / 6.0 + t * (1.0 / 24.0 + t * (1.0 / 120.0)))))
    return t * (1.0 + t * (0.5 + t * (1.0 / 6.0 + t * (1.0 / 24.0 + t * (
        1.0 / 120.0 + t * (1.0 / 720.0 + t * (1.0 / 5040.0 + t * (1.0 / 40320.0))))))))


@numba.njit(cache=True)
def _model_loop(mode, ia, la, lb, ua, u, v, va, line_of_row, im):
    rows, cols = ia.shape
    for r in range(rows):
        ln = line_of_row[r]
        for c in range(cols):
            ik = ia[r, c]
            t = la[r, c] * (ua[r, c] - u[r, c]) + lb[r, c] * (v[ln, c] - va[ln, c])
            if mode == 4:
                im[r, c] = ik * np.exp(min(t, 50.0)) if ik > 0.0 else ik + t
            else:
                im[r, c] = ik + (ik * _series(mode, t) if ik > 0.0 else t)


@numba.njit(cache=True)
def _model_currents(mode, ia, la, lb, ua, u, v, va, line_of_row, im, s):
    """Local-model currents im (R, C) at drops (u, v) and their per-line sums s: I_k e^t,
    t = a (u_k - u) + b (v - v_k) where I_k > 0 (a, b the log slopes), else the linear model
    I_k + t (a, b the conductances). Mode 0: at the anchor (im = I_k); 1-3: e^t by its
    Taylor series of degree 3, 5, 8 (see :func:`_exp_mode`); 4: exp. The mode is a
    compile-time branch of each loop (one specialised loop per mode)."""
    rows, cols = ia.shape
    if mode == 0:
        im[:, :] = ia
    elif mode == 1:
        _model_loop(1, ia, la, lb, ua, u, v, va, line_of_row, im)
    elif mode == 2:
        _model_loop(2, ia, la, lb, ua, u, v, va, line_of_row, im)
    elif mode == 3:
        _model_loop(3, ia, la, lb, ua, u, v, va, line_of_row, im)
    else:
        _model_loop(4, ia, la, lb, ua, u, v, va, line_of_row, im)
    s[:, :] = 0.0
    for r in range(rows):
        ln = line_of_row[r]
        for c in range(cols):
            s[ln, c] += im[r, c]


@numba.njit(cache=True)
def eval_batch(split, wl, v_cg, v_bl, v_sl, u, v, ua, va, vth, n, beta, eta, alpha_g, u_t,
               sel_vth, sel_n, sel_beta, sel_eta, max_iter, newton_dx, xa, xda, xsa,
               out_i, out_gd, out_gs):
    """Exact cell evaluation of a batch at drops u, v (per cell, (R, C, B)) by
    :func:`_exact_row` (split-gate internal node predicted from the anchor ua, va, xa, xda,
    xsa, which it overwrites with the new point's); out_i, out_gd, out_gs (R, C, B)."""
    rows, cols, nb = u.shape
    ur = np.empty(cols)
    vr = np.empty(cols)
    uar = np.empty(cols)
    var = np.empty(cols)
    ia = np.empty(cols)
    la = np.empty(cols)
    lb = np.empty(cols)
    xr = np.empty(cols)
    xdr = np.empty(cols)
    xsr = np.empty(cols)
    ones = np.ones(cols)
    buf = np.empty((10, cols))
    for b in range(nb):
        for r in range(rows):
            for c in range(cols):
                ur[c] = u[r, c, b]
                vr[c] = v[r, c, b]
                uar[c] = ua[r, c, b]
                var[c] = va[r, c, b]
                xr[c] = xa[r, c, b]
                xdr[c] = xda[r, c, b]
                xsr[c] = xsa[r, c, b]
            _exact_row(split, wl[b, r], v_cg, v_bl, v_sl, ur, vr, uar, var, vth[r], n[r],
                       beta[r], eta[r], alpha_g, u_t, sel_vth, sel_n, sel_beta, sel_eta,
                       max_iter, newton_dx, ones, ones, ia, la, lb, xr, xdr, xsr, buf)
            for c in range(cols):
                i1 = ia[c]
                pos = i1 > 0.0
                out_i[r, c, b] = i1
                out_gd[r, c, b] = la[c] * i1 if pos else la[c]
                out_gs[r, c, b] = lb[c] * i1 if pos else lb[c]
                xa[r, c, b] = xr[c]
                xda[r, c, b] = xdr[c]
                xsa[r, c, b] = xsr[c]
