"""Placement error distribution and failure rate from a post-programming map.

Per target level: the relative read-current error (I - I_target) / I_target of the cells that
passed (mean, standard deviation with its chi-square interval, 5/50/95 % quantiles). Failure
rate: the flagged fraction with its Clopper-Pearson interval (cells flagged in a ``failed``
column; without one, cells off by more than 50 % of their target). Failed cells reading above
their target count as stuck-on (erased), below as stuck-off: the preset's stuck fractions.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from norsim.device.config import DeviceConfig
from norsim.fit.formats import Measurement
from norsim.fit.lsq import CONFIDENCE

FAIL_REL = 0.5


def _binom(k: int, n: int) -> list[float]:
    ci = stats.binomtest(k, n).proportion_ci(CONFIDENCE, method="exact")
    return [float(ci.low), float(ci.high)]


def fit_placement(dev: DeviceConfig, m: Measurement) -> dict:
    tgt, i = m.columns["target"], m.columns["i_d"]
    err = (i - tgt) / tgt
    failed = m.columns["failed"] > 0 if "failed" in m.columns else np.abs(err) > FAIL_REL
    ok = ~failed
    levels = []
    for t in np.unique(tgt):
        sel = ok & (tgt == t)
        e = err[sel]
        if e.size < 2:
            continue
        dof = e.size - 1
        sd = float(e.std(ddof=1))
        a = (1 - CONFIDENCE) / 2
        levels.append({"target_a": float(t), "cells": int(e.size), "mean_rel": float(e.mean()),
                       "sd_rel": sd,
                       "sd_rel_interval": [sd * np.sqrt(dof / stats.chi2.ppf(1 - a, dof)),
                                           sd * np.sqrt(dof / stats.chi2.ppf(a, dof))],
                       "q05_rel": float(np.quantile(e, 0.05)), "q50_rel": float(np.median(e)),
                       "q95_rel": float(np.quantile(e, 0.95))})
    n, nf = int(failed.size), int(failed.sum())
    on, off = int(np.sum(failed & (err > 0))), int(np.sum(failed & (err <= 0)))
    params = {}
    for name, k, side in (("stuck_on_fraction", on, "above"), ("stuck_off_fraction", off, "below")):
        params[f"device.variation.{name}"] = {
            "value": k / n, "interval": _binom(k, n),
            # no failure seen: only an upper bound (the preset keeps its value)
            "status": "determined" if k > 0 else "upper bound",
            "method": f"failed cells reading {side} target / cells (Clopper-Pearson)"}
    return {"kind": "placement", "file": str(m.path), "cells": n, "failed": nf,
            "failed_fraction": nf / n, "failed_fraction_interval": _binom(nf, n),
            "levels": levels, "params": params, "confidence": CONFIDENCE,
            "notes": ["placement spread is an outcome of the ISPP algorithm (device.programming), "
                      "not a preset field: compare levels[].sd_rel with `norsim device-study`"],
            "_plot": {"target": tgt, "err": err, "failed": failed}}
