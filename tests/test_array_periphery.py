"""ADC/DAC periphery, input and weight encodings, event counts, bad input."""

import numpy as np
import pytest

from norsim.array import encodings as E
from norsim.array import kernels as K
from norsim.array.nor_array import NorArray
from norsim.array.periphery import make_adc
from norsim.errors import ConfigError, InputError

from _array_helpers import ideal_cfg


# ------------------------------------------------------------------------------ ADC ----
def _transfer(gain=1.0, offset=0.0, inl=0.0, bits=6, n=4001):
    """ADC codes of a ramp of readings (one channel, no noise)."""
    par = np.zeros(K.N_PARAMS)
    par[K.P_STEP], par[K.P_LO], par[K.P_HI], par[K.P_INL], par[K.P_ISAT] = 1.0, 0, 2**bits - 1, inl, 1e9
    ramp = np.linspace(-3, 2**bits + 3, n)
    ch = {k: np.zeros(1, np.int64) for k in ("pos", "tgt", "adc")}
    ch["neg"] = -np.ones(1, np.int64)
    ch["coef"] = np.ones(1)
    out, _ = K.readout(ramp[:, None].astype(np.float32), np.zeros(1), 1, ch, np.array([gain]),
                       np.array([offset]), par, z=np.zeros((n, 1)), n_out_cols=1)
    return ramp, out[:, 0]


def test_adc_transfer_ideal_gain_offset_and_clipping():
    ramp, code = _transfer()
    inside = (ramp > 0.01) & (ramp < 62.99)
    np.testing.assert_array_equal(code[inside], np.floor(ramp[inside] + 0.5))
    assert code.min() == 0 and code.max() == 63
    ramp, code = _transfer(gain=1.05, offset=0.7)
    inside = (ramp * 1.05 + 0.7 > 0.01) & (ramp * 1.05 + 0.7 < 62.99)
    np.testing.assert_array_equal(code[inside], np.floor(ramp[inside] * 1.05 + 0.7 + 0.5))


def test_adc_inl_bow_has_the_configured_peak():
    ramp, code = _transfer(inl=1.5, n=20001)
    ideal = np.clip(np.floor(ramp + 0.5), 0, 63)
    err = code - ideal
    # the bow adds 1.5 * 4u(1-u): +1 or +2 codes near mid-range, 0 at the ends
    mid = np.abs(ramp - 31.5) < 3
    assert 1.0 <= err[mid].mean() <= 2.0
    assert np.all(err[(ramp < 0.3) | (ramp > 62.7)] == 0)


def test_adc_mismatch_and_temperature_drift_are_drawn_once_per_adc():
    cfg = ideal_cfg(8, extra=["array.adc.gain_sigma=0.0", "array.adc.gain_tempco_per_k=1e-3",
                              "array.adc.columns_per_adc=4"])
    adc = make_adc(cfg.array, 10, False, 350.0, np.random.default_rng(0))
    assert adc.n_adcs == 3
    np.testing.assert_allclose(adc.gain, 1 + 1e-3 * 50)
    cfg2 = ideal_cfg(8, extra=["array.adc.offset_sigma_lsb=0.5", "array.adc.columns_per_adc=1"])
    adc2 = make_adc(cfg2.array, 400, False, 300.0, np.random.default_rng(1))
    assert adc2.n_adcs == 400 and 0.45 < adc2.offset.std() < 0.55


def test_physical_range_step_is_a_whole_number_of_unit_currents():
    cfg = ideal_cfg(256, adc_bits=6)
    w = np.ones((256, 4), dtype=np.int64)
    arr = NorArray.from_weights(w, cfg, np.random.default_rng(0))
    lv = cfg.device.levels
    fs = 256 * (lv.i_off_a + 7 * lv.i_unit_a)
    assert arr.adc.step_a == pytest.approx(np.ceil(fs / 63 / lv.i_unit_a) * lv.i_unit_a)
    assert round(arr.adc.step_a / lv.i_unit_a, 9) == 29  # 1792.3 units / 63 codes -> 28.45 -> 29


