"""On-chip compensation: reference columns, trims, read bias, re-calibration, refresh.

Drift is imposed with known closed-form factors on an otherwise ideal chip (every cell's
current multiplied by a known factor), so each step can be checked against the factor it
must find and against the integer reference it must restore.
"""

import numpy as np
import pytest

from norsim.compensation import core
from norsim.config import load_preset
from norsim.errors import ConfigError, InputError
from norsim.mapping import engine, mapper
from norsim.mapping.random_models import random_lenet


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(11)
    model = random_lenet(rng, calib_n=8)
    images = rng.integers(0, 256, size=(8, 28, 28), dtype=np.uint8)
    return model, images


def _ideal_chip(model, images, extra=None):
    cfg = mapper.ideal_config(load_preset().with_overrides(
        {"array.rows": 128, "array.cols": 128, "compensation.enabled": True,
         "compensation.probe_patterns": 48, **(extra or {})}))
    chip = mapper.map_model(model, cfg)
    engine.calibrate(chip, images[:4])
    return chip


def _scale(arr, s):
    """Multiply every cell current by ``s`` (scalar or per physical column): a known drift."""
    arr.current_scale = arr.current_scale * np.broadcast_to(s, arr.current_scale.shape[-1:])[None, :]
    core.set_read_voltage(arr, arr.cfg.device.read.v_cg_read_v)


def _snr(chip, images):
    run = engine.run(chip, images, batch_size=5)
    return min(st.snr_db for st in run.layer_stats.values()), run


def test_probe_of_ideal_tile_reads_the_programmed_currents(small):
    model, images = small
    chip = _ideal_chip(model, images)
    arr = next(chip.tiles()).array
    x = core._patterns(np.random.default_rng(0), 6, arr.rows_used, (0.5, 0.2), arr.xmax)
    codes, expected, charge = core.probe(arr, x, np.random.default_rng(1))
    assert codes.shape == expected.shape == (6 * arr.cycles, arr._channels["pos"].size)
    # ideal tile, 24-bit converter with a one-unit step: codes = nominal currents (+ leakage)
    assert np.all(np.abs(codes - expected) <= 1.0)
    assert charge > 0


def test_reference_gain_finds_an_imposed_current_factor(small):
    model, images = small
    chip = _ideal_chip(model, images, {"array.adc.bits": 6, "array.adc.noise_lsb": 0.3})
    state = core.attach_references(chip)
    ref = next(iter(state.references.values()))["array"]
    assert core.reference_gain(ref, np.random.default_rng(2), 16) == pytest.approx(1.0, abs=0.02)
    before = ref.current_scale.copy()
    for factor in (0.4, 2.7, 7.4):  # e^2 after a 10-year bake is inside what auto-ranging covers
        ref.current_scale = before
        _scale(ref, factor)
        g = core.reference_gain(ref, np.random.default_rng(3), 16)
        assert g == pytest.approx(factor, rel=0.03)


def test_global_gain_restores_the_reference_after_uniform_drift(small):
    model, images = small
    chip = _ideal_chip(model, images, {"compensation.gain_correction": "global"})
    state = core.attach_references(chip)
    for t in chip.tiles():
        _scale(t.array, 2.5)
    for r in state.references.values():
        _scale(r["array"], 2.5)
    snr_drift, _ = _snr(chip, images)
    core.compensate(chip, images)
    snr_comp, run = _snr(chip, images)
    assert snr_drift < 10
    assert snr_comp > 35
    assert all(g == pytest.approx(2.5, rel=0.01) for g in state.log["reference_gain"].values())


def test_per_column_trim_removes_column_gains_that_references_cannot_see(small):
    model, images = small
    chip = _ideal_chip(model, images, {"compensation.gain_correction": "per_column"})
    core.attach_references(chip)
    rng = np.random.default_rng(5)
    for t in chip.tiles():
        _scale(t.array, rng.uniform(0.6, 1.6, t.array.phys_cols))
    snr_drift, _ = _snr(chip, images)
    chip_g = _ideal_chip(model, images, {"compensation.gain_correction": "global"})
    core.attach_references(chip_g)
    rng = np.random.default_rng(5)
    for t in chip_g.tiles():
        _scale(t.array, rng.uniform(0.6, 1.6, t.array.phys_cols))
    core.compensate(chip_g, images)
    snr_global, _ = _snr(chip_g, images)
    core.compensate(chip, images)
    snr_col, _ = _snr(chip, images)
    assert snr_drift < 12
    assert snr_global < 15          # references at nominal: nothing to correct globally
    assert snr_col > snr_global + 10  # each channel fitted against its programmed levels


