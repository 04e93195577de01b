"""``norsim array-sweep``: benchmark square array sizes on one model.

For each size N (N x N arrays) the model is mapped, calibrated and run on the evaluation
images; per size: top-1 accuracy (with IR drop through the surrogate,
``mapping.ir_drop = 'surrogate'``), the IR-drop error of the column currents of the model's
fullest tile predicted by the surrogate (``norsim.array.surrogate``), spot-checked against
circuit mode for sizes up to ``--circuit-max``, energy
per image, single-image latency, pipelined frames/s, TOPS/W, area and utilisation (from
``norsim.cost``). Writes ``array_sweep.csv`` and ``array_sweep.png`` in ``--out``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from norsim.cli.common import add_config_args, config_from_args
from norsim.errors import InputError

_STREAM_WL = 505
FIELDS = ("size", "accuracy", "images", "tiles", "utilisation", "energy_per_image_j",
          "latency_s", "fps_pipelined", "tops_per_w", "area_mm2", "ir_drop_rel_surrogate",
          "ir_drop_rel_circuit", "surrogate_error_rel_circuit")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("array-sweep", help="accuracy, energy, latency, area vs square array size")
    p.add_argument("--model", required=True, help="zoo:NAME or a QuantModel .npz file")
    p.add_argument("--sizes", default="64,128,256,512,1024", help="comma-separated array sizes")
    p.add_argument("--out", default="out/array-sweep", help="output directory")
    p.add_argument("--data", default="mnist", help="data set (as norsim run)")
    p.add_argument("--data-dir", default=None, help="root of the larger data sets")
    p.add_argument("--limit", type=int, default=200, help="evaluation images (default 200)")
    p.add_argument("--ir-vectors", type=int, default=4, help="word-line vectors of the IR-drop "
                   "estimate per size (0: skip)")
    p.add_argument("--circuit-max", type=int, default=128, help="largest size spot-checked in "
                   "circuit mode (default 128)")
    add_config_args(p)
    p.set_defaults(func=run)


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InputError("--sizes", text, "comma-separated whole numbers, e.g. 64,128,256") from None
    if not sizes or any(s < 2 for s in sizes):
        raise InputError("--sizes", text, "array sizes >= 2")
    return sizes


def ir_drop(chip, n_vectors: int, circuit_max: int, rng: np.random.Generator) -> tuple:
    """(surrogate IR-drop error, circuit-mode IR-drop error or None, surrogate-vs-circuit error
    or None) of the tile with the most used cells: rms over columns and vectors of the column
    current change, as a fraction of the largest column current."""
    from norsim.array.surrogate import IrDropSurrogate

    tiles = list(chip.tiles())
    if not tiles or n_vectors < 1:
        return None, None, None
    tile = max(tiles, key=lambda t: t.array.rows_used * t.array.phys_cols)
    arr = tile.array
    cfg = arr.cfg
    r = cfg.device.read
    on = r.v_select_on_v if cfg.device.cell.cell_type == "split_gate" else r.v_cg_read_v
    off = r.v_select_off_v if cfg.device.cell.cell_type == "split_gate" else 0.0
    wl = np.where(rng.random((n_vectors, arr.rows_used)) < 0.5, on, off)
    sur = IrDropSurrogate(arr.vth, cfg)
    i, i0 = sur.cell_currents(wl)
    cols, cols0 = i.sum(axis=1), i0.sum(axis=1)
    scale = max(float(np.abs(cols0).max()), 1e-300)
    rel_sur = float(np.sqrt(np.mean((cols - cols0) ** 2)) / scale)
    if cfg.array.rows > circuit_max:
        return rel_sur, None, None
    rep = sur.validate(wl)
    return rel_sur, rep.fast_mode_rms_error_rel, rep.rms_error_rel


def sweep(model, cfg, sizes, x, y, x_cal, *, ir_vectors: int = 4, circuit_max: int = 128) -> list[dict]:
    """One row per array size (see module docstring)."""
    from norsim.cost.report import cost_of_chip
    from norsim.mapping import engine, mapper
    from norsim.progress import Progress

    # work per size ~ the tiles' cells, which do not change with N: equal steps
    bar = Progress(len(sizes), "array-sweep", unit="size")
    rows = []
    for size in sizes:
        # accuracy with IR drop through the surrogate (per-cell factors on calibration vectors)
        c = cfg.with_overrides({"array.rows": size, "array.cols": size,
                                "mapping.ir_drop": "surrogate", "mapping.ir_drop_vectors": ir_vectors})
        chip = mapper.map_model(model, c)
        engine.calibrate(chip, x_cal)
        res = engine.run(chip, x)
        rep = cost_of_chip(chip, len(x), c)
        sur, circ, err = ir_drop(chip, ir_vectors, circuit_max, c.rng(_STREAM_WL, size))
        rows.append({"size": size, "accuracy": float(np.mean(res.predictions == y)),
                     "images": int(len(x)), "tiles": sum(1 for _ in chip.tiles()),
                     "utilisation": rep.utilisation, "energy_per_image_j": rep.energy_per_image_j,
                     "latency_s": rep.latency_single_s, "fps_pipelined": rep.fps_pipelined,
                     "tops_per_w": rep.tops_per_w, "area_mm2": rep.area_mm2,
                     "ir_drop_rel_surrogate": sur, "ir_drop_rel_circuit": circ,
                     "surrogate_error_rel_circuit": err})
        bar.step(f"{size} x {size}")
    bar.close()
    return rows


PANELS = (  # key, factor, label, unit
    ("accuracy", 100.0, "top-1 accuracy", "%"),
    ("energy_per_image_j", 1e9, "energy per image", "nJ"),
    ("latency_s", 1e6, "single-image latency", "us"),
    ("area_mm2", 1.0, "array + periphery area", "mm²"),
    ("ir_drop_rel_surrogate", 100.0, "IR-drop column error, fullest tile", "%"),
)


def plot(rows: list[dict], path: Path, title: str = "") -> None:
    """One panel per quantity against the array size; accuracy with its 95 % Wilson
    test-sampling interval; flat quantities drawn flat."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from norsim import figstyle
    from norsim.stats import wilson_interval

    s = [r["size"] for r in rows]
    panels = [p for p in PANELS if any(r.get(p[0]) is not None for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.4))
    for ax, (key, f, label, unit) in zip(np.atleast_1d(axes), panels):
        pts = [(n, r[key] * f) for n, r in zip(s, rows) if r.get(key) is not None]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        ax.plot(xs, ys, "o-")
        drawn = list(ys)
        if key == "accuracy":
            ci = [wilson_interval(r["accuracy"] * r["images"], r["images"]) for r in rows]
            lo = [100 * c[0] for c in ci]
            hi = [100 * c[1] for c in ci]
            ax.errorbar(s, ys, yerr=[[y - a for y, a in zip(ys, lo)],
                                     [b - y for y, b in zip(ys, hi)]],
                        fmt="none", capsize=3, color="C0")
            drawn += lo + hi
        ax.set_xscale("log", base=2)
        ax.set_xticks(s, [str(v) for v in s])
        ax.minorticks_off()
        figstyle.label_axis(ax, "x", figstyle.Quantity("array size N", "rows = columns",
                                                       integer=True))
        figstyle.label_axis(ax, "y", figstyle.Quantity(label, unit))
        figstyle.keep_flat_flat(ax, "y", drawn, bounds=(0.0, 100.0) if unit == "%" else None)
        ax.grid(alpha=0.3)
    figstyle.fit_suptitle(fig, title or "array size study (accuracy: 95 % Wilson interval of "
                                        "the test images)")
    figstyle.save(fig, path)


