"""Circuit mode: the array's DC operating point with wire resistance and finite-gain clamps.

Unknowns: one bit-line node per cell and one source-line node per cell (a pair of rows shares
its source-line node in the default layout), i.e. up to 2 R C node voltages. The linear part
(wire segments, straps, drivers, column-select switches, the clamp's Thevenin output) has no
coupling between bit lines and source lines; it is assembled once per tile geometry into two
sparse conductance matrices ``G_bl`` and ``G_sl`` and factorised once with
``scipy.sparse.linalg.splu``. Cells couple the two: cell (r, c) draws
``I(V_D = V_clamp - u[r, c], V_S = V_SL + w[r, c])`` from the bit line into the source line,
so the drops solve the fixed point

    u = G_bl^-1 I(u, w)        (bit-line drop below the clamp voltage, per node)
    w = G_sl^-1 S I(u, w)      (source-line rise above the supply; S sums cells per node)

Newton's method on it, batched over input vectors: each outer step evaluates the cell I-V and
its derivatives (dI/dV_D, dI/dV_S) once, and the linearised step is solved by an inner
fixed-point iteration preconditioned by the factorised wire network (Anderson-accelerated),
so no matrix is refactorised per vector. Non-convergence raises
:class:`~norsim.errors.ConvergenceError`. See docs/physics.md "Circuit mode".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from norsim.array.circuit_config import WireConfig
from norsim.array.circuit_kernels import FactorSolver, split_gate_warm
from norsim.errors import ConvergenceError, InputError

__all__ = ["WireNetwork", "CircuitSolver", "CircuitResult", "IrDropMap", "solve_tile",
           "ir_drop_map", "wire_network", "clamp_voltage", "clamp_gain_of"]


# ------------------------------------------------------------------ linear network ----
def _chain_matrix(n_lines: int, length: int, g_seg: float, g_end: np.ndarray) -> sp.csc_matrix:
    """Block-diagonal conductance matrix of ``n_lines`` chains of ``length`` nodes.

    Node ``line * length + k``; segments of conductance ``g_seg`` join k-1 and k; ``g_end``
    (length ``length``) is each node's conductance to its fixed supply (0 where none).
    """
    n = n_lines * length
    diag = np.tile(np.asarray(g_end, dtype=np.float64), n_lines)
    off = np.full(n - 1, -g_seg) if n > 1 else np.zeros(0)
    if length > 1:
        k = np.arange(n)
        has_left = (k % length) > 0
        has_right = (k % length) < length - 1
        diag = diag + g_seg * has_left + g_seg * has_right
        off[(np.arange(n - 1) % length) == length - 1] = 0.0  # no segment between chains
    else:
        off = np.zeros(max(n - 1, 0))
    return sp.diags([off, diag, off], [-1, 0, 1], shape=(n, n), format="csc")


@dataclass(frozen=True)
class WireNetwork:
    """The factorised wire network of one tile geometry (R rows x C columns).

    ``bl_drop(i)`` and ``sl_rise(i)`` apply ``G_bl^-1`` and ``G_sl^-1 S`` to a batch of cell
    currents ``i`` of shape (B, R, C) and return per-cell node drops of the same shape.
    """

    rows: int
    cols: int
    layout: str
    n_sl_lines: int
    sl_line_of_row: np.ndarray
    g_bl: sp.csc_matrix
    g_sl: sp.csc_matrix
    g_bl_terminal: float
    lu_bl: FactorSolver
    lu_sl: FactorSolver

    @property
    def n_nodes(self) -> int:
        return self.g_bl.shape[0] + self.g_sl.shape[0]

    def bl_drop(self, i_cells: np.ndarray) -> np.ndarray:
        b, r, c = i_cells.shape
        rhs = np.ascontiguousarray(i_cells.transpose(2, 1, 0)).reshape(c * r, b)
        sol = self.lu_bl.solve(rhs)
        return sol.reshape(c, r, b).transpose(2, 1, 0)

    def sl_sum(self, i_cells: np.ndarray) -> np.ndarray:
        """Current injected into each source-line node, (B, lines, C) or (B, R, C)."""
        if self.layout == "cols" or self.n_sl_lines == self.rows:
            return i_cells
        b, r, c = i_cells.shape
        if r % 2:
            i_cells = np.concatenate([i_cells, np.zeros((b, 1, c))], axis=1)
        return i_cells.reshape(b, self.n_sl_lines, 2, c).sum(axis=2)

    def sl_rise(self, i_cells: np.ndarray) -> np.ndarray:
        b, r, c = i_cells.shape
        if self.layout == "cols":
            rhs = np.ascontiguousarray(i_cells.transpose(2, 1, 0)).reshape(c * r, b)
            return self.lu_sl.solve(rhs).reshape(c, r, b).transpose(2, 1, 0)
        s = self.sl_sum(i_cells)
        lines = s.shape[1]
        rhs = np.ascontiguousarray(s.transpose(1, 2, 0)).reshape(lines * c, b)
        sol = self.lu_sl.solve(rhs).reshape(lines, c, b).transpose(2, 0, 1)
        return sol[:, self.sl_line_of_row, :]


def _wire_key(wires: WireConfig) -> tuple:
    return tuple(sorted(wires.to_dict().items()))


def clamp_gain_of(cfg) -> float:
    """The clamp amplifier's DC gain A (``cfg.array.sense.clamp_gain``; infinite if absent)."""
    sense = getattr(cfg.array, "sense", None)
    return float(getattr(sense, "clamp_gain", np.inf))


