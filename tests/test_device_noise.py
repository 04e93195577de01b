"""Read noise, RTN, device-to-device variation, stuck cells and measured-map import."""

import numpy as np
import pytest

from norsim.device.config import CellConfig, NoiseConfig, VariationConfig
from norsim.device.iv import BOLTZMANN_J_PER_K, ELEMENTARY_CHARGE_C, cell_model
from norsim.device.measured import MeasurementConditions, load_measured_map, vth_from_map
from norsim.device.noise import (advance_rtn, bandwidth_hz, draw_rtn_traps, read_noise_sigma_a,
                                 rtn_dvth, rtn_mean_amplitude, sample_rtn_read)
from norsim.device.variation import STUCK_OFF, STUCK_ON, draw_variation, normal_field
from norsim.errors import ConfigError, FileFormatError, InputError

CELL = CellConfig()
NOISE = NoiseConfig()
MODEL = cell_model(CELL, 300.0)


def test_shot_noise_limit_in_weak_inversion():
    noise = NOISE.replace(flicker_kf=0.0)
    i = np.array([1e-11, 1e-9, 1e-8])
    t = 1e-7
    sigma = read_noise_sigma_a(i, MODEL, noise, 300.0, t)
    shot = np.sqrt(2 * ELEMENTARY_CHARGE_C * i * bandwidth_hz(t))
    assert np.allclose(sigma, shot, rtol=0.02)  # IC <= 0.01: shot noise dominates
    assert bandwidth_hz(t) == pytest.approx(5e6)


def test_thermal_noise_limit_in_strong_inversion():
    noise = NOISE.replace(flicker_kf=0.0)
    i_s = MODEL.fg.i_spec
    i = np.array([1e4 * i_s])
    sigma = read_noise_sigma_a(i, MODEL, noise, 300.0, 1e-7)
    ic = i / i_s
    g_m = i / (MODEL.fg.n * MODEL.fg.u_t) * 2 / (1 + np.sqrt(1 + 4 * ic))
    thermal = np.sqrt(4 * BOLTZMANN_J_PER_K * 300.0 * noise.thermal_gamma * g_m * 5e6)
    assert sigma == pytest.approx(thermal, rel=0.01)


def test_flicker_noise_closed_form_and_longer_read_is_quieter():
    noise = NOISE.replace(shot_thermal=False, flicker_kf=1e-8, flicker_f_low_hz=1.0)
    s = read_noise_sigma_a(np.array([1e-8]), MODEL, noise, 300.0, 1e-7)
    assert s == pytest.approx(np.sqrt(1e-8 * 1e-16 * np.log(5e6)), rel=1e-12)
    white = NOISE.replace(flicker_kf=0.0)
    assert read_noise_sigma_a(1e-8, MODEL, white, 300.0, 1e-6) < read_noise_sigma_a(1e-8, MODEL, white, 300.0, 1e-7)


def test_rtn_occupancy_amplitude_and_level_dependence():
    rng = np.random.default_rng(0)
    traps = draw_rtn_traps(rng, (50000,), NOISE)
    assert traps.unit_amp.shape == (50000, NOISE.rtn_traps_per_cell)
    assert traps.occupied.mean() == pytest.approx(traps.p_occupied.mean(), abs=0.01)
    # exponential, unit mean on active sites (a fraction rtn_trap_probability of them)
    assert traps.unit_amp.mean() == pytest.approx(NOISE.rtn_trap_probability, rel=0.02)
    assert traps.unit_amp[traps.unit_amp > 0].mean() == pytest.approx(1.0, rel=0.02)
    lt, lo, hi = np.log(traps.tau_c_s), np.log(NOISE.rtn_tau_min_s), np.log(NOISE.rtn_tau_max_s)
    assert lt.min() >= lo and lt.max() <= hi and lt.mean() == pytest.approx((lo + hi) / 2, rel=0.02)
    m = rtn_mean_amplitude(np.array([CELL.vth_erased_v, CELL.vth_max_v]), NOISE, CELL)
    assert m[0] == pytest.approx(NOISE.rtn_mean_v)
    assert m[1] == pytest.approx(NOISE.rtn_mean_v * (1 + NOISE.rtn_level_gain))
    low = rtn_dvth(traps, np.full(50000, 0.0), NOISE, CELL)
    high = rtn_dvth(traps, np.full(50000, 2.5), NOISE, CELL)
    assert high.mean() > low.mean() > 0


def test_rtn_markov_step_keeps_equilibrium_and_frozen_short_steps():
    rng = np.random.default_rng(1)
    traps = draw_rtn_traps(rng, (40000,), NOISE)
    short = advance_rtn(traps, rng, 1e-12)  # far shorter than every trap time: frozen
    assert np.mean(short.occupied == traps.occupied) > 0.999
    later = advance_rtn(traps, rng, 1e9)    # far longer: fresh equilibrium draw
    assert later.occupied.mean() == pytest.approx(traps.p_occupied.mean(), abs=0.01)


def test_sample_rtn_read_per_cell():
    rng = np.random.default_rng(2)
    vth = np.full((64, 32), 1.2)
    d = sample_rtn_read(rng, vth, NOISE, CELL)
    assert d.shape == vth.shape and np.all(d >= 0)
    traps = draw_rtn_traps(rng, vth.shape, NOISE)
    d2 = sample_rtn_read(rng, vth, NOISE, CELL, traps)
    bound = rtn_mean_amplitude(vth, NOISE, CELL) * traps.unit_amp.sum(-1)
    assert np.all(d2 <= bound + 1e-15)
    with pytest.raises(InputError, match="traps"):
        sample_rtn_read(rng, np.ones(5), NOISE, CELL, traps)


