"""Circuit mode's linear solves (numba kernels with NumPy twins): the factorised wire
network applied to a batch (:class:`FactorSolver`, twin SuperLU's own ``solve``), the
Thomas sweeps of identical chains (:func:`solve_chains`, twin a dense solve), the shared
strap network by exact modal elimination (:func:`strap_coefficients`,
:func:`strap_correct`), chains of varying diagonal (:func:`thomas_varying`, the
Newton-Krylov preconditioner) and :func:`max_abs_diff_cols`.
"""

from __future__ import annotations

import numba
import numpy as np


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
