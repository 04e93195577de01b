"""Circuit mode's results (:class:`CircuitResult`, :class:`IrDropMap`) and the small helpers
the solve paths share (batch rows in and out, finite-input checks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from norsim.errors import InputError


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


def _check_finite(name: str, a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        raise InputError(name, a[~np.isfinite(a)].ravel()[0], "finite values (no NaN or inf)")


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
