"""Arguments shared by subcommands: --config FILE and --set field=value."""

from __future__ import annotations

import argparse

from norsim.config.presets import load_preset
from norsim.config.sim import SimConfig


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML configuration (default: preset nor40)")
    parser.add_argument("--preset", default="nor40", help="preset to start from (default nor40)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="FIELD=VALUE", help="override one field, e.g. --set device.read.temperature_k=358")


def config_from_args(args: argparse.Namespace) -> SimConfig:
    cfg = SimConfig.load(args.config) if args.config else load_preset(args.preset)
    if args.overrides:
        cfg = cfg.with_overrides(args.overrides)
    return cfg.validate()


def produced_by(args: argparse.Namespace) -> str:
    """Where the configuration came from: preset or file, and the options set on top."""
    base = f"config file {args.config}" if getattr(args, "config", None) else \
        f"preset {getattr(args, 'preset', 'nor40')}"
    sets = list(getattr(args, "overrides", []) or [])
    return base + (", options " + " ".join(sets) if sets else ", no options changed")
