"""Numba kernels of circuit mode, each with its NumPy reference twin.

- :func:`tile_iv` (twin :func:`tile_iv_reference`, the device layer's NumPy path): the I-V
  and derivatives of every cell of a tile for a batch, batch-last (R, C, B). Circuit mode
  evaluates cells at terminal voltages that move by millivolts between evaluations, so a
  split-gate cell's internal node is restarted from a prediction (previous node plus its
  sensitivities to V_D and V_S) and needs one or two Newton steps. :func:`split_gate_warm`
  (twin :func:`split_gate_reference`) is the same for broadcast arguments.
- :func:`local_model` (twin :func:`local_model_reference`): the cells' local exponential
  model inside a Newton step.
- :class:`FactorSolver` (twin: SuperLU's own ``solve``): applies a ``splu`` factorisation to
  a whole batch of right-hand sides in one sweep of the factors.
- :func:`max_abs_diff_cols` (twin: ``np.abs(a - b).max(axis=0)``).
- :func:`_solve_batch_kernel`: the default solver, every vector of a batch on its own (twin:
  the reference iteration in ``norsim.array.circuit``). Its pieces: :func:`solve_chains`
  (twin :func:`solve_chains_reference`, a dense solve), the Thomas sweeps of identical
  chains; :func:`certified_error`, the contraction bound that stops its sweeps (tested
  against the true distance to the fixed point); :func:`_exact_row`, the vectorised exact
  evaluation of a row of cells (twin: :func:`_split_point` per cell) with :func:`_ekv_v`,
  :func:`exp_nonpos`, :func:`log1p_unit` (twins: ``_ekv_point``, ``np.exp``, ``np.log1p``);
  :func:`_model_currents` (twin :func:`local_model_lines_reference`); :func:`nominal_tables`
  (twin :func:`tile_iv`).

``tests/test_circuit_kernels.py`` proves each pair equal. The EKV equations are those of
``norsim.device.iv`` (``_ekv_point``, inlined; :func:`_ekv_v` writes them out with
branch-free math for vectorised loops); the tests and the ngspice cross-check keep them in
step with the device layer.
"""

from __future__ import annotations

import numba
import numpy as np

from norsim.device.vecmath import exp_nonpos, log1p_pos as log1p_unit

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


# ------------------------------------------------------- factorised network solves ----
@numba.njit(cache=True)
def _lu_solve_kernel(l_indptr, l_indices, l_data, l_diag, u_indptr, u_indices, u_data, u_diag,
                     perm_r, perm_c, b, out):
    """Solve A X = B with SuperLU's factors Pr A Pc = L U (CSC), B and X (n, m) C-order."""
    n, m = b.shape
    y = np.empty((n, m))
    for i in range(n):
        pi = perm_r[i]
        for k in range(m):
            y[pi, k] = b[i, k]
    for j in range(n):  # L y = Pr b, column-oriented
        d = 1.0 / l_data[l_diag[j]]
        for k in range(m):
            y[j, k] *= d
        for p in range(l_indptr[j], l_indptr[j + 1]):
            i = l_indices[p]
            if i > j:
                lij = l_data[p]
                for k in range(m):
                    y[i, k] -= lij * y[j, k]
    for j in range(n - 1, -1, -1):  # U z = y
        d = 1.0 / u_data[u_diag[j]]
        for k in range(m):
            y[j, k] *= d
        for p in range(u_indptr[j], u_indptr[j + 1]):
            i = u_indices[p]
            if i < j:
                uij = u_data[p]
                for k in range(m):
                    y[i, k] -= uij * y[j, k]
    for i in range(n):
        pc = perm_c[i]
        for k in range(m):
            out[i, k] = y[pc, k]


