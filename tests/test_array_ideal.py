"""Ideal equals integer, through the physics; and no bypass (dI/dV_th test)."""

import numpy as np
from hypothesis import given, settings, strategies as st, HealthCheck

from norsim.array.encodings import phys_cols_needed
from norsim.array.nor_array import NorArray
from norsim.device.iv import cell_model

from _array_helpers import ideal_cfg


@st.composite
def cases(draw):
    scheme = draw(st.sampled_from(["differential", "offset", "bit_sliced"]))
    wbits = draw(st.integers(2, 5))
    bpc = draw(st.integers(1, wbits - 1))
    ibits = draw(st.integers(1, 5))
    rows = draw(st.integers(1, 48))
    cols = draw(st.integers(1, 5))
    batch = draw(st.integers(1, 6))
    sub = draw(st.sampled_from(["digital", "analog"]))
    inp = draw(st.sampled_from(["bit_serial", "bit_serial", "pulse_width"]))
    if inp == "pulse_width":
        # one cycle: leakage and level-0 current count 2^b - 1 times more in output units;
        # keep their sum well below half a unit so rounding stays exact
        rows = min(rows, 8)
    seed = draw(st.integers(0, 2**32 - 1))
    return scheme, wbits, bpc, ibits, rows, cols, batch, sub, inp, seed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_ideal_chip_returns_the_integer_product(case):
    scheme, wbits, bpc, ibits, rows, cols, batch, sub, inp, seed = case
    rng = np.random.default_rng(seed)
    lim = 2 ** (wbits - 1) - 1
    w = rng.integers(-lim, lim + 1, size=(rows, cols))
    x = rng.integers(0, 2**ibits, size=(batch, rows))
    extra = [f"array.encoding.weight_scheme='{scheme}'", f"array.encoding.weight_bits={wbits}",
             f"array.encoding.bits_per_cell={bpc}", f"array.encoding.input_bits={ibits}",
             f"array.encoding.subtraction='{sub}'", f"array.encoding.input_scheme='{inp}'",
             "array.dac.wl_tau_s=0.0"]
    cfg = ideal_cfg(rows, 256, 24, extra)
    assert phys_cols_needed(cols, cfg.array.encoding) <= 256
    arr = NorArray.from_weights(w, cfg, rng)
    assert arr.adc.step_a == cfg.device.levels.i_unit_a / (1 if inp == "bit_serial" else 2**ibits - 1)
    y = arr.matmul(x)
    np.testing.assert_array_equal(y, x @ w)


def test_ideal_chip_through_numpy_twins_too():
    rng = np.random.default_rng(5)
    w = rng.integers(-7, 8, size=(40, 9))
    x = rng.integers(0, 16, size=(7, 40))
    arr = NorArray.from_weights(w, ideal_cfg(40), rng)
    np.testing.assert_array_equal(arr.matmul(x, reference=True), x @ w)
    # the currents really come from the cell I-V: ideal V_th differ per level
    assert len(np.unique(np.round(arr.vth, 9))) == len(np.unique(np.abs(w))) + (0 if (w == 0).any() else 1)


def test_moving_one_vth_moves_the_output_by_dI_dVth_times_delta():
    rows, cols = 16, 3
    rng = np.random.default_rng(2)
    w = rng.integers(-7, 8, size=(rows, cols))
    w[4, 1] = 5  # the probed cell: positive column of logical column 1, level 5
    x = rng.integers(1, 16, size=(3, rows))
    cfg = ideal_cfg(rows, adc_bits=24, extra=["array.adc.step_integer_units=false"])
    base = NorArray.from_weights(w, cfg, np.random.default_rng(0), precision="float64")
    y0 = base.matmul(x)
    assert np.max(np.abs(y0 - x @ w)) < 0.05  # fine ADC: near the integers (leakage differs)
    delta = 5e-4
    vth = base.vth.copy()
    pc = 2 * 1  # positive physical column of logical column 1 (interleaved pairs)
    vth[4, pc] += delta
    moved = NorArray.from_weights(w, cfg, np.random.default_rng(0), vth_map=vth, precision="float64")
    y1 = moved.matmul(x)
    # independent derivative from the device layer at the array's bias
    dev = cfg.device
    m = cell_model(dev.cell, dev.read.temperature_k)
    r = dev.read
    v_d = r.v_bl_read_v * cfg.array.sense.clamp_gain / (1 + cfg.array.sense.clamp_gain)
    h = 1e-6

    def i(v_wl, v):
        return float(m.current(v_wl, r.v_cg_read_v, v_d, r.v_sl_read_v, v))

    v0 = base.vth[4, pc]
    d_on = (i(r.v_select_on_v, v0 + h) - i(r.v_select_on_v, v0 - h)) / (2 * h)
    d_off = (i(r.v_select_off_v, v0 + h) - i(r.v_select_off_v, v0 - h)) / (2 * h)
    bits = (x[:, 4][:, None] >> np.arange(4)) & 1
    expect = ((bits * d_on + (1 - bits) * d_off) * 2.0 ** np.arange(4)).sum(axis=1) * delta / cfg.device.levels.i_unit_a
    dy = y1 - y0
    assert np.all(np.abs(expect) > 0.05)  # well above the 24-bit ADC step (~1e-4)
    np.testing.assert_allclose(dy[:, 1], expect, rtol=0.01)
    np.testing.assert_allclose(np.delete(dy, 1, axis=1), 0.0, atol=1e-3)
