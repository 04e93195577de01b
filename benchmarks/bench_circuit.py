"""Circuit mode (IR drop) against ngspice: time per solved input vector.

64 x 64 and 128 x 128 arrays of the nor40 preset (split-gate cells, wires from the preset,
cell currents log-uniform in 10-100 nA, seeded as ``norsim spice-check``), a batch of 64
bit-serial input vectors (each row on with probability 1/2). ``seconds_per_vector_N`` is the
wall time of building the tile's solver (factorising its network, the nominal I-V table)
and solving the batch, divided by 64 (median of 3); ``steady_seconds_per_vector_N`` solves
the batch again with the tile's solver already built (how a network run uses it). ngspice
(when present) solves vector 0 of the 128 x 128 batch from the netlist norsim exports;
``ngspice_seconds_128`` is its own "Total analysis time" (wall clock, not parsing), and the
column currents of both are compared (``max_column_error_rel_128``). The IR-drop
surrogate is timed on the same batch with its error against circuit mode. Prints one JSON
object on its last line; ratios are measured in this process.

On a shared machine wall-clock times move with the load, so the CPU time of this process
(``cpu_seconds_per_vector_N``, the same build-and-solve, median of 3) and of the ngspice
child (``ngspice_cpu_seconds_128``: parsing and analysis, from getrusage) are reported too,
with their ratio ``cpu_speedup_vs_ngspice_128``. ``reference_path_vectors_N`` counts the
vectors the per-vector kernel handed to the reference iteration (0 when every vector was
certified by the kernel).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time

import numpy as np

os.environ.setdefault("NUMBA_CACHE_DIR",
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".numba_cache"))

from norsim.array.circuit import CircuitSolver  # noqa: E402
from norsim.array.spice import check_setup, run_ngspice, write_netlist  # noqa: E402
from norsim.array.surrogate import IrDropSurrogate  # noqa: E402
from norsim.config.presets import load_preset  # noqa: E402

BATCH = 64
SEED = 1
REPEATS = 3  # median of: the machine may be shared


def _batch(cfg, rows, wl0):
    read = cfg.device.read
    rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(5,)))
    v_on = wl0.max()
    wl = np.where(rng.random((BATCH, rows)) < 0.5, v_on, read.v_select_off_v)
    wl[0] = wl0
    return wl


def _time_circuit(cfg, n):
    vth, wl0, wires, model = check_setup(cfg, n, n, SEED)
    wl = _batch(cfg, n, wl0)
    times, steady, cpu = [], [], []
    for _ in range(REPEATS):
        t0, c0 = time.perf_counter(), time.process_time()
        solver = CircuitSolver(vth, cfg, model, wires=wires)
        res = solver.solve(wl)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        t0 = time.perf_counter()
        solver.solve(wl)  # the same tile again: network and nominal tables already built
        steady.append(time.perf_counter() - t0)
    return (float(np.median(times)) / BATCH, float(np.median(steady)) / BATCH,
            float(np.median(cpu)) / BATCH, solver, res, wl, vth, wires, model)


def main() -> int:
    cfg = load_preset("nor40")
    # compile the numba kernels outside the timings
    _time_circuit(cfg, 8)
    out = {"batch": BATCH, "cell_type": cfg.device.cell.cell_type}
    for n in (64, 128):
        spv, steady, cpu, solver, res, wl, vth, wires, model = _time_circuit(cfg, n)
        out[f"seconds_per_vector_{n}"] = spv
        out[f"steady_seconds_per_vector_{n}"] = steady
        out[f"cpu_seconds_per_vector_{n}"] = cpu
        stats = getattr(solver, "last_stats", None)
        if stats is not None:
            out[f"reference_path_vectors_{n}"] = int(stats["reference_vectors"])
        out[f"newton_iterations_max_{n}"] = int(res.iterations.max())
        out[f"ir_drop_error_rel_{n}"] = float(
            np.abs(res.column_currents - res.ideal_column_currents).max()
            / res.column_currents.max())
        t_sur = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            sur = IrDropSurrogate(vth, cfg, model, wires=wires)
            cols = sur.column_currents(wl)
            t_sur.append(time.perf_counter() - t0)
        out[f"surrogate_seconds_per_vector_{n}"] = float(np.median(t_sur)) / BATCH
        out[f"surrogate_max_error_rel_{n}"] = float(
            np.abs(cols - res.column_currents).max() / res.column_currents.max())
    out["ngspice_seconds_128"] = None
    out["speedup_vs_ngspice_128"] = None
    if shutil.which(os.environ.get("NORSIM_NGSPICE", "ngspice")):
        net = write_netlist(solver, wl[0])
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        run = run_ngspice(net.netlist)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        ng_cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        out["ngspice_cpu_seconds_128"] = ng_cpu
        out["cpu_speedup_vs_ngspice_128"] = ng_cpu / out["cpu_seconds_per_vector_128"]
        i_sp = np.array([run.values[f"i({c})"] for c in net.column_sources])
        out["ngspice_seconds_128"] = run.analysis_seconds
        out["ngspice_wall_seconds_128"] = run.wall_seconds
        out["max_column_error_rel_128"] = float(
            np.abs(res.column_currents[0] - i_sp).max() / np.abs(i_sp).max())
        out["speedup_vs_ngspice_128"] = run.analysis_seconds / out["seconds_per_vector_128"]
        out["steady_speedup_vs_ngspice_128"] = (run.analysis_seconds
                                                / out["steady_seconds_per_vector_128"])
        out["surrogate_speedup_vs_ngspice_128"] = (run.analysis_seconds
                                                   / out["surrogate_seconds_per_vector_128"])
    else:
        print("ngspice not found: ngspice keys are null", file=sys.stderr)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
