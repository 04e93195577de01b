"""Wire resistance at network scale: per-cell effective current factors.

Circuit mode (``norsim.array.circuit``) is too slow to run for every vector of a data set, so
each tile gets a static correction: on ``mapping.ir_drop_vectors`` sampled calibration
bit-planes (the word-line patterns the tile really sees), the cell currents with wire
resistance are computed — by the linearised surrogate (``'surrogate'``) or by full circuit
solves (``'circuit'``) — and each cell's current factor ``sum_b I_b / sum_b I0_b`` (over the
vectors where it conducts) multiplies its fast-mode current. What a static factor cannot
capture is the input-dependence of the drop; ``Tile.ir_drop_error_rel`` reports the
surrogate's error against circuit mode on the sampled vectors (for ``'surrogate'``).
"""

from __future__ import annotations

import numpy as np

from norsim.array.nor_array import NorArray


def _wordline_patterns(array: NorArray, x_codes: np.ndarray, n_vectors: int,
                       rng: np.random.Generator) -> np.ndarray:
    """Word-line voltages (B, R) of sampled bit-serial cycles of calibration inputs."""
    cfg = array.cfg
    read = cfg.device.read
    v_on = read.v_select_on_v if cfg.device.cell.cell_type == "split_gate" else read.v_cg_read_v
    nbits = array.nbits_in if array.bitserial else 1
    pick = rng.integers(0, x_codes.shape[0], size=n_vectors)
    bit = rng.integers(0, nbits, size=n_vectors)
    x = np.asarray(x_codes)[pick]
    on = ((x >> bit[:, None]) & 1) if array.bitserial else (x > 0)
    return np.where(on.astype(bool), v_on, read.v_select_off_v)


def apply_ir_drop(tile, x_codes: np.ndarray, mode: str, n_vectors: int,
                  rng: np.random.Generator) -> None:
    """Rebuild ``tile.array`` with IR-drop current factors derived from ``x_codes``."""
    from norsim.array.circuit import ir_drop_map
    from norsim.array.surrogate import IrDropSurrogate

    arr = tile.array
    wl = _wordline_patterns(arr, x_codes, n_vectors, rng)
    extra = {}
    var = tile.variation
    if var is not None:
        model = arr.cell.model
        extra = var.iv_kwargs(model)
    if mode == "surrogate":
        sur = IrDropSurrogate(arr.vth, arr.cfg, **extra)
        i, i0 = sur.cell_currents(wl)
        tile.ir_drop_error_rel = sur.validate(wl[: min(4, len(wl))]).max_error_rel
    else:
        drop = ir_drop_map(arr.vth, wl, arr.cfg, **extra)
        i, i0 = drop.result.cell_currents, drop.ideal_cell_currents
    den = i0.sum(axis=0)
    factor = np.where(den > 0, i.sum(axis=0) / np.where(den > 0, den, 1.0), 1.0)
    tile.array = NorArray(arr.cfg, arr.layout, np.array(arr.vth), rng,
                          current_scale=arr.current_scale * factor)

