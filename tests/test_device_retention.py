"""Retention: Arrhenius acceleration, time-temperature equivalence, growth of shift and spread."""

import numpy as np
import pytest

from norsim.device.config import CellConfig, RetentionConfig
from norsim.device.retention import (K_EV_PER_K, RetentionCells, acceleration_factor, bake,
                                     draw_retention, tail_fraction, vth_shift)
from norsim.errors import InputError

RET = RetentionConfig()
CELL = CellConfig()


def test_acceleration_factor_closed_form():
    af = acceleration_factor(358.15, 1.1, 300.0)
    k_b = 1.380649e-23 / 1.602176634e-19
    assert af == pytest.approx(np.exp(1.1 / k_b * (1 / 300.0 - 1 / 358.15)), rel=1e-12)
    assert acceleration_factor(300.0, 1.1, 300.0) == 1.0
    assert K_EV_PER_K == pytest.approx(8.617333e-5, rel=1e-6)


def test_time_temperature_equivalence():
    """t at T shifts V_th exactly as AF(T) t at T_ref (for intrinsic and tail cells)."""
    rng = np.random.default_rng(0)
    vth = rng.uniform(0.5, 2.0, 5000)
    ret = RET.replace(tail_fraction_fresh=0.2)
    cells = draw_retention(rng, vth, ret, CELL)
    assert cells.tail.any() and (~cells.tail).any()
    t, temp = 3.0e7, 358.15
    hot = vth_shift(cells, t, temp, ret)
    intr = ~cells.tail
    ref_intr = vth_shift(cells, t * acceleration_factor(temp, ret.ea_ev, ret.t_ref_k), ret.t_ref_k, ret)
    ref_tail = vth_shift(cells, t * acceleration_factor(temp, ret.tail_ea_ev, ret.t_ref_k), ret.t_ref_k, ret)
    assert np.allclose(hot[intr], ref_intr[intr], rtol=1e-12)
    assert np.allclose(hot[cells.tail], ref_tail[cells.tail], rtol=1e-12)


def test_log_time_law_per_cell():
    cells = RetentionCells(np.array([0.002, 0.004]), np.array([False, False]))
    t = np.array([0.0, 1.0, 1e3, 1e8])
    for tt in t:
        assert np.allclose(vth_shift(cells, tt, 300.0, RET), -cells.a_v * np.log1p(tt / RET.tau0_s))


def test_mean_shift_and_spread_grow_with_time():
    rng = np.random.default_rng(1)
    vth = np.full(20000, 1.2)
    cells = draw_retention(rng, vth, RET, CELL)
    shifts = [vth_shift(cells, t, 358.15, RET) for t in (1e3, 1e5, 1e7, 3.15e8)]
    means = [-s.mean() for s in shifts]
    stds = [s.std() for s in shifts]
    assert np.all(np.diff(means) > 0) and np.all(np.diff(stds) > 0)
    # mean matches the law with the log-normal mean of A
    frac = (1.2 - CELL.vth_erased_v) / (CELL.vth_max_v - CELL.vth_erased_v)
    a_mean = RET.a_v_per_decade / np.log(10) * np.exp(RET.a_sigma_ln**2 / 2) * (1 + RET.charge_gain * frac)
    af = acceleration_factor(358.15, RET.ea_ev, RET.t_ref_k)
    assert means[-1] == pytest.approx(a_mean * np.log1p(af * 3.15e8 / RET.tau0_s), rel=0.03)


def test_loss_grows_with_stored_charge():
    rng = np.random.default_rng(2)
    low = draw_retention(rng, np.full(20000, 0.0), RET, CELL).a_v.mean()
    high = draw_retention(rng, np.full(20000, 2.5), RET, CELL).a_v.mean()
    assert high > 1.3 * low


def test_fast_leaking_tail_grows_with_cycles():
    fresh = RET.replace(pe_cycles=0, tail_fraction_fresh=1e-3, tail_fraction_per_cycle=1e-7)
    cycled = fresh.replace(pe_cycles=100000)
    assert tail_fraction(cycled) == pytest.approx(1e-3 + 1e-2)
    rng = np.random.default_rng(3)
    n = 200000
    f0 = draw_retention(rng, np.full(n, 1.0), fresh, CELL).tail.mean()
    f1 = draw_retention(rng, np.full(n, 1.0), cycled, CELL).tail.mean()
    assert f0 == pytest.approx(1e-3, rel=0.2) and f1 == pytest.approx(1.1e-2, rel=0.1)


def test_bake_lowers_vth_and_rejects_bad_input():
    rng = np.random.default_rng(4)
    vth = np.full(100, 1.0)
    assert np.all(bake(rng, vth, 1e6, 358.0, RET, CELL) < vth)
    with pytest.raises(InputError, match="temperature_k"):
        bake(rng, vth, 1e6, -5.0, RET, CELL)
    with pytest.raises(InputError, match="t_s"):
        bake(rng, vth, float("nan"), 300.0, RET, CELL)
    with pytest.raises(InputError, match="vth_programmed"):
        draw_retention(rng, np.array([1.0, np.inf]), RET, CELL)
