"""Retention pinned to its closed form (issue 26): the size of the shift, not only its sign.

    dV_th = -A_cell (V_th - V_th,n) ln(1 + AF(T) t / tau0),  A_cell = (a_dec / ln 10) LN(0, s)

so the median intrinsic cell moves by (a_dec / ln 10)(V_th - V_th,n) ln(1 + AF t / tau0), the
mean by exp(s^2 / 2) times that, and a fast-leaking (tail) cell by tail_a_multiplier times
the same with the tail's own activation energy; the move stops at the neutral V_th.
"""

from __future__ import annotations

import numpy as np
import pytest

from norsim.device.config import DeviceConfig
from norsim.device.retention import K_EV_PER_K, bake, draw_retention, tail_fraction, vth_shift

N = 40_000


def _ret(**kw):
    return DeviceConfig().retention.replace(**kw)


def _closed_form(ret, excess, t_s, temp_k, ea_ev, mult=1.0):
    af = np.exp(ea_ev / K_EV_PER_K * (1.0 / ret.t_ref_k - 1.0 / temp_k))
    return mult * ret.a_v_per_decade_per_v / np.log(10.0) * excess * np.log1p(af * t_s / ret.tau0_s)


@pytest.mark.parametrize("temp_k,t_s", [(300.0, 3.15e8), (358.15, 3.6e3 * 1000), (398.15, 3.6e3)])
def test_intrinsic_shift_median_and_mean_match_the_log_time_law(temp_k, t_s):
    ret = _ret(tail_fraction_fresh=0.0, tail_fraction_per_cycle=0.0)
    vth = np.full(N, ret.vth_neutral_v + 0.8)
    cells = draw_retention(np.random.default_rng(0), vth, ret)
    loss = -vth_shift(cells, t_s, temp_k, ret)
    want = _closed_form(ret, 0.8, t_s, temp_k, ret.ea_ev)
    assert 0 < want < 0.8  # not at the clip
    assert abs(np.median(loss) / want - 1) < 0.01   # sampling error of the median ~0.2 %
    assert abs(np.mean(loss) / (want * np.exp(ret.a_sigma_ln ** 2 / 2)) - 1) < 0.01
    assert abs(np.std(np.log(loss)) - ret.a_sigma_ln) < 0.01


def test_tail_cells_leak_by_the_multiplier_with_their_own_activation_energy():
    ret = _ret(tail_fraction_fresh=0.3, tail_fraction_per_cycle=0.0, pe_cycles=0)
    assert tail_fraction(ret) == pytest.approx(0.3)
    excess, t_s, temp_k = 0.5, 3.6e3 * 10, 358.15
    cells = draw_retention(np.random.default_rng(1), np.full(N, ret.vth_neutral_v + excess), ret)
    assert abs(cells.tail.mean() - 0.3) < 0.01
    loss = -vth_shift(cells, t_s, temp_k, ret)
    tail_want = _closed_form(ret, excess, t_s, temp_k, ret.tail_ea_ev, ret.tail_a_multiplier)
    norm_want = _closed_form(ret, excess, t_s, temp_k, ret.ea_ev)
    assert tail_want < excess
    assert abs(np.median(loss[cells.tail]) / tail_want - 1) < 0.02
    assert abs(np.median(loss[~cells.tail]) / norm_want - 1) < 0.02
    # the tail's magnitude: at 85 C the lower activation energy and the multiplier together
    assert np.median(loss[cells.tail]) / np.median(loss[~cells.tail]) == pytest.approx(
        tail_want / norm_want, rel=0.03)


def test_tail_fraction_grows_linearly_with_cycles_and_saturates():
    ret = _ret(tail_fraction_fresh=1e-4, tail_fraction_per_cycle=2e-7, pe_cycles=5000)
    assert tail_fraction(ret) == pytest.approx(1e-4 + 2e-7 * 5000, rel=1e-12)
    assert tail_fraction(_ret(tail_fraction_fresh=0.5, tail_fraction_per_cycle=1e-3,
                              pe_cycles=10_000)) == 1.0


def test_long_bake_ends_exactly_at_the_neutral_vth_from_both_sides():
    ret = _ret(a_v_per_decade_per_v=0.1)  # fast enough to reach the neutral V_th
    vth = np.array([ret.vth_neutral_v + 1.5, ret.vth_neutral_v - 0.4, ret.vth_neutral_v])
    out = bake(np.random.default_rng(2), vth, 1e30, 400.0, ret)
    assert np.allclose(out, ret.vth_neutral_v, atol=1e-12)
    short = bake(np.random.default_rng(2), vth, 1.0, 300.0, ret)
    assert short[0] < vth[0] and short[1] > vth[1] and short[2] == vth[2]


def test_equivalent_time_moves_intrinsic_cells_as_far_as_the_original_bake():
    from norsim.device.retention import equivalent_time_s

    ret = _ret(tail_fraction_fresh=0.0, tail_fraction_per_cycle=0.0)
    t_hot, hot, cold = 3.6e3 * 24, 398.15, 328.15
    t_cold = equivalent_time_s(t_hot, hot, ret, cold)
    af = lambda t: np.exp(ret.ea_ev / K_EV_PER_K * (1 / ret.t_ref_k - 1 / t))  # noqa: E731
    assert t_cold == pytest.approx(t_hot * af(hot) / af(cold), rel=1e-12)
    assert t_cold > t_hot
    cells = draw_retention(np.random.default_rng(3), np.full(100, 1.5), ret)
    np.testing.assert_allclose(vth_shift(cells, t_cold, cold, ret), vth_shift(cells, t_hot, hot, ret),
                               rtol=1e-9)


@pytest.mark.parametrize("bad", [0.0, -10.0, np.nan])
def test_a_temperature_at_or_below_zero_kelvin_is_refused_by_value(bad):
    from norsim.device.retention import acceleration_factor
    from norsim.errors import InputError

    with pytest.raises(InputError, match="temperature_k"):
        acceleration_factor(np.array([bad]), 1.1, 300.0)
    assert acceleration_factor(np.array([1e-3]), 1.1, 300.0)[0] >= 0.0  # any T > 0 is valid
    # the message names the bad value, not a valid one before it
    with pytest.raises(InputError, match=r"-7\.5"):
        acceleration_factor(np.array([0.5, 300.0, -7.5]), 1.1, 300.0)
