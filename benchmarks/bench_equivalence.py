"""The fast tier against the exact path on LeNet-MNIST and the CIFAR-10 zoo model (issue 17,
point 4): 5 chips each, paired draw for draw (norsim.experiments.equivalence).

Tiers (``--tier``): ``cell_variance`` (``array.noise.cell_variance = 'bounded_ratio'``, the
default, against ``'exact'``) and ``rtn`` (``array.noise.rtn_tier = 'approximate'``, the
default, against ``'exact'``); both tiers run on the same programmed chips. Everything else on
the fast path is exact arithmetic (column-major readout equal to its NumPy twin). Prints one JSON line per model, then a summary
object on the last line: the paired accuracy difference with its chip-replicate interval
(target inside +-0.2 points), the largest mean ADC-code shift per column (target <= 0.05 LSB),
the fraction of conversions whose code moved and the code histograms' total-variation
distance.

Usage: python benchmarks/bench_equivalence.py [--tier cell_variance|rtn] [--lenet-images N]
       [--cifar-images N] [--chips N] [--data-dir DIR]  (CIFAR-10 from DIR or $NORSIM_DATA; skipped without;
       N = 0 skips a model)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".numba_cache"))

from _threads import pin, record  # noqa: E402
from norsim import zoo  # noqa: E402
from norsim.cli.run import load_eval_data  # noqa: E402
from norsim.config import load_preset  # noqa: E402
from norsim.errors import InputError  # noqa: E402
from norsim.experiments.equivalence import tier_equivalence  # noqa: E402

#: tier -> (fast overrides, exact overrides); the other tier stays at the preset's default
TIERS = {"cell_variance": (["array.noise.cell_variance='bounded_ratio'"],
                           ["array.noise.cell_variance='exact'"]),
         "rtn": (["array.noise.rtn_tier='approximate'"], ["array.noise.rtn_tier='exact'"])}


def _one(name, model, data, n, chips, code_images, data_dir, tier):
    fast, exact = TIERS[tier]
    x, y, x_cal = load_eval_data(data, n, data_dir)
    t0 = time.perf_counter()
    r = tier_equivalence(model, load_preset("nor40"), x, y, x_cal, chips=chips,
                         code_images=code_images, fast=fast, exact=exact,
                         on_chip=lambda k: print(f"{name}: chip {k + 1}/{chips} "
                                                 f"({time.perf_counter() - t0:.0f} s)",
                                                 file=sys.stderr, flush=True))
    r = {"model": name, "data": data, "tier": tier, "seconds": time.perf_counter() - t0, **r, **record()}
    print(json.dumps(r), flush=True)
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tier", choices=sorted(TIERS), default="cell_variance")
    ap.add_argument("--lenet-images", type=int, default=1000)
    ap.add_argument("--cifar-images", type=int, default=500)
    ap.add_argument("--chips", type=int, default=5)
    ap.add_argument("--code-images", type=int, default=64)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    pin()
    rows = []
    if args.lenet_images > 0:  # 0 skips a model
        rows.append(_one("lenet-mnist-4b", zoo.load("lenet-mnist-4b"), "mnist",
                         args.lenet_images, args.chips, args.code_images, args.data_dir,
                         args.tier))
    try:
        if args.cifar_images > 0:
            rows.append(_one("cnn-cifar10-4b", zoo.load("cnn-cifar10-4b"), "cifar10",
                             args.cifar_images, args.chips, args.code_images, args.data_dir,
                             args.tier))
    except InputError as exc:
        print(f"cifar10 skipped: {exc}", file=sys.stderr)
    keys = ("diff_points", "interval_points", "flip_rate", "image_runs", "image_runs_needed",
            "max_mean_code_shift_lsb", "max_shift_beyond_3se_lsb", "fraction_outputs_moved",
            "code_tv_distance_max", "passed")
    print(json.dumps({"bench": "equivalence", "tier": TIERS[args.tier][0][0], "chips": args.chips,
                      "per_model": {r["model"]: {k: r[k] for k in keys} for r in rows},
                      "passed": all(r["passed"] for r in rows), **record()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
