"""Accuracy of a QuantModel on simulated arrays with a Gaussian V_th spread (noise-aware QAT).

The chip is mapped with every other non-ideality off (:func:`norsim.mapping.mapper.
ideal_config`: exact placement, no read noise, no RTN, no retention, an ADC that resolves
every integer), then each tile's V_th map is replaced by the ideal map plus
``sigma_vth_v * z``, ``z ~ N(0, 1)`` per cell, drawn from ``cfg.rng(_STREAM, seed, tile)``.
So the measured loss is the V_th spread's alone, and the same chip seed gives the same
perturbation to every model evaluated on it (a paired comparison).

This module needs no torch; it is used by the noise-aware QAT study (docs/qat.md).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from norsim.array.nor_array import NorArray
from norsim.config.sim import SimConfig
from norsim.errors import InputError
from norsim.mapping import engine, mapper
from norsim.mapping.quant_model import QuantModel

_STREAM = 9051


def chip_with_vth_spread(model: QuantModel, cfg: SimConfig, sigma_vth_v: float, seed: int):
    """Map ``model`` ideally, then perturb every cell's V_th by N(0, sigma_vth_v^2)."""
    if not (np.isfinite(sigma_vth_v) and sigma_vth_v >= 0):
        raise InputError("sigma_vth_v", sigma_vth_v, "a finite V_th spread >= 0 V")
    icfg = dataclasses.replace(mapper.ideal_config(cfg), seed=int(seed))
    chip = mapper.map_model(model, icfg)
    t = 0
    for layer in chip.layers.values():
        for tile in layer.tiles:
            a = tile.array
            rng = icfg.rng(_STREAM, int(seed), t)
            vth = a.vth + sigma_vth_v * rng.standard_normal(a.vth.shape)
            tile.array = NorArray(a.cfg, a.layout, vth, rng, current_scale=a.current_scale)
            t += 1
    return chip


def accuracy_on_arrays(model: QuantModel, cfg: SimConfig, images: np.ndarray,
                       labels: np.ndarray, calib_images: np.ndarray, sigma_vth_v: float,
                       seeds=(0,)) -> np.ndarray:
    """Per-seed boolean correctness ``(len(seeds), N)`` on V_th-perturbed chips."""
    out = []
    for s in seeds:
        chip = chip_with_vth_spread(model, cfg, sigma_vth_v, s)
        engine.calibrate(chip, calib_images)
        pred = engine.run(chip, images).predictions
        out.append(pred == np.asarray(labels))
    return np.array(out)


def recovery_study(plain: QuantModel, aware: QuantModel, cfg: SimConfig, images, labels,
                   calib_images, sigma_vth_v: float, seeds=(0, 1, 2, 3, 4),
                   n_boot: int = 2000) -> dict:
    """Plain vs noise-aware model on the same chips (seeds) and images at one V_th spread.

    Returns the integer-reference accuracies, per-seed chip accuracies, the plain model's
    loss, the noise-aware recovery (difference of seed-averaged accuracies), the fraction of
    the loss recovered, and two 95% intervals of the recovery: a paired bootstrap over images
    of the seed-averaged per-image difference, and a t interval over the per-seed paired
    differences.
    """
    from scipy import stats as sst

    from norsim.mapping.reference import predict

    labels = np.asarray(labels).astype(np.int64)
    ref_p = float((predict(plain, images) == labels).mean())
    ref_a = float((predict(aware, images) == labels).mean())
    cp = accuracy_on_arrays(plain, cfg, images, labels, calib_images, sigma_vth_v, seeds)
    ca = accuracy_on_arrays(aware, cfg, images, labels, calib_images, sigma_vth_v, seeds)
    acc_p, acc_a = cp.mean(axis=1), ca.mean(axis=1)
    loss = ref_p - float(acc_p.mean())
    rec = float(acc_a.mean() - acc_p.mean())
    d_img = (ca.astype(float) - cp.astype(float)).mean(axis=0)
    rng = cfg.rng(_STREAM, 777)
    boots = d_img[rng.integers(0, d_img.size, size=(n_boot, d_img.size))].mean(axis=1)
    d_seed = acc_a - acc_p
    k = len(seeds)
    if k > 1:
        half = float(sst.t.ppf(0.975, k - 1) * d_seed.std(ddof=1) / np.sqrt(k))
    else:
        half = float("nan")
    return {"sigma_vth_v": sigma_vth_v, "n_images": int(labels.size), "seeds": list(seeds),
            "reference_acc_plain": ref_p, "reference_acc_aware": ref_a,
            "chip_acc_plain": acc_p.tolist(), "chip_acc_aware": acc_a.tolist(),
            "loss_plain_points": 100 * loss, "recovery_points": 100 * rec,
            "fraction_recovered": rec / loss if loss > 0 else float("nan"),
            "recovery_ci95_bootstrap_points": [100 * float(np.quantile(boots, 0.025)),
                                               100 * float(np.quantile(boots, 0.975))],
            "recovery_ci95_t_over_seeds_points": [100 * (float(d_seed.mean()) - half),
                                                  100 * (float(d_seed.mean()) + half)]}


def main(argv=None) -> int:
    """``python -m norsim.qat.noise_study --plain A.npz --aware B.npz --sigma-vth-v 0.035``:
    the recovery study on the embedded MNIST test images, one JSON line."""
    import argparse
    import json
    import time

    from norsim.config.presets import load_preset
    from norsim.data.embedded import load_embedded_mnist

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--plain", required=True, help="QuantModel of the plain 4-bit model")
    ap.add_argument("--aware", required=True, help="QuantModel of the noise-aware model")
    ap.add_argument("--sigma-vth-v", type=float, required=True)
    ap.add_argument("--images", type=int, default=2000, help="first N test images")
    ap.add_argument("--seeds", type=int, default=5, help="chip seeds 0..N-1")
    ap.add_argument("--preset", default="nor40")
    a = ap.parse_args(argv)
    x, y = load_embedded_mnist("test")
    xc, _ = load_embedded_mnist("calib")
    t0 = time.perf_counter()
    r = recovery_study(QuantModel.load(a.plain), QuantModel.load(a.aware), load_preset(a.preset),
                       x[:a.images], y[:a.images], xc[:64], a.sigma_vth_v, tuple(range(a.seeds)))
    r.update(plain=a.plain, aware=a.aware, seconds=round(time.perf_counter() - t0, 1))
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
