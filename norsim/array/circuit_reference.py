"""Circuit mode's reference path (a mixin of :class:`~norsim.array.circuit.CircuitSolver`):
the Newton-like iteration batched over vectors in NumPy (batch-last arrays (R, C, B); each
step's local model solved by sweeps through the factorised network, Anderson mixing where
they do not contract), and where it fails Newton-Krylov
(:mod:`~norsim.array.circuit_krylov`) then damped Newton with a sparse LU per step on the
full nodal equations (:meth:`ReferencePath._solve_newton`)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from norsim.array.circuit_iv import local_model_lines, log_sensitivities
from norsim.array.circuit_linear import max_abs_diff_cols
from norsim.array.circuit_result import CircuitResult, _take
from norsim.errors import ConvergenceError


def _anderson_mix(x, gx, hist_dx, hist_df, depth):
    """One Anderson (type II) step per batch column for the map x -> gx; arrays (n, B)."""
    f = gx - x
    if depth == 0 or not hist_df:
        return gx, f
    df = np.stack(hist_df)  # (m, n, B)
    dg = np.stack(hist_dx)
    a = np.einsum("mnb,knb->bmk", df, df)
    rhs = np.einsum("mnb,nb->bm", df, f)
    m = a.shape[1]
    reg = 1e-12 * np.maximum(np.einsum("bmm->b", a), 1e-300)[:, None, None] * np.eye(m)
    gamma = np.linalg.solve(a + reg, rhs[..., None])[..., 0]
    x_new = gx - np.einsum("mnb,bm->nb", dg, gamma)
    if not np.all(np.isfinite(x_new)):
        return gx, f
    return x_new, f


ANDERSON_FALLBACK_DEPTH = 5  # Anderson history when plain sweeps stop contracting
#: Newton steps the reference iteration gets before the batch goes to Newton-Krylov (it
#: needs 2-4 where its sweeps converge; where they diverge it would spend all
#: solver_max_iter steps: 19 s CPU on a 96 x 96 x100 case that Newton-Krylov solves in 0.05 s)
REFERENCE_MAX_OUTER = 12
#: sweeps per step the reference iteration gets there (Anderson mixing settles a
#: contracting model in tens of sweeps; at 512 x 512 x100 it spent 34 s CPU failing)
REFERENCE_MAX_SWEEPS = 60


class ReferencePath:
    """The batched NumPy iteration and its fallbacks (needs the solver's network, wires,
    model, tables and cell evaluation)."""

    def _inner(self, i_k, a_k, b_k, gd, gs, u_k, v_k, tol_inner, max_sweeps=None):
        """Solve the local-model fixed point of one Newton step (batch-last arrays; the
        source-line rises ``v`` per source-line node, (lines, C, B)).

        Cell currents follow i_model = i_k exp(a (u_k - u) + b (v - v_k)) (exact for an
        exponential cell; a = gd / i_k, b = gs / i_k since V_D falls by u - u_k and V_S rises
        by v - v_k), the linear model where i_k <= 0; the drops solve u = G_bl^-1 i_model,
        v = G_sl^-1 S i_model by sweeps through the factorised network (Anderson-accelerated
        when array.wires.anderson_depth > 0), until no drop moves by more than ``tol_inner``.
        """
        net, w = self.network, self.wires
        r, c, nb = i_k.shape
        lines = v_k.shape[0]
        n_u = r * c
        x = np.empty((n_u + lines * c, nb))
        x[:n_u] = u_k.reshape(n_u, nb)
        x[n_u:] = v_k.reshape(lines * c, nb)
        lr = net.sl_line_of_row
        hist_dx, hist_df = [], []
        prev_x = prev_g = None
        res = np.full(nb, np.inf)
        i_m = np.empty(i_k.shape)
        sweeps = 0
        # plain sweeps contract by the loop gain (< 1 in any practical array); when the
        # residual grows instead (a loop gain > 1: huge IR drops), switch to Anderson mixing,
        # which converges for this negative-feedback loop
        depth = w.anderson_depth if w.anderson_depth > 0 else ANDERSON_FALLBACK_DEPTH
        mixing = w.anderson_depth > 0
        res_prev = np.full(nb, np.inf)
        for _ in range(w.solver_max_iter if max_sweeps is None else max_sweeps):
            local_model_lines(i_k, a_k, b_k, gd, gs, x[:n_u].reshape(r, c, nb),
                              x[n_u:].reshape(lines, c, nb), u_k, v_k, lr, out=i_m)
            gx = np.empty_like(x)
            net.bl_drop_t(i_m, out=gx[:n_u])
            gx[n_u:] = net.sl_line_rise_t(i_m).reshape(lines * c, nb)
            sweeps += 1
            if mixing:
                if prev_x is not None:
                    hist_dx.append(gx - prev_g)
                    hist_df.append((gx - x) - (prev_g - prev_x))
                    if len(hist_dx) > depth:
                        hist_dx.pop(0)
                        hist_df.pop(0)
                prev_x, prev_g = x, gx
                x_new, f = _anderson_mix(x, gx, hist_dx, hist_df, depth)
                res = np.abs(f).max(axis=0)
            else:
                x_new = gx
                res = max_abs_diff_cols(gx, x)
                if np.any(res > res_prev):
                    mixing = True
                    prev_x, prev_g = x, gx
            if not np.all(np.isfinite(res)) or not np.all(np.isfinite(x_new)):
                raise ConvergenceError(
                    "circuit solve diverged (non-finite node voltages): the IR drop is too "
                    "large for these wire resistances and cell currents (reduce "
                    "array.wires resistances or cell currents)")
            res_prev = res
            x = x_new
            if np.all(res <= tol_inner):
                break
        # (drops, currents) satisfy the wire network exactly (drops = G^-1 currents); the
        # currents are the local model at drops that differ from these by <= res
        return (np.ascontiguousarray(x[:n_u]).reshape(r, c, nb),
                np.ascontiguousarray(x[n_u:]).reshape(lines, c, nb), i_m, res, sweeps)

    def _solve_reference(self, wl, index=None, max_outer=None) -> CircuitResult:
        w = self.wires
        max_sweeps = None if max_outer is None else REFERENCE_MAX_SWEEPS
        max_outer = w.solver_max_iter if max_outer is None else min(max_outer,
                                                                    w.solver_max_iter)
        nb, r, c = wl.shape[0], self.rows, self.cols
        tol = w.solver_tol_v
        u_t = self.model.fg.u_t
        wl_rb = np.ascontiguousarray(wl.T)
        nom = self._nominal_t(wl)
        i_nom = nom[0]
        ideal_cols = i_nom.sum(axis=0).T
        i_k, gd, gs = nom[:3]  # fresh arrays, updated in place below
        split = nom[3] is not None
        if split:  # internal node and its sensitivities at the anchor of each Newton step
            xint, dxd, dxs = nom[3:]
        net = self.network
        lines = r if net.layout == "cols" else net.n_sl_lines  # source-line node rows
        lr = net.sl_line_of_row
        u = np.zeros((r, c, nb))
        v = np.zeros((lines, c, nb))  # source-line rise per source-line node
        u_anchor = np.zeros((r, c, nb))
        v_anchor = np.zeros((lines, c, nb))
        i_fin = i_nom  # replaced by step 1 (every vector is active in step 1)
        iterations = np.zeros(nb, dtype=np.int64)
        done = np.zeros(nb, dtype=bool)
        inner_total = 0
        step = np.full(nb, np.inf)
        for outer in range(1, max_outer + 1):
            act = np.flatnonzero(~done)
            full = act.size == nb
            ik, gdk, gsk = (_take(t, act, full) for t in (i_k, gd, gs))
            a_k, b_k = log_sensitivities(ik, gdk, gsk)  # d ln I / dV_D, d ln I / dV_S
            ua, va = _take(u, act, full), _take(v, act, full)
            # step 1 (anchored at the nominal bias) is far from the solution: its local model
            # errs by ~delta^2 / U_T, so solving it beyond 0.1 sqrt(tol U_T) (a tenth of the
            # step size that ends the iteration) buys nothing; later steps go to 0.1 tol
            tol_inner = 0.1 * (np.sqrt(tol * u_t) if outer == 1 else tol)
            u_new, v_new, i_m, res, sweeps = self._inner(ik, a_k, b_k, gdk, gsk, ua, va,
                                                         tol_inner, max_sweeps)
            if max_sweeps is not None and np.any(res > tol_inner):
                raise ConvergenceError(
                    f"circuit solve: the local-model sweeps did not settle in {max_sweeps} "
                    "sweeps (loop gain above 1)")
            inner_total += sweeps
            na = act.size
            st = np.maximum(max_abs_diff_cols(u_new.reshape(-1, na), ua.reshape(-1, na)),
                            max_abs_diff_cols(v_new.reshape(-1, na), va.reshape(-1, na)))
            step[act] = st
            if full:
                u, v, i_fin = u_new, v_new, i_m
            else:
                u[..., act], v[..., act], i_fin[..., act] = u_new, v_new, i_m
            conv = (st * st / u_t <= tol) & (res <= tol)
            iterations[act[conv]] = outer
            done[act[conv]] = True
            if done.all():
                break
            act = np.flatnonzero(~done)
            full = act.size == nb
            ua, va = _take(u, act, full), _take(v, act, full)
            x0 = None
            va_cells = va[lr]
            if split:  # predicted internal node: x + dx/dV_D dV_D + dx/dV_S dV_S
                du = ua - _take(u_anchor, act, full)
                dv = va_cells - _take(v_anchor, act, full)[lr]
                x0 = (_take(xint, act, full) - _take(dxd, act, full) * du
                      + _take(dxs, act, full) * dv)
            out = self._iv_t(_take(wl_rb, act, full), self.v_bl - ua, self.v_sl + va_cells, x0)
            if full:  # rebind instead of copying
                i_k, gd, gs = out[:3]
                if split:
                    xint, dxd, dxs = out[3:]
                    u_anchor, v_anchor = ua, va
            else:
                i_k[..., act], gd[..., act], gs[..., act] = out[0], out[1], out[2]
                if split:
                    xint[..., act], dxd[..., act], dxs[..., act] = out[3], out[4], out[5]
                    u_anchor[..., act], v_anchor[..., act] = ua, va
        else:
            bad = int(np.flatnonzero(~done)[0])
            name = bad if index is None else int(index[bad])
            raise ConvergenceError(
                f"circuit solve did not converge in {max_outer} Newton steps "
                f"(array.wires.solver_max_iter): vector {name} still moves "
                f"{float(step[bad]):.3g} V per step (tolerance {tol:g} V); the IR drop is too "
                "large for these wire resistances and cell currents, or raise solver_max_iter")
        # KCL: the clamp delivers the column's sum of cell currents. (Reading it as
        # g_terminal * drop would amplify the solver tolerance by g_terminal.)
        col_cur = i_fin.sum(axis=0).T
        bt = lambda a: np.moveaxis(a, -1, 0)  # noqa: E731  (R, C, B) -> (B, R, C) view
        return CircuitResult(column_currents=col_cur, ideal_column_currents=ideal_cols,
                             cell_currents=bt(i_fin), bl_node_v=bt(self.v_bl - u),
                             sl_node_v=bt(self.v_sl + v[lr]), bl_drop=bt(u), sl_drop=bt(v[lr]),
                             iterations=iterations, inner_iterations=inner_total)

    def _solve_robust(self, wl, index=None) -> CircuitResult:
        """The reference iteration; where it fails (the local-model sweeps diverge or stall
        when the IR drop is a large fraction of the bias), the batch is solved by damped
        Newton-Krylov (:meth:`_solve_newton_krylov`), and any vector that does not settle
        there by the sparse-LU damped Newton (:meth:`_solve_newton`)."""
        try:  # where it converges it does so in a few steps (2-4 in practice)
            return self._solve_reference(wl, index=index, max_outer=REFERENCE_MAX_OUTER)
        except ConvergenceError:
            pass
        # Newton-Krylov over the batch (chunks that keep the Krylov basis near 256 MB);
        # a vector it does not settle goes to the sparse-LU Newton
        n_tot = self.rows * self.cols * 2
        chunk = max(1, min(wl.shape[0], int(256e6 // (8 * 31 * n_tot))))
        parts = []
        for b0 in range(0, wl.shape[0], chunk):
            sub = np.ascontiguousarray(wl[b0:b0 + chunk])
            res, ok = self._solve_newton_krylov(sub)
            for k in range(sub.shape[0]):
                b = b0 + k
                if ok[k]:
                    parts.append(CircuitResult(*(
                        getattr(res, f)[k:k + 1] for f in (
                            "column_currents", "ideal_column_currents", "cell_currents",
                            "bl_node_v", "sl_node_v", "bl_drop", "sl_drop", "iterations")),
                        inner_iterations=0))
                else:
                    parts.append(self._solve_newton(wl[b], b if index is None
                                                    else int(index[b])))
        stack = lambda name: np.stack([getattr(p, name)[0] for p in parts])  # noqa: E731
        return CircuitResult(
            column_currents=stack("column_currents"),
            ideal_column_currents=stack("ideal_column_currents"),
            cell_currents=stack("cell_currents"), bl_node_v=stack("bl_node_v"),
            sl_node_v=stack("sl_node_v"), bl_drop=stack("bl_drop"), sl_drop=stack("sl_drop"),
            iterations=np.array([p.iterations[0] for p in parts], dtype=np.int64),
            inner_iterations=max(p.inner_iterations for p in parts))

    def _node_maps(self):
        """Each cell's bit-line and source-line node index in the order of ``g_bl`` / ``g_sl``
        (chain order), (R, C) each, and the number of source-line nodes."""
        net = self.network
        r, c = self.rows, self.cols
        rr, cc = np.meshgrid(np.arange(r), np.arange(c), indexing="ij")
        bl = cc * r + rr
        if net.layout == "cols":
            sl = cc * r + rr
        else:
            sl = net.sl_line_of_row[rr] * c + cc
        g = net.g_sl if net.g_sl_full is None else net.g_sl_full
        return bl, sl, g.shape[0]

    def _solve_newton(self, wl_row, name) -> CircuitResult:
        """One vector by damped Newton on the full nodal equations (sparse LU per step).

        Unknowns: bit-line drops ``u`` and source-line rises ``v`` (chain order). Residuals
        ``F = [G_bl u - i(u, v); G_sl v - S i(u, v)]`` (A), Jacobian from the cells' exact
        dI/dV_D and dI/dV_S. Each step is halved until the residual norm falls (Armijo); a
        passive wire network with cells whose current rises with V_DS has one operating
        point, which this reaches from the nominal bias. Stops as the reference path does:
        a full step delta with delta^2 / U_T <= solver_tol_v (the next step's size).
        """
        w, net = self.wires, self.network
        r, c = self.rows, self.cols
        tol, u_t = w.solver_tol_v, self.model.fg.u_t
        bl, sl, n_sl = self._node_maps()
        n_bl = r * c
        blf, slf = bl.ravel(), sl.ravel()
        s_sum = sp.csr_matrix((np.ones(n_bl), (slf, np.arange(n_bl))), shape=(n_sl, n_bl))
        g_bl = net.g_bl.tocsr()
        g_sl = (net.g_sl if net.g_sl_full is None else net.g_sl_full).tocsr()
        wl_col = np.asarray(wl_row, dtype=np.float64)[:, None]
        cells = np.arange(n_bl)

        def flat(a):                 # (R, C) cell values in bit-line chain order
            out = np.empty(n_bl)
            out[blf] = a.ravel()
            return out

        def evaluate(x, x0):
            u_cell = x[:n_bl][blf].reshape(r, c)
            v_cell = x[n_bl:][slf].reshape(r, c)
            i, gd, gs, xi, _, _ = self._iv(wl_col, self.v_bl - u_cell, self.v_sl + v_cell, x0)
            i = np.broadcast_to(i, (r, c))
            res = np.concatenate([g_bl @ x[:n_bl] - flat(i), g_sl @ x[n_bl:] - s_sum @ i.ravel()])
            return res, i, gd, gs, xi

        x = np.zeros(n_bl + n_sl)
        res, i, gd, gs, xi = evaluate(x, None)
        i_nominal = np.array(i)
        norm = float(np.linalg.norm(res))
        steps = 0
        for steps in range(1, w.solver_max_iter + 1):
            gdf = np.broadcast_to(gd, (r, c)).ravel()
            gsf = np.broadcast_to(gs, (r, c)).ravel()
            # J = [[G_bl + diag(gd), -gs (bl, sl)], [+gd (sl, bl), G_sl - S diag(gs)]]
            rows_ = np.concatenate([blf, blf, n_bl + slf, n_bl + slf])
            cols_ = np.concatenate([blf, n_bl + slf, blf, n_bl + slf])
            vals = np.concatenate([gdf, -gsf, gdf, -gsf])
            jac = sp.bmat([[g_bl, None], [None, g_sl]], format="csc") + \
                sp.csc_matrix((vals, (rows_, cols_)), shape=(n_bl + n_sl, n_bl + n_sl))
            dx = -splu(jac).solve(res)
            t = 1.0
            while True:
                x_try = x + t * dx
                trial = evaluate(x_try, xi)
                n_try = float(np.linalg.norm(trial[0]))
                if np.isfinite(n_try) and (n_try <= (1.0 - 1e-4 * t) * norm or t < 1e-8):
                    break
                t *= 0.5
            delta = float(np.abs(t * dx).max())
            x = x_try
            res, i, gd, gs, xi = trial
            norm = n_try
            if t == 1.0 and delta * delta / u_t <= tol:
                break
        else:
            raise ConvergenceError(
                f"circuit solve did not converge in {w.solver_max_iter} Newton steps "
                f"(array.wires.solver_max_iter): vector {name} still moves {delta:.3g} V per "
                f"step (tolerance {tol:g} V, KCL residual {norm:.3g} A) in the damped Newton "
                "fallback; outside the tested envelope (up to 512 x 512, wires up to x100 the "
                "preset, all rows on, 233-358 K: <= 10 steps) or raise solver_max_iter")
        u_cell = x[:n_bl][blf].reshape(r, c)
        v_cell = x[n_bl:][slf].reshape(r, c)
        b = lambda a: np.asarray(a)[None]  # noqa: E731
        i = np.array(i)
        return CircuitResult(column_currents=b(i.sum(axis=0)),
                             ideal_column_currents=b(i_nominal.sum(axis=0)),
                             cell_currents=b(i), bl_node_v=b(self.v_bl - u_cell),
                             sl_node_v=b(self.v_sl + v_cell), bl_drop=b(u_cell),
                             sl_drop=b(v_cell), iterations=np.array([steps]),
                             inner_iterations=0)
