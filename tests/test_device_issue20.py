"""Issue 20 (nor40 anchored to silicon, 2 of 2): operating region, recalibrated RTN,
per-cell temperature response, wear. Closed forms and limits only."""

import numpy as np
import pytest

from norsim.config import load_preset
from norsim.config.sim import SimConfig
from norsim.device.config import DeviceConfig, NoiseConfig
from norsim.device.iv import params_at_temperature
from norsim.device.levels import inversion_coefficient, level_currents, operating_region
from norsim.device.noise import (advance_rtn, draw_rtn_traps, rtn_at_temperature,
                                 rtn_time_factor)
from norsim.device.retention import K_EV_PER_K
from norsim.errors import ConfigError

NOISE = NoiseConfig()


# ------------------------------------------------------------------ operating region -----
def test_old_config_with_operating_region_fails_naming_the_change():
    with pytest.raises(ConfigError, match="operating_region.*removed in issue 20"):
        DeviceConfig.from_dict({"operating_region": "subthreshold"}, "device.")
    text = load_preset("nor40").to_toml().replace("[device.cell]",
                                                  "[device]\noperating_region = \"subthreshold\"\n\n[device.cell]", 1)
    with pytest.raises(ConfigError, match="removed in issue 20"):
        SimConfig.from_toml(text)


def test_operating_region_follows_inversion_coefficient_of_top_level():
    dev = load_preset("nor40").device
    i_spec = params_at_temperature(dev.cell, dev.read.temperature_k).i_spec
    ic = inversion_coefficient(dev)
    assert ic == pytest.approx(level_currents(dev.levels)[-1] / i_spec, rel=1e-12)
    assert ic < 0.1 and operating_region(dev) == dev.operating_region == "subthreshold"
    top = (dev.levels.levels_per_cell - 1)
    for ic_goal, region in ((0.05, "subthreshold"), (1.0, "moderate_inversion"),
                            (50.0, "strong_inversion")):
        d = dev.with_overrides([f"levels.i_unit_a={ic_goal * i_spec / top!r}",
                                "levels.i_off_a=1e-15"])
        assert operating_region(d) == region


# ------------------------------------------------------------------------------- RTN -----
def test_rtn_arrhenius_ratio_exact():
    for ea in (0.0, 0.4, 0.9):
        for t in (233.15, 300.0, 358.15):
            assert rtn_time_factor(t, ea, 300.0) == pytest.approx(
                np.exp(ea / K_EV_PER_K * (1 / t - 1 / 300.0)), rel=1e-14)
    # drawn at 358 K vs at the reference: the same traps, times scaled exactly
    cold = draw_rtn_traps(np.random.default_rng(3), (50,), NOISE)
    hot = draw_rtn_traps(np.random.default_rng(3), (50,), NOISE, 358.15)
    fc = rtn_time_factor(358.15, NOISE.rtn_ea_capture_ev, NOISE.rtn_t_ref_k)
    fe = rtn_time_factor(358.15, NOISE.rtn_ea_emission_ev, NOISE.rtn_t_ref_k)
    assert np.allclose(hot.tau_c_s / cold.tau_c_s, fc, rtol=1e-14)
    assert np.allclose(hot.tau_e_s / cold.tau_e_s, fe, rtol=1e-14)
    assert np.array_equal(hot.unit_amp, cold.unit_amp)
    moved = rtn_at_temperature(cold, NOISE, NOISE.rtn_t_ref_k, 358.15)
    assert np.allclose(moved.tau_c_s, hot.tau_c_s, rtol=1e-14)


