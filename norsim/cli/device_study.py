"""``norsim device-study``: I-V family over temperature and the weight levels' V_th / current
distributions after programming and after a bake, each figure with the CSV behind it.

Outputs in ``--out``:
  iv_family.png / iv_family.csv        I_D vs input-gate voltage at 233, 300, 358 K (log axis)
  swing.csv                            subthreshold swing per temperature (fit of the curves)
  levels_vth.png, levels_current.png   V_th and read-current histograms, programmed and baked
  level_cells.csv                      per cell: level, V_th (stored charge) before/after bake,
                                       the RTN shift of each read, read current (incl. RTN)
  level_summary.csv                    per level: means, spreads; overlap with the next level
                                       (best single threshold) and misreads at the fixed
                                       mid-current threshold, after programming and bake
  programming.csv                      the programming report: cells, failures by cause (stuck,
                                       unconverged), pulses, verifies, time, energy
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from norsim.cli.common import add_config_args, config_from_args
from norsim.errors import InputError

SECONDS_PER_YEAR = 365.25 * 24 * 3600.0
STUDY_TEMPERATURES_K = (233.0, 300.0, 358.0)
# rng stream ids of this study (SimConfig.rng(*stream))
_STREAM_PROGRAM, _STREAM_BAKE, _STREAM_VARIATION, _STREAM_READ = 101, 102, 103, 104


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("device-study", help="cell I-V over temperature and weight-level "
                       "distributions after programming and bake (PNG + CSV)")
    p.add_argument("--out", default="out/device-study", help="output directory")
    add_study_args(p)
    add_config_args(p)
    p.set_defaults(func=run)


def add_study_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cells-per-level", type=int, default=2000,
                   help="cells programmed per weight level (default 2000)")
    p.add_argument("--bake-years", type=float, default=10.0, help="bake time (default 10 years)")
    p.add_argument("--bake-temperature-k", type=float, default=358.15,
                   help="bake temperature (default 358.15 K = 85 C)")


def _write_csv(path: Path, header: list[str], rows) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow([f"{x:.10g}" if isinstance(x, (float, np.floating)) else x for x in r])


def _swing_mv_per_dec(v, i, lo_a: float, hi_a: float) -> float:
    """Inverse slope of log10 I vs V between currents lo_a and hi_a (least squares)."""
    sel = (i > lo_a) & (i < hi_a)
    if sel.sum() < 3:
        return float("nan")
    slope = np.polyfit(v[sel], np.log10(i[sel]), 1)[0]
    return 1e3 / slope


def iv_family(cfg, out: Path, plt) -> None:
    from norsim.device.iv import cell_model
    from norsim.device.levels import level_currents, read_bias, target_vth

    dev = cfg.device
    b = read_bias(dev)
    model300 = cell_model(dev.cell, dev.read.temperature_k)
    vth = float(target_vth(model300, dev, np.array([level_currents(dev.levels)[-1]]))[0])
    v_g = np.linspace(vth - 1.5, vth + 2.5, 401)
    rows, swings = [], []
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for t in STUDY_TEMPERATURES_K:
        m = cell_model(dev.cell, t)
        if dev.cell.cell_type == "split_gate":
            i = m.current(b.v_wl, v_g, b.v_d, b.v_s, vth)
        else:
            i = m.current(v_g, v_g, b.v_d, b.v_s, vth)
        rows += [(t, vg, ii) for vg, ii in zip(v_g, i)]
        # deep subthreshold: far below the specific current
        sw = _swing_mv_per_dec(v_g, i, m.fg.i_spec * 1e-7, m.fg.i_spec * 1e-4)
        swings.append((t, sw, np.log(10) * m.fg.n * m.fg.u_t / m.fg.alpha_g * 1e3))
        ax.semilogy(v_g, i, label=f"{t:.0f} K (SS {sw:.0f} mV/dec)")
    gate = "control gate" if dev.cell.cell_type == "split_gate" else "word line (control gate)"
    from norsim import figstyle

    ax.set_xlabel(f"{gate} voltage (V)")
    ax.set_ylabel("drain current (A)")
    figstyle.fit_title(ax, f"{dev.cell.cell_type.replace('_', '-')} cell, V_th = {vth:.3f} V "
                           f"at {dev.cell.t_ref_k:.0f} K")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    figstyle.save(fig, out / "iv_family.png")
    _write_csv(out / "iv_family.csv", ["temperature_k", "v_gate_v", "i_d_a"], rows)
    _write_csv(out / "swing.csv", ["temperature_k", "swing_mv_per_dec", "swing_theory_mv_per_dec"],
               swings)


def _misread(i_lo_level, i_hi_level, threshold) -> float:
    """Fraction of two neighbouring levels' cells on the wrong side of a fixed threshold."""
    wrong = np.sum(i_lo_level > threshold) + np.sum(i_hi_level < threshold)
    return float(wrong) / (i_lo_level.size + i_hi_level.size)


