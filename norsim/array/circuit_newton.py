"""Circuit mode for heavy IR drop: a per-vector Newton kernel with direct line solves (numba).

Where the IR drop is a large fraction of the bias (issue 19: IR effect >= 20 %), the default
kernel's fixed-point sweeps through the wire network contract slowly or not at all: the loop
gain of a whole bit line (its cells' conductances times the line's resistance to the clamp)
or of a shared strap (every cell it serves) exceeds 1. This kernel keeps the same outer
iteration (exact cell evaluations as anchors, each cell's ln I linear in its terminal
voltages between them: the local exponential model) but solves each local model by Newton
instead of sweeps. Each Newton step's linear system, in bit-line drops u, source-line rises
v and strap node rises y,

    (G_bl + diag g_d) du + (-diag g_s S^T) dv            = -F_u
    S diag g_d du      + (G_sl - S diag g_s S^T) dv - E_t dy = -F_v
                                          strap rows in (dv, dy) = -F_y

is solved by one block Gauss-Seidel pass (source lines with their straps first, then bit
lines), each block exactly: every bit line is a tridiagonal chain with its cells'
conductances on the diagonal (Thomas); every source line likewise, and the straps couple
the lines only through their taps, so the tap-to-tap block of each line's inverse (J x J, J
taps) turns the straps into a block-tridiagonal system over the lines (block Thomas). The
cells' loop through the wires is inside the blocks; what the pass leaves out is the source
lines' response to the bit-line drops (the cells' drain conductance g_d, small against
|g_s| in saturation), so each pass contracts strongly. In the variables (u, -v, -y) the
Jacobian is a column-diagonally-dominant M-matrix for any cell with g_d >= 0 >= g_s (KCL:
each column sums to the wire network's), so the block Gauss-Seidel pass converges.

Stop (as the default kernel and the reference path): a Newton step of the outer iteration
with delta^2 / U_T <= solver_tol_v, its local model solved until the update falls below a
tenth of the tolerance and contracts; a vector whose inner iteration does not contract, or
turns non-finite, gets status 1 (the reference path then takes it). Twin: the reference
path (``CircuitSolver._solve_robust``); ``tests/test_circuit_newton.py`` proves them equal.
"""

from __future__ import annotations

import numba
import numpy as np

from norsim.array.circuit_exact import _exact_row
from norsim.array.circuit_iv import load_vector, record_status, store_vector
from norsim.array.circuit_newton_lines import (_bl_solve_rhs, _factor0, _inv_small,  # noqa: F401
                                               _sl_solve, _solve0, _strap_factor, line_data)
from norsim.device.vecmath import exp_nonpos

__all__ = ["newton_batch", "line_data"]

#: largest local-model exponent evaluated (e^50: beyond it the model is far from the cell
#: anyway and the next exact evaluation corrects it)
EXP_CLIP = 50.0
#: inner Newton iterations per local model before the vector goes to the reference path
MAX_INNER = 40
#: block Gauss-Seidel passes per inner step rise (up to MAX_PASSES) while the inner update
#: contracts by less than SLOW_RATE per step (strong drain feedback, g_d not small)
SLOW_RATE = 0.3
MAX_PASSES = 6
#: a Newton step larger than this (V) is followed by an approximate exact evaluation
#: (internal node to one Newton step: its stopping step is LOOSE_NODE_STEP_V)
LOOSE_STEP_V = 1e-3
LOOSE_NODE_STEP_V = 1e-3
#: between this and LOOSE_STEP_V the exact evaluation takes a loose pass, then a precise one
TWO_PASS_STEP_V = 1e-5


