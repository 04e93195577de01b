"""IR-drop surrogate: a cheap per-tile correction of fast-mode column currents.

Circuit mode re-evaluates the cell I-V at the solved node voltages. The surrogate keeps only
what it can precompute per tile: each cell's current and its sensitivities
a = d ln I / dV_D, b = d ln I / dV_S at the nominal bias (one table per word-line level, so
two for bit-serial inputs), and the factorised wire network. For a batch of inputs it runs
``sweeps`` passes of the linearised-sensitivity fixed point

    I_cell = I_0 exp(-a u + b v),   u = G_bl^-1 I_cell,   v = G_sl^-1 S I_cell

starting from the ideal currents (sweep 1 is the first-order IR drop of the ideal currents,
later sweeps add the feedback of the lowered currents on the drops). No cell I-V is evaluated
per vector; the error against circuit mode is second order in the drop (the curvature of
ln I), reported by :meth:`IrDropSurrogate.validate` on sampled vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from norsim.array.circuit import CircuitSolver
from norsim.array.circuit_kernels import local_model
from norsim.errors import InputError


@dataclass
class SurrogateReport:
    """Surrogate and fast mode against circuit mode on sampled vectors (fractions of the
    largest circuit-mode column current)."""

    n_vectors: int
    max_error_rel: float
    rms_error_rel: float
    fast_mode_max_error_rel: float
    fast_mode_rms_error_rel: float

    @property
    def improvement(self) -> float:
        return self.fast_mode_max_error_rel / max(self.max_error_rel, 1e-300)

    def to_dict(self) -> dict:
        return {"n_vectors": self.n_vectors, "max_error_rel": self.max_error_rel,
                "rms_error_rel": self.rms_error_rel,
                "fast_mode_max_error_rel": self.fast_mode_max_error_rel,
                "fast_mode_rms_error_rel": self.fast_mode_rms_error_rel,
                "improvement": self.improvement}


class IrDropSurrogate:
    """Per-tile IR-drop correction (linearised sensitivity, no per-vector cell I-V).

    ``column_currents(wl)`` -> (B, C) estimated circuit-mode column currents;
    ``correct(fast_cols, wl)`` adds the predicted IR-drop change to column currents computed
    elsewhere (e.g. the array's fast mode with its noise); ``validate(wl)`` measures the
    error against circuit mode.
    """

    def __init__(self, vth_map, cfg, model=None, *, sweeps: int = 3, **kwargs):
        if isinstance(sweeps, bool) or not isinstance(sweeps, (int, np.integer)) or sweeps < 1:
            raise InputError("sweeps", sweeps, "a whole number >= 1")
        self.solver = CircuitSolver(vth_map, cfg, model, **kwargs)
        self.sweeps = int(sweeps)
        self._tables: dict[float, tuple] = {}

    def _nominal_t(self, wl: np.ndarray):
        """Per-level tables (I_0, a, b) gathered to (R, C, B); cached across calls."""
        s = self.solver
        levels, inv = np.unique(wl, return_inverse=True)
        inv = inv.reshape(wl.shape)
        missing = [float(v) for v in levels if float(v) not in self._tables]
        if missing:
            i, gd, gs = s._iv_t(np.broadcast_to(np.array(missing), (s.rows, len(missing))),
                                s.v_bl, s.v_sl)[:3]
            for k, v in enumerate(missing):
                pos = i[..., k] > 0
                safe = np.where(pos, i[..., k], 1.0)
                self._tables[v] = (np.array(i[..., k]), np.where(pos, gd[..., k] / safe, 0.0),
                                   np.where(pos, gs[..., k] / safe, 0.0))
        idx = np.broadcast_to(inv.T[:, None, :], (s.rows, s.cols, wl.shape[0]))
        out = []
        for j in range(3):
            tab = np.stack([self._tables[float(v)][j] for v in levels], axis=-1)
            out.append(np.ascontiguousarray(np.take_along_axis(tab, idx, axis=2)))
        return tuple(out)

    def _cell_currents_t(self, wl):
        s = self.solver
        i0, a, b = self._nominal_t(wl)
        net = s.network
        zero = np.zeros_like(i0)
        i = i0
        for _ in range(self.sweeps):
            u = net.bl_drop_t(i)
            v = net.sl_rise_t(i)
            i = local_model(i0, a, b, zero, zero, u, v, zero, zero)
        return i, i0

    def cell_currents(self, wl_voltages_batch) -> tuple[np.ndarray, np.ndarray]:
        """(surrogate cell currents, ideal cell currents), each (B, R, C)."""
        wl = self.solver._check_wl(wl_voltages_batch)
        i, i0 = self._cell_currents_t(wl)
        return np.moveaxis(i, -1, 0), np.moveaxis(i0, -1, 0)

    def column_currents(self, wl_voltages_batch) -> np.ndarray:
        """Estimated circuit-mode column currents (B, C)."""
        wl = self.solver._check_wl(wl_voltages_batch)
        return self._cell_currents_t(wl)[0].sum(axis=0).T

    def correct(self, fast_column_currents, wl_voltages_batch) -> np.ndarray:
        """``fast_column_currents`` (B, C) plus the surrogate's IR-drop change per column."""
        fast = np.asarray(fast_column_currents, dtype=np.float64)
        i, i0 = self._cell_currents_t(self.solver._check_wl(wl_voltages_batch))
        delta = (i - i0).sum(axis=0).T
        if fast.shape != delta.shape:
            raise InputError("fast_column_currents", f"shape {fast.shape}",
                             f"shape {delta.shape} (batch, cols)")
        return fast + delta

    def validate(self, wl_sample) -> SurrogateReport:
        """Error of the surrogate (and of uncorrected fast mode) against circuit mode."""
        res = self.solver.solve(wl_sample)
        sur = self.column_currents(wl_sample)
        ref = res.column_currents
        scale = np.abs(ref).max()
        e_s = (sur - ref) / scale
        e_f = (res.ideal_column_currents - ref) / scale
        return SurrogateReport(int(ref.shape[0]), float(np.abs(e_s).max()),
                               float(np.sqrt(np.mean(e_s ** 2))), float(np.abs(e_f).max()),
                               float(np.sqrt(np.mean(e_f ** 2))))
