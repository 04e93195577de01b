"""Retention: Arrhenius acceleration, time-temperature equivalence, log-time law from the end
of programming, sign change at the neutral V_th, per-cell spread, old config files."""

import numpy as np
import pytest

from norsim.config import SimConfig
from norsim.device.config import CellConfig, RetentionConfig
from norsim.device.retention import (K_EV_PER_K, RetentionCells, acceleration_factor, bake,
                                     draw_retention, equivalent_time_s, tail_fraction,
                                     vth_shift)
from norsim.errors import ConfigError, InputError

RET = RetentionConfig()
CELL = CellConfig()


def test_acceleration_factor_closed_form():
    af = acceleration_factor(358.15, 1.1, 300.0)
    k_b = 1.380649e-23 / 1.602176634e-19
    assert af == pytest.approx(np.exp(1.1 / k_b * (1 / 300.0 - 1 / 358.15)), rel=1e-12)
    assert acceleration_factor(300.0, 1.1, 300.0) == 1.0
    assert K_EV_PER_K == pytest.approx(8.617333e-5, rel=1e-6)


def test_arrhenius_ratio_of_two_bakes():
    """AF(T1) / AF(T2) = exp[(E_a / k)(1/T2 - 1/T1)], independent of T_ref."""
    for ea in (0.6, 1.1):
        r = acceleration_factor(398.15, ea, 300.0) / acceleration_factor(358.15, ea, 300.0)
        assert r == pytest.approx(np.exp(ea / K_EV_PER_K * (1 / 358.15 - 1 / 398.15)), rel=1e-12)
        r2 = acceleration_factor(398.15, ea, 250.0) / acceleration_factor(358.15, ea, 250.0)
        assert r2 == pytest.approx(r, rel=1e-12)


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
    t_eq = equivalent_time_s(t, temp, ret, 300.0)
    assert np.allclose(vth_shift(cells, t_eq, 300.0, ret)[intr], hot[intr], rtol=1e-12)


def test_log_time_law_from_end_of_programming():
    cells = RetentionCells(np.array([0.002, 0.004]), np.array([False, False]))
    for tt in (0.0, 1.0, 1e3, 1e8):
        assert np.allclose(vth_shift(cells, tt, 300.0, RET), -cells.a_v * np.log1p(tt / RET.tau0_s))
    # physical time origin: nothing moves at t = 0, a shift far below tau0 is linear in t
    assert np.all(vth_shift(cells, 0.0, 300.0, RET) == 0.0)
    s1 = vth_shift(cells, 1e-3 * RET.tau0_s, 300.0, RET)
    assert np.allclose(s1, -cells.a_v * 1e-3, rtol=1e-3)
    # long times: a decade of time adds a_v ln 10
    d = vth_shift(cells, 1e12, 300.0, RET) - vth_shift(cells, 1e11, 300.0, RET)
    assert np.allclose(d, -cells.a_v * np.log(10.0), rtol=1e-6)


def test_sign_change_at_neutral_vth():
    rng = np.random.default_rng(2)
    vn = RET.vth_neutral_v
    vth = np.concatenate([np.full(5000, vn + 0.5), np.full(5000, vn - 0.5), np.full(10, vn)])
    ret = RET.replace(tail_fraction_fresh=0.0)
    s = vth_shift(draw_retention(rng, vth, ret, CELL), 3.15e8, 358.15, ret)
    assert np.all(s[:5000] < 0)        # above neutral: loses V_th
    assert np.all(s[5000:10000] > 0)   # below neutral: gains V_th
    assert np.all(s[10000:] == 0.0)    # at neutral: does not move
    # the loss is proportional to V_th - V_th,n: mirror cells (same draws) move mirror amounts
    a = draw_retention(np.random.default_rng(5), np.full(100, vn + 0.3), ret, CELL)
    b = draw_retention(np.random.default_rng(5), np.full(100, vn - 0.3), ret, CELL)
    c = draw_retention(np.random.default_rng(5), np.full(100, vn + 0.6), ret, CELL)
    sa, sb, sc = (vth_shift(x, 1e6, 300.0, ret) for x in (a, b, c))
    assert np.allclose(sa, -sb, rtol=1e-12) and np.allclose(sc, 2 * sa, rtol=1e-12)


