"""Error budget: which non-ideality costs the accuracy, and in which layer.

Starting from the ideal chip (``mapper.ideal_config``: bit-exact with the integer reference),
each non-ideality is switched back on alone (its fields restored from the full configuration),
then all together. Every run is paired with the integer reference on the same images
(McNemar per chip instance, paired bootstrap of the seed-averaged difference) and reports the
per-layer MVM SNR.

Some effects cannot exist without another: retention and temperature act on the V_th a real
program-and-verify placed (the ideal path places every cell exactly for the read
temperature and has no bake), and ADC errors are specified in LSB of the real converter. Such
rows name their ``base`` and report, besides their own drop, the ``marginal`` drop over the
base. Consistency with the all-on run is checked two ways (docs/compensation.md):

* accuracy: the sum of the marginal drops (bases counted once) against the all-on drop;
* error power: per layer, independent error sources add in power, so the all-on relative
  error power (1 / SNR) should be close to the sum of the single-effect (marginal) ones.

When the configuration enables compensation (``compensation.enabled``), every run -- each
effect alone and all together -- is calibrated and compensated as the chip would be
(:func:`norsim.compensation.compensate`), so the budget shows what is left after it.

The most sensitive layer: the all-on chip's tiles of one layer combined with ideal tiles
everywhere else, for each analog layer in turn; the layer whose non-idealities alone cost
the most accuracy (ties: lowest SNR) is the most sensitive.
"""

from __future__ import annotations

import copy
import time

import numpy as np

from norsim.config.sim import SimConfig
from norsim.errors import InputError
from norsim.mapping import engine, mapper
from norsim.progress import Progress
from norsim.stats import paired_compare, seed_spread

_STREAM_BOOT = 505

# name -> (fields restored from the full configuration, base effect or None, description)
EFFECTS: dict[str, tuple[list[str], str | None, str]] = {
    "program_placement": (["mapping.programming"], None,
                          "ISPP program-and-verify (and tuning) without D2D variation or stuck cells"),
    "d2d_variation": (["mapping.programming"], "program_placement",
                      "D2D V_th/n/beta/DIBL variation and stuck cells, through ISPP"),
    "read_noise": (["array.noise.shot_enabled", "array.noise.cell_noise_enabled",
                    "array.noise.ktc_enabled"], None, "cell white + 1/f noise and kT/C noise per read"),
    "rtn": (["array.noise.rtn_enabled"], None, "random telegraph noise (binomial trap "
            "occurrence, level-dependent exponential amplitude, Arrhenius times; issue 20)"),
    "retention": (["mapping.programming", "mapping.retention_time_s",
                   "mapping.retention_temperature_k"], "program_placement",
                  "charge loss over the bake, on ISPP-placed cells"),
    "temperature": (["mapping.programming", "device.read.temperature_k"], "program_placement",
                    "read at the operating temperature, programmed at program_temperature_k"),
    "temperature_spread": (["mapping.programming", "device.read.temperature_k",
                            "device.variation.dvth_dt_sigma_v_per_k"], "temperature",
                           "per-cell V_th temperature coefficient spread at the operating "
                           "temperature (issue 20; zero at the programming temperature)"),
    "wear": (["mapping.programming", "device.retention.pe_cycles"], "program_placement",
             "program/erase wear (device.retention.pe_cycles): slower ISPP, larger verify RTN, "
             "larger fast-leaking retention tail (issue 20); the other programmed rows use "
             "fresh cells"),
    "program_disturb": (["mapping.programming", "device.disturb.program_disturb",
                         "device.disturb.tuning_order"], "program_placement",
                        "Fowler-Nordheim disturb of half-selected cells by the later pulses of "
                        "row-major array tuning (issue 20; negligible at nor40's staircase)"),
    "fg_coupling": (["mapping.programming", "device.disturb.fg_coupling_wl",
                     "device.disturb.fg_coupling_bl", "device.disturb.tuning_order"],
                    "program_placement", "floating-gate coupling: V_th shift of a cell by its "
                    "neighbours' V_th changes after its final verify (issue 20)"),
    "read_disturb": (["mapping.programming", "device.disturb.read_count"], "program_placement",
                     "Fowler-Nordheim read disturb after device.disturb.read_count reads "
                     "(issue 20; budget --reads; nil at nor40's read bias)"),
    "ir_drop": ([], None, "per-vector IR drop of every bit-plane in every tile at the "
                "configuration's wires and straps (mapping.ir_drop = 'network', the modal "
                "surrogate checked on exact circuit solves; issue 19)"),
    "adc_quantisation": (["array.adc.bits", "array.adc.range_mode",
                          "array.adc.calibration_percentile"], None,
                         "ADC resolution and calibrated range"),
    "adc_errors": (["array.adc.bits", "array.adc.range_mode", "array.adc.calibration_percentile",
                    "array.adc.offset_lsb", "array.adc.offset_sigma_lsb", "array.adc.gain_error",
                    "array.adc.gain_sigma", "array.adc.inl_lsb", "array.adc.noise_lsb"],
                   "adc_quantisation", "ADC offset, gain, INL and noise (in LSB of the real ADC)"),
    "leakage": ([], None, "always on: unselected-row and level-0 currents are part of the cell "
                "physics in every run (the ideal chip is exact with them)"),
}

