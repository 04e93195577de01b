"""``norsim demo``: the main job on the embedded default.

The zoo's 4-bit MNIST model on 256x256 arrays of the ``nor40`` preset over bundled MNIST test
images: integer reference; analog with ideal settings; analog with the preset's
non-idealities, fresh, after a 10-year 85 C bake, and after the bake with compensation,
each on several chip instances, with intervals that count the chips as replicates.

The default spends about a minute on 2 cores where the statistics need it: more chips and
fewer images (8 chips x 400 images); ``--full`` is the long table (5 chips x 10,000 images).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from norsim.cli.common import add_config_args, config_from_args
from norsim.errors import InputError

DEMO_MODEL = "zoo:lenet-mnist-4b"
#: the one-minute default (images, chips) and the full table's
QUICK = (400, 8)
FULL = (10_000, 5)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the embedded default",
                       description="The main job: reference vs analog fresh / 10 y at 85 C / "
                       "compensated, with energy, latency and area. About a minute on 2 cores "
                       f"({QUICK[1]} chips x {QUICK[0]} images); --full: {FULL[1]} chips x "
                       f"{FULL[0]:,} images.")
    p.add_argument("--out", default="out/demo", help="output directory (table, JSON, figure)")
    p.add_argument("--model", default=DEMO_MODEL, help="zoo:NAME or a QuantModel .npz file")
    p.add_argument("--full", action="store_true",
                   help=f"the full table: {FULL[1]} chips x {FULL[0]:,} images (about 7 min on 2 cores)")
    p.add_argument("--limit", type=int, default=None,
                   help=f"test images (default {QUICK[0]}; --full {FULL[0]:,})")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"chip instances per non-ideal row (default {QUICK[1]}; --full {FULL[1]})")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: the CPUs this process may use, at most 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    add_config_args(p)
    p.set_defaults(func=run)


def _workers(requested: int | None) -> int:
    if requested is not None:
        if requested < 1:
            raise InputError("--workers", requested, "at least 1")
        return requested
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished worker processes."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _attach_cost(res: dict, chip, cfg) -> None:
    """Energy, latency and area of this chip instance from its own event counts."""
    from norsim.cost.report import cost_of_chip

    res["cost"] = cost_of_chip(chip, int(res["correct"].size), cfg)


def run(args: argparse.Namespace) -> int:
    from norsim.cli.run import load_eval_data, load_model
    from norsim.cost.report import format_summary
    from norsim.mapping import preflight
    from norsim.experiments.evaluate import evaluate_jobs, jsonable, reference_correct, summarize
    from norsim.outputs import check_output_dir
    from norsim.progress import Progress
    from norsim.scenarios import scenarios
    from norsim.warmup import warm_kernels

    n_images, n_chips = FULL if args.full else QUICK
    n_images = args.limit if args.limit is not None else n_images
    n_chips = args.seeds if args.seeds is not None else n_chips
    if n_chips < 1:
        raise InputError("--seeds", n_chips, "at least 1")
    if n_images < 1:
        raise InputError("--limit", n_images, "a positive number of images")
    workers = _workers(args.workers)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    out = check_output_dir("--out", args.out)
    cfg = config_from_args(args)
    model = load_model(args.model)
    for sc in scenarios(cfg):             # every row's model placement, before any work
        preflight.check_job(model, sc.cfg)
    x, y, x_cal = load_eval_data("mnist", n_images)
    x_cal = x_cal[:max(cfg.mapping.calibration_images, cfg.compensation.recalibration_images)]
    preflight.check_job(model, cfg, x, x_cal)
    out.mkdir(parents=True, exist_ok=True)
    quiet = False if args.no_progress else None
    say = (lambda s: None) if args.no_progress else \
        (lambda s: print(s, file=sys.stderr, flush=True))
    warm_kernels(cfg, model, say=say)

    rows = scenarios(cfg)
    seeds = list(range(cfg.seed, cfg.seed + n_chips))
    # one group per chip instance (its settings share the programmed cells), the ideal path
    # (one deterministic instance) a group of its own, last
    groups, work = [], {}
    for s in seeds:
        groups.append([((sc.key, s), dataclasses.replace(sc.cfg, seed=s))
                       for sc in rows if not sc.one_chip])
    groups.append([((sc.key, cfg.seed), dataclasses.replace(sc.cfg, seed=cfg.seed))
                   for sc in rows if sc.one_chip])
    for sc in rows:
        for s in ([cfg.seed] if sc.one_chip else seeds):
            work[(sc.key, s)] = sc.work
    jobs = [j for g in groups for j in g]
    say(f"demo: {len(y)} test images; {n_chips} chips x {len(rows) - 1} settings + the ideal "
        f"path = {len(jobs)} chip runs on {workers} worker process(es)")
    bar = Progress(len(jobs), "demo", unit="chip run", enabled=quiet,
                   total_work=sum(work.values()))
    labels = {sc.key: sc.label for sc in rows}
    ref_correct = reference_correct(model, x, y)
    try:
        results = evaluate_jobs(
            model, groups, x, y, x_cal, workers=workers, finish=_attach_cost,
            on_done=lambda k, r: bar.step(f"{labels[k[0]]}, chip {k[1]}: "
                                          f"{100 * r['accuracy']:.2f} %", work=work[k]))
    finally:
        bar.close()

    table_rows, reports, costs = [], {}, []
    table_rows.append(("integer reference", float(ref_correct.mean()), None, None, None, None,
                       None, None, 1))
    for sc in rows:
        chips = [results[(sc.key, s)] for s in ([cfg.seed] if sc.one_chip else seeds)]
        rep = summarize(ref_correct, chips, sc.cfg)
        cost = chips[0].pop("cost")
        for c in chips[1:]:
            c.pop("cost", None)
        reports[sc.key] = jsonable(rep) | {"label": sc.label}
        if sc.key != "ideal":   # the ideal path's 24-bit ADC is a numerical device, not hardware
            costs.append((sc.label, cost))
            reports[sc.key]["cost"] = cost.as_dict()
        ch, d = rep["chip"], rep["difference"]
        many = len(chips) > 1
        table_rows.append((sc.label, ch["accuracy_mean"],
                           None if ch["chip_to_chip"] is None else ch["chip_to_chip"]["std"],
                           d["mean"], d["over_chips_95"] if many else None,
                           d["t_over_chips_95"] if many else None,
                           d["two_level_bootstrap_95"] if many else None,
                           d["paired_bootstrap_95"], len(chips)))
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    table = format_table(table_rows, len(y), model.name, cfg_label(args))
    table += ("\n\nenergy, latency, area per image (norsim.cost, chip instance "
              f"{cfg.seed}; the ideal row's 24-bit ADC is not hardware and is left out):\n\n"
              + format_summary(costs))
    print(table)
    print(f"\n({seconds:.1f} s wall, {cpu:.1f} CPU-s; model {args.model}; {len(y)} images x "
          f"{n_chips} chips on {workers} worker(s); figure and JSON in {out}"
          + ("" if args.full else "; the full table: norsim demo --full") + ")")
    (out / "table.md").write_text(table + "\n")
    (out / "demo.json").write_text(json.dumps({
        "model": args.model, "images": int(len(y)), "chips": n_chips, "workers": workers,
        "seconds": seconds, "rows": [
            {"setting": r[0], "accuracy": r[1], "chip_to_chip_std": r[2], "difference": r[3],
             "interval_95_over_chips": r[4], "interval_95_over_chips_t": r[5],
             "interval_95_over_chips_two_level": r[6], "interval_95_given_chips": r[7],
             "chips": r[8]}
            for r in table_rows],
        "reports": reports}, indent=1))
    plot_rows(table_rows, out / "accuracy.png", len(y))
    return 0


def cfg_label(args) -> str:
    """The preset and the options that differ from it, for the table's header."""
    parts = [getattr(args, "preset", None) or "nor40"]
    if getattr(args, "config", None):
        parts.append(f"config {args.config}")
    parts += list(getattr(args, "overrides", None) or [])
    return ", ".join(parts)


