"""Circuit mode's cell evaluation at the tile level (numba kernels with NumPy twins).

- :func:`tile_iv` (twin :func:`tile_iv_reference`, the device layer's NumPy path): the I-V
  and derivatives of every cell of a tile for a batch, batch-last (R, C, B); a split-gate
  cell's internal node restarts from a prediction and needs one or two Newton steps.
  :func:`split_gate_warm` (twin :func:`split_gate_reference`) for broadcast arguments;
  :func:`nominal_tables` (twin :func:`tile_iv`): the per-level tables at the nominal bias.
- :func:`local_model`, :func:`local_model_lines` (twins ``*_reference``): the cells' local
  exponential model inside a Newton step; :func:`log_sensitivities` its slopes.
- :func:`gather_levels` (twin :func:`gather_levels_reference`) and :func:`load_vector`:
  the level tables gathered per vector (the per-vector kernels share the latter).

The EKV equations are those of ``norsim.device.iv`` (``_ekv_point``, inlined).
"""

from __future__ import annotations

import numba
import numpy as np

from norsim.device.iv import _ekv_point

# The split-gate internal node's Newton iteration stops after a step below this: the root is
# then known to ~ C step^2 with C = |g''| / 2|g'| <= 1 / V_DS(FG) (~1e5 /V for an off cell,
# ~40 /V for a conducting one), i.e. to <= 1e-11 V, and the current is moved to it to first
# order, so the remaining current error is far below the circuit solver's tolerance.
INTERNAL_NODE_STEP_V = 1e-8


@numba.njit(cache=True, inline="always")
def _ekv(v_g, v_d, v_s, v_th, n, alpha_g, beta, eta, u_t):
    """EKV drain current, dI/dV_D, dI/dV_S and I_forward + I_reverse (the rounding scale of
    the current): the device layer's scalar kernel (docs/physics.md, norsim.device.iv)."""
    i, gd, gs, scale, _ = _ekv_point(v_g, v_d, v_s, v_th, n, alpha_g, beta, eta, u_t)
    return i, gd, gs, scale


@numba.njit(cache=True, inline="always")
def _split_point(v_wl, v_cg, vd, vs, vth, n, beta, eta, x, alpha_g, u_t, sel_vth, sel_n,
                 sel_beta, sel_eta, max_iter, newton_dx):
    """One split-gate cell: (I, dI/dV_D, dI/dV_S, V_x, dV_x/dV_D, dV_x/dV_S).

    The internal node solves I_sel(V_D -> x) = I_fg(x -> V_S) by Newton's method kept inside
    the bracket [min(V_D, V_S), max(V_D, V_S)] (g is strictly decreasing in x), started at x.
    """
    lo = min(vd, vs)
    hi = max(vd, vs)
    if hi == lo:
        i_f, c, e, s1 = _ekv(v_cg, vd, vs, vth, n, alpha_g, beta, eta, u_t)
        i_s_, a, b, s2 = _ekv(v_wl, vd, vd, sel_vth, sel_n, 1.0, sel_beta, sel_eta, u_t)
        inv = 1.0 / max(c - b, 1e-300)  # > 0 (b <= 0 <= c); both may underflow far off
        return 0.0, a * c * inv, -b * e * inv, vd, a * inv, -e * inv
    if not (x > lo and x < hi):
        x = 0.5 * (lo + hi)
    dx = 0.0
    i_fg = 0.0
    a = 0.0
    b = 0.0
    c = 0.0
    e = 0.0
    for _ in range(max_iter):
        i_sel, a, b, s_sel = _ekv(v_wl, vd, x, sel_vth, sel_n, 1.0, sel_beta, sel_eta, u_t)
        i_fg, c, e, s_fg = _ekv(v_cg, x, vs, vth, n, alpha_g, beta, eta, u_t)
        g = i_sel - i_fg
        dg = b - c  # < 0: g falls as x rises
        if dg < 0.0:
            dx = -g / dg
            # done when g is at the rounding floor of its forward and reverse terms, or the
            # Newton step is below newton_dx (quadratic convergence: the root is x + dx to
            # ~ dx^2 / U_T); keep the values at x, moved to x + dx to first order
            if abs(g) <= 8e-16 * (s_sel + s_fg) or abs(dx) <= newton_dx:
                break
        if g > 0.0:
            lo = x
        elif g < 0.0:
            hi = x
        else:
            dx = 0.0
            break
        x_new = x + dx if dg < 0.0 else 0.5 * (lo + hi)
        if not (x_new > lo and x_new < hi):
            x_new = 0.5 * (lo + hi)
        if hi - lo <= 4e-16 * max(1.0, abs(x)):
            dx = 0.0
            break
        x = x_new
        dx = 0.0
    inv = 1.0 / max(c - b, 1e-300)
    return i_fg + c * dx, a * c * inv, -b * e * inv, x + dx, a * inv, -e * inv


