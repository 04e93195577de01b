"""Synthetic measurements from known parameters, with the preset's own noise.

Each generator runs norsim's device layer on a configuration (the *truth*) and returns the
columns of a measurement file (see :mod:`norsim.fit.formats`) and the true values the fit
should recover. Noise is the model's: white (shot/thermal) and 1/f read noise of each read
(:func:`norsim.device.noise.read_noise_sigma_a`), RTN as V_th jumps of each cell's own traps
(Markov steps between reads, Arrhenius times at the measurement temperature), device-to-device
variation of n, beta, DIBL and dV_th/dT, log-normal retention spread, and ISPP placement by the
programming algorithm itself. All draws come from the ``rng`` passed in.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from norsim.config.sim import SimConfig
from norsim.device import noise as dnoise
from norsim.device.iv import cell_model, thermal_voltage
from norsim.device.levels import current_per_vth, level_currents, read_bias, target_vth
from norsim.device.variation import draw_variation
from norsim.fit.lsq import single_threaded


def _rtn_offsets(rng, traps, vth, cfg: SimConfig, reads_shape) -> np.ndarray:
    """RTN V_th shift of one cell for each read of ``reads_shape`` (equilibrium states)."""
    nz = cfg.device.noise
    occ = rng.random(tuple(reads_shape) + traps.unit_amp.shape[-1:]) < traps.p_occupied.reshape(-1)
    amp = dnoise.rtn_mean_amplitude(vth, nz, cfg.device.cell, cfg.device.retention.pe_cycles)
    return amp * np.sum(traps.unit_amp.reshape(-1) * occ, axis=-1)


@single_threaded
def iv_sweeps(cfg: SimConfig, rng: np.random.Generator, *, cells: int = 1,
              temps_k=(300.0, 330.0, 360.0), v_d=(0.1, 0.3), vth_v: float = 1.0,
              v_cg_below: float = 0.6, v_cg_above: float = 1.0, points: int = 25,
              reads_per_point: int = 16) -> tuple[dict, list[dict]]:
    """I_D vs V_CG sweeps of ``cells`` cells at each drain voltage and temperature.

    Each cell has its own D2D parameters and RTN traps; each point is the mean of
    ``reads_per_point`` reads. Returns (columns, truth per cell: vth_v (static, reference
    temperature), slope_factor_n, i_s_a (at t_ref_k), dibl_eta, dvth_dt_v_per_k)."""
    dev = cfg.device
    c, nz = dev.cell, dev.noise
    var = draw_variation(rng, (cells,), dev.variation, c)
    b = read_bias(dev)
    cols = {q: [] for q in ("cell", "v_cg", "v_d", "temp", "i_d")}
    truth = []
    for k in range(cells):
        vth = vth_v + float(var.vth_offset_v[k])
        dvdt = c.dvth_dt_v_per_k + (0.0 if var.dvth_dt_v_per_k is None
                                    else float(var.dvth_dt_v_per_k[k]))
        cell_k = dataclasses.replace(c, slope_factor_n=float(var.n[k]),
                                     beta_a_per_v2=c.beta_a_per_v2 * float(var.beta_factor[k]),
                                     dibl_eta=float(var.dibl_eta[k]), dvth_dt_v_per_k=dvdt)
        traps0 = dnoise.draw_rtn_traps(rng, (1,), nz)
        truth.append({"vth_v": vth, "slope_factor_n": cell_k.slope_factor_n,
                      "i_s_a": 2 * cell_k.slope_factor_n * cell_k.beta_a_per_v2
                      * thermal_voltage(c.t_ref_k) ** 2,
                      "dibl_eta": cell_k.dibl_eta, "dvth_dt_v_per_k": dvdt})
        v_cg = np.linspace(vth - v_cg_below, vth + v_cg_above, points)
        for t in temps_k:
            model = cell_model(cell_k, float(t))
            traps = dnoise.rtn_at_temperature(traps0, nz, nz.rtn_t_ref_k, float(t))
            for vd in v_d:
                rtn = _rtn_offsets(rng, traps, vth, cfg, (points, reads_per_point))
                i0 = model.current(b.v_wl, v_cg[:, None], vd, b.v_s, vth + rtn)
                sig = dnoise.read_noise_sigma_a(i0, model, nz, float(t), dev.read.t_read_s)
                i = np.mean(i0 + sig * rng.standard_normal(i0.shape), axis=1)
                for q, v in (("cell", k), ("v_cg", v_cg), ("v_d", vd), ("temp", t), ("i_d", i)):
                    cols[q].append(np.broadcast_to(np.asarray(v, dtype=np.float64), (points,)))
    return {q: np.concatenate(v) for q, v in cols.items()}, truth


def _level_cells(cfg: SimConfig, rng, cells: int, levels=None):
    """Target currents and V_th of ``cells`` cells at random non-zero levels."""
    dev = cfg.device
    cur = level_currents(dev.levels)
    lv = (rng.integers(1, len(cur), cells) if levels is None
          else np.resize(np.asarray(levels), cells))
    model = cell_model(dev.cell, dev.read.temperature_k)
    return cur[lv], target_vth(model, dev, cur[lv]), model


@single_threaded
def repeated_reads(cfg: SimConfig, rng: np.random.Generator, *, cells: int = 256,
                   reads: int = 200, dt_s: float = 1e-3,
                   temperature_k: float | None = None) -> tuple[dict, dict]:
    """``reads`` reads, ``dt_s`` apart, of ``cells`` cells at random levels (exact V_th), with
    white read noise and RTN whose traps take Markov steps between reads."""
    dev = cfg.device
    t = dev.read.temperature_k if temperature_k is None else float(temperature_k)
    tgt, vth, _ = _level_cells(cfg, rng, cells)
    model = cell_model(dev.cell, t)
    b = read_bias(dev)
    traps = dnoise.draw_rtn_traps(rng, (cells,), dev.noise, t)
    amp = dnoise.rtn_mean_amplitude(vth, dev.noise, dev.cell, dev.retention.pe_cycles)
    out = np.empty((cells, reads))
    for r in range(reads):
        if r:
            traps = dnoise.advance_rtn(traps, rng, dt_s)
        v = vth + amp * np.sum(traps.unit_amp * traps.occupied, axis=-1)
        i0 = model.current(b.v_wl, b.v_cg, b.v_d, b.v_s, v)
        sig = dnoise.read_noise_sigma_a(i0, model, dev.noise, t, dev.read.t_read_s)
        out[:, r] = i0 + sig * rng.standard_normal(cells)
    cols = {"cell": np.repeat(np.arange(cells), reads),
            "time": np.tile(np.arange(reads) * dt_s, cells),
            "temp": np.full(cells * reads, t), "i_d": out.reshape(-1)}
    return cols, {"rtn_mean_v": dev.noise.rtn_mean_v}


@single_threaded
def placement_map(cfg: SimConfig, rng: np.random.Generator, *, cells: int = 1024,
                  reads_per_cell: int = 4) -> tuple[dict, dict]:
    """Erase, program (ISPP program-and-verify) and read back ``cells`` cells at random levels;
    the read is the mean of ``reads_per_cell`` reads (white noise and RTN)."""
    from norsim.device.programming import program

    dev = cfg.device
    cur = level_currents(dev.levels)
    lv = rng.integers(0, len(cur), cells)
    model = cell_model(dev.cell, dev.read.temperature_k)
    var = draw_variation(rng, (cells,), dev.variation, dev.cell)
    res = program(rng, model, dev, cur[lv], variation=var)
    b = read_bias(dev)
    kw = var.iv_kwargs(model)
    traps = res.traps if res.traps is not None else dnoise.draw_rtn_traps(rng, (cells,), dev.noise)
    amp = dnoise.rtn_mean_amplitude(res.vth, dev.noise, dev.cell, dev.retention.pe_cycles)
    occ = rng.random((reads_per_cell,) + traps.unit_amp.shape) < traps.p_occupied
    v = res.vth + amp * np.sum(traps.unit_amp * occ, axis=-1)
    i0 = model.current(b.v_wl, b.v_cg, b.v_d, b.v_s, v, **kw)
    sig = dnoise.read_noise_sigma_a(i0, model, dev.noise, dev.read.temperature_k, dev.read.t_read_s)
    i = np.mean(i0 + sig * rng.standard_normal(i0.shape), axis=0)
    i = np.maximum(i, 1e-15)
    cols = {"cell": np.arange(cells), "target": cur[lv], "i_d": i,
            "failed": res.failed.astype(np.float64)}
    return cols, {"failed_fraction": res.n_failed / cells}


@single_threaded
def bake_logs(cfg: SimConfig, rng: np.random.Generator, *, temps_k=(358.0, 398.0, 423.0),
              cells: int = 64, times_s=None, reads_per_point: int = 16) -> tuple[dict, dict]:
    """Retention bake at each temperature (a fresh set of ``cells`` cells each): V_th read at
    the read temperature after each bake time (t = 0 included), from the mean of
    ``reads_per_point`` reads (white noise referred to V_th, RTN of the cell's traps)."""
    from norsim.device.retention import draw_retention, vth_shift

    dev = cfg.device
    times = (np.concatenate([[0.0], np.logspace(1, 6, 11)]) if times_s is None
             else np.asarray(times_s, float))
    cols = {q: [] for q in ("cell", "temp", "time", "vth")}
    model = cell_model(dev.cell, dev.read.temperature_k)
    b = read_bias(dev)
    for j, t_k in enumerate(temps_k):
        _, vth0, _ = _level_cells(cfg, rng, cells)
        ret = draw_retention(rng, vth0, dev.retention, dev.cell)
        traps = dnoise.draw_rtn_traps(rng, (cells,), dev.noise)
        for t in times:
            v = vth0 + vth_shift(ret, float(t), float(t_k), dev.retention)
            i0 = model.current(b.v_wl, b.v_cg, b.v_d, b.v_s, v)
            sig_i = dnoise.read_noise_sigma_a(i0, model, dev.noise, dev.read.temperature_k,
                                              dev.read.t_read_s)
            g = current_per_vth(model, dev, v)
            amp = dnoise.rtn_mean_amplitude(v, dev.noise, dev.cell, dev.retention.pe_cycles)
            occ = rng.random((reads_per_point,) + traps.unit_amp.shape) < traps.p_occupied
            rtn = np.mean(amp * np.sum(traps.unit_amp * occ, axis=-1), axis=0)
            meas = v + rtn + sig_i / g / np.sqrt(reads_per_point) * rng.standard_normal(cells)
            cols["cell"].append(j * cells + np.arange(cells))
            cols["temp"].append(np.full(cells, float(t_k)))
            cols["time"].append(np.full(cells, float(t)))
            cols["vth"].append(meas)
    r = dev.retention
    return ({q: np.concatenate(v) for q, v in cols.items()},
            {"ea_ev": r.ea_ev, "tau0_s": r.tau0_s, "a_v_per_decade_per_v": r.a_v_per_decade_per_v,
             "vth_neutral_v": r.vth_neutral_v, "a_sigma_ln": r.a_sigma_ln})
