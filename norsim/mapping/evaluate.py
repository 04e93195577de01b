"""Accuracy of a QuantModel on simulated NOR arrays, reported honestly.

Integer reference and analog chip run on the same images. Reported: top-1 of both, the paired
difference (McNemar per chip instance, paired bootstrap of the seed-averaged difference), the
test-set sampling interval (Wilson) and the chip-to-chip spread over seeds, kept separate;
per layer: shape, tiles, utilisation, where it runs and the MVM SNR of the pre-activations
against exact integers on the same inputs.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from norsim.config.sim import SimConfig
from norsim.errors import InputError
from norsim.mapping import engine
from norsim.mapping.quant_model import QuantModel
from norsim.stats import paired_compare, seed_spread, wilson_interval

_STREAM_BOOT = 303


def _check_labels(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != np.asarray(images).shape[0]:
        raise InputError("labels", labels.shape, f"one label per image ({np.asarray(images).shape[0]},)")
    return labels.astype(np.int64)


def evaluate_chip(model: QuantModel, cfg: SimConfig, images, labels, calib_images, *,
                  progress: bool = False) -> dict:
    """One chip instance (``cfg.seed``): map, calibrate, run. Returns metrics and details."""
    labels = _check_labels(images, labels)
    from norsim.compensation.core import prepare_chip

    t0 = time.perf_counter()
    # map, set the ADC ranges on the calibration split, compensate when enabled
    chip = prepare_chip(model, cfg, calib_images)
    for tile in chip.tiles():  # compensation reads are costed by the compensation module
        tile.array.events.reset()
    t_map = time.perf_counter() - t0
    run = engine.run(chip, images, progress=progress)
    correct = run.predictions == labels
    layers = []
    for row in chip.summary():
        st = run.layer_stats.get(row["layer"])
        row["mvm_snr_db"] = None if st is None else st.snr_db
        row["mvm_rms_error"] = None if st is None else st.rms_error
        layers.append(row)
    events = {}
    for name, layer in chip.layers.items():
        events[name] = [t.array.events.as_dict() for t in layer.tiles]
    return {"seed": cfg.seed, "accuracy": float(correct.mean()), "correct": correct,
            "layers": layers, "events": events, "seconds": time.perf_counter() - t0,
            "seconds_mapping": t_map, "chip": chip}


def evaluate(model: QuantModel, cfg: SimConfig, images, labels, calib_images, *,
             seeds=(0,), progress: bool = False, keep_chips: bool = False) -> dict:
    """Integer reference vs analog chip over several chip instances (seeds)."""
    labels = _check_labels(images, labels)
    n = labels.size
    _, ref_pred = engine.reference_run(model, images)
    ref_correct = ref_pred == labels
    ref_acc = float(ref_correct.mean())
    chips = []
    for s in seeds:
        res = evaluate_chip(model, dataclasses.replace(cfg, seed=int(s)), images, labels,
                            calib_images, progress=progress)
        res["paired_vs_reference"] = paired_compare(
            ref_correct, res["correct"], cfg.rng(_STREAM_BOOT, int(s)), n_boot=1000).as_dict()
        if not keep_chips:
            res.pop("chip")
        chips.append(res)
    accs = np.array([c["accuracy"] for c in chips])
    mean_correct = np.mean([c["correct"] for c in chips], axis=0)
    diff = mean_correct - ref_correct
    rng = cfg.rng(_STREAM_BOOT)
    boots = diff[rng.integers(0, n, size=(1000, n))].mean(axis=1)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return {
        "images": int(n),
        "reference": {"accuracy": ref_acc, "test_interval_95": wilson_interval(int(ref_correct.sum()), n)},
        "chip": {
            "accuracy_mean": float(accs.mean()),
            "accuracy_per_seed": accs.tolist(),
            "chip_to_chip": seed_spread(accs),
            "test_interval_95": wilson_interval(int(round(accs.mean() * n)), n),
        },
        "difference": {"mean": float(diff.mean()), "paired_bootstrap_95": [float(lo), float(hi)],
                       "mcnemar_p_per_seed": [c["paired_vs_reference"]["mcnemar_p"] for c in chips]},
        "instances": chips,
    }


def jsonable(report: dict) -> dict:
    """The report without per-image arrays (for JSON output)."""
    def clean(v):
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items() if k not in ("correct", "chip")}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, (np.floating, np.integer)):
            return v.item()
        if isinstance(v, float) and not np.isfinite(v):
            return str(v)
        return v
    return clean(report)