def test_variation_statistics_and_stuck_cells():
    var = VariationConfig(stuck_on_fraction=0.01, stuck_off_fraction=0.02)
    v = draw_variation(np.random.default_rng(3), (400, 500), var, CELL)
    assert v.vth_offset_v.std() == pytest.approx(var.vth_sigma_v, rel=0.02)
    assert (v.n / CELL.slope_factor_n - 1).std() == pytest.approx(var.n_sigma_rel, rel=0.03)
    assert np.log(v.beta_factor).std() == pytest.approx(var.beta_sigma_rel, rel=0.02)
    assert (v.dibl_eta / CELL.dibl_eta - 1).std() == pytest.approx(var.dibl_sigma_rel, rel=0.03)
    assert np.mean(v.stuck == STUCK_ON) == pytest.approx(0.01, rel=0.1)
    assert np.mean(v.stuck == STUCK_OFF) == pytest.approx(0.02, rel=0.1)


def test_spatially_correlated_field():
    rng = np.random.default_rng(4)
    white = normal_field(rng, (256, 256), 0.0, 0.5)
    corr = normal_field(rng, (256, 256), 8.0, 1.0)
    assert corr.std() == pytest.approx(1.0, rel=0.15)
    def neighbour_corr(z):
        return np.corrcoef(z[:, :-1].ravel(), z[:, 1:].ravel())[0, 1]
    assert abs(neighbour_corr(white)) < 0.02
    # Gaussian kernel of sigma L: neighbour correlation exp(-1 / (4 L^2))
    assert neighbour_corr(corr) == pytest.approx(np.exp(-1 / (4 * 64.0)), abs=0.01)
    half = normal_field(rng, (256, 256), 8.0, 0.5)
    assert neighbour_corr(half) == pytest.approx(0.5, abs=0.05)


# ------------------------------------------------------------------ measured maps ---------
def test_measured_current_map_round_trip(tmp_path):
    """Currents measured at 358 K and V_D = 0.2 V invert back to the V_th that made them."""
    rng = np.random.default_rng(5)
    vth = rng.uniform(0.9, 1.7, (6, 7))
    cond = MeasurementConditions(v_wl=1.8, v_cg=1.0, v_d=0.2, v_s=0.0, temperature_k=358.0)
    hot = cell_model(CELL, 358.0)
    i = hot.current(cond.v_wl, cond.v_cg, cond.v_d, cond.v_s, vth)
    np.savetxt(tmp_path / "map.csv", i, delimiter=",", header="read current (A)")
    np.save(tmp_path / "map.npy", i)
    for name in ("map.csv", "map.npy"):
        back = load_measured_map(tmp_path / name, "current", CELL, cond, shape=(6, 7))
        assert np.max(np.abs(back - vth)) < 1e-6


def test_measured_vth_map_shifted_to_reference_temperature(tmp_path):
    vth = np.full((3, 3), 1.0)
    cond = MeasurementConditions(1.8, 1.0, 0.3, 0.0, temperature_k=350.0)
    out = vth_from_map(vth, "vth", CELL, cond)
    assert np.allclose(out, 1.0 - CELL.dvth_dt_v_per_k * 50.0)


def test_bad_maps_are_rejected(tmp_path):
    cond = MeasurementConditions(1.8, 1.0, 0.3, 0.0, 300.0)
    with pytest.raises(FileFormatError, match="not a readable file"):
        load_measured_map(tmp_path / "missing.csv", "vth", CELL)
    (tmp_path / "junk.csv").write_text("1,2,x\n3,4,5\n")
    with pytest.raises(FileFormatError, match="unreadable"):
        load_measured_map(tmp_path / "junk.csv", "vth", CELL)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(FileFormatError):
        load_measured_map(tmp_path / "junk.npy", "vth", CELL)
    with pytest.raises(InputError, match="shape"):
        vth_from_map(np.ones((2, 3)), "vth", CELL, shape=(3, 2))
    with pytest.raises(InputError, match="2-D"):
        vth_from_map(np.ones(4), "vth", CELL)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        vth_from_map(np.array([[1.0, np.nan]]), "vth", CELL)
    with pytest.raises(InputError, match="current > 0"):
        vth_from_map(np.array([[1e-8, -1e-9]]), "current", CELL, cond)
    with pytest.raises(InputError, match="V_th in"):
        vth_from_map(np.array([[1.0, 40.0]]), "vth", CELL)
    with pytest.raises(InputError, match="conditions"):
        vth_from_map(np.array([[1e-8]]), "current", CELL)
    with pytest.raises(InputError, match="temperature_k"):
        vth_from_map(np.array([[1e-8]]), "current", CELL,
                     MeasurementConditions(1.8, 1.0, 0.3, 0.0, -4.0))


def test_noise_config_rejects_inverted_tau_range():
    with pytest.raises(ConfigError, match="rtn_tau_max_s"):
        NoiseConfig(rtn_tau_min_s=1.0, rtn_tau_max_s=0.1).validate()
