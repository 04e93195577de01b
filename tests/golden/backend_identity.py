"""Pinned numbers of the demo model for the back-end seam (issue 24).

``python tests/golden/backend_identity.py`` (run from a checkout) recomputes, for the demo
model (``zoo:lenet-mnist-4b``, preset nor40 on 128 x 128 arrays, the demo's four settings plus
one with every compensation step on), a few MNIST images through map -> calibrate ->
compensate -> run, and rewrites ``backend_identity.npz``: output codes, predictions, per-layer
MVM statistics, per-tile event counts and the compensation log.

The committed file was recorded from commit 09b060d, the code *before* the mapper, the engine
and the compensation chain went through :mod:`norsim.backend`, so
``tests/test_backend_sim.py`` proves the ``sim`` back-end reproduces the direct path bit for
bit. Re-record only for a deliberate change of the physics (and say so in the commit).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FILE = HERE / "backend_identity.npz"
N_IMAGES, N_CALIB, BATCH = 12, 16, 5
SMALL = {"mapping.calibration_images": N_CALIB, "compensation.recalibration_images": N_CALIB,
         "array.rows": 128, "array.cols": 128, "seed": 7,
         # recorded with exact RTN (before the approximate tier became the default, issue 17)
         "array.noise.rtn_tier": "exact"}


def cases():
    """(key, SimConfig) of the pinned settings."""
    from norsim.config.presets import load_preset
    from norsim.scenarios import scenarios

    cfg = load_preset("nor40").with_overrides(SMALL)
    out = [(sc.key, sc.cfg) for sc in scenarios(cfg)]
    comp = dict(out)["compensated"]
    out.append(("every_step", comp.with_overrides({
        "compensation.gain_correction": "per_column", "compensation.cell_screen": True,
        "compensation.wl_temperature_tracking": True, "device.read.temperature_k": 330.0})))
    return out


def data():
    from norsim.data import load_dataset

    test = load_dataset("mnist", "test")
    calib = load_dataset("mnist", "calib")
    return test.x[:N_IMAGES], calib.x[:N_CALIB]


def compute(cfg, images, calib, prepare=None) -> dict:
    """The pinned numbers of one setting (``prepare(model, cfg, calib)`` maps, calibrates and
    compensates; default ``compensation.core.prepare_chip``)."""
    from norsim import zoo
    from norsim.compensation.core import prepare_chip
    from norsim.mapping import engine

    model = zoo.load("lenet-mnist-4b")
    chip = (prepare or prepare_chip)(model, cfg, calib)
    events_before = [_events(chip, t) for t in chip.tiles()]
    run = engine.run(chip, images, batch_size=BATCH)
    out = {"outputs": np.asarray(run.outputs), "predictions": np.asarray(run.predictions),
           "events_after_prepare": np.array(events_before, dtype=np.float64),
           "events": np.array([_events(chip, t) for t in chip.tiles()], dtype=np.float64)}
    for name, st in sorted(run.layer_stats.items()):
        out[f"stats/{name}"] = np.array([st.signal_power, st.error_power, st.count,
                                         st.max_abs_error])
    state = getattr(chip, "compensation", None)
    if state is not None:
        log = state.log
        for key in ("reference_gain", "read_voltage_shift_v"):
            if key in log:
                out[f"log/{key}"] = np.array([log[key][k] for k in sorted(log[key])])
        for key in ("cells_reprogrammed", "channels_offset_only", "channels_without_fit"):
            if key in log:
                out[f"log/{key}"] = np.array([log[key]])
        tot = state.total_cost()
        out["cost"] = np.array([float(tot[k]) for k in sorted(tot)])
    for layer in chip.layers.values():
        corr = getattr(layer, "acc_correction", None)
        if corr is not None:
            out[f"recal/{layer.name}"] = np.concatenate([corr.a, corr.b])
    return out


EVENT_KEYS = ("multiplies", "read_cycles", "wl_pulses", "wl_toggles", "bitline_charge_c")


def _events(chip, tile):
    backend = getattr(chip, "backend", None)
    ev = backend.events(tile.tile_id) if backend is not None else tile.array.events.as_dict()
    return [float(ev[k]) for k in EVENT_KEYS]


def record() -> None:
    images, calib = data()
    arrays = {}
    for key, cfg in cases():
        for name, v in compute(cfg, images, calib).items():
            arrays[f"{key}/{name}"] = v
    np.savez_compressed(FILE, **arrays)
    print(f"wrote {FILE} ({len(arrays)} arrays)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path.cwd()))
    import norsim

    print("norsim from", norsim.__file__)
    record()
