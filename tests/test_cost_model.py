"""Cost model: closed forms of each component, per-image normalisation, definitions."""

import math

import numpy as np
import pytest

from norsim.config.presets import load_preset
from norsim.cost import model as cm
from norsim.cost import technology as tech_mod
from norsim.cost.config import CostConfig, TechConfig
from norsim.errors import ConfigError, InputError

QUIET = {"mapping.programming": "ideal", "array.noise.shot_enabled": False,
         "array.noise.rtn_enabled": False, "array.noise.ktc_enabled": False,
         "array.adc.noise_lsb": 0.0, "array.rows": 64, "array.cols": 64}


@pytest.fixture(scope="module")
def lenet():
    from norsim.mapping.random_models import random_lenet

    return random_lenet(np.random.default_rng(3))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(5)
    return rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)


def _run(model, cfg, x_cal, x):
    from norsim.mapping import engine, mapper

    chip = mapper.map_model(model, cfg)
    engine.calibrate(chip, x_cal)
    engine.run(chip, x)
    return chip


# ------------------------------------------------------------------ formulas ----
@pytest.mark.parametrize("bits,pj", [(4, 0.13), (5, 0.17), (6, 0.21), (8, 0.31)])
def test_sar_energy_matches_neurosim_45nm_table(bits, pj):
    # research notes 5.1: NeuroSim SarADC 45 nm, E = (a log2 L + b) uW x (log2 L + 1) ns
    assert tech_mod.adc_energy_j(bits, TechConfig(), "sar_neurosim") == pytest.approx(pj * 1e-12, rel=0.04)


def test_walden_energy_doubles_per_bit():
    t = TechConfig()
    e6, e7 = (tech_mod.adc_energy_j(b, t, "walden") for b in (6, 7))
    assert e6 == pytest.approx(5e-15 * 64)
    assert e7 == pytest.approx(2 * e6)
    with pytest.raises(ConfigError):
        tech_mod.adc_energy_j(6, t, "flash")


def test_elmore_delay_brute_force():
    rs, r, c, n = 300.0, 7.0, 2e-16, 50
    # brute force: delay at the far end = sum over capacitors of (resistance upstream) x C
    brute = sum((rs + r * k) * c for k in range(1, n + 1))
    assert tech_mod.elmore_tau_s(rs, r, c, n) == pytest.approx(brute, rel=1e-12)
    assert tech_mod.elmore_tau_s(rs, r, c, 1) == pytest.approx((rs + r) * c)


def _tile(**kw):
    base = dict(rows=128, cols=64, rows_used=100, phys_cols=60, n_out=30, conversions_per_cycle=60,
                adc_bits=6, columns_per_adc=8, cycles_per_multiply=4, in_bits=4, multiplies=10,
                read_cycles=40, wl_pulses=1500, wl_toggles=2200, bitline_charge_c=3e-12,
                adc_conversions={6: 2400}, shift_add_ops={10: 900, 14: 300}, buffer_bits=9000)
    base.update(kw)
    return cm.TileActivity(**base)


def _el(**kw):
    base = dict(v_bl_v=0.3, v_sl_v=0.2, v_wl_swing_v=1.8, t_read_s=1e-7, r_bl_segment_ohm=1.0,
                r_bl_source_ohm=210.0, integrator_cap_f=2e-12)
    base.update(kw)
    return cm.Electrical(**base)


def test_tile_energy_components_closed_form():
    t, el, tech = _tile(), _el(), TechConfig()
    e = cm._tile_energy(t, el, tech, "walden")
    seg = tech.c_wire_f_per_m * tech.cell_pitch_m
    assert e["cell_read"] == pytest.approx(1.1 * 3e-12)
    assert e["bitline"] == pytest.approx(40 * 60 * 128 * (seg + 1e-16) * 0.3 * 1.1)
    assert e["sourceline"] == pytest.approx(10 * 50 * 64 * (seg + 2e-16) * 0.2 ** 2)
    assert e["wordline"] == pytest.approx(1100 * 64 * (seg + 1.5e-16) * 1.8 ** 2)
    assert e["wl_driver"] == pytest.approx(1500 * 10e-15)
    assert e["sense"] == pytest.approx(2400 * 20e-15)
    assert e["adc"] == pytest.approx(2400 * 5e-15 * 64)
    assert e["shift_add"] == pytest.approx((900 * 10 + 300 * 14) * 3.5e-15)
    assert e["buffer"] == pytest.approx(9000 * 0.16e-12)