def clamp_voltage(cfg) -> float:
    """Open-circuit voltage of the finite-gain clamp, V_ref A / (1 + A) (V)."""
    a = clamp_gain_of(cfg)
    v_ref = float(cfg.device.read.v_bl_read_v)
    return v_ref if np.isinf(a) else v_ref * a / (1.0 + a)


def wire_network(rows: int, cols: int, wires: WireConfig, clamp_gain: float) -> WireNetwork:
    """Build and factorise (cached per geometry and wire configuration) a tile's network."""
    for name, v in (("rows", rows), ("cols", cols)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InputError(name, v, "a whole number >= 1")
    wires.validate("array.wires.")
    if not (clamp_gain >= 0):
        raise InputError("clamp_gain", clamp_gain, "a gain >= 0")
    return _wire_network_cached(int(rows), int(cols), _wire_key(wires), float(clamp_gain))


@lru_cache(maxsize=32)
def _wire_network_cached(rows: int, cols: int, key: tuple, clamp_gain: float) -> WireNetwork:
    w = WireConfig.from_dict(dict(key))
    r_clamp = 0.0 if np.isinf(clamp_gain) else w.r_clamp_out_ohm(clamp_gain)
    g_bl_seg = 1.0 / w.r_bl_segment_ohm
    g_sl_seg = 1.0 / w.r_sl_segment_ohm
    g_term = np.zeros(rows)
    g_term[0] = 1.0 / (w.r_bl_segment_ohm + w.r_bl_terminal_ohm + r_clamp)
    g_bl = _chain_matrix(cols, rows, g_bl_seg, g_term)
    if w.sl_layout == "cols":
        g_drv = np.zeros(rows)
        g_drv[0] = 1.0 / (w.r_sl_segment_ohm + w.r_sl_driver_ohm)
        g_sl = _chain_matrix(cols, rows, g_sl_seg, g_drv)
        n_lines = cols
        line_of_row = np.arange(rows)
    else:
        n_lines = (rows + 1) // 2 if w.sl_pair_shared else rows
        line_of_row = np.arange(rows) // 2 if w.sl_pair_shared else np.arange(rows)
        taps = np.zeros(cols)
        tap = (np.arange(cols) % w.strap_pitch_cols == 0)
        tap[-1] = True
        taps[tap] = 1.0 / (w.r_sl_segment_ohm + w.r_strap_ohm)
        g_sl = _chain_matrix(n_lines, cols, g_sl_seg, taps)
    # chains are tridiagonal in natural order: no fill-in, O(n) solves
    lu_bl = FactorSolver(splu(g_bl, permc_spec="NATURAL"))
    lu_sl = FactorSolver(splu(g_sl, permc_spec="NATURAL"))
    return WireNetwork(rows, cols, w.sl_layout, n_lines, line_of_row, g_bl, g_sl,
                       float(g_term[0]), lu_bl, lu_sl)


# ------------------------------------------------------------------------ results ----
@dataclass
class CircuitResult:
    """DC solution of one tile for a batch of B input vectors (SI units).

    column_currents: (B, C) current delivered by each bit line's clamp (A).
    ideal_column_currents: (B, C) the same sum at the nominal bias (fast mode, no wires).
    cell_currents: (B, R, C) drain currents, bit line to source line (A).
    bl_node_v, sl_node_v: (B, R, C) voltage of each cell's drain / source node (V).
    bl_drop: (B, R, C) clamp open-circuit voltage V_ref A/(1+A) minus the bit-line node voltage
        (V, >= 0 for positive currents); the fast-mode bias is that clamp voltage.
    sl_drop: (B, R, C) source-line node voltage minus the source-line supply (V, the IR rise).
    iterations: (B,) Newton steps (cell I-V evaluations) each vector needed.
    inner_iterations: total linear (wire-network) sweeps of the batch.
    """

    column_currents: np.ndarray
    ideal_column_currents: np.ndarray
    cell_currents: np.ndarray
    bl_node_v: np.ndarray
    sl_node_v: np.ndarray
    bl_drop: np.ndarray
    sl_drop: np.ndarray
    iterations: np.ndarray
    inner_iterations: int


@dataclass
class IrDropMap:
    """Per-cell current error of circuit mode against fast mode, split by line.

    cell_error_a = I(V_D, V_S) - I(V_clamp, V_SL) = bl_part_a + sl_part_a exactly; each part is
    the average of the two orders of applying the drops (a Shapley split), (B, R, C) in A.
    """

    cell_error_a: np.ndarray
    bl_part_a: np.ndarray
    sl_part_a: np.ndarray
    ideal_cell_currents: np.ndarray
    result: CircuitResult


# ------------------------------------------------------------------------- solver ----
def _check_finite(name: str, a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        raise InputError(name, a[~np.isfinite(a)].ravel()[0], "finite values (no NaN or inf)")


def _anderson_mix(x, gx, hist_dx, hist_df, depth):
    """One Anderson (type II) step per batch row for the map x -> gx. Arrays (B, n)."""
    f = gx - x
    if depth == 0 or not hist_df:
        return gx, f
    df = np.stack(hist_df, axis=1)  # (B, m, n)
    dg = np.stack(hist_dx, axis=1)
    a = np.einsum("bmn,bkn->bmk", df, df)
    rhs = np.einsum("bmn,bn->bm", df, f)
    m = a.shape[1]
    reg = 1e-12 * np.maximum(np.einsum("bmm->b", a), 1e-300)[:, None, None] * np.eye(m)
    gamma = np.linalg.solve(a + reg, rhs[..., None])[..., 0]
    x_new = gx - np.einsum("bmn,bm->bn", dg, gamma)
    if not np.all(np.isfinite(x_new)):
        return gx, f
    return x_new, f


class CircuitSolver:
    """Circuit mode of one tile: the V_th map, its bias, and its factorised wire network.

    Build once per tile (the factorisation is shared by every vector), then call
    :meth:`solve` with batches of word-line voltages (B, R).
    """

    def __init__(self, vth_map, cfg, model=None, *, wires: WireConfig | None = None,
                 n=None, beta=None, dibl_eta=None):
        from norsim.device.iv import cell_model

        vth = np.asarray(vth_map, dtype=np.float64)
        if vth.ndim != 2:
            raise InputError("vth_map", f"shape {vth.shape}", "a 2-D (rows, cols) array")
        _check_finite("vth_map", vth)
        self.vth = vth
        self.rows, self.cols = vth.shape
        self.cfg = cfg
        self.wires = (cfg.array.wires if wires is None else wires)
        self.wires.validate("array.wires.")
        read = cfg.device.read
        self.model = model if model is not None else cell_model(cfg.device.cell, read.temperature_k)
        self.v_cg = float(read.v_cg_read_v)
        self.v_bl = clamp_voltage(cfg)  # the clamp's open-circuit voltage
        self.v_sl = float(read.v_sl_read_v)
        self.extra = {k: v for k, v in (("n", n), ("beta", beta), ("dibl_eta", dibl_eta))
                      if v is not None}
        self.network = wire_network(self.rows, self.cols, self.wires, clamp_gain_of(cfg))

    # -------------------------------------------------------------- cell evaluation ----
    def _iv(self, v_wl, v_d, v_s, x0=None):
        """(I, dI/dV_D, dI/dV_S, V_internal or None), broadcast over the arguments."""
        if self.model.cell_type == "split_gate":
            return split_gate_warm(self.model, v_wl, self.v_cg, v_d, v_s, self.vth, x0,
                                   **self.extra)
        i, gd, gs = self.model.current(v_wl, self.v_cg, v_d, v_s, self.vth, derivatives=True,
                                       **self.extra)
        return i, gd, gs, None

    def _check_wl(self, wl):
        wl = np.asarray(wl, dtype=np.float64)
        if wl.ndim == 1:
            wl = wl[None, :]
        if wl.ndim != 2 or wl.shape[1] != self.rows:
            raise InputError("wl_voltages_batch", f"shape {np.shape(wl)}",
                             f"a (batch, {self.rows}) array of word-line voltages")
        _check_finite("wl_voltages_batch", wl)
        return wl

    def nominal(self, wl):
        """(I, dI/dV_D, dI/dV_S, V_internal) at the nominal bias (no wires), each (B, R, C).

        Word-line levels repeat across a batch (two for bit-serial inputs), so the I-V is
        evaluated once per distinct level and gathered.
        """
        wl = self._check_wl(wl)
        levels, inv = np.unique(wl, return_inverse=True)
        inv = inv.reshape(wl.shape)
        shape = (wl.shape[0], self.rows, self.cols)
        if levels.size <= 16:
            tab = self._iv(levels[:, None, None], self.v_bl, self.v_sl)
            rr = np.arange(self.rows)[None, :]
            full = (levels.size, self.rows, self.cols)
            return tuple(None if t is None else np.broadcast_to(t, full)[inv, rr, :] for t in tab)
        out = self._iv(wl[:, :, None], self.v_bl, self.v_sl)
        return tuple(None if t is None else np.broadcast_to(t, shape).copy() for t in out)

    # ------------------------------------------------------------------------ solve ----
    def _inner(self, i_k, a_k, b_k, lin, u_k, v_k):
        """Solve the local-model fixed point x = P A i_model(x) for one Newton step.

        i_model = i_k exp(a (u_k - u) + b (v - v_k)) (exact for an exponential cell), with
        a = gd / i_k, b = gs / i_k (V_D falls by u - u_k, V_S rises by v - v_k); cells with
        i_k <= 0 use the linear model i_k + gd (u_k - u) + gs (v - v_k) (``lin``).
        Anderson-accelerated; every sweep applies the factorised wire network.
        """
        net, w = self.network, self.wires
        nb, r, c = i_k.shape
        x = np.stack([u_k, v_k], axis=1).reshape(nb, -1)
        hist_dx, hist_df = [], []
        prev_x = prev_g = None
        res = np.full(nb, np.inf)
        sweeps = 0
        gd_l, gs_l = lin
        for _ in range(w.solver_max_iter):
            xx = x.reshape(nb, 2, r, c)
            du = u_k - xx[:, 0]
            dv = xx[:, 1] - v_k
            arg = a_k * du + b_k * dv
            i_m = np.where(i_k > 0.0, i_k * np.exp(np.minimum(arg, 50.0)),
                           i_k + gd_l * du + gs_l * dv)
            gx = np.concatenate([net.bl_drop(i_m).reshape(nb, -1),
                                 net.sl_rise(i_m).reshape(nb, -1)], axis=1)
            sweeps += 1
            if prev_x is not None and w.anderson_depth > 0:
                hist_dx.append(gx - prev_g)
                hist_df.append((gx - x) - (prev_g - prev_x))
                if len(hist_dx) > w.anderson_depth:
                    hist_dx.pop(0)
                    hist_df.pop(0)
            prev_x, prev_g = x, gx
            x_new, f = _anderson_mix(x, gx, hist_dx, hist_df, w.anderson_depth)
            res = np.abs(f).max(axis=1)
            if not np.all(np.isfinite(res)) or not np.all(np.isfinite(x_new)):
                raise ConvergenceError(
                    "circuit solve diverged (non-finite node voltages): the IR drop is too "
                    "large for these wire resistances and cell currents (reduce "
                    "array.wires resistances or cell currents)")
            x = x_new
            if np.all(res <= 0.1 * w.solver_tol_v):
                break
        xx = x.reshape(nb, 2, r, c)
        du = u_k - xx[:, 0]
        dv = xx[:, 1] - v_k
        i_m = np.where(i_k > 0.0, i_k * np.exp(np.minimum(a_k * du + b_k * dv, 50.0)),
                       i_k + gd_l * du + gs_l * dv)
        return xx[:, 0].copy(), xx[:, 1].copy(), i_m, res, sweeps

    def solve(self, wl_voltages_batch) -> CircuitResult:
        """Solve the tile for a batch of word-line voltage vectors (B, R) or one (R,).

        Newton-like iteration on the node drops: each step evaluates the exact cell I-V (and
        derivatives) at the current drops and solves the local exponential model of every
        cell together with the wire network (``_inner``). A vector has converged when its
        step delta satisfies delta^2 / U_T <= solver_tol_v (the error of the next iterate of
        this quadratically convergent iteration) and the inner residual is below tolerance.
        """
        wl = self._check_wl(wl_voltages_batch)
        w = self.wires
        net = self.network
        nb, r, c = wl.shape[0], self.rows, self.cols
        tol = w.solver_tol_v
        u_t = self.model.fg.u_t
        i_nom, gd_n, gs_n, x_n = self.nominal(wl)
        ideal_cols = i_nom.sum(axis=1)
        i_k = np.array(i_nom)
        gd = np.array(gd_n)
        gs = np.array(gs_n)
        xint = None if x_n is None else np.array(x_n)
        u = np.zeros((nb, r, c))
        v = np.zeros((nb, r, c))
        i_fin = np.array(i_nom)
        iterations = np.zeros(nb, dtype=np.int64)
        done = np.zeros(nb, dtype=bool)
        inner_total = 0
        step = np.full(nb, np.inf)
        for outer in range(1, w.solver_max_iter + 1):
            act = np.flatnonzero(~done)
            ik, gdk, gsk = i_k[act], gd[act], gs[act]
            pos = ik > 0.0
            safe = np.where(pos, ik, 1.0)
            # d ln I / dV_D = gd / I (V_D = V_clamp - u), d ln I / dV_S = gs / I (V_S = V_SL + v)
            a_k = np.where(pos, gdk / safe, 0.0)
            b_k = np.where(pos, gsk / safe, 0.0)
            u_new, v_new, i_m, res, sweeps = self._inner(ik, a_k, b_k, (gdk, gsk),
                                                         u[act], v[act])
            inner_total += sweeps
            st = np.maximum(np.abs(u_new - u[act]).max(axis=(1, 2)),
                            np.abs(v_new - v[act]).max(axis=(1, 2)))
            step[act] = st
            u[act], v[act], i_fin[act] = u_new, v_new, i_m
            conv = (st * st / u_t <= tol) & (res <= tol)
            iterations[act[conv]] = outer
            done[act[conv]] = True
            if done.all():
                break
            act = np.flatnonzero(~done)
            wl3 = wl[act, :, None]
            out = self._iv(wl3, self.v_bl - u[act], self.v_sl + v[act],
                           None if xint is None else xint[act])
            i_k[act], gd[act], gs[act] = out[0], out[1], out[2]
            if xint is not None:
                xint[act] = out[3]
        else:
            bad = int(np.flatnonzero(~done)[0])
            raise ConvergenceError(
                f"circuit solve did not converge in {w.solver_max_iter} Newton steps "
                f"(array.wires.solver_max_iter): vector {bad} still moves "
                f"{float(step[bad]):.3g} V per step (tolerance {tol:g} V); the IR drop is too "
                "large for these wire resistances and cell currents, or raise solver_max_iter")
        # KCL: the clamp delivers the column's sum of cell currents. (Reading it as
        # g_terminal * drop would amplify the solver tolerance by g_terminal.)
        col_cur = i_fin.sum(axis=1)
        return CircuitResult(column_currents=col_cur, ideal_column_currents=ideal_cols,
                             cell_currents=i_fin, bl_node_v=self.v_bl - u,
                             sl_node_v=self.v_sl + v, bl_drop=u, sl_drop=v,
                             iterations=iterations, inner_iterations=inner_total)

    # --------------------------------------------------------------- IR-drop split ----
    def ir_drop_map(self, wl_voltages_batch, result: CircuitResult | None = None) -> IrDropMap:
        wl = self._check_wl(wl_voltages_batch)
        res = self.solve(wl) if result is None else result
        wl3 = wl[:, :, None]
        vd, vs = res.bl_node_v, res.sl_node_v
        i_00 = self._iv(wl3, self.v_bl, self.v_sl)[0]
        i_d0 = self._iv(wl3, vd, self.v_sl)[0]
        i_0s = self._iv(wl3, self.v_bl, vs)[0]
        i_ds = self._iv(wl3, vd, vs)[0]
        bl = 0.5 * ((i_d0 - i_00) + (i_ds - i_0s))
        sl = 0.5 * ((i_0s - i_00) + (i_ds - i_d0))
        shape = (wl.shape[0], self.rows, self.cols)
        return IrDropMap(cell_error_a=np.broadcast_to(i_ds - i_00, shape).copy(),
                         bl_part_a=np.broadcast_to(bl, shape).copy(),
                         sl_part_a=np.broadcast_to(sl, shape).copy(),
                         ideal_cell_currents=np.broadcast_to(i_00, shape).copy(), result=res)


def solve_tile(vth_map, wl_voltages_batch, cfg, model=None, **kwargs) -> CircuitResult:
    """Circuit-mode DC solution of one tile for a batch of word-line voltage vectors.

    ``vth_map`` (R, C) control-gate-referred V_th at the reference temperature;
    ``wl_voltages_batch`` (B, R) word-line voltages (select gate of a split-gate cell, control
    gate of a stacked-gate cell); ``cfg`` a :class:`~norsim.config.sim.SimConfig` (read bias
    from ``cfg.device.read``, wires from ``cfg.array.wires``); ``model`` a CellModel (default:
    ``cell_model(cfg.device.cell, cfg.device.read.temperature_k)``). Keyword ``wires``
    overrides ``cfg.array.wires``; ``n``, ``beta``, ``dibl_eta`` pass per-cell maps.
    """
    return CircuitSolver(vth_map, cfg, model, **kwargs).solve(wl_voltages_batch)


def ir_drop_map(vth_map, wl_voltages_batch, cfg, model=None, **kwargs) -> IrDropMap:
    """Per-cell current error of circuit mode vs fast mode, split into bit-line and
    source-line parts (see :class:`IrDropMap`); average over axis 0 for a map."""
    return CircuitSolver(vth_map, cfg, model, **kwargs).ir_drop_map(wl_voltages_batch)
