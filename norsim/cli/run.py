"""``norsim run``: a QuantModel on NOR arrays (simulated, recorded or a chip server: ``--backend``)
over a data set, with a report."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from norsim.cli.common import add_config_args, config_from_args
from norsim.errors import InputError


def load_model(spec: str):
    """``zoo:NAME`` or a path to a QuantModel .npz."""
    from norsim.mapping.quant_model import QuantModel

    if spec.startswith("zoo:"):
        from norsim import zoo

        return zoo.load(spec[4:])
    path = Path(spec)
    if path.suffix.lower() == ".onnx" and path.is_file():   # needs the onnx extra
        return QuantModel.from_onnx(path)
    if not path.is_file():
        raise InputError("--model", spec, "zoo:NAME, a QuantModel .npz or an .onnx file")
    return QuantModel.load(path)


def load_eval_data(name: str, limit: int | None, data_dir: str | None = None):
    """(images, labels, calibration images) of a data set; calibration never overlaps."""
    from norsim.data import load_dataset

    test = load_dataset(name, "test", data_dir=data_dir)
    calib = load_dataset(name, "calib", data_dir=data_dir)
    x, y = test.x, test.y
    if limit is not None:
        if limit < 1:
            raise InputError("--limit", limit, "a positive number of images")
        x, y = x[:limit], y[:limit]
    return x, y, calib.x


def add_model_data_args(p: argparse.ArgumentParser, default_model: str | None = None) -> None:
    p.add_argument("--model", default=default_model, required=default_model is None,
                   help="zoo:NAME, a QuantModel .npz or an .onnx file")
    p.add_argument("--data", default="mnist",
                   help="'mnist' (embedded), 'mnist-full', 'cifar10' (under $NORSIM_DATA) or a directory")
    p.add_argument("--data-dir", default=None, help="root of the larger data sets (default $NORSIM_DATA)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N test images")
    p.add_argument("--seeds", type=int, default=1, help="chip instances (seeds cfg.seed .. +N-1)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a model on NOR arrays (simulated, recorded or a chip "
                                   "server) and report accuracy")
    add_model_data_args(p)
    add_config_args(p)
    p.add_argument("--backend", default="sim", metavar="SPEC",
                   help="where the chip runs: 'sim' (the simulator, default), 'replay:DIR' "
                        "(a recorded chip) or 'remote:HOST:PORT' (a chip server); see "
                        "docs/chip-in-the-loop.md")
    p.add_argument("--record", default=None, metavar="DIR",
                   help="record the run (one chip instance) into a replay directory DIR "
                        "(a new or empty folder) for --backend replay:DIR")
    p.add_argument("--json", dest="json_out", default=None, help="write the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _iv(iv) -> str:
    return f"{100 * iv[0]:+.2f} to {100 * iv[1]:+.2f}"


def _programming_line(rep: dict) -> str:
    """Program-and-verify outcome per chip: cells flagged, columns repaired, cells left."""
    per_chip = []
    for inst in rep["instances"]:
        rows = inst["layers"]
        per_chip.append((sum(r.get("failed_cells_before_repair", 0) for r in rows),
                         sum(r.get("repaired_columns", 0) for r in rows),
                         sum(r.get("failed_cells", 0) for r in rows)))
    parts = "; ".join(f"{f} flagged, {c} columns repaired, {left} left" for f, c, left in per_chip)
    return f"programming       : {parts} (per chip; flagged = outside the verify tolerance " \
           "when the pulse budget ran out, or stuck)"


def format_report(rep: dict, label: str = "analog chip") -> str:
    ref, chip, diff = rep["reference"], rep["chip"], rep["difference"]
    lo, hi = ref["test_interval_95"]
    spread = chip["chip_to_chip"]
    n_chips = len(chip["accuracy_per_seed"])
    chip_note = ("one chip instance: no chip-to-chip spread" if spread is None else
                 f"chip-to-chip sd {100 * spread['std']:.2f} pts over {spread['n']} chips")
    intervals = f"95% given these chips {_iv(diff['paired_bootstrap_95'])}"
    if n_chips > 1:
        intervals = (f"95% over chips {_iv(diff['over_chips_95'])} (hull of two-level "
                     f"bootstrap {_iv(diff['two_level_bootstrap_95'])} and t over chips "
                     f"{_iv(diff['t_over_chips_95'])}); " + intervals)
    lines = [
        f"images: {rep['images']}",
        f"integer reference : {100 * ref['accuracy']:6.2f} %   (test-set 95% interval {100 * lo:.2f}-{100 * hi:.2f})",
        f"{label:<18}: {100 * chip['accuracy_mean']:6.2f} %   ({chip_note})",
        f"difference        : {100 * diff['mean']:+6.2f} pts ({intervals}; "
        f"McNemar p per chip {', '.join(f'{p:.3g}' for p in diff['mcnemar_p_per_seed'])})",
        _programming_line(rep),
        "",
        f"{'layer':<10} {'op':<7} {'matrix':>10} {'bits x/w':>8} {'where':>8} {'tiles':>5} "
        f"{'util %':>7} {'SNR dB':>7}",
    ]
    for row in rep["instances"][0]["layers"]:
        snr = row["mvm_snr_db"]
        snr_s = "-" if snr is None else ("inf" if not np.isfinite(snr) else f"{snr:.1f}")
        lines.append(f"{row['layer']:<10} {row['op']:<7} {'x'.join(map(str, row['weight_matrix'])):>10} "
                     f"{row['in_bits']:>3}/{row['weight_bits']:<4} {row['where']:>8} {row['tiles']:>5} "
                     f"{100 * row['utilisation']:>7.1f} {snr_s:>7}")
    return "\n".join(lines)


def _backend_factory(args):
    """The --backend spec (checked), wrapped in a recorder for --record."""
    from norsim.backend.base import parse_backend

    kind, arg = parse_backend(args.backend)
    if kind == "replay" and not Path(arg).is_dir():
        raise InputError("--backend", args.backend, "replay:DIR with an existing directory "
                         "(written by norsim run --record DIR)")
    if args.seeds > 1 and (kind == "replay" or args.record):
        raise InputError("--seeds", args.seeds, "1 with --record or a replay back-end (a replay "
                         "directory holds one chip instance)")
    if not args.record:
        return args.backend
    rec = Path(args.record)
    if rec.exists() and (not rec.is_dir() or any(rec.iterdir())):
        raise InputError("--record", args.record, "a new or empty folder")
    spec = args.backend

    def factory(cfg):
        from norsim.backend import open_backend
        from norsim.backend.recorder import RecordingBackend

        return RecordingBackend(open_backend(spec, cfg), rec, cfg)
    return factory


def backend_header(info, spec: str) -> str:
    """The line naming the back-end a run used."""
    t = "" if info.temperature_k != info.temperature_k else f", {info.temperature_k:.1f} K"
    return (f"back-end: {spec} ({info.kind}; chip {info.chip_id or '?'}; "
            f"{info.firmware or 'firmware ?'}{t}; {info.time_since_programming_s:.3g} s since "
            f"programming; {info.protocol})")


def run(args: argparse.Namespace) -> int:
    from norsim.experiments.evaluate import evaluate, jsonable

    from norsim.mapping import preflight
    from norsim.outputs import check_output_file

    if args.seeds < 1:
        raise InputError("--seeds", args.seeds, "at least 1")
    if args.json_out:
        check_output_file("--json", args.json_out)
    backend = _backend_factory(args)
    cfg = config_from_args(args)
    model = load_model(args.model)
    preflight.check_job(model, cfg)
    x, y, x_cal = load_eval_data(args.data, args.limit, args.data_dir)
    preflight.check_job(model, cfg, x, x_cal)
    from norsim.progress import Progress
    from norsim.warmup import warm_kernels

    if not args.no_progress:
        warm_kernels(cfg, say=lambda s: print(s, file=sys.stderr, flush=True))
    bar = Progress(args.seeds, "run", unit="chip", enabled=False if args.no_progress else None)
    try:
        rep = evaluate(model, cfg, x, y, x_cal[:cfg.mapping.calibration_images],
                       seeds=range(cfg.seed, cfg.seed + args.seeds),
                       progress=not args.no_progress and sys.stderr.isatty(), keep_chips=True,
                       on_chip=lambda r: bar.step(f"chip {r['seed']}: "
                                                  f"{100 * r['accuracy']:.2f} %"),
                       backend=backend)
    finally:
        bar.close()
    chips = [inst["chip"] for inst in rep["instances"]]
    info = chips[0].backend.info()
    print(backend_header(info, args.backend))
    cost = None
    if all(t.array is not None for t in chips[0].tiles()):
        from norsim.cost.report import cost_from_evaluation, format_report as format_cost

        cost = cost_from_evaluation(rep, cfg)  # energy/latency/area of seed cfg.seed's chip
    print(format_report(rep))
    if cost is not None:
        print("\n" + format_cost(cost))
    else:
        print("\n(energy, latency, area: the cost model needs simulated tiles; back-end "
              f"{args.backend!r} has none)")
    for chip in chips:
        chip.backend.close()     # a recording is written here
    if args.record:
        print(f"recorded: {args.record} (replay with --backend replay:{args.record})")
    if args.json_out:
        out = jsonable(rep)
        out["backend"] = dataclasses.asdict(info)
        out["cost"] = None if cost is None else cost.as_dict()
        out["config"] = cfg.to_dict()
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(out, indent=1))
    return 0