@numba.njit(cache=True)
def _split_gate_warm_kernel(v_wl, v_cg, v_d, v_s, v_th, n, beta, eta, x0, alpha_g, u_t,
                            sel_vth, sel_n, sel_beta, sel_eta, max_iter, newton_dx,
                            out_i, out_gd, out_gs, out_x, out_dxd, out_dxs):
    for k in range(v_wl.size):
        out_i[k], out_gd[k], out_gs[k], out_x[k], out_dxd[k], out_dxs[k] = _split_point(
            v_wl[k], v_cg[k], v_d[k], v_s[k], v_th[k], n[k], beta[k], eta[k], x0[k], alpha_g,
            u_t, sel_vth, sel_n, sel_beta, sel_eta, max_iter, newton_dx)


@numba.njit(cache=True)
def _tile_iv_kernel(split, v_wl, v_cg, v_d, v_s, v_th, n, beta, eta, x0, alpha_g, u_t,
                    sel_vth, sel_n, sel_beta, sel_eta, max_iter, newton_dx,
                    out_i, out_gd, out_gs, out_x, out_dxd, out_dxs):
    """Every cell of a tile for a batch, batch-last layout: v_wl (R, B); v_th, n, beta, eta
    (R, C); v_d, v_s, x0 and the outputs (R, C, B). Stacked-gate cells (split False) take
    v_wl on the control gate and leave the internal-node outputs untouched."""
    rows, cols, nb = v_d.shape
    for r in range(rows):
        for c in range(cols):
            vth = v_th[r, c]
            nn = n[r, c]
            bb = beta[r, c]
            ee = eta[r, c]
            for k in range(nb):
                if split:
                    (out_i[r, c, k], out_gd[r, c, k], out_gs[r, c, k], out_x[r, c, k],
                     out_dxd[r, c, k], out_dxs[r, c, k]) = _split_point(
                        v_wl[r, k], v_cg, v_d[r, c, k], v_s[r, c, k], vth, nn, bb, ee,
                        x0[r, c, k], alpha_g, u_t, sel_vth, sel_n, sel_beta, sel_eta,
                        max_iter, newton_dx)
                else:
                    out_i[r, c, k], out_gd[r, c, k], out_gs[r, c, k], _s = _ekv(
                        v_wl[r, k], v_d[r, c, k], v_s[r, c, k], vth, nn, alpha_g, bb, ee, u_t)


