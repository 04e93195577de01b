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

The preset's ground network is the shared-strap model (``strap_model = "network"``, issue
19). Stress (``*_128_stress``): the same 128 x 128 tile and cell currents with every wire
resistance x 50, so the IR drop moves column currents by more than 20 %, a batch of
``STRESS_BATCH`` vectors; ngspice solves its vector 0 (``ir_delta_error_rel_128_stress``:
the IR effect against ngspice's). 256 x 256 and 512 x 512 (preset wires, batch of
``BIG_BATCH``) are timed without ngspice (hours per vector at 512). ``envelope_512_*``: the
envelope's corner (512 x 512, 0.3-1 uA cells, every row on, wires x 100, 358.15 K) solved
once, with the largest KCL residual of the answer (each cell's exact I-V at the returned
node voltages against its current, relative to the largest cell current).
``*_128_stress20``: the same with wires x20 (IR effect ~0.20, issue 19's threshold).
``newton_path_vectors_128_*``: stress vectors solved by the per-vector Newton kernel.
``ir_resnet18_s_per_image``: a ResNet-18-shaped random model (CIFAR shape, width 64, the
full nor40 preset, ideal programming) run with per-vector IR drop in every tile
(``mapping.ir_drop = 'network'``), wall seconds per image of ``engine.run`` on a second
batch of ``RESNET_IMAGES`` images (``*_cpu_*``: CPU seconds; set-up, mapping and calibration
not timed, reported as ``ir_resnet18_setup_s``). The first batch of ``RESNET_IMAGES`` images
carries the run's one-time certification (``mapping.ir_check_vectors`` exact circuit solves
per tile: ``ir_resnet18_certify_batch_*`` per image, ``ir_resnet18_check_cpu_s`` its extra
CPU seconds), with the certification beside it: ``ir_resnet18_certified_error_lsb``
(largest surrogate error against those exact solves, in ADC LSB),
``ir_resnet18_fraction_checked`` and ``ir_resnet18_ir_effect_lsb`` (the largest IR effect on
the checked vectors). ``ir_resnet18_dense_path_*``: the steady batch again with every
tile's surrogate on its reference path (one dense product per batch instead of the sparse
kernel; ``ir_resnet18_sparse_path_speedup``, ``*_cpu_speedup``: dense over the default).
``resnet18_no_ir_*``: the same model and images without IR drop, in the same process (the
floor). ``--no-resnet`` skips it (keys null); ``--resnet-only`` runs
only it.
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

from _threads import pin, record  # noqa: E402
from norsim.array.circuit import CircuitSolver  # noqa: E402
from norsim.array.spice import check_setup, run_ngspice, write_netlist  # noqa: E402
from norsim.array.surrogate import IrDropSurrogate  # noqa: E402
from norsim.config.presets import load_preset  # noqa: E402

BATCH = 64
RESNET_IMAGES = 4  # per batch: one certifying batch, one timed steady batch (--resnet-images N)
STRESS_BATCH = 16
STRESS_SCALE = 50.0
BIG_BATCH = 16
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


def _time_cold_single(cfg, n):
    """One vector, cold: the tile's solver built (network factorised, I-V table) and vector 0
    solved, as a single ``norsim spice-check`` call does (numba already compiled; median)."""
    vth, wl0, wires, model = check_setup(cfg, n, n, SEED)
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        CircuitSolver(vth, cfg, model, wires=wires).solve(wl0[None, :])
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _time_batch(cfg, n, wires_scale, batch):
    vth, wl0, wires, model = check_setup(cfg, n, n, SEED)
    wires = cfg.array.wires.scaled(wires_scale)
    wl = _batch(cfg, n, wl0)[:batch]
    solver = CircuitSolver(vth, cfg, model, wires=wires)
    solver.solve(wl[:1])  # tables and network built outside the timing
    t0, c0 = time.perf_counter(), time.process_time()
    res = solver.solve(wl)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall / batch, cpu / batch, solver, res, wl


def _envelope_corner(n=512, scale=100.0, temp_k=358.15):
    cfg = load_preset("nor40").with_overrides([f"device.read.temperature_k={temp_k}"])
    vth, _, _, model = check_setup(cfg, n, n, SEED, stress=True)
    wl = np.full((1, n), cfg.device.read.v_select_on_v)
    solver = CircuitSolver(vth, cfg, model, wires=cfg.array.wires.scaled(scale))
    t0, c0 = time.perf_counter(), time.process_time()
    res = solver.solve(wl)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    i_chk = model.current(wl[:, :, None], cfg.device.read.v_cg_read_v, res.bl_node_v,
                          res.sl_node_v, vth)
    kcl = float(np.abs(i_chk - res.cell_currents).max() / np.abs(res.cell_currents).max())
    return {"envelope_512_seconds": wall, "envelope_512_cpu_seconds": cpu,
            "envelope_512_newton_iterations": int(res.iterations.max()),
            "envelope_512_ir_effect": float(1 - res.column_currents.sum()
                                            / res.ideal_column_currents.sum()),
            "envelope_512_kcl_residual_rel": kcl}


