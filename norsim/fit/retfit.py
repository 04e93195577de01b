"""Retention law and activation energy from bake logs (V_th vs time at several temperatures).

Model (:mod:`norsim.device.retention`): each cell c, baked at T_c,
    V_th(t) = V0_c - b_c ln(1 + AF(T_c) t / tau0),   AF(T) = exp[(E_a / k)(1/T_ref - 1/T)],
    b_c = (a / ln 10) e^(sigma z_c) (V0_c - V_th,n).
Stage 1 fits ln tau0 and E_a by variable projection: for given (ln tau0, E_a) every cell's
(V0_c, b_c) is the linear least-squares solution, so only the two nonlinear parameters are
searched; their covariance is the Jacobian's of the projected residuals (robust to the RTN
heteroscedasticity). Stage 2 regresses b_c on V0_c: slope E[A] = (a / ln 10) e^(sigma^2 / 2),
intercept -E[A] V_th,n (bootstrap over cells); sigma (a_sigma_ln) is held at the base preset.

Degeneracies: with one temperature only AF(T) / tau0 is determined (E_a and tau0 are one
direction of the SVD); with two, E_a is the two-point slope of ln AF against 1/T with no check
of the Arrhenius law, and is reported degenerate (determined: ln[AF(T2)/AF(T1)]); bake times
spanning about one decade leave ln tau0 and A correlated (flagged by the SVD analysis).
"""

from __future__ import annotations

import numpy as np

from norsim.device.config import DeviceConfig
from norsim.device.retention import K_EV_PER_K
from norsim.fit.formats import Measurement, group_rows
from norsim.fit.lsq import CONFIDENCE, Param, bootstrap_interval, fit, single_threaded

MIN_TEMPERATURES = 3
METHOD = "variable projection, Jacobian covariance (cell-clustered sandwich where larger)"


def _project(l, v, cell, ncell):
    """Per-cell linear LSQ of v = V0 - b L; returns residuals, V0, b."""
    s1 = np.bincount(cell, minlength=ncell).astype(float)
    sl = np.bincount(cell, l, ncell)
    sll = np.bincount(cell, l * l, ncell)
    sv = np.bincount(cell, v, ncell)
    svl = np.bincount(cell, v * l, ncell)
    det = s1 * sll - sl * sl
    det = np.where(np.abs(det) < 1e-300, 1e-300, det)
    v0 = (sll * sv - sl * svl) / det
    mb = (s1 * svl - sl * sv) / det          # slope of v vs L = -b
    return v - (v0[cell] + mb[cell] * l), v0, -mb