@numba.njit(cache=True, error_model="numpy")
def _model_bl(ia, la, lb, ua, u, v, va, line_of_row, bl_d, bl_off, im, gdm, gsm, fu, bl_inv,
              bl_cp, s_lines, g_lines, zero_row):
    """One pass over the cells: local-model currents im and conductances (gdm = -dI/du,
    gsm = dI/dv) at drops (u, v), the bit-line residual F_u = G_bl u - im, the bit lines'
    Thomas factors with the cells' gdm on the diagonal, and per source-line node the sums
    of im (s_lines) and of -gsm (g_lines, which the caller zeroes)."""
    rows, cols = ia.shape
    for r in range(rows):
        ln = line_of_row[r]
        up = u[r - 1] if r > 0 else zero_row
        dn = u[r + 1] if r < rows - 1 else zero_row
        cprev = bl_cp[r - 1] if r > 0 else zero_row
        d0 = bl_d[r]
        ur = u[r]
        uar = ua[r]
        vr = v[ln]
        var = va[ln]
        iar = ia[r]
        lar = la[r]
        lbr = lb[r]
        imr = im[r]
        gdr = gdm[r]
        gsr = gsm[r]
        fur = fu[r]
        invr = bl_inv[r]
        cpr = bl_cp[r]
        sl = s_lines[ln]
        gl = g_lines[ln]
        for c in range(cols):
            ik = iar[c]
            a = lar[c]
            b = lbr[c]
            t = a * (uar[c] - ur[c]) + b * (vr[c] - var[c])
            tc = min(t, EXP_CLIP)
            e = exp_nonpos(-abs(tc))
            ex = e if tc <= 0.0 else 1.0 / e
            pos = ik > 0.0
            i = ik * ex if pos else ik + t
            gd = a * i if pos else a
            gs = b * i if pos else b
            imr[c] = i
            gdr[c] = gd
            gsr[c] = gs
        for c in range(cols):
            fur[c] = d0 * ur[c] + bl_off * (up[c] + dn[c]) - imr[c]
            iv = 1.0 / (d0 + gdr[c] - bl_off * cprev[c])
            invr[c] = iv
            cpr[c] = bl_off * iv
        for c in range(cols):  # kept out of the loop above (possible aliasing: no SIMD)
            sl[c] += imr[c]
            gl[c] -= gsr[c]


@numba.njit(cache=True, error_model="numpy")
def _sl_residual(sl_d, sl_off, along_rows, taps, g_tap, g_pitch, pad_first, pad_last, v, y,
                 s_lines, fv, fy):
    """Source-line residual F_v = G_sl v - E_t y - S im (lines, C) and the strap rows F_y."""
    lines, cols = v.shape
    if along_rows:
        for ln in range(lines):
            for c in range(cols):
                acc = sl_d[c] * v[ln, c] - s_lines[ln, c]
                if c > 0:
                    acc += sl_off * v[ln, c - 1]
                if c < cols - 1:
                    acc += sl_off * v[ln, c + 1]
                fv[ln, c] = acc
        nj = taps.size
        for ln in range(lines):
            for j in range(nj):
                fv[ln, taps[j]] -= g_tap * y[ln, j]
                d = g_tap + (pad_first if ln == 0 else 0.0) + (pad_last if ln == lines - 1
                                                                else 0.0)
                acc = -g_tap * v[ln, taps[j]]
                if ln > 0:
                    d += g_pitch
                    acc -= g_pitch * y[ln - 1, j]
                if ln < lines - 1:
                    d += g_pitch
                    acc -= g_pitch * y[ln + 1, j]
                fy[ln, j] = acc + d * y[ln, j]
    else:
        for r in range(lines):
            for c in range(cols):
                acc = sl_d[r] * v[r, c] - s_lines[r, c]
                if r > 0:
                    acc += sl_off * v[r - 1, c]
                if r < lines - 1:
                    acc += sl_off * v[r + 1, c]
                fv[r, c] = acc


@numba.njit(cache=True, error_model="numpy")
def _apply(x, dx):
    """x += dx; returns max |dx| (inf if any dx is not finite)."""
    n0, n1 = x.shape
    m = 0.0
    bad = False
    for i in range(n0):
        for j in range(n1):
            d = dx[i, j]
            a = abs(d)
            bad |= not (a < np.inf)
            m = max(m, a)
            x[i, j] += d
    return np.inf if bad else m