@pytest.mark.parametrize("temperature_k", [233.15, 300.0, 358.15])
def test_rtn_occupancy_is_two_state_markov_stationary_distribution(temperature_k):
    rng = np.random.default_rng(11)
    n = 20000
    traps = draw_rtn_traps(rng, (n,), NOISE.replace(rtn_traps_per_cell=1,
                                                    rtn_trap_probability=1.0))
    traps = traps.__class__(traps.unit_amp, np.full((n, 1), 1e-3), np.full((n, 1), 3e-3),
                            np.zeros((n, 1), bool))  # all empty: far from equilibrium
    traps = rtn_at_temperature(traps, NOISE, NOISE.rtn_t_ref_k, temperature_k)
    tc, te = float(traps.tau_c_s[0, 0]), float(traps.tau_e_s[0, 0])
    p = te / (tc + te)  # stationary distribution of the two-state chain
    tau = tc * te / (tc + te)
    traps = advance_rtn(traps, rng, 20 * tau)  # relaxed (exp(-20))
    occ = []
    for _ in range(20):
        traps = advance_rtn(traps, rng, 2 * tau)
        occ.append(traps.occupied.mean())
    sem = np.sqrt(p * (1 - p) / n / 20)  # steps 2 tau apart: nearly independent
    assert abs(np.mean(occ) - p) < 5 * sem + 1e-3
    # and the one-step transition probability from an empty trap: p (1 - exp(-dt/tau))
    empty = traps.__class__(traps.unit_amp, traps.tau_c_s, traps.tau_e_s,
                            np.zeros((n, 1), bool))
    step = advance_rtn(empty, rng, 0.5 * tau).occupied.mean()
    q = p * (1 - np.exp(-0.5))
    assert abs(step - q) < 5 * np.sqrt(q * (1 - q) / n)


def test_rtn_occupancy_moves_with_temperature_by_the_activation_energies():
    # E_e > E_c: emission slows faster than capture when cooling -> fuller traps when cold
    cold = rtn_time_factor(233.15, 0.5, 300.0) / rtn_time_factor(233.15, 0.4, 300.0)
    hot = rtn_time_factor(358.15, 0.5, 300.0) / rtn_time_factor(358.15, 0.4, 300.0)
    assert cold > 1 > hot
    n = NOISE.replace(rtn_ea_capture_ev=0.4, rtn_ea_emission_ev=0.4)  # equal: occupancy fixed
    t0 = draw_rtn_traps(np.random.default_rng(1), (100,), n)
    t1 = draw_rtn_traps(np.random.default_rng(1), (100,), n, 233.15)
    assert np.allclose(t0.p_occupied, t1.p_occupied, rtol=1e-12)


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_rtn_trap_occurrence_is_binomial(p):
    noise = NOISE.replace(rtn_trap_probability=p, rtn_traps_per_cell=2)
    n = 40000
    traps = draw_rtn_traps(np.random.default_rng(5), (n,), noise)
    with_trap = np.mean(np.any(traps.unit_amp > 0, axis=-1))
    expect = 1 - (1 - p) ** 2
    assert abs(with_trap - expect) <= 5 * np.sqrt(expect * (1 - expect) / n) + 1e-12
    active = traps.unit_amp[traps.unit_amp > 0]
    if active.size:  # the active amplitudes stay exponential(1)
        assert np.mean(active) == pytest.approx(1.0, abs=5 / np.sqrt(active.size))


def test_rtn_draw_keeps_stream_of_time_constants_and_states():
    a = draw_rtn_traps(np.random.default_rng(9), (64,), NOISE.replace(rtn_trap_probability=1.0))
    b = draw_rtn_traps(np.random.default_rng(9), (64,), NOISE.replace(rtn_trap_probability=0.5))
    assert np.array_equal(a.tau_c_s, b.tau_c_s) and np.array_equal(a.occupied, b.occupied)
    assert np.all((b.unit_amp == 0) | (b.unit_amp == a.unit_amp))


# ----------------------------------------------------------------------- temperature -----
def test_n_of_t_linear_and_exact_at_reference():
    cell = load_preset("nor40").device.cell
    assert params_at_temperature(cell, cell.t_ref_k).n == cell.slope_factor_n
    for t in (233.15, 358.15):
        assert params_at_temperature(cell, t).n == pytest.approx(
            cell.slope_factor_n * (1 + cell.n_tempco_per_k * (t - cell.t_ref_k)), rel=1e-14)


