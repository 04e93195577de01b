"""What runs in a worker process: thread limits, a parent watchdog, one point.

This module imports nothing heavy at the top: the process-pool initializer must set the
thread-count variables *before* numpy, BLAS or numba are imported in the child.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import threading
import time
import traceback

THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}

INITIALISED = False
NUMPY_IMPORTED_BEFORE_INIT = False
WATCHDOG_PERIOD_S = 0.5


def init_worker(parent_pid: int | None = None) -> None:
    """Process-pool initializer: one BLAS/numba thread, and exit if the parent dies.

    A parent killed with SIGKILL cannot shut its pool down; without the watchdog its workers
    would finish their point and then wait forever on the task queue.
    """
    global INITIALISED, NUMPY_IMPORTED_BEFORE_INIT
    NUMPY_IMPORTED_BEFORE_INIT = "numpy" in sys.modules
    os.environ.update(THREAD_ENV)
    INITIALISED = True
    if parent_pid is not None and hasattr(os, "getppid"):
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                         name="norsim-parent-watchdog").start()


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(WATCHDOG_PERIOD_S)
        if os.getppid() != parent_pid:
            os._exit(3)


def _limit_threads_late() -> None:
    """For executors without an initializer (Dask): set what can still be set."""
    for key, value in THREAD_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import numba

        numba.set_num_threads(1)  # parallel kernels of this thread run on one thread
    except Exception:  # pragma: no cover - e.g. no threading layer
        pass


def _check_metrics(metrics) -> dict:
    if not isinstance(metrics, dict):
        raise TypeError(f"evaluator returned {type(metrics).__name__}, expected a dict of metrics")
    out = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"metric name {key!r} is not a non-empty string")
        if isinstance(value, bool):
            value = int(value)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {key} = {value!r} is not a real number") from None
        if not math.isfinite(number):
            raise ValueError(f"metric {key} = {value!r} is not finite")
        out[key] = int(value) if isinstance(value, int) or (
            hasattr(value, "dtype") and value.dtype.kind in "iu") else number
    return out


def run_point(task: dict, evaluator: str, model: str, data: str, options: dict) -> dict:
    """Evaluate one point; never raises for an evaluator failure (the error is returned)."""
    if not INITIALISED:
        _limit_threads_late()
    t0 = time.perf_counter()
    out = {"worker": f"{socket.gethostname()}:{os.getpid()}"}
    try:
        from norsim import __version__
        from norsim.config.sim import SimConfig
        from norsim.experiments.evaluators import Point, load_evaluator

        out["norsim_version"] = __version__
        fn = load_evaluator(evaluator)
        cfg = SimConfig.from_toml(task["config_toml"]).validate()
        point = Point(index=task["index"], replicate=task["replicate"], axes=dict(task["axes"]),
                      config=cfg, seed=task["seed"], spawn_key=tuple(task["spawn_key"]),
                      model=model, data=data, options=dict(options))
        out["metrics"] = _check_metrics(fn(point))
        out["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - a failing point must not stop the sweep
        out["status"] = "error"
        out["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:2000]
        out["traceback"] = traceback.format_exc()[-20000:]
    out["wall_s"] = time.perf_counter() - t0
    return out
