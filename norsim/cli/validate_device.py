"""``norsim validate-device``: published device measurements re-run as simulated experiments."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from norsim.cli.common import add_config_args, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate-device", help="published device measurements (tuning "
                       "precision, VMM precision, retention, injection statistics, subthreshold "
                       "swing) simulated under the papers' conditions: published vs simulated, "
                       "tolerance, PASS/FAIL, one figure per row")
    add_config_args(p)
    p.add_argument("--out", default="validation-device",
                   help="folder for the figures and validation.json (default validation-device)")
    p.add_argument("--quick", action="store_true", help="fewer cells and points (~1 min)")
    p.add_argument("--seed", type=int, default=0, help="root seed of the experiments")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from norsim.device.validation import TOLERANCES, format_table, run_validation

    cfg = config_from_args(args)
    out = Path(args.out)
    rows = run_validation(cfg, out, quick=args.quick, seed=args.seed, show_progress=None)
    print(format_table(rows))
    print()
    for r in rows:
        print(f"- {r.name}: {r.source}; {r.conditions}" + (f"; {r.note}" if r.note else ""))
    (out / "validation.json").write_text(json.dumps(
        {"tolerances": {k: list(v) if isinstance(v, tuple) else v for k, v in TOLERANCES.items()},
         "rows": [asdict(r) for r in rows]}, indent=1, default=float))
    print(f"\nfigures and validation.json in {out}/")
    return 1 if any(r.status == "FAIL" for r in rows) else 0
