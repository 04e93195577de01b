"""Aggregate sweep results over seeds and plot a metric against an axis.

For each curve (one per ``hue`` value) and each x, the rows of the Monte-Carlo replicates
give

* the **mean** over replicates (simulated chips);
* the **chip-to-chip band**: +-1 sample standard deviation over replicates (shaded);
* the **test-sampling interval** (error bars), separately: for a proportion metric ``y``
  reported with its sample count ``y_n`` (accuracy on n test images, error rate over n
  cells), the 95 % Wilson score interval of a proportion equal to the mean measured on
  ``n`` samples -- how far one chip's number could move with another draw of n samples.

The two are different things: the band is the spread of the hardware, the bars the finite
test set. Failed rows are left out (and counted).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from norsim.errors import InputError
from norsim.experiments.results import flat_rows, metric_column

def wilson_interval(p: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion ``p`` observed on ``n`` samples."""
    from norsim.stats import wilson_interval as wilson_counts

    if not (0.0 <= p <= 1.0) or not n > 0:
        raise InputError("wilson_interval", (p, n), "0 <= p <= 1 and n > 0")
    lo, hi = wilson_counts(p * n, n, confidence)
    return max(0.0, lo), min(1.0, hi)


@dataclass
class Series:
    """One curve: a hue value and, per x, the replicate statistics."""

    hue: Any
    x: list = field(default_factory=list)
    mean: list = field(default_factory=list)
    sd: list = field(default_factory=list)          # over replicates (nan for one)
    n_seeds: list = field(default_factory=list)
    lo: list = field(default_factory=list)          # test-sampling interval (nan if none)
    hi: list = field(default_factory=list)
    n_samples: list = field(default_factory=list)


@dataclass
class Aggregate:
    x: str
    y: str
    hue: str | None
    series: list[Series]
    failed_rows: int
    categorical_x: bool


def _parse_where(items: list[str], axes: list[str]) -> dict[str, Any]:
    from norsim.config.base import tomllib

    out = {}
    for item in items:
        if "=" not in item:
            raise InputError("--where", item, "FIELD=VALUE")
        key, raw = (s.strip() for s in item.split("=", 1))
        if key not in axes:
            raise InputError("--where", key, "an axis of the sweep (" + ", ".join(axes) + ")")
        try:
            out[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = raw
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b and type(a) is type(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b


def _sort_key(v: Any):
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))