def tile_iv(model, v_wl_rb, v_cg, v_d, v_s, v_th, x0=None, *, n=None, beta=None, dibl_eta=None):
    """Cell I-V of a whole tile and batch in batch-last layout (see :func:`_tile_iv_kernel`).

    Returns (I, dI/dV_D, dI/dV_S, V_x, dV_x/dV_D, dV_x/dV_S), each (R, C, B); the last three
    are None for stacked-gate cells. ``v_th`` is at the reference temperature.
    """
    fg = model.fg
    v_wl_rb = np.ascontiguousarray(v_wl_rb, dtype=np.float64)
    rows, nb = v_wl_rb.shape
    vth = np.asarray(v_th, dtype=np.float64)
    cols = vth.shape[1]
    shape = (rows, cols, nb)

    def cell(a, default):
        return np.ascontiguousarray(np.broadcast_to(
            np.asarray(default if a is None else a, dtype=np.float64), (rows, cols)))

    def full(a):
        return np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype=np.float64), shape))

    split = model.cell_type == "split_gate"
    outs = [np.empty(shape) for _ in range(6 if split else 3)]
    dummy = np.empty((0, 0, 0))
    sel = model.sel
    _tile_iv_kernel(split, v_wl_rb, float(v_cg), full(v_d), full(v_s), cell(vth + fg.dvth, 0.0),
                    cell(n, fg.n), cell(beta, fg.beta), cell(dibl_eta, fg.dibl_eta),
                    full(np.nan if x0 is None else x0) if split else dummy,
                    float(fg.alpha_g), float(fg.u_t),
                    float(model.select_vth + sel.dvth) if split else 0.0,
                    float(sel.n) if split else 1.0, float(sel.beta) if split else 1.0,
                    float(sel.dibl_eta) if split else 0.0, int(model.max_iter),
                    INTERNAL_NODE_STEP_V, *(outs if split else outs + [dummy] * 3))
    if split:
        return tuple(outs)
    return outs[0], outs[1], outs[2], None, None, None


@numba.njit(cache=True)
def _nominal_table_kernel(split, levels, v_cg, v_d, v_s, v_th, n, beta, eta, alpha_g, u_t,
                          sel_vth, sel_n, sel_beta, sel_eta, max_iter, newton_dx, out):
    """Every cell at one bias (V_D, V_S) for each word-line level: out (6, L, R, C) as
    :func:`_tile_iv_kernel`'s outputs. A split-gate cell's internal node starts from its left
    neighbour's (same level and bias; cold start at the row's first cell)."""
    rows, cols = v_th.shape
    for lv in range(levels.size):
        vwl = levels[lv]
        for r in range(rows):
            xp = np.nan
            for c in range(cols):
                if split:
                    i, gd, gs, x, xd, xs = _split_point(
                        vwl, v_cg, v_d, v_s, v_th[r, c], n[r, c], beta[r, c], eta[r, c], xp,
                        alpha_g, u_t, sel_vth, sel_n, sel_beta, sel_eta, max_iter, newton_dx)
                    out[3, lv, r, c] = x
                    out[4, lv, r, c] = xd
                    out[5, lv, r, c] = xs
                    xp = x
                else:
                    i, gd, gs, _s = _ekv(vwl, v_d, v_s, v_th[r, c], n[r, c], alpha_g,
                                         beta[r, c], eta[r, c], u_t)
                out[0, lv, r, c] = i
                out[1, lv, r, c] = gd
                out[2, lv, r, c] = gs


def nominal_tables(model, levels, v_cg, v_d, v_s, v_th, *, n=None, beta=None, dibl_eta=None):
    """Cell I-V of a tile at one bias for each word-line level (the nominal-bias tables).

    Returns (I, dI/dV_D, dI/dV_S, V_x, dV_x/dV_D, dV_x/dV_S), each (L, R, C) (the last three
    None for stacked-gate cells); the same values as :func:`tile_iv` with every cell of a
    row at that level (the internal node to the Newton tolerance, warm-started along the
    row). ``v_th`` (R, C) at the reference temperature.
    """
    fg = model.fg
    vth = np.asarray(v_th, dtype=np.float64)
    shape = vth.shape

    def cell(a, default):
        return np.ascontiguousarray(np.broadcast_to(
            np.asarray(default if a is None else a, dtype=np.float64), shape))

    levels = np.ascontiguousarray(np.atleast_1d(levels), dtype=np.float64)
    split = model.cell_type == "split_gate"
    out = np.empty((6 if split else 3, levels.size) + shape)
    sel = model.sel
    _nominal_table_kernel(split, levels, float(v_cg), float(v_d), float(v_s),
                          cell(vth + fg.dvth, 0.0), cell(n, fg.n), cell(beta, fg.beta),
                          cell(dibl_eta, fg.dibl_eta), float(fg.alpha_g), float(fg.u_t),
                          float(model.select_vth + sel.dvth) if split else 0.0,
                          float(sel.n) if split else 1.0, float(sel.beta) if split else 1.0,
                          float(sel.dibl_eta) if split else 0.0, int(model.max_iter),
                          INTERNAL_NODE_STEP_V, out)
    return tuple(out) if split else tuple(out) + (None, None, None)


