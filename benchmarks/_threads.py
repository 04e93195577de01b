"""Thread counts pinned and recorded by every benchmark (issue 26).

A ratio between a numba kernel and a NumPy/BLAS baseline flatters one side when the two run
on different numbers of threads (numba takes every core by default, OpenBLAS reads
``OMP_NUM_THREADS``). Each ``benchmarks/bench_*.py`` calls :func:`pin` before it times
anything: numba and the BLAS library both get ``NORSIM_BENCH_THREADS`` threads (default 2,
or the cores there are if fewer), set at run time (``numba.set_num_threads``, threadpoolctl),
whatever ``OMP_NUM_THREADS`` was at start. :func:`record` gives the counts in force, which
each benchmark adds to its JSON line; ``threads_equal`` is false if anything changed them.
"""

from __future__ import annotations

import os

ENV = "NORSIM_BENCH_THREADS"
_limits = None  # the threadpoolctl handle: kept so the BLAS limit stays in force


def bench_threads() -> int:
    """Threads for both sides: ``$NORSIM_BENCH_THREADS``, else min(2, cores)."""
    raw = os.environ.get(ENV)
    if raw is None:
        return max(1, min(2, os.cpu_count() or 1))
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise SystemExit(f"{ENV}={raw!r}: expected a positive whole number of threads")
    return n


def _blas_threads() -> tuple[int | None, str | None]:
    from threadpoolctl import threadpool_info

    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not blas:
        return None, None
    return min(i["num_threads"] for i in blas), ",".join(i["internal_api"] for i in blas)


def pin(n: int | None = None) -> dict:
    """Set numba's and the BLAS library's threads to ``n`` (default :func:`bench_threads`)."""
    global _limits
    import numba
    from threadpoolctl import threadpool_limits

    n = bench_threads() if n is None else n
    if n > numba.config.NUMBA_NUM_THREADS:
        raise SystemExit(f"{ENV}={n}: more than NUMBA_NUM_THREADS="
                         f"{numba.config.NUMBA_NUM_THREADS} (set NUMBA_NUM_THREADS too)")
    numba.set_num_threads(n)
    _limits = threadpool_limits(limits=n, user_api="blas")
    pin.threads = n
    return record()


def record() -> dict:
    """The thread counts in force now, for the benchmark's JSON line."""
    import numba

    blas, api = _blas_threads()
    numba_n = numba.get_num_threads()
    pinned = getattr(pin, "threads", None)
    return {"bench_threads": pinned, "numba_threads": numba_n,
            "numba_num_threads_max": int(numba.config.NUMBA_NUM_THREADS),
            "blas_threads": blas, "blas_library": api,
            "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
            "cpu_count": os.cpu_count(),
            "threads_equal": pinned is not None and numba_n == pinned
            and blas in (pinned, None)}