def _ngspice_compare(solver, res, wl0):
    net = write_netlist(solver, wl0)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = run_ngspice(net.netlist)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    ng_cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    i_sp = np.array([run.values[f"i({c})"] for c in net.column_sources])
    i_ns, i_id = res.column_currents[0], res.ideal_column_currents[0]
    d_sp = i_sp - i_id
    return run, ng_cpu, {
        "max_column_error_rel": float(np.abs(i_ns - i_sp).max() / np.abs(i_sp).max()),
        "ir_delta_error_rel": float(np.abs((i_ns - i_id) - d_sp).max() / np.abs(d_sp).max()),
        "ir_effect_ngspice": float(np.abs(d_sp).max() / np.abs(i_sp).max())}


def _resnet_chip(model, calib, ir_drop: str):
    from norsim.mapping import engine
    from norsim.mapping.mapper import map_model

    cfg = load_preset("nor40").with_overrides(["mapping.programming='ideal'",
                                               f"mapping.ir_drop='{ir_drop}'"])
    chip = map_model(model, cfg)
    engine.calibrate(chip, calib)
    return chip


def _timed_run(chip, imgs) -> tuple:
    """(wall, CPU) seconds per image of one engine batch."""
    from norsim.mapping import engine

    t0, c0 = time.perf_counter(), time.process_time()
    engine.run(chip, imgs, batch_size=len(imgs), collect_stats=False)
    return ((time.perf_counter() - t0) / len(imgs), (time.process_time() - c0) / len(imgs))


def _resnet_images() -> int:
    """``--resnet-images N`` on the command line (images per batch), else RESNET_IMAGES."""
    argv = sys.argv[1:]
    if "--resnet-images" in argv:
        n = int(argv[argv.index("--resnet-images") + 1])
        if n < 1:
            raise SystemExit(f"--resnet-images: {n}; expected an integer >= 1")
        return n
    return RESNET_IMAGES


def _ir_resnet18() -> dict:
    """IR-aware ResNet-18 (issue 19, point 4): seconds per image, the one-time certification,
    the certified error, and the same chip without IR drop in the same process."""
    from norsim.mapping import engine
    from norsim.mapping.ir_drop import ir_check_summary
    from norsim.mapping.random_models import blob_images, random_resnet18

    n_img = _resnet_images()
    rng = np.random.default_rng(SEED)
    model = random_resnet18(rng, calib_n=4)
    c, h, w = model.input.shape
    imgs = blob_images(rng, 2 * n_img, h, w, c)
    calib = blob_images(rng, 4, h, w, c)
    t0 = time.perf_counter()
    chip = _resnet_chip(model, calib, "network")
    engine.run(chip, imgs[:1], collect_stats=False)  # numba compile / cache load
    setup = time.perf_counter() - t0
    for t in chip.tiles():  # certify the timed run only: its first batch does the checks
        t.ir_check.n_vectors = t.ir_check.n_checked = 0
        t.ir_check.max_error_a = t.ir_check.max_error_lsb = t.ir_check.max_effect_lsb = 0.0
    first, first_cpu = _timed_run(chip, imgs[:n_img])
    wall, cpu = _timed_run(chip, imgs[n_img:])
    rep = ir_check_summary(chip)
    for t in chip.tiles():  # the reference twin: every tile's surrogate by the dense product
        t.array.ir_surrogate.path = "dense"
    dense_wall, dense_cpu = _timed_run(chip, imgs[n_img:])
    del chip
    base = _resnet_chip(model, calib, "none")
    engine.run(base, imgs[:1], collect_stats=False)
    base_wall, base_cpu = _timed_run(base, imgs[n_img:])
    return {"ir_resnet18_s_per_image": wall, "ir_resnet18_cpu_s_per_image": cpu,
            "ir_resnet18_certified_error_lsb": rep["max_error_lsb"],
            "ir_resnet18_fraction_checked": rep["fraction_checked"],
            "ir_resnet18_vectors_checked": rep["n_checked"],
            "ir_resnet18_ir_effect_lsb": rep["max_ir_effect_lsb"],
            "ir_resnet18_certify_batch_s_per_image": first,
            "ir_resnet18_certify_batch_cpu_s_per_image": first_cpu,
            "ir_resnet18_check_cpu_s": (first_cpu - cpu) * n_img,
            "ir_resnet18_images": 2 * n_img,
            "ir_resnet18_tiles": rep["tiles"], "ir_resnet18_setup_s": setup,
            "ir_resnet18_dense_path_s_per_image": dense_wall,
            "ir_resnet18_dense_path_cpu_s_per_image": dense_cpu,
            "ir_resnet18_sparse_path_speedup": dense_wall / wall,
            "ir_resnet18_sparse_path_cpu_speedup": dense_cpu / cpu,
            "resnet18_no_ir_s_per_image": base_wall,
            "resnet18_no_ir_cpu_s_per_image": base_cpu}


