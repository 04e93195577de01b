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

A Newton-like iteration on it: each outer step evaluates the cell I-V and its derivatives
(dI/dV_D, dI/dV_S) once, and the step's local model (each cell's ln I linear in its terminal
voltages) is solved by fixed-point sweeps through the factorised wire network, so no matrix
is refactorised per vector. By default one numba kernel runs this per vector (every bit line
is the same tridiagonal chain, and so is every source line: Thomas sweeps), stops the sweeps
with a certified contraction bound and evaluates the cells with a vectorised loop; vectors
it cannot certify go to a per-vector Newton kernel (:mod:`norsim.array.circuit_newton`: each
local model solved by Newton with exact line and strap solves; it goes first where the
tile's loop gain is high, i.e. heavy IR drop), and what that does not solve to the reference
path, the same iteration batched over vectors in NumPy (batch-last arrays (R, C, B),
Anderson mixing where sweeps do not contract).
Modules: :mod:`~norsim.array.circuit_network` (the wire network),
:mod:`~norsim.array.circuit_result` (results), :mod:`~norsim.array.circuit_reference` (the
reference path and sparse-LU Newton), :mod:`~norsim.array.circuit_krylov` (Newton-Krylov),
kernels in :mod:`~norsim.array.circuit_kernels`; this module keeps the solver and its
dispatch and re-exports the public names. Non-convergence raises
:class:`~norsim.errors.ConvergenceError`. Results are (B, R, C). See docs/physics.md
"Circuit mode".
"""

from __future__ import annotations

import numpy as np

from norsim.array.circuit_batch import _solve_batch_kernel, tile_ingredients
from norsim.array.circuit_config import WireConfig
from norsim.array.circuit_iv import (INTERNAL_NODE_STEP_V, gather_levels, nominal_tables,
                                     split_gate_warm, tile_iv)
from norsim.array.circuit_krylov import KrylovPath
from norsim.array.circuit_network import (WireNetwork, _wire_key, clamp_gain_of,  # noqa: F401
                                          clamp_voltage, wire_network)
from norsim.array.circuit_newton import newton_batch
from norsim.array.circuit_reference import ReferencePath
from norsim.array.circuit_result import CircuitResult, IrDropMap, _check_finite, _put
from norsim.errors import ConfigError, InputError

__all__ = ["WireNetwork", "CircuitSolver", "CircuitResult", "IrDropMap", "solve_tile",
           "ir_drop_map", "wire_network", "clamp_voltage", "clamp_gain_of"]


#: the tile's fixed-point loop gain (the default kernel's contraction bound at the nominal
#: bias, max(A_u + B_u, A_v + B_v)) above which the per-vector Newton kernel goes first:
#: measured crossover of the two kernels' time per vector at 128 x 128 (0.06: default kernel
#: 1.4 vs Newton 2.1 ms; 0.28: 2.8 vs 2.4 ms; 1.1 (wires x20): 5.3 vs 3.2 ms CPU)
NEWTON_LOOP_GAIN = 0.25


def _threads() -> int:
    """Threads the Newton kernel splits a batch over: numba's thread count
    (NUMBA_NUM_THREADS), which fixes nothing in the result (vectors are independent)."""
    import numba

    return int(numba.get_num_threads())


class CircuitSolver(ReferencePath, KrylovPath):
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
        for f in ("v_cg_read_v", "v_bl_read_v", "v_sl_read_v", "temperature_k"):
            v = getattr(read, f)
            if not np.isfinite(v):
                raise ConfigError(f"device.read.{f}", v, "a finite value")
        array_cols = getattr(cfg.array, "cols", None)
        if (self.wires.sl_layout == "rows" and array_cols is not None
                and self.wires.strap_pitch_cols > array_cols):
            raise ConfigError("array.wires.strap_pitch_cols", self.wires.strap_pitch_cols,
                              f"at most the array's {array_cols} columns (array.cols)")
        self.model = model if model is not None else cell_model(cfg.device.cell, read.temperature_k)
        self.v_cg = float(read.v_cg_read_v)
        self.v_bl = clamp_voltage(cfg)  # the clamp's open-circuit voltage
        self.v_sl = float(read.v_sl_read_v)
        self.extra = {}
        for k, v in (("n", n), ("beta", beta), ("dibl_eta", dibl_eta)):
            if v is not None:
                a = np.asarray(v, dtype=np.float64)
                if a.shape not in ((), vth.shape):
                    raise InputError(k, f"shape {a.shape}", f"a scalar or a {vth.shape} map")
                _check_finite(k, a)
                self.extra[k] = a
        self.network = wire_network(self.rows, self.cols, self.wires, clamp_gain_of(cfg))
        self._tables: dict[float, tuple] = {}  # word-line level -> nominal-bias I-V (R, C)
        self._stacked: dict[tuple, tuple] = {}  # level set -> (L, R, C) kernel tables
        #: per-vector diagnostics of the last 'auto' solve: sweeps, kernel status (0: solved
        #: and certified by the kernel, 1: handed to the reference path), reference count
        self.last_stats: dict | None = None
        fg = self.model.fg
        shape = vth.shape

        def cell_map(key, default):
            a = self.extra.get(key, default)
            return np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype=np.float64), shape))

        # per-cell parameters as the kernels take them (V_th at the read temperature)
        self._cell_maps = (np.ascontiguousarray(vth + fg.dvth), cell_map("n", fg.n),
                           cell_map("beta", fg.beta), cell_map("dibl_eta", fg.dibl_eta))

    # -------------------------------------------------------------- cell evaluation ----
    def _iv(self, v_wl, v_d, v_s, x0=None):
        """(I, dI/dV_D, dI/dV_S, V_x, dV_x/dV_D, dV_x/dV_S) broadcast over the arguments;
        the last three (the split-gate internal node) are None for a stacked-gate cell."""
        if self.model.cell_type == "split_gate":
            return split_gate_warm(self.model, v_wl, self.v_cg, v_d, v_s, self.vth, x0,
                                   **self.extra)
        i, gd, gs = self.model.current(v_wl, self.v_cg, v_d, v_s, self.vth, derivatives=True,
                                       **self.extra)
        return i, gd, gs, None, None, None

    def _iv_t(self, wl_rb, v_d, v_s, x0=None):
        """:meth:`_iv` for the tile in batch-last layout: wl (R, B), voltages (R, C, B)."""
        return tile_iv(self.model, wl_rb, self.v_cg, v_d, v_s, self.vth, x0, **self.extra)

    def _check_wl(self, wl):
        wl = np.asarray(wl, dtype=np.float64)
        if wl.ndim == 1:
            wl = wl[None, :]
        if wl.ndim != 2 or wl.shape[1] != self.rows:
            raise InputError("wl_voltages_batch", f"shape {np.shape(wl)}",
                             f"a (batch, {self.rows}) array of word-line voltages")
        _check_finite("wl_voltages_batch", wl)
        return wl

    def _fill_tables(self, levels):
        """Nominal-bias I-V of every cell for the word-line levels not yet tabulated (the
        tile's per-level tables are kept for later batches)."""
        missing = [float(v) for v in levels if float(v) not in self._tables]
        if missing:
            tab = nominal_tables(self.model, missing, self.v_cg, self.v_bl, self.v_sl,
                                 self.vth, **self.extra)
            for k, lv in enumerate(missing):
                self._tables[lv] = tuple(None if t is None else np.array(t[k]) for t in tab)

    def _nominal_t(self, wl):
        """:meth:`_iv_t` at the nominal bias (no wires), gathered to (R, C, B).

        Word-line levels repeat across a batch (two for bit-serial inputs), so the I-V is
        evaluated once per distinct level.
        """
        levels, inv = np.unique(wl, return_inverse=True)
        inv = inv.reshape(wl.shape)
        if levels.size > 16:
            return self._iv_t(np.ascontiguousarray(wl.T), self.v_bl, self.v_sl)
        self._fill_tables(levels)
        out = []
        for j in range(6):
            if self._tables[float(levels[0])][j] is None:
                out.append(None)
                continue
            stack = np.stack([self._tables[float(v)][j] for v in levels], axis=-1)
            out.append(gather_levels(stack, inv))
        return tuple(out)

    def nominal(self, wl):
        """Cell (I, dI/dV_D, dI/dV_S) at the nominal bias (fast mode), each (B, R, C)."""
        wl = self._check_wl(wl)
        return tuple(np.moveaxis(t, -1, 0) for t in self._nominal_t(wl)[:3])

    # ------------------------------------------------------------------------ solve ----
    def solve(self, wl_voltages_batch, method: str = "auto") -> CircuitResult:
        """Solve the tile for a batch of word-line voltage vectors (B, R) or one (R,).

        Newton-like iteration on the node drops: each step linearises every cell's ln I at
        the current drops (exact I-V and derivatives; the first step uses the nominal-bias
        table) and solves that local exponential model with the wire network. A vector has
        converged when its step delta satisfies delta^2 / U_T <= solver_tol_v (the size of
        the next step of this quadratically convergent iteration) and the local model is
        solved to within solver_tol_v.

        ``method`` 'auto' (default): each vector is iterated on its own inside one numba
        kernel (:func:`~norsim.array.circuit_kernels._solve_batch_kernel`), its sweeps
        stopped by a certified contraction bound; a vector it cannot certify (loop gain near
        or above 1, non-finite values, iteration limits) is handed to the reference path.
        Where the tile's loop gain exceeds ``NEWTON_LOOP_GAIN`` (heavy IR drop), or the
        kernel hands a vector over, the per-vector Newton kernel
        (:mod:`norsim.array.circuit_newton`: the same outer iteration, each local model
        solved by Newton with exact line solves) takes it; the reference path takes what
        that one does not solve. 'newton': the Newton kernel first for every tile.
        'reference': the batched NumPy iteration (sweeps stop on their update, Anderson
        mixing where they do not contract; always used when array.wires.anderson_depth > 0).
        """
        if method not in ("auto", "reference", "newton"):
            raise InputError("method", method, "'auto', 'newton' or 'reference'")
        wl = self._check_wl(wl_voltages_batch)
        self.last_stats = None
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is detected and raised
            if method == "reference" or self.wires.anderson_depth > 0:
                return self._solve_robust(wl)
            ing = self._level_tables(wl)[1]
            if method == "newton" or max(ing[0] + ing[1], ing[2] + ing[3]) > NEWTON_LOOP_GAIN:
                return self._solve_newton_first(wl)
            return self._solve_fused(wl)

    def _solve_newton_first(self, wl) -> CircuitResult:
        """The per-vector Newton kernel; vectors it does not solve go to the reference
        path."""
        res, status = self._solve_newton_kernel(wl)
        bad = np.flatnonzero(status != 0)
        self.last_stats = {"sweeps": np.zeros(wl.shape[0], dtype=np.int64),
                           "status": status, "newton_vectors": int(wl.shape[0]),
                           "reference_vectors": int(bad.size)}
        if bad.size:
            _put(res, bad, self._solve_robust(np.ascontiguousarray(wl[bad]), index=bad))
        return res

    def _level_tables(self, wl):
        """Nominal-bias tables (L, R, C) of current, local-model slopes (d ln I / dV_D,
        d ln I / dV_S where I > 0, else dI/dV_D, dI/dV_S) and internal node (split gate), and
        each row's level per vector (B, R). Bit-serial batches have two levels; with more
        than 16 distinct levels each vector is its own level."""
        levels, inv = np.unique(wl, return_inverse=True)
        inv = np.ascontiguousarray(inv.reshape(wl.shape), dtype=np.int64)
        nb, r = wl.shape
        if levels.size > 16:
            raw = [None if t is None else np.ascontiguousarray(np.moveaxis(t, -1, 0))
                   for t in self._iv_t(np.ascontiguousarray(wl.T), self.v_bl, self.v_sl)]
            inv = np.ascontiguousarray(np.broadcast_to(np.arange(nb)[:, None], (nb, r)))
            tabs = self._slopes(raw)
            return tabs, self._ingredients(tabs), inv
        key = tuple(float(v) for v in levels)
        if key not in self._stacked:
            self._fill_tables(levels)
            raw = [None if self._tables[key[0]][j] is None else
                   np.stack([self._tables[v][j] for v in key]) for j in range(6)]
            if len(self._stacked) > 8:
                self._stacked.clear()
            tabs = self._slopes(raw)
            self._stacked[key] = (tabs, self._ingredients(tabs))
        return self._stacked[key] + (inv,)

    def _ingredients(self, tabs):
        net = self.network
        lines = self.rows if net.layout == "cols" else net.n_sl_lines
        return tile_ingredients(tabs[0], tabs[1], tabs[2], net.sl_line_of_row, lines,
                                net.bl_chain, net.sl_chain, net.sl_along_rows, net.strap)

    @staticmethod
    def _slopes(raw):
        i, gd, gs = raw[:3]
        pos = i > 0.0
        safe = np.where(pos, i, 1.0)
        a = np.ascontiguousarray(np.where(pos, gd / safe, gd))
        b = np.ascontiguousarray(np.where(pos, gs / safe, gs))
        return (np.ascontiguousarray(i), a, b) + tuple(raw[3:])

    def _solve_fused(self, wl) -> CircuitResult:
        w = self.wires
        nb, r, c = wl.shape[0], self.rows, self.cols
        net = self.network
        (t_i, t_a, t_b, t_x, t_xd, t_xs), ing, inv = self._level_tables(wl)
        split = t_x is not None
        dummy = np.zeros((1, 1, 1))
        if not split:
            t_x = t_xd = t_xs = dummy
        out = [np.empty((nb, r, c)) for _ in range(5)]  # i, u, V_D, v (per cell), V_S
        col, ideal = np.empty((nb, c)), np.empty((nb, c))
        iters = np.zeros(nb, dtype=np.int64)
        sweeps = np.zeros(nb, dtype=np.int64)
        status = np.ones(nb, dtype=np.int64)
        step = np.full(nb, np.inf)
        model, fg = self.model, self.model.fg
        sel = getattr(model, "sel", None)
        lines = r if net.layout == "cols" else net.n_sl_lines
        _solve_batch_kernel(
            split, wl, inv, t_i, t_a, t_b, t_x, t_xd, t_xs, tuple(float(x) for x in ing[:6]),
            ing[6], ing[7], *self._cell_maps,
            self.v_cg, self.v_bl, self.v_sl, float(fg.alpha_g), float(fg.u_t),
            float(model.select_vth + sel.dvth) if split else 0.0,
            float(sel.n) if split else 1.0, float(sel.beta) if split else 1.0,
            float(sel.dibl_eta) if split else 0.0, int(model.max_iter), INTERNAL_NODE_STEP_V,
            net.bl_chain[0], net.bl_chain[1], float(net.bl_chain[2]),
            net.sl_chain[0], net.sl_chain[1], float(net.sl_chain[2]), bool(net.sl_along_rows),
            np.ascontiguousarray(net.sl_line_of_row, dtype=np.int64), int(lines),
            float(w.solver_tol_v), int(w.solver_max_iter), net.strap,
            *out, col, ideal, iters, sweeps, status, step)
        self.last_stats = {"sweeps": sweeps, "status": status, "newton_vectors": 0,
                           "reference_vectors": int(np.count_nonzero(status))}
        i_c, u, v_d, v, v_s = out
        inner = int(sweeps[status == 0].max()) if np.any(status == 0) else 0
        bad = np.flatnonzero(status != 0)
        res = CircuitResult(column_currents=col, ideal_column_currents=ideal, cell_currents=i_c,
                            bl_node_v=v_d, sl_node_v=v_s, bl_drop=u, sl_drop=v,
                            iterations=iters, inner_iterations=inner)
        if bad.size:  # vectors the kernel could not certify: the Newton kernel, then the
            # reference iteration
            sub, st = self._solve_newton_kernel(np.ascontiguousarray(wl[bad]))
            _put(res, bad, sub, st == 0)
            bad = bad[st != 0]
            self.last_stats["newton_vectors"] = int(st.size)
            self.last_stats["reference_vectors"] = int(bad.size)
        if bad.size:
            _put(res, bad, self._solve_robust(np.ascontiguousarray(wl[bad]), index=bad))
        return res

    def _solve_newton_kernel(self, wl, gs_passes=1):
        """Every vector by the per-vector Newton kernel
        (:mod:`norsim.array.circuit_newton`); returns the CircuitResult (rows of vectors
        it did not solve are undefined) and each vector's status (0 solved, 1 not)."""
        w, net = self.wires, self.network
        nb, r, c = wl.shape[0], self.rows, self.cols
        (t_i, t_a, t_b, t_x, t_xd, t_xs), _, inv = self._level_tables(wl)
        split = t_x is not None
        if not split:
            t_x = t_xd = t_xs = np.zeros((1, 1, 1))
        out = [np.empty((nb, r, c)) for _ in range(5)]
        col, ideal = np.empty((nb, c)), np.empty((nb, c))
        iters = np.zeros(nb, dtype=np.int64)
        inner = np.zeros(nb, dtype=np.int64)
        status = np.ones(nb, dtype=np.int64)
        step = np.full(nb, np.inf)
        model, fg = self.model, self.model.fg
        sel = getattr(model, "sel", None)
        lines = r if net.layout == "cols" else net.n_sl_lines
        newton_batch(
            split, wl, inv, t_i, t_a, t_b, t_x, t_xd, t_xs, *self._cell_maps,
            self.v_cg, self.v_bl, self.v_sl, float(fg.alpha_g), float(fg.u_t),
            float(model.select_vth + sel.dvth) if split else 0.0,
            float(sel.n) if split else 1.0, float(sel.beta) if split else 1.0,
            float(sel.dibl_eta) if split else 0.0, int(model.max_iter), INTERNAL_NODE_STEP_V,
            *net.lines_raw, bool(net.sl_along_rows),
            np.ascontiguousarray(net.sl_line_of_row, dtype=np.int64), int(lines),
            float(w.solver_tol_v), int(w.solver_max_iter), int(gs_passes),
            *out, col, ideal, iters, inner, status, step, threads=_threads())
        i_c, u, v_d, v, v_s = out
        res = CircuitResult(column_currents=col, ideal_column_currents=ideal, cell_currents=i_c,
                            bl_node_v=v_d, sl_node_v=v_s, bl_drop=u, sl_drop=v,
                            iterations=iters,
                            inner_iterations=int(inner.max()) if nb else 0)
        return res, status

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