def test_relaxation_never_crosses_neutral():
    ret = RET.replace(a_v_per_decade_per_v=0.5, tail_fraction_fresh=0.0)
    vth = np.array([2.0, -1.0])
    out = bake(np.random.default_rng(0), vth, 1e30, 400.0, ret, CELL)
    assert np.allclose(out, ret.vth_neutral_v)


def test_mean_shift_and_spread_grow_with_time():
    rng = np.random.default_rng(1)
    vth = np.full(20000, 1.2)
    ret = RET.replace(tail_fraction_fresh=0.0, tail_fraction_per_cycle=0.0)
    cells = draw_retention(rng, vth, ret, CELL)
    shifts = [vth_shift(cells, t, 358.15, ret) for t in (1e3, 1e5, 1e7, 3.15e8)]
    means = [-s.mean() for s in shifts]
    stds = [s.std() for s in shifts]
    assert np.all(np.diff(means) > 0) and np.all(np.diff(stds) > 0)
    # mean matches the law with the log-normal mean of A; spread: sigma of ln A
    a_mean = (ret.a_v_per_decade_per_v / np.log(10) * np.exp(ret.a_sigma_ln**2 / 2)
              * (1.2 - ret.vth_neutral_v))
    af = acceleration_factor(358.15, ret.ea_ev, ret.t_ref_k)
    assert means[-1] == pytest.approx(a_mean * np.log1p(af * 3.15e8 / ret.tau0_s), rel=0.03)
    assert np.std(np.log(-shifts[-1])) == pytest.approx(ret.a_sigma_ln, rel=0.05)


def test_fast_leaking_tail_grows_with_cycles():
    fresh = RET.replace(pe_cycles=0, tail_fraction_fresh=1e-3, tail_fraction_per_cycle=1e-7)
    cycled = fresh.replace(pe_cycles=100000)
    assert tail_fraction(cycled) == pytest.approx(1e-3 + 1e-2)
    rng = np.random.default_rng(3)
    n = 200000
    f0 = draw_retention(rng, np.full(n, 1.0), fresh, CELL).tail.mean()
    f1 = draw_retention(rng, np.full(n, 1.0), cycled, CELL).tail.mean()
    assert f0 == pytest.approx(1e-3, rel=0.2) and f1 == pytest.approx(1.1e-2, rel=0.1)


def test_bake_lowers_vth_above_neutral_and_rejects_bad_input():
    rng = np.random.default_rng(4)
    vth = np.full(100, 1.2)
    assert np.all(bake(rng, vth, 1e6, 358.0, RET, CELL) < vth)
    with pytest.raises(InputError, match="temperature_k"):
        bake(rng, vth, 1e6, -5.0, RET, CELL)
    with pytest.raises(InputError, match="t_s"):
        bake(rng, vth, float("nan"), 300.0, RET, CELL)
    with pytest.raises(InputError, match="vth_programmed"):
        draw_retention(rng, np.array([1.0, np.inf]), RET, CELL)


def test_old_config_with_removed_fields_names_the_change():
    with pytest.raises(ConfigError, match="charge_gain.*vth_neutral_v"):
        SimConfig.from_dict({"device": {"retention": {"charge_gain": 1.0}}})
    with pytest.raises(ConfigError, match="a_v_per_decade.*a_v_per_decade_per_v"):
        SimConfig.from_dict({"device": {"retention": {"a_v_per_decade": 0.005}}})
    with pytest.raises(ConfigError, match="tau0_s"):
        RetentionConfig(tau0_s=0.0).validate()
    with pytest.raises(ConfigError, match="vth_neutral_v"):
        RetentionConfig(vth_neutral_v=50.0).validate()
