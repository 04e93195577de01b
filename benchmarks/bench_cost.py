"""Benchmark: the full cost report of ResNet-18 on CIFAR-10-shaped inputs from event counts
already collected (target: under 50 ms).

Untimed setup: a random CIFAR-style ResNet-18 (norsim.mapping.random_models) is mapped on the
nor40 preset (ideal programming, noise off: neither changes the cost path), calibrated and
run on ``--images`` random 32x32x3 images; the tiles' events are collected once. Timed: the
report from those events as ``norsim report`` makes it -- ``estimate_range`` (energy by
component, latency, area per layer and total, priced three times: nominal and the low- and
high-cost source corners of the printed ranges), the JSON dict and the text tables (not the
matplotlib figure), best of ``--repeat``.
Baseline in the same process: the time the engine took to simulate the same images
(``ratio_to_simulation`` = report / simulation).

Prints one JSON object on its last line: seconds, target_seconds, tiles, layers,
simulation_seconds, ratio_to_simulation, tops_per_w (and its range), adc_model.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _threads import pin, record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=64, help="ResNet-18 base width (64 = standard)")
    p.add_argument("--images", type=int, default=1)
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args(argv)
    pin()

    from norsim.config.presets import load_preset
    from norsim.cost import model as cm
    from norsim.cost.report import format_report
    from norsim.mapping import engine, mapper
    from norsim.mapping.random_models import random_resnet18

    rng = np.random.default_rng(0)
    model = random_resnet18(rng, width=args.width)
    cfg = load_preset("nor40").with_overrides({
        "mapping.programming": "ideal", "array.noise.shot_enabled": False,
        "array.noise.rtn_enabled": False, "array.noise.ktc_enabled": False})
    x = rng.integers(0, 256, size=(args.images + 2, 32, 32, 3), dtype=np.uint8)
    chip = mapper.map_model(model, cfg)
    engine.calibrate(chip, x[:2])
    t0 = time.perf_counter()
    engine.run(chip, x[2:], collect_stats=False)
    t_sim = time.perf_counter() - t0
    activity = cm.collect(chip, args.images, "random CIFAR-shaped images")

    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        rep = cm.estimate_range(activity, cfg.cost)
        rep.as_dict()
        format_report(rep)
        best = min(best, time.perf_counter() - t0)
    out = {"benchmark": "cost_report_resnet18_cifar", "seconds": best, "target_seconds": 0.05,
           "tiles": sum(len(la.tiles) for la in activity.layers), "layers": len(activity.layers),
           "width": args.width, "images": args.images, "simulation_seconds": t_sim,
           "ratio_to_simulation": best / t_sim, "tops_per_w": rep.tops_per_w,
           "tops_per_w_range": list(rep.ranges()["tops_per_w"]), "adc_model": rep.adc_model,
           **record()}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