def _pts(v) -> str:
    return f"{100 * v:+.2f}"


def _iv(iv) -> str:
    return "-" if iv is None else f"{_pts(iv[0])} to {_pts(iv[1])}"


def format_table(rows, n_images: int, model_name: str, config: str = "nor40") -> str:
    """Markdown table; a difference whose chip-replicate interval contains 0 is marked."""
    lines = [f"MNIST test images: {n_images}; model: {model_name}; arrays: {config}",
             "",
             "| setting | top-1 % | chip-to-chip sd (pts) | vs reference (pts) | "
             "95% over chips | t over chips | two-level bootstrap | "
             "95% given these chips | chips |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, acc, sd, diff, ci_hull, ci_t, ci_two, ci_given, n in rows:
        if diff is None:
            verdict = ""
        elif diff == 0 and ci_given is not None and ci_given[0] == 0 and ci_given[1] == 0:
            verdict = " (identical on every image)"
        else:
            iv = ci_hull if ci_hull is not None else ci_given
            verdict = "" if (iv[0] > 0 or iv[1] < 0) else " (not resolved at this size)"
        lines.append(
            f"| {label} | {100 * acc:.2f} | {'-' if sd is None else f'{100 * sd:.2f}'} | "
            f"{'-' if diff is None else _pts(diff) + verdict} | {_iv(ci_hull)} | {_iv(ci_t)} | "
            f"{_iv(ci_two)} | {_iv(ci_given)} | {n} |")
    lines += ["", "Intervals of the difference to the reference (points). Over chips: the "
              "chips are replicates of the configuration; the interval is the hull of a "
              "t-interval over the per-chip differences (it holds the images fixed) and a "
              "two-level bootstrap (chips, then images, 1,000 replicates; narrow with few "
              "chips). Given these chips: paired bootstrap over images, these chips fixed. A "
              "row is resolved when the over-chips interval excludes 0. One-chip rows have no "
              "chip spread."]
    return "\n".join(lines)


def plot_rows(rows, path: Path, n_images: int) -> None:
    """Accuracy per setting with the 95 % t-interval over chips of its difference to the
    reference (the given-chips interval for one-chip rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from norsim import figstyle

    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    labels = [r[0] for r in rows]
    acc = [100 * r[1] for r in rows]
    lo_err, hi_err = [], []
    for r in rows:
        iv = r[4] if r[4] is not None else r[7]
        if iv is None or r[3] is None:
            lo_err.append(0.0)
            hi_err.append(0.0)
        else:  # interval of the difference, placed around this row's accuracy
            lo_err.append(max(0.0, 100 * (r[3] - iv[0])))
            hi_err.append(max(0.0, 100 * (iv[1] - r[3])))
    colors = ["0.5", "tab:blue", "tab:green", "tab:red", "tab:purple"]
    ax.barh(range(len(rows)), acc, xerr=[lo_err, hi_err], capsize=3,
            color=[colors[i % len(colors)] for i in range(len(rows))])
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    x0 = max(0.0, min(a - lo for a, lo in zip(acc, lo_err)) - 5)
    ax.set_xlim(x0, 100)
    ax.set_xlabel("top-1 accuracy (%)")
    figstyle.fit_title(ax, f"MNIST, {n_images} test images; error bars: 95 % interval of the "
                       "difference to the reference, chips as replicates", fontsize=9)
    for i, a in enumerate(acc):        # inside the bar, clear of the error bars
        ax.text(x0 + 0.01 * (100 - x0), i, f"{a:.2f} %", va="center", ha="left", fontsize=8,
                color="white", fontweight="bold")
    figstyle.save(fig, path)