# effects switched on by a setting of their own rather than restored fields
_SET = {"ir_drop": {"mapping.ir_drop": "network"}}

_NO_VARIATION = {"device.variation.vth_sigma_v": 0.0, "device.variation.n_sigma_rel": 0.0,
                 "device.variation.beta_sigma_rel": 0.0, "device.variation.dibl_sigma_rel": 0.0,
                 "device.variation.stuck_on_fraction": 0.0,
                 "device.variation.stuck_off_fraction": 0.0,
                 "device.variation.dvth_dt_sigma_v_per_k": 0.0,
                 "device.retention.pe_cycles": 0}
# the disturbs of array tuning and inference, off unless the effect restores them
_NO_DISTURB = {"device.disturb.program_disturb": False, "device.disturb.fg_coupling_wl": 0.0,
               "device.disturb.fg_coupling_bl": 0.0, "device.disturb.read_count": 0.0}


def _get(cfg: SimConfig, dotted: str):
    obj = cfg
    for part in dotted.split("."):
        if not hasattr(obj, part):
            return None
        obj = getattr(obj, part)
    return obj


def effect_config(full: SimConfig, effect: str) -> SimConfig | None:
    """The ideal configuration with ``effect`` restored from ``full`` (None: not modelled)."""
    if effect == "all":
        return full
    if effect not in EFFECTS:
        raise InputError("effect", effect, "one of " + ", ".join(EFFECTS) + " or 'all'")
    fields, _, _ = EFFECTS[effect]
    if not fields and effect not in _SET:
        return None
    ideal = mapper.ideal_config(full)
    over = {f: _get(full, f) for f in fields if _get(full, f) is not None}
    over.update(_SET.get(effect, {}))
    if "mapping.programming" in over and effect != "d2d_variation":
        over.update({k: v for k, v in _NO_VARIATION.items() if k not in over})
    if "mapping.programming" in over:
        over.update({k: v for k, v in _NO_DISTURB.items() if k not in over})
    return ideal.with_overrides(over)


def _run(model, cfg, images, labels, calib, seed):
    c = cfg.with_overrides({"seed": int(seed)})
    chip = mapper.map_model(model, c)
    engine.calibrate(chip, calib[:c.mapping.calibration_images])
    if c.compensation.enabled:  # the chip as built: its own calibration and compensation
        from norsim.compensation import compensate

        compensate(chip, calib)
    run = engine.run(chip, images)
    return chip, run


def _error_powers(run) -> dict:
    """Per layer: (relative error power = error / signal power = 1 / SNR, signal, SNR dB).
    Relative, because each run's layer inputs (and so signal powers) differ."""
    return {k: (v.error_power / v.signal_power if v.signal_power > 0 else 0.0,
                v.signal_power / max(v.count, 1), v.snr_db)
            for k, v in run.layer_stats.items()}


