"""Cell I-V kernels of circuit mode (numba) with their NumPy reference twins.

Circuit mode evaluates every cell a few times per input vector at terminal voltages that
move by millivolts between evaluations. For a split-gate cell the series solve of the
internal node dominates, so :func:`split_gate_warm` restarts it from the previous internal
node (a safeguarded Newton iteration inside the bracket [min(V_D, V_S), max(V_D, V_S)], the
same equations as ``norsim.device.iv``): one or two Newton steps instead of a cold solve.
The reference twin is the device layer's NumPy path, ``CellModel.current(..., fast=False)``;
``tests/test_circuit_kernels.py`` proves them equal.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def _softplus_sigmoid_half(x):
    """ln(1 + e^(x/2)) and 1 / (1 + e^(-x/2)) from one exponential."""
    h = 0.5 * x
    if h > 0.0:
        e = np.exp(-h)
        return h + np.log1p(e), 1.0 / (1.0 + e)
    e = np.exp(h)
    return np.log1p(e), e / (1.0 + e)


@numba.njit(cache=True, inline="always")
def _ekv(v_g, v_d, v_s, v_th, n, alpha_g, beta, eta, u_t):
    """EKV drain current and its dI/dV_D, dI/dV_S (docs/physics.md, norsim.device.iv)."""
    v_p = (alpha_g * (v_g - v_th) + eta * (v_d - v_s)) / n
    i_s = 2.0 * n * beta * u_t * u_t
    xf = (v_p - v_s) / u_t
    xr = (v_p - v_d) / u_t
    lf, sf = _softplus_sigmoid_half(xf)
    lr, sr = _softplus_sigmoid_half(xr)
    dff = lf * sf
    dfr = lr * sr
    k = eta / n
    gd = i_s / u_t * (dff * k - dfr * (k - 1.0))
    gs = i_s / u_t * (dff * (-k - 1.0) + dfr * k)
    return i_s * (lf * lf - lr * lr), gd, gs


@numba.njit(cache=True)
def _split_gate_warm_kernel(v_wl, v_cg, v_d, v_s, v_th, n, beta, eta, x0, alpha_g, u_t,
                            sel_vth, sel_n, sel_beta, sel_eta, max_iter, newton_dx,
                            out_i, out_gd, out_gs, out_x):
    for k in range(v_wl.size):
        vd = v_d[k]
        vs = v_s[k]
        lo = min(vd, vs)
        hi = max(vd, vs)
        if hi == lo:
            i_f, c, e = _ekv(v_cg[k], vd, vs, v_th[k], n[k], alpha_g, beta[k], eta[k], u_t)
            i_s_, a, b = _ekv(v_wl[k], vd, vd, sel_vth, sel_n, 1.0, sel_beta, sel_eta, u_t)
            den = c - b
            out_i[k] = 0.0
            out_gd[k] = a * c / den
            out_gs[k] = -b * e / den
            out_x[k] = vd
            continue
        x = x0[k]
        if not (x > lo and x < hi):
            x = 0.5 * (lo + hi)
        for _ in range(max_iter):
            i_sel, a, b = _ekv(v_wl[k], vd, x, sel_vth, sel_n, 1.0, sel_beta, sel_eta, u_t)
            i_fg, c, e = _ekv(v_cg[k], x, vs, v_th[k], n[k], alpha_g, beta[k], eta[k], u_t)
            g = i_sel - i_fg
            if g > 0.0:
                lo = x
            elif g < 0.0:
                hi = x
            else:
                break
            dg = b - c
            x_new = x - g / dg if dg < 0.0 else 0.5 * (lo + hi)
            if not (x_new > lo and x_new < hi):
                x_new = 0.5 * (lo + hi)
            # Newton converges quadratically: after a step below newton_dx the next one
            # would move x by ~ step^2 / U_T (< 1e-18 V), so stop here
            if abs(x_new - x) <= newton_dx or hi - lo <= 4e-16 * max(1.0, abs(x)):
                x = x_new
                break
            x = x_new
        i_sel, a, b = _ekv(v_wl[k], vd, x, sel_vth, sel_n, 1.0, sel_beta, sel_eta, u_t)
        i_fg, c, e = _ekv(v_cg[k], x, vs, v_th[k], n[k], alpha_g, beta[k], eta[k], u_t)
        den = c - b
        out_i[k] = i_fg
        out_gd[k] = a * c / den
        out_gs[k] = -b * e / den
        out_x[k] = x


def _arrays(model, v_wl, v_cg, v_d, v_s, v_th, n, beta, dibl_eta, x0=None):
    fg = model.fg
    parts = [v_wl, v_cg, v_d, v_s, np.asarray(v_th, dtype=np.float64) + fg.dvth,
             fg.n if n is None else n, fg.beta if beta is None else beta,
             fg.dibl_eta if dibl_eta is None else dibl_eta,
             np.nan if x0 is None else x0]
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in parts))
    return arrays[0].shape, [np.ascontiguousarray(a).ravel() for a in arrays]


def split_gate_warm(model, v_wl, v_cg, v_d, v_s, v_th, x0=None, *, n=None, beta=None,
                    dibl_eta=None):
    """Split-gate cell (I, dI/dV_D, dI/dV_S, V_internal), internal node warm-started at x0.

    Same result as ``model.current(..., derivatives=True)`` to rounding; ``x0`` (broadcast like
    the voltages; NaN or outside the bracket -> cold start at the midpoint).
    """
    if model.cell_type != "split_gate":
        raise ValueError("split_gate_warm needs a split-gate CellModel")
    shape, flat = _arrays(model, v_wl, v_cg, v_d, v_s, v_th, n, beta, dibl_eta, x0)
    out = [np.empty(flat[0].size) for _ in range(4)]
    sel = model.sel
    _split_gate_warm_kernel(*flat, float(model.fg.alpha_g), float(model.fg.u_t),
                            float(model.select_vth + sel.dvth), float(sel.n), float(sel.beta),
                            float(sel.dibl_eta), int(model.max_iter), 1e-12 * model.fg.u_t,
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
        d = l_data[l_diag[j]]
        for k in range(m):
            y[j, k] /= d
        for p in range(l_indptr[j], l_indptr[j + 1]):
            i = l_indices[p]
            if i > j:
                lij = l_data[p]
                for k in range(m):
                    y[i, k] -= lij * y[j, k]
    for j in range(n - 1, -1, -1):  # U z = y
        d = u_data[u_diag[j]]
        for k in range(m):
            y[j, k] /= d
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

    def __init__(self, lu):
        self.lu = lu
        n = lu.shape[0]

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

    def solve(self, b: np.ndarray) -> np.ndarray:
        b2 = np.ascontiguousarray(b, dtype=np.float64)
        vec = b2.ndim == 1
        if vec:
            b2 = b2[:, None]
        out = np.empty_like(b2)
        _lu_solve_kernel(*self._l, *self._u, self._pr, self._pc, b2, out)
        return out[:, 0] if vec else out

    def reference_solve(self, b: np.ndarray) -> np.ndarray:
        return self.lu.solve(np.asarray(b, dtype=np.float64))