def test_tile_timing_overlap_and_serial():
    t, el = _tile(), _el()
    over = TechConfig()
    serial = over.replace(adc_overlap=False)
    ii_o, lat_o = cm.tile_timing(t, el, over)
    ii_s, lat_s = cm.tile_timing(t, el, serial)
    t_conv = math.ceil(60 / math.ceil(60 / 8)) * 7e-9
    seg_wl = over.c_wire_f_per_m * over.cell_pitch_m + over.c_gate_f
    seg_bl = over.c_wire_f_per_m * over.cell_pitch_m + over.c_drain_f
    tau = (tech_mod.elmore_tau_s(1000.0, 5.0, seg_wl, 64) + tech_mod.elmore_tau_s(210.0, 1.0, seg_bl, 128))
    t_phase = 7 * math.log(2) * tau + 1e-7
    assert ii_o == pytest.approx(4 * max(t_phase, t_conv))
    assert lat_o == pytest.approx(ii_o + min(t_phase, t_conv) + 5e-9)
    assert ii_s == pytest.approx(4 * (t_phase + t_conv))
    assert lat_s == pytest.approx(ii_s + 5e-9)


def test_node_presets_and_overrides():
    c = CostConfig()
    assert tech_mod.effective_tech(c) == TechConfig()
    t55 = tech_mod.effective_tech(c.replace(node="55nm"))
    assert t55.v_dd_v == 1.2 and t55.cell_area_um2 == 0.33
    # digital energies scale with C V^2: (55/40) (1.2/1.1)^2
    assert t55.e_buffer_per_bit_j == pytest.approx(0.16e-12 * 55 / 40 * (1.2 / 1.1) ** 2)
    # a changed tech field survives the node choice
    c28 = c.replace(node="28nm", tech=TechConfig().replace(e_sense_j=1e-15))
    t28 = tech_mod.effective_tech(c28)
    assert t28.e_sense_j == 1e-15 and t28.v_dd_v == 0.9
    # 28 nm SAR energy lies between NeuroSim's 22 nm and 45 nm sets
    e = tech_mod.adc_energy_j(6, t28, "sar_neurosim")
    assert 0.053e-12 < e < 0.21e-12


# ------------------------------------------------------------------ from a real run ----
def test_calibration_events_reset_and_per_image_normalisation(lenet, images):
    cfg = load_preset("nor40").with_overrides(QUIET)
    from norsim.mapping import engine, mapper

    chip = mapper.map_model(lenet, cfg)
    engine.calibrate(chip, images[:4])
    assert all(t.array.events.multiplies == 0 for t in chip.tiles())
    engine.run(chip, images[4:6])
    r2 = cm.estimate(cm.collect(chip, 2), cfg.cost)
    # the same two images twice: every per-image number is unchanged
    chip4 = _run(lenet, cfg, images[:4], np.concatenate([images[4:6], images[4:6]]))
    r4 = cm.estimate(cm.collect(chip4, 4), cfg.cost)
    for c in cm.COMPONENTS:
        assert r4.energy_by_component_j[c] == pytest.approx(r2.energy_by_component_j[c], rel=1e-6)
    assert r4.latency_single_s == pytest.approx(r2.latency_single_s)
    # counting images that were not run is refused
    with pytest.raises(InputError):
        cm.collect(chip, 3)


