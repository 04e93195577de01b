"""Sweep machinery cost: in-process evaluator calls (baseline) vs `run_sweep` with 1 and 2
worker processes, on the same points in the same process.

Reports the throughput of each and the ratios: `overhead_per_run_ms` is what the machinery
(spawned pool, config round trip, SQLite commit per run) adds per run with one worker, and
`speedup_2_workers` the gain of a second worker (bounded by the free cores). Prints ONE JSON
object on its last line.

    python benchmarks/bench_sweep.py [--runs 48] [--cells 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _threads import pin, record


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=48, help="grid points x seeds")
    ap.add_argument("--cells", type=int, default=2000, help="cells per level (work per run)")
    args = ap.parse_args()
    pin()

    from norsim.config.sim import SimConfig
    from norsim.experiments.device_eval import evaluate
    from norsim.experiments.evaluators import Point
    from norsim.experiments.runner import run_sweep
    from norsim.experiments.spec import spec_from_dict

    temps = [float(280 + i) for i in range(args.runs // 2)]
    spec_dict = {"sweep": {"evaluator": "device"}, "seeds": {"root": 1, "count": 2},
                 "axes": {"device.read.temperature_k": temps},
                 "options": {"cells_per_level": args.cells, "placement": "uniform"}}
    spec = spec_from_dict(spec_dict)
    tasks = spec.tasks()
    opts = spec.options

    def point(t):
        return Point(t.index, t.replicate, t.axes, SimConfig.from_toml(t.config_toml), t.seed,
                     t.spawn_key, options=opts)

    evaluate(point(tasks[0]))  # warm numba caches in this process
    t0 = time.perf_counter()
    for t in tasks:
        evaluate(point(t))
    base_s = time.perf_counter() - t0

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for w in (1, 2):
            path = Path(tmp) / f"w{w}.sqlite"
            t0 = time.perf_counter()
            s = run_sweep(spec, path, workers=w, progress=False)
            out[w] = time.perf_counter() - t0
            assert s.ran == len(tasks) and s.failed == 0
            t0 = time.perf_counter()
            s = run_sweep(spec, path, workers=w, progress=False)  # resume: nothing to run
            out[f"resume{w}"] = time.perf_counter() - t0
    n = len(tasks)
    result = {
        "benchmark": "sweep",
        "runs": n,
        "cells_per_run": args.cells * SimConfig().device.levels.levels_per_cell,
        "cpus_available": len(os.sched_getaffinity(0)),
        "in_process_s": round(base_s, 3),
        "sweep_1_worker_s": round(out[1], 3),
        "sweep_2_workers_s": round(out[2], 3),
        "resume_noop_s": round(out["resume1"], 3),
        "ratio_1_worker_vs_in_process": round(out[1] / base_s, 3),
        "overhead_per_run_ms": round(1e3 * (out[1] - base_s) / n, 2),
        "speedup_2_workers": round(out[1] / out[2], 3),
    }
    result.update(record())  # this process; sweep workers run one thread each
    print(json.dumps(result))


if __name__ == "__main__":
    main()
