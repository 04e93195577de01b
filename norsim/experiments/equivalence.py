"""A fast tier validated against the exact path on whole networks (issue 17, point 4).

Each chip instance (seed) is mapped and calibrated once with the tier under test, then copied
and the copy's tiles switched to the exact path (``exact`` overrides act when a tile reads, as
``array.noise.cell_variance`` does; calibration draws no read noise, so mapping twice would
give the same chip): the same programmed cells, RTN traps, ADC draws and read-noise streams,
paired draw for draw. Both run the same images. Reported:

* the flip rate (fraction of image-runs whose correctness differs between the tiers) and the
  image-runs a +-``tolerance_points`` interval needs at that rate, 1.96^2 f / tol^2;
* the paired accuracy difference (fast - exact), with the intervals of
  :func:`norsim.stats.paired_intervals`: conditional on the chips (bootstrap over images),
  two-level (chips, then images) and the t-interval over the per-chip differences; the tier
  passes where the chip-replicate interval (``over_chips``) lies inside +-``tolerance_points``;
* the ADC codes of every conversion of every analog tile on the first ``code_images`` images
  (``NorArray.conversion_codes``; the tile's own inputs, taken from the exact integer
  reference, the same generator state given to both tiers): the mean shift per ADC column
  (channel) in LSB, its largest absolute value over columns and tiles (limit
  ``max_shift_lsb``; and its largest excess over 3 standard errors of the column's mean
  difference, which separates a shift from the sampling noise of few conversions), the
  fraction of conversions whose code moved, and the
  total-variation distance between the two tiers' code histograms (pooled per chip,
  largest over chips).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from norsim.mapping import engine
from norsim.mapping import reference as ref
from norsim.stats import paired_intervals

#: issue 17's acceptance figures for an approximate tier
TOLERANCE_POINTS = 0.2
MAX_SHIFT_LSB = 0.05
_STREAM_CODES = 417


def _tile_codes(chip_a, chip_b, model, images, seed):
    """ADC codes of every conversion of every analog tile of both chips, same inputs."""
    x = ref.input_codes(model, images)
    codes_a, codes_b = [], []

    def hook(cols, node):
        la, lb = chip_a.layers[node.name], chip_b.layers[node.name]
        if la.analog:
            xin = np.asarray(cols)
            if la.in_signed:
                xin = xin.astype(np.int64) + (1 << (la.in_bits - 1))
            for k, (ta, tb) in enumerate(zip(la.tiles, lb.tiles)):
                xb = xin[:, ta.row_start:ta.row_stop]
                ss = np.random.SeedSequence([seed, _STREAM_CODES, len(codes_a), k])
                ya = ta.array.conversion_codes(xb, np.random.default_rng(ss))
                yb = tb.array.conversion_codes(xb, np.random.default_rng(ss))
                codes_a.append(ya.astype(np.int64))
                codes_b.append(yb.astype(np.int64))
        return ref.integer_matmul(cols, node)  # the exact activations feed the next layer

    ref.run_reference(model, x, matmul=hook)
    return codes_a, codes_b


def _tv_distance(a: np.ndarray, b: np.ndarray) -> float:
    lo = int(min(a.min(), b.min()))
    ha = np.bincount(a - lo)
    hb = np.bincount(b - lo, minlength=ha.size)
    ha = np.pad(ha, (0, hb.size - ha.size))
    return 0.5 * float(np.abs(ha / a.size - hb / b.size).sum())


def tier_equivalence(model, cfg, images, labels, calib_images, *, fast, exact, chips=5,
                     code_images=64, tolerance_points=TOLERANCE_POINTS,
                     max_shift_lsb=MAX_SHIFT_LSB, on_chip=None) -> dict:
    """Compare the configuration overrides ``fast`` with ``exact`` over ``chips`` seeds
    (``cfg.seed`` ...); see the module docstring. ``on_chip(k)`` after each chip."""
    from norsim.compensation.core import prepare_chip

    labels = np.asarray(labels)
    cf, ce = cfg.with_overrides(list(fast)), cfg.with_overrides(list(exact))
    diffs, shifts, excess, moved, tvs, acc_f, acc_e = [], [], [], [], [], [], []
    for k in range(chips):
        seed = int(cfg.seed) + k
        chip_f = prepare_chip(model, dataclasses.replace(cf, seed=seed), calib_images)
        chip_e = copy.deepcopy(chip_f)
        chip_e.cfg = dataclasses.replace(ce, seed=seed)
        for tile in chip_e.tiles():
            tile.array.cfg = tile.array.cfg.with_overrides(list(exact))
        ok_f = engine.run(chip_f, images, collect_stats=False).predictions == labels
        ok_e = engine.run(chip_e, images, collect_stats=False).predictions == labels
        diffs.append(ok_f.astype(np.int64) - ok_e.astype(np.int64))
        acc_f.append(float(ok_f.mean()))
        acc_e.append(float(ok_e.mean()))
        ca, cb = _tile_codes(chip_f, chip_e, model, images[:code_images], seed)
        for a, b in zip(ca, cb):
            d = (a - b).astype(np.float64)
            sh = np.abs(d.mean(axis=0))
            shifts.append(sh.max())
            # beyond 3 standard errors of the column's own mean difference: the part of a
            # shift that the conversions' count cannot explain (short batches, few codes)
            se = d.std(axis=0) / np.sqrt(max(d.shape[0], 1))
            excess.append(float(np.clip(sh - 3 * se, 0, None).max()))
            moved.append(float(np.mean(a != b)))
        tvs.append(_tv_distance(np.concatenate([a.ravel() for a in ca]),
                                np.concatenate([b.ravel() for b in cb])))
        if on_chip is not None:
            on_chip(k)
    d = np.array(diffs)
    # differences of paired runs: intervals of mean(d) (the "reference" is all-zero)
    iv = paired_intervals(np.zeros(d.shape[1], dtype=bool), d,
                          np.random.default_rng([int(cfg.seed), 303]),
                          np.random.default_rng([int(cfg.seed), 304]))
    pts = {key: (None if iv[key] is None else [100 * v for v in iv[key]])
           for key in ("conditional", "two_level", "t_over_chips", "over_chips")}
    max_shift = float(max(shifts)) if shifts else 0.0
    inside = -tolerance_points <= pts["over_chips"][0] and pts["over_chips"][1] <= tolerance_points
    # a tier that changes noise draws churns predictions at the flip rate f (both ways);
    # the mean of N paired image-runs then has sd sqrt(f / N), so a +-tol interval needs
    # N >= 1.96^2 f / tol^2 image-runs (before any chip-to-chip spread)
    flip = float(np.abs(d).mean())
    need = 1.96 ** 2 * flip / (tolerance_points / 100) ** 2
    return {"chips": chips, "images": int(d.shape[1]), "accuracy_fast": acc_f,
            "flip_rate": flip, "image_runs_needed": int(np.ceil(need)),
            "image_runs": int(d.size),
            "accuracy_exact": acc_e, "diff_points": 100 * float(d.mean()),
            "images_differing": int(np.abs(d).sum()), "interval_points": pts,
            "estimator": "over_chips = hull of the two-level bootstrap and the t-interval",
            "tolerance_points": tolerance_points, "accuracy_equivalent": bool(inside),
            "code_images": int(min(code_images, len(images))), "tiles": len(shifts) // chips,
            "max_mean_code_shift_lsb": max_shift, "max_shift_limit_lsb": max_shift_lsb,
            "max_shift_beyond_3se_lsb": float(max(excess)) if excess else 0.0,
            "fraction_outputs_moved": float(np.mean(moved)) if moved else 0.0,
            "code_tv_distance_max": float(max(tvs)) if tvs else 0.0,
            "codes_equivalent": bool(max_shift <= max_shift_lsb),
            "passed": bool(inside and max_shift <= max_shift_lsb)}
