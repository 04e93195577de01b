"""The ``norsim`` command line: one subcommand per job, errors in one line."""

from __future__ import annotations

import argparse
import importlib
import sys

import norsim
from norsim.errors import NorsimError

# Each module defines ``register(subparsers)`` that adds its parser and sets ``func``.
SUBCOMMAND_MODULES = [
    "norsim.cli.demo",
    "norsim.cli.run",
    "norsim.cli.spice_check",
    "norsim.cli.device_study",
    "norsim.cli.array_study",
    "norsim.cli.sweep",
    "norsim.cli.plot",
    "norsim.cli.train",
    "norsim.cli.zoo",
    "norsim.cli.report",
    "norsim.cli.array_sweep",
    "norsim.cli.budget",
    "norsim.cli.warmup",
    "norsim.cli.validate_device",
    "norsim.cli.import_model",
    "norsim.cli.fit",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="norsim",
        description="NOR-flash compute-in-memory simulator: device physics to CNN accuracy, "
                    "energy and latency.")
    parser.add_argument("--version", action="version", version=f"norsim {norsim.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NorsimError as exc:
        print(f"norsim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, MemoryError) as exc:
        print(f"norsim {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"norsim {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