def tile_iv_reference(model, v_wl_rb, v_cg, v_d, v_s, v_th, *, n=None, beta=None,
                      dibl_eta=None):
    """NumPy twin of :func:`tile_iv`: the device layer's reference path, (I, gd, gs)."""
    v_wl = np.asarray(v_wl_rb, dtype=np.float64)[:, None, :]
    vth = np.asarray(v_th, dtype=np.float64)[:, :, None]
    kw = {k: (None if a is None else np.asarray(a)[:, :, None])
          for k, a in (("n", n), ("beta", beta), ("dibl_eta", dibl_eta))}
    return model.current(v_wl, v_cg, v_d, v_s, vth, derivatives=True, fast=False, **kw)


@numba.njit(cache=True)
def _local_model_kernel(i_k, a_k, b_k, gd, gs, u, v, u_k, v_k, out):
    for j in range(i_k.size):
        du = u_k[j] - u[j]
        dv = v[j] - v_k[j]
        if i_k[j] > 0.0:
            out[j] = i_k[j] * np.exp(min(a_k[j] * du + b_k[j] * dv, 50.0))
        else:
            out[j] = i_k[j] + gd[j] * du + gs[j] * dv


def local_model(i_k, a_k, b_k, gd, gs, u, v, u_k, v_k, out=None):
    """Cell currents of the local model of a Newton step (all arrays one shape, C order):
    I_k exp(a (u_k - u) + b (v - v_k)) where I_k > 0, else I_k + gd (u_k - u) + gs (v - v_k)."""
    out = np.empty(np.shape(i_k)) if out is None else out
    if not out.flags.c_contiguous:
        raise ValueError("local_model: out must be C-contiguous")
    _local_model_kernel(*(np.ascontiguousarray(a).reshape(-1) for a in
                          (i_k, a_k, b_k, gd, gs, u, v, u_k, v_k)), out.reshape(-1))
    return out


def local_model_reference(i_k, a_k, b_k, gd, gs, u, v, u_k, v_k):
    """NumPy twin of :func:`local_model`."""
    du = u_k - u
    dv = v - v_k
    with np.errstate(over="ignore"):
        return np.where(i_k > 0.0, i_k * np.exp(np.minimum(a_k * du + b_k * dv, 50.0)),
                        i_k + gd * du + gs * dv)


def _arrays(model, v_wl, v_cg, v_d, v_s, v_th, n, beta, dibl_eta, x0=None):
    fg = model.fg
    parts = [v_wl, v_cg, v_d, v_s, np.asarray(v_th, dtype=np.float64) + fg.dvth,
             fg.n if n is None else n, fg.beta if beta is None else beta,
             fg.dibl_eta if dibl_eta is None else dibl_eta,
             np.nan if x0 is None else x0]
    parts = [np.asarray(a, dtype=np.float64) for a in parts]
    shape = np.broadcast_shapes(*(a.shape for a in parts))
    # (np.broadcast_arrays' writeable views make numba warn: expand explicitly instead)
    return shape, [a.ravel() if a.shape == shape and a.flags.c_contiguous
                   else np.ascontiguousarray(np.broadcast_to(a, shape)).ravel()
                   for a in parts]


