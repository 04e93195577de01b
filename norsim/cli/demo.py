"""``norsim demo``: the main job on the embedded default."""

from __future__ import annotations

import argparse

from norsim.cli.common import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the embedded default")
    p.add_argument("--out", default="out/demo", help="output directory")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Until the mapper exists the main job is the device study.
    from norsim.cli import device_study

    return device_study.run(args)
