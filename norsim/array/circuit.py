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
Non-convergence raises :class:`~norsim.errors.ConvergenceError`. Results are (B, R, C). See
docs/physics.md "Circuit mode".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from norsim.array.circuit_config import WireConfig
from norsim.array.circuit_kernels import (INTERNAL_NODE_STEP_V, FactorSolver, _solve_batch_kernel,
                                          chain_coefficients, gather_levels, local_model_lines,
                                          log_sensitivities, max_abs_diff_cols,
                                          no_strap, nominal_tables, split_gate_warm,
                                          strap_coefficients, strap_correct, tile_ingredients,
                                          tile_iv)
from norsim.array.circuit_newton import line_data, newton_batch
from norsim.errors import ConfigError, ConvergenceError, InputError

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
    off = np.full(max(n - 1, 0), -g_seg)
    if length > 1:
        k = np.arange(n)
        diag = diag + g_seg * ((k % length) > 0) + g_seg * ((k % length) < length - 1)
        off[(np.arange(n - 1) % length) == length - 1] = 0.0  # no segment between chains
    else:
        off[:] = 0.0
    return sp.diags([off, diag, off], [-1, 0, 1], shape=(n, n), format="csc")


@dataclass(frozen=True)
class WireNetwork:
    """The factorised wire network of one tile geometry (R rows x C columns).

    Bit-line node of cell (r, c): ``r * C + c``. Source-line node: ``line * C + c`` (layout
    'rows', ``line = sl_line_of_row[r]``) or ``r * C + c`` (layout 'cols'). Each chain is
    factorised (tridiagonal, no fill-in) in chain order and solved through
    :class:`~norsim.array.circuit_kernels.FactorSolver` in node order. All bit lines are the
    same chain, and so are all source lines: ``bl_chain`` / ``sl_chain`` hold that one
    chain's Thomas coefficients (:func:`~norsim.array.circuit_kernels.chain_coefficients`),
    which the per-vector solver applies.

    ``bl_drop(i)`` and ``sl_rise(i)`` apply ``G_bl^-1`` and ``G_sl^-1 S`` to cell currents
    (B, R, C) and return per-cell node drops (B, R, C); the ``*_t`` variants work in the
    solver's batch-last layout (R, C, B).
    """

    rows: int
    cols: int
    layout: str
    n_sl_lines: int
    sl_line_of_row: np.ndarray
    g_bl: sp.csc_matrix  # in chain order (column-major nodes)
    g_sl: sp.csc_matrix  # in chain order
    g_bl_terminal: float
    lu_bl: FactorSolver
    lu_sl: FactorSolver
    bl_chain: tuple  # chain_coefficients of every bit line (identical chains along rows)
    sl_chain: tuple  # ... of every source line
    sl_along_rows: bool  # source-line chains run along a row (layout 'rows')
    strap: tuple = None  # strap_coefficients of the shared straps (no_strap(): ideal taps)
    g_sl_full: sp.csc_matrix | None = None  # g_sl with the strap nodes appended (or None)
    lines_raw: tuple = None  # circuit_newton.line_data: raw chains and straps (Newton kernel)

    @property
    def n_nodes(self) -> int:
        return self.g_bl.shape[0] + self.g_sl.shape[0]

    def bl_drop_t(self, i_rcb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        r, c, b = i_rcb.shape
        o = None if out is None else out.reshape(r * c, b)
        return self.lu_bl.solve(i_rcb.reshape(r * c, b), out=o).reshape(r, c, b)

    def sl_line_rise_t(self, i_rcb: np.ndarray) -> np.ndarray:
        """Source-line node rise per line (lines, C, B) (layout 'cols': (R, C, B))."""
        r, c, b = i_rcb.shape
        if self.layout == "cols" or self.n_sl_lines == r:
            s = i_rcb
        elif r % 2 == 0:
            s = i_rcb.reshape(r // 2, 2, c, b).sum(axis=1)
        else:
            s = np.add.reduceat(i_rcb, np.arange(0, r, 2), axis=0)
        lines = s.shape[0]
        x = self.lu_sl.solve(np.ascontiguousarray(s).reshape(lines * c, b)).reshape(lines, c, b)
        if self.sl_along_rows:
            strap_correct(x, self.strap)
        return x

    def expand_rows_t(self, line_values: np.ndarray) -> np.ndarray:
        """Per-line values (lines, C, B) to per-cell values (R, C, B)."""
        if self.layout == "cols" or self.n_sl_lines == self.rows:
            return line_values
        return line_values[self.sl_line_of_row]

    def sl_rise_t(self, i_rcb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        lines = self.sl_line_rise_t(i_rcb)
        if self.layout == "cols" or self.n_sl_lines == self.rows:
            if out is None:
                return lines
            out[...] = lines
            return out
        return np.take(lines, self.sl_line_of_row, axis=0, out=out)

    def bl_drop(self, i_cells: np.ndarray) -> np.ndarray:
        t = np.ascontiguousarray(np.moveaxis(np.asarray(i_cells, dtype=np.float64), 0, -1))
        return np.moveaxis(self.bl_drop_t(t), -1, 0)

    def sl_rise(self, i_cells: np.ndarray) -> np.ndarray:
        t = np.ascontiguousarray(np.moveaxis(np.asarray(i_cells, dtype=np.float64), 0, -1))
        return np.moveaxis(self.sl_rise_t(t), -1, 0)


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


def _strap_matrix(g_sl, n_lines, cols, tap_cols, g_tap, g_pitch, g_pad_first, g_pad_last):
    """``g_sl`` (line nodes ``line * C + c``, taps to ground) with the strap nodes appended:
    strap node ``n_lines C + line J + j`` of tap ``j``; the taps go to it instead of ground;
    each strap a chain over the lines with its pads to the supply."""
    nj = tap_cols.size
    n_l = n_lines * cols
    n = n_l + n_lines * nj
    ln, j = np.meshgrid(np.arange(n_lines), np.arange(nj), indexing="ij")
    ln, j = ln.ravel(), j.ravel()
    line_node = ln * cols + tap_cols[j]
    strap_node = n_l + ln * nj + j
    rows_, cols_, vals = [line_node, strap_node, strap_node], [strap_node, line_node,
                                                               strap_node], \
        [np.full(ln.size, -g_tap), np.full(ln.size, -g_tap), np.full(ln.size, g_tap)]
    up = ln > 0
    a, b = strap_node[up], strap_node[up] - nj
    rows_ += [a, b, a, b]
    cols_ += [b, a, a, b]
    vals += [np.full(a.size, -g_pitch), np.full(a.size, -g_pitch), np.full(a.size, g_pitch),
             np.full(a.size, g_pitch)]
    first, last = strap_node[ln == 0], strap_node[ln == n_lines - 1]
    rows_ += [first, last]
    cols_ += [first, last]
    vals += [np.full(nj, g_pad_first), np.full(nj, g_pad_last)]
    extra = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows_), np.concatenate(cols_))),
                          shape=(n, n))
    base = sp.block_diag([g_sl, sp.csc_matrix((n - n_l, n - n_l))], format="csc")
    return (base + extra).tocsc()