def split_gate_warm(model, v_wl, v_cg, v_d, v_s, v_th, x0=None, *, n=None, beta=None,
                    dibl_eta=None):
    """Split-gate cell (I, dI/dV_D, dI/dV_S, V_x, dV_x/dV_D, dV_x/dV_S), warm-started at x0.

    Same result as ``model.current(..., derivatives=True)`` to rounding; ``x0`` (broadcast like
    the voltages; NaN or outside the bracket -> cold start at the midpoint). The sensitivities
    of the internal node V_x predict the next warm start when the terminals move.
    """
    if model.cell_type != "split_gate":
        raise ValueError("split_gate_warm needs a split-gate CellModel")
    shape, flat = _arrays(model, v_wl, v_cg, v_d, v_s, v_th, n, beta, dibl_eta, x0)
    out = [np.empty(flat[0].size) for _ in range(6)]
    sel = model.sel
    _split_gate_warm_kernel(*flat, float(model.fg.alpha_g), float(model.fg.u_t),
                            float(model.select_vth + sel.dvth), float(sel.n), float(sel.beta),
                            float(sel.dibl_eta), int(model.max_iter), INTERNAL_NODE_STEP_V,
                            *out)
    return tuple(o.reshape(shape) for o in out)


def split_gate_reference(model, v_wl, v_cg, v_d, v_s, v_th, *, n=None, beta=None,
                         dibl_eta=None):
    """NumPy twin of :func:`split_gate_warm`: the device layer's reference path."""
    kw = dict(n=n, beta=beta, dibl_eta=dibl_eta)
    i, gd, gs = model.current(v_wl, v_cg, v_d, v_s, v_th, derivatives=True, fast=False, **kw)
    x = model.internal_node(v_wl, v_cg, v_d, v_s, v_th, fast=False, **kw)
    return i, gd, gs, x


@numba.njit(cache=True)
def _gather_levels_kernel(tab, inv, out):
    rows, cols, _ = tab.shape
    nb = inv.shape[0]
    for r in range(rows):
        for c in range(cols):
            for k in range(nb):
                out[r, c, k] = tab[r, c, inv[k, r]]


