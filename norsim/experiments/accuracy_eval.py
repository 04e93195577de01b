"""The ``accuracy`` evaluator: a QuantModel on simulated NOR arrays over a data set.

The spec's ``model`` is ``zoo:NAME`` or the path of a QuantModel ``.npz`` (relative paths are
taken from the spec file's folder); ``data`` is a data-set name of
:func:`norsim.data.load_dataset` (``mnist`` = the embedded copy, the default) or a directory.
Each point maps the model onto arrays with the point's configuration (seed = one chip
instance), calibrates the ADC ranges on the first ``mapping.calibration_images`` images of the
calibration split (never test images) and runs the test images
(:func:`norsim.experiments.evaluate.evaluate_chip`).

Metrics: ``accuracy`` with ``accuracy_n`` (test images: ``norsim plot`` draws its Wilson
interval), ``reference_accuracy`` and ``accuracy_drop`` (exact integer reference on the same
images minus the chip, when ``reference`` is on), ``mvm_snr_db_min`` (lowest per-layer MVM SNR
of the analog layers against exact integers) and ``mapping_s`` (time to map and program).

Options: ``images`` (evaluate the first N test images; 0 = all), ``data_dir`` (root of the
larger data sets, default ``$NORSIM_DATA``), ``reference`` (default true), ``backend``
(``'sim'``, ``'replay:DIR'`` or ``'remote:HOST:PORT'``: where every point's chip runs).
Model, data and the reference predictions are loaded once per worker process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from norsim.config.base import ConfigBase, param
from norsim.errors import ConfigError

_CACHE: dict = {}


@dataclass
class AccuracyEvalOptions(ConfigBase):
    """Options of the ``accuracy`` evaluator."""

    images: int = param(0, "Evaluate only the first N test images (0: the whole split).",
                        lo=0, hi=100_000_000)
    data_dir: str = param("", "Root folder of the larger data sets ('' = $NORSIM_DATA).")
    reference: bool = param(True, "Also run the exact integer reference on the same images "
                                  "(metrics reference_accuracy and accuracy_drop).")
    backend: str = param("sim", "Hardware back-end every point runs on: 'sim' (the "
                                "simulator), 'replay:DIR' (a recorded chip) or "
                                "'remote:HOST:PORT' (a chip server); see docs/chip-in-the-loop.md.")


def _model(ref: str):
    if not ref:
        raise ConfigError("spec sweep.model", ref, "zoo:NAME or the path of a QuantModel .npz")
    if not ref.startswith("zoo:") and not Path(ref).is_file():
        raise ConfigError("spec sweep.model", ref,
                          "zoo:NAME or the path of an existing QuantModel .npz")
    key = ("model", ref, Path(ref).stat().st_mtime_ns if Path(ref).is_file() else None)
    if key not in _CACHE:
        if ref.startswith("zoo:"):
            from norsim import zoo

            _CACHE[key] = zoo.load(ref[4:])
        else:
            from norsim.mapping.quant_model import QuantModel

            if not Path(ref).is_file():
                raise ConfigError("spec sweep.model", ref,
                                  "zoo:NAME or the path of an existing QuantModel .npz")
            _CACHE[key] = QuantModel.load(ref)
    return key, _CACHE[key]


def _data(name: str, data_dir: str, limit: int):
    key = ("data", name, data_dir, limit)
    if key not in _CACHE:
        from norsim.data import load_dataset

        test = load_dataset(name, "test", data_dir=data_dir or None)
        calib = load_dataset(name, "calib", data_dir=data_dir or None)
        x, y = (test.x[:limit], test.y[:limit]) if limit else (test.x, test.y)
        _CACHE[key] = (x, y, calib.x)
    return key, _CACHE[key]


def check_spec(spec, tasks) -> None:
    """Options, model, data set and the model's fit on every grid point's array, up front."""
    from norsim.config.sim import SimConfig
    from norsim.mapping.preflight import check_job

    opts = AccuracyEvalOptions.from_dict(spec.options, "options.").validate("options.")
    _check_backend(opts.backend)
    _, model = _model(spec.model)
    _, (x, _y, x_cal) = _data(spec.data or "mnist", opts.data_dir, opts.images)
    seen: set[str] = set()
    for task in tasks:
        if task.replicate or task.config_toml in seen:
            continue
        seen.add(task.config_toml)
        cfg = SimConfig.from_toml(task.config_toml)
        try:
            check_job(model, cfg, x[:1], x_cal[:1])
        except ConfigError as exc:
            where = ", ".join(f"{k}={v}" for k, v in task.axes.items()) or "the base config"
            raise ConfigError(exc.field, exc.value, f"{exc.expected} (grid point {task.index}: "
                                                    f"{where})") from None


def _check_backend(spec: str) -> None:
    from norsim.backend.base import parse_backend
    from norsim.errors import InputError

    try:
        kind, arg = parse_backend(spec)
    except InputError:
        raise ConfigError("options.backend", spec,
                          "'sim', 'replay:DIR' or 'remote:HOST:PORT'") from None
    if kind == "replay" and not Path(arg).is_dir():
        raise ConfigError("options.backend", spec, "replay:DIR with an existing directory")


def evaluate(point) -> dict:
    import numpy as np

    from norsim.experiments.evaluate import evaluate_chip

    opts = AccuracyEvalOptions.from_dict(point.options, "options.").validate("options.")
    cfg = point.config
    mkey, model = _model(point.model)
    dkey, (x, y, x_cal) = _data(point.data or "mnist", opts.data_dir, opts.images)
    res = evaluate_chip(model, cfg, x, y, x_cal[:cfg.mapping.calibration_images],
                        backend=opts.backend)
    res.pop("chip").backend.close()
    n = int(np.asarray(y).size)
    out = {"accuracy": float(res["accuracy"]), "accuracy_n": n,
           "mapping_s": float(res.get("seconds_mapping", 0.0))}
    snrs = [row.get("mvm_snr_db") for row in res.get("layers", [])]
    snrs = [float(s) for s in snrs if s is not None and math.isfinite(s)]
    if snrs:
        out["mvm_snr_db_min"] = min(snrs)
    if opts.reference:
        rkey = ("reference", mkey, dkey)
        if rkey not in _CACHE:
            from norsim.mapping import engine

            _, pred = engine.reference_run(model, x)
            _CACHE[rkey] = float(np.mean(pred == np.asarray(y)))
        out["reference_accuracy"] = _CACHE[rkey]
        out["accuracy_drop"] = _CACHE[rkey] - out["accuracy"]
    return out