def test_calibrated_range_is_required_then_fixed():
    cfg = ideal_cfg(64, adc_bits=6, extra=["array.adc.range_mode='calibrated'",
                                            "array.adc.calibration_percentile=100.0"])
    rng = np.random.default_rng(3)
    w = rng.integers(0, 8, size=(64, 4))
    arr = NorArray.from_weights(w, cfg, rng)
    small = rng.integers(0, 4, size=(50, 64))
    with pytest.raises(InputError, match="calibrate"):
        arr.matmul(small)
    arr.calibrate(small)
    step = arr.adc.step_a
    big = np.full((5, 64), 15)
    y = arr.matmul(big)
    assert arr.adc.step_a == step  # no per-batch re-fit
    # the big batch clips at full scale: every bit-plane at most 63 codes
    assert np.all(y <= 63 * 15 * step / cfg.device.levels.i_unit_a)
    assert np.all(y < (big @ w))
    # the calibration batch itself is converted without clipping error beyond one step
    assert np.max(np.abs(arr.matmul(small) - small @ w)) <= 15 * step / cfg.device.levels.i_unit_a


def test_calibration_subsamples_a_large_batch_without_moving_the_range():
    cfg = ideal_cfg(64, adc_bits=6, extra=["array.adc.range_mode='calibrated'",
                                            "array.adc.calibration_percentile=99.0",
                                            "array.adc.step_integer_units=false"])
    rng = np.random.default_rng(8)
    w = rng.integers(-7, 8, size=(64, 8))
    x = rng.integers(0, 16, size=(4000, 64))
    full = NorArray.from_weights(w, cfg, np.random.default_rng(1))
    sub = NorArray.from_weights(w, cfg, np.random.default_rng(1))
    sub.CALIBRATION_MAX_READINGS = 200 * 4 * 16  # 200 of the 4000 vectors
    fs_full, fs_sub = full.calibrate(x), sub.calibrate(x)
    # the percentile of every 20th vector: within the sampling error of the 99th percentile
    assert fs_sub != fs_full
    assert abs(fs_sub - fs_full) / fs_full < 0.05


def test_matmul_does_not_depend_on_the_chunk_size():
    # RTN (traps switching within the batch), cell noise and the counter-hash normals on:
    # the chunked pipeline walks the traps over the whole batch and addresses every normal
    # by its global counter, so chunks of 3 vectors give the same numbers as one chunk
    cfg = ideal_cfg(32, adc_bits=8, extra=["array.noise.rtn_enabled=true",
                                           "array.noise.shot_enabled=true",
                                           "device.noise.rtn_tau_min_s=1e-7",
                                           "device.noise.rtn_tau_max_s=1e-4"])
    rng = np.random.default_rng(4)
    w = rng.integers(-7, 8, size=(32, 16))
    x = rng.integers(0, 16, size=(100, 32)) * (rng.random((100, 32)) < 0.7)
    a = NorArray.from_weights(w, cfg, np.random.default_rng(2))
    b = NorArray.from_weights(w, cfg, np.random.default_rng(2))
    b.CHUNK_ROWS = 3 * cfg.array.encoding.input_bits
    ya = [a.matmul(x, np.random.default_rng(k)) for k in range(2)]  # state carries over
    yb = [b.matmul(x, np.random.default_rng(k)) for k in range(2)]
    np.testing.assert_array_equal(ya[0], yb[0])
    np.testing.assert_array_equal(ya[1], yb[1])
    np.testing.assert_array_equal(a.traps.state, b.traps.state)
    assert not np.array_equal(ya[0], x @ w)  # the noise is really there


# ------------------------------------------------------------------------ encodings ----
def test_weight_layouts_reconstruct_the_weights():
    rng = np.random.default_rng(0)
    for scheme, wb, bpc in [("differential", 4, 1), ("offset", 4, 1), ("bit_sliced", 5, 2)]:
        for sub in ("digital", "analog"):
            cfg = ideal_cfg(8, extra=[f"array.encoding.weight_scheme='{scheme}'",
                                      f"array.encoding.weight_bits={wb}",
                                      f"array.encoding.bits_per_cell={bpc}",
                                      f"array.encoding.subtraction='{sub}'"])
            enc = cfg.array.encoding
            lim = E.weight_limit(enc)
            w = rng.integers(-lim, lim + 1, size=(8, 5))
            lay = E.encode_weights(w, enc)
            assert lay.phys_cols == E.phys_cols_needed(5, enc)
            assert lay.levels.min() >= 0 and lay.levels.max() <= lay.max_level
            rec = np.zeros((8, 5))
            for h in range(lay.pos.size):
                col = lay.levels[:, lay.pos[h]] - (lay.levels[:, lay.neg[h]] if lay.neg[h] >= 0 else 0)
                if lay.tgt[h] >= 0:
                    rec[:, lay.tgt[h]] += lay.coef[h] * col
                else:
                    rec += lay.coef[h] * col[:, None]
            np.testing.assert_array_equal(rec, w)


