"""``norsim budget``: each non-ideality alone and all together, against the integer reference."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from norsim.cli.common import add_config_args, config_from_args, produced_by
from norsim.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    from norsim.cli.run import add_model_data_args

    p = sub.add_parser("budget", help="error budget: accuracy drop of each non-ideality alone "
                       "and all together (paired tests, per-layer SNR, most sensitive layer)")
    add_model_data_args(p, default_model="zoo:lenet-mnist-4b")
    add_config_args(p)
    p.add_argument("--effects", default=None,
                   help="comma-separated subset of the effects (default: all of them)")
    p.add_argument("--retention-s", type=float, default=None,
                   help="retention age for the retention effect and the all-on run (s)")
    p.add_argument("--retention-temp-k", type=float, default=None, help="bake temperature (K)")
    p.add_argument("--temperature-k", type=float, default=None, help="read temperature (K)")
    p.add_argument("--reads", type=float, default=None,
                   help="reads per cell before the evaluation, for the read-disturb effect and "
                   "the all-on run (device.disturb.read_count)")
    p.add_argument("--no-layers", action="store_true", help="skip the per-layer sensitivity runs")
    p.add_argument("--json", dest="json_out", default=None, help="write the report as JSON")
    p.add_argument("--figure", default=None, help="ranking figure (PNG); default next to --json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from norsim.cli.run import load_eval_data, load_model
    from norsim.experiments import budget as bud

    from norsim.outputs import check_output_file

    if args.json_out:
        check_output_file("--json", args.json_out)
    fig = args.figure or (str(Path(args.json_out).with_suffix(".png")) if args.json_out else None)
    if fig:
        check_output_file("--figure", fig, suffix=".png")
    cfg = config_from_args(args)
    over = {}
    if args.retention_s is not None:
        over["mapping.retention_time_s"] = args.retention_s
    if args.retention_temp_k is not None:
        over["mapping.retention_temperature_k"] = args.retention_temp_k
    if args.temperature_k is not None:
        over["device.read.temperature_k"] = args.temperature_k
    if args.reads is not None:
        over["device.disturb.read_count"] = args.reads
    if over:
        cfg = cfg.with_overrides(over)
    if args.seeds < 1:
        raise InputError("--seeds", args.seeds, "at least one chip instance")
    effects = None
    if args.effects:
        effects = [e.strip() for e in args.effects.split(",") if e.strip()]
        for e in effects:
            if e not in bud.EFFECTS:
                raise InputError("--effects", e, "names from: " + ", ".join(bud.EFFECTS))
    from norsim.mapping.preflight import check_job

    model = load_model(args.model)
    check_job(model, cfg)
    x, y, xc = load_eval_data(args.data, args.limit, args.data_dir)
    check_job(model, cfg, x, xc)
    seeds = [cfg.seed + i for i in range(args.seeds)]
    rep = bud.budget(model, cfg, x, y, xc, seeds=seeds, effects=effects,
                     layer_sensitivity=not args.no_layers,
                     progress=lambda name, row: print(f"  {name}: {100 * row['accuracy']:.2f} %",
                                                      flush=True))
    rep["produced_by"] = f"model {args.model}; {produced_by(args)}"
    print(rep["produced_by"])
    print(bud.format_report(rep))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(rep, indent=1, default=float))
    if fig:
        bud.plot_ranking(rep, fig)
        print(f"figure: {fig}")
    return 0
