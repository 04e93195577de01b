"""Residual plots of the fits (norsim.figstyle: units in every label)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from norsim import figstyle


def _q(text: str) -> figstyle.Quantity:
    """'label (unit)' as a figstyle quantity."""
    label, unit = text.rsplit(" (", 1)
    return figstyle.Quantity(label, unit.rstrip(")"))


def _fig(ncols: int = 2):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(5.0 * ncols, 3.8))


def plot_iv(res: dict, path: Path) -> Path:
    model, out = res["model"], res["outcome"]
    p = {**res["fixed"], **dict(zip(out.names, out.x))}
    fit_ln = model.ln_current(p)
    fig, (a, b) = _fig()
    for t in model.temps:
        for vd in np.unique(model.v_d):
            k = (model.temp == t) & (model.v_d == vd)
            o = np.argsort(model.v_cg[k])
            lab = f"{t:g} K, V_D {vd:g} V"
            line, = a.semilogy(model.v_cg[k][o], np.exp(fit_ln[k][o]), "-", lw=1, label=lab)
            a.semilogy(model.v_cg[k], np.exp(model.ln_i[k]), ".", ms=4, color=line.get_color())
            b.plot(model.v_cg[k], 100 * (model.ln_i[k] - fit_ln[k]), ".", ms=4,
                   color=line.get_color())
    figstyle.label_axis(a, "x", _q("control-gate voltage V_CG (V)"))
    figstyle.label_axis(a, "y", _q("drain current (A)"))
    a.legend(fontsize=7)
    figstyle.fit_title(a, f"cell {res['cell']}: measured (dots) and fitted EKV (lines)")
    b.axhline(0, color="k", lw=0.5)
    figstyle.label_axis(b, "x", _q("control-gate voltage V_CG (V)"))
    figstyle.label_axis(b, "y", _q("residual ln I_meas - ln I_fit (%)"))
    figstyle.fit_title(b, "residuals (x 100 = percent of the current)")
    return figstyle.save(fig, path)


def plot_reads(res: dict, path: Path) -> Path:
    d = res["_plot"]
    fig, (a, b) = _fig()
    x = np.sort(d["x"]) * 1e6
    ref = np.sort(d["ref"]) * 1e6
    a.plot(x, np.linspace(0, 100, x.size), label="measured cells (white noise subtracted)")
    a.plot(ref, np.linspace(0, 100, ref.size), label="model cells, fitted amplitude")
    a.set_xscale("symlog", linthresh=1e-2)
    figstyle.label_axis(a, "x", _q("RTN variance referred to V_th / level factor (mV^2)"))
    figstyle.label_axis(a, "y", _q("cells at or below (%)"))
    a.legend(fontsize=8)
    figstyle.fit_title(a, "per-cell RTN variance: data vs fitted model")
    b.plot(d["vth"], d["x"] * 1e6, ".", ms=3)
    b.axhline(0, color="k", lw=0.5)
    figstyle.label_axis(b, "x", _q("cell V_th (V)"))
    figstyle.label_axis(b, "y", _q("RTN variance / level factor (mV^2)"))
    figstyle.fit_title(b, "per-cell estimate vs V_th (no trend expected)")
    return figstyle.save(fig, path)


def plot_placement(res: dict, path: Path) -> Path:
    d = res["_plot"]
    fig, (a, b) = _fig()
    ok = ~d["failed"]
    a.semilogx(d["target"][ok], 100 * d["err"][ok], ".", ms=3)
    figstyle.label_axis(a, "x", _q("target read current (A)"))
    figstyle.label_axis(a, "y", _q("placement error (I - I_target) / I_target (%)"))
    figstyle.fit_title(a, "placement error of the verified cells")
    lv = res["levels"]
    b.semilogx([r["target_a"] for r in lv], [100 * r["sd_rel"] for r in lv], "o-")
    figstyle.label_axis(b, "x", _q("target read current (A)"))
    figstyle.label_axis(b, "y", _q("placement spread, s.d. (%)"))
    figstyle.fit_title(b, f"failed {res['failed']} of {res['cells']} cells")
    return figstyle.save(fig, path)


def plot_retention(res: dict, path: Path) -> Path:
    d = res["_plot"]
    fig, (a, b) = _fig()
    pos = d["time"] > 0
    for t in np.unique(d["temp"]):
        k = pos & (d["temp"] == t)
        ts = np.unique(d["time"][k])
        mean = [1e3 * d["dv"][k & (d["time"] == s)].mean() for s in ts]
        mod = [1e3 * d["model"][k & (d["time"] == s)].mean() for s in ts]
        line, = a.semilogx(ts, mod, "-", label=f"{t:g} K")
        a.semilogx(ts, mean, "o", ms=4, color=line.get_color())
        b.semilogx(d["time"][k], 1e3 * d["resid"][k], ".", ms=2, color=line.get_color())
    figstyle.label_axis(a, "x", _q("bake time (s)"))
    figstyle.label_axis(a, "y", _q("mean V_th change (mV)"))
    a.legend(fontsize=8)
    figstyle.fit_title(a, "bake: cell means (dots) and fitted log-time law (lines)")
    b.axhline(0, color="k", lw=0.5)
    figstyle.label_axis(b, "x", _q("bake time (s)"))
    figstyle.label_axis(b, "y", _q("residual V_th (mV)"))
    figstyle.fit_title(b, "residuals of every cell")
    return figstyle.save(fig, path)
