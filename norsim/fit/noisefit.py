"""Read noise and RTN statistics from repeated reads of the same cells.

Each cell's reads (at the base preset's read bias, ``dt`` apart) give a mean current and a
sample variance. The white + 1/f variance the noise model predicts at that current, scaled by
the white-noise scale measured on the quietest cells (:func:`_white_scale`), is subtracted; the
rest, referred to V_th through the cell's |dI/dV_th| and divided by the level factor of the
mean RTN amplitude, is m^2 Y_c, with Y_c distributed as the sample variance of a unit-amplitude
cell's traps over a record of this length and spacing (simulated from the trap model,
:func:`norsim.fit.rtnstats.reference_sample_variances`: a trap slower than the record shows
only part of its variance). m^2 (``rtn_mean_v``) = mean(x) / mean(Y); its interval follows from
the simulated distribution of the mean of as many model cells (the cell-to-cell spread of trap
draws dominates, and it is heavy-tailed). Only m^2 x sites x p_a is determined: the number of
trap sites and their probability are held at the base preset's values (conditional).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from norsim.device.config import DeviceConfig
from norsim.device.iv import cell_model
from norsim.device.levels import current_per_vth, target_vth
from norsim.device.noise import read_noise_sigma_a, rtn_mean_amplitude
from norsim.errors import FileFormatError, InputError
from norsim.fit.formats import Measurement, group_rows
from norsim.fit.lsq import CONFIDENCE, single_threaded
from norsim.fit.rtnstats import reference_sample_variances

BOOTSTRAP = 2000


@single_threaded
def fit_reads(dev: DeviceConfig, m: Measurement) -> dict:
    """RTN amplitude scale (rtn_mean_v) and a white-noise check from a reads file."""
    groups = group_rows(m.columns["cell"])
    temps = m.get("temp")
    t_k = float(np.median(temps)) if temps is not None else dev.read.temperature_k
    model = cell_model(dev.cell, t_k)
    mean_i, var_i, reads, dts = [], [], [], []
    for cid, rows in groups:
        if rows.size < 3:
            raise m.error("cell", int(rows[0]), f"cell {cid} has {rows.size} reads; expected >= 3")
        t = m.columns["time"][rows]
        d = np.diff(t)
        if np.any(d <= 0) or np.ptp(d) > 0.01 * d.mean():
            k = int(rows[1 + int(np.argmax(np.abs(d - d.mean())))])
            raise m.error("time", k, f"reads of cell {cid} are not evenly spaced in increasing "
                          "time (expected a constant read interval)")
        i = m.columns["i_d"][rows]
        mean_i.append(i.mean())
        var_i.append(i.var(ddof=1))
        reads.append(rows.size)
        dts.append(d.mean())
    mean_i, var_i = np.array(mean_i), np.array(var_i)
    n_reads, dt = int(np.median(reads)), float(np.median(dts))
    try:
        vth = target_vth(model, dev, mean_i)
    except InputError as exc:
        raise FileFormatError(f"{m.path}: column 'i_d_A': a mean current the base preset's cell "
                              f"cannot read at its read bias ({exc})") from None
    g = current_per_vth(model, dev, vth)
    white = read_noise_sigma_a(mean_i, model, dev.noise, t_k, dev.read.t_read_s) ** 2
    unit = dataclasses.replace(dev.noise, rtn_mean_v=1.0)
    lvl = rtn_mean_amplitude(vth, unit, dev.cell, dev.retention.pe_cycles)
    nz = dev.noise
    # x_c = m^2 Y_c, Y_c from the model's trap statistics (records simulated with the same
    # length and spacing). m^2 = mean(x) / mean(Y); the interval comes from the distribution
    # of the mean of N model cells (parametric bootstrap: keeps the skew of a few giant traps,
    # which an empirical bootstrap of one chip's cells misses when it drew none)
    ref = reference_sample_variances(nz, t_k, n_reads, dt)
    rng = np.random.default_rng(0)  # fixed: the same file gives the same answer
    # white noise as measured on the quietest cells (scale 1 = the preset's model); a chip
    # with extra white noise would otherwise have it counted as RTN
    wscale = _white_scale(var_i / white, ref, n_reads, rng)
    k_w = wscale["value"] if wscale["status"] == "determined" else 1.0
    x = (var_i - k_w * white) / (g * lvl) ** 2
    means = ref[rng.integers(0, ref.size, (BOOTSTRAP, x.size))].mean(axis=1) / ref.mean()
    a = (1 - CONFIDENCE) / 2
    m2 = float(x.mean() / ref.mean())
    est = float(np.sqrt(max(m2, 0.0)))
    lo = float(np.sqrt(max(m2 / np.quantile(means, 1 - a), 0.0)))
    hi = float(np.sqrt(max(m2 / np.quantile(means, a), 0.0)))
    boot = m2 / means
    k = nz.rtn_traps_per_cell * nz.rtn_trap_probability
    return {
        "kind": "reads", "file": str(m.path), "cells": len(groups), "reads_per_cell": n_reads,
        "read_interval_s": dt, "temperature_k": t_k,
        "params": {"device.noise.rtn_mean_v": {
            "value": est, "interval": [lo, hi],
            "sigma": float(np.std(np.sqrt(np.maximum(boot, 0.0)))),
            "method": "mean per-cell RTN variance / the model's; interval from the "
                      f"distribution of the mean of {x.size} model cells ({BOOTSTRAP} draws)",
            "status": "determined" if mean_i.size >= 30 and lo > 0 else "weak",
            "conditional_on": {"device.noise.rtn_traps_per_cell": nz.rtn_traps_per_cell,
                               "device.noise.rtn_trap_probability": nz.rtn_trap_probability}}},
        "conditional": [{"parameters": ["device.noise.rtn_mean_v",
                                        "device.noise.rtn_traps_per_cell",
                                        "device.noise.rtn_trap_probability"],
                         "determined": "rtn_mean_v^2 x rtn_traps_per_cell x rtn_trap_probability "
                                       f"= {est**2 * k:.4g} V^2 "
                                       "(variances alone cannot tell few large traps from many "
                                       "small ones)"}],
        "checks": {"white_fraction_of_variance": float(np.sum(white) / np.sum(var_i)),
                   "cells_below_white_noise": int(np.count_nonzero(var_i < white)),
                   "white_noise_scale": wscale},
        "not_determined": ["device.noise.rtn_tau_min_s / rtn_tau_max_s (kept: the estimator "
                           "uses them for the record-length correction)",
                           "device.noise.rtn_level_gain (kept)"],
        "confidence": CONFIDENCE,
        "_plot": {"vth": vth, "x": x, "ref": _with_white_scatter(ref * m2, white / (g * lvl) ** 2,
                                                                 n_reads, rng)},
    }


def _with_white_scatter(ref: np.ndarray, white: np.ndarray, reads: int, rng) -> np.ndarray:
    """Model cells' RTN variances plus the scatter that subtracting the *expected* white
    variance leaves in a measured cell (sample variance of ``reads`` reads: chi-square), so
    the plot compares like with like."""
    w = white[rng.integers(0, white.size, ref.size)]
    return ref + w * (rng.chisquare(reads - 1, ref.size) / (reads - 1) - 1.0)


QUIET_QUANTILE = 0.1


def _white_scale(ratio: np.ndarray, ref: np.ndarray, reads: int, rng) -> dict:
    """Measured / modelled white (+ 1/f) read noise from the quietest cells: the model's trap
    statistics say which fraction of cells shows (almost) no RTN in such a record; the lowest
    decile of var / predicted-white is then a chi-square quantile times the scale. 1 means the
    preset's noise model (shot noise 2 q I, channel thermal noise, 1/f) explains the quiet
    cells; above 1, the chip has noise the model lacks (e.g. the sense amplifier's)."""
    from scipy import stats

    quiet = float(np.mean(ref <= 1e-3 * max(np.mean(ref), 1e-300)))
    q = stats.chi2.ppf(QUIET_QUANTILE, reads - 1) / (reads - 1)
    idx = rng.integers(0, ratio.size, (BOOTSTRAP, ratio.size))
    boot = np.quantile(ratio[idx], QUIET_QUANTILE, axis=1) / q
    a = (1 - CONFIDENCE) / 2
    return {"value": float(np.quantile(ratio, QUIET_QUANTILE) / q),
            "interval": [float(np.quantile(boot, a)), float(np.quantile(boot, 1 - a))],
            "model_quiet_fraction": quiet,
            "status": "determined" if quiet >= 2 * QUIET_QUANTILE else "weak (too few quiet cells)",
            "note": "a check of the read-noise model; no preset field is written (shot noise "
                    "is not a free parameter)"}