def test_adaptive_read_voltage_brings_the_reference_back(small):
    model, images = small
    chip = _ideal_chip(model, images, {"compensation.gain_correction": "off",
                                       "compensation.adaptive_read_voltage": True})
    state = core.attach_references(chip)
    for t in chip.tiles():
        _scale(t.array, 3.0)
    for r in state.references.values():
        _scale(r["array"], 3.0)
    core.compensate(chip, images)
    for key, r in state.references.items():
        assert core.reference_gain(r["array"], np.random.default_rng(9), 16) == pytest.approx(1.0, abs=0.03)
        # a larger current needs a lower control-gate voltage
        assert state.log["read_voltage_shift_v"][f"{key[0]}/{key[1]}"] < 0
    snr, _ = _snr(chip, images)
    assert snr > 25


def test_set_read_voltage_follows_the_cell_slope(small):
    model, images = small
    chip = _ideal_chip(model, images)
    arr = next(chip.tiles()).array
    i0 = arr.i_on.copy()
    slope = core._dlni_dvcg(arr)
    core.set_read_voltage(arr, arr.cfg.device.read.v_cg_read_v + 0.01)
    on = i0 > 1e-9  # conducting levels, subthreshold: ln I linear in V_cg
    ratio = np.log(arr.i_on[on] / i0[on])
    assert slope > 0
    assert np.allclose(ratio, slope * 0.01, rtol=0.05)


def test_activation_recalibration_undoes_a_layer_gain(small):
    model, images = small
    chip = _ideal_chip(model, images, {"compensation.gain_correction": "off",
                                       "compensation.activation_recalibration": True,
                                       "compensation.recalibration_images": 8})
    for t in chip.tiles():
        _scale(t.array, 1.8)  # references untouched: only the re-calibration can see it
    snr_drift, _ = _snr(chip, images)
    state = core.compensate(chip, images)
    snr_recal, _ = _snr(chip, images)
    assert snr_drift < 8
    assert snr_recal > snr_drift + 10
    scales = [layer.acc_correction.a[0] for layer in chip.layers.values() if layer.analog]
    assert scales[0] == pytest.approx(1 / 1.8, rel=0.05)  # first layer: same inputs as reference
    assert state.costs[-1].images == 8 and state.costs[-1].reads > 0


def test_effective_config_for_refresh():
    cfg = load_preset().with_overrides({"compensation.enabled": True,
                                        "compensation.refresh_interval_s": 1000.0,
                                        "mapping.retention_time_s": 3500.0})
    eff, n = core.effective_config(cfg)
    assert n == 3
    assert eff.mapping.retention_time_s == pytest.approx(500.0)
    assert eff.device.retention.pe_cycles == cfg.device.retention.pe_cycles + 3
    off, n0 = core.effective_config(cfg.with_overrides({"compensation.enabled": False}))
    assert n0 == 0 and off.mapping.retention_time_s == 3500.0


def test_refresh_cost_is_programming_cost_times_refreshes(small):
    model, images = small
    cfg = load_preset().with_overrides({"array.rows": 128, "array.cols": 128})
    chip = mapper.map_model(model, cfg)
    per = sum(t.program_energy_j for t in chip.tiles())
    assert per > 0
    cost = core.refresh_cost(chip, 4)
    assert cost.program_energy_j == pytest.approx(4 * per)


