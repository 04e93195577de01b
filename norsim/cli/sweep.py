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
    p.add_argument("--dry-run", action="store_true",
                   help="check everything a run needs (spec, evaluator options, model, data, "
                        "the model's fit on every point's array, RESULTS), count the runs (and "
                        "those already in RESULTS), run nothing")
    p.set_defaults(func=run)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from norsim.errors import InputError
    from norsim.experiments.runner import run_sweep
    from norsim.experiments.store import results_path
    from norsim.outputs import check_output_file

    if args.workers is not None and args.workers < 1:
        raise InputError("--workers", args.workers, "a whole number >= 1")
    check_output_file("--out", results_path(args.out))
    if args.dry_run:
        return _dry_run(args)
    # SIGTERM ends the sweep like Ctrl-C: queued points dropped, workers stopped, rows kept.
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        summary = run_sweep(args.spec, args.out, workers=args.workers, scheduler=args.scheduler,
                            progress=False if args.no_progress else None,
                            retry_failed=args.retry_failed)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(summary.line())
    return _report_failures(summary.path)


def failure_summary(path) -> tuple[int, list[tuple[int, str]]]:
    """(error rows in the results file, [(count, first line of the error)] most common
    first)."""
    from collections import Counter

    from norsim.experiments.store import ResultStore

    with ResultStore.open(path) as store:
        errors = [r["error"] or "" for r in store.rows() if r["status"] == "error"]
    counts = Counter((e.strip().splitlines() or ["(no error text)"])[0][:300] for e in errors)
    return len(errors), [(n, text) for text, n in counts.most_common()]


def _report_failures(path) -> int:
    n, kinds = failure_summary(path)
    if not n:
        return 0
    print(f"norsim sweep: {n} runs failed (rerun with --retry-failed to run them again):",
          file=sys.stderr)
    for count, text in kinds[:3]:
        print(f"  {count} x {text}", file=sys.stderr)
    if len(kinds) > 3:
        print(f"  ... and {len(kinds) - 3} other errors (see the results' error column)",
              file=sys.stderr)
    return 1


def _dry_run(args: argparse.Namespace) -> int:
    from norsim.experiments.spec import load_spec
    from norsim.experiments.store import ResultStore, results_path

    from norsim.experiments.evaluators import check_spec
    from norsim.outputs import check_output_file

    spec = load_spec(args.spec)
    tasks = spec.tasks()  # builds and validates every configuration
    check_spec(spec, tasks)  # evaluator options, model, data, array fit
    check_output_file("--out", results_path(args.out))
    done = 0
    if results_path(args.out).exists():
        with ResultStore.open(args.out) as store:
            rows = store.finished()
        keys = {t.key for t in tasks}
        done = sum(1 for k in rows if k in keys)
    axes = ", ".join(f"{'+'.join(a.fields)} ({len(a.values)})" for a in spec.axes) or "none"
    print(f"{spec.n_points} grid points x {spec.seed_count} seeds = {len(tasks)} runs; "
          f"{done} already in {results_path(args.out)}; axes: {axes}; evaluator: {spec.evaluator}")
    return 0