def _single_cell_outputs(scheme, extra=()):
    cfg = ideal_cfg(1, adc_bits=24, extra=[f"array.encoding.input_scheme='{scheme}'",
                                           "array.adc.step_integer_units=false"] + list(extra))
    arr = NorArray.from_weights(np.array([[7]]), cfg, np.random.default_rng(0), precision="float64")
    x = np.arange(16)[:, None]
    return arr.matmul(x)[:, 0], 7 * np.arange(16)


def test_pulse_width_is_exact_without_rc_and_settling_adds_a_per_pulse_error():
    y0, ideal = _single_cell_outputs("pulse_width", ["array.dac.wl_tau_s=0.0"])
    np.testing.assert_allclose(y0, ideal, atol=0.01)  # leakage and level-0 current only
    y1, _ = _single_cell_outputs("pulse_width", ["array.dac.wl_tau_s=1e-9"])
    y2, _ = _single_cell_outputs("pulse_width", ["array.dac.wl_tau_s=4e-9"])
    e1, e2 = (y1 - ideal)[4:11], (y2 - ideal)[4:11]  # codes below full-scale clipping
    # the select gate turns on early in the rise (threshold 0.4 of 1.8 V) and off late in
    # the decay: a slower word line delivers more charge, about 1.25 tau x I per pulse
    assert np.all(e2 > e1) and np.all(e1 > 0)
    assert 2.5 < e2.mean() / e1.mean() < 5.5
    # the settling error is per pulse (one rise, one fall): the same for every long pulse
    assert np.ptp(e2) < 0.05 * e2.mean()
    assert y2[15] == pytest.approx(105, abs=0.01)  # the full-scale code clips at the physical range


def test_multi_level_amplitude_shows_the_exponential_transfer():
    y, ideal = _single_cell_outputs("multi_level")
    # split-gate default: amplitude on the control gate; subthreshold slope alpha/(n U_T)
    from norsim.device.iv import thermal_voltage
    from norsim.config import load_preset
    c = load_preset().device.cell
    slope = c.alpha_g / (c.slope_factor_n * thermal_voltage(300.0))
    dv = 0.3 / 15  # volts per code
    ratio = np.log(y[2:12] / y[1:11])
    np.testing.assert_allclose(ratio, slope * dv, rtol=0.1)
    assert abs(y[8] - ideal[8]) > 0.5 * ideal[8]  # far from linear


def test_current_mirror_is_linear_in_deep_subthreshold_only():
    # 70 nA is ~8 % of the specific current I_S: moderate inversion bends the ratio
    y, ideal = _single_cell_outputs("current_mirror")
    dev = np.abs(y[1:] / ideal[1:] - 1)
    assert dev.max() < 0.2 and dev[-1] < 1e-6  # exact at the nominal (full-scale) code
    ml, _ = _single_cell_outputs("multi_level")
    assert dev.max() < 0.3 * np.abs(ml[1:] / ideal[1:] - 1).max()
    # deeper in subthreshold the gate-coupled mirror becomes linear (EKV corrections
    # shrink like sqrt(I / I_S))
    devs = [dev.max()]
    for i_lsb in (1e-9, 1e-10):
        y, ideal = _single_cell_outputs("current_mirror", [f"device.levels.i_unit_a={i_lsb}",
                                                           "device.levels.i_off_a=1e-13"])
        devs.append(np.abs(y[1:] / ideal[1:] - 1).max())
    assert devs[0] > devs[1] > devs[2] and devs[2] < 0.02, devs


