"""Compensation on/off study: accuracy after a retention bake and across temperature.

For every condition and chip instance (seed) the chip is mapped once, its ADC ranges are set
from calibration images at run conditions (the engine's normal flow), it is run with
compensation off, then the compensation steps run on the same chip and it is run again. Each
result is paired (same images, same chip instance) with the fresh, 300 K, uncompensated chip
and with the integer reference.

    python -m norsim.compensation.experiment --images 200 --seeds 5 --json out.json

Every finished (condition, chip) pair is kept in ``<json>.parts/`` (or ``--parts DIR``) with
the settings it was run under; a rerun of the same command loads the finished pairs and runs
only the rest, so a killed study loses at most the chip it was on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from norsim.compensation import core
from norsim.stats import paired_compare, seed_spread

TEN_YEARS_S = 3.156e8

CONDITIONS = {
    "fresh_300K": {},
    "bake_10y_85C": {"mapping.retention_time_s": TEN_YEARS_S, "mapping.retention_temperature_k": 358.0},
    "read_233K": {"device.read.temperature_k": 233.0},
    "read_358K": {"device.read.temperature_k": 358.0},
    "bake_10y_85C_read_358K": {"mapping.retention_time_s": TEN_YEARS_S,
                               "mapping.retention_temperature_k": 358.0,
                               "device.read.temperature_k": 358.0},
}

COMPENSATION_ON = {"compensation.enabled": True, "compensation.gain_correction": "per_column",
                   "compensation.adaptive_read_voltage": True,
                   "compensation.activation_recalibration": True}

_STREAM_BOOT = 404


def run_condition(model, cfg, images, labels, calib, seed: int, overrides: dict,
                  on_overrides: dict | None) -> dict:
    """One chip instance under one condition, compensation off then on (``on_overrides``
    None: only the uncompensated run, reported for both)."""
    from norsim.mapping import engine, mapper

    c_off = cfg.with_overrides({**overrides, "seed": int(seed), "compensation.enabled": False})
    t0 = time.perf_counter()
    chip = mapper.map_model(model, c_off)
    engine.calibrate(chip, calib[:c_off.mapping.calibration_images])
    off = engine.run(chip, images)
    if on_overrides is None:
        on, state = off, core.CompensationState()
    else:
        chip.cfg = c_off.with_overrides(on_overrides)
        state = core.compensate(chip, calib)
        on = engine.run(chip, images)
    return {
        "seed": int(seed),
        "off": off.predictions == labels, "on": on.predictions == labels,
        "snr_off_db": {k: v.snr_db for k, v in off.layer_stats.items()},
        "snr_on_db": {k: v.snr_db for k, v in on.layer_stats.items()},
        "cost": {c.name: c.as_dict() for c in state.costs},
        "log": state.log, "seconds": time.perf_counter() - t0,
    }


def _part_to_json(r: dict, signature: dict) -> dict:
    out = {k: v for k, v in r.items() if k not in ("off", "on")}
    for mode in ("off", "on"):
        out[mode] = "".join("1" if c else "0" for c in np.asarray(r[mode]).tolist())
    out["signature"] = signature
    return out


def _part_from_json(d: dict) -> dict:
    r = {k: v for k, v in d.items() if k != "signature"}
    for mode in ("off", "on"):
        r[mode] = np.frombuffer(d[mode].encode(), dtype=np.uint8) == ord("1")
    return r


class PartStore:
    """Finished (condition, seed) results on disk, keyed by the settings that produced them."""

    def __init__(self, root: str | Path | None, signature: dict):
        self.root = Path(root) if root else None
        self.signature = signature
        tag = json.dumps(signature, sort_keys=True, default=str).encode()
        self.digest = hashlib.sha256(tag).hexdigest()[:12]
        if self.root:
            self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, condition: str, seed: int) -> Path:
        return self.root / f"{condition}_seed{seed}_{self.digest}.json"

    def load(self, condition: str, seed: int) -> dict | None:
        if not self.root or not self._path(condition, seed).exists():
            return None
        d = json.loads(self._path(condition, seed).read_text())
        return _part_from_json(d) if d.get("signature") == json.loads(
            json.dumps(self.signature, default=str)) else None

    def save(self, condition: str, seed: int, r: dict) -> None:
        if not self.root:
            return
        tmp = self._path(condition, seed).with_suffix(".tmp")
        tmp.write_text(json.dumps(_part_to_json(r, self.signature), default=float))
        tmp.replace(self._path(condition, seed))


def _t_interval(per_chip: np.ndarray, confidence: float = 0.95) -> list[float] | None:
    """t-interval of the mean per-chip paired difference (chips as replicates); None with one
    chip."""
    from scipy import stats

    if per_chip.size < 2:
        return None
    half = stats.t.ppf((1 + confidence) / 2, per_chip.size - 1) * per_chip.std(ddof=1) \
        / np.sqrt(per_chip.size)
    return [float(per_chip.mean() - half), float(per_chip.mean() + half)]


def summarise(results: dict, ref_correct: np.ndarray, cfg) -> dict:
    """Per condition: accuracy on/off over seeds, paired differences vs fresh 300 K off."""
    base = {r["seed"]: r["off"] for r in results["fresh_300K"]}
    out = {}
    for name, rows in results.items():
        rows = [r for r in rows if r["seed"] in base]  # a partial run: pairs with a baseline
        if not rows:
            continue
        row = {}
        for mode in ("off", "on"):
            accs = np.array([r[mode].mean() for r in rows])
            pairs = [paired_compare(base[r["seed"]], r[mode], cfg.rng(_STREAM_BOOT, r["seed"]),
                                    n_boot=1000) for r in rows]
            diff = np.mean([r[mode] for r in rows], axis=0) - np.mean([base[r["seed"]] for r in rows], axis=0)
            boots = diff[cfg.rng(_STREAM_BOOT).integers(0, diff.size, (1000, diff.size))].mean(axis=1)
            per_chip = np.array([r[mode].mean() - base[r["seed"]].mean() for r in rows])
            snr = {k: float(np.mean([r[f"snr_{mode}_db"][k] for r in rows]))
                   for k in rows[0][f"snr_{mode}_db"]}
            row[mode] = {"accuracy_mean": float(accs.mean()), "per_seed": accs.tolist(),
                         "spread": seed_spread(accs),
                         "vs_fresh_300K": {"mean": float(diff.mean()),
                                           "bootstrap_95": np.quantile(boots, [0.025, 0.975]).tolist(),
                                           "t_over_chips_95": _t_interval(per_chip),
                                           "mcnemar_p": [p.mcnemar_p for p in pairs]},
                         "vs_reference": float(accs.mean() - ref_correct.mean()),
                         "snr_db": snr}
        row["cost_first_seed"] = rows[0]["cost"]
        row["log_first_seed"] = rows[0]["log"]
        out[name] = row
    return out


def markdown_table(summary: dict) -> str:
    """The study's table: paired differences with two intervals, the paired bootstrap over
    images with the chips held fixed and the t-interval over chips as replicates."""
    lines = ["| condition | comp. off % | off - fresh pts (95% CI: images; chips) | comp. on % | "
             "on - fresh pts (95% CI: images; chips) | "
             "min McNemar p (on) | worst-layer SNR off / on dB |", "|---|---|---|---|---|---|---|"]
    for name, row in summary.items():
        cells = [name]
        for mode in ("off", "on"):
            r = row[mode]
            d = r["vs_fresh_300K"]
            cells.append(f"{100 * r['accuracy_mean']:.2f} (sd {100 * r['spread']['std']:.2f})")
            t = d.get("t_over_chips_95")
            chips = (f"; {100 * t[0]:+.2f} to {100 * t[1]:+.2f}" if t else "")
            cells.append(f"{100 * d['mean']:+.2f} ({100 * d['bootstrap_95'][0]:+.2f} to "
                         f"{100 * d['bootstrap_95'][1]:+.2f}{chips})")
        cells.append(f"{min(row['on']['vs_fresh_300K']['mcnemar_p']):.3g}")
        cells.append(f"{min(row['off']['snr_db'].values()):.1f} / {min(row['on']['snr_db'].values()):.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def temperature_drift_table(cfg=None, temps_k=(233.0, 273.15, 298.15, 323.15, 358.15),
                            t0_k: float = 298.15) -> dict:
    """Differential-pair current (level L minus level 0, cells placed at 300 K by the nominal
    cell model) at each temperature relative to ``t0_k``: raw, ratiometric (divided by the
    level-max pair at the same T) and ratiometric with word-line tracking."""
    import dataclasses

    from norsim.array import encodings as enc_mod
    from norsim.array.cells import ArrayCell
    from norsim.config.presets import load_preset

    cfg = cfg or load_preset("nor40")
    dev = cfg.device
    top = dev.levels.levels_per_cell - 1
    clamp = cfg.array.sense.clamp_gain
    vth = ArrayCell(dev, clamp).vth_for_current(
        enc_mod.level_currents(np.arange(top + 1), dev.levels))

    def cur(t, dv=0.0):
        d = dataclasses.replace(dev, read=dataclasses.replace(
            dev.read, temperature_k=t, v_cg_read_v=dev.read.v_cg_read_v + dv))
        i = ArrayCell(d, clamp).on_current(vth)
        return i[1:] - i[0]

    base = cur(t0_k)
    tc = cfg.compensation.wl_tempco_v_per_k
    out = {}
    for t in temps_k:
        d, dt = cur(t), cur(t, tc * (t - cfg.mapping.program_temperature_k))
        out[float(t)] = {"raw": (d / base - 1).tolist(),
                         "ratiometric": ((d / d[-1]) / (base / base[-1]) - 1).tolist(),
                         "ratiometric_wl_tracking": ((dt / dt[-1]) / (base / base[-1]) - 1).tolist()}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="zoo:lenet-mnist-4b")
    p.add_argument("--preset", default="nor40")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--calib", type=int, default=96, help="calibration images (ADC ranges, re-calibration)")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--seed-list", default=None, metavar="S,S,...",
                   help="run only these chip seeds, in this order (e.g. to split a study over "
                        "processes sharing --parts); default 0 ... seeds-1")
    p.add_argument("--conditions", default=",".join(CONDITIONS))
    p.add_argument("--json", default=None)
    p.add_argument("--parts", default=None,
                   help="directory of finished (condition, seed) results to resume from "
                        "(default: <json>.parts when --json is given)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a configuration field (repeatable)")
    p.add_argument("--fresh-off-only", action="store_true",
                   help="run the fresh 300 K baseline without the compensated run")
    p.add_argument("--temperature-table", action="store_true",
                   help="print the differential-pair temperature drift table and exit")
    a = p.parse_args(argv)
    if a.temperature_table:
        for t, row in temperature_drift_table().items():
            print(f"{t:7.2f} K " + "  ".join(f"{k}: " + " ".join(f"{100 * v:+.1f}" for v in vals)
                                               for k, vals in row.items()))
        return 0
    from norsim.cli.run import load_model
    from norsim.config.presets import load_preset
    from norsim.data import load_dataset
    from norsim.mapping import engine

    model = load_model(a.model)
    cfg = load_preset(a.preset).with_overrides({"mapping.calibration_images": a.calib,
                                                "compensation.recalibration_images": a.calib})
    if a.overrides:
        cfg = cfg.with_overrides(a.overrides)
    test, cal = load_dataset("mnist", "test"), load_dataset("mnist", "calib")
    x, y = test.x[:a.images], test.y[:a.images].astype(np.int64)
    _, ref_pred = engine.reference_run(model, x)
    ref_correct = ref_pred == y
    conditions = a.conditions.split(",")
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        p.error(f"--conditions: unknown {unknown}; expected names from {list(CONDITIONS)}")
    store = PartStore(a.parts or (a.json + ".parts" if a.json else None),
                      {"model": a.model, "preset": a.preset, "images": a.images, "calib": a.calib,
                       "overrides": a.overrides, "fresh_off_only": a.fresh_off_only,
                       "compensation_on": COMPENSATION_ON})
    seeds = list(range(a.seeds))
    if a.seed_list:
        try:
            seeds = [int(v) for v in a.seed_list.split(",")]
        except ValueError:
            p.error(f"--seed-list: {a.seed_list!r} is not a comma-separated list of integers")
    results = {}
    for name in conditions:
        results[name] = []
        for s in seeds:
            on = None if (a.fresh_off_only and name == "fresh_300K") else COMPENSATION_ON
            r = store.load(name, s)
            resumed = r is not None
            if r is None:
                r = run_condition(model, cfg, x, y, cal.x, s, CONDITIONS[name], on)
                store.save(name, s, r)
            results[name].append(r)
            print(f"{name} seed {s}: off {100 * r['off'].mean():.1f} on {100 * r['on'].mean():.1f} "
                  f"({r['seconds']:.0f} s{', resumed' if resumed else ''})", flush=True)
            if a.json:
                part = summarise(results, ref_correct, cfg) if "fresh_300K" in results else {}
                with open(a.json, "w") as f:
                    json.dump({"images": a.images, "seeds": a.seeds, "calib": a.calib,
                               "reference_accuracy": float(ref_correct.mean()),
                               "compensation_on": COMPENSATION_ON, "summary": part}, f, indent=1,
                              default=float)
    summary = summarise(results, ref_correct, cfg)
    print(f"integer reference: {100 * ref_correct.mean():.2f} % on {a.images} images")
    print(markdown_table(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
