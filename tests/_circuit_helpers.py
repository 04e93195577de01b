"""Shared pieces of the circuit-mode tests: a seeded tile and the operating-point check."""

from __future__ import annotations

import numpy as np

from norsim.device.iv import cell_model, vth_for_current


def tile(cfg, rows, cols, seed=0, lo=10e-9, hi=100e-9, p_on=0.5, batch=3):
    """V_th map with nominal currents log-uniform in [lo, hi], word-line vectors (the first
    with every row on) and the cell model, all seeded."""
    read = cfg.device.read
    model = cell_model(cfg.device.cell, read.temperature_k)
    rng = np.random.default_rng(seed)
    split = cfg.device.cell.cell_type == "split_gate"
    v_on = read.v_select_on_v if split else read.v_cg_read_v
    i_t = np.exp(rng.uniform(np.log(lo), np.log(hi), (rows, cols)))
    vth = vth_for_current(model, i_t, v_on, read.v_cg_read_v, read.v_bl_read_v, read.v_sl_read_v)
    wl = np.where(rng.random((batch, rows)) < p_on, v_on, read.v_select_off_v)
    wl[0] = v_on  # one vector with every row on
    return vth, wl, model


def assert_operating_point(solver, res, wl, vth, model, cfg, min_ir_effect=0.2):
    """Every cell's current is its exact I-V at its node voltages, the wires carry exactly
    those currents (bit-line and source-line KCL), and the IR effect is the heavy one."""
    i_check = model.current(wl[:, :, None], cfg.device.read.v_cg_read_v, res.bl_node_v,
                            res.sl_node_v, vth)
    np.testing.assert_allclose(res.cell_currents, i_check, rtol=1e-9, atol=1e-18)
    net = solver.network
    np.testing.assert_allclose(net.bl_drop(res.cell_currents), res.bl_drop, rtol=1e-8,
                               atol=1e-12)
    np.testing.assert_allclose(net.sl_rise(res.cell_currents), res.sl_drop, rtol=1e-8,
                               atol=1e-12)
    assert 1 - res.column_currents.sum() / res.ideal_column_currents.sum() > min_ir_effect
