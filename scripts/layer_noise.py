#!/usr/bin/env python3
"""Per-layer output noise of a model on simulated chips, for noise-aware QAT (issue 21).

Maps the model on ``--chips`` chip instances of the configuration (preset and ``--set``
options, as the seed table runs it), calibrates each as ``norsim run`` does, runs ``--images``
training images (the calibration slice's, after the ones that calibrate; never the test set)
and writes, per analog layer, the error rms relative to the rms of the exact integer
accumulator pooled over the chips (:func:`norsim.qat.noise.output_noise_from_stats`), with the per-layer SNR and what
produced it:

    python scripts/layer_noise.py --model zoo:alexnet-bn-cifar10-4b --images 200 --chips 2 \\
        --set mapping.first_layer=analog --out results/campaign/alexnet-bn-cifar10-4b/noise.json

``scripts/train_campaign.py --noise-aware FILE`` trains against it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from norsim.cli.common import add_config_args, config_from_args, produced_by
    from norsim.errors import InputError, NorsimError

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="zoo:NAME or a QuantModel .npz")
    p.add_argument("--data", default="cifar10", help="data set name or directory")
    p.add_argument("--data-dir", default=None, help="root of the data sets ($NORSIM_DATA)")
    p.add_argument("--images", type=int, default=200, help="training images per chip")
    p.add_argument("--chips", type=int, default=2, help="chip instances (seeds cfg.seed ..)")
    p.add_argument("--out", required=True, help="JSON file to write")
    add_config_args(p)
    a = p.parse_args(argv)
    try:
        for name in ("images", "chips"):
            if getattr(a, name) < 1:
                raise InputError("--" + name, getattr(a, name), "a whole number >= 1")
        from norsim.cli.run import load_model
        from norsim.data import load_dataset
        from norsim.mapping import engine, mapper
        from norsim.mapping.preflight import check_job
        from norsim.progress import Progress
        from norsim.qat.noise import output_noise_from_stats

        cfg = config_from_args(a)
        model = load_model(a.model)
        check_job(model, cfg)
        pool = load_dataset(a.data, "calib", data_dir=a.data_dir).x
        n_cal = cfg.mapping.calibration_images
        if len(pool) < n_cal + a.images:
            raise InputError("--images", a.images, f"at most {len(pool) - n_cal} (the "
                             f"calibration slice's images after the {n_cal} that calibrate)")
        calib, x = pool[:n_cal], pool[n_cal:n_cal + a.images]
        check_job(model, cfg, x, calib)
        # a step per stage of each chip: programming, ADC calibration, the images
        bar = Progress(3 * a.chips, "layer noise", unit="stage")
        stats, t0 = [], time.perf_counter()
        for i in range(a.chips):
            c = cfg.with_overrides({"seed": cfg.seed + i})
            chip = mapper.map_model(model, c)
            bar.step(f"chip seed {c.seed} programmed")
            engine.calibrate(chip, calib)
            bar.step(f"chip seed {c.seed} calibrated on {len(calib)} images")
            stats.append(engine.run(chip, x).layer_stats)
            bar.step(f"chip seed {c.seed} ran {len(x)} images")
        bar.close()
    except NorsimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rel = output_noise_from_stats(stats)
    rep = {"out_noise_rel": rel,
           "snr_db": {k: (-20 * math.log10(v) if v > 0 else None) for k, v in rel.items()},
           "model": a.model, "produced_by": produced_by(a), "images": a.images,
           "image_source": f"{a.data} calibration slice (training images), images "
                           f"{n_cal}..{n_cal + a.images - 1}; the first {n_cal} calibrate",
           "chips": [cfg.seed + i for i in range(a.chips)],
           "seconds": round(time.perf_counter() - t0, 1)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rep, indent=1) + "\n")
    for k, v in rel.items():
        print(f"{k:<16} relative noise {v:.4f}  SNR {rep['snr_db'][k]:.1f} dB")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
