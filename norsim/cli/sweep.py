"""``norsim sweep SPEC.toml --out RESULTS``: run or resume a sweep (see docs/sweeps.md)."""

from __future__ import annotations

import argparse
import signal
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a sweep spec over configurations x seeds; "
                                     "rerunning resumes it",
                       description="Run every point of SPEC (axes x Monte-Carlo seeds) and "
                                   "commit each finished point to the SQLite file RESULTS. "
                                   "Rerunning the same command skips finished points.")
    p.add_argument("spec", metavar="SPEC.toml", help="sweep specification (docs/sweeps.md)")
    p.add_argument("--out", required=True, metavar="RESULTS",
                   help="results file (SQLite; created or resumed; a folder holds results.sqlite)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local worker processes (default: the CPUs available)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="run on a Dask cluster at ADDRESS (e.g. tcp://host:8786) instead of "
                        "local processes (needs the 'dask' extra)")
    p.add_argument("--retry-failed", action="store_true",
                   help="run points that failed before again (successful rows are kept)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from norsim.errors import InputError
    from norsim.experiments.runner import run_sweep

    if args.workers is not None and args.workers < 1:
        raise InputError("--workers", args.workers, "a whole number >= 1")
    # SIGTERM ends the sweep like Ctrl-C: queued points dropped, workers stopped, rows kept.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        summary = run_sweep(args.spec, args.out, workers=args.workers, scheduler=args.scheduler,
                            progress=False if args.no_progress else None,
                            retry_failed=args.retry_failed)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(summary.line())
    if summary.failed:
        print(f"{summary.failed} runs failed; their error text is in the results "
              "(rerun with --retry-failed to run them again)", file=sys.stderr)
    return 0