def _overlap(i_lo_level, i_hi_level) -> float:
    """Overlap of two neighbouring levels' distributions: the smallest fraction of their cells
    on the wrong side of any one threshold (0: separable; 0.5: indistinguishable)."""
    cand = np.concatenate([i_lo_level, i_hi_level, [-np.inf]])
    lo, hi = np.sort(i_lo_level), np.sort(i_hi_level)
    wrong = (lo.size - np.searchsorted(lo, cand, side="right")) + np.searchsorted(hi, cand, side="left")
    return float(wrong.min()) / (lo.size + hi.size)


def levels_study(cfg, out: Path, plt, cells_per_level: int, bake_s: float, bake_t: float) -> dict:
    from norsim.device.iv import cell_model
    from norsim.device.levels import level_currents, read_current
    from norsim.device.noise import sample_rtn_read
    from norsim.device.programming import program
    from norsim.device.retention import bake, draw_retention
    from norsim.device.variation import draw_variation

    dev = cfg.device
    nlev = dev.levels.levels_per_cell
    model = cell_model(dev.cell, dev.read.temperature_k)
    targets = level_currents(dev.levels)
    level = np.repeat(np.arange(nlev), cells_per_level)
    var = draw_variation(cfg.rng(_STREAM_VARIATION), level.shape, dev.variation, dev.cell)
    res = program(cfg.rng(_STREAM_PROGRAM), model, dev, targets[level], variation=var)
    kw = var.iv_kwargs(model)
    rng_bake = cfg.rng(_STREAM_BAKE)
    ret_cells = draw_retention(rng_bake, res.vth, dev.retention, dev.cell)
    vth_baked = bake(rng_bake, res.vth, bake_s, bake_t, dev.retention, dev.cell, cells=ret_cells)
    # one read after programming and one after the bake, each with the RTN state of the
    # cell's own traps at that moment (equilibrium occupancy)
    rng_read = cfg.rng(_STREAM_READ)
    rtn_prog = sample_rtn_read(rng_read, res.vth, dev.noise, dev.cell, res.traps)
    rtn_baked = sample_rtn_read(rng_read, vth_baked, dev.noise, dev.cell, res.traps)
    i_prog = read_current(model, dev, res.vth + rtn_prog, **kw)
    i_baked = read_current(model, dev, vth_baked + rtn_baked, **kw)
    _write_csv(out / "level_cells.csv",
               ["level", "target_current_a", "target_vth_v", "vth_programmed_v", "vth_baked_v",
                "rtn_programmed_v", "rtn_baked_v", "i_programmed_a", "i_baked_a",
                "retention_a_v", "failed"],
               zip(level, targets[level], res.target_vth, res.vth, vth_baked, rtn_prog,
                   rtn_baked, i_prog, i_baked, ret_cells.a_v, res.failed.astype(int)))
    summary = []

    def mean_std(a):
        return (float(np.mean(a)), float(np.std(a))) if a.size else (float("nan"), float("nan"))

    for k in range(nlev):
        s = level == k
        ok = s & ~res.failed  # statistics of the cells that reached their target
        row = [k, targets[k], float(np.mean(res.target_vth[s])), *mean_std(res.vth[ok]),
               *mean_std(vth_baked[ok]), *mean_std(i_prog[ok]), *mean_std(i_baked[ok])]
        if k + 1 < nlev and ok.any() and ((level == k + 1) & ~res.failed).any():
            nxt = (level == k + 1) & ~res.failed
            mid = 0.5 * (targets[k] + targets[k + 1])
            row += [_overlap(i_prog[ok], i_prog[nxt]), _overlap(i_baked[ok], i_baked[nxt]),
                    _misread(i_prog[ok], i_prog[nxt], mid), _misread(i_baked[ok], i_baked[nxt], mid)]
        else:
            row += [float("nan")] * 4
        row += [int(np.sum(res.failed[s]))]
        summary.append(row)
    _write_csv(out / "level_summary.csv",
               ["level", "target_current_a", "target_vth_v", "vth_mean_programmed_v",
                "vth_std_programmed_v", "vth_mean_baked_v", "vth_std_baked_v",
                "i_mean_programmed_a", "i_std_programmed_a", "i_mean_baked_a", "i_std_baked_a",
                "overlap_next_programmed", "overlap_next_baked", "misread_next_programmed",
                "misread_next_baked", "failed_cells"], summary)
    report = res.report()               # the programming report, failures by cause
    _write_csv(out / "programming.csv", list(report) + ["bake_time_s", "bake_temperature_k"],
               [list(report.values()) + [bake_s, bake_t]])
    # figures
    from norsim import figstyle

    good = ~res.failed if (~res.failed).any() else np.ones(level.shape, bool)
    for name, before, after, xlabel, log in (
            ("levels_vth.png", res.vth, vth_baked, "V_th at the reference temperature (V)", False),
            ("levels_current.png", i_prog, i_baked, "read current (A)", True)):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        lo = min(before[good].min(), after[good].min())
        hi = max(before[good].max(), after[good].max())
        bins = np.geomspace(max(lo, 1e-15), hi, 200) if log else np.linspace(lo, hi, 200)
        for k in range(nlev):
            s = good & (level == k)
            ax.hist(before[s], bins=bins, histtype="stepfilled", alpha=0.5, color=f"C{k % 10}",
                    label=f"L{k}" if k < 10 else None)
            ax.hist(after[s], bins=bins, histtype="step", color=f"C{k % 10}", linestyle="--")
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        figstyle.label_axis(ax, "y", figstyle.Quantity("cells per bin", "count", integer=True))
        figstyle.fit_title(ax, f"{nlev} weight levels (L0-L{nlev - 1}), {cells_per_level} cells "
                               f"each; filled: programmed, dashed: after a "
                               f"{bake_s / SECONDS_PER_YEAR:g}-year bake at {bake_t:.0f} K")
        ax.legend(ncol=4, fontsize=8)
        figstyle.save(fig, out / name)
    return {"failed": int(res.failed.sum()), "pulses_mean": float(res.pulses.mean())}


def run(args: argparse.Namespace) -> int:
    from norsim.outputs import check_output_dir

    check_output_dir("--out", args.out)
    cfg = config_from_args(args)
    cells = int(getattr(args, "cells_per_level", 2000))
    years = float(getattr(args, "bake_years", 10.0))
    bake_t = float(getattr(args, "bake_temperature_k", 358.15))
    if cells < 2:
        raise InputError("--cells-per-level", cells, "at least 2 cells per level")
    if not np.isfinite(years) or years < 0:
        raise InputError("--bake-years", years, "a finite time >= 0 years")
    if not np.isfinite(bake_t) or bake_t <= 0:
        raise InputError("--bake-temperature-k", bake_t, "a finite temperature > 0 K")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    iv_family(cfg, out, plt)
    info = levels_study(cfg, out, plt, cells, years * SECONDS_PER_YEAR, bake_t)
    print(f"device study: {cells} cells x {cfg.device.levels.levels_per_cell} levels, "
          f"{info['pulses_mean']:.1f} pulses/cell, {info['failed']} failed cells -> {out}")
    return 0
