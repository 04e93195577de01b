"""Tables, JSON and the stacked-bar figure of a :class:`~norsim.cost.model.CostReport`."""

from __future__ import annotations

from pathlib import Path

from norsim.cost.model import COMPONENTS, OPS_PER_MAC, CostReport, collect, estimate_range


def _eng(v: float, unit: str) -> str:
    """Engineering notation: 1.23 nJ, 45.6 us."""
    if v == 0:
        return f"0 {unit}"
    if v != v or v in (float("inf"), float("-inf")):
        return f"{v} {unit}"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""),
                           (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f")):
        if abs(v) >= factor:
            return f"{v / factor:.3g} {prefix}{unit}"
    return f"{v:.3g} {unit}"


def cost_of_chip(chip, images: int, cfg=None, source: str = "evaluation images") -> CostReport:
    """Cost of a chip that has run ``images`` images after calibration, with the range over
    the component sources (``CostReport.bounds``)."""
    cfg = cfg or chip.cfg
    return estimate_range(collect(chip, images, source), cfg.cost)


def run_for_cost(model, cfg, x, x_cal):
    """The chip whose events ``norsim report`` and the seed table price: mapped, calibrated
    on ``x_cal``, compensated when ``cfg.compensation.enabled`` (norsim.compensation's
    ``prepare_chip``), events reset, then run on ``x``. One function, so that both agree for
    the same configuration (tests/test_cost_consistency.py)."""
    from norsim.compensation.core import prepare_chip
    from norsim.mapping import engine

    chip = prepare_chip(model, cfg, x_cal)
    for t in chip.tiles():  # count the evaluation images only (not compensation's probes)
        t.array.events.reset()
    result = engine.run(chip, x)
    return chip, result


def cost_from_evaluation(rep: dict, cfg) -> CostReport:
    """Cost of the first chip instance of a ``experiments.evaluate.evaluate(..., keep_chips=True)``
    report (its tiles counted the evaluation images only). Drops the chips from ``rep``."""
    chip = rep["instances"][0]["chip"]
    out = cost_of_chip(chip, int(rep["images"]), cfg)
    for inst in rep["instances"]:
        inst.pop("chip", None)
    return out


def format_report(rep: CostReport) -> str:
    """Per-layer and total energy by component, latency, area, TOPS/W, TOPS/mm^2, fps."""
    d = rep.as_dict()
    t = d["total"]
    comps = [c for c in COMPONENTS if t["energy_by_component_j"][c] > 0]
    head = (f"cost model: node {rep.node}, ADC model {rep.adc_model}; events counted on "
            f"{rep.images} {rep.source}, normalised per image; "
            f"TOPS count {OPS_PER_MAC} operations per MAC")
    lines = [head, f"configuration: {rep.configuration or 'not recorded'}", "",
             "energy per image by component (J):",
             f"{'layer':<10} {'where':>7} " + " ".join(f"{c:>10}" for c in comps) + f" {'total':>10}"]
    for lc in d["layers"]:
        lines.append(f"{lc['layer']:<10} {lc['where']:>7} "
                     + " ".join(f"{lc['energy_j'][c]:>10.3e}" for c in comps)
                     + f" {lc['energy_total_j']:>10.3e}")
    lines.append(f"{'total':<10} {'':>7} " + " ".join(f"{t['energy_by_component_j'][c]:>10.3e}" for c in comps)
                 + f" {t['energy_per_image_j']:>10.3e}")
    lines += ["", f"{'layer':<10} {'MACs/img':>10} {'energy':>10} {'latency':>10} {'area':>10} "
                  f"{'tiles':>5} {'util %':>6} {'TOPS/W':>7}"]
    for lc in d["layers"]:
        tw = lc["tops_per_w"]
        lines.append(f"{lc['layer']:<10} {lc['macs_per_image']:>10.4g} {_eng(lc['energy_total_j'], 'J'):>10} "
                     f"{_eng(lc['latency_s'], 's'):>10} {lc['area_mm2']:>7.3f} mm2 {lc['tiles']:>5} "
                     f"{100 * lc['utilisation']:>6.1f} {'-' if tw is None else f'{tw:.3g}':>7}")
    rng = rep.ranges()

    def r(key: str, fmt) -> str:
        """' [lo - hi]' over the component sources, when the report has a range."""
        if rng is None:
            return ""
        lo, hi = rng[key]
        return f" [{fmt(lo)} - {fmt(hi)}]"

    def num(v):
        return f"{v:.4g}"

    lines += [
        "",
        f"energy per image      : {_eng(t['energy_per_image_j'], 'J')}"
        f"{r('energy_per_image_j', lambda v: _eng(v, 'J'))}",
        f"single-image latency  : {_eng(t['latency_single_image_s'], 's')}"
        f"{r('latency_single_image_s', lambda v: _eng(v, 's'))} (layers in sequence)",
        f"pipelined throughput  : {t['fps_pipelined']:.4g}{r('fps_pipelined', num)} frames/s "
        f"(one image per slowest layer)",
        f"power at that rate    : {_eng(t['power_w'], 'W')}{r('power_w', lambda v: _eng(v, 'W'))}",
        f"area                  : {t['area_mm2']:.4g}{r('area_mm2', num)} mm2 (digital engine "
        f"{t['digital_area_mm2']:.3g} mm2)",
        f"efficiency            : {t['tops_per_w']:.4g}{r('tops_per_w', num)} TOPS/W, "
        f"{t['tops_per_mm2']:.4g}{r('tops_per_mm2', num)} TOPS/mm2, "
        f"{t['tops']:.4g}{r('tops', num)} TOPS ({OPS_PER_MAC} ops per MAC)",
        f"array utilisation     : {100 * t['utilisation']:.1f} %",
        f"programming (separate): {_eng(d['programming']['time_s'], 's')}, "
        f"{_eng(d['programming']['energy_j'], 'J')}"
        + ("" if d["programming"]["energy_j"] > 0 else " (not simulated: mapping.programming = 'ideal')"),
    ]
    if rng is not None:
        lines.append("[lo - hi]: the same events with every component at its lowest / highest "
                     "source (docs/cost-model.md, 'Ranges'): bounds, not a confidence interval")
    return "\n".join(lines)


def format_summary(rows: list[tuple[str, CostReport]]) -> str:
    """One markdown row per setting: energy/image, latency, fps, TOPS/W, area."""
    lines = ["| setting | energy / image | latency (1 image) | frames/s (pipelined) | "
             "TOPS/W (2 ops/MAC) | area mm2 | configuration |", "|---|---|---|---|---|---|---|"]
    for label, r in rows:
        rng = r.ranges()
        e = _eng(r.energy_per_image_j, 'J')
        if rng is not None:
            lo, hi = rng["energy_per_image_j"]
            e += f" [{_eng(lo, 'J')} - {_eng(hi, 'J')}]"
        lines.append(f"| {label} | {e} | {_eng(r.latency_single_s, 's')} | "
                     f"{r.fps_pipelined:.4g} | {r.tops_per_w:.3g} | {r.area_mm2:.3g} | "
                     f"{r.configuration or '-'} |")
    return "\n".join(lines)


def plot_energy(rep: CostReport, path: str | Path, produced_by: str = "") -> Path:
    """Stacked bars: energy per image of each layer by component (and the total); the title
    says the configuration, the ADC model and ``produced_by`` (preset and options)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [lc.name for lc in rep.layers] + ["total"]
    tot = rep.energy_by_component_j
    comps = [c for c in COMPONENTS if tot[c] > 0]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(names) + 4.5), 3.8))
    bottom = np.zeros(len(names))
    cmap = plt.get_cmap("tab20")
    for i, c in enumerate(comps):
        vals = np.array([lc.energy_j[c] for lc in rep.layers] + [tot[c]]) * 1e9
        ax.bar(range(len(names)), vals, bottom=bottom, label=c, color=cmap(i))
        bottom += vals
    from norsim import figstyle

    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_xlabel("layer")
    ax.set_ylabel("energy per image (nJ)")
    rng = rep.ranges()
    span = "" if rng is None else \
        f" [{rng['tops_per_w'][0]:.3g}-{rng['tops_per_w'][1]:.3g}]"
    figstyle.fit_title(ax, f"{rep.model_name}: {rep.tops_per_w:.3g}{span} TOPS/W ({rep.node}, "
                           f"ADC {rep.adc_model}; {rep.configuration or 'configuration not recorded'}"
                           f"{'; ' + produced_by if produced_by else ''})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="component",
              title_fontsize=7)
    return figstyle.save(fig, path)
