"""Run images through a mapped chip: calibration, batched inference, per-layer statistics.

The engine executes the QuantModel graph with the integer reference's own node functions
(pooling, residual adds, requantisation) and swaps only the conv/linear matrix products for
the tiles' analog estimates (rounded to integers after the digital shift-add and row-block
accumulation). So with ideal analog settings the chip equals the integer reference bit for bit.
Tiles are reached only through the chip's back-end (:mod:`norsim.backend`): ``mvm`` per tile
and batch, ``calibrate`` on the calibration pass, with stream keys for the randomness.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from norsim.errors import InputError
from norsim.mapping import reference as ref
from norsim.mapping.mapper import Chip, MappedLayer, raw_weight_matrix

_STREAM_READ = 202
_STREAM_CALIB = 203


@dataclass
class LayerStats:
    """Accumulated per-layer comparison of analog pre-activations against exact integers."""

    signal_power: float = 0.0
    error_power: float = 0.0
    count: int = 0
    max_abs_error: float = 0.0

    def add(self, exact: np.ndarray, estimate: np.ndarray) -> None:
        err = estimate.astype(np.float64) - exact
        self.signal_power += float(np.sum(exact.astype(np.float64) ** 2))
        self.error_power += float(np.sum(err**2))
        self.count += exact.size
        if err.size:
            self.max_abs_error = max(self.max_abs_error, float(np.max(np.abs(err))))

    @property
    def snr_db(self) -> float:
        if self.error_power == 0:
            return float("inf")
        return float(10 * np.log10(self.signal_power / self.error_power))

    @property
    def rms_error(self) -> float:
        return float(np.sqrt(self.error_power / self.count)) if self.count else 0.0


@dataclass
class ChipRun:
    """What one pass over a data set produced."""

    outputs: np.ndarray
    predictions: np.ndarray
    layer_stats: dict[str, LayerStats] = field(default_factory=dict)


def _layer_matmul(layer: MappedLayer, cols: np.ndarray, backend, stream: tuple,
                  calibrate: bool) -> np.ndarray:
    """Integer accumulators (rows, out) of one layer from its tiles, through the back-end
    (every tile's call continues the generator of ``stream``: :mod:`norsim.backend.base`)."""
    node = layer.node
    x = np.asarray(cols)
    if layer.in_signed:  # arrays take unsigned codes: shift, then remove the offset digitally
        offset = 1 << (layer.in_bits - 1)
        x = x.astype(np.int64) + offset
    acc = np.zeros((x.shape[0], layer.out_features), dtype=np.float64)
    for tile in layer.tiles:
        xb = x[:, tile.row_start:tile.row_stop]
        if calibrate:
            backend.calibrate(tile.tile_id, xb, stream)
        res = backend.mvm(tile.tile_id, xb, stream,
                          purpose="calibration" if calibrate else "run")
        acc[:, tile.col_start:tile.col_stop] += res.values
    acc = np.rint(acc).astype(np.int64)
    if layer.in_signed:
        acc -= offset * raw_weight_matrix(node).sum(axis=0)[None, :]
    if getattr(node, "weight_zero_point", None) is not None:
        acc += ref.zero_point_correction(np.asarray(cols), node)
    return acc


def _make_hook(chip: Chip, stream: tuple, calibrate: bool,
               stats: dict[str, LayerStats] | None):
    backend = chip.backend

    def hook(cols: np.ndarray, node) -> np.ndarray:
        layer = chip.layers[node.name]
        if not layer.analog:
            return ref.integer_matmul(cols, node)
        acc = _layer_matmul(layer, cols, backend, stream, calibrate)
        # --- compensation hook (norsim.compensation): re-calibrated requantisation affine
        if getattr(layer, "acc_correction", None) is not None:
            acc = layer.acc_correction(acc)
        # --- end compensation hook
        if stats is not None:
            stats.setdefault(node.name, LayerStats()).add(ref.integer_matmul(cols, node), acc)
        return acc
    return hook


def calibrate(chip: Chip, images: np.ndarray) -> None:
    """Set every tile's ADC range from a calibration batch run through the chip itself.

    Layer by layer, each tile sees the activations the chip's own earlier layers produce on the
    calibration images (never evaluation images), as a real chip's calibration would.
    """
    backend = chip.backend
    if chip.cfg.array.adc.range_mode == "calibrated" or chip.cfg.mapping.ir_drop != "none":
        x = ref.input_codes(chip.model, images)
        stream = (_STREAM_CALIB,)
        ref.run_reference(chip.model, x, matmul=_make_hook(chip, stream, True, None))
        backend.release(stream)
    for tile in chip.tiles():  # event counts (cost model) cover only the images run later
        backend.reset_events(tile.tile_id)
    chip.calibrated = True


def run(chip: Chip, images: np.ndarray, *, batch_size: int | None = None,
        progress: bool = False, collect_stats: bool = True, stream: int = 0) -> ChipRun:
    """Run uint8 images through the chip; returns output codes and predictions."""
    if not chip.calibrated:
        raise InputError("chip", "not calibrated", "norsim.mapping.engine.calibrate(chip, x_cal) first")
    x = ref.input_codes(chip.model, images)
    n = x.shape[0]
    bs = batch_size or chip.cfg.mapping.batch_size
    stats: dict[str, LayerStats] | None = {} if collect_stats else None
    outs = []
    starts = range(0, n, bs)
    for b, start in enumerate(tqdm(starts, desc="chip", unit="batch", disable=not progress,
                                   leave=False)):
        key = (_STREAM_READ, stream, b)
        outs.append(ref.run_reference(chip.model, x[start:start + bs],
                                      matmul=_make_hook(chip, key, False, stats)))
        chip.backend.release(key)
    out = np.concatenate(outs) if outs else np.zeros((0,))
    return ChipRun(out, predict_from_output(chip.model, out), stats or {})


def predict_from_output(model, out: np.ndarray) -> np.ndarray:
    """Top-1 class from output codes (dequantised: raw logits carry per-channel scales)."""
    o = np.asarray(out)
    if not o.size:
        return np.zeros(0, dtype=np.int64)
    logits = model.dequantize_output(o)
    return logits.reshape(o.shape[0], -1).argmax(axis=1)


def reference_run(model, images: np.ndarray, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(output codes, predictions) of the exact integer reference."""
    x = ref.input_codes(model, images)
    out = ref.run_reference(model, x, batch_size=batch_size)
    return out, predict_from_output(model, out)