def aggregate(out: str | Path, x: str, y: str, hue: str | None = None,
              where: list[str] | None = None) -> Aggregate:
    rows, axes, metrics = flat_rows(out)
    if not rows:
        raise InputError("RESULTS", str(out), "a results file with at least one finished point")
    if x not in axes:
        raise InputError("--x", x, "an axis of the sweep (" + (", ".join(axes) or "none") + ")")
    if y not in metrics:
        raise InputError("--y", y, "a metric of the sweep (" + (", ".join(metrics) or "none") + ")")
    if hue is not None and (hue not in axes or hue == x):
        raise InputError("--hue", hue, "another axis of the sweep (" +
                         ", ".join(a for a in axes if a != x) + ")")
    fixed = _parse_where(where or [], axes)
    ycol = metric_column(y, axes)
    ncol = metric_column(f"{y}_n", axes) if f"{y}_n" in metrics else None

    sel = [r for r in rows if all(_same(r.get(k), v) for k, v in fixed.items())]
    if not sel:
        raise InputError("--where", ", ".join(f"{k}={v}" for k, v in fixed.items()),
                         "values present in the results")
    ok = [r for r in sel if r["status"] == "ok" and ycol in r and r[ycol] is not None]
    failed = len(sel) - len(ok)

    groups: dict[tuple, list[dict]] = {}
    for r in ok:
        groups.setdefault((r.get(hue) if hue else None, r[x]), []).append(r)
    others = [a for a in axes if a not in (x, hue) and a not in fixed]
    varying = set()
    for members in groups.values():
        for a in others:
            if len({repr(m.get(a)) for m in members}) > 1:
                varying.add(a)
    if varying:
        raise InputError("--x", x, "one value per curve and x: the results also vary over "
                         f"{', '.join(sorted(varying))}; add --hue FIELD or --where FIELD=VALUE")

    xs_all = [k[1] for k in groups]
    categorical = not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs_all)
    hues = sorted({k[0] for k in groups}, key=_sort_key)
    series = []
    for h in hues:
        s = Series(hue=h)
        for xv in sorted({k[1] for k in groups if k[0] == h}, key=_sort_key):
            vals = [float(m[ycol]) for m in groups[(h, xv)]]
            mean = sum(vals) / len(vals)
            sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) \
                if len(vals) > 1 else float("nan")
            lo = hi = n = float("nan")
            if ncol is not None and all(0.0 <= v <= 1.0 for v in vals):
                ns = sorted(float(m[ncol]) for m in groups[(h, xv)] if m.get(ncol))
                if ns:
                    n = ns[len(ns) // 2]
                    lo, hi = wilson_interval(mean, n)
            s.x.append(xv)
            s.mean.append(mean)
            s.sd.append(sd)
            s.n_seeds.append(len(vals))
            s.lo.append(lo)
            s.hi.append(hi)
            s.n_samples.append(n)
        series.append(s)
    return Aggregate(x, y, hue, series, failed, categorical)


def write_csv(agg: Aggregate, path: str | Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["hue", "x", "mean", "sd_seeds", "n_seeds", "sampling_lo", "sampling_hi",
                    "n_samples"])
        for s in agg.series:
            for row in zip(s.x, s.mean, s.sd, s.n_seeds, s.lo, s.hi, s.n_samples):
                w.writerow(["" if s.hue is None else s.hue, *row])


def plot(agg: Aggregate, png: str | Path, *, logx: bool = False, logy: bool = False) -> None:
    """The figure of :func:`aggregate`'s result in the norsim figure style
    (:mod:`norsim.figstyle`): human labels with units, proportions in %, the chip-to-chip
    band and the test-sampling interval drawn, flat curves kept flat."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from norsim import figstyle

    qx, qy = figstyle.quantity(agg.x), figstyle.quantity(agg.y)
    qh = figstyle.quantity(agg.hue) if agg.hue else None
    if logy:
        bad = [m for s in agg.series for m in s.mean if not math.isnan(m) and m <= 0]
        if bad:
            n = sum(len(s.mean) for s in agg.series)
            raise InputError("--logy", f"{len(bad)} of {n} means <= 0 (lowest {min(bad):.4g})",
                             "positive values of " + agg.y + " for a logarithmic y axis (drop "
                             "--logy)")
    if logx and not agg.categorical_x:
        bad_x = sorted({v for s in agg.series for v in s.x if v <= 0})
        if bad_x:
            raise InputError("--logx", f"x values {bad_x[:3]}",
                             f"positive values of {agg.x} for a logarithmic x axis")
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    cats: list = []
    if agg.categorical_x:
        for s in agg.series:
            for v in s.x:
                if v not in cats:
                    cats.append(v)
    any_band = any_bars = False
    all_y: list[float] = []
    for i, s in enumerate(agg.series):
        color = f"C{i % 10}"
        xs = [cats.index(v) for v in s.x] if agg.categorical_x else [v * qx.scale for v in s.x]
        k = qy.scale
        mean = [m * k for m in s.mean]
        label = None if qh is None else f"{qh.label} = {_fmt(s.hue, qh)}"
        ax.plot(xs, mean, "o-", color=color, label=label, ms=4, lw=1.5)
        all_y += mean
        if any(not math.isnan(d) for d in s.sd):
            lo_b = [(m - d) * k for m, d in zip(s.mean, s.sd)]
            hi_b = [(m + d) * k for m, d in zip(s.mean, s.sd)]
            ax.fill_between(xs, lo_b, hi_b, color=color, alpha=0.2, lw=0)
            all_y += lo_b + hi_b
            any_band = True
        if any(not math.isnan(v) for v in s.lo):
            err = [[(m - lo) * k for m, lo in zip(s.mean, s.lo)],
                   [(hi - m) * k for m, hi in zip(s.mean, s.hi)]]
            ax.errorbar(xs, mean, yerr=err, fmt="none", ecolor=color, capsize=3, lw=1)
            all_y += [lo * k for lo in s.lo] + [hi * k for hi in s.hi]
            any_bars = True
    handles, labels = ax.get_legend_handles_labels()
    if any_band:
        n_seeds = max(max(s.n_seeds) for s in agg.series)
        handles.append(Patch(color="0.5", alpha=0.3))
        labels.append(f"chip-to-chip: +-1 s.d. over {n_seeds} chips")
    if any_bars:
        handles.append(Line2D([], [], color="0.3", marker="|", ls="none", ms=10))
        labels.append("test sampling: 95 % Wilson interval")
    if handles:
        ax.legend(handles, labels, fontsize=8, frameon=False)
    if agg.categorical_x:
        ax.set_xticks(range(len(cats)), [_fmt(c, qx) for c in cats])
        ax.set_xlabel(qx.axis_label())
    else:
        figstyle.label_axis(ax, "x", qx, [v for s in agg.series for v in s.x])
    figstyle.label_axis(ax, "y", qy)
    if logx and not agg.categorical_x:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    else:
        figstyle.keep_flat_flat(ax, "y", all_y, bounds=figstyle.percent_bounds(qy))
    title = f"{qy.label} vs {qx.label}"
    if agg.failed_rows:
        title += f" ({agg.failed_rows} failed runs left out)"
    figstyle.fit_title(ax, title)
    ax.grid(alpha=0.3)
    figstyle.save(fig, png)


def _fmt(v, q) -> str:
    """A hue or category value in the plotted unit."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    val = v * q.scale
    text = f"{val:g}" if isinstance(val, float) else str(val)
    return f"{text} {q.unit}" if q.unit and q.unit not in ("1", "count") else text
