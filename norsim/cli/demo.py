"""``norsim demo``: the main job on the embedded default.

The zoo's 4-bit MNIST model on 256x256 arrays of the ``nor40`` preset over the bundled 10k
MNIST test images: integer reference; analog with ideal settings; analog with the preset's
non-idealities, fresh and after a 10-year 85 C bake (several chip instances each).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from norsim.cli.common import add_config_args, config_from_args
from norsim.errors import InputError

DEMO_MODEL = "zoo:lenet-mnist-4b"
TEN_YEARS_S = 10 * 365.25 * 24 * 3600.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the embedded default")
    p.add_argument("--out", default="out/demo", help="output directory (table, JSON, figure)")
    p.add_argument("--model", default=DEMO_MODEL, help="zoo:NAME or a QuantModel .npz file")
    p.add_argument("--limit", type=int, default=None, help="only the first N test images")
    p.add_argument("--seeds", type=int, default=5, help="chip instances per non-ideal row")
    add_config_args(p)
    p.set_defaults(func=run)


def scenarios(cfg):
    from norsim.mapping.mapper import ideal_config

    fresh = cfg.with_overrides({"mapping.retention_time_s": 0.0})
    baked = cfg.with_overrides({"mapping.retention_time_s": TEN_YEARS_S,
                                "mapping.retention_temperature_k": 358.15})
    compensated = baked.with_overrides({"compensation.enabled": True,
                                        "compensation.adaptive_read_voltage": True,
                                        "compensation.activation_recalibration": True})
    return [("analog, ideal settings", ideal_config(cfg), 1),
            ("analog nor40, fresh", fresh, None),
            ("analog nor40, 10 y at 85 C", baked, None),
            ("analog nor40, 10 y at 85 C, compensated", compensated, None)]


def run(args: argparse.Namespace) -> int:
    from norsim.cli.run import load_eval_data, load_model
    from norsim.mapping.evaluate import evaluate, jsonable

    if args.seeds < 1:
        raise InputError("--seeds", args.seeds, "at least 1")
    cfg = config_from_args(args)
    model = load_model(args.model)
    x, y, x_cal = load_eval_data("mnist", args.limit)
    x_cal = x_cal[:cfg.mapping.calibration_images]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows, reports = [], {}
    from norsim.cost.report import cost_from_evaluation, format_summary

    costs = []
    for label, c, n_seeds in scenarios(cfg):
        n_seeds = n_seeds or args.seeds
        rep = evaluate(model, c, x, y, x_cal, seeds=range(c.seed, c.seed + n_seeds),
                       keep_chips=True)
        cost = cost_from_evaluation(rep, c)
        reports[label] = jsonable(rep)
        if "ideal" not in label:  # ideal settings use a 24-bit ADC: a numerical device, not hardware
            costs.append((label, cost))
            reports[label]["cost"] = cost.as_dict()
        if not rows:
            ref = rep["reference"]
            rows.append(("integer reference", ref["accuracy"], None, None, None, 1))
        ch, d = rep["chip"], rep["difference"]
        rows.append((label, ch["accuracy_mean"], ch["chip_to_chip"]["std"], d["mean"],
                     d["paired_bootstrap_95"], n_seeds))
    seconds = time.perf_counter() - t0
    table = format_table(rows, len(y), model.name)
    table += ("\n\nenergy, latency, area per image (norsim.cost, first chip instance; the ideal "
              "row's 24-bit ADC is not hardware and is left out):\n\n" + format_summary(costs))
    print(table)
    print(f"\n({seconds:.1f} s; model {args.model}; figure and JSON in {out})")
    (out / "table.md").write_text(table + "\n")
    (out / "demo.json").write_text(json.dumps({"model": args.model, "images": int(len(y)),
                                               "seconds": seconds, "rows": [
        {"setting": r[0], "accuracy": r[1], "chip_to_chip_std": r[2], "difference": r[3],
         "paired_bootstrap_95": r[4], "seeds": r[5]} for r in rows],
        "reports": reports}, indent=1))
    plot_rows(rows, out / "accuracy.png")
    return 0


def format_table(rows, n_images: int, model_name: str) -> str:
    lines = [f"MNIST test images: {n_images}; model: {model_name}; arrays: nor40 preset",
             "",
             "| setting | top-1 % | chip-to-chip sd (pts) | vs reference (pts) | paired 95% interval | seeds |",
             "|---|---|---|---|---|---|"]
    for label, acc, sd, diff, ci, seeds in rows:
        lines.append(
            f"| {label} | {100 * acc:.2f} | {'-' if sd is None else f'{100 * sd:.2f}'} | "
            f"{'-' if diff is None else f'{100 * diff:+.2f}'} | "
            f"{'-' if ci is None else f'{100 * ci[0]:+.2f} to {100 * ci[1]:+.2f}'} | {seeds} |")
    return "\n".join(lines)


def plot_rows(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    labels = [r[0] for r in rows]
    acc = [100 * r[1] for r in rows]
    err = [0 if r[2] is None else 100 * r[2] for r in rows]
    ax.barh(range(len(rows)), acc, xerr=err, color=["0.5", "tab:blue", "tab:green", "tab:red", "tab:purple"][:len(rows)])
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    lo = max(0.0, min(acc) - 5)
    ax.set_xlim(lo, 100)
    ax.set_xlabel("top-1 accuracy (%) (error bar: chip-to-chip sd)")
    for i, a in enumerate(acc):
        ax.text(a, i, f" {a:.2f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