@lru_cache(maxsize=32)
def _wire_network_cached(rows: int, cols: int, key: tuple, clamp_gain: float) -> WireNetwork:
    w = WireConfig.from_dict(dict(key))
    strap, g_sl_full = no_strap(), None
    strap_raw = (np.zeros(0, dtype=np.int64), 0.0, 0.0, 0.0, 0.0)
    r_clamp = 0.0 if np.isinf(clamp_gain) else w.r_clamp_out_ohm(clamp_gain)
    g_term = np.zeros(rows)
    g_term[0] = 1.0 / (w.r_bl_segment_ohm + w.r_bl_terminal_ohm + r_clamp)
    # chain order of the column-major chains: factor index c * R + r <-> node r * C + c
    col_chain_order = (np.arange(rows)[None, :] * cols + np.arange(cols)[:, None]).ravel()
    g_bl = _chain_matrix(cols, rows, 1.0 / w.r_bl_segment_ohm, g_term)
    bl_chain = chain_coefficients(1.0 / w.r_bl_segment_ohm, g_term)
    if w.sl_layout == "cols":
        g_drv = np.zeros(rows)
        g_drv[0] = 1.0 / (w.r_sl_segment_ohm + w.r_sl_driver_ohm)
        g_sl = _chain_matrix(cols, rows, 1.0 / w.r_sl_segment_ohm, g_drv)
        sl_chain = chain_coefficients(1.0 / w.r_sl_segment_ohm, g_drv)
        n_lines, line_of_row, sl_order = cols, np.arange(rows), col_chain_order
    else:
        n_lines = (rows + 1) // 2 if w.sl_pair_shared else rows
        line_of_row = np.arange(rows) // 2 if w.sl_pair_shared else np.arange(rows)
        taps = np.zeros(cols)
        tap = (np.arange(cols) % w.strap_pitch_cols == 0)
        tap[-1] = True
        g_tap = 1.0 / (w.r_sl_segment_ohm + w.r_strap_ohm)
        taps[tap] = g_tap
        g_sl = _chain_matrix(n_lines, cols, 1.0 / w.r_sl_segment_ohm, taps)
        sl_chain = chain_coefficients(1.0 / w.r_sl_segment_ohm, taps)
        sl_order = None  # row lines are already chains in node order
        if w.strap_model == "network":
            tap_cols = np.flatnonzero(tap)
            g_pad = 1.0 / w.r_strap_pad_ohm
            g_last = g_pad if w.strap_pads == "both" else 0.0
            strap = strap_coefficients(sl_chain, tap_cols, g_tap, n_lines,
                                       1.0 / w.r_strap_pitch_ohm, g_pad, g_last)
            g_sl_full = _strap_matrix(g_sl, n_lines, cols, tap_cols, g_tap,
                                      1.0 / w.r_strap_pitch_ohm, g_pad, g_last)
            strap_raw = (tap_cols, g_tap, 1.0 / w.r_strap_pitch_ohm, g_pad, g_last)
    # chains are tridiagonal in chain order: no fill-in, O(n) solves
    lu_bl = FactorSolver(splu(g_bl, permc_spec="NATURAL"), col_chain_order)
    lu_sl = FactorSolver(splu(g_sl, permc_spec="NATURAL"), sl_order)
    sl_len = rows if w.sl_layout == "cols" else cols
    lines_raw = line_data(g_bl.diagonal()[:rows], 1.0 / w.r_bl_segment_ohm,
                          g_sl.diagonal()[:sl_len], 1.0 / w.r_sl_segment_ohm, *strap_raw,
                          cols)
    return WireNetwork(rows, cols, w.sl_layout, n_lines, line_of_row, g_bl, g_sl,
                       float(g_term[0]), lu_bl, lu_sl, bl_chain, sl_chain,
                       w.sl_layout != "cols", strap, g_sl_full, lines_raw)


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
    iterations: (B,) Newton steps each vector needed (the first uses the nominal-bias I-V
        table; each further step evaluates every cell of the vector once).
    inner_iterations: sweeps through the wire network: the most any vector needed (the
        per-vector kernel), or the batch's lock-step sweeps (the reference path).
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