def budget(model, cfg: SimConfig, images, labels, calib, *, seeds=(0,), effects=None,
           layer_sensitivity: bool = True, progress=None, show_progress: bool | None = None) -> dict:
    """Run the budget; returns a JSON-able report (see the module docstring).

    ``progress(name, row)`` is called after each effect; ``show_progress`` (None: on) prints a
    step per chip run on stderr (:class:`norsim.progress.Progress`)."""
    labels = np.asarray(labels).astype(np.int64)
    if labels.shape != (np.asarray(images).shape[0],):
        raise InputError("labels", labels.shape, f"one label per image ({np.asarray(images).shape[0]},)")
    _, ref_pred = engine.reference_run(model, images)
    ref_correct = ref_pred == labels
    names = list(effects or EFFECTS) + ["all"]
    modelled = [n for n in names if effect_config(cfg, n) is not None]
    bar = Progress(len(modelled) * len(seeds), "error budget", unit="chip run",
                   enabled=show_progress)
    rows = {}
    chips_all = {}
    for name in names:
        t0 = time.perf_counter()
        c = effect_config(cfg, name)
        base = EFFECTS.get(name, (None, None, "every non-ideality of the configuration"))
        row = {"description": base[2], "base": base[1]}
        if c is None:
            row.update({"modelled": False})
            rows[name] = row
            continue
        correct, snr, perr = [], [], []
        for s in seeds:
            chip, run = _run(model, c, images, labels, calib, s)
            bar.step(f"{name}, chip seed {s}")
            if name == "all" and layer_sensitivity:
                chips_all[s] = chip
            _add_ir_check(row, chip)
            correct.append(run.predictions == labels)
            ep = _error_powers(run)
            snr.append({k: v[2] for k, v in ep.items()})
            perr.append({k: v[0] for k, v in ep.items()})
        row.update(_paired(ref_correct, correct, cfg, seeds))
        row["snr_db"] = {k: float(np.mean([s_[k] for s_ in snr])) for k in snr[0]}
        row["error_power"] = {k: float(np.mean([p[k] for p in perr])) for k in perr[0]}
        row["modelled"] = True
        row["seconds"] = time.perf_counter() - t0
        rows[name] = row
        if progress:
            progress(name, row)
    bar.close()
    report = {"images": int(labels.size), "seeds": [int(s) for s in seeds],
              "reference_accuracy": float(ref_correct.mean()), "effects": rows}
    _marginals(report)
    if layer_sensitivity and chips_all:
        report["layer_sensitivity"] = _layer_sensitivity(model, cfg, images, labels, calib,
                                                         seeds, chips_all, ref_correct,
                                                         show_progress)
        ls = report["layer_sensitivity"]
        if ls:
            worst = max(ls, key=lambda k: (ls[k]["drop"], -ls[k]["snr_db"]))
            report["most_sensitive_layer"] = worst
    return report


def _add_ir_check(row: dict, chip) -> None:
    """The per-vector IR surrogate's certification (``mapping.ir_drop = 'network'``: exact
    circuit solves during the run), worst over the seeds, into the effect's row."""
    from norsim.mapping.ir_drop import ir_check_summary

    rep = ir_check_summary(chip)
    if rep is None:
        return
    old = row.get("ir_check")
    if old is not None:
        rep = {k: (max(v, old[k]) if k.startswith("max_") else v + old[k])
               for k, v in rep.items() if k != "fraction_checked"}
        rep["fraction_checked"] = rep["n_checked"] / rep["n_vectors"] if rep["n_vectors"] else 0.0
    row["ir_check"] = rep


