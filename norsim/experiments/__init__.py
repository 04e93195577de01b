"""Sweeps: a grid of configurations x Monte-Carlo seeds through an executor, into SQLite.

Imports are lazy so that worker processes can set their thread limits before numpy loads.
See ``docs/sweeps.md``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["sweep", "run_sweep", "load_results", "load_spec", "SweepSpec", "Point",
           "register_evaluator"]

_LAZY = {
    "run_sweep": "norsim.experiments.runner",
    "SweepSummary": "norsim.experiments.runner",
    "load_results": "norsim.experiments.results",
    "load_spec": "norsim.experiments.spec",
    "SweepSpec": "norsim.experiments.spec",
    "Point": "norsim.experiments.evaluators",
    "register_evaluator": "norsim.experiments.evaluators",
}


def sweep(spec, out, *, workers: int | None = None, scheduler: str | None = None,
          progress: bool | None = None, retry_failed: bool = False):
    """Run (or resume) a sweep and return all its rows as a pandas DataFrame.

    ``spec``: a spec file path, a parsed spec dict or a :class:`SweepSpec`; ``out``: the
    SQLite results file (created or resumed). Finished points are skipped; see
    :func:`norsim.experiments.runner.run_sweep` for the other arguments.
    """
    from norsim.experiments.results import load_results, require_pandas
    from norsim.experiments.runner import run_sweep

    require_pandas()
    summary = run_sweep(spec, out, workers=workers, scheduler=scheduler, progress=progress,
                        retry_failed=retry_failed)
    return load_results(summary.path)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'norsim.experiments' has no attribute {name!r}")