def test_macs_latency_and_efficiency_definitions(lenet, images):
    cfg = load_preset("nor40").with_overrides(QUIET)
    chip = _run(lenet, cfg, images[:4], images[4:5])
    rep = cm.estimate(cm.collect(chip, 1), cfg.cost)
    macs = {lc.name: lc.macs_per_image for lc in rep.layers}
    # LeNet-5 by hand: conv1 28x28x6 outputs of 5x5x1, conv2 10x10x16 of 5x5x6, fc 400-120-84-10
    assert macs == {"conv1": 28 * 28 * 6 * 25, "conv2": 10 * 10 * 16 * 150, "fc1": 400 * 120,
                    "fc2": 120 * 84, "fc3": 84 * 10}
    assert rep.tops_per_w == pytest.approx(2 * sum(macs.values()) / rep.energy_per_image_j / 1e12)
    assert rep.latency_single_s == pytest.approx(sum(lc.latency_s for lc in rep.layers))
    assert rep.fps_pipelined == pytest.approx(1 / max(lc.latency_s for lc in rep.layers))
    assert rep.power_w == pytest.approx(rep.energy_per_image_j * rep.fps_pipelined)
    # cell energy is V_dd x the bit-line charge the tiles counted
    q = sum(t.array.events.bitline_charge_c.sum() for t in chip.tiles())
    assert rep.energy_by_component_j["cell_read"] == pytest.approx(1.1 * q)
    # a component's parameter scales that component only
    cost2 = cfg.cost.replace(tech=cfg.cost.tech.replace(e_buffer_per_bit_j=0.32e-12))
    rep2 = cm.estimate(cm.collect(chip, 1), cost2)
    assert rep2.energy_by_component_j["buffer"] == pytest.approx(2 * rep.energy_by_component_j["buffer"])
    assert rep2.energy_by_component_j["adc"] == rep.energy_by_component_j["adc"]


def test_bitline_charge_against_currents():
    """The charge the cost model prices: sum over cycles of the driven rows' (I_on - I_off)
    plus every row's I_off, times t_read (unselected rows leak)."""
    from norsim.array.nor_array import NorArray

    cfg = load_preset("nor40").with_overrides({**QUIET, "array.adc.range_mode": "physical"})
    rng = np.random.default_rng(0)
    w = rng.integers(-7, 8, size=(40, 12))
    arr = NorArray.from_weights(w, cfg, rng)
    x = rng.integers(0, 16, size=(5, 40))
    arr.matmul(x, rng)
    bits = np.stack([(x >> k) & 1 for k in range(4)], 1).reshape(-1, 40)  # (B*4, rows)
    expect = (bits @ (arr.i_on - arr.i_off)).sum(axis=0) + bits.shape[0] * arr.i_off.sum(axis=0)
    np.testing.assert_allclose(arr.events.bitline_charge_c, expect * arr.t_read_s, rtol=1e-5)


def test_digital_layer_costs_digital_macs(lenet, images):
    cfg = load_preset("nor40").with_overrides({**QUIET, "mapping.first_layer": "digital"})
    chip = _run(lenet, cfg, images[:4], images[4:5])
    rep = cm.estimate(cm.collect(chip, 1), cfg.cost)
    conv1 = rep.layers[0]
    assert conv1.where == "digital" and conv1.tiles == 0
    assert conv1.energy_j["digital_mac"] == pytest.approx(28 * 28 * 6 * 25 * 0.1e-12)
    assert conv1.latency_s == pytest.approx(28 * 28 * 6 * 25 / (64 * 200e6))
    assert conv1.energy_j["adc"] == 0.0
    assert rep.digital_area_mm2 == pytest.approx(64 * 500e-6)


def test_report_text_and_figure(lenet, images, tmp_path):
    from norsim.cost.report import format_report, format_summary, plot_energy

    cfg = load_preset("nor40").with_overrides(QUIET)
    chip = _run(lenet, cfg, images[:4], images[4:5])
    rep = cm.estimate(cm.collect(chip, 1), cfg.cost)
    text = format_report(rep)
    assert "2 operations per MAC" in text and "conv1" in text and "TOPS/W" in text
    assert "| setting |" in format_summary([("x", rep)])
    png = plot_energy(rep, tmp_path / "e.png")
    assert png.stat().st_size > 1000