# --------------------------------------------------------------------------- events ----
def test_event_counts_match_brute_force():
    rows, cols, b = 12, 3, 20
    cfg = ideal_cfg(rows, adc_bits=10, extra=["array.adc.columns_per_adc=4"])
    rng = np.random.default_rng(7)
    w = rng.integers(-7, 8, size=(rows, cols))
    arr = NorArray.from_weights(w, cfg, rng, precision="float64")
    x = rng.integers(0, 16, size=(b, rows))
    arr.matmul(x)
    ev = arr.events
    bits = (x[:, None, :] >> np.arange(4)[None, :, None]) & 1  # (b, k, rows)
    assert ev.multiplies == b and ev.read_cycles == 4 * b
    assert ev.wl_pulses == bits.sum()
    # toggles: level changes of every word line over its 4 cycles, off before and after
    padded = np.concatenate([np.zeros((b, 1, rows), int), bits, np.zeros((b, 1, rows), int)], axis=1)
    assert ev.wl_toggles == np.abs(np.diff(padded, axis=1)).sum()
    np.testing.assert_array_equal(np.nonzero(ev.active_rows_hist)[0],
                                  np.unique(bits.sum(axis=2)))
    assert ev.active_rows_hist.sum() == 4 * b
    n_ch = 2 * cols
    assert ev.adc_conversions == {10: 4 * b * n_ch}
    assert ev.column_mux_switches == 4 * b * (n_ch - 2)  # 6 channels on 2 ADCs
    # bit-line charge: sum over cycles of the column current x t_read, from the cell currents
    q = np.zeros(2 * cols)
    for k in range(4):
        on = bits[:, k, :].astype(float)
        q += (on @ arr.i_on + (1 - on) @ arr.i_off).sum(axis=0)
    np.testing.assert_allclose(ev.bitline_charge_c, q * cfg.device.read.t_read_s, rtol=1e-9)
    assert sum(ev.shift_add_ops.values()) > 0 and ev.buffer_bits > 0
    ev.reset()
    assert ev.multiplies == 0 and ev.bitline_charge_c.sum() == 0


# ------------------------------------------------------------------------ bad input ----
@pytest.fixture
def arr():
    cfg = ideal_cfg(8)
    return NorArray.from_weights(np.ones((8, 2), dtype=np.int64), cfg, np.random.default_rng(0))


@pytest.mark.parametrize("x, match", [
    (np.full((2, 8), 16), "x_codes"),                 # out of range (4-bit)
    (np.full((2, 8), -1), "x_codes"),                 # negative
    (np.zeros((2, 7)), "shape"),                      # shape mismatch
    (np.array([[np.nan] * 8]), "NaN"),                # NaN
    (np.full((1, 8), 1.5), "integer"),                # not integer
])
def test_bad_codes_raise_a_clear_error(arr, x, match):
    with pytest.raises(InputError, match=match):
        arr.matmul(x)


def test_bad_weights_maps_and_arguments():
    cfg = ideal_cfg(8, cols=8)
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="w_int"):
        NorArray.from_weights(np.full((8, 2), 8), cfg, rng)          # |w| > 7
    with pytest.raises(InputError, match="array.rows"):
        NorArray.from_weights(np.ones((9, 2), dtype=int), cfg, rng)  # too many rows
    with pytest.raises(InputError, match="array.cols"):
        NorArray.from_weights(np.ones((8, 5), dtype=int), cfg, rng)  # 10 physical columns
    with pytest.raises(InputError, match="vth_map"):
        NorArray.from_weights(np.ones((8, 2), dtype=int), cfg, rng, vth_map=np.full((8, 4), np.nan))
    with pytest.raises(InputError, match="vth_map"):
        NorArray.from_weights(np.ones((8, 2), dtype=int), cfg, rng, vth_map=np.zeros((8, 3)))
    with pytest.raises(InputError, match="rng"):
        NorArray.from_weights(np.ones((8, 2), dtype=int), cfg, 42)
    with pytest.raises(InputError, match="current_scale"):
        NorArray.from_weights(np.ones((8, 2), dtype=int), cfg, rng, current_scale=-np.ones((8, 4)))
    with pytest.raises(ConfigError, match="bits_per_cell"):
        ideal_cfg(8, extra=["array.encoding.weight_scheme='bit_sliced'", "array.encoding.bits_per_cell=4"])
    with pytest.raises(ConfigError, match="array.adc.bits"):
        ideal_cfg(8, extra=["array.adc.bits=0"])


def test_matmul_operator_conventions(arr):
    x = np.arange(8) % 16
    np.testing.assert_array_equal(arr @ x, x @ np.ones((8, 2)))
    xb = np.stack([x, x[::-1]], 1)  # (rows, B) column vectors, CrossSim style
    np.testing.assert_array_equal(arr @ xb, (xb.T @ np.ones((8, 2))).T)
    np.testing.assert_array_equal(xb.T @ arr, xb.T @ np.ones((8, 2)))
    assert arr.shape == (8, 2)