def gather_levels(tab: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """out[r, c, k] = tab[r, c, inv[k, r]]: per-level tables (R, C, L) to a batch (R, C, B)
    whose vector k has level inv[k, r] on row r."""
    tab = np.ascontiguousarray(tab, dtype=np.float64)
    inv = np.ascontiguousarray(inv, dtype=np.int64)
    out = np.empty(tab.shape[:2] + (inv.shape[0],))
    _gather_levels_kernel(tab, inv, out)
    return out


def gather_levels_reference(tab: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`gather_levels`."""
    idx = np.broadcast_to(inv.T[:, None, :], tab.shape[:2] + (inv.shape[0],))
    return np.take_along_axis(tab, idx, axis=2)


@numba.njit(cache=True)
def _log_sensitivities_kernel(i, gd, gs, a, b):
    for j in range(i.size):
        if i[j] > 0.0:
            a[j] = gd[j] / i[j]
            b[j] = gs[j] / i[j]
        else:
            a[j] = 0.0
            b[j] = 0.0


def log_sensitivities(i, gd, gs):
    """(d ln I / dV_D, d ln I / dV_S) = (gd / I, gs / I) where I > 0, else 0 (same shapes)."""
    i, gd, gs = (np.ascontiguousarray(t, dtype=np.float64) for t in (i, gd, gs))
    a = np.empty(i.shape)
    b = np.empty(i.shape)
    _log_sensitivities_kernel(i.reshape(-1), gd.reshape(-1), gs.reshape(-1), a.reshape(-1),
                              b.reshape(-1))
    return a, b


def log_sensitivities_reference(i, gd, gs):
    """NumPy twin of :func:`log_sensitivities`."""
    pos = i > 0.0
    safe = np.where(pos, i, 1.0)
    return np.where(pos, gd / safe, 0.0), np.where(pos, gs / safe, 0.0)


@numba.njit(cache=True)
def _local_model_lines_kernel(i_k, a_k, b_k, gd, gs, u, v, u_k, v_k, line_of_row, out):
    rows, cols, nb = i_k.shape
    for r in range(rows):
        ln = line_of_row[r]
        for c in range(cols):
            for k in range(nb):
                du = u_k[r, c, k] - u[r, c, k]
                dv = v[ln, c, k] - v_k[ln, c, k]
                ik = i_k[r, c, k]
                if ik > 0.0:
                    out[r, c, k] = ik * np.exp(min(a_k[r, c, k] * du + b_k[r, c, k] * dv, 50.0))
                else:
                    out[r, c, k] = ik + gd[r, c, k] * du + gs[r, c, k] * dv


def local_model_lines(i_k, a_k, b_k, gd, gs, u, v, u_k, v_k, line_of_row, out=None):
    """:func:`local_model` with the source-line rise given per source-line node:
    ``v``, ``v_k`` (lines, C, B), cell row r on line ``line_of_row[r]``; others (R, C, B)."""
    out = np.empty(np.shape(i_k)) if out is None else out
    if not out.flags.c_contiguous:
        raise ValueError("local_model_lines: out must be C-contiguous")
    arrs = [np.ascontiguousarray(a, dtype=np.float64) for a in (i_k, a_k, b_k, gd, gs, u, v,
                                                                 u_k, v_k)]
    _local_model_lines_kernel(*arrs, np.ascontiguousarray(line_of_row, dtype=np.int64), out)
    return out


def local_model_lines_reference(i_k, a_k, b_k, gd, gs, u, v, u_k, v_k, line_of_row):
    """NumPy twin of :func:`local_model_lines`."""
    lr = np.asarray(line_of_row)
    return local_model_reference(i_k, a_k, b_k, gd, gs, u, v[lr], u_k, v_k[lr])


@numba.njit(cache=True)
def load_vector(k, split, inv, t_i, t_a, t_b, t_x, t_xd, t_xs, ia, la, lb, ua, xa, xda, xsa,
                ideal):
    """Vector ``k``'s anchor at the nominal bias from the level tables (L, R, C): currents
    ``ia``, slopes ``la``, ``lb``, internal node ``xa`` and its sensitivities (split gate),
    ``ua`` zeroed, and the fast-mode column currents summed into ``ideal`` (C,)."""
    rows, cols = ia.shape
    for c in range(cols):
        ideal[c] = 0.0
    for r in range(rows):
        lv = inv[k, r]
        for c in range(cols):
            ia[r, c] = t_i[lv, r, c]
            la[r, c] = t_a[lv, r, c]
            lb[r, c] = t_b[lv, r, c]
            ua[r, c] = 0.0
            ideal[c] += ia[r, c]
            if split:
                xa[r, c] = t_x[lv, r, c]
                xda[r, c] = t_xd[lv, r, c]
                xsa[r, c] = t_xs[lv, r, c]


@numba.njit(cache=True)
def store_vector(k, im, u, v, line_of_row, v_bl, v_sl, out_i, out_col, out_u, out_vd, out_v,
                 out_vs):
    """Write converged vector ``k``: cell currents ``im``, bit-line drops ``u`` (R, C) and
    source-line rises ``v`` (lines, C) as per-cell results, and the column currents."""
    rows, cols = im.shape
    for c in range(cols):
        out_col[k, c] = 0.0
    for r in range(rows):
        ln = line_of_row[r]
        for c in range(cols):
            x = im[r, c]
            out_i[k, r, c] = x
            out_col[k, c] += x
            out_u[k, r, c] = u[r, c]
            out_vd[k, r, c] = v_bl - u[r, c]
            out_v[k, r, c] = v[ln, c]
            out_vs[k, r, c] = v_sl + v[ln, c]


@numba.njit(cache=True, inline="always")
def record_status(k, status, count, step, outer, out_status, out_count, out_step, out_iter):
    """Vector ``k``'s status (0 solved), sweep or inner-step count, last step and steps."""
    out_status[k] = status
    out_count[k] = count
    out_step[k] = step
    out_iter[k] = outer