class FactorSolver:
    """Applies a ``scipy.sparse.linalg.splu`` factorisation with a numba kernel.

    SuperLU's own ``solve`` (the NumPy-side twin, :meth:`reference_solve`) loops over the
    right-hand sides; this kernel sweeps the factors once for a whole batch (n, B).
    """

    def __init__(self, lu, order=None):
        """``lu`` factorises the matrix in factor order; ``order[j]`` is the memory index of
        factor index j (None: the same), so right-hand sides stay in memory order."""
        self.lu = lu
        n = lu.shape[0]
        self.order = None if order is None else np.asarray(order, dtype=np.int64)

        def csc_parts(mat):
            mat = mat.tocsc()
            mat.sort_indices()
            diag = np.empty(n, dtype=np.int64)
            for j in range(n):
                lo, hi = mat.indptr[j], mat.indptr[j + 1]
                hit = np.flatnonzero(mat.indices[lo:hi] == j)
                if hit.size != 1:
                    raise ValueError("singular factor (no diagonal entry)")
                diag[j] = lo + hit[0]
            return (mat.indptr.astype(np.int64), mat.indices.astype(np.int64),
                    mat.data.astype(np.float64), diag)

        self._l = csc_parts(lu.L)
        self._u = csc_parts(lu.U)
        self._pr = np.ascontiguousarray(lu.perm_r, dtype=np.int64)
        self._pc = np.ascontiguousarray(lu.perm_c, dtype=np.int64)
        if self.order is not None:
            inv = np.empty(n, dtype=np.int64)
            inv[self.order] = np.arange(n)
            self._pr = np.ascontiguousarray(self._pr[inv])
            self._pc = np.ascontiguousarray(self._pc[inv])

    def solve(self, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """X with A X = b for b (n,) or (n, m); ``out`` (C-contiguous, b's shape) receives X."""
        b2 = np.ascontiguousarray(b, dtype=np.float64)
        vec = b2.ndim == 1
        if vec:
            b2 = b2[:, None]
        if out is None:
            res = np.empty_like(b2)
        else:
            if out.shape != np.shape(b) or not out.flags.c_contiguous:
                raise ValueError("FactorSolver.solve: out must be C-contiguous, shaped like b")
            res = out.reshape(b2.shape)
        _lu_solve_kernel(*self._l, *self._u, self._pr, self._pc, b2, res)
        return res[:, 0] if vec else res

    def reference_solve(self, b: np.ndarray) -> np.ndarray:
        b = np.asarray(b, dtype=np.float64)
        if self.order is None:
            return self.lu.solve(b)
        x = np.empty_like(b)
        x[self.order] = self.lu.solve(np.ascontiguousarray(b[self.order]))
        return x


@numba.njit(cache=True)
def _max_abs_diff_kernel(a, b, out):
    n, m = a.shape
    for k in range(m):
        out[k] = 0.0
    for i in range(n):
        for k in range(m):
            d = abs(a[i, k] - b[i, k])
            if out[k] == out[k] and not (d <= out[k]):  # a NaN, once there, stays
                out[k] = d


def max_abs_diff_cols(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """max_i |a[i, k] - b[i, k]| per column k of two (n, m) C-contiguous arrays."""
    out = np.empty(a.shape[1])
    _max_abs_diff_kernel(np.ascontiguousarray(a), np.ascontiguousarray(b), out)
    return out


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


# ------------------------------------------------------ identical-chain solves ----
def chain_coefficients(g_seg: float, g_end: np.ndarray):
    """Thomas-algorithm coefficients of one chain (tridiagonal, symmetric): nodes 0..L-1
    joined by conductance ``g_seg``, node k tied to its supply by ``g_end[k]``.

    Returns (inv_den, cp, off): forward ``y_k = (b_k - off y_(k-1)) inv_den_k``, backward
    ``x_k = y_k - cp_k x_(k+1)``. The matrix is an irreducibly diagonally dominant M-matrix
    (some g_end > 0), so no pivoting is needed and its inverse is elementwise >= 0.
    """
    g_end = np.asarray(g_end, dtype=np.float64)
    n = g_end.size
    k = np.arange(n)
    d = g_end + g_seg * (k > 0) + g_seg * (k < n - 1)
    off = -float(g_seg)
    inv_den = np.empty(n)
    cp = np.zeros(n)
    den = d[0]
    for j in range(n):
        if j > 0:
            den = d[j] - off * cp[j - 1]
        inv_den[j] = 1.0 / den
        cp[j] = off * inv_den[j]
    return inv_den, cp, off


@numba.njit(cache=True)
def _chains_axis0(b, inv_den, cp, off, out):
    """Solve every chain along axis 0 of b (L, M) (one chain per column); out may be b."""
    n, m = b.shape
    f = inv_den[0]
    for j in range(m):
        out[0, j] = b[0, j] * f
    for k in range(1, n):
        f = inv_den[k]
        for j in range(m):
            out[k, j] = (b[k, j] - off * out[k - 1, j]) * f
    for k in range(n - 2, -1, -1):
        c = cp[k]
        for j in range(m):
            out[k, j] -= c * out[k + 1, j]


@numba.njit(cache=True)
def _chains_axis1(b, inv_den, cp, off, out):
    """Solve every chain along axis 1 of b (M, L) (one chain per row); out may be b. Blocks
    of 8 chains are swept together (independent recurrences, each read in memory order)."""
    m, n = b.shape
    for j0 in range(0, m, 8):
        j1 = min(j0 + 8, m)
        f = inv_den[0]
        for j in range(j0, j1):
            out[j, 0] = b[j, 0] * f
        for k in range(1, n):
            f = inv_den[k]
            for j in range(j0, j1):
                out[j, k] = (b[j, k] - off * out[j, k - 1]) * f
        for k in range(n - 2, -1, -1):
            c = cp[k]
            for j in range(j0, j1):
                out[j, k] -= c * out[j, k + 1]


def solve_chains(b: np.ndarray, coefficients, axis: int) -> np.ndarray:
    """X with T X = b for identical chains T (``chain_coefficients``) along ``axis`` of a
    2-D b; twin: :func:`solve_chains_reference`."""
    inv_den, cp, off = coefficients
    out = np.array(b, dtype=np.float64, order="C")
    (_chains_axis0 if axis == 0 else _chains_axis1)(out, inv_den, cp, float(off), out)
    return out


def solve_chains_reference(b: np.ndarray, g_seg: float, g_end: np.ndarray, axis: int):
    """NumPy twin of :func:`solve_chains`: a dense solve of one chain's matrix."""
    g_end = np.asarray(g_end, dtype=np.float64)
    n = g_end.size
    k = np.arange(n)
    t = np.diag(g_end + g_seg * (k > 0) + g_seg * (k < n - 1))
    t -= g_seg * (np.eye(n, k=1) + np.eye(n, k=-1))
    b = np.asarray(b, dtype=np.float64)
    return np.linalg.solve(t, b) if axis == 0 else np.linalg.solve(t, b.T).T


# ------------------------------------------------------- shared strap network ----
def strap_coefficients(sl_chain, taps, g_tap: float, n_lines: int, g_pitch: float,
                       g_pad_first: float, g_pad_last: float):
    """Modal coefficients of the vertical straps shared by the source-line chains.

    Source line ``l`` is a chain (``sl_chain``, tap conductance ``g_tap`` at the columns
    ``taps`` in its diagonal) whose tap ``j`` joins strap node ``y[l, j]``; strap ``j`` is a
    chain over the lines (conductance ``g_pitch`` per pitch, ``g_pad_first`` / ``g_pad_last``
    to the supply at line 0 / line n_lines - 1). Eliminating the line nodes leaves
    ``K y = g_tap x0[:, taps]`` with ``x0 = G_L^-1 s`` and
    ``K = G_c (x) I + I (x) M``, ``M = g_tap I - g_tap^2 Z[taps]``, ``Z = G_L^-1 e_taps``
    (one chain's, the same for every line); then ``x = x0 + g_tap Z y``. With
    ``M = Q diag(mu) Q^T`` each mode is one tridiagonal chain ``G_c + mu_m I`` over the lines.

    Returns (taps, qg = g_tap Q (J, J), wz = g_tap Z Q (C, J), inv_den (J, lines),
    cp (J, lines), off) for :func:`_strap_correct`.
    """
    inv_den0, cp0, off0 = sl_chain
    cols = inv_den0.size
    taps = np.ascontiguousarray(taps, dtype=np.int64)
    e = np.zeros((cols, taps.size))
    e[taps, np.arange(taps.size)] = 1.0
    z = solve_chains(e, sl_chain, axis=0)
    m = g_tap * np.eye(taps.size) - g_tap * g_tap * z[taps]
    mu, q = np.linalg.eigh(0.5 * (m + m.T))
    mu = np.maximum(mu, 0.0)  # M is positive semidefinite (round-off below zero)
    g_end = np.zeros(n_lines)
    g_end[0] += g_pad_first
    g_end[-1] += g_pad_last
    inv_den = np.empty((taps.size, n_lines))
    cp = np.empty((taps.size, n_lines))
    for j in range(taps.size):
        inv_den[j], cp[j], off = chain_coefficients(g_pitch, g_end + mu[j])
    return (taps, np.ascontiguousarray(g_tap * q), np.ascontiguousarray(g_tap * z @ q),
            inv_den, cp, float(off))


def no_strap():
    """Placeholder strap coefficients (no strap network: taps to ideal ground)."""
    return (np.zeros(0, dtype=np.int64), np.zeros((0, 0)), np.zeros((1, 0)),
            np.zeros((0, 1)), np.zeros((0, 1)), 0.0)


@numba.njit(cache=True)
def _strap_correct(x, taps, qg, wz, inv_den, cp, off):
    """x (lines, C) = G_L^-1 s in place -> the line-node solution with the straps shared
    (see :func:`strap_coefficients`); a no-op without taps."""
    lines, cols = x.shape
    nj = taps.size
    if nj == 0:
        return
    y = np.zeros((lines, nj))
    for ln in range(lines):
        for j in range(nj):
            xv = x[ln, taps[j]]
            for m in range(nj):
                y[ln, m] += xv * qg[j, m]
    for m in range(nj):  # one chain over the lines per mode
        y[0, m] *= inv_den[m, 0]
        for ln in range(1, lines):
            y[ln, m] = (y[ln, m] - off * y[ln - 1, m]) * inv_den[m, ln]
        for ln in range(lines - 2, -1, -1):
            y[ln, m] -= cp[m, ln] * y[ln + 1, m]
    for ln in range(lines):
        for c in range(cols):
            acc = 0.0
            for m in range(nj):
                acc += y[ln, m] * wz[c, m]
            x[ln, c] += acc


@numba.njit(cache=True)
def _strap_correct_batch(x, taps, qg, wz, inv_den, cp, off):
    """:func:`_strap_correct` for each batch column of x (lines, C, B)."""
    for b in range(x.shape[2]):
        xb = np.ascontiguousarray(x[:, :, b])
        _strap_correct(xb, taps, qg, wz, inv_den, cp, off)
        x[:, :, b] = xb


def strap_correct(x: np.ndarray, strap) -> np.ndarray:
    """Apply the shared straps to line solutions x (lines, C) or (lines, C, B) in place."""
    if strap[0].size == 0:
        return x
    if x.ndim == 2:
        _strap_correct(x, *strap)
    else:
        _strap_correct_batch(x, *strap)
    return x


# -------------------------------------------------- per-vector Newton (fused) ----
@numba.njit(cache=True)
def _solve_sl(s, inv_den, cp, off, along_rows, out, strap):
    if along_rows:
        _chains_axis1(s, inv_den, cp, off, out)
        _strap_correct(out, strap[0], strap[1], strap[2], strap[3], strap[4], strap[5])
    else:
        _chains_axis0(s, inv_den, cp, off, out)


RHO_MAX = 2.0 / 3.0  # largest certified contraction: rho / (1 - rho) <= 2 (f's region)


@numba.njit(cache=True)
def certified_error(au, bu, av, bv, du, dv, dist_u, dist_v, amax, bmax):
    """Certified distance to the local model's fixed point after one sweep (inf if none).

    The sweep map T(u, v) = (G_bl^-1 M, G_sl^-1 S M) of the local model M has, in the norm
    ||(u, v)||_t = max(|u|_inf, |v|_inf / t), the Lipschitz constant
    rho(t) <= f max(A_u + t B_u, A_v / t + B_v), where A_u = max G_bl^-1 |a| I_k,
    B_u = max G_bl^-1 |b| I_k, A_v, B_v the same through G_sl^-1 S (G^-1 >= 0 elementwise),
    and f = exp(amax D_u + bmax D_v) bounds M / I_k on the region the argument needs: the
    ball of radius 2 res around the new iterate (res its step, du / dv its bit- / source-
    line parts; dist_u / dist_v its distance from the anchor). If rho <= RHO_MAX (2/3), T maps
    the ball of radius rho res / (1 - rho) around the new iterate into itself (Banach), so the
    fixed point lies there: bit-line drops within that radius, source-line rises within t
    times it. Several t are tried (each bound holds on its own); returns the smallest bound
    and its rho ((inf, inf) when no t gives rho <= RHO_MAX = 2/3: then the radius
    rho res / (1 - rho) <= 2 res stays inside the region f was bounded on).
    """
    best = np.inf
    best_rho = np.inf
    for j in range(4):
        if j == 0:
            t = 1.0
        elif j == 1:  # minimises max(A_u + t B_u, A_v / t + B_v)
            if bu > 0.0 and av > 0.0:
                q = au - bv
                t = (-q + np.sqrt(q * q + 4.0 * bu * av)) / (2.0 * bu)
            else:
                continue
        elif j == 2:  # balances the residual's two parts
            if du > 0.0 and dv > 0.0:
                t = dv / du
            else:
                continue
        else:
            if bu > 0.0 and av > 0.0 and du > 0.0 and dv > 0.0:
                q = au - bv
                t = np.sqrt((-q + np.sqrt(q * q + 4.0 * bu * av)) / (2.0 * bu) * dv / du)
            else:
                continue
        if not (t > 0.0 and t < np.inf):
            continue
        res = max(du, dv / t)
        f = np.exp(amax * (dist_u + 2.0 * res) + bmax * (dist_v + 2.0 * t * res))
        rho = f * max(au + t * bu, av / t + bv)
        if rho <= RHO_MAX:
            e = rho / (1.0 - rho) * res * max(1.0, t)
            if e < best:
                best = e
                best_rho = rho
    return best, best_rho


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
def _anchor_ingredients(ia, la, lb, line_of_row, bl_inv_den, bl_cp, bl_off, sl_inv_den, sl_cp,
                        sl_off, sl_along_rows, wa, wb, swa, swb, strap):
    """(A_u, B_u, A_v, B_v, amax, bmax) of :func:`certified_error` for one anchor (R, C):
    w_a = |a| I_k, w_b = |b| I_k (|dI/dV_D|, |dI/dV_S| for I_k <= 0) through the chains."""
    rows, cols = ia.shape
    amax = 0.0
    bmax = 0.0
    swa[:, :] = 0.0
    swb[:, :] = 0.0
    for r in range(rows):
        ln = line_of_row[r]
        for c in range(cols):
            ik = ia[r, c]
            aa = abs(la[r, c])
            bb = abs(lb[r, c])
            if ik > 0.0:
                amax = max(amax, aa)
                bmax = max(bmax, bb)
                aa *= ik
                bb *= ik
            wa[r, c] = aa
            wb[r, c] = bb
            swa[ln, c] += aa
            swb[ln, c] += bb
    _chains_axis0(wa, bl_inv_den, bl_cp, bl_off, wa)
    _chains_axis0(wb, bl_inv_den, bl_cp, bl_off, wb)
    _solve_sl(swa, sl_inv_den, sl_cp, sl_off, sl_along_rows, swa, strap)
    _solve_sl(swb, sl_inv_den, sl_cp, sl_off, sl_along_rows, swb, strap)
    return wa.max(), wb.max(), swa.max(), swb.max(), amax, bmax


def tile_ingredients(t_i, t_a, t_b, line_of_row, n_lines, bl_chain, sl_chain, sl_along_rows,
                     strap=None):
    """Contraction ingredients valid for every vector of a level set: per cell the largest
    w_a, w_b over the levels (L, R, C tables), pushed through the chains.

    Returns (A_u, B_u, A_v, B_v, amax, bmax, w_a_max, w_b_max); the last two (R, C) let a
    vector's later anchors scale the bound by max_i w_new / w_max (G^-1 >= 0)."""
    pos = t_i > 0.0
    wa = np.where(pos, np.abs(t_a) * t_i, np.abs(t_a)).max(axis=0)
    wb = np.where(pos, np.abs(t_b) * t_i, np.abs(t_b)).max(axis=0)
    amax = float(np.abs(t_a[pos]).max()) if pos.any() else 0.0
    bmax = float(np.abs(t_b[pos]).max()) if pos.any() else 0.0
    rows, cols = wa.shape
    lr = np.ascontiguousarray(line_of_row, dtype=np.int64)
    ones = np.ones((rows, cols))
    # _anchor_ingredients with I_k = 1, a = w_a, b = w_b: the same sums and solves
    s = (np.empty((rows, cols)), np.empty((rows, cols)), np.empty((n_lines, cols)),
         np.empty((n_lines, cols)))
    au, bu, av, bv, _, _ = _anchor_ingredients(
        ones, np.ascontiguousarray(wa), np.ascontiguousarray(wb), lr, bl_chain[0], bl_chain[1],
        float(bl_chain[2]), sl_chain[0], sl_chain[1], float(sl_chain[2]), bool(sl_along_rows),
        *s, no_strap() if strap is None else strap)
    return au, bu, av, bv, amax, bmax, np.ascontiguousarray(wa), np.ascontiguousarray(wb)


@numba.njit(cache=True)
def _solve_batch_kernel(split, wl, inv, t_i, t_a, t_b, t_x, t_xd, t_xs, tile_ing, wa_max,
                        wb_max, vth, n_map, beta_map, eta_map, v_cg, v_bl, v_sl,
                        alpha_g, u_t, sel_vth, sel_n, sel_beta, sel_eta, model_max_iter,
                        newton_dx, bl_inv_den, bl_cp, bl_off, sl_inv_den, sl_cp, sl_off,
                        sl_along_rows, line_of_row, n_lines, tol, max_iter, strap,
                        out_i, out_u, out_vd, out_v, out_vs, out_col, out_ideal,
                        out_iter, out_sweeps, out_status, out_step):
    """Circuit-mode Newton iteration of every vector of a batch, one vector at a time.

    Per-level nominal tables (L, R, C): current, its local-model slopes (d ln I / dV_D,
    d ln I / dV_S where I > 0, else dI/dV_D, dI/dV_S) and, for split-gate cells, the internal
    node and its sensitivities; ``inv[k, r]`` is row r's level in vector k; ``tile_ing``,
    ``wa_max``, ``wb_max`` from :func:`tile_ingredients`. Each Newton step solves the local
    model anchored at the last exact evaluation by sweeps through the wire chains, until
    :func:`certified_error` proves the iterate within the step's tolerance of the model's
    fixed point. A vector has converged when its step delta satisfies delta^2 / U_T <= tol
    and the point its currents were evaluated at is certified within tol of that fixed point
    (update + certified error <= tol); its currents are the last sweep's and its drops the
    network's response to them. Otherwise every cell is evaluated exactly at the new drops
    (warm-started internal node) and the next step begins. out_status[k] = 0 when vector k
    converged here, 1 when it must be solved by the reference path (contraction not
    certified, not contracting, non-finite, or the iteration limits reached).
    """
    nb, rows = wl.shape
    cols = vth.shape[1]
    ia = np.empty((rows, cols))
    la = np.empty((rows, cols))
    lb = np.empty((rows, cols))
    ua = np.empty((rows, cols))
    u = np.empty((rows, cols))
    gu = np.empty((rows, cols))
    im = np.empty((rows, cols))
    wa = np.empty((rows, cols))
    wb = np.empty((rows, cols))
    xa = np.empty((rows, cols))
    xda = np.empty((rows, cols))
    xsa = np.empty((rows, cols))
    va = np.empty((n_lines, cols))
    v = np.empty((n_lines, cols))
    gv = np.empty((n_lines, cols))
    s = np.empty((n_lines, cols))
    swa = np.empty((n_lines, cols))
    swb = np.empty((n_lines, cols))
    rb = np.empty((10, cols))  # row buffers of the exact evaluation
    tol_first = 0.1 * np.sqrt(tol * u_t)
    t_au, t_bu, t_av, t_bv, t_amax, t_bmax = tile_ing
    for k in range(nb):
        for c in range(cols):
            out_ideal[k, c] = 0.0
        for r in range(rows):
            lv = inv[k, r]
            for c in range(cols):
                ia[r, c] = t_i[lv, r, c]
                la[r, c] = t_a[lv, r, c]
                lb[r, c] = t_b[lv, r, c]
                ua[r, c] = 0.0
                out_ideal[k, c] += ia[r, c]
                if split:
                    xa[r, c] = t_x[lv, r, c]
                    xda[r, c] = t_xd[lv, r, c]
                    xsa[r, c] = t_xs[lv, r, c]
        va[:, :] = 0.0
        # contraction ingredients: the tile's bound (scaled after each exact evaluation)
        q = 1.0
        au, bu, av, bv, amax, bmax = t_au, t_bu, t_av, t_bv, t_amax, t_bmax
        status = 1
        sweeps = 0
        step = np.inf
        done_outer = 0
        for outer in range(1, max_iter + 1):
            tol_in = tol_first if outer == 1 else 0.1 * tol
            exact_ing = False
            # sweeps from the anchor
            u[:, :] = ua
            v[:, :] = va
            at_anchor = True
            res_prev = np.inf
            dist_u = 0.0
            dist_v = 0.0
            go_on = False  # leave the sweeps for the next Newton step
            for _ in range(max_iter):
                # |exponent| <= amax dist_u + bmax dist_v for every cell: the series to use
                mode = 0 if at_anchor else _exp_mode(amax * dist_u + bmax * dist_v)
                _model_currents(mode, ia, la, lb, ua, u, v, va, line_of_row, im, s)
                _chains_axis0(im, bl_inv_den, bl_cp, bl_off, gu)
                _solve_sl(s, sl_inv_den, sl_cp, sl_off, sl_along_rows, gv, strap)
                sweeps += 1
                du = 0.0
                dist_u = 0.0
                ok = True
                for r in range(rows):
                    for c in range(cols):
                        g = gu[r, c]
                        if not (abs(g) < np.inf):
                            ok = False
                        du = max(du, abs(g - u[r, c]))
                        dist_u = max(dist_u, abs(g - ua[r, c]))
                        u[r, c] = g
                dv = 0.0
                dist_v = 0.0
                for ln in range(n_lines):
                    for c in range(cols):
                        g = gv[ln, c]
                        if not (abs(g) < np.inf):
                            ok = False
                        dv = max(dv, abs(g - v[ln, c]))
                        dist_v = max(dist_v, abs(g - va[ln, c]))
                        v[ln, c] = g
                at_anchor = False
                if not ok:
                    break
                res = max(du, dv)
                step = max(dist_u, dist_v)
                newton_ok = step * step / u_t <= tol
                if not (newton_ok and res > tol):  # else: sweep on (the update must fall)
                    err = np.inf
                    rho = np.inf
                    if q < np.inf:
                        err, rho = certified_error(au, bu, av, bv, du, dv, dist_u, dist_v,
                                                   amax, bmax)
                    # this vector's own, tighter bound (once per step), unless the tile's
                    # will pass after one more sweep (the error shrinks by about rho)
                    if err > tol_in and not exact_ing and not (rho * err <= tol_in):
                        au, bu, av, bv, amax, bmax = _anchor_ingredients(
                            ia, la, lb, line_of_row, bl_inv_den, bl_cp, bl_off, sl_inv_den,
                            sl_cp, sl_off, sl_along_rows, wa, wb, swa, swb, strap)
                        exact_ing = True
                        q = 1.0
                        if not (certified_error(au, bu, av, bv, 1.0, 1.0, 0.0, 0.0, 0.0,
                                                0.0)[0] < np.inf):
                            break  # rho > RHO_MAX even at the anchor: the reference path
                        err, rho = certified_error(au, bu, av, bv, du, dv, dist_u, dist_v,
                                                   amax, bmax)
                    if err <= tol_in:
                        if not newton_ok:
                            go_on = True
                            break
                        if res + err <= tol:
                            status = 0
                            break
                if res >= res_prev:  # not contracting: the reference path takes over
                    break
                res_prev = res
            if status == 0:
                done_outer = outer
                break
            if not go_on or outer == max_iter:
                break
            # exact evaluation of every cell at the new drops: the next anchor
            qa = 0.0
            amax = 0.0
            bmax = 0.0
            for r in range(rows):
                ln = line_of_row[r]
                _exact_row(split, wl[k, r], v_cg, v_bl, v_sl, u[r], v[ln], ua[r], va[ln],
                           vth[r], n_map[r], beta_map[r], eta_map[r], alpha_g, u_t, sel_vth,
                           sel_n, sel_beta, sel_eta, model_max_iter, newton_dx, wa_max[r],
                           wb_max[r], ia[r], la[r], lb[r], xa[r], xda[r], xsa[r], rb)
                for c in range(cols):  # reductions (kept out of the vectorised loops)
                    ua[r, c] = u[r, c]
                    qa = max(qa, rb[7, c])
                    amax = max(amax, rb[8, c])
                    bmax = max(bmax, rb[9, c])
            va[:, :] = v
            q = qa if qa == qa else np.inf
            if q < np.inf:
                au, bu, av, bv = q * t_au, q * t_bu, q * t_av, q * t_bv
        out_status[k] = status
        out_sweeps[k] = sweeps
        out_step[k] = step
        out_iter[k] = done_outer
        if status != 0:
            continue
        # the converged vector: the last sweep's currents and the drops they cause
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


# ------------------------------------------- Newton-Krylov preconditioner (stress) ----
@numba.njit(cache=True)
def thomas_varying(diag, off, rhs, out):
    """Solve independent tridiagonal chains along axis 0 of (L, M) arrays: chain j has
    diagonal ``diag[:, j]`` and constant off-diagonal ``off``; ``out`` may be ``rhs``.
    The chains are swept together (inner loop over j, in memory order).
    (Twin: :func:`thomas_varying_reference`.)"""
    n, m = diag.shape
    cp = np.empty((n, m))
    for j in range(m):
        den = diag[0, j]
        cp[0, j] = off / den
        out[0, j] = rhs[0, j] / den
    for k in range(1, n):
        for j in range(m):
            den = diag[k, j] - off * cp[k - 1, j]
            cp[k, j] = off / den
            out[k, j] = (rhs[k, j] - off * out[k - 1, j]) / den
    for k in range(n - 2, -1, -1):
        for j in range(m):
            out[k, j] -= cp[k, j] * out[k + 1, j]


def thomas_varying_reference(diag, off, rhs):
    """Dense twin of :func:`thomas_varying`."""
    n, m = diag.shape
    out = np.empty((n, m))
    for j in range(m):
        t = np.diag(diag[:, j]) + off * (np.eye(n, k=1) + np.eye(n, k=-1))
        out[:, j] = np.linalg.solve(t, rhs[:, j])
    return out


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
