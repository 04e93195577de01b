"""``norsim report``: energy, latency and area of a model on simulated NOR arrays.

The cost comes from the event counts of the same run that gives the accuracy (norsim.cost).
With ``--data`` the events are counted on that data set's test images (and the accuracy is
reported too); without it, on a batch of the calibration split (the model's input shape picks
MNIST or CIFAR-10; seeded random images when neither is available), and the report says so.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from norsim.cli.common import add_config_args, config_from_args, produced_by
from norsim.errors import InputError, NorsimError

_STREAM_SYNTHETIC = 404


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="energy, latency, area and TOPS/W of a model on NOR arrays")
    p.add_argument("--model", required=True, help="zoo:NAME or a QuantModel .npz file")
    add_config_args(p)
    p.add_argument("--data", default=None, help="data set for the events and the accuracy "
                   "('mnist', 'cifar10', a directory); default: a calibration batch")
    p.add_argument("--data-dir", default=None, help="root of the larger data sets (default $NORSIM_DATA)")
    p.add_argument("--limit", type=int, default=64, help="images the events are counted on (default 64)")
    p.add_argument("--json", dest="json_out", default=None, help="write the report as JSON")
    p.add_argument("--figure", default=None, help="stacked-bar energy figure (PNG); default next "
                   "to --json, else out/report/energy.png")
    p.set_defaults(func=run)


def calibration_batch(model, n: int, n_cal: int, data_dir: str | None, rng: np.random.Generator):
    """(``n_cal`` calibration images, ``n`` event images, description) without a test set:
    two disjoint parts of the calibration split."""
    from norsim.data import load_dataset

    c, h, w = model.input.shape
    name = {(1, 28, 28): "mnist", (3, 32, 32): "cifar10"}.get((c, h, w))
    if name is not None:
        try:
            x = load_dataset(name, "calib", data_dir=data_dir).x
            k = min(len(x) // 2, n_cal)
            return x[:k], x[k:k + n], f"{name} calibration images (no data set given)"
        except NorsimError:
            pass
    shape = (h, w) if c == 1 else (h, w, c)
    x = rng.integers(0, 256, size=(n_cal + n,) + shape, dtype=np.uint8)
    return x[:n_cal], x[n_cal:], "seeded random images (no data set given, none available)"


def run(args: argparse.Namespace) -> int:
    from norsim.cli.run import load_eval_data, load_model
    from norsim.cost.report import cost_of_chip, format_report, plot_energy, run_for_cost

    from norsim.outputs import check_output_file

    if args.limit < 1:
        raise InputError("--limit", args.limit, "a positive number of images")
    if args.json_out:
        check_output_file("--json", args.json_out)
    fig = Path(args.figure) if args.figure else (
        Path(args.json_out).with_suffix(".png") if args.json_out else Path("out/report/energy.png"))
    check_output_file("--figure", fig, suffix=".png")
    cfg = config_from_args(args)
    from norsim.mapping.preflight import check_job

    model = load_model(args.model)
    check_job(model, cfg)  # the model fits the array, before loading data
    accuracy = None
    if args.data:
        x, y, x_cal = load_eval_data(args.data, args.limit, args.data_dir)
        x_cal = x_cal[:cfg.mapping.calibration_images]
        source = f"{args.data} test images"
    else:
        x_cal, x, source = calibration_batch(model, args.limit, cfg.mapping.calibration_images,
                                             args.data_dir, cfg.rng(_STREAM_SYNTHETIC))
        y = None
    check_job(model, cfg, x, x_cal)
    chip, result = run_for_cost(model, cfg, x, x_cal)
    if y is not None:
        accuracy = float(np.mean(result.predictions == np.asarray(y)))
    rep = cost_of_chip(chip, len(x), cfg, source)
    print(f"model {args.model}; {produced_by(args)}")
    if accuracy is not None:
        print(f"accuracy on {len(x)} {source}: {100 * accuracy:.2f} %\n")
    print(format_report(rep))
    plot_energy(rep, fig, f"model {args.model}; {produced_by(args)}")
    print(f"\nenergy figure: {fig}")
    if args.json_out:
        out = rep.as_dict()
        out["accuracy"] = accuracy
        out["model_spec"] = args.model
        out["produced_by"] = produced_by(args)
        out["config"] = cfg.to_dict()
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(out, indent=1, default=float))
    return 0