def test_per_cell_dvth_dt_equals_a_vth_shift_in_subthreshold():
    from norsim.device.iv import cell_model
    from norsim.device.levels import read_current
    from norsim.device.variation import draw_variation

    dev = load_preset("nor40").device
    var_cfg = dev.variation.replace(dvth_dt_sigma_v_per_k=2e-4, stuck_on_fraction=0.0,
                                    stuck_off_fraction=0.0)
    var = draw_variation(np.random.default_rng(2), (400,), var_cfg, dev.cell)
    vth = np.full(400, 1.5)  # ~1 nA: weak inversion
    for t in (233.15, 358.15):
        m = cell_model(dev.cell, t)
        kw = var.iv_kwargs(m)
        shifted = dict(kw, beta=m.fg.beta * var.beta_factor)  # spread as an explicit V_th shift
        i_beta = read_current(m, dev, vth, **kw)
        i_shift = read_current(m, dev, vth + var.dvth_dt_v_per_k * (t - dev.cell.t_ref_k), **shifted)
        assert np.allclose(i_beta, i_shift, rtol=2e-3)
    # at the reference temperature the spread vanishes
    m0 = cell_model(dev.cell, dev.cell.t_ref_k)
    kw0 = var.iv_kwargs(m0)
    assert np.array_equal(kw0["beta"], m0.fg.beta * var.beta_factor)
    assert np.array_equal(kw0["n"], var.n)


