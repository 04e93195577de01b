"""Wire resistance at network scale: per-cell effective current factors.

Circuit mode (``norsim.array.circuit``) is too slow to run for every vector of a data set, so
each tile gets a static correction: on ``mapping.ir_drop_vectors`` sampled calibration
bit-planes (the word-line patterns the tile really sees), the cell currents with wire
resistance are computed — by the linearised surrogate (``'surrogate'``) or by full circuit
solves (``'circuit'``) — and each cell's current factor ``sum_b I_b / sum_b I0_b`` (over the
vectors where it conducts) multiplies its fast-mode current. What a static factor cannot
capture is the input-dependence of the drop; ``Tile.ir_drop_error_rel`` reports the
surrogate's error against circuit mode on the sampled vectors (for ``'surrogate'``).

``'network'`` (issue 19) is per-vector instead: every bit-plane of every tile gets its own
IR drop from the modal first-order surrogate (``norsim.array.ir_modes``), inside the array's
matrix product, before the ADC; :func:`check_ir` solves ``mapping.ir_check_vectors``
bit-planes per tile over the run exactly in circuit mode (in the first batch that reaches
the tile: the plane of largest total current, then evenly spaced ones) and keeps the largest
error in ADC LSB (``Tile.ir_check``; :func:`ir_check_summary` over a chip).
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
    extra = {}
    var = tile.variation
    if var is not None:
        model = arr.cell.model
        extra = var.iv_kwargs(model)
    if mode == "network":
        _attach_network(tile, extra)
        return
    wl = _wordline_patterns(arr, x_codes, n_vectors, rng)
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



def _attach_network(tile, extra: dict) -> None:
    """The per-vector IR surrogate of ``tile.array`` (built once per tile)."""
    from norsim.array.ir_modes import IrCheck, ModalIrSurrogate
    from norsim.errors import ConfigError

    arr = tile.array
    if arr.ir_surrogate is not None:
        return
    if not arr.bitserial:
        raise ConfigError("mapping.ir_drop", "network",
                          "bit-serial inputs (array.encoding.input_scheme = 'bit_serial')")
    arr.ir_surrogate = ModalIrSurrogate(arr.vth, arr.cfg, arr.i_on, **extra)
    tile.ir_check = IrCheck()


def _largest_current_plane(x: np.ndarray, nbits: int, row_current: np.ndarray) -> tuple:
    """(row, bit) of the bit-plane of codes ``x`` with the largest total nominal current
    (``row_current`` per word line): the plane of largest IR drop, since every drop grows
    with every conducting cell's current."""
    best, arg = -1.0, (0, 0)
    step = 1 << 16
    for r0 in range(0, x.shape[0], step):
        xs = x[r0:r0 + step]
        for b in range(nbits):
            score = ((xs >> b) & 1).astype(np.float32) @ row_current
            k = int(np.argmax(score))
            if score[k] > best:
                best, arg = float(score[k]), (r0 + k, b)
    return arg


def check_ir(tile, x_codes: np.ndarray, n_check: int) -> None:
    """Count the bit-plane vectors of ``x_codes`` the tile ran, and while the tile has had
    fewer than ``n_check`` exact checks over the run, solve the missing ones exactly in
    circuit mode (one batch, one solver) against the surrogate: first the plane of largest
    total current (the tile's largest IR effect in this batch), then evenly spaced rows,
    bit planes in turn. No random draw, so the run's own noise is unchanged."""
    arr, chk = tile.array, tile.ir_check
    if chk is None or arr.ir_surrogate is None:
        return
    x = np.asarray(x_codes)
    chk.n_vectors += x.shape[0] * arr.nbits_in
    k = min(n_check - chk.n_checked, x.shape[0])
    if k <= 0:
        return
    sur = arr.ir_surrogate
    rows = np.linspace(0, x.shape[0] - 1, k).round().astype(np.int64)
    bits = (chk.n_checked + np.arange(k)) % arr.nbits_in
    if chk.n_checked == 0:
        rows[0], bits[0] = _largest_current_plane(x, arr.nbits_in,
                                                  sur.i_on_t.sum(axis=0, dtype=np.float64)
                                                  .astype(np.float32))
    planes = ((x[rows] >> bits[:, None]) & 1).astype(np.float32)
    exact = sur.exact_delta(planes)
    err = float(np.abs(sur.delta(planes) - exact).max())
    lsb = float(arr.adc.step_a) if arr.adc.step_a else float("inf")
    chk.add(err, lsb, float(np.abs(exact).max()), k)


def ir_check_summary(chip) -> dict | None:
    """The network IR surrogate's certified error over a chip's tiles (None without it)."""
    from norsim.array.ir_modes import IrCheck

    checks = [t.ir_check for t in chip.tiles() if getattr(t, "ir_check", None) is not None]
    if not checks:
        return None
    tot = IrCheck()
    for c in checks:
        tot.n_vectors += c.n_vectors
        tot.n_checked += c.n_checked
        tot.max_error_a = max(tot.max_error_a, c.max_error_a)
        tot.max_error_lsb = max(tot.max_error_lsb, c.max_error_lsb)
        tot.max_effect_lsb = max(tot.max_effect_lsb, c.max_effect_lsb)
    out = tot.to_dict()
    out["tiles"] = len(checks)
    return out