def _paired(ref_correct, correct, cfg, seeds) -> dict:
    accs = np.array([c.mean() for c in correct])
    pairs = [paired_compare(ref_correct, c, cfg.rng(_STREAM_BOOT, int(s)), n_boot=1000)
             for c, s in zip(correct, seeds)]
    diff = np.mean(correct, axis=0) - ref_correct
    boots = diff[cfg.rng(_STREAM_BOOT).integers(0, diff.size, (1000, diff.size))].mean(axis=1)
    return {"accuracy": float(accs.mean()), "accuracy_per_seed": accs.tolist(),
            "spread": seed_spread(accs), "drop": float(-diff.mean()),
            "drop_bootstrap_95": sorted((-np.quantile(boots, [0.975, 0.025])).tolist()),
            "mcnemar_p": [p.mcnemar_p for p in pairs]}


def _marginals(report: dict) -> None:
    """Marginal drops / error powers over each row's base and the consistency checks."""
    eff = report["effects"]
    total_drop, layers = 0.0, None
    sum_power: dict[str, float] = {}
    for name, row in eff.items():
        if name == "all" or not row.get("modelled"):
            continue
        base = eff.get(row["base"]) if row["base"] else None
        row["marginal_drop"] = row["drop"] - (base["drop"] if base else 0.0)
        row["marginal_error_power"] = {
            k: v - (base["error_power"].get(k, 0.0) if base else 0.0)
            for k, v in row["error_power"].items()}
        total_drop += row["marginal_drop"]
        for k, v in row["marginal_error_power"].items():
            sum_power[k] = sum_power.get(k, 0.0) + max(v, 0.0)
        layers = list(row["error_power"])
    allrow = eff.get("all")
    if allrow and allrow.get("modelled"):
        report["consistency"] = {
            "sum_of_marginal_drops": total_drop,
            "all_on_drop": allrow["drop"],
            "error_power_sum_over_all_on": {
                k: (sum_power.get(k, 0.0) / allrow["error_power"][k]
                    if allrow["error_power"].get(k) else None) for k in (layers or [])},
        }


def _layer_sensitivity(model, cfg, images, labels, calib, seeds, chips_all, ref_correct,
                       show_progress: bool | None = None) -> dict:
    ideal = mapper.ideal_config(cfg)
    n_analog = sum(layer.analog for layer in chips_all[seeds[0]].layers.values())
    bar = Progress(len(seeds) * (1 + n_analog), "error budget, one layer at a time",
                   unit="chip run", enabled=show_progress)
    out: dict[str, dict] = {}
    per_layer: dict[str, list] = {}
    snrs: dict[str, list] = {}
    for s in seeds:
        chip_i = mapper.map_model(model, ideal.with_overrides({"seed": int(s)}))
        engine.calibrate(chip_i, calib[:ideal.mapping.calibration_images])
        bar.step(f"ideal chip, seed {s}")
        chip_a = chips_all[s]
        for name, layer in chip_a.layers.items():
            if not layer.analog:
                continue
            mix = copy.copy(chip_i)
            mix.layers = {k: (chip_a.layers[k] if k == name else v) for k, v in chip_i.layers.items()}
            mix.calibrated = True
            run = engine.run(mix, images)
            per_layer.setdefault(name, []).append(run.predictions == labels)
            snrs.setdefault(name, []).append(run.layer_stats[name].snr_db)
            bar.step(f"{name} on array, seed {s}")
    bar.close()
    for name, correct in per_layer.items():
        row = _paired(ref_correct, correct, cfg, seeds)
        row["snr_db"] = float(np.mean(snrs[name]))
        out[name] = row
    return out


