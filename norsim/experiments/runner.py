"""Run a sweep: expand the spec, skip finished points, run the rest through an executor.

The executor is a ``concurrent.futures`` one: a ``ProcessPoolExecutor`` (``spawn`` start
method, one BLAS/numba thread per worker) by default, or a Dask cluster's
``Client.get_executor()`` when a scheduler address is given. The parent process is the only
writer of the results file and commits each point as soon as it finishes.
"""

from __future__ import annotations

import concurrent.futures as cf
from concurrent.futures.process import BrokenProcessPool
import dataclasses
import multiprocessing
import os
import time
from pathlib import Path

from norsim.errors import ExternalToolError, InputError
from norsim.experiments import worker as _worker
from norsim.experiments.spec import PointTask, SweepSpec, as_spec
from norsim.experiments.store import ResultStore, check_rows_match

# A point in flight when a worker process died is resubmitted; after this many such deaths
# it is recorded as failed (a point that kills its worker would otherwise loop forever).
MAX_WORKER_DEATHS = 3
IN_FLIGHT_PER_WORKER = 2


@dataclasses.dataclass
class SweepSummary:
    """What one ``run_sweep`` call did."""

    path: Path
    total: int            # (grid points) x (seeds)
    skipped: int          # already finished before this call
    ran: int              # committed by this call
    failed: int           # of those, recorded as errors
    wall_s: float

    def line(self) -> str:
        return (f"{self.total} runs: {self.ran} ran ({self.failed} failed), {self.skipped} "
                f"already finished; results in {self.path}")


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _spec_text(spec: SweepSpec) -> str:
    if spec.source and Path(spec.source).is_file():
        try:
            return Path(spec.source).read_text()
        except OSError:  # pragma: no cover
            pass
    return ""


def _task_payload(task: PointTask) -> dict:
    return {"index": task.index, "replicate": task.replicate, "axes": task.axes,
            "seed": task.seed, "spawn_key": list(task.spawn_key),
            "config_toml": task.config_toml}


class _ProgressBar:
    """Finished runs of a sweep: a tqdm bar on a terminal, one line per run otherwise
    (:class:`norsim.progress.Progress`), counting the failed ones; ``initial`` runs were
    already in the results file."""

    def __init__(self, total: int, initial: int, enabled: bool | None):
        from norsim.progress import Progress

        self.failed = 0
        desc = "sweep" + (f" ({initial} of {total} runs already done)" if initial else "")
        self.bar = Progress(total - initial, desc, unit="run", enabled=enabled)

    def update(self, failed: bool) -> None:
        if failed:
            self.failed += 1
        self.bar.step(f"{self.failed} failed" if self.failed else "")

    def close(self) -> None:
        self.bar.close()


def _make_executor(workers: int, scheduler: str | None):
    if scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise ExternalToolError("--scheduler needs the optional Dask extra: "
                                    "pip install 'norsim[dask]'") from None
        try:
            client = Client(scheduler, timeout="20s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ExternalToolError(f"cannot reach the Dask scheduler at {scheduler} "
                                    f"({type(exc).__name__}: {exc})") from None
        ncores = sum(client.ncores().values()) or 1
        return client.get_executor(pure=False), client, ncores
    ctx = multiprocessing.get_context("spawn")
    ex = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                initializer=_worker.init_worker, initargs=(os.getpid(),))
    return ex, None, workers


def run_sweep(spec: "SweepSpec | dict | str | Path", out: str | Path, *,
              workers: int | None = None, scheduler: str | None = None,
              progress: bool | None = None, retry_failed: bool = False,
              chip_major: bool = False) -> SweepSummary:
    """Run every unfinished point of ``spec`` and commit each one to ``out``.

    ``workers``: local worker processes (default: the CPUs this process may use);
    ``scheduler``: a Dask scheduler address instead of local processes; ``progress``: a
    tqdm bar (None: only on a terminal); ``retry_failed``: run points that failed before
    again (their error rows are replaced; successful rows are never touched);
    ``chip_major``: start the runs replicate by replicate (every grid point of replicate 0,
    then of replicate 1, ...) instead of grid point by grid point, so that an evaluator that
    reuses a chip's programming between grid points (:mod:`norsim.mapping.program_cache`)
    meets the same chip in consecutive runs; the results do not depend on the order.
    """
    t_start = time.perf_counter()
    spec = as_spec(spec)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise InputError("workers", workers, "a whole number >= 1")
    workers = workers or default_workers()
    tasks = spec.tasks()
    from norsim import __version__
    from norsim.experiments.evaluators import check_spec, resolve_target

    check_spec(spec, tasks)  # options, model, data, array fit: before any point runs
    store = ResultStore.open(out, create=True)
    try:
        store.bind_spec(spec.identity(), _spec_text(spec), __version__)
        check_rows_match(store, tasks)
        done = store.finished(include_errors=not retry_failed)
        todo = [t for t in tasks if t.key not in done]
        if chip_major:
            todo.sort(key=lambda t: (t.replicate, t.index))
        summary = SweepSummary(store.path, len(tasks), len(done), 0, 0, 0.0)
        if todo:
            _run(todo, spec, store, resolve_target(spec.evaluator), min(workers, len(todo)),
                 scheduler, progress, summary)
    finally:
        store.close()
    summary.wall_s = time.perf_counter() - t_start
    return summary


