"""``norsim array-study``: one array's periphery and encodings, each figure with its CSV.

Outputs in ``--out``:
  encodings.png / encodings.csv   column output (analog, before the ADC, in weight x input
                                  units) against the ideal integer dot product, for each input
                                  encoding (bit-serial, pulse-width, multi-level amplitude,
                                  gate-coupled current mirror)
  adc_transfer.png / .csv         ADC transfer curve of the configured converter (gain and
                                  offset mismatch of one ADC instance, INL, noise) and its
                                  error against the ideal staircase
  ir_drop_map.png / .csv          per-cell current error of circuit mode (wire resistance)
                                  against fast mode, split into bit-line and source-line parts
                                  (from norsim.array.circuit; skipped with a note if absent)
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from norsim.cli.common import add_config_args, config_from_args
from norsim.errors import InputError

ENCODINGS = ("bit_serial", "pulse_width", "multi_level", "current_mirror")
_STREAM_WEIGHTS, _STREAM_ARRAY, _STREAM_INPUTS = 201, 202, 203
MAX_BATCH = 100_000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("array-study", help="array periphery study: input encodings, ADC "
                       "transfer, IR-drop map (PNG + CSV)")
    p.add_argument("--out", default="out/array-study", help="output directory")
    p.add_argument("--rows", type=int, default=64, help="rows of the studied array (default 64)")
    p.add_argument("--cols", type=int, default=16, help="logical columns (default 16)")
    p.add_argument("--batch", type=int, default=64, help="input vectors (default 64)")
    add_config_args(p)
    p.set_defaults(func=run)


def _write_csv(path: Path, header, rows) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow([f"{x:.10g}" if isinstance(x, (float, np.floating)) else x for x in r])


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from norsim.array.encodings import phys_cols_needed
    from norsim.outputs import check_output_dir

    cfg = config_from_args(args)
    for name in ("rows", "cols", "batch"):
        v = getattr(args, name)
        if v < 1:
            raise InputError(f"--{name}", v, "a whole number >= 1")
    if args.rows > cfg.array.rows:
        raise InputError("--rows", args.rows, f"at most array.rows = {cfg.array.rows} (raise "
                                              f"it with --set array.rows=N)")
    if args.batch > MAX_BATCH:
        raise InputError("--batch", args.batch, f"at most {MAX_BATCH} input vectors")
    out = check_output_dir("--out", args.out)
    rows = args.rows
    cfg = cfg.with_overrides([f"array.rows={rows}"])
    need = phys_cols_needed(args.cols, cfg.array.encoding)
    if need > cfg.array.cols:
        raise InputError("--cols", args.cols, f"logical columns whose {need} physical columns "
                                              f"fit array.cols = {cfg.array.cols}")
    out.mkdir(parents=True, exist_ok=True)
    lim = 2 ** (cfg.array.encoding.weight_bits - 1) - 1
    w = cfg.rng(_STREAM_WEIGHTS).integers(-lim, lim + 1, size=(rows, args.cols))
    notes = []
    _encodings(cfg, w, args.batch, out)
    _adc_transfer(cfg, out)
    notes.append(_ir_drop(cfg, w, out))
    for n in notes:
        if n:
            print(n)
    print(f"array-study: wrote {out}")
    return 0


def _encodings(cfg, w, batch, out: Path) -> None:
    import matplotlib.pyplot as plt

    from norsim import figstyle
    from norsim.array.nor_array import NorArray

    xmax = 2 ** cfg.array.encoding.input_bits - 1
    x = cfg.rng(_STREAM_INPUTS).integers(0, xmax + 1, size=(batch, w.shape[0]))
    ideal = x @ w
    rows_csv = []
    fig, axes = plt.subplots(1, len(ENCODINGS), figsize=(4 * len(ENCODINGS), 4), sharey=True)
    for ax, scheme in zip(axes, ENCODINGS):
        c = cfg.with_overrides([f"array.encoding.input_scheme='{scheme}'"])
        arr = NorArray.from_weights(w, c, cfg.rng(_STREAM_ARRAY))
        y = arr.analog_output(x, cfg.rng(_STREAM_ARRAY, 1))
        err = y - ideal
        rms = float(np.sqrt(np.mean(err**2)))
        ax.plot(ideal.ravel(), y.ravel(), ".", ms=2, alpha=0.5)
        lo, hi = ideal.min(), ideal.max()
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        figstyle.fit_title(ax, f"{scheme.replace('_', '-')} input: rms error {rms:.3g} "
                               f"weight x input codes")
        figstyle.label_axis(ax, "x", figstyle.Quantity("exact dot product x . w",
                                                       "weight x input codes", integer=True))
        for i, (a, b) in enumerate(zip(ideal.ravel(), y.ravel())):
            rows_csv.append([scheme, i, int(a), float(b)])
    figstyle.label_axis(axes[0], "y", figstyle.Quantity("column output before the ADC",
                                                        "weight x input codes"))
    figstyle.save(fig, out / "encodings.png")
    _write_csv(out / "encodings.csv", ["encoding", "index", "ideal", "analog"], rows_csv)


def _adc_transfer(cfg, out: Path) -> None:
    import matplotlib.pyplot as plt

    from norsim import figstyle
    from norsim.array import kernels as K
    from norsim.array.periphery import make_adc, readout_params

    a = cfg.array
    adc = make_adc(a, 1, False, cfg.device.read.temperature_k, cfg.rng(_STREAM_ARRAY, 2))
    adc.set_range(1.0 * adc.hi, 1.0, False)  # 1 A per LSB: readings in LSB
    par = readout_params(a, adc, cfg.device.read.t_read_s, cfg.device.read.temperature_k)
    par[K.P_SHOT] = 0.0
    par[K.P_CONST_VAR] = 0.0  # only the ADC's own input-referred noise
    par[K.P_ISAT] = 1e30
    n = 8 * (adc.hi + 1) * 16
    ramp = np.linspace(-2.0, adc.hi + 2.0, n)
    ch = {k: np.zeros(1, np.int64) for k in ("pos", "tgt", "adc")}
    ch["neg"] = -np.ones(1, np.int64)
    ch["coef"] = np.ones(1)
    key = int(cfg.rng(_STREAM_ARRAY, 3).integers(0, 2**63))
    codes, _ = K.readout(ramp[:, None], np.zeros(1), 1, ch, adc.gain, adc.offset, par, key=key,
                         n_out_cols=1)
    codes = codes[:, 0]
    ideal = np.clip(np.floor(ramp + 0.5), adc.lo, adc.hi)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
    ax1.plot(ramp, codes, lw=0.8, label="ADC")
    ax1.plot(ramp, ideal, "k--", lw=0.6, label="ideal")
    figstyle.label_axis(ax1, "y", figstyle.Quantity("output code", "LSB", integer=True))
    ax1.legend()
    figstyle.fit_title(ax1, f"{a.adc.bits}-bit ADC: gain {adc.gain[0]:.4f}, offset "
                            f"{adc.offset[0]:.3f} LSB, INL {a.adc.inl_lsb} LSB, noise "
                            f"{a.adc.noise_lsb} LSB")
    ax2.plot(ramp, codes - ideal, ".", ms=1)
    figstyle.label_axis(ax2, "x", figstyle.Quantity("input", "LSB"))
    figstyle.label_axis(ax2, "y", figstyle.Quantity("code error", "LSB", integer=True))
    figstyle.save(fig, out / "adc_transfer.png")
    _write_csv(out / "adc_transfer.csv", ["input_lsb", "code", "ideal_code"],
               zip(ramp, codes, ideal))


def _ir_drop(cfg, w, out: Path) -> str:
    try:
        from norsim.array.circuit import ir_drop_map
    except ImportError:
        return "array-study: norsim.array.circuit is not available; IR-drop map skipped"
    import matplotlib.pyplot as plt

    from norsim import figstyle
    from norsim.array.nor_array import NorArray

    arr = NorArray.from_weights(w, cfg, cfg.rng(_STREAM_ARRAY))
    r = cfg.device.read
    on = r.v_select_on_v if cfg.device.cell.cell_type == "split_gate" else r.v_cg_read_v
    wl = np.full((1, arr.vth.shape[0]), on)  # all rows selected: the worst case
    m = ir_drop_map(arr.vth, wl, cfg)
    parts = (("total", m.cell_error_a[0]), ("bit line", m.bl_part_a[0]), ("source line", m.sl_part_a[0]))
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (name, p) in zip(axes, parts):
        im = ax.imshow(p / np.maximum(np.abs(m.ideal_cell_currents[0]), 1e-30) * 100, aspect="auto",
                       cmap="viridis")
        figstyle.fit_title(ax, f"cell current error from IR drop: {name} part")
        figstyle.label_axis(ax, "x", figstyle.Quantity("physical column", "index", integer=True))
        figstyle.label_axis(ax, "y", figstyle.Quantity("row", "index", integer=True))
        fig.colorbar(im, ax=ax, label="cell current error (% of the ideal current)")
    figstyle.save(fig, out / "ir_drop_map.png")
    rr, cc = np.indices(m.cell_error_a[0].shape)
    _write_csv(out / "ir_drop_map.csv", ["row", "col", "ideal_a", "error_a", "bl_part_a", "sl_part_a"],
               zip(rr.ravel(), cc.ravel(), m.ideal_cell_currents[0].ravel(), m.cell_error_a[0].ravel(),
                   m.bl_part_a[0].ravel(), m.sl_part_a[0].ravel()))
    return ""