def test_errors_are_norsim_errors(small):
    model, images = small
    cfg = mapper.ideal_config(load_preset().with_overrides({"array.rows": 128, "array.cols": 128,
                                                           "compensation.enabled": True}))
    chip = mapper.map_model(model, cfg)
    with pytest.raises(InputError, match="calibrate"):
        core.compensate(chip, images)
    with pytest.raises(ConfigError):
        load_preset().with_overrides({"compensation.gain_correction": "magic"})
    chip = _ideal_chip(model, images, {"array.encoding.input_scheme": "pulse_width"})
    with pytest.raises(ConfigError, match="bit_serial"):
        core.compensate(chip, images)


def test_cell_screen_finds_and_reprograms_fast_leaking_cells(small):
    model, images = small
    chip = _ideal_chip(model, images, {"compensation.gain_correction": "off"})
    core.attach_references(chip)
    planted = {}
    rng = np.random.default_rng(4)
    for ti, t in enumerate(chip.tiles()):
        arr = t.array
        rows, cols = np.nonzero(arr.layout.levels >= 1)
        pick = rng.choice(rows.size, size=min(2, rows.size), replace=False)
        s = arr.current_scale.copy()
        s[rows[pick], cols[pick]] = 40.0  # a retention-tail cell: 40x its level current
        arr.current_scale = s
        core.set_read_voltage(arr, arr.cfg.device.read.v_cg_read_v)
        planted[ti] = set(zip(rows[pick].tolist(), cols[pick].tolist()))
    snr_bad, _ = _snr(chip, images)
    state = core.compensate(chip, images)
    assert state.log["cells_reprogrammed"] == sum(len(v) for v in planted.values())
    for ti, t in enumerate(chip.tiles()):
        for r, c in planted[ti]:
            assert t.array.current_scale[r, c] == 1.0
    snr_fixed, _ = _snr(chip, images)
    assert snr_bad < 20 and snr_fixed > 40
    cost = next(c for c in state.costs if c.name == "cell_screen")
    assert cost.reads == sum(t.array.rows_used for t in chip.tiles()) and cost.program_time_s > 0


def test_temperature_table_limits():
    from norsim.compensation.experiment import temperature_drift_table

    tab = temperature_drift_table(temps_k=(298.15, 358.15))
    assert np.allclose(tab[298.15]["raw"], 0.0) and np.allclose(tab[298.15]["ratiometric"], 0.0)
    hot = tab[358.15]
    assert hot["ratiometric"][-1] == pytest.approx(0.0, abs=1e-12)  # the reference level itself
    assert all(r > 1.0 for r in hot["raw"])              # subthreshold current grows > 2x
    # ratiometric residual: lower levels are compressed less -> larger relative error
    assert np.all(np.diff(hot["ratiometric"]) < 0)
    assert max(abs(v) for v in hot["ratiometric"]) < max(abs(v) for v in hot["raw"])


def test_ill_conditioned_channel_fit_falls_back_to_an_offset_trim():
    from norsim.compensation.core import CHANNEL_GAIN_BOUNDS, _fit, _fit_offset

    rng = np.random.default_rng(3)
    # expected readings with just enough spread, codes that do not follow them (a column
    # whose cells are nearly all at level 0, read with a +7 code offset): the unbounded
    # least-squares slope is tiny and would blow the channel's gain up
    expected = 1.0 + rng.choice([0.0, 1.2], size=32)
    codes = 8.0 + rng.normal(0, 0.01, size=32) + 0.05 * (expected - expected.mean())
    g, _ = _fit(codes, expected, 0, 63)  # unbounded: a tiny positive slope (gain x 1/g)
    assert 0 < g < CHANNEL_GAIN_BOUNDS[0]
    assert _fit(codes, expected, 0, 63, gain_bounds=CHANNEL_GAIN_BOUNDS) is None
    assert _fit_offset(codes, expected, 0, 63) == pytest.approx(np.median(codes - expected))
    # a well-conditioned column keeps its gain/offset fit
    e2 = rng.uniform(1, 20, 32)
    g2, o2 = _fit(2.0 * e2 + 0.5, e2, 0, 63, gain_bounds=CHANNEL_GAIN_BOUNDS)
    assert g2 == pytest.approx(2.0) and o2 == pytest.approx(0.5)
    # too few unclipped points: no trim at all
    assert _fit_offset(np.zeros(10), np.ones(10), 0, 63) is None
