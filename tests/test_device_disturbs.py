"""Read disturb, floating-gate coupling and the disturbs on the mapper's path (issue 20)."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from norsim.config import load_preset
from norsim.device import disturb as dst
from norsim.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def dev():
    return load_preset("nor40").device


# ------------------------------------------------------------------------ read disturb ----
def test_read_disturb_vanishes_at_zero_stress(dev):
    v = np.array([-0.5, 0.3, 1.2, 1.7, 3.0])
    assert np.array_equal(dst.read_disturb(v, 0.0, dev), v)  # no reads
    stress = dev.with_overrides(["read.v_cg_read_v=10.0"])
    fixed = np.array([10.0 + dev.retention.vth_neutral_v])  # floating gate at 0 V
    assert dst.read_dv_per_read(fixed, stress)[0] == 0.0
    assert dst.read_disturb(fixed, 1e12, stress)[0] == fixed[0]
    # the preset's read bias: the oxide field of a weight level is far below FN onset
    assert np.all(dst.read_disturb(np.array([1.15, 1.27, 1.7]), 1e15, dev) == [1.15, 1.27, 1.7])


def test_read_disturb_is_linear_in_reads_with_the_closed_form(dev):
    stress = dev.with_overrides(["read.v_cg_read_v=10.0"])
    v0 = np.array([-0.5])
    per = float(dst.read_dv_per_read(v0, stress)[0])
    # closed form of one read: J = A E^2 exp(-B/E), E = alpha_G (V_cg - V_th + V_n) / t_ox
    d, c = stress.disturb, stress.cell
    e = c.alpha_g * (10.0 + 0.5 + stress.retention.vth_neutral_v) / (d.tunnel_oxide_nm * 1e-9)
    j = d.fn_a_a_per_v2 * e**2 * np.exp(-d.fn_b_v_per_cm * 100 / e)
    closed = j * d.tunnel_area_um2 * 1e-12 * stress.read.t_read_s * stress.programming.dv_per_electron_v / 1.602176634e-19
    assert per > 0 and per == pytest.approx(closed, rel=1e-12)
    for n in (1, 10, 100):
        assert dst.read_disturb(v0, n, stress)[0] - v0[0] == pytest.approx(n * per, rel=1e-3)


def test_read_disturb_matches_an_ode_twin_and_never_crosses_its_fixed_point(dev):
    gain = dev.with_overrides(["read.v_cg_read_v=10.0"])
    loss = dev.with_overrides(["read.v_cg_read_v=-5.0", "disturb.tunnel_oxide_nm=7.0"])
    for stress, v0, n in ((gain, -0.5, 1e6), (loss, 3.0, 1e10)):  # below / above the fixed point
        fixed = stress.read.v_cg_read_v + dev.retention.vth_neutral_v
        ref = solve_ivp(lambda _, y: dst.read_dv_per_read(y, stress), (0.0, n), [v0],
                        method="LSODA", rtol=1e-9, atol=1e-12).y[0, -1]
        got = dst.read_disturb(np.array([v0]), n, stress)[0]
        assert abs(got - v0) > 1e-3
        assert got - v0 == pytest.approx(ref - v0, rel=0.02)
        assert (got - fixed) * (v0 - fixed) >= 0.0  # stays on its side
    with pytest.raises(InputError, match="reads"):
        dst.read_disturb(np.zeros(2), -1.0, dev)


# ---------------------------------------------------------------- floating-gate coupling --
def test_coupling_closed_form_and_twin(dev):
    dv = np.zeros((3, 3))
    dv[1, 2], dv[2, 1] = 1.0, 2.0  # right and lower neighbours of the centre change later
    sh = dst.coupling_shift(dv, dev)
    d = dev.disturb
    assert sh[1, 1] == pytest.approx(d.fg_coupling_wl * 1.0 + d.fg_coupling_bl * 2.0, rel=1e-12)
    assert sh[2, 2] == 0.0 and sh[0, 0] == 0.0  # no later neighbour changed
    rnd = np.random.default_rng(1).normal(size=(6, 9))
    assert np.allclose(dst.coupling_shift(rnd, dev), dst.coupling_shift_loops(rnd, dev),
                       rtol=1e-12, atol=0.0)
    off = dev.with_overrides(["disturb.fg_coupling_wl=0.0", "disturb.fg_coupling_bl=0.0"])
    assert np.all(dst.coupling_shift(rnd, off) == 0.0)


def test_two_pass_order_counts_only_tuning(dev):
    thin = dev.with_overrides(["disturb.tunnel_oxide_nm=4.0"])
    rng = np.random.default_rng(8)
    k = rng.integers(10, 60, (5, 7))
    kt = rng.integers(0, 5, (5, 7))
    two = thin.with_overrides(["disturb.tuning_order='two_pass'"])
    one = thin.with_overrides(["disturb.tuning_order='cell_by_cell'"])
    fast, twin = dst.tuning_disturb(k, two, kt), dst.tuning_disturb_loops(k, two, first=k - kt)
    assert np.max(np.abs(twin)) > 1e-9
    assert np.allclose(fast, twin, rtol=1e-10, atol=1e-18)
    assert np.allclose(dst.tuning_disturb(k, one, kt), dst.tuning_disturb_loops(k, one),
                       rtol=1e-10, atol=1e-18)
    assert np.all(dst.tuning_disturb(k, two, np.zeros_like(k)) == 0.0)  # no tuning pulse
    with pytest.raises(ConfigError, match="tuning_order"):
        dev.with_overrides(["disturb.tuning_order='random'"])


def test_tuning_shift_uses_the_change_after_verify(dev):
    from norsim.device.iv import cell_model
    from norsim.device.levels import target_current
    from norsim.device.programming import program

    m = cell_model(dev.cell, 300.0)
    lv = np.random.default_rng(0).integers(0, 8, (8, 8))
    r = program(np.random.default_rng(1), m, dev, target_current(dev.levels, lv))
    slow = program(np.random.default_rng(1), m, dev, target_current(dev.levels, lv), fast=False)
    assert np.array_equal(r.vth_ispp, slow.vth_ispp) and np.array_equal(r.vth_erased, slow.vth_erased)
    assert np.all(r.vth_ispp[r.tune_pulses == 0] == r.vth[r.tune_pulses == 0])
    nopd = ["disturb.program_disturb=false"]
    for order, start in (("two_pass", r.vth_ispp), ("cell_by_cell", r.vth_erased)):
        d = dev.with_overrides(nopd + [f"disturb.tuning_order='{order}'"])
        assert np.allclose(dst.tuning_shift(r, d), dst.coupling_shift(r.vth - start, d),
                           rtol=0, atol=1e-15)
    # without a tuning pass two-pass degenerates to cell by cell (each ISPP verify is final)
    d = dev.with_overrides(nopd + ["programming.two_way_tuning=false"])
    assert np.allclose(dst.tuning_shift(r, d), dst.coupling_shift(r.vth - r.vth_erased, d),
                       rtol=0, atol=1e-15)
    big = dst.tuning_shift(r, dev.with_overrides(nopd + ["disturb.tuning_order='cell_by_cell'"]))
    small = dst.tuning_shift(r, dev.with_overrides(nopd))
    assert np.max(np.abs(big)) > 10 * np.max(np.abs(small)) > 0  # ~1.7 V vs ~25 mV changes


# ------------------------------------------------------------------------ mapper path -----
def _tile_vth(over, seed=3):
    from norsim.mapping import mapper

    cfg = load_preset("nor40").with_overrides(["array.rows=16", "array.cols=16",
                                               "device.variation.stuck_on_fraction=0.0",
                                               "device.variation.stuck_off_fraction=0.0", *over])
    w = np.random.default_rng(seed).integers(-7, 8, (16, 8))
    return np.array(mapper._program_tile(w, cfg, cfg.rng(5)).array.vth)


def test_mapper_applies_program_disturb_coupling_and_read_disturb():
    off = ["device.disturb.program_disturb=false", "device.disturb.fg_coupling_wl=0.0",
           "device.disturb.fg_coupling_bl=0.0"]
    base = _tile_vth(off)
    thin = ["device.disturb.tunnel_oxide_nm=4.0"]
    pd = _tile_vth(thin + ["device.disturb.fg_coupling_wl=0.0", "device.disturb.fg_coupling_bl=0.0"])
    assert np.max(np.abs(pd - _tile_vth(thin + off))) > 1e-6  # program disturb acts
    assert np.all(pd[-1, -1] == _tile_vth(thin + off)[-1, -1])  # last cell tuned: untouched
    cp = _tile_vth(["device.disturb.program_disturb=false"])
    assert 1e-6 < np.max(np.abs(cp - base)) < 5e-3  # two-pass coupling: sub-mV class
    # a weak barrier (FN slope 1e6 V/cm, tiny pre-factor) makes the read bias tunnel
    weak = off + ["device.disturb.fn_b_v_per_cm=1e6", "device.disturb.fn_a_a_per_v2=1e-20"]
    rd0 = _tile_vth(weak)
    rd = _tile_vth(weak + ["device.disturb.read_count=1e9"])
    assert np.array_equal(rd0, base)  # no reads: the weak barrier changes nothing
    fixed = 1.0 + load_preset("nor40").device.retention.vth_neutral_v
    assert np.max(np.abs(rd - rd0)) > 1e-4
    assert np.all(np.sign(rd - rd0) * np.sign(fixed - rd0) >= 0)  # towards V_cg + V_th,neutral