def _put(res: CircuitResult, idx, sub: CircuitResult, keep=None) -> None:
    """Rows ``idx`` of ``res`` from ``sub`` (where ``keep``, if given)."""
    if keep is not None:
        idx, rows = idx[keep], np.flatnonzero(keep)
    else:
        rows = slice(None)
    for f in ("column_currents", "cell_currents", "bl_node_v", "sl_node_v", "bl_drop",
              "sl_drop", "iterations"):
        getattr(res, f)[idx] = getattr(sub, f)[rows]
    res.inner_iterations = max(res.inner_iterations, sub.inner_iterations)


def _take(a, act, full):
    """Batch columns ``act`` of a batch-last array (a itself when all are active)."""
    return a if full else np.ascontiguousarray(a[..., act])


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

    # ------------------------------------------------ Newton-Krylov (heavy IR drop) ----
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
        from norsim.array.circuit_kernels import thomas_varying

        w, net, nk = self.wires, self.network, self._nk_setup()
        tol, u_t = w.solver_tol_v, self.model.fg.u_t
        nb, r, c = wl.shape[0], self.rows, self.cols
        lines, n_l = nk["lines"], nk["n_l"]
        n_u = r * c
        n_tot = n_u + n_l
        lr = net.sl_line_of_row if net.layout != "cols" else np.arange(r)
        gb, sl_apply = nk["gb"], nk["sl_apply"]
        rows_layout = net.layout != "cols"

        from norsim.array.circuit_kernels import eval_batch

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
