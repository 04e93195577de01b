"""The default circuit-mode solver kernel: every vector of a batch on its own
(:func:`_solve_batch_kernel`; twin: the reference iteration of
``norsim.array.circuit_reference``), its sweeps stopped by :func:`certified_error`
(tested against the true distance to the fixed point), with the contraction
ingredients of a tile (:func:`tile_ingredients`).
"""

from __future__ import annotations

import numba
import numpy as np

from norsim.array.circuit_exact import _exact_row, _exp_mode, _model_currents
from norsim.array.circuit_iv import load_vector, record_status, store_vector
from norsim.array.circuit_linear import _chains_axis0, _solve_sl, no_strap


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


@numba.njit(cache=True, inline="always")
def _take_sweep(new, cur, anchor):
    """cur = new (2-D); returns (largest update, largest distance of new from the anchor,
    every value finite)."""
    d = 0.0
    dist = 0.0
    ok = True
    n0, n1 = new.shape
    for i in range(n0):
        for j in range(n1):
            g = new[i, j]
            if not (abs(g) < np.inf):
                ok = False
            d = max(d, abs(g - cur[i, j]))
            dist = max(dist, abs(g - anchor[i, j]))
            cur[i, j] = g
    return d, dist, ok


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
        load_vector(k, split, inv, t_i, t_a, t_b, t_x, t_xd, t_xs, ia, la, lb, ua, xa, xda, xsa,
                    out_ideal[k])
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
                du, dist_u, ok_u = _take_sweep(gu, u, ua)
                dv, dist_v, ok_v = _take_sweep(gv, v, va)
                ok = ok_u and ok_v
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
        record_status(k, status, sweeps, step, done_outer, out_status, out_sweeps, out_step,
                      out_iter)
        if status != 0:
            continue
        # the converged vector: the last sweep's currents and the drops they cause
        store_vector(k, im, u, v, line_of_row, v_bl, v_sl, out_i, out_col, out_u, out_vd, out_v,
                     out_vs)