def format_report(rep: dict) -> str:
    lines = [f"images: {rep['images']}, seeds: {rep['seeds']}, integer reference "
             f"{100 * rep['reference_accuracy']:.2f} %", "",
             f"{'effect':<18} {'acc %':>7} {'drop pts':>9} {'95% CI':>17} {'marginal':>9} "
             f"{'min McNemar p':>13}  worst-layer SNR dB"]
    for name, row in rep["effects"].items():
        if not row.get("modelled"):
            lines.append(f"{name:<18} {'-':>7} {'-':>9} {'-':>17} {'-':>9} {'-':>13}  ({row['description']})")
            continue
        lo, hi = row["drop_bootstrap_95"]
        snr = min(row["snr_db"].values())
        marg = row.get("marginal_drop", row["drop"])
        lines.append(f"{name:<18} {100 * row['accuracy']:7.2f} {100 * row['drop']:+9.2f} "
                     f"{100 * lo:+8.2f}..{100 * hi:+6.2f} {100 * marg:+9.2f} "
                     f"{min(row['mcnemar_p']):13.3g}  {snr:.1f}")
        if row.get("ir_check"):
            ic = row["ir_check"]
            lines.append(f"{'':<18} IR surrogate certified on {ic['n_checked']} exact solves "
                         f"({100 * ic['fraction_checked']:.3g} % of the bit-planes): largest "
                         f"error {ic['max_error_lsb']:.3g} LSB, IR effect up to "
                         f"{ic['max_ir_effect_lsb']:.3g} LSB")
    if "consistency" in rep:
        c = rep["consistency"]
        lines += ["", f"sum of marginal single-effect drops {100 * c['sum_of_marginal_drops']:+.2f} pts "
                  f"vs all-on drop {100 * c['all_on_drop']:+.2f} pts",
                  "error power, sum of single effects / all-on, per layer: " + ", ".join(
                      f"{k} {v:.2f}" if v is not None else f"{k} -"
                      for k, v in c["error_power_sum_over_all_on"].items())]
    if "layer_sensitivity" in rep:
        lines += ["", "all non-idealities in one layer only:"]
        for name, row in rep["layer_sensitivity"].items():
            lines.append(f"  {name:<10} acc {100 * row['accuracy']:6.2f} %  drop {100 * row['drop']:+.2f} pts  "
                         f"SNR {row['snr_db']:.1f} dB")
        lines.append(f"most sensitive layer: {rep.get('most_sensitive_layer')}")
    return "\n".join(lines)


def plot_ranking(rep: dict, path) -> None:
    """Horizontal bars: marginal accuracy drop of each effect, largest first, all-on last."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from norsim import figstyle

    eff = {k: v for k, v in rep["effects"].items() if v.get("modelled") and k != "all"}
    order = sorted(eff, key=lambda k: eff[k].get("marginal_drop", eff[k]["drop"]))
    rows = [eff[k] for k in order]
    vals = [100 * r.get("marginal_drop", r["drop"]) for r in rows]
    labels = [figstyle.words(k) for k in order]
    if rep["effects"].get("all", {}).get("modelled"):
        labels = ["all effects on"] + labels
        vals = [100 * rep["effects"]["all"]["drop"]] + vals
        rows = [rep["effects"]["all"]] + rows
    # the drop's 95 % bootstrap interval (test images), around the plotted (marginal) value
    err = [[0.0] * len(vals), [0.0] * len(vals)]
    for i, (r, v) in enumerate(zip(rows, vals)):
        ci = r.get("drop_bootstrap_95")
        if ci:
            err[0][i] = max(0.0, 100 * (r["drop"] - ci[0]))
            err[1][i] = max(0.0, 100 * (ci[1] - r["drop"]))
    fig, ax = plt.subplots(figsize=(6.5, 0.4 * len(vals) + 1.4))
    colors = ["0.3" if lab == "all effects on" else "tab:red" for lab in labels]
    ax.barh(range(len(vals)), vals, color=colors, xerr=err, capsize=3,
            error_kw={"lw": 1, "ecolor": "0.2"})
    ax.set_yticks(range(len(vals)), labels)
    ax.set_ylabel("effect")
    figstyle.label_axis(ax, "x", figstyle.Quantity("accuracy drop vs integer reference",
                                                   "% points"))
    ax.axvline(0, color="k", lw=0.5)
    n = len(rep["seeds"])
    figstyle.fit_title(ax, f"error budget: {rep['images']} test images, {n} chip{'s' * (n != 1)}; "
                           "each effect's drop marginal over its base; bars: 95 % bootstrap "
                           "interval of the drop" + (f". {rep['produced_by']}"
                                                     if rep.get("produced_by") else ""))
    figstyle.save(fig, path)