def main() -> int:
    pin()
    if "--resnet-only" in sys.argv[1:]:
        out = _ir_resnet18()
        out.update(record())
        print(json.dumps(out))
        return 0
    cfg = load_preset("nor40")
    # compile the numba kernels outside the timings
    _time_circuit(cfg, 8)
    out = {"batch": BATCH, "cell_type": cfg.device.cell.cell_type,
           "strap_model": cfg.array.wires.strap_model,
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
           "numba_num_threads": int(__import__("numba").config.NUMBA_NUM_THREADS),
           "cpu_count": os.cpu_count()}
    for n in (64, 128):
        spv, steady, cpu, solver, res, wl, vth, wires, model = _time_circuit(cfg, n)
        out[f"seconds_per_vector_{n}"] = spv
        out[f"steady_seconds_per_vector_{n}"] = steady
        out[f"cpu_seconds_per_vector_{n}"] = cpu
        out[f"cold_single_vector_seconds_{n}"] = _time_cold_single(cfg, n)
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
        # side by side (issue 26): the batch-amortised ratio above (solver built once per
        # batch of 64) and one vector solved cold, as ngspice solves its one vector
        out["speedup_vs_ngspice_128_batch_amortised"] = out["speedup_vs_ngspice_128"]
        out["speedup_vs_ngspice_128_single_cold"] = (run.analysis_seconds
                                                     / out["cold_single_vector_seconds_128"])
        out["steady_speedup_vs_ngspice_128"] = (run.analysis_seconds
                                                / out["steady_seconds_per_vector_128"])
        out["surrogate_speedup_vs_ngspice_128"] = (run.analysis_seconds
                                                   / out["surrogate_seconds_per_vector_128"])
    # stress: IR effect > 20 % (wires x STRESS_SCALE) and the threshold (wires x20,
    # IR effect ~0.20, where the kernel certifies most vectors), a batch each
    out["stress_batch"] = STRESS_BATCH
    out["stress_wire_scale"] = STRESS_SCALE
    out["speedup_vs_ngspice_128_stress"] = None
    have_ngspice = shutil.which(os.environ.get("NORSIM_NGSPICE", "ngspice")) is not None
    for tag, scale in (("stress", STRESS_SCALE), ("stress20", 20.0)):
        spv, cpu, solver_s, res_s, wl_s = _time_batch(cfg, 128, scale, STRESS_BATCH)
        out[f"seconds_per_vector_128_{tag}"] = spv
        out[f"cpu_seconds_per_vector_128_{tag}"] = cpu
        out[f"reference_path_vectors_128_{tag}"] = int(solver_s.last_stats["reference_vectors"])
        out[f"newton_path_vectors_128_{tag}"] = int(solver_s.last_stats.get("newton_vectors", 0))
        out[f"ir_effect_128_{tag}"] = float(
            np.abs(res_s.column_currents - res_s.ideal_column_currents).max()
            / res_s.column_currents.max())
        if have_ngspice:
            run_s, ng_cpu_s, cmp_s = _ngspice_compare(solver_s, res_s, wl_s[0])
            out[f"ngspice_seconds_128_{tag}"] = run_s.analysis_seconds
            out[f"ngspice_cpu_seconds_128_{tag}"] = ng_cpu_s
            out[f"speedup_vs_ngspice_128_{tag}"] = run_s.analysis_seconds / spv
            out[f"cpu_speedup_vs_ngspice_128_{tag}"] = ng_cpu_s / cpu
            out.update({f"{k}_128_{tag}": v for k, v in cmp_s.items()})
    for n in (256, 512):
        spv, cpu, solver_n, res_n, _ = _time_batch(cfg, n, 1.0, BIG_BATCH)
        out[f"steady_seconds_per_vector_{n}"] = spv
        out[f"steady_cpu_seconds_per_vector_{n}"] = cpu
        out[f"reference_path_vectors_{n}"] = int(solver_n.last_stats["reference_vectors"])
        out[f"ir_drop_error_rel_{n}"] = float(
            np.abs(res_n.column_currents - res_n.ideal_column_currents).max()
            / res_n.column_currents.max())
    out.update(_envelope_corner())
    out.update(_ir_resnet18() if "--no-resnet" not in sys.argv[1:] else
               {"ir_resnet18_s_per_image": None})
    if out["speedup_vs_ngspice_128"] is None:
        print("ngspice not found: ngspice keys are null", file=sys.stderr)
    out.update(record())
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
