"""Fit of the cell I-V (EKV) to I_D(V_CG, V_D, T) sweeps, one cell at a time.

Fitted (in the model of :mod:`norsim.device.iv`): the cell's control-gate-referred V_th at
t_ref_k, the slope factor n, the specific current I_S = 2 n beta U_T^2 at t_ref_k (ln I_S is
the fit parameter), DIBL eta (with two or more drain voltages) and, with two or more
temperatures, dV_th/dT, the relative tempco of n and the mobility exponent. Residuals are ln
I_meas - ln I_model, weighted by a variance function c0 + c1 (sigma_read(I) / I)^2 whose shape
is the preset's read-noise model and whose coefficients are fitted to the first pass's
residuals (shot noise dominates at low currents, RTN and model error set the floor); the
covariance s^2 (J^T J)^-1 is widened to the HC3 sandwich where that is larger (the weights
are only approximate).

The split-gate select transistor (V_th, n, beta) and t_ref_k are taken from the base preset (a
select transistor far in strong inversion barely shapes the curve; fit it from its own sweep if
it does). The coupling ratio alpha_G is not fitted: (alpha_G, n, eta, beta) -> (k alpha_G, k n,
k eta, beta / k) leaves every current unchanged (an exact symmetry of the EKV model), so I-V
data determine n / alpha_G only. alpha_G is held at the base preset's value and probed in the
degeneracy analysis; n is reported conditional on it.

The mean RTN occupancy of the cell's traps shifts every read at one temperature by the same
amount (and the occupancy moves with temperature): one nuisance V_th offset per temperature,
with the prior (mean, cell-to-cell spread) of the base preset's trap statistics
(:func:`norsim.fit.rtnstats.rtn_vth_offset`), so the fitted V_th is the cell's static V_th and
its uncertainty includes what RTN hides.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import optimize

from norsim.device.config import DeviceConfig
from norsim.device.iv import cell_model, thermal_voltage
from norsim.errors import FileFormatError
from norsim.fit.formats import Measurement, group_rows
from norsim.fit.lsq import Param, fit, one_thread
from norsim.fit.rtnstats import rtn_vth_offset

#: fit parameter -> (preset field it sets, label)
FIELDS = {
    "vth_v": (None, "V_th of the swept cell at t_ref_k"),
    "slope_factor_n": ("device.cell.slope_factor_n", "slope factor n"),
    "ln_i_s": ("device.cell.beta_a_per_v2", "ln I_S (specific current at t_ref_k)"),
    "dibl_eta": ("device.cell.dibl_eta", "DIBL eta"),
    "dvth_dt_v_per_k": ("device.cell.dvth_dt_v_per_k", "dV_th/dT"),
    "n_tempco_per_k": ("device.cell.n_tempco_per_k", "tempco of n"),
    "mobility_exponent": ("device.cell.mobility_exponent", "mobility exponent"),
    "alpha_g": ("device.cell.alpha_g", "coupling ratio alpha_G"),
}
#: when the data leave a direction undetermined, hold the first of these it involves
FIX_ORDER = ("ln_i_s", "mobility_exponent", "n_tempco_per_k", "dibl_eta", "dvth_dt_v_per_k",
             "slope_factor_n", "vth_v")


def _cell_config(dev: DeviceConfig, p: dict):
    c = dev.cell
    n = p.get("slope_factor_n", c.slope_factor_n)
    u0 = thermal_voltage(c.t_ref_k)
    beta = np.exp(p["ln_i_s"]) / (2 * n * u0**2) if "ln_i_s" in p else c.beta_a_per_v2
    return dataclasses.replace(
        c, slope_factor_n=float(n), beta_a_per_v2=float(beta),
        alpha_g=float(p.get("alpha_g", c.alpha_g)),
        dibl_eta=float(p.get("dibl_eta", c.dibl_eta)),
        dvth_dt_v_per_k=float(p.get("dvth_dt_v_per_k", c.dvth_dt_v_per_k)),
        n_tempco_per_k=float(p.get("n_tempco_per_k", c.n_tempco_per_k)),
        mobility_exponent=float(p.get("mobility_exponent", c.mobility_exponent)))


class _Model:
    def __init__(self, dev: DeviceConfig, m: Measurement, rows: np.ndarray):
        from norsim.device.levels import read_bias

        b = read_bias(dev)
        self.dev = dev
        self.v_cg = m.columns["v_cg"][rows]
        self.v_d = m.columns["v_d"][rows]
        self.v_s = m.get("v_s", np.full(m.__len__(), b.v_s))[rows]
        self.v_wl = m.get("v_wl", np.full(m.__len__(), b.v_wl))[rows]
        self.temp = m.columns["temp"][rows]
        self.ln_i = np.log(m.columns["i_d"][rows])
        self.temps = np.unique(self.temp)
        self.w = np.ones(rows.size)

    def ln_current(self, p: dict) -> np.ndarray:
        cell = _cell_config(self.dev, p)
        out = np.empty(self.ln_i.size)
        for j, t in enumerate(self.temps):
            k = self.temp == t
            vth = p.get("vth_v", 1.0) + p.get(f"rtn_offset_{j}", 0.0)
            model = cell_model(cell, float(t))
            i = model.current(self.v_wl[k], self.v_cg[k], self.v_d[k], self.v_s[k], vth)
            out[k] = np.log(np.maximum(i, 1e-300))
        return out


    def white_rel_var(self, p: dict) -> np.ndarray:
        """Relative variance of one read's white + 1/f noise at each point (the preset's
        noise model): the shape of the ln I variance function."""
        from norsim.device.noise import read_noise_sigma_a

        cell = _cell_config(self.dev, p)
        out = np.empty(self.ln_i.size)
        for t in self.temps:
            k = self.temp == t
            i = np.exp(self.ln_i[k])
            sig = read_noise_sigma_a(i, cell_model(cell, float(t)), self.dev.noise, float(t),
                                     self.dev.read.t_read_s)
            out[k] = (sig / i) ** 2
        return out


def _start(model: _Model, dev: DeviceConfig) -> dict:
    """V_th start: where the base preset's cell reads the measured current at the middle
    of the reference-temperature sweep (a 1-D fit of V_th alone)."""
    p0 = {"slope_factor_n": dev.cell.slope_factor_n,
          "ln_i_s": float(np.log(2 * dev.cell.slope_factor_n * dev.cell.beta_a_per_v2
                                 * thermal_voltage(dev.cell.t_ref_k) ** 2))}

    def r(v):
        return model.ln_current({**p0, "vth_v": float(v[0])}) - model.ln_i

    best = min((float(np.sum(r([v]) ** 2)), v) for v in np.linspace(-2, 4, 25))[1]
    sol = optimize.least_squares(r, [best], x_scale=[0.1])
    return {**p0, "vth_v": float(sol.x[0])}


def fit_cell(dev: DeviceConfig, m: Measurement, rows: np.ndarray) -> dict:
    """Fit one cell's sweeps; returns a dict with the outcome, the model and notes."""
    model = _Model(dev, m, rows)
    c = dev.cell
    n_vd = np.unique(model.v_d).size
    n_t = model.temps.size
    if np.unique(model.v_cg).size < 2 and rows.size < 2:
        raise FileFormatError(f"{m.path}: column 'v_cg_V': one point; an I-V fit needs a sweep")
    p0 = _start(model, dev)
    specs = [Param("vth_v", p0["vth_v"], 0.01, FIELDS["vth_v"][1], "V", -5, 10),
             Param("slope_factor_n", c.slope_factor_n, 0.01, "slope factor n", "", 1.0, 3.0),
             Param("ln_i_s", p0["ln_i_s"], 0.1, FIELDS["ln_i_s"][1], "ln A", -40, 0)]
    notes = []
    if n_vd >= 2:
        specs.append(Param("dibl_eta", c.dibl_eta, 0.005, "DIBL eta", "V/V", 0.0, 0.5))
    else:
        notes.append("dibl_eta: one drain voltage; kept from the base preset")
    if n_t >= 2:
        specs += [Param("dvth_dt_v_per_k", c.dvth_dt_v_per_k, 1e-4, "dV_th/dT", "V/K", -0.01, 0.01),
                  Param("n_tempco_per_k", c.n_tempco_per_k, 1e-4, "tempco of n", "1/K",
                        -0.01, 0.01),
                  Param("mobility_exponent", c.mobility_exponent, 0.1, "mobility exponent", "",
                        0.0, 3.0)]
    else:
        notes.append("temperature coefficients: one temperature; kept from the base preset")
    # the cell's traps add a mean V_th shift at each temperature (occupancy moves with T):
    # nuisance offsets with the prior of the base preset's trap statistics
    mu, sd = rtn_vth_offset(dev, p0["vth_v"])
    rtn = [Param(f"rtn_offset_{j}", mu, 0.01, f"mean RTN V_th shift at {t:g} K", "V",
                 -1.0, 1.0, nuisance=True) for j, t in enumerate(model.temps)] if sd > 0 else []
    specs += rtn
    prior = np.array([mu, max(sd, 1e-6)])
    probes = [Param("alpha_g", c.alpha_g, 0.01, FIELDS["alpha_g"][1], "", 0.05, 1.0)]
    fixed: dict = {}
    held: list[dict] = []
    for _ in range(len(specs)):
        names = [s.name for s in specs]

        def residual(x, names=names, w=None):
            p = {**fixed, **dict(zip(names, x))}
            return _with_prior((model.ln_current(p) - model.ln_i) * model.w, p, rtn, prior)

        def probe(x, pv, names=names):
            p = {**fixed, **dict(zip(names, x)), "alpha_g": pv[0]}
            return _with_prior((model.ln_current(p) - model.ln_i) * model.w, p, rtn, prior)

        model.w = np.ones(rows.size)
        out = fit(residual, specs, probes=probes, probe_fn=probe)
        # variance function of ln I: c0 + c1 / I (shot noise and a floor), then refit weighted
        r2 = out.residuals[:rows.size] ** 2
        shape = model.white_rel_var({**fixed, **dict(zip(names, out.x))})
        a = np.column_stack([np.ones_like(r2), shape / shape.max()])
        coef, _ = optimize.nnls(a, r2)
        var = np.maximum(a @ coef, max(r2.mean(), 1e-30) * 1e-4)
        model.w = 1.0 / np.sqrt(var)
        specs = [dataclasses.replace(s, start=v) for s, v in zip(specs, out.x)]
        out = fit(residual, specs, probes=probes, probe_fn=probe, robust=True)
        free_degen = out.degenerate
        if not free_degen:
            break
        names_in = set().union(*(d["parameters"] for d in free_degen))
        hold = next((f for f in FIX_ORDER if f in names_in and f in names), None)
        if hold is None:
            break
        base = next(s for s in specs if s.name == hold)
        fixed[hold] = _base_value(dev, hold, base.start)
        held.append({"parameter": hold, "held_at": fixed[hold], "because": free_degen})
        specs = [s for s in specs if s.name != hold]
    # every parameter a held direction involved is conditional on the held value: degenerate
    degen = {q for h in held for d in h["because"] for q in d["parameters"]
             if not q.startswith("rtn_offset")} | {h["parameter"] for h in held}
    degen |= {q for d in out.degenerate for q in d["parameters"]}
    return {"outcome": out, "model": model, "fixed": fixed, "held": held, "notes": notes,
            "n_vd": n_vd, "temps": model.temps.tolist(), "degenerate_params": sorted(degen)}


def _with_prior(r: np.ndarray, p: dict, rtn: list, prior: np.ndarray) -> np.ndarray:
    if not rtn:
        return r
    return np.concatenate([r, [(p[q.name] - prior[0]) / prior[1] for q in rtn]])


def _base_value(dev: DeviceConfig, name: str, current: float) -> float:
    c = dev.cell
    if name == "ln_i_s":
        u0 = thermal_voltage(c.t_ref_k)
        return float(np.log(2 * c.slope_factor_n * c.beta_a_per_v2 * u0**2))
    if name == "vth_v":
        return current
    return float(getattr(c, name))


def fit_iv(dev: DeviceConfig, m: Measurement) -> list[dict]:
    """Fit every cell of an I-V file (``cell`` column; one cell if absent)."""
    ids = m.get("cell", np.zeros(len(m)))
    results = []
    for cid, rows in group_rows(ids):
        with one_thread():
            r = fit_cell(dev, m, rows)
        r["cell"] = cid
        results.append(r)
    return results