def run(args: argparse.Namespace) -> int:
    from norsim.cli.run import load_eval_data, load_model

    from norsim.outputs import check_output_dir

    sizes = parse_sizes(args.sizes)
    check_output_dir("--out", args.out)
    for name in ("limit", "ir_vectors", "circuit_max"):
        v = getattr(args, name)
        if v < (1 if name == "limit" else 0):
            raise InputError("--" + name.replace("_", "-"), v,
                             "a whole number >= " + ("1" if name == "limit" else "0"))
    cfg = config_from_args(args)
    from norsim.mapping.preflight import check_job

    model = load_model(args.model)
    for size in sizes:  # every size's mapping checked before the first is programmed
        check_job(model, cfg.with_overrides({"array.rows": size, "array.cols": size}))
    x, y, x_cal = load_eval_data(args.data, args.limit, args.data_dir)
    check_job(model, cfg, x, x_cal)
    rows = sweep(model, cfg, sizes, x, y, x_cal[:cfg.mapping.calibration_images],
                 ir_vectors=args.ir_vectors, circuit_max=args.circuit_max)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "array_sweep.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r[k] is None else r[k]) for k in FIELDS})
    plot(rows, out / "array_sweep.png",
         title=f"{args.model} on N x N arrays, {len(x)} {args.data} test images (accuracy: 95 % "
               f"Wilson interval)")
    print(format_table(rows))
    print(f"\nCSV and figure in {out}. The accuracy includes IR drop (surrogate per-cell "
          f"factors); IR % is the size of that effect: the rms column-current change from IR "
          f"drop in the fullest tile, as a % of its largest column current.")
    return 0


def format_table(rows: list[dict]) -> str:
    """The printed table, units in the header."""
    head = (f"{'N':>6} {'acc (%)':>8} {'tiles':>6} {'util (%)':>9} {'E/img (nJ)':>11} "
            f"{'latency (us)':>13} {'TOPS/W':>8} {'area (mm2)':>11} {'IR (%)':>8}")
    lines = [head]
    for r in rows:
        ir = r["ir_drop_rel_surrogate"]
        lines.append(
            f"{r['size']:>6} {100 * r['accuracy']:>8.2f} {r['tiles']:>6} "
            f"{100 * r['utilisation']:>9.1f} {r['energy_per_image_j'] * 1e9:>11.4g} "
            f"{r['latency_s'] * 1e6:>13.4g} {r['tops_per_w']:>8.3g} {r['area_mm2']:>11.3g} "
            f"{'-' if ir is None else f'{100 * ir:.3f}':>8}")
    return "\n".join(lines)