def test_dvth_dt_spread_keeps_the_other_draws():
    from norsim.device.variation import draw_variation

    dev = load_preset("nor40").device
    a = draw_variation(np.random.default_rng(4), (30, 20), dev.variation.replace(dvth_dt_sigma_v_per_k=0.0), dev.cell)
    b = draw_variation(np.random.default_rng(4), (30, 20), dev.variation, dev.cell)
    assert a.dvth_dt_v_per_k is None and b.dvth_dt_v_per_k.shape == (30, 20)
    for f in ("vth_offset_v", "n", "beta_factor", "dibl_eta", "stuck"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    assert np.std(b.dvth_dt_v_per_k) == pytest.approx(dev.variation.dvth_dt_sigma_v_per_k, rel=0.15)
    sub = b.take((slice(0, 5), slice(0, 4)))
    assert sub.dvth_dt_v_per_k.shape == (5, 4) and sub.t_ref_k == b.t_ref_k


# ---------------------------------------------------------------------------- budget -----
def test_budget_lists_issue20_effects_and_keeps_the_spread_only_in_its_row():
    from norsim.experiments import budget as bud

    full = load_preset().with_overrides({"device.read.temperature_k": 358.15})
    assert "temperature_spread" in bud.EFFECTS and "rtn" in bud.EFFECTS
    sp = bud.effect_config(full, "temperature_spread")
    assert sp.device.variation.dvth_dt_sigma_v_per_k == full.device.variation.dvth_dt_sigma_v_per_k > 0
    assert sp.device.variation.vth_sigma_v == 0 and sp.device.read.temperature_k == 358.15
    t = bud.effect_config(full, "temperature")
    assert t.device.variation.dvth_dt_sigma_v_per_k == 0


# ------------------------------------------------------------------------------ wear -----
def test_wear_vanishes_fresh_and_follows_its_closed_forms():
    from norsim.device.iv import cell_model
    from norsim.device.noise import rtn_mean_amplitude, rtn_wear_factor
    from norsim.device.programming import _law, wear_drive_loss_v

    dev = load_preset("nor40").device
    m = cell_model(dev.cell, 300.0)
    fresh = dev.with_overrides(["retention.pe_cycles=0"])
    law0 = _law(fresh, m)
    assert wear_drive_loss_v(fresh) == 0.0 and rtn_wear_factor(fresh.noise, 0) == 1.0
    assert law0.v0 == fresh.programming.inj_offset_v and law0.rtn_mean == fresh.noise.rtn_mean_v
    worn = dev.with_overrides(["retention.pe_cycles=50000"])
    law1 = _law(worn, m)
    assert law1.v0 - law0.v0 == pytest.approx(0.5 * dev.programming.wear_drive_loss_v, rel=1e-12)
    assert law1.rtn_mean / law0.rtn_mean == pytest.approx(1 + 0.5 * dev.noise.rtn_wear_gain, rel=1e-12)
    v = np.array([0.0, 1.2])
    assert np.allclose(rtn_mean_amplitude(v, dev.noise, dev.cell, 50000),
                       rtn_mean_amplitude(v, dev.noise, dev.cell) * (1 + 0.5 * dev.noise.rtn_wear_gain))


def test_wear_slows_ispp():
    from norsim.device.iv import cell_model
    from norsim.device.levels import target_current
    from norsim.device.programming import program

    dev = load_preset("nor40").device.with_overrides(["programming.two_way_tuning=false"])
    m = cell_model(dev.cell, 300.0)
    i_t = target_current(dev.levels, np.full(200, 3))
    p = [program(np.random.default_rng(0), m, dev.with_overrides([f"retention.pe_cycles={c}"]),
                 i_t).pulses.mean() for c in (0, 100000)]
    # a drive loss dV shifts the ISPP staircase by about dV / step pulses
    assert p[1] > p[0]
    assert p[1] - p[0] == pytest.approx(dev.programming.wear_drive_loss_v / dev.programming.ispp_step_v, abs=1.0)


def test_budget_wear_row_restores_cycles_others_fresh():
    from norsim.experiments import budget as bud

    full = load_preset()
    assert bud.effect_config(full, "wear").device.retention.pe_cycles == full.device.retention.pe_cycles > 0
    assert bud.effect_config(full, "program_placement").device.retention.pe_cycles == 0


# --------------------------------------------------------------------------- disturb -----
def test_disturb_vanishes_at_zero_inhibit_stress_and_follows_fowler_nordheim():
    from norsim.device.disturb import dv_per_pulse, wl_stress_ox_v
    from norsim.device.iv import ELEMENTARY_CHARGE_C

    dev = load_preset("nor40").device
    d, p = dev.disturb, dev.programming
    assert dv_per_pulse(wl_stress_ox_v(d.bl_inhibit_v, dev), dev) == 0.0  # V_pgm = inhibit
    assert dv_per_pulse(-1.0, dev) == 0.0
    v_ox = 8.0
    e = v_ox / (d.tunnel_oxide_nm * 1e-9)
    j = d.fn_a_a_per_v2 * e**2 * np.exp(-d.fn_b_v_per_cm * 100 / e)
    cf = j * d.tunnel_area_um2 * 1e-12 * p.pulse_width_s * p.dv_per_electron_v / ELEMENTARY_CHARGE_C
    assert dv_per_pulse(v_ox, dev) == pytest.approx(cf, rel=1e-12)
    v = np.linspace(0.5, 12, 20)
    assert np.all(np.diff(dv_per_pulse(v, dev)) > 0)


def test_tuning_disturb_matches_pulse_by_pulse_twin():
    from norsim.device.disturb import tuning_disturb, tuning_disturb_loops

    # a thin oxide so the disturb is large enough to compare
    dev = load_preset("nor40").device.with_overrides(["disturb.tunnel_oxide_nm=4.0"])
    k = np.random.default_rng(8).integers(0, 60, (5, 7))
    fast, twin = tuning_disturb(k, dev), tuning_disturb_loops(k, dev)
    assert np.max(np.abs(twin)) > 1e-6
    assert np.allclose(fast, twin, rtol=1e-10, atol=1e-18)
    assert np.all(fast[-1, -1] == 0.0)  # the last cell tuned sees nothing after its verify
    zero = dev.with_overrides(["disturb.bl_stress_v=0.0", "disturb.bl_inhibit_v=30.0"])
    assert np.all(tuning_disturb(k, zero) == 0.0)  # no stress, no disturb