def _run(todo: list[PointTask], spec: SweepSpec, store: ResultStore, target: str,
         workers: int, scheduler: str | None, progress: bool | None,
         summary: SweepSummary) -> None:
    bar = _ProgressBar(summary.total, summary.skipped, progress)
    args = (target, spec.model, spec.data, dict(spec.options))
    deaths: dict[tuple[int, int], int] = {}
    queue = list(reversed(todo))  # pop() from the end keeps grid order
    in_flight: dict[cf.Future, PointTask] = {}
    executor = client = None

    def commit(task: PointTask, result: dict) -> None:
        row = {"point_index": task.index, "replicate": task.replicate, "axes": task.axes,
               "seed": task.seed, "spawn_key": task.spawn_key, "config_toml": task.config_toml,
               **result}
        store.commit_point(row)
        summary.ran += 1
        failed = result["status"] != "ok"
        summary.failed += failed
        bar.update(failed)

    def outcome(fut: cf.Future) -> dict | None:
        """The point's result, an error result, or None if its worker process died."""
        try:
            return fut.result()
        except BrokenProcessPool:
            return None
        except Exception as exc:  # noqa: BLE001 - e.g. Dask KilledWorker, CancelledError
            return {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:2000]}

    try:
        executor, client, slots = _make_executor(workers, scheduler)
        window = max(1, slots * IN_FLIGHT_PER_WORKER)
        while queue or in_flight:
            while queue and len(in_flight) < window:
                task = queue.pop()
                in_flight[executor.submit(_worker.run_point, _task_payload(task), *args)] = task
            finished, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
            lost: list[PointTask] = []
            for fut in finished:
                task = in_flight.pop(fut)
                result = outcome(fut)
                if result is None:
                    lost.append(task)
                else:
                    commit(task, result)
            if not lost:
                continue
            # A worker process died (killed or crashed) and took the pool with it: every point
            # in flight is suspect. Keep the results that made it, retry the others in a fresh
            # pool, and give up on a point once it was in flight at MAX_WORKER_DEATHS deaths.
            cf.wait(in_flight, timeout=60)
            for fut, task in in_flight.items():
                result = outcome(fut) if fut.done() else None
                if result is None:
                    lost.append(task)
                else:
                    commit(task, result)
            in_flight.clear()
            executor.shutdown(wait=True, cancel_futures=True)
            for task in lost:
                deaths[task.key] = deaths.get(task.key, 0) + 1
                if deaths[task.key] >= MAX_WORKER_DEATHS:
                    commit(task, {"status": "error", "error": (
                        f"WorkerDied: the worker process died {deaths[task.key]} times while "
                        "this point was in flight (killed, out of memory or crashed)")})
                else:
                    queue.append(task)
            executor, client, slots = _make_executor(workers, scheduler)
    except BaseException:
        for fut in in_flight:
            fut.cancel()
        if executor is not None:
            _stop_now(executor)
        if client is not None:
            client.close()
        bar.close()
        raise
    executor.shutdown(wait=True)
    if client is not None:
        client.close()
    bar.close()


def _stop_now(executor) -> None:
    """Interrupted: drop queued points and end local workers now (not after their point)."""
    processes = list((getattr(executor, "_processes", None) or {}).values()) if isinstance(
        executor, cf.ProcessPoolExecutor) else []
    executor.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        try:
            proc.terminate()
        except Exception:  # noqa: BLE001 - already gone
            pass