@single_threaded
def fit_retention(dev: DeviceConfig, m: Measurement) -> dict:
    ret = dev.retention
    groups = group_rows(m.columns["cell"])
    cell = np.empty(len(m), np.int64)
    temp_c = []
    for j, (cid, rows) in enumerate(groups):
        t = m.columns["temp"][rows]
        if np.ptp(t) > 0:
            raise m.error("temp", int(rows[np.argmax(t != t[0])]),
                          f"cell {cid} baked at two temperatures (one bake temperature per cell)")
        if np.unique(m.columns["time"][rows]).size < 3:
            raise m.error("time", int(rows[0]), f"cell {cid} has fewer than 3 bake times")
        cell[rows] = j
        temp_c.append(t[0])
    temp_c = np.array(temp_c)
    ncell = len(groups)
    time, vth = m.columns["time"], m.columns["vth"]
    temps = np.unique(temp_c)
    tpos = time[time > 0]
    decades = float(np.log10(tpos.max() / tpos.min())) if tpos.size else 0.0

    def lfun(x):
        af = np.exp(x[1] / K_EV_PER_K * (1.0 / ret.t_ref_k - 1.0 / temp_c[cell]))
        return np.log1p(af * time / np.exp(x[0]))

    def residual(x):
        return _project(lfun(x), vth, cell, ncell)[0]

    specs = [Param("ln_tau0_s", float(np.log(ret.tau0_s)), 1.0, "ln tau0 (at t_ref_k)", "ln s",
                   -20.0, 40.0),
             Param("ea_ev", ret.ea_ev, 0.05, "activation energy E_a", "eV", 0.05, 4.0)]
    # start: best of a coarse grid (the log law has flat valleys)
    grid = [(float(np.sum(residual([a, e]) ** 2)), a, e)
            for a in np.linspace(-5, 25, 13) for e in np.linspace(0.3, 2.0, 9)]
    _, a0, e0 = min(grid)
    specs = [Param(s.name, v, s.scale, s.label, s.unit, s.lo, s.hi)
             for s, v in zip(specs, (a0, e0))]
    out = fit(residual, specs, robust=True, hidden_params=2 * ncell, clusters=cell)
    _, v0, b = _project(lfun(out.x), vth, cell, ncell)
    # stage 2: b_c = E[A] (V0_c - V_n)
    rng = np.random.default_rng(0)
    A = np.column_stack([v0, -np.ones(ncell)])

    def stage2(idx):
        coef, *_ = np.linalg.lstsq(A[idx], b[idx], rcond=None)
        k = coef[0]
        return k, coef[1] / k if k != 0 else np.nan

    k, vn = stage2(np.arange(ncell))
    boot = np.array([stage2(rng.integers(0, ncell, ncell)) for _ in range(500)])
    vn_iv = bootstrap_interval(boot[:, 1][np.isfinite(boot[:, 1])])
    vn_ok = np.ptp(v0) > 0.5 and vn_iv[1] - vn_iv[0] < 1.0
    if not vn_ok:  # V0 span too narrow: hold V_n at the base preset, slope through it
        x = v0 - ret.vth_neutral_v

        def stage2(idx):  # noqa: F811
            return float(x[idx] @ b[idx] / (x[idx] @ x[idx])), ret.vth_neutral_v

        k, vn = stage2(np.arange(ncell))
        boot = np.array([stage2(rng.integers(0, ncell, ncell)) for _ in range(500)])
    sig = ret.a_sigma_ln
    a_dec = k * np.log(10.0) * np.exp(-sig**2 / 2)
    a_boot = boot[:, 0] * np.log(10.0) * np.exp(-sig**2 / 2)
    degenerate = list(out.degenerate)
    params = {}
    q = np.clip(out.interval("ln_tau0_s"), -700, 700)
    params["device.retention.tau0_s"] = {
        "value": float(np.exp(out.value("ln_tau0_s"))),
        "interval": [float(np.exp(q[0])), float(np.exp(q[1]))],
        "sigma_ln": out.sigma("ln_tau0_s"), "method": METHOD,
        "status": "degenerate" if out.is_degenerate("ln_tau0_s") else "determined"}
    params["device.retention.ea_ev"] = {
        "value": out.value("ea_ev"), "interval": list(out.interval("ea_ev")),
        "sigma": out.sigma("ea_ev"), "method": METHOD,
        "status": "degenerate" if out.is_degenerate("ea_ev") else "determined"}
    if temps.size < MIN_TEMPERATURES:
        params["device.retention.ea_ev"]["status"] = "degenerate"
        if temps.size == 2:
            t1, t2 = temps
            combo = out.value("ea_ev") / K_EV_PER_K * (1 / t1 - 1 / t2)
            degenerate.append({"parameters": ["ea_ev"], "determined":
                               f"ln[AF({t2:g} K) / AF({t1:g} K)] = {combo:.4g} (two temperatures: "
                               "the Arrhenius law is assumed, not tested; bake at three or more)"})
        elif not out.is_degenerate("ea_ev"):
            degenerate.append({"parameters": ["ea_ev", "ln_tau0_s"], "determined":
                               "AF(T) / tau0 at the one bake temperature"})
    params["device.retention.a_v_per_decade_per_v"] = {
        "value": float(a_dec), "interval": list(bootstrap_interval(a_boot)),
        "method": "b_c vs V0_c regression, bootstrap over cells; sigma held at base preset",
        "status": "degenerate" if out.is_degenerate("ln_tau0_s") else "determined",
        "conditional_on": {"device.retention.a_sigma_ln": sig}}
    if vn_ok:
        params["device.retention.vth_neutral_v"] = {
            "value": float(vn), "interval": list(vn_iv), "status": "determined",
            "method": "intercept / slope of b_c vs V0_c, bootstrap over cells"}
    else:
        params["device.retention.a_v_per_decade_per_v"]["conditional_on"][
            "device.retention.vth_neutral_v"] = ret.vth_neutral_v
    not_determined = [] if vn_ok else [
        f"device.retention.vth_neutral_v (programmed V_th span {np.ptp(v0):.2g} V: too narrow to "
        "locate the neutral V_th; kept from the base preset)",
        "device.retention.a_sigma_ln (kept from the base preset)"]
    if decades < 2.0:
        degenerate.append({"parameters": ["ln_tau0_s", "a_v_per_decade_per_v"], "determined":
                           f"bake times span {decades:.2g} decades: the loss per decade and its "
                           "time origin tau0 trade off (measure over >= 2 decades)"})
        for f in ("device.retention.tau0_s", "device.retention.a_v_per_decade_per_v"):
            params[f]["status"] = "degenerate"
    return {"kind": "retention", "file": str(m.path), "cells": ncell,
            "temperatures_k": temps.tolist(), "time_decades": decades, "params": params,
            "not_determined": not_determined,
            "degenerate": degenerate, "fit": out, "confidence": CONFIDENCE,
            "_plot": {"time": time, "temp": temp_c[cell], "dv": vth - v0[cell],
                      "model": -b[cell] * lfun(out.x), "resid": out.residuals}}

