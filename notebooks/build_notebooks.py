"""Write (and optionally execute) the study notebooks of ``notebooks/`` from the cell sources
below, so that the notebooks' code is reviewable as plain Python in one place.

    python notebooks/build_notebooks.py                  # write the .ipynb files (no outputs)
    NORSIM_QUICK=1 python notebooks/build_notebooks.py --execute   # write and run them, keep outputs

Every notebook reads ``NORSIM_QUICK`` in its first code cell: ``NORSIM_QUICK=1`` runs a small
version (few images, few points, one chip instance) that CI executes in well under a minute
per notebook (``tests/test_notebooks.py``); unset, it runs the full study.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

SETUP = '''\
import os, time
QUICK = os.environ.get("NORSIM_QUICK", "0") == "1"   # NORSIM_QUICK=1: the small CI version
T0 = time.perf_counter()
%matplotlib inline
import numpy as np
import matplotlib.pyplot as plt
plt.rcParams.update({"figure.dpi": 72, "savefig.dpi": 72, "axes.grid": True, "grid.alpha": 0.3})
import norsim
from norsim.config.presets import load_preset
print(f"norsim {norsim.__version__}; quick setting: {QUICK}")'''

FOOTER = '''\
print(f"notebook ran in {time.perf_counter() - T0:.1f} s (quick setting: {QUICK})")'''


def md(text: str) -> tuple[str, str]:
    return ("markdown", text.strip("\n"))


def code(text: str) -> tuple[str, str]:
    return ("code", text.strip("\n"))


# ------------------------------------------------------------------------------------------
NB1 = [
    md('''
# 1. The floating-gate cell: I-V across temperature, ISPP placement, retention tails

A NOR-flash compute-in-memory array stores each weight as the threshold voltage V_th of a
floating-gate transistor and reads it as a current. This notebook follows one cell of the
`nor40` preset (a 40 nm-class split-gate cell, `norsim/presets/nor40.toml`; sources in
`docs/parameters.md`) through the three things that decide how well a weight is stored:

1. its **I-V curve** and how it moves with temperature (it sets the current read per weight);
2. **ISPP program-and-verify** placement (how close to its target each cell lands);
3. **retention** (how V_th drifts afterwards, and the tail of fast-leaking cells).

Only the device layer (`norsim.device`) is used; no model, no data. Set `NORSIM_QUICK=1`
for the small CI version (fewer cells per level). The committed outputs were produced with the
setting printed by the first cell.
'''),
    code(SETUP + '''
from norsim.device.iv import cell_model
from norsim.device.levels import level_currents, read_bias, read_current, target_vth
from norsim.device.programming import program
from norsim.device.retention import bake, draw_retention, tail_fraction
from norsim.device.variation import draw_variation

cfg = load_preset("nor40")
dev = cfg.device
CELLS_PER_LEVEL = 150 if QUICK else 2000
TAIL_CELLS = 20_000 if QUICK else 400_000
b = read_bias(dev)
print(f"cell type {dev.cell.cell_type}; read bias: select gate {b.v_wl} V, control gate "
      f"{b.v_cg} V, bit line {b.v_d} V, source line {b.v_s} V")'''),
    md('''
## I-V across temperature

norsim's cell is the EKV interpolation `I_D = I_S [F((V_P-V_S)/U_T) - F((V_P-V_D)/U_T)]`
with `F(x) = ln²(1 + e^(x/2))`, `V_P = alpha_G (V_CG - V_th)/n` and `U_T = kT/q`, in series
with a select transistor (split-gate cell). Below threshold the current is exponential in the
gate voltage with slope `alpha_G / (n U_T ln 10)` decades per volt, so the **subthreshold
swing grows in proportion to T**; V_th falls with temperature (`dvth_dt_v_per_k`) and mobility
falls as `T^-1.5`. A subthreshold CIM array therefore reads a different current for the same
stored charge at 358 K than at 300 K — the reason norsim calibrates the ADC at the programming
temperature and reports accuracy against read temperature in notebook 2.
'''),
    code('''
temps = [233.0, 300.0, 358.0]
m300 = cell_model(dev.cell, 300.0)
vth_top = float(target_vth(m300, dev, level_currents(dev.levels)[-1:])[0])
v_cg = np.linspace(vth_top - 1.5, vth_top + 2.0, 301)
fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
for t in temps:
    m = cell_model(dev.cell, t)
    i = m.current(b.v_wl, v_cg, b.v_d, b.v_s, vth_top)
    sel = (i > m.fg.i_spec * 1e-7) & (i < m.fg.i_spec * 1e-4)
    ss = 1e3 / np.polyfit(v_cg[sel], np.log10(i[sel]), 1)[0]
    ss_th = np.log(10) * m.fg.n * m.fg.u_t / m.fg.alpha_g * 1e3
    ax[0].semilogy(v_cg, i, label=f"{t:.0f} K: SS {ss:.0f} mV/dec (theory {ss_th:.0f})")
    ax[1].plot(v_cg, i * 1e6, label=f"{t:.0f} K")
ax[0].axvline(b.v_cg, color="k", ls=":", lw=1)
ax[0].set(xlabel="control-gate voltage (V)", ylabel="drain current (A)",
          title=f"cell programmed to the top level (V_th = {vth_top:.2f} V at 300 K)")
ax[0].legend(fontsize=8)
ax[1].set(xlabel="control-gate voltage (V)", ylabel="drain current (uA)", title="linear scale")
ax[1].legend(fontsize=8)
fig.tight_layout()
# the weight levels are target *currents* at the read bias; how they move with temperature:
tg = level_currents(dev.levels)
vth_lv = target_vth(m300, dev, tg)
for t in temps:
    i_t = read_current(cell_model(dev.cell, t), dev.replace(read=dev.read.replace(temperature_k=t)), vth_lv)
    print(f"{t:.0f} K: read current of levels 1..7 / target = "
          + " ".join(f"{r:.2f}" for r in i_t[1:] / tg[1:]))'''),
    md('''
The fitted swing follows `n U_T ln10 / alpha_G` at every temperature (the EKV form is exact in
deep subthreshold). The level currents printed above move by large factors with temperature
(the V_th temperature coefficient and the slope act together in the exponent), and not by the
same factor for every level: a mostly-common gain error that an ADC range calibrated once at
300 K sees in full, plus a level-dependent part that no single gain can remove.

## ISPP placement

Programming is block erase, then incremental-step pulse programming: pulses of rising gate
voltage (step `ispp_step_v`), each followed by a verify read of the **current** at the read
bias, until the cell reads below its target current. The last pulse overshoots by up to one
step's worth of V_th, so the placement error is roughly uniform over one step
(`sigma ≈ step/sqrt(12)`), blurred by verify read noise and RTN. Device-to-device variation of
the erased V_th mostly disappears (verify looks at each cell's own current), but variation of
the slope factor and beta does not: a current-verified cell matches its target only at the
verify bias. The `nor40` preset adds **two-way fine tuning** (small up/down pulses until within
`tune_tolerance_rel` of the target current). Below: the eight weight levels of a differential
pair cell, with plain ISPP (50 mV steps) and with two-way tuning.
'''),
    code('''
level = np.repeat(np.arange(dev.levels.levels_per_cell), CELLS_PER_LEVEL)
var = draw_variation(cfg.rng(1), level.shape, dev.variation, dev.cell)
results = {}
for label, tuned in [("ISPP only", False), ("ISPP + two-way tuning", True)]:
    d = dev.replace(programming=dev.programming.replace(two_way_tuning=tuned))
    t = time.perf_counter()
    res = program(cfg.rng(2), m300, d, tg[level], variation=var)
    i_read = read_current(m300, d, res.vth, **var.iv_kwargs(m300))
    results[label] = (res, i_read)
    ok = ~res.failed
    err_v = (res.vth - res.target_vth)[ok]
    print(f"{label:>22}: placement error mean {1e3 * err_v.mean():+.1f} mV, sd {1e3 * err_v.std():.1f} mV; "
          f"pulses/cell {res.pulses.mean():.1f}; program time {res.program_time_s * 1e3:.1f} ms, "
          f"energy {res.energy_j * 1e6:.2f} uJ; failed {res.failed.sum()} "
          f"({time.perf_counter() - t:.1f} s)")
print(f"uniform-over-one-step estimate: {1e3 * dev.programming.ispp_step_v / np.sqrt(12):.1f} mV")

fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
for k, (label, (res, i_read)) in enumerate(results.items()):
    for lv in range(1, dev.levels.levels_per_cell):
        s = (level == lv) & ~res.failed
        ax[k].hist(i_read[s] * 1e9, bins=40, histtype="stepfilled", alpha=0.6)
    ax[k].set(xlabel="read current at 300 K (nA)", ylabel="cells", title=label)
    for c in tg[1:]:
        ax[k].axvline(c * 1e9, color="k", lw=0.5, ls=":")
fig.tight_layout()'''),
    md('''
With plain ISPP the current distributions of neighbouring levels are wide (the exponential
I-V turns a uniform V_th error into a skewed current error, larger at higher levels); two-way
tuning narrows them at the price of more pulses. Both are outcomes of the algorithm, not a
hand-set sigma: change `ispp_step_v`, `tune_tolerance_rel` or the verify noise and the
spread follows.

## Retention tails

After programming, charge relaxes towards the neutral V_th (no net floating-gate charge):
`dV_th = -A (V_th - V_th,n) ln(1 + AF(T) t / tau0)`, with t counted from the end of
programming, `A` log-normal across cells, the loss proportional to the stored charge and
of its sign (cells above V_th,n lose V_th, cells below gain; none crosses it), and an
Arrhenius acceleration `AF(T) = exp(Ea/k (1/T_ref - 1/T))` (Ea = 1.1 eV for intrinsic
loss). A small fraction of cells leaks much faster (defect-assisted, lower activation
energy); that fraction grows with program/erase cycling. Sources and estimates of each
parameter: docs/parameters.md. The median shift is a slow log-time drift; the accuracy risk is the
**tail**: the survival function below shows the fraction of top-level cells whose V_th fell
by more than x after a bake at 85 °C.
'''),
    code('''
YEAR = 365.25 * 24 * 3600.0
vth0 = np.full(TAIL_CELLS, vth_lv[-1])
fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
for cycles in (1_000, 100_000):
    ret = dev.retention.replace(pe_cycles=cycles)
    rng = cfg.rng(3, cycles)
    cells = draw_retention(rng, vth0, ret, dev.cell)
    for t_s, ls in [(3600.0, ":"), (YEAR, "--"), (10 * YEAR, "-")]:
        shift = vth0 - bake(rng, vth0, t_s, 358.15, ret, dev.cell, cells=cells)
        x = np.sort(shift)[::-1]
        surv = np.arange(1, x.size + 1) / x.size
        lab = f"{cycles:,} P/E, {t_s / YEAR:.3g} y" if t_s >= YEAR else f"{cycles:,} P/E, 1 h"
        ax[0].loglog(x * 1e3, surv, ls=ls, label=lab)
    print(f"{cycles:>7,} P/E cycles: fast-leaking fraction {tail_fraction(ret):.1e}; "
          f"10 y at 85 C: median shift {1e3 * np.median(shift):.0f} mV, "
          f"99.9th percentile {1e3 * np.quantile(shift, 0.999):.0f} mV")
ax[0].set(xlabel="V_th loss (mV)", ylabel="fraction of cells with a larger loss",
          title="top level, bake at 85 C", ylim=(1.0 / TAIL_CELLS, 1.2))
ax[0].legend(fontsize=7)
# what the drift does to the read current of every level (many cells per level)
lv = np.repeat(np.arange(1, dev.levels.levels_per_cell), CELLS_PER_LEVEL)
v_lv = vth_lv[lv]
cells = draw_retention(cfg.rng(4), v_lv, dev.retention, dev.cell)
for t_s, lab in [(3600.0, "1 h"), (YEAR, "1 y"), (10 * YEAR, "10 y")]:
    v = bake(cfg.rng(4), v_lv, t_s, 358.15, dev.retention, dev.cell, cells=cells)
    ratio = read_current(m300, dev, v) / tg[lv]
    q = np.array([np.quantile(ratio[lv == k], [0.05, 0.5, 0.95]) for k in range(1, 8)])
    line, = ax[1].plot(np.arange(1, 8), q[:, 1], "o-", label=f"{lab} (median, 5-95 %)")
    ax[1].fill_between(np.arange(1, 8), q[:, 0], q[:, 2], alpha=0.2, color=line.get_color())
ax[1].set(xlabel="weight level", ylabel="read current / target (at 300 K)", yscale="log",
          title="all levels after a bake at 85 C")
ax[1].legend(fontsize=8)
fig.tight_layout()'''),
    md('''
Charge loss lowers the V_th of cells programmed above the neutral V_th, so they conduct
**more** current after a bake: in subthreshold a V_th loss δ multiplies the current by
`exp(δ alpha_G / (n U_T))`. Under the preset's law (issue 16: about 0.3 mV per decade of
time per volt above neutral) a 10-year bake at 85 °C moves a level's read current by about
2 % (docs/validation.md, row '10 years at 85 C'), and cells that store more charge (higher V_th) move
more; the log-normal spread of A turns the common drift into a level-dependent spread.
Cycling multiplies the fast-leaking tail, which is what a 10-year
specification has to survive; notebook 2 shows what these shifts do to a network's accuracy.
'''),
    code(FOOTER),
]

# ------------------------------------------------------------------------------------------
NB2 = [
    md('''
# 2. Accuracy of the zoo model under V_th spread, read noise, retention and temperature

The 4-bit LeNet of the model zoo (`norsim.zoo.load("lenet-mnist-4b")`, 99.49 % on the
10,000 MNIST test images on the exact integer reference) is mapped onto simulated `nor40`
arrays (256 x 256, differential weight pairs, bit-serial inputs, 6-bit ADCs calibrated on
calibration images, never test images) and run over MNIST test images. Each non-ideality is
moved away from the preset one at a time:

* **V_th placement spread**: the tolerance of the two-way fine tuning that ends programming
  (`device.programming.tune_tolerance_rel`, relative current error at which a cell is left
  alone) — the spread comes out of the program-and-verify algorithm, not a hand-set sigma;
* **read noise**: the mean RTN amplitude per trap (`device.noise.rtn_mean_v`; white and 1/f
  noise stay on);
* **retention**: time since programming at 85 °C (`mapping.retention_time_s`);
* **temperature**: the read temperature (`device.read.temperature_k`), with the chip
  programmed and its ADC ranges calibrated at 300 K.

Every point is a simulated chip (a seed: variation, programming, noise), run twice on the
same images: as programmed, and after the on-chip **compensation** of `norsim.compensation`
(reference columns, per-column ADC gain/offset trim, adaptive read voltage, activation
re-calibration), so the two curves are a paired comparison. The chip-to-chip spread needs
several seeds; the test-sampling interval (Wilson, error bars) is shown separately.
`NORSIM_QUICK=1` runs 32 images, one chip and two values per axis: its numbers show the
mechanics and the large effects, not converged accuracies (one image is 3 points).
'''),
    code(SETUP + '''
import importlib.util, warnings
warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm.auto in a kernel
import norsim.zoo
from norsim.data import load_dataset
from norsim.mapping import engine, mapper
from norsim.stats import wilson_interval

IMAGES = 32 if QUICK else 2000
CALIB = 16 if QUICK else 256
SEEDS = [0] if QUICK else [0, 1, 2]
YEAR = 365.25 * 24 * 3600.0
print("zoo:", norsim.zoo.names())
model = norsim.zoo.load("lenet-mnist-4b")
test, calib = load_dataset("mnist", "test"), load_dataset("mnist", "calib")
x, y, x_cal = test.x[:IMAGES], test.y[:IMAGES], calib.x[:CALIB]
base = load_preset("nor40").with_overrides({"mapping.calibration_images": CALIB})
ref_acc = float(np.mean(engine.reference_run(model, x)[1] == y))
print(f"{IMAGES} test images, {CALIB} calibration images, seeds {SEEDS}; "
      f"integer reference accuracy on these images: {100 * ref_acc:.2f} %")'''),
    md('''
## Compensation and noise-aware training: what is available

The cell below looks for the compensation module and for a noise-aware zoo model (trained with
V_th noise injected, `norsim train --noise-sigma-vth-v`) and says what it found; the study
uses whichever exists.
'''),
    code('''
HAS_COMPENSATION = importlib.util.find_spec("norsim.compensation") is not None
if HAS_COMPENSATION:
    from norsim.compensation import compensate
    COMP_ON = {"compensation.enabled": True, "compensation.gain_correction": "per_column",
               "compensation.adaptive_read_voltage": True,
               "compensation.activation_recalibration": True,
               "compensation.recalibration_images": CALIB}
    if QUICK:   # one step of the adaptive read-voltage loop instead of 3 (CI time budget)
        COMP_ON["compensation.read_voltage_iterations"] = 1
# a zoo model trained with V_th noise injected (its entry records the noise it saw)
noise_aware = [n for n in norsim.zoo.names()
               if (norsim.zoo.entry(n).get("training") or {}).get("noise_sigma_lnw", 0) > 0]
print("compensation (norsim.compensation):", "present: each chip is also run compensated"
      if HAS_COMPENSATION else "NOT in this version of norsim: results without compensation only")
print("noise-aware zoo model:", noise_aware[0] if noise_aware else
      "NONE in the zoo yet (no entry trained with V_th noise): only the plain QAT model is evaluated")
models = {"QAT": model}
if noise_aware:
    models["noise-aware QAT"] = norsim.zoo.load(noise_aware[0])

COMP_ERROR = None   # set if the compensation module fails on this version of norsim

def accuracies(overrides, mdl, compensated=True):
    """{"off": [...], "on": [...]} top-1 accuracy per chip (seed): one chip mapped and
    calibrated, run as programmed, then (``compensated``) compensated and run again on the
    same images."""
    global COMP_ERROR
    out = {"off": [], "on": []}
    for s in SEEDS:
        cfg = base.with_overrides({**overrides, "seed": s, "compensation.enabled": False})
        chip = mapper.map_model(mdl, cfg)
        engine.calibrate(chip, x_cal)
        out["off"].append(np.mean(engine.run(chip, x).predictions == y))
        if compensated and HAS_COMPENSATION and COMP_ERROR is None:
            try:
                chip.cfg = cfg.with_overrides(COMP_ON)
                compensate(chip, x_cal)
            except Exception as exc:  # report it and go on without compensation
                COMP_ERROR = f"{type(exc).__name__}: {exc}"
                print("compensation FAILED on this version of norsim, continuing without it:",
                      COMP_ERROR)
            else:
                out["on"].append(np.mean(engine.run(chip, x).predictions == y))
    if COMP_ERROR is not None or not compensated:
        out["on"] = []
    return {k: np.array(v) for k, v in out.items() if v}'''),
    code('''
AXES = {   # title: (field, values; the first value is the preset's)
    "V_th placement (tuning tolerance, rel.)": (
        "device.programming.tune_tolerance_rel", [0.01, 0.3] if QUICK else [0.01, 0.03, 0.1, 0.3]),
    "read noise (mean RTN amplitude, V)": (
        "device.noise.rtn_mean_v", [0.002, 0.03] if QUICK else [0.0, 0.002, 0.01, 0.03]),
    "retention at 85 C (years)": (
        "mapping.retention_time_s", [0.0, 10.0] if QUICK else [0.0, 0.1, 1.0, 10.0]),
    "read temperature (K)": (
        "device.read.temperature_k", [300.0, 358.0] if QUICK else [250.0, 300.0, 330.0, 358.0]),
}
# the noise-aware model is evaluated on the axes it was trained for (as programmed: it is the
# alternative to compensation); the quick setting runs only its stressed read-noise point
MODEL_AXES = {"QAT": list(AXES), "noise-aware QAT": list(AXES)[1:2] if QUICK else list(AXES)[:2]}

def field_value(cfg, field):
    for part in field.split("."):
        cfg = getattr(cfg, part)
    return cfg

rows, nominal = [], {}
for mname, mdl in models.items():
    for title in MODEL_AXES[mname]:
        field, values = AXES[title]
        comp = mname == "QAT"
        for v in (values[1:] if QUICK and not comp else values):
            value = v * YEAR if field == "mapping.retention_time_s" else v
            t = time.perf_counter()
            if value == field_value(base, field):      # the preset itself: one chip set per model
                if mname not in nominal:
                    nominal[mname] = accuracies({}, mdl, comp)
                acc = nominal[mname]
            else:
                acc = accuracies({field: value}, mdl, comp)
            rows.append((mname, title, v, acc))
            print(f"{mname:>15} | {title:<40} {v:>6g}: " + "; ".join(
                f"{k} {100 * a.mean():6.2f} %" for k, a in acc.items())
                + f"  ({time.perf_counter() - t:.0f} s)")'''),
    code('''
fig, axs = plt.subplots(1, len(AXES), figsize=(3.3 * len(AXES), 3.4), sharey=True)
for ax, title in zip(axs, AXES):
    for mname in models:
        sel = [r for r in rows if r[0] == mname and r[1] == title]
        if not sel:
            continue
        xs = np.array([r[2] for r in sel])
        for mode, ls in (("off", "o-"), ("on", "s--")):
            if not all(mode in r[3] for r in sel):
                continue
            accs = [r[3][mode] for r in sel]
            mean = np.array([a.mean() for a in accs])
            sd = np.array([a.std(ddof=1) if a.size > 1 else 0.0 for a in accs])
            lo_hi = np.array([wilson_interval(round(m * IMAGES), IMAGES) for m in mean])
            label = f"{mname}, {'compensated' if mode == 'on' else 'as programmed'}"
            line, = ax.plot(xs, 100 * mean, ls, label=label)
            ax.fill_between(xs, 100 * (mean - sd), 100 * (mean + sd), alpha=0.2,
                            color=line.get_color())
            ax.errorbar(xs, 100 * mean, yerr=100 * np.abs(lo_hi.T - mean), fmt="none",
                        ecolor=line.get_color(), capsize=3)
    ax.axhline(100 * ref_acc, color="k", ls=":", lw=1, label="integer reference")
    ax.set(xlabel=title, title=title.split(" (")[0], ylim=(0, 102))
axs[0].set_ylabel("top-1 accuracy (%)")
handles = {}
for ax in axs:   # one legend for all panels (some curves appear on some axes only)
    for h, lab in zip(*ax.get_legend_handles_labels()):
        handles.setdefault(lab, h)
axs[0].legend(handles.values(), handles.keys(), fontsize=7, loc="lower left")
fig.suptitle(f"lenet-mnist-4b on nor40 arrays; {IMAGES} images, {len(SEEDS)} chip(s) per point "
             "(band: chip-to-chip sd; bars: 95 % test-sampling interval)", fontsize=9)
fig.tight_layout()'''),
    md('''
What the physics predicts, and what to look for in the curves:

* **Placement spread** matters through the exponential I-V: in subthreshold a V_th error δ
  is a current error of `δ alpha_G / (n U_T)`, about 1.8 % per mV at 300 K. A looser tuning
  tolerance leaves each weight with a larger random error; no calibration can remove a random
  per-cell error, so compensation helps little here.
* **Read noise** (RTN) enters the same way but changes from read to read; large RTN
  amplitudes swamp the 10 nA level spacing. Compensation can only remove what is static at the
  time it measures (gains, offsets, cells that read far off their level during the screen), so
  expect at best a partial recovery.
* **Retention** is a *systematic* V_th loss: every programmed cell conducts more (notebook 1:
  several-fold after 10 years at 85 °C), the ADC range calibrated on the fresh chip clips, and
  the off cells start to leak. This is the case the reference columns, the adaptive read
  voltage and the gain trims are built for: they measure the drift through the periphery
  at run conditions and undo the common part of it.
* **Temperature** changes U_T, V_th and mobility together: again mostly a common gain error
  that the reference columns track, plus a level-dependent part that remains.
* **Noise-aware training** attacks the random errors that compensation cannot: training with
  weights multiplied by `exp(sigma_lnw z)` (the current error of a Gaussian V_th error) makes
  the network tolerate per-cell current errors, at some cost in clean accuracy (see the zoo
  table, `norsim zoo --table`, for both models' integer-reference accuracy).

In the committed run (quick setting) compensation brings the 10-year-bake and the 358 K chips
back to the reference within the test-sampling interval, and recovers only part of what large
RTN takes. With
`NORSIM_QUICK=1` (32 images, one chip) one image is 3 points, so only large effects are
resolved; run without it (2000 images, 3 chips) for the study itself.
'''),
    code(FOOTER),
]

# ------------------------------------------------------------------------------------------
NB3 = [
    md('''
# 3. IR drop: where it happens, how it grows with wire resistance and array size, and the surrogate

Fast mode (norsim's default) sums cell currents at the nominal bias: every bit line sits at
its clamp voltage, every source line at ground. In a real array the column current flows
through the bit-line wire, and the row pairs' currents through their shared source line to the
nearest strap, so cells far from the clamp or from a strap see less V_DS and conduct less.
**Circuit mode** (`norsim.array.circuit`) solves the DC network: one bit-line and one
source-line node per cell, wire segments, strap and clamp resistances, and the nonlinear cell
I-V at the solved node voltages. The **surrogate** (`norsim.array.surrogate.IrDropSurrogate`)
keeps per-cell sensitivities d ln I/dV_D and d ln I/dV_S at the nominal bias and iterates a
linearised correction through the factorised wire network: no cell I-V per input vector.

The tile below holds real weights: a 256 x 256 block of the zoo LeNet's first fully connected
layer (800 -> 120) on differential pairs, programmed ideally to the target V_th of each level,
and driven by random binary word-line inputs (one bit plane of bit-serial inputs).
`NORSIM_QUICK=1` uses fewer input vectors, fewer sweep points and 32 test images.
'''),
    code(SETUP + '''
import warnings
import norsim.zoo
# numba's notice about read-only broadcast arrays (raised inside the circuit solver) is not
# about this study; keep the notebook's output readable
warnings.filterwarnings("ignore", message="future versions will not create a writeable array")
warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm.auto in a kernel
from norsim.array.circuit import ir_drop_map, solve_tile
from norsim.array.surrogate import IrDropSurrogate
from norsim.device.iv import cell_model
from norsim.device.levels import level_currents, read_bias, target_vth
from norsim.mapping.quant_model import Linear

cfg = load_preset("nor40")
dev = cfg.device
b = read_bias(dev)
model300 = cell_model(dev.cell, dev.read.temperature_k)
vth_levels = target_vth(model300, dev, level_currents(dev.levels))
VECTORS = 2 if QUICK else 16
SIZES = [64, 256] if QUICK else [32, 64, 128, 256, 512]
R_SEG = [1.0, 100.0] if QUICK else [0.5, 1.0, 3.0, 10.0, 30.0, 100.0]

zoo_model = norsim.zoo.load("lenet-mnist-4b")
fc = [n for n in zoo_model.nodes if isinstance(n, Linear)][0]
w = np.asarray(fc.weight).T          # (in_features, out_features): rows carry inputs
print(f"layer {fc.name}: weights {w.shape}, codes {w.min()}..{w.max()}")

def tile_vth(rows, cols):
    """V_th map of a rows x cols tile: weight rows, differential pairs (+w, -w) side by side."""
    wb = w[:rows, : cols // 2]
    if wb.shape != (rows, cols // 2):   # larger than the layer: repeat it
        wb = np.resize(w, (rows, cols // 2))
    lv = np.empty((rows, cols), int)
    lv[:, 0::2], lv[:, 1::2] = np.maximum(wb, 0), np.maximum(-wb, 0)
    return vth_levels[lv]

def inputs(rows, n, seed=0):
    rng = np.random.default_rng(seed)
    return np.where(rng.random((n, rows)) < 0.5, b.v_wl, 0.0)

def with_wires(r_seg):
    return cfg.with_overrides({"array.wires.r_bl_segment_ohm": r_seg,
                               "array.wires.r_sl_segment_ohm": r_seg})'''),
    md('''
## The IR-drop map of one tile

`ir_drop_map` splits each cell's current error (circuit mode minus fast mode) into a bit-line
and a source-line part (averaging both orders of applying the drops, so they add up exactly).
The clamps sit at row 0 (top); source-line straps every 32 columns.
'''),
    code('''
vth = tile_vth(256, 256)
wl = inputs(256, 1)
t = time.perf_counter()
m = ir_drop_map(vth, wl, with_wires(2.0))
print(f"solved 256 x 256 in {time.perf_counter() - t:.2f} s; Newton steps {m.result.iterations}")
ideal = m.ideal_cell_currents[0]
on = ideal > 0.5 * dev.levels.i_unit_a        # conducting cells (selected row, weight level > 0)
rel = lambda part: np.ma.masked_where(~on, 100 * part[0] / np.where(on, ideal, 1.0))
fig, ax = plt.subplots(1, 4, figsize=(14, 3.4))
for a, (title, img) in zip(ax, [("bit-line drop (mV)", 1e3 * m.result.bl_drop[0]),
                                ("source-line rise (mV)", 1e3 * m.result.sl_drop[0]),
                                ("cell current error, BL part (%)", rel(m.bl_part_a)),
                                ("cell current error, SL part (%)", rel(m.sl_part_a))]):
    im = a.imshow(img, aspect="auto", cmap="viridis")
    a.set(title=title, xlabel="column", ylabel="row")
    a.grid(False)
    fig.colorbar(im, ax=a, shrink=0.8)
fig.suptitle("256 x 256 tile, 2 Ohm per segment, one random input vector", fontsize=9)
fig.tight_layout()
col_err = (m.result.column_currents - m.result.ideal_column_currents)[0]
print(f"column currents: largest {1e6 * m.result.ideal_column_currents.max():.2f} uA; "
      f"error up to {100 * np.abs(col_err).max() / m.result.ideal_column_currents.max():.3f} % of it")'''),
    md('''
The bit-line drop is set mostly by the column-select switch between each bit line and its
clamp (`array.wires.r_bl_terminal_ohm` = 200 Ohm, carrying the whole column current), so it
is nearly uniform down a column and proportional to that column's current (the vertical
stripes); the wire segments add a small gradient towards the far rows. The source-line rise is
largest half-way between straps (every 32 columns) on rows whose cells conduct. A lower V_DS
lowers the cell current through DIBL and the select transistor: the relative errors (right,
conducting cells only) are negative, a fraction of a percent per cell, and follow the bit-line
pattern. The preset's cells conduct 10-70 nA (subthreshold), so a 256-cell column carries
only microamperes: the main reason subthreshold CIM arrays tolerate long lines.

## Error against wire resistance and array size

The figure of merit for accuracy is the column-current error in units of the ADC step. With
6-bit ADCs calibrated to the 99.9th percentile of column currents, an error well below half an
LSB (~0.8 % of full scale) is invisible after conversion; a systematic error of an LSB or more
shifts every dot product of that column.
'''),
    code('''
def max_rel_error(rows, r_seg, n=VECTORS):
    res = solve_tile(tile_vth(rows, rows), inputs(rows, n, seed=rows), with_wires(r_seg))
    return float(np.abs(res.column_currents - res.ideal_column_currents).max()
                 / res.ideal_column_currents.max())

grid = {}
t = time.perf_counter()
for n in SIZES:
    for r in R_SEG:
        grid[n, r] = max_rel_error(n, r)
print(f"{len(grid)} circuit solves in {time.perf_counter() - t:.1f} s")
fig, ax = plt.subplots(figsize=(5.5, 3.8))
for n in SIZES:
    ax.loglog(R_SEG, [100 * grid[n, r] for r in R_SEG], "o-", label=f"{n} x {n}")
ax.axhline(100 * 0.5 / 63, color="k", ls=":", lw=1, label="1/2 LSB of a 6-bit ADC")
ax.set(xlabel="wire resistance per cell segment (Ohm, bit and source line)",
       ylabel="max column-current error (% of largest)")
ax.legend(fontsize=8)
fig.tight_layout()'''),
    md('''
The error grows with the segment resistance (at small resistances the fixed 200 Ohm
column-select switch dominates, so the curves start flat) and with the array size (more cells
on a longer wire: the drop at the far end scales with rows x length). At the preset's 1 Ohm per
segment a 256 x 256 tile stays far below half an LSB.

## Accuracy against wire resistance and array size

At network scale every tile gets a static IR-drop correction (`mapping.ir_drop`): on sampled
calibration bit-planes (the word-line patterns the tile really sees) each cell's current with
wire resistance is computed — by the surrogate or by full circuit solves — and its average
ratio to the fast-mode current multiplies that cell's current from then on. The chips below
are programmed ideally (`mapping.programming = "ideal"`) so that the IR drop is the only change
against the reference; each point reports top-1 accuracy and the lowest per-layer MVM
signal-to-noise ratio against exact integers (far more sensitive than accuracy on few images).
'''),
    code('''
from norsim.data import load_dataset
from norsim.experiments.evaluate import evaluate_chip

IMAGES, CALIB = (32, 16) if QUICK else (1000, 256)
R_NET = [300.0] if QUICK else [1.0, 10.0, 100.0, 300.0, 1000.0]
SIZES_NET = [64, 256] if QUICK else [64, 128, 256, 512]
test, calib = load_dataset("mnist", "test"), load_dataset("mnist", "calib")
x, y, x_cal = test.x[:IMAGES], test.y[:IMAGES], calib.x[:CALIB]
net_base = cfg.with_overrides({"mapping.programming": "ideal", "mapping.calibration_images": CALIB,
                               "mapping.ir_drop_vectors": 8 if QUICK else 32})

def net_point(r_seg=None, size=256, mode="surrogate"):
    ov = {"array.rows": size, "array.cols": size}
    if r_seg is not None:
        ov.update({"mapping.ir_drop": mode, "array.wires.r_bl_segment_ohm": r_seg,
                   "array.wires.r_sl_segment_ohm": r_seg})
    t = time.perf_counter()
    r = evaluate_chip(zoo_model, net_base.with_overrides(ov), x, y, x_cal)
    snr = min(l["mvm_snr_db"] for l in r["layers"] if l["mvm_snr_db"] is not None)
    label = "fast mode" if r_seg is None else f"{mode}, {r_seg:g} Ohm/segment"
    print(f"{size:>4} x {size:<4} {label:>28}: accuracy {100 * r['accuracy']:6.2f} %, "
          f"lowest layer MVM SNR {snr:5.1f} dB ({time.perf_counter() - t:.0f} s)")
    return r["accuracy"], snr

no_wires = {n: net_point(None, n) for n in SIZES_NET}
by_r = {r: net_point(r) for r in R_NET}
by_size = {n: (by_r[R_NET[-1]] if n == 256 else net_point(R_NET[-1], n)) for n in SIZES_NET}
# full circuit solves for the factors (the quick setting compares the two on one tile below)
circ = None if QUICK else net_point(R_NET[-1], 256, "circuit")
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
ax[0].semilogx(R_NET, [by_r[r][1] for r in R_NET], "o-", label="surrogate")
if circ is not None:
    ax[0].semilogx([R_NET[-1]], [circ[1]], "s", ms=9, mfc="none", label="circuit mode")
ax[0].axhline(no_wires[256][1], color="k", ls=":", label="no wire resistance")
ax[0].set(xlabel="wire resistance per cell segment (Ohm)", ylabel="lowest layer MVM SNR (dB)",
          title="256 x 256 arrays")
ax[0].legend(fontsize=8)
ax[1].plot(SIZES_NET, [by_size[n][1] for n in SIZES_NET], "o-", label=f"{R_NET[-1]:g} Ohm/segment")
ax[1].plot(SIZES_NET, [no_wires[n][1] for n in SIZES_NET], "k:", label="no wire resistance")
ax[1].set_xscale("log", base=2)
ax[1].minorticks_off()
ax[1].set_xticks(SIZES_NET, [str(n) for n in SIZES_NET])
ax[1].set(xlabel="array rows = columns", ylabel="lowest layer MVM SNR (dB)", title="array size")
ax[1].legend(fontsize=8)
fig.tight_layout()
print("accuracy (%): " + ", ".join(f"{r:g} Ohm: {100 * by_r[r][0]:.2f}" for r in R_NET)
      + f"; no wires: {100 * no_wires[256][0]:.2f}"
      + ("" if circ is None else f"; circuit mode at {R_NET[-1]:g} Ohm: {100 * circ[0]:.2f}"))'''),
    md('''
Wire resistance shows first in the MVM signal-to-noise ratio, long before the accuracy moves:
the step of a calibrated 6-bit ADC is coarse against the percent-level current errors of
realistic wires, and the network's 4-bit activations absorb much of the rest. The static
factors of the surrogate and of circuit mode give the same picture; the surrogate costs far
less (the full setting adds the circuit-mode point). (A static factor cannot follow the
input-dependence of the drop; the tile-level
comparison below measures that part.) The SNR is itself estimated on the test images with one
draw of read noise per run, so in the quick setting (32 images) differences of a dB or two
between runs are noise; smaller arrays have shorter lines and therefore less drop.

## Circuit mode vs surrogate on one tile

`IrDropSurrogate.validate` compares the surrogate and fast mode against circuit mode on the
same vectors (errors as fractions of the largest circuit-mode column current).
'''),
    code('''
print(f"{'size':>9} {'R/seg':>6} {'fast-mode max err':>18} {'surrogate max err':>18} {'circuit s':>10} {'surrogate s':>12}")
for n in SIZES[-2:]:
    for r in R_SEG[-2:]:
        c = with_wires(r)
        vth_n, wl_n = tile_vth(n, n), inputs(n, VECTORS, seed=7)
        t = time.perf_counter(); solve_tile(vth_n, wl_n, c); t_circ = time.perf_counter() - t
        sur = IrDropSurrogate(vth_n, c)
        t = time.perf_counter(); sur.column_currents(wl_n); t_sur = time.perf_counter() - t
        rep = sur.validate(wl_n)
        print(f"{n:>4} x {n:<4}{r:>6g} {100 * rep.fast_mode_max_error_rel:>17.4f}% "
              f"{100 * rep.max_error_rel:>17.6f}% {t_circ:>10.3f} {t_sur:>12.3f}")'''),
    md('''
The surrogate removes most of the IR-drop error at a fraction of circuit mode's cost (its
remaining error is second order in the drop: the curvature of ln I), so it is the tool for
network-sized runs; circuit mode stays the reference, itself cross-checked against ngspice
(`norsim spice-check`, `docs/validation.md`).
'''),
    code(FOOTER),
]

# ------------------------------------------------------------------------------------------
NB4 = [
    md('''
# 4. Array size vs energy, latency, area and accuracy; the ADC-bits trade-off

The same 4-bit LeNet can be tiled onto small or large arrays. Larger arrays amortise the
periphery (ADCs, sense amplifiers, drivers) over more cells and need fewer partial sums, but
sum more rows per conversion (a larger dynamic range for the ADC) and charge longer lines. The
ADC is the largest energy and area consumer of most CIM macros, and its resolution trades
against accuracy directly.

Energy, latency and area come from norsim's cost model (`norsim.cost`) applied to the event
counts of the **same run** that gave the accuracy (word-line pulses, bit-line charge, ADC
conversions, shift-adds, buffer traffic), with the 40 nm technology parameters of the
`nor40` preset (`cost.*`, sources in `docs/parameters.md`). `NORSIM_QUICK=1` runs few
images and two points per axis.
'''),
    code(SETUP + '''
import importlib.util, warnings
warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm.auto in a kernel
import norsim.zoo
from norsim.data import load_dataset
from norsim.experiments.evaluate import evaluate_chip

IMAGES = 24 if QUICK else 1000
CALIB = 16 if QUICK else 256
SIZES = [64, 256] if QUICK else [64, 128, 256, 512]
ADC_BITS = [4, 6] if QUICK else [3, 4, 5, 6, 7, 8]
HAS_COST = importlib.util.find_spec("norsim.cost.report") is not None
print("cost model:", "present" if HAS_COST else "NOT in this version of norsim (accuracy only)")
if HAS_COST:
    from norsim.cost.report import cost_of_chip

model = norsim.zoo.load("lenet-mnist-4b")
test, calib = load_dataset("mnist", "test"), load_dataset("mnist", "calib")
x, y, x_cal = test.x[:IMAGES], test.y[:IMAGES], calib.x[:CALIB]
base = load_preset("nor40").with_overrides({"mapping.calibration_images": CALIB})

_done = {}

def run(overrides):
    """Accuracy and cost of one chip at the preset + overrides (a setting met twice runs once)."""
    cfg = base.with_overrides(overrides)
    key = cfg.to_toml()
    if key in _done:
        return _done[key]
    r = evaluate_chip(model, cfg, x, y, x_cal)
    row = {"accuracy": r["accuracy"]}
    if HAS_COST:
        c = cost_of_chip(r["chip"], len(x), cfg)
        row.update(energy_nj=1e9 * c.energy_per_image_j, latency_us=1e6 * c.latency_single_s,
                   area_mm2=c.area_mm2, tops_per_w=c.tops_per_w, util=c.utilisation,
                   adc_share=c.energy_by_component_j.get("adc", 0.0) / c.energy_per_image_j)
    _done[key] = row
    return row'''),
    md('''
## Array size
'''),
    code('''
size_rows = {}
for n in SIZES:
    t = time.perf_counter()
    size_rows[n] = run({"array.rows": n, "array.cols": n})
    print(f"{n:>4} x {n:<4}: " + ", ".join(f"{k} {v:.4g}" for k, v in size_rows[n].items())
          + f"  ({time.perf_counter() - t:.0f} s)")
keys = [k for k in ("accuracy", "energy_nj", "latency_us", "area_mm2") if k in size_rows[SIZES[0]]]
labels = {"accuracy": "top-1 accuracy (fraction)", "energy_nj": "energy / image (nJ)",
          "latency_us": "latency / image (us)", "area_mm2": "area (mm^2)"}
fig, axs = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.2))
for ax, k in zip(np.atleast_1d(axs), keys):
    ax.plot(SIZES, [size_rows[n][k] for n in SIZES], "o-")
    ax.set_xscale("log", base=2)
    ax.minorticks_off()
    ax.set_xticks(SIZES, [str(n) for n in SIZES])
    ax.set(xlabel="array rows = columns", title=labels[k])
fig.tight_layout()'''),
    md('''
## ADC bits

Each extra bit roughly doubles a SAR ADC's capacitor array and adds a conversion cycle, so ADC
energy and area grow quickly; below the resolution the column sums need, accuracy collapses
(the calibrated range is cut into too few steps).
'''),
    code('''
adc_rows = {}
for bits in ADC_BITS:
    t = time.perf_counter()
    adc_rows[bits] = run({"array.adc.bits": bits})
    print(f"{bits} bits: " + ", ".join(f"{k} {v:.4g}" for k, v in adc_rows[bits].items())
          + f"  ({time.perf_counter() - t:.0f} s)")
fig, ax = plt.subplots(figsize=(5.5, 3.6))
ax.plot(ADC_BITS, [100 * adc_rows[b]["accuracy"] for b in ADC_BITS], "o-", color="tab:blue")
ax.set(xlabel="ADC bits", ylabel="top-1 accuracy (%)")
if HAS_COST:
    ax2 = ax.twinx()
    ax2.plot(ADC_BITS, [adc_rows[b]["energy_nj"] for b in ADC_BITS], "s--", color="tab:red")
    ax2.set_ylabel("energy / image (nJ)", color="tab:red")
    ax2.grid(False)
ax.set_title(f"ADC resolution trade-off ({IMAGES} images, one chip)")
fig.tight_layout()'''),
    md('''
Read the two axes together: the useful design point is the lowest resolution whose accuracy
is within the test-sampling interval of the integer reference; every bit above it is energy
and area spent on nothing. With `NORSIM_QUICK=1` (few images) the accuracy differences are
not resolved; run the full setting for the study.
'''),
    code(FOOTER),
]

NOTEBOOKS = {
    "01_floating_gate_cell.ipynb": NB1,
    "02_accuracy_nonidealities.ipynb": NB2,
    "03_ir_drop.ipynb": NB3,
    "04_array_size_cost_adc.ipynb": NB4,
}


def build(cells) -> "nbformat.NotebookNode":
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, src) in enumerate(cells):
        cell = (nbformat.v4.new_markdown_cell(src) if kind == "markdown"
                else nbformat.v4.new_code_cell(src))
        cell["id"] = f"cell-{i:02d}"
        nb.cells.append(cell)
    return nb


def execute(nb, timeout: int = 600):
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    return nb


def main(argv=None) -> int:
    import nbformat

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--execute", action="store_true", help="run each notebook, keep outputs")
    ap.add_argument("names", nargs="*", help="only these notebooks (file names)")
    args = ap.parse_args(argv)
    for name, cells in NOTEBOOKS.items():
        if args.names and name not in args.names:
            continue
        nb = build(cells)
        if args.execute:
            t = time.perf_counter()
            execute(nb)
            print(f"{name}: executed in {time.perf_counter() - t:.1f} s "
                  f"(NORSIM_QUICK={os.environ.get('NORSIM_QUICK', '0')})")
        nbformat.write(nb, HERE / name)
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