@numba.njit(cache=True, nogil=True)
def _newton_batch_kernel(split, wl, inv, t_i, t_a, t_b, t_x, t_xd, t_xs, vth, n_map,
                         beta_map, eta_map, v_cg, v_bl, v_sl, alpha_g, u_t, sel_vth, sel_n,
                         sel_beta, sel_eta, model_max_iter, newton_dx, bl_d, bl_off, sl_d,
                         sl_off, taps, tap_of_col, g_tap, g_pitch, pad_first, pad_last,
                         along_rows, line_of_row, n_lines, tol, max_iter, gs_passes,
                         out_i, out_u, out_vd, out_v, out_vs, out_col, out_ideal, out_iter,
                         out_inner, out_status, out_step):
    """Every vector of a batch on its own: outer exact evaluations, each local model
    solved by Newton with ``gs_passes`` block Gauss-Seidel passes per step (see the module
    docstring). Arguments as :func:`~norsim.array.circuit_kernels._solve_batch_kernel`
    plus the raw chain data of :func:`line_data`; out_status[k] = 0 solved, 1 not."""
    nb, rows = wl.shape
    cols = vth.shape[1]
    nj = taps.size
    ia = np.empty((rows, cols))
    la = np.empty((rows, cols))
    lb = np.empty((rows, cols))
    xa = np.empty((rows, cols))
    xda = np.empty((rows, cols))
    xsa = np.empty((rows, cols))
    ua = np.empty((rows, cols))
    u = np.empty((rows, cols))
    im = np.empty((rows, cols))
    gdm = np.empty((rows, cols))
    gsm = np.empty((rows, cols))
    fu = np.empty((rows, cols))
    du = np.empty((rows, cols))
    bl_inv = np.empty((rows, cols))
    bl_cp = np.empty((rows, cols))
    zero_row = np.zeros(cols)
    rb = np.empty((10, cols))
    ones = np.ones(cols)
    va = np.empty((n_lines, cols))
    v = np.empty((n_lines, cols))
    fv = np.empty((n_lines, cols))
    dvl = np.empty((n_lines, cols))
    s_lines = np.empty((n_lines, cols))
    g_lines = np.empty((n_lines, cols))
    # source-line chains chain-major: (C, lines) for the rows layout's lines (transposed),
    # the (R, C) arrays themselves for the columns layout's
    n0 = cols if along_rows else rows
    n1 = n_lines if along_rows else cols
    ext = np.empty((n0, n1))
    bsl = np.empty((n0, n1))
    dvc = np.empty((n0, n1))
    ework = np.empty((n0, n1))
    sl_inv = np.empty((n0, n1))
    sl_cp = np.empty((n0, n1))
    nyl = n_lines if nj > 0 else 1
    nj1 = max(nj, 1)
    y = np.zeros((nyl, nj1))
    fy = np.zeros((nyl, nj1))
    dy = np.zeros((nyl, nj1))
    by = np.zeros((nyl, nj1))
    gyb = np.zeros((nyl, nj1))
    winv = np.zeros((nyl, nj1, nj1))
    zt = np.zeros((nyl, nj1, nj1))
    dmat = np.zeros((nj1, nj1))
    scratch = np.zeros((nj1, nj1))
    tmpj = np.zeros(nj1)
    tol_first = 0.1 * np.sqrt(tol * u_t)
    for k in range(nb):
        load_vector(k, split, inv, t_i, t_a, t_b, t_x, t_xd, t_xs, ia, la, lb, ua, xa, xda, xsa,
                    out_ideal[k])
        u[:, :] = 0.0
        va[:, :] = 0.0
        v[:, :] = 0.0
        y[:, :] = 0.0
        status = 1
        inner_total = 0
        step = np.inf
        done_outer = 0
        loose = False  # the anchor is an approximate evaluation
        passes = gs_passes
        for outer in range(1, max_iter + 1):
            tol_in = tol_first if outer == 1 else 0.1 * tol
            solved = False
            upd_prev = np.inf
            for _ in range(MAX_INNER):
                s_lines[:, :] = 0.0
                g_lines[:, :] = 0.0
                _model_bl(ia, la, lb, ua, u, v, va, line_of_row, bl_d, bl_off, im, gdm, gsm,
                          fu, bl_inv, bl_cp, s_lines, g_lines, zero_row)
                _sl_residual(sl_d, sl_off, along_rows, taps, g_tap, g_pitch, pad_first,
                             pad_last, v, y, s_lines, fv, fy)
                inner_total += 1
                if along_rows:
                    for ln in range(n_lines):
                        for c in range(cols):
                            ext[c, ln] = g_lines[ln, c]
                    _factor0(sl_d, sl_off, ext, sl_inv, sl_cp)
                    if nj > 0:
                        _strap_factor(taps, g_tap, g_pitch, pad_first, pad_last, sl_off,
                                      sl_inv, sl_cp, ework, zt, winv, dmat, scratch)
                else:
                    _factor0(sl_d, sl_off, g_lines, sl_inv, sl_cp)
                for p in range(passes):
                    if p > 0:  # the source lines' response to the last bit-line step
                        s_lines[:, :] = 0.0
                        for r in range(rows):
                            ln = line_of_row[r]
                            for c in range(cols):
                                s_lines[ln, c] += gdm[r, c] * du[r, c]
                    for ln in range(n_lines):
                        for c in range(cols):
                            rhs = -fv[ln, c] - (s_lines[ln, c] if p > 0 else 0.0)
                            if along_rows:
                                bsl[c, ln] = rhs
                            else:
                                bsl[ln, c] = rhs
                    if along_rows:
                        for ln in range(nyl):
                            for j in range(nj):
                                by[ln, j] = -fy[ln, j]
                        _sl_solve(sl_off, sl_inv, sl_cp, taps, g_tap, g_pitch, winv, bsl, by,
                                  dvc, dy, tmpj, gyb)
                        for ln in range(n_lines):
                            for c in range(cols):
                                dvl[ln, c] = dvc[c, ln]
                    else:
                        _solve0(sl_off, sl_inv, sl_cp, bsl, dvl)
                    _bl_solve_rhs(bl_off, bl_inv, bl_cp, fu, gsm, dvl, line_of_row, du)
                upd = max(_apply(u, du), _apply(v, dvl))
                if nj > 0:
                    upd = max(upd, _apply(y, dy))
                if not (upd < np.inf):
                    break
                # the update contracts by rho = upd / upd_prev: what is left after it is
                # about rho / (1 - rho) upd (stop below a tenth of the tolerance)
                rho = upd / upd_prev if upd_prev < np.inf else 1.0
                if upd <= tol_in or (rho < 0.5 and rho / (1.0 - rho) * upd <= tol_in):
                    solved = True
                    break
                if rho > SLOW_RATE and passes < MAX_PASSES:
                    passes += 1  # the bit lines feed back on the source lines (large g_d)
                upd_prev = upd
            if not solved:
                break
            step = 0.0
            for r in range(rows):
                for c in range(cols):
                    step = max(step, abs(u[r, c] - ua[r, c]))
            for ln in range(n_lines):
                for c in range(cols):
                    step = max(step, abs(v[ln, c] - va[ln, c]))
            if step * step / u_t <= tol and not loose:
                status = 0
                done_outer = outer
                break
            if outer == max_iter:
                break
            # exact evaluation at the new drops: the next anchor. Far from the last anchor
            # the split-gate internal node's prediction is poor and most cells would need
            # the scalar iteration; one vectorised Newton step is then accurate to second
            # order, enough for an intermediate anchor (never the last one: see `loose`)
            loose = step > LOOSE_STEP_V
            # a moderate step: a loose pass first, then the precise one starts from its
            # internal node (one vectorised step each instead of the scalar iteration)
            two = split and not loose and step > TWO_PASS_STEP_V
            ndx = LOOSE_NODE_STEP_V if (loose or two) else newton_dx
            for r in range(rows):
                ln = line_of_row[r]
                _exact_row(split, wl[k, r], v_cg, v_bl, v_sl, u[r], v[ln], ua[r], va[ln],
                           vth[r], n_map[r], beta_map[r], eta_map[r], alpha_g, u_t, sel_vth,
                           sel_n, sel_beta, sel_eta, model_max_iter, ndx, ones, ones,
                           ia[r], la[r], lb[r], xa[r], xda[r], xsa[r], rb)
                if two:
                    _exact_row(split, wl[k, r], v_cg, v_bl, v_sl, u[r], v[ln], u[r], v[ln],
                               vth[r], n_map[r], beta_map[r], eta_map[r], alpha_g, u_t,
                               sel_vth, sel_n, sel_beta, sel_eta, model_max_iter, newton_dx,
                               ones, ones, ia[r], la[r], lb[r], xa[r], xda[r], xsa[r], rb)
                for c in range(cols):
                    ua[r, c] = u[r, c]
            va[:, :] = v
        record_status(k, status, inner_total, step, done_outer, out_status, out_inner, out_step,
                      out_iter)
        if status != 0:
            continue
        # the local-model currents at the converged drops
        s_lines[:, :] = 0.0
        g_lines[:, :] = 0.0
        _model_bl(ia, la, lb, ua, u, v, va, line_of_row, bl_d, bl_off, im, gdm, gsm, fu,
                  bl_inv, bl_cp, s_lines, g_lines, zero_row)
        store_vector(k, im, u, v, line_of_row, v_bl, v_sl, out_i, out_col, out_u, out_vd, out_v,
                     out_vs)


#: arguments of :func:`_newton_batch_kernel` indexed by vector (sliced per thread): wl, inv
#: and the 11 outputs at the end
_BATCH_ARGS = (1, 2)
_N_OUT = 11


def newton_batch(*args, threads: int = 1):
    """Run :func:`_newton_batch_kernel` (arguments in its order), the batch split into
    ``threads`` contiguous parts solved concurrently (the kernel releases the GIL; every
    vector is solved on its own, so the result does not depend on the split)."""
    nb = args[1].shape[0]
    threads = max(1, min(int(threads), nb))
    if threads == 1:
        _newton_batch_kernel(*args)
        return
    from concurrent.futures import ThreadPoolExecutor

    edges = np.linspace(0, nb, threads + 1).astype(int)
    n = len(args)
    sliced = set(_BATCH_ARGS) | set(range(n - _N_OUT, n))

    def part(j):
        a, b = edges[j], edges[j + 1]
        _newton_batch_kernel(*(x[a:b] if i in sliced else x for i, x in enumerate(args)))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(part, range(threads)))
