"""Circuit mode's Newton-Krylov path for heavy IR drop (a mixin of
:class:`~norsim.array.circuit.CircuitSolver`): damped Newton on the full nodal equations,
each step solved matrix-free by batched right-preconditioned GMRES (block Gauss-Seidel
preconditioner of line chains carrying the cells' own conductances, plus the exact strap
correction). See docs/physics.md "Circuit mode"."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from norsim.array.circuit_exact import eval_batch
from norsim.array.circuit_iv import INTERNAL_NODE_STEP_V
from norsim.array.circuit_linear import strap_correct, thomas_varying
from norsim.array.circuit_result import CircuitResult


class KrylovPath:
    """Batched damped Newton-Krylov (needs the solver's network, wires, model and cell
    maps)."""

    def _nk_setup(self):
        """Memory-order nodal matrices and preconditioner pieces (cached per solver):
        bit-line nodes ``r C + c``, source-line nodes as the solver keeps them (lines, C),
        then the strap nodes."""
        if getattr(self, "_nk", None) is not None:
            return self._nk
        net = self.network
        r, c = self.rows, self.cols

        def permute(g, perm):  # chain order -> memory order
            coo = g.tocoo()
            return sp.csr_matrix((coo.data, (perm[coo.row], perm[coo.col])), shape=g.shape)

        perm_cols = (np.arange(r)[None, :] * c + np.arange(c)[:, None]).ravel()
        gb = permute(net.g_bl, perm_cols)
        if net.layout == "cols":
            gs = permute(net.g_sl, perm_cols)
            lines = r
        else:
            gs = (net.g_sl if net.g_sl_full is None else net.g_sl_full).tocsr()
            lines = net.n_sl_lines
        n_l = lines * c
        gyy = gs[n_l:, n_l:].tocsc()
        lu_yy = splu(gyy) if gyy.shape[0] else None
        g_ll, g_ly, g_yl = gs[:n_l, :n_l].tocsr(), gs[:n_l, n_l:].tocsr(), gs[n_l:, :n_l].tocsr()

        def sl_apply(v):  # the strap nodes eliminated: (G_ll - G_ly G_yy^-1 G_yl) v
            if lu_yy is None:
                return g_ll @ v
            return g_ll @ v - g_ly @ lu_yy.solve(np.ascontiguousarray(g_yl @ v))

        self._nk = {
            "gb": gb, "sl_apply": sl_apply, "lines": lines, "n_l": n_l,
            "bl_diag": gb.diagonal().reshape(r, c), "sl_diag": g_ll.diagonal().reshape(lines, c),
            "off_bl": -1.0 / self.wires.r_bl_segment_ohm,
            "off_sl": -1.0 / self.wires.r_sl_segment_ohm}
        return self._nk

    def _line_sum(self, x):
        """Cells (R, C, B) summed onto their source-line nodes (lines, C, B)."""
        net = self.network
        r = x.shape[0]
        if net.layout == "cols" or net.n_sl_lines == r:
            return x
        if r % 2 == 0:
            return x.reshape(r // 2, 2, *x.shape[1:]).sum(axis=1)
        return np.add.reduceat(x, np.arange(0, r, 2), axis=0)

    def _solve_newton_krylov(self, wl, index=None, restart=30, max_restarts=6):
        """Damped Newton on the full nodal equations for a batch, each step's linear system
        solved matrix-free by right-preconditioned GMRES (batched over the vectors).

        Preconditioner: block Gauss-Seidel over (bit lines, source lines, straps), each
        line a tridiagonal chain with its cells' own conductances on the diagonal
        (``G_bl + diag(dI/dV_D)``, ``G_sl - S diag(dI/dV_S)``, Thomas per line), which holds
        the loop that makes the fixed-point sweeps diverge. Same Armijo halving and stop
        as :meth:`_solve_newton`. Returns (result, ok): vectors not converged (``ok``
        False) are left to the sparse-LU Newton.
        """
        w, net, nk = self.wires, self.network, self._nk_setup()
        tol, u_t = w.solver_tol_v, self.model.fg.u_t
        nb, r, c = wl.shape[0], self.rows, self.cols
        lines, n_l = nk["lines"], nk["n_l"]
        n_u = r * c
        n_tot = n_u + n_l
        lr = net.sl_line_of_row if net.layout != "cols" else np.arange(r)
        gb, sl_apply = nk["gb"], nk["sl_apply"]
        rows_layout = net.layout != "cols"

        model = self.model
        split = model.cell_type == "split_gate"
        sel = getattr(model, "sel", None)
        vth_t, n_map, beta_map, eta_map = self._cell_maps
        consts = (float(model.fg.alpha_g), float(u_t),
                  float(model.select_vth + sel.dvth) if split else 0.0,
                  float(sel.n) if split else 1.0, float(sel.beta) if split else 1.0,
                  float(sel.dibl_eta) if split else 0.0, int(model.max_iter),
                  INTERNAL_NODE_STEP_V)

        def evaluate(x, idx, anchor):
            """Residual and cells at x (columns = vectors idx); anchor (ua, va, xa, xda,
            xsa) per cell of those vectors; returns the new point's anchor too."""
            m = x.shape[1]
            u = np.ascontiguousarray(x[:n_u].reshape(r, c, m))
            vc = np.ascontiguousarray(x[n_u:].reshape(lines, c, m)[lr])
            xa_, xda_, xsa_ = (np.array(a) for a in anchor[2:])
            i, gd, gs_ = (np.empty((r, c, m)) for _ in range(3))
            eval_batch(split, np.ascontiguousarray(wl[idx]), self.v_cg, self.v_bl, self.v_sl,
                       u, vc, anchor[0], anchor[1], vth_t, n_map, beta_map, eta_map, *consts,
                       xa_, xda_, xsa_, i, gd, gs_)
            f = np.empty_like(x)
            f[:n_u] = gb @ x[:n_u] - i.reshape(n_u, m)
            f[n_u:] = sl_apply(x[n_u:]) - self._line_sum(i).reshape(n_l, m)
            return f, i, gd, gs_, (u, vc, xa_, xda_, xsa_)

        def jac(d, gd, gs_):
            m = d.shape[1]
            du = d[:n_u].reshape(r, c, m)
            dv = d[n_u:n_u + n_l].reshape(lines, c, m)
            di = -gd * du + gs_ * dv[lr]  # cell current change
            out = np.empty_like(d)
            out[:n_u] = gb @ d[:n_u] - di.reshape(n_u, m)
            out[n_u:] = sl_apply(d[n_u:]) - self._line_sum(di).reshape(n_l, m)
            return out

        def precond(q, gd, gs_, dbl, dsl):
            # block Gauss-Seidel, source lines (and straps) first: the bit-line rows then
            # see the source-line change through the cells' large dI/dV_S exactly; what is
            # left out is the source lines' dependence on the bit lines (dI/dV_D, small)
            m = q.shape[1]
            out = np.empty_like(q)
            rhs = q[n_u:n_u + n_l].reshape(lines, c, m)
            if rows_layout:  # chains along the columns of each line
                t = np.ascontiguousarray(rhs.transpose(1, 0, 2)).reshape(c, lines * m)
                dv = np.empty_like(t)
                thomas_varying(dsl, nk["off_sl"], t, dv)
                dv = np.ascontiguousarray(dv.reshape(c, lines, m).transpose(1, 0, 2))
                # the shared straps: their exact correction for the wires alone (the cells'
                # own conductances are small against the wires' at each node)
                strap_correct(dv, net.strap)
            else:
                dv = np.empty((r, c * m))
                thomas_varying(dsl, nk["off_sl"], np.ascontiguousarray(rhs.reshape(r, c * m)), dv)
                dv = dv.reshape(lines, c, m)
            out[n_u:n_u + n_l] = dv.reshape(n_l, m)
            rhs_u = q[:n_u].reshape(r, c, m) + gs_ * dv[lr]
            du = np.empty((r, c * m))
            thomas_varying(dbl, nk["off_bl"], np.ascontiguousarray(rhs_u.reshape(r, c * m)), du)
            out[:n_u] = du.reshape(n_u, m)
            return out

        def gmres(f, gd, gs_, dbl, dsl):
            """Batched right-preconditioned restarted GMRES for J dx = -f (columns)."""
            m = f.shape[1]
            dx = np.zeros_like(f)
            b_norm = np.linalg.norm(f, axis=0)
            target = 1e-10 * b_norm
            res = -f.copy()
            for _ in range(max_restarts):
                beta = np.linalg.norm(res, axis=0)
                if np.all(beta <= target):
                    break
                vs = [res / np.where(beta > 0, beta, 1.0)]
                h = np.zeros((restart + 1, restart, m))
                cs, sn = np.zeros((restart, m)), np.zeros((restart, m))
                g = np.zeros((restart + 1, m))
                g[0] = beta
                k_used = 0
                for k in range(restart):
                    wv = jac(precond(vs[k], gd, gs_, dbl, dsl), gd, gs_)
                    for i in range(k + 1):  # modified Gram-Schmidt
                        h[i, k] = np.einsum("nb,nb->b", wv, vs[i])
                        wv -= h[i, k] * vs[i]
                    h[k + 1, k] = np.linalg.norm(wv, axis=0)
                    vs.append(wv / np.where(h[k + 1, k] > 0, h[k + 1, k], 1.0))
                    for i in range(k):  # earlier Givens rotations
                        t = cs[i] * h[i, k] + sn[i] * h[i + 1, k]
                        h[i + 1, k] = -sn[i] * h[i, k] + cs[i] * h[i + 1, k]
                        h[i, k] = t
                    den = np.hypot(h[k, k], h[k + 1, k])
                    den = np.where(den > 0, den, 1.0)
                    cs[k], sn[k] = h[k, k] / den, h[k + 1, k] / den
                    h[k, k] = cs[k] * h[k, k] + sn[k] * h[k + 1, k]
                    h[k + 1, k] = 0.0
                    g[k + 1] = -sn[k] * g[k]
                    g[k] = cs[k] * g[k]
                    k_used = k + 1
                    self._nk_krylov += 1
                    if np.all(np.abs(g[k + 1]) <= target):
                        break
                y = np.zeros((k_used, m))
                for i in range(k_used - 1, -1, -1):
                    hii = np.where(h[i, i] != 0, h[i, i], 1.0)
                    y[i] = (g[i] - np.einsum("jb,jb->b", h[i, i + 1:k_used], y[i + 1:])) / hii
                comb = sum(vs[i] * y[i] for i in range(k_used))
                dx += precond(comb, gd, gs_, dbl, dsl)
                res = -f - jac(dx, gd, gs_)
            return dx, np.linalg.norm(res, axis=0) <= 1e-8 * np.maximum(b_norm, 1e-300)

        self._nk_krylov = 0
        x = np.zeros((n_tot, nb))
        nom = self._nominal_t(wl)
        zeros = np.zeros((r, c, nb))
        anchor = [zeros, zeros.copy()] + [np.array(a) if a is not None else zeros.copy()
                                          for a in nom[3:]]
        i = np.array(nom[0])
        gd, gs_ = np.array(nom[1]), np.array(nom[2])
        f = np.empty_like(x)
        f[:n_u] = -i.reshape(n_u, nb)
        f[n_u:] = -self._line_sum(i).reshape(n_l, nb)
        i_nominal = i.copy()
        norm = np.linalg.norm(f, axis=0)
        done = np.zeros(nb, dtype=bool)
        ok = np.zeros(nb, dtype=bool)
        iters = np.zeros(nb, dtype=np.int64)
        i_fin = i.copy()
        for step in range(1, w.solver_max_iter + 1):
            act = np.flatnonzero(~done)
            if act.size == 0:
                break
            fa = f[:, act]
            gda, gsa = gd[..., act], gs_[..., act]
            m = act.size
            dbl = np.ascontiguousarray((nk["bl_diag"][:, :, None] + gda).reshape(r, c * m))
            dsl_l = nk["sl_diag"][:, :, None] - self._line_sum(gsa)
            if rows_layout:
                dsl = np.ascontiguousarray(dsl_l.transpose(1, 0, 2)).reshape(c, lines * m)
            else:
                dsl = np.ascontiguousarray(dsl_l.reshape(r, c * m))
            dx, lin_ok = gmres(fa, gda, gsa, dbl, dsl)
            if not np.all(lin_ok):
                done[act[~lin_ok]] = True  # left to the sparse-LU Newton
                act, dx = act[lin_ok], dx[:, lin_ok]
                if act.size == 0:
                    break
            t = np.ones(act.size)
            na = norm[act]
            pending = np.arange(act.size)
            for _ in range(40):  # Armijo halving, per vector
                cols_ = act[pending]
                x_try = x[:, cols_] + t[pending] * dx[:, pending]
                ft, it, gdt, gst, anc = evaluate(x_try, cols_, [a[..., cols_] for a in anchor])
                n_try = np.linalg.norm(ft, axis=0)
                acc = np.isfinite(n_try) & ((n_try <= (1 - 1e-4 * t[pending]) * na[pending])
                                            | (t[pending] < 1e-8))
                ca = cols_[acc]
                x[:, ca] = x_try[:, acc]
                f[:, ca] = ft[:, acc]
                norm[ca] = n_try[acc]
                i_fin[..., ca] = it[..., acc]
                gd[..., ca] = gdt[..., acc]
                gs_[..., ca] = gst[..., acc]
                for a, b in zip(anchor, anc):
                    a[..., ca] = b[..., acc]
                pending = pending[~acc]
                if pending.size == 0:
                    break
                t[pending] *= 0.5
            delta = np.abs((t * dx)[:n_u + n_l]).max(axis=0)
            settled = np.ones(act.size, dtype=bool)
            settled[pending] = False
            conv = (t == 1.0) & (delta * delta / u_t <= tol) & settled
            iters[act] = step
            done[act[conv]] = True
            ok[act[conv]] = True
        u = x[:n_u].reshape(r, c, nb)
        v = x[n_u:n_u + n_l].reshape(lines, c, nb)
        bt = lambda a: np.moveaxis(a, -1, 0)  # noqa: E731
        res = CircuitResult(column_currents=i_fin.sum(axis=0).T,
                            ideal_column_currents=i_nominal.sum(axis=0).T,
                            cell_currents=bt(i_fin), bl_node_v=bt(self.v_bl - u),
                            sl_node_v=bt(self.v_sl + v[lr]), bl_drop=bt(u), sl_drop=bt(v[lr]),
                            iterations=iters, inner_iterations=0)
        return res, ok
