"""Population values of the I-V parameters over the fitted cells, and their cell-to-cell
(device-to-device) spread.

Preset values are the mean over cells; the interval is the standard error of the mean (cell-to-
cell spread included) with several cells, the cell's own interval with one. With at least
``MIN_CELLS_D2D`` cells the D2D spread of n, beta, DIBL and dV_th/dT is estimated as the
observed variance minus the mean squared fit uncertainty (so the estimation noise is not
counted as variation), with a chi-square interval.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from norsim.device.iv import thermal_voltage
from norsim.fit.lsq import CONFIDENCE, FitOutcome

MIN_CELLS_D2D = 8
#: fit parameter -> (variation field, relative to the mean?, transform of the cell values)
D2D = {"slope_factor_n": ("device.variation.n_sigma_rel", True),
       "ln_beta": ("device.variation.beta_sigma_rel", False),
       "dibl_eta": ("device.variation.dibl_sigma_rel", True),
       "dvth_dt_v_per_k": ("device.variation.dvth_dt_sigma_v_per_k", False)}


def iv_population(dev, cells: list[dict]) -> tuple[dict, list, list]:
    """Population values (preset fields) of the I-V parameters, degeneracies, conditional
    combinations."""
    names = ("slope_factor_n", "ln_i_s", "dibl_eta", "dvth_dt_v_per_k", "n_tempco_per_k",
             "mobility_exponent")
    from norsim.fit.ivfit import FIELDS

    out, degenerate, conditional = {}, [], []
    for r in cells:
        o: FitOutcome = r["outcome"]
        degenerate += [dict(d, cell=r["cell"]) for d in o.degenerate]
        for h in r["held"]:
            degenerate += [dict(d, cell=r["cell"]) for d in h["because"]]
            degenerate.append(dict(parameters=[h["parameter"]], cell=r["cell"], determined=
                                   f"held at the base preset's {h['held_at']:.6g}: the data leave "
                                   "it undetermined; the parameters it trades off with are "
                                   "conditional on it (reported degenerate)"))
        conditional += [dict(d, cell=r["cell"]) for d in o.conditional]
    for name in names:
        rows = [r for r in cells if name in r["outcome"].names]
        if not rows:
            if any(name in r["degenerate_params"] for r in cells):  # held: kept, flagged
                out[FIELDS[name][0]] = {"value": float(cells[0]["fixed"][name]) if name != "ln_i_s"
                                        else _beta(dev, cells[0]["fixed"][name]),
                                        "status": "degenerate", "label": FIELDS[name][1],
                                        "note": "held at the base preset's value: not determined"}
            continue
        vals = np.array([r["outcome"].value(name) for r in rows])
        sig = np.array([r["outcome"].sigma(name) for r in rows])
        mean = float(vals.mean())
        se = float(sig[0]) if vals.size == 1 else float(vals.std(ddof=1) / np.sqrt(vals.size))
        dof = rows[0]["outcome"].dof if vals.size == 1 else vals.size - 1
        q = stats.t.ppf(0.5 + CONFIDENCE / 2, dof)
        status = "conditional" if name in ("slope_factor_n", "dibl_eta") else "determined"
        if any(name in r["degenerate_params"] for r in rows):
            status = "degenerate"
        entry = {"value": mean, "sigma": se, "interval": [mean - q * se, mean + q * se],
                 "status": status, "cells": int(vals.size), "label": FIELDS[name][1],
                 "method": "least squares on ln I, Jacobian covariance (HC3 where larger)"}
        if vals.size > 1:
            entry["cell_to_cell_sd"] = float(vals.std(ddof=1))
        if status == "conditional":
            entry["conditional_on"] = {"device.cell.alpha_g": dev.cell.alpha_g}
        if name == "ln_i_s":
            n = out.get("device.cell.slope_factor_n", {}).get("value", dev.cell.slope_factor_n)
            u0 = thermal_voltage(dev.cell.t_ref_k)
            out["device.cell.i_s_a (derived)"] = {
                "value": float(np.exp(mean)),
                "interval": [float(np.exp(v)) for v in entry["interval"]],
                "status": status, "note": "specific current 2 n beta U_T^2 at t_ref_k"}
            entry = dict(entry, value=float(np.exp(mean) / (2 * n * u0**2)),
                         interval=[float(np.exp(v) / (2 * n * u0**2)) for v in entry["interval"]],
                         sigma_ln=se, label="beta = I_S / (2 n U_T^2)")
            entry.pop("sigma")
        out[FIELDS[name][0]] = entry
    if "device.cell.slope_factor_n" in out:
        e, a = out["device.cell.slope_factor_n"], dev.cell.alpha_g
        conditional.insert(0, {
            "parameters": ["device.cell.slope_factor_n", "device.cell.alpha_g"],
            "determined": f"n / alpha_G = {e['value'] / a:.4g} [{e['interval'][0] / a:.4g}, "
                          f"{e['interval'][1] / a:.4g}] (exact symmetry of the EKV model: "
                          "(alpha_G, n, eta, beta) -> (k alpha_G, k n, k eta, beta / k)); n, DIBL "
                          f"and beta are given for alpha_G = {a:g} from the base preset"})
    out.update(d2d_spread(cells))
    return out, degenerate, conditional


def _beta(dev, ln_i_s: float) -> float:
    u0 = thermal_voltage(dev.cell.t_ref_k)
    return float(np.exp(ln_i_s) / (2 * dev.cell.slope_factor_n * u0**2))




def _cell_values(cells: list[dict], name: str):
    vals, sig = [], []
    for r in cells:
        o: FitOutcome = r["outcome"]
        if name == "ln_beta":
            if "ln_i_s" not in o.names or "slope_factor_n" not in o.names:
                continue
            n = o.value("slope_factor_n")
            vals.append(o.value("ln_i_s") - np.log(n))
            sig.append(o.sigma("ln_i_s"))
        elif name in o.names and name not in r["degenerate_params"]:
            vals.append(o.value(name))
            sig.append(o.sigma(name))
    return np.array(vals), np.array(sig)


def d2d_spread(cells: list[dict]) -> dict:
    """Device-to-device spreads (preset fields) from >= MIN_CELLS_D2D fitted cells."""
    out = {}
    for name, (field, relative) in D2D.items():
        vals, sig = _cell_values(cells, name)
        if vals.size < MIN_CELLS_D2D:
            continue
        dof = vals.size - 1
        var = float(vals.var(ddof=1))
        noise = float(np.mean(sig**2))
        a = (1 - CONFIDENCE) / 2
        lo_v = dof * var / stats.chi2.ppf(1 - a, dof) - noise
        hi_v = dof * var / stats.chi2.ppf(a, dof) - noise
        scale = abs(vals.mean()) if relative else 1.0
        est = np.sqrt(max(var - noise, 0.0)) / scale
        out[field] = {"value": float(est),
                      "interval": [float(np.sqrt(max(lo_v, 0.0)) / scale),
                                   float(np.sqrt(max(hi_v, 0.0)) / scale)],
                      "status": "determined" if lo_v > 0 else "upper bound",
                      "cells": int(vals.size),
                      "method": "cell-to-cell variance minus the mean squared fit uncertainty "
                                "(chi-square interval)"}
    return out
