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
from norsim.stats import paired_compare, paired_intervals, seed_spread, wilson_interval

_STREAM_BOOT = 303
_STREAM_BOOT_CHIPS = 304


def _check_labels(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != np.asarray(images).shape[0]:
        raise InputError("labels", labels.shape, f"one label per image ({np.asarray(images).shape[0]},)")
    return labels.astype(np.int64)


def evaluate_chip(model: QuantModel, cfg: SimConfig, images, labels, calib_images, *,
                  progress: bool = False, backend=None) -> dict:
    """One chip instance (``cfg.seed``): map, calibrate, run. Returns metrics and details.

    ``backend``: a :class:`norsim.backend.base.Backend`, a spec string (``'sim'``,
    ``'replay:DIR'``, ``'remote:HOST:PORT'``: :func:`norsim.backend.open_backend`), a factory
    ``cfg -> Backend`` or None (a new ``sim`` back-end). The result's ``chip.backend`` is
    open; whoever drops the chip closes it."""
    labels = _check_labels(images, labels)
    from norsim.backend import open_backend
    from norsim.compensation.core import prepare_chip

    t0 = time.perf_counter()
    be = open_backend(backend, cfg)
    # map, set the ADC ranges on the calibration split, compensate when enabled
    chip = prepare_chip(model, cfg, calib_images, backend=be)
    for tile in chip.tiles():  # compensation reads are costed by the compensation module
        be.reset_events(tile.tile_id)
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
        events[name] = [be.events(t.tile_id) for t in layer.tiles]
    return {"seed": cfg.seed, "accuracy": float(correct.mean()), "correct": correct,
            "layers": layers, "events": events, "seconds": time.perf_counter() - t0,
            "seconds_mapping": t_map, "chip": chip, "backend": be.info().kind}


def reference_correct(model: QuantModel, images, labels) -> np.ndarray:
    """Per-image correctness of the exact integer reference."""
    labels = _check_labels(images, labels)
    _, ref_pred = engine.reference_run(model, images)
    return ref_pred == labels


def summarize(ref_correct: np.ndarray, chips: list[dict], cfg: SimConfig) -> dict:
    """The report of several chip instances (``evaluate_chip`` results) against the reference.

    The accuracy difference carries three intervals (:func:`norsim.stats.paired_intervals`):
    conditional on the simulated chips (paired bootstrap over images), two-level (bootstrap
    over chips, then images) and a t-interval over the per-chip differences (None with one
    chip; one chip has no chip-to-chip spread either).
    """
    n = int(ref_correct.size)
    for res in chips:
        res["paired_vs_reference"] = paired_compare(
            ref_correct, res["correct"], cfg.rng(_STREAM_BOOT, int(res["seed"])),
            n_boot=1000).as_dict()
    accs = np.array([c["accuracy"] for c in chips])
    iv = paired_intervals(ref_correct, np.array([c["correct"] for c in chips]),
                          cfg.rng(_STREAM_BOOT), cfg.rng(_STREAM_BOOT_CHIPS), n_boot=1000)
    return {
        "images": n,
        "reference": {"accuracy": float(ref_correct.mean()),
                      "test_interval_95": wilson_interval(int(ref_correct.sum()), n)},
        "chip": {
            "accuracy_mean": float(accs.mean()),
            "accuracy_per_seed": accs.tolist(),
            "chip_to_chip": seed_spread(accs) if accs.size > 1 else None,
            "test_interval_95": wilson_interval(int(round(accs.mean() * n)), n),
        },
        "difference": {"mean": iv["mean"], "paired_bootstrap_95": iv["conditional"],
                       "two_level_bootstrap_95": iv["two_level"],
                       "over_chips_95": iv["over_chips"],
                       "t_over_chips_95": iv["t_over_chips"], "per_chip": iv["per_chip"],
                       "mcnemar_p_per_seed": [c["paired_vs_reference"]["mcnemar_p"] for c in chips]},
        "instances": chips,
    }


def evaluate(model: QuantModel, cfg: SimConfig, images, labels, calib_images, *,
             seeds=(0,), progress: bool = False, keep_chips: bool = False,
             on_chip=None, backend=None) -> dict:
    """Integer reference vs analog chip over several chip instances (seeds); see
    :func:`summarize` for the report. ``on_chip(result)`` is called after each instance.
    ``backend``: a back-end spec string (each instance opens its own) or None (``sim``)."""
    from norsim.mapping import preflight

    labels = _check_labels(images, labels)
    preflight.check_job(model, cfg, images, calib_images)
    ref_correct = reference_correct(model, images, labels)
    chips = []
    for s in seeds:
        res = evaluate_chip(model, dataclasses.replace(cfg, seed=int(s)), images, labels,
                            calib_images, progress=progress, backend=backend)
        if not keep_chips:
            res.pop("chip").backend.close()
        chips.append(res)
        if on_chip is not None:
            on_chip(res)
    return summarize(ref_correct, chips, cfg)


# --- several chip instances in worker processes ----------------------------------------

_WORKER: dict = {}


def _init_worker(model, images, labels, calib_images, threads: int) -> None:
    if threads > 0:
        import numba

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    _WORKER.update(model=model, images=images, labels=labels, calib=calib_images)


def _run_group(group, finish) -> list:
    """One task: the (key, cfg) runs of one group in order, in one process, with programmed
    tiles reused between them (:mod:`norsim.mapping.program_cache`)."""
    from norsim.mapping import program_cache

    w = _WORKER
    out = []
    with program_cache.enabled():
        for key, cfg in group:
            res = evaluate_chip(w["model"], cfg, w["images"], w["labels"], w["calib"])
            chip = res.pop("chip")
            if finish is not None:
                finish(res, chip, cfg)
            chip.backend.close()
            out.append((key, res))
    return out


def evaluate_jobs(model: QuantModel, groups, images, labels, calib_images, *,
                  workers: int = 1, finish=None, on_done=None) -> dict:
    """Run ``evaluate_chip`` for every ``(key, cfg)`` (each cfg with its seed) of ``groups``
    (a list of lists; one group runs in one process, in order, with programmed tiles reused
    between its runs: put the settings of one chip instance in one group) on ``workers``
    processes (1: here). ``finish(result, chip, cfg)`` (a picklable top-level function) runs
    where the chip lives, before the chip is dropped (e.g. its cost); ``on_done(key,
    result)`` runs here as each group ends. Returns {key: result}; the results depend on
    neither ``workers`` nor the grouping."""
    from norsim.mapping import preflight

    labels = _check_labels(images, labels)
    groups = [list(g) for g in groups]
    seen = set()
    for g in groups:                      # every distinct configuration, before any work
        for _, cfg in g:
            k = repr(dataclasses.replace(cfg, seed=0))
            if k not in seen:
                seen.add(k)
                preflight.check_job(model, cfg, images, calib_images)
    out: dict = {}

    def done(items):
        for k, res in items:
            out[k] = res
            if on_done is not None:
                on_done(k, res)

    if workers <= 1 or len(groups) <= 1:
        _init_worker(model, images, labels, calib_images, threads=0)
        try:
            for g in groups:
                done(_run_group(g, finish))
        finally:
            _WORKER.clear()
        return out
    import concurrent.futures as cf
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                initargs=(model, images, labels, calib_images, 1)) as ex:
        futs = [ex.submit(_run_group, g, finish) for g in groups]
        try:
            for f in cf.as_completed(futs):
                done(f.result())
        except BaseException:
            for f in futs:
                f.cancel()
            raise
    return out


def jsonable(report: dict) -> dict:
    """The report without per-image arrays (for JSON output)."""
    def clean(v):
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()   # the report's "chip" summary
                    if k != "correct" and not (k == "chip" and not isinstance(x, dict))}
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
