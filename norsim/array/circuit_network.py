"""Circuit mode's linear wire network of one tile geometry: bit-line and source-line chains,
the shared source-line straps (strap nodes appended to ``G_sl``; their exact modal
elimination for the kernels), each chain factorised once (:func:`wire_network`, cached
per geometry and wire configuration), and the clamp's Thevenin output. See
docs/physics.md "Circuit mode".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from norsim.array.circuit_config import WireConfig
from norsim.array.circuit_linear import (FactorSolver, chain_coefficients, no_strap,
                                         strap_coefficients, strap_correct)
from norsim.array.circuit_newton_lines import line_data
from norsim.errors import InputError

__all__ = ["WireNetwork", "wire_network", "clamp_voltage", "clamp_gain_of"]


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
