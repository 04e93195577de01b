"""``norsim fit``: read measurement files, fit each kind, write a preset TOML, a sidecar JSON
(values, intervals, correlations, degenerate combinations) and residual plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from norsim.config.sim import SimConfig
from norsim.fit.formats import read_measurement
from norsim.fit.lsq import CONFIDENCE, FitOutcome
from norsim.fit.population import iv_population
from norsim.progress import Progress

PRESET_FILE = "fitted.toml"
SIDECAR_FILE = "fit.json"
#: statuses whose value goes into the preset (degenerate values never do)
WRITTEN = ("determined", "conditional")
ORDER = ("reads", "iv", "placement", "retention")


def _cell_report(r: dict) -> dict:
    o: FitOutcome = r["outcome"]
    return {"cell": r["cell"], "temperatures_k": r["temps"], "drain_voltages": r["n_vd"],
            "values": {n: o.value(n) for n in o.names},
            "sigma": {n: o.sigma(n) for n in o.names},
            "interval": {n: list(o.interval(n)) for n in o.names},
            "correlation": {"parameters": o.names, "matrix": np.round(o.corr, 4).tolist()},
            "status": {n: "degenerate" if n in r["degenerate_params"] else "determined"
                       for n in o.names if not n.startswith("rtn_offset")},
            "condition_number": o.condition_number, "residual_variance": o.s2,
            "held": [{k: v for k, v in h.items() if k != "because"} for h in r["held"]],
            "notes": r["notes"]}


def run_fit(files, base: SimConfig, out_dir: str | Path, *, plots: bool = True,
            progress: bool | None = None) -> dict:
    """Fit every file; write ``fitted.toml``, ``fit.json`` and plots into ``out_dir``."""
    from norsim.fit import plots as fplots
    from norsim.fit.ivfit import fit_iv
    from norsim.fit.noisefit import fit_reads
    from norsim.fit.placefit import fit_placement
    from norsim.fit.retfit import fit_retention

    meas = [read_measurement(f) for f in files]  # every file checked before any fitting
    # repeated reads first: their RTN amplitude sets the prior of the I-V fit's RTN offsets
    meas.sort(key=lambda m: ORDER.index(m.kind))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = base.device
    params, degenerate, conditional, reports, figures = {}, [], [], [], []
    bar = Progress(len(meas), "norsim fit", unit="file", enabled=progress)
    for j, m in enumerate(meas):
        stem = f"fit_{j}_{m.kind}"
        if m.kind == "iv":
            cells = fit_iv(dev, m)
            p, d, c = iv_population(dev, cells)
            rep = {"kind": "iv", "file": str(m.path), "cells": [_cell_report(r) for r in cells],
                   "params": p}
            if plots:
                figures.append(fplots.plot_iv(cells[0], out_dir / f"{stem}.png"))
        else:
            fn = {"reads": fit_reads, "placement": fit_placement,
                  "retention": fit_retention}[m.kind]
            rep = fn(dev, m)
            p = rep["params"]
            d, c = rep.get("degenerate", []), rep.get("conditional", [])
            if plots:
                draw = {"reads": fplots.plot_reads, "placement": fplots.plot_placement,
                        "retention": fplots.plot_retention}[m.kind]
                figures.append(draw(rep, out_dir / f"{stem}.png"))
            fo = rep.pop("fit", None)
            if fo is not None:
                rep["correlation"] = {"parameters": fo.names,
                                      "matrix": np.round(fo.corr, 4).tolist()}
                rep["condition_number"] = fo.condition_number
            rep.pop("_plot", None)
        params.update(p)
        rtn = p.get("device.noise.rtn_mean_v")
        if rtn is not None and rtn["status"] in WRITTEN:
            dev = base.with_overrides({"device.noise.rtn_mean_v": rtn["value"]}).device
        degenerate += [dict(x, file=str(m.path)) for x in d]
        conditional += [dict(x, file=str(m.path)) for x in c]
        reports.append(rep)
        bar.step(m.kind)
    overrides = {k: v["value"] for k, v in params.items()
                 if v["status"] in WRITTEN and "(derived)" not in k}
    cfg = base.with_overrides(overrides) if overrides else base
    preset_path = out_dir / PRESET_FILE
    head = ["# norsim fit: the base preset with the fitted values below "
            f"({CONFIDENCE:.0%} intervals and degenerate combinations in {SIDECAR_FILE})"]
    for k, v in sorted(params.items()):
        iv = v.get("interval")
        ivs = f" [{iv[0]:.4g}, {iv[1]:.4g}]" if iv else ""
        head.append(f"#   {k} = {v['value']:.6g}{ivs}  {v['status']}"
                    + ("" if v["status"] in WRITTEN else " (NOT written: kept the base value)"))
    preset_path.write_text("\n".join(head) + "\n" + cfg.to_toml())
    SimConfig.load(preset_path)  # the written file loads and validates
    side = {"preset": str(preset_path), "confidence": CONFIDENCE, "params": params,
            "degenerate": degenerate, "conditional": conditional, "files": reports,
            "figures": [str(f) for f in figures]}
    side = json.loads(json.dumps(side, default=_json))  # plain Python numbers
    (out_dir / SIDECAR_FILE).write_text(json.dumps(side, indent=1))
    return side


def _json(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def format_summary(side: dict) -> str:
    lines = [f"{'parameter':44s} {'value':>12s}  {CONFIDENCE:.0%} interval{'':14s} status"]
    for k, v in sorted(side["params"].items()):
        iv = v.get("interval")
        ivs = f"[{iv[0]:.4g}, {iv[1]:.4g}]" if iv else ""
        lines.append(f"{k:44s} {v['value']:12.5g}  {ivs:26s} {v['status']}")
    seen = set()
    for d in side["degenerate"] + side["conditional"]:
        if "cell" in d and "alpha_g" in d["parameters"]:
            continue  # per-cell view of the population entry
        key = tuple(d["parameters"])
        if key in seen:
            continue
        seen.add(key)
        text = d.get("determined", "") + (f" (cell {d['cell']})" if "cell" in d else "")
        lines.append(f"degenerate: {' / '.join(d['parameters'])}: {text}")
    return "\n".join(lines)
