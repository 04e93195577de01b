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
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = [r["size"] for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3))
    panels = [("accuracy", 100, "top-1 accuracy (%)"), ("energy_per_image_j", 1e9, "energy / image (nJ)"),
              ("latency_s", 1e6, "latency / image (us)"), ("area_mm2", 1, "area (mm2)")]
    for ax, (key, f, label) in zip(axes, panels):
        ax.plot(s, [r[key] * f for r in rows], "o-")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("array size N (N x N)")
        ax.set_ylabel(label)
    ax2 = axes[0].twinx()
    ir = [r["ir_drop_rel_surrogate"] for r in rows]
    if any(v is not None for v in ir):
        ax2.plot(s, [100 * (v or 0) for v in ir], "s--", color="tab:red")
        ax2.set_ylabel("IR-drop column error (%)", color="tab:red")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
    model = load_model(args.model)
    x, y, x_cal = load_eval_data(args.data, args.limit, args.data_dir)
    rows = sweep(model, cfg, sizes, x, y, x_cal[:cfg.mapping.calibration_images],
                 ir_vectors=args.ir_vectors, circuit_max=args.circuit_max)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "array_sweep.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r[k] is None else r[k]) for k in FIELDS})
    plot(rows, out / "array_sweep.png")
    print(f"{'size':>6} {'acc %':>7} {'tiles':>6} {'util %':>7} {'E/img':>10} {'latency':>10} "
          f"{'TOPS/W':>8} {'mm2':>8} {'IR %':>7}")
    for r in rows:
        ir = r["ir_drop_rel_surrogate"]
        print(f"{r['size']:>6} {100 * r['accuracy']:>7.2f} {r['tiles']:>6} {100 * r['utilisation']:>7.1f} "
              f"{r['energy_per_image_j']:>10.3e} {r['latency_s']:>10.3e} {r['tops_per_w']:>8.3g} "
              f"{r['area_mm2']:>8.3g} {'-' if ir is None else f'{100 * ir:.3f}':>7}")
    print(f"\nCSV and figure in {out} (accuracy with IR drop via the surrogate; IR % = surrogate column-current "
          f"error of the fullest tile, not in the accuracy)")
    return 0
