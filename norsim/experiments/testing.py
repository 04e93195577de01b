"""Tiny deterministic evaluators for tests and for trying the sweep machinery.

``test``: metrics that are closed-form functions of the point's configuration plus draws
from the point's seed, so a test can recompute them independently. Options:

* ``sleep_s`` (float, default 0): wall time to spend per point (for crash/resume tests);
* ``fail_points`` (list of grid indices, default []): raise ``RuntimeError`` at those points;
* ``fail_if_exists`` (path, default ""): raise at every point while this file exists (to
  test ``--retry-failed`` without changing the spec);
* ``n`` (int, default 1000): sample count of the ``accuracy`` metric.

Metrics: ``value = temperature_k / 100 + rows / 1000``, ``draw`` = first uniform of
``config.rng(0)``, ``accuracy`` = Binomial(n, p) / n with ``p = 0.9 - 0.001 (T - 300)``
(clipped to [0, 1]) drawn from ``config.rng(1)``, and ``accuracy_n = n``.

``test-env``: reports the worker's thread settings (for the one-thread-per-worker test).
"""

from __future__ import annotations

import os
import sys
import time

from norsim.errors import ConfigError

_OPTIONS = {"sleep_s": (int, float), "fail_points": list, "fail_if_exists": str, "n": int}


def _options(point) -> dict:
    opts = {"sleep_s": 0.0, "fail_points": [], "fail_if_exists": "", "n": 1000}
    for key, value in point.options.items():
        if key not in _OPTIONS:
            raise ConfigError(f"options.{key}", value, "one of " + ", ".join(_OPTIONS))
        if isinstance(value, bool) or not isinstance(value, _OPTIONS[key]):
            raise ConfigError(f"options.{key}", value, f"a {_OPTIONS[key]}")
        opts[key] = value
    return opts


def evaluate(point) -> dict:
    opts = _options(point)
    if opts["sleep_s"]:
        time.sleep(opts["sleep_s"])
    if point.index in opts["fail_points"]:
        raise RuntimeError(f"test evaluator asked to fail at point {point.index}")
    if opts["fail_if_exists"] and os.path.exists(opts["fail_if_exists"]):
        raise RuntimeError(f"test evaluator fails while {opts['fail_if_exists']} exists")
    cfg = point.config
    t = cfg.device.read.temperature_k
    p = min(1.0, max(0.0, 0.9 - 0.001 * (t - 300.0)))
    n = opts["n"]
    return {
        "value": t / 100.0 + cfg.array.rows / 1000.0,
        "draw": float(cfg.rng(0).random()),
        "accuracy": int(cfg.rng(1).binomial(n, p)) / n,
        "accuracy_n": n,
    }


def evaluate_env(point) -> dict:
    from norsim.experiments import worker

    import numba

    return {
        "omp_threads": int(os.environ.get("OMP_NUM_THREADS", "0")),
        "openblas_threads": int(os.environ.get("OPENBLAS_NUM_THREADS", "0")),
        "mkl_threads": int(os.environ.get("MKL_NUM_THREADS", "0")),
        "numba_threads": int(numba.get_num_threads()),
        "numpy_imported_before_init": bool(worker.NUMPY_IMPORTED_BEFORE_INIT),
        "in_worker_process": bool(worker.INITIALISED),
        "python_major": sys.version_info[0],
    }
