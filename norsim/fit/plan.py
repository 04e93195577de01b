"""``norsim fit --plan``: which measurements determine which parameters, and what is missing."""

from __future__ import annotations

import numpy as np

from norsim.config.sim import SimConfig
from norsim.device.iv import thermal_voltage
from norsim.fit.formats import Measurement, read_measurement

MIN_CELLS_READS = 30
MIN_TEMPS_ARRHENIUS = 3
MIN_DECADES = 2.0


def _row(param, status, why):
    return {"parameter": param, "status": status, "why": why}


def _iv_rows(m: Measurement, cfg: SimConfig) -> list[dict]:
    c = cfg.device.cell
    i = m.columns["i_d"]
    i_s = 2 * c.slope_factor_n * c.beta_a_per_v2 * thermal_voltage(c.t_ref_k) ** 2
    n_vcg = np.unique(m.columns["v_cg"]).size
    n_vd = np.unique(m.columns["v_d"]).size
    n_t = np.unique(m.columns["temp"]).size
    above = i.max() > 0.3 * i_s and i.min() < 0.01 * i_s
    rows = [_row("device.cell.slope_factor_n", "determined (conditional on alpha_g)"
                 if n_vcg >= 5 else "missing", f"{n_vcg} gate voltages; I-V data fix only n / "
                 "alpha_G (alpha_G from the base preset)")]
    st = "determined" if above and n_vcg >= 5 else "degenerate"
    rows.append(_row("V_th and device.cell.beta_a_per_v2 (I_S)", st,
                     "the sweep reaches from weak to moderate/strong inversion" if st == "determined"
                     else f"currents {i.min():.2g}-{i.max():.2g} A stay on one side of I_S ~ "
                     f"{i_s:.2g} A (or a single bias): only the current at that bias is determined; "
                     "sweep V_CG from ~0.6 V below to ~1 V above threshold"))
    rows.append(_row("device.cell.dibl_eta", "determined" if n_vd >= 2 else "missing",
                     f"{n_vd} drain voltage(s); needs >= 2"))
    for f in ("dvth_dt_v_per_k", "n_tempco_per_k", "mobility_exponent"):
        rows.append(_row(f"device.cell.{f}", "determined" if n_t >= 2 else "missing",
                         f"{n_t} temperature(s); needs >= 2 (3 to check linearity)"))
    rows.append(_row("device.cell.alpha_g", "not determinable",
                     "an exact symmetry of the EKV model with n (k alpha_G, k n, k eta, beta / k); "
                     "set it from capacitance or programming data"))
    return rows


def plan(files, cfg: SimConfig) -> list[dict]:
    """One row per parameter: determined / degenerate / missing, with the reason."""
    meas = [read_measurement(f) for f in files]
    kinds = {m.kind: m for m in meas}
    rows = []
    if "iv" in kinds:
        rows += _iv_rows(kinds["iv"], cfg)
    else:
        rows.append(_row("device.cell.* (n, I_S, DIBL, temperature coefficients)", "missing",
                         "no I-V sweep file (columns v_cg_V, v_d_V, temp_K, i_d_A)"))
    if "reads" in kinds:
        m = kinds["reads"]
        n = np.unique(m.columns["cell"]).size
        rows.append(_row("device.noise.rtn_mean_v", "determined (conditional on trap count x "
                         "probability)" if n >= MIN_CELLS_READS else "weak",
                         f"{n} cells with repeated reads; >= {MIN_CELLS_READS} recommended"))
    else:
        rows.append(_row("device.noise.rtn_mean_v", "missing",
                         "no repeated-reads file (columns cell, time_s, i_d_A)"))
    if "placement" in kinds:
        rows.append(_row("placement spread, device.variation.stuck_*_fraction", "determined",
                         f"{len(kinds['placement'])} programmed cells"))
    else:
        rows.append(_row("placement spread, device.variation.stuck_*_fraction", "missing",
                         "no post-programming map (columns cell, target_A, i_d_A[, failed])"))
    if "retention" in kinds:
        m = kinds["retention"]
        n_t = np.unique(m.columns["temp"]).size
        t = m.columns["time"][m.columns["time"] > 0]
        dec = float(np.log10(t.max() / t.min())) if t.size else 0.0
        rows.append(_row("device.retention.ea_ev", "determined" if n_t >= MIN_TEMPS_ARRHENIUS
                         else "degenerate", f"{n_t} bake temperature(s); needs >= "
                         f"{MIN_TEMPS_ARRHENIUS} (1: only AF/tau0; 2: Arrhenius untested)"))
        rows.append(_row("device.retention.tau0_s, a_v_per_decade_per_v",
                         "determined" if dec >= MIN_DECADES else "degenerate",
                         f"bake times span {dec:.2g} decades; needs >= {MIN_DECADES:g}"))
    else:
        rows.append(_row("device.retention.* (E_a, tau0, A)", "missing",
                         "no bake log (columns cell, temp_K, time_s, vth_V) at >= 3 temperatures"))
    return rows


def format_plan(rows: list[dict]) -> str:
    w = max(len(r["parameter"]) for r in rows)
    return "\n".join(f"{r['parameter']:{w}s}  {r['status']:12s}  {r['why']}" for r in rows)
