"""The IR-drop surrogate against circuit mode."""

import numpy as np
import pytest

from norsim.array.surrogate import IrDropSurrogate
from norsim.config.presets import load_preset
from norsim.device.iv import cell_model, vth_for_current
from norsim.errors import InputError


def _tile(rows, cols, lo, hi, seed=0, batch=8):
    cfg = load_preset("nor40")
    read = cfg.device.read
    model = cell_model(cfg.device.cell, read.temperature_k)
    rng = np.random.default_rng(seed)
    i_t = np.exp(rng.uniform(np.log(lo), np.log(hi), (rows, cols)))
    vth = vth_for_current(model, i_t, read.v_select_on_v, read.v_cg_read_v, read.v_bl_read_v,
                          read.v_sl_read_v)
    wl = np.where(rng.random((batch, rows)) < 0.5, read.v_select_on_v, read.v_select_off_v)
    return cfg, model, vth, wl


def test_surrogate_error_is_second_order_and_far_below_fast_mode():
    cfg, model, vth, wl = _tile(48, 24, 10e-9, 100e-9)
    reps = []
    for s in (4.0, 2.0):
        sur = IrDropSurrogate(vth, cfg, model, wires=cfg.array.wires.scaled(s))
        reps.append(sur.validate(wl))
    big, small = reps
    assert big.fast_mode_max_error_rel > 1e-3  # the wires matter ...
    assert big.max_error_rel < 1e-3 * big.fast_mode_max_error_rel  # ... the surrogate fixes them
    # fast-mode error is first order in R, the surrogate's second order
    assert 1.8 < big.fast_mode_max_error_rel / small.fast_mode_max_error_rel < 2.2
    assert big.max_error_rel / small.max_error_rel > 3.3


def test_surrogate_in_the_stress_case():
    cfg, model, vth, wl = _tile(32, 16, 0.3e-6, 1e-6, seed=1)
    sur = IrDropSurrogate(vth, cfg, model, wires=cfg.array.wires.scaled(20.0))
    rep = sur.validate(wl)
    assert rep.fast_mode_max_error_rel > 0.05
    assert rep.max_error_rel < 0.1 * rep.fast_mode_max_error_rel
    assert rep.to_dict()["improvement"] == pytest.approx(rep.improvement)


def test_correct_adds_the_predicted_change():
    cfg, model, vth, wl = _tile(16, 8, 10e-9, 100e-9, seed=2)
    sur = IrDropSurrogate(vth, cfg, model, wires=cfg.array.wires.scaled(10.0))
    i, i0 = sur.cell_currents(wl)
    fast = i0.sum(axis=1)
    np.testing.assert_allclose(sur.correct(fast, wl), sur.column_currents(wl), rtol=1e-12)
    offset = np.full_like(fast, 3e-9)
    np.testing.assert_allclose(sur.correct(fast + offset, wl) - offset, sur.column_currents(wl),
                               rtol=1e-12)
    with pytest.raises(InputError, match="fast_column_currents"):
        sur.correct(fast[:, :3], wl)
    with pytest.raises(InputError, match="sweeps"):
        IrDropSurrogate(vth, cfg, model, sweeps=0)
