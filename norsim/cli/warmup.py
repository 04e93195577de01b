"""``norsim warmup``: compile and cache the numba kernels of the main job (``make env``)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("warmup", help="compile and cache the numba kernels (run by make env)",
                       description="Runs every code path of the main job on two images so "
                       "that numba compiles and caches its kernels now (minutes on a first "
                       "run, about a second afterwards) instead of inside the first job.")
    p.add_argument("--force", action="store_true", help="run even if the cache is warm")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from norsim.warmup import cache_dir, warm_kernels

    seconds = warm_kernels(say=lambda s: print(s, file=sys.stderr, flush=True), force=args.force)
    print(f"numba kernels ready ({seconds:.1f} s; cache: {cache_dir()})"
          if seconds else f"numba kernels already cached for these sources ({cache_dir()})")
    return 0
