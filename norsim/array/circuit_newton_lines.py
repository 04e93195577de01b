"""Direct line solves of the per-vector Newton kernel (:mod:`norsim.array.circuit_newton`):
the wire chains' raw data (:func:`line_data`), Thomas factors of a chain with its cells'
conductances on the diagonal (:func:`_factor0`, :func:`_solve0`), and the straps as a
block-tridiagonal system over the lines through each line's tap-to-tap inverse
(:func:`_strap_factor`, :func:`_sl_solve`, small dense inverses :func:`_inv_small`).
Tested against dense solves in ``tests/test_circuit_newton.py``."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["line_data"]


def line_data(g_bl_diag_chain, g_seg_bl, g_sl_diag_chain, g_seg_sl, taps, g_tap, g_pitch,
              g_pad_first, g_pad_last, cols):
    """The raw chain data the kernel takes: each bit line's (and source line's) diagonal
    (wires only), the off-diagonal -g_seg, the strap taps (empty: no strap network) and
    each column's tap index (-1 where none)."""
    taps = np.ascontiguousarray(taps, dtype=np.int64)
    tap_of_col = -np.ones(cols if taps.size else 1, dtype=np.int64)
    if taps.size:
        tap_of_col[taps] = np.arange(taps.size)
    return (np.ascontiguousarray(g_bl_diag_chain, dtype=np.float64), -float(g_seg_bl),
            np.ascontiguousarray(g_sl_diag_chain, dtype=np.float64), -float(g_seg_sl),
            taps, tap_of_col, float(g_tap), float(g_pitch), float(g_pad_first),
            float(g_pad_last))


@numba.njit(cache=True, error_model="numpy")
def _factor0(d0, off, extra, inv_den, cp):
    """Thomas factors of chains along axis 0 (one per column j of the (n, m) arrays) with
    diagonal d0[k] + extra[k, j] and constant off-diagonal ``off``; the columns are swept
    together (the inner loop vectorises)."""
    n, m = extra.shape
    for j in range(m):
        inv_den[0, j] = 1.0 / (d0[0] + extra[0, j])
        cp[0, j] = off * inv_den[0, j]
    for k in range(1, n):
        dk = d0[k]
        for j in range(m):
            inv_den[k, j] = 1.0 / (dk + extra[k, j] - off * cp[k - 1, j])
            cp[k, j] = off * inv_den[k, j]


@numba.njit(cache=True, error_model="numpy")
def _solve0(off, inv_den, cp, rhs, out):
    """Solve the chains factored by :func:`_factor0` for rhs (n, m); out may be rhs."""
    n, m = rhs.shape
    for j in range(m):
        out[0, j] = rhs[0, j] * inv_den[0, j]
    for k in range(1, n):
        for j in range(m):
            out[k, j] = (rhs[k, j] - off * out[k - 1, j]) * inv_den[k, j]
    for k in range(n - 2, -1, -1):
        for j in range(m):
            out[k, j] -= cp[k, j] * out[k + 1, j]


@numba.njit(cache=True, error_model="numpy")
def _inv_small(a, out, m):
    """Inverse of a small symmetric positive definite matrix (Gauss-Jordan; m scratch)."""
    n = a.shape[0]
    for i in range(n):
        for j in range(n):
            m[i, j] = a[i, j]
            out[i, j] = 1.0 if i == j else 0.0
    for k in range(n):
        p = 1.0 / m[k, k]
        for j in range(n):
            m[k, j] *= p
            out[k, j] *= p
        for i in range(n):
            if i != k:
                f = m[i, k]
                for j in range(n):
                    m[i, j] -= f * m[k, j]
                    out[i, j] -= f * out[k, j]


@numba.njit(cache=True, error_model="numpy")
def _strap_factor(taps, g_tap, g_pitch, pad_first, pad_last, off, inv_den, cp, e, z, winv,
                  dmat, scratch):
    """Block-Thomas factors of the straps over the lines (rows layout, source lines factored
    along axis 0 of (C, lines) arrays): for each line the tap-to-tap block of its chain's
    inverse, then W_l = D_l - g_pitch^2 W_(l-1)^-1 with its inverse in winv[l]."""
    cols, lines = inv_den.shape
    nj = taps.size
    for j in range(nj):
        e[:, :] = 0.0
        for ln in range(lines):
            e[taps[j], ln] = 1.0
        _solve0(off, inv_den, cp, e, e)
        for i in range(nj):
            for ln in range(lines):
                z[ln, i, j] = e[taps[i], ln]
    g2 = g_pitch * g_pitch
    for ln in range(lines):
        diag = g_tap
        if ln > 0:
            diag += g_pitch
        if ln < lines - 1:
            diag += g_pitch
        if ln == 0:
            diag += pad_first
        if ln == lines - 1:
            diag += pad_last
        for i in range(nj):
            for j in range(nj):
                dmat[i, j] = -g_tap * g_tap * z[ln, i, j]
                if ln > 0:
                    dmat[i, j] -= g2 * winv[ln - 1, i, j]
            dmat[i, i] += diag
        _inv_small(dmat, winv[ln], scratch)


@numba.njit(cache=True, error_model="numpy")
def _sl_solve(off, inv_den, cp, taps, g_tap, g_pitch, winv, b, by, out, oy, tmp, gy):
    """Source lines (rows layout, (C, lines) arrays factored by :func:`_factor0`) with
    their straps: right-hand sides b (C, lines) at the line nodes, by (lines, J) at the
    strap nodes; out (C, lines), oy (lines, J); b is overwritten."""
    cols, lines = b.shape
    nj = taps.size
    _solve0(off, inv_den, cp, b, out)
    if nj == 0:
        return
    for ln in range(lines):  # block Thomas: rhs_l = by_l + g_tap x0_l[taps]
        for i in range(nj):
            tmp[i] = by[ln, i] + g_tap * out[taps[i], ln]
            if ln > 0:
                tmp[i] += g_pitch * gy[ln - 1, i]
        for i in range(nj):
            acc = 0.0
            for j in range(nj):
                acc += winv[ln, i, j] * tmp[j]
            gy[ln, i] = acc
    for i in range(nj):
        oy[lines - 1, i] = gy[lines - 1, i]
    for ln in range(lines - 2, -1, -1):
        for i in range(nj):
            acc = 0.0
            for j in range(nj):
                acc += winv[ln, i, j] * oy[ln + 1, j]
            oy[ln, i] = gy[ln, i] + g_pitch * acc
    for ln in range(lines):  # the lines again: A_l x_l = b_l + g_tap E y_l
        for i in range(nj):
            b[taps[i], ln] += g_tap * oy[ln, i]
    _solve0(off, inv_den, cp, b, out)


@numba.njit(cache=True, error_model="numpy")
def _bl_solve_rhs(off, inv_den, cp, fu, gsm, dvl, line_of_row, du):
    """Bit lines factored in :func:`_model_bl`: (G_bl + diag gdm) du = -F_u + gsm dv[line]."""
    rows, cols = fu.shape
    for r in range(rows):
        ln = line_of_row[r]
        for c in range(cols):
            prev = du[r - 1, c] if r > 0 else 0.0
            du[r, c] = (-fu[r, c] + gsm[r, c] * dvl[ln, c] - off * prev) * inv_den[r, c]
    for r in range(rows - 2, -1, -1):
        for c in range(cols):
            du[r, c] -= cp[r, c] * du[r + 1, c]
