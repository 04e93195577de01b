"""Signed (analog-subtraction) ADC pinned at 5 and 6 bits (issue 26).

A signed b-bit conversion has the codes -(2^(b-1) - 1) .. 2^(b-1) - 1 (symmetric, no code
for -2^(b-1)); the physical full scale is every row on at the top level, and with
``step_integer_units`` the step is the smallest whole number of unit currents that covers it.
An ideal array (no noise, no ADC errors) with analog subtraction then returns, per input
bit-plane b, k * clip(round(sum_r x_b[r] w[r, c] / k), lo, hi) shifted by 2^b: the integer
product only when k = 1, and the rounding of a coarse ADC when k > 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from norsim.array import kernels as K
from norsim.array.nor_array import NorArray
from norsim.array.periphery import make_adc, readout_params

from _array_helpers import ideal_cfg

TOP = 7  # top weight level of 4-bit differential weights


def _round_half_up(v):
    return np.floor(v + 0.5)


@pytest.mark.parametrize("bits", [5, 6])
def test_signed_adc_codes_are_symmetric_and_clip_at_both_ends(bits):
    cfg = ideal_cfg(8, adc_bits=bits)
    adc = make_adc(cfg.array, 1, True, 300.0, np.random.default_rng(0))
    hi = 2 ** (bits - 1) - 1
    assert (adc.lo, adc.hi) == (-hi, hi)
    adc.set_range(full_scale_a=hi * 1e-9, unit_a=1e-9, integer_units=True)
    assert adc.step_a == pytest.approx(1e-9)
    par = readout_params(cfg.array, adc, 1e-6, 300.0)
    par[K.P_ISAT] = 1e9
    n = 8001
    ramp = np.linspace(-hi - 4, hi + 4, n)  # readings in LSB (step 1)
    ch = {k: np.zeros(1, np.int64) for k in ("pos", "tgt", "adc")}
    ch["neg"] = -np.ones(1, np.int64)
    ch["coef"] = np.ones(1)
    code, _ = K.readout((ramp * adc.step_a)[:, None].astype(np.float32), np.zeros(1), 1, ch, np.ones(1),
                        np.zeros(1), par, z=np.zeros((n, 1)), n_out_cols=1)
    want = np.clip(_round_half_up(ramp), -hi, hi)
    off_tie = np.abs(ramp - np.floor(ramp) - 0.5) > 1e-4  # float32 readings at x.5 may go either way
    np.testing.assert_array_equal(code[off_tie, 0], want[off_tie])
    assert code.min() == -hi and code.max() == hi


# rows chosen so the step k (unit currents) is odd: no reading sits on a rounding tie
@pytest.mark.parametrize("bits,rows", [(5, 15), (6, 31), (5, 40), (6, 13)])
def test_analog_subtraction_with_a_coarse_signed_adc_rounds_each_bit_plane(bits, rows):
    cols, batch, ibits = 6, 40, 4
    rng = np.random.default_rng(bits * 100 + rows)
    w = rng.integers(-TOP, TOP + 1, size=(rows, cols))
    w[:, 0] = TOP     # a column at the positive full scale
    w[:, 1] = -TOP    # and one at the negative
    x = rng.integers(0, 2**ibits, size=(batch, rows))
    x[0] = 2**ibits - 1
    cfg = ideal_cfg(rows, 256, bits, ["array.encoding.subtraction='analog'",
                                      "array.dac.wl_tau_s=0.0"])
    arr = NorArray.from_weights(w, cfg, np.random.default_rng(1))
    hi = 2 ** (bits - 1) - 1
    k = int(np.ceil(rows * TOP / hi))  # physical full scale, whole unit currents per step
    assert arr.adc.signed and (arr.adc.lo, arr.adc.hi) == (-hi, hi)
    assert arr.adc.step_a == pytest.approx(k * cfg.device.levels.i_unit_a, rel=1e-12)
    y = arr.matmul(x)
    want = np.zeros((batch, cols))
    for b in range(ibits):
        d = ((x >> b) & 1) @ w
        want += 2**b * k * np.clip(_round_half_up(d / k), -hi, hi)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-9)  # step in A: k i_unit / i_unit
    if k > 1:  # the coarse ADC really loses information here
        assert np.abs(y - x @ w).max() >= 1
    # the full-scale columns reach the end codes exactly (x[0]: every row on in every plane)
    assert y[0, 0] == pytest.approx((2**ibits - 1) * k * min(hi, _round_half_up(rows * TOP / k)))
    assert y[0, 1] == pytest.approx(-y[0, 0])


def test_ktc_noise_of_the_integrator_sets_the_code_spread():
    # kT/C of the integrating capacitor, referred to a current over the read: var = k T C /
    # t_read^2; with every other noise off the code spread of a constant reading is its
    # square root in LSB
    from norsim.device.iv import BOLTZMANN_J_PER_K

    t_read, temp = 1e-6, 330.0
    cfg = ideal_cfg(8, adc_bits=12, extra=["array.noise.ktc_enabled=true"])
    c_int = cfg.array.sense.integrator_cap_f
    sigma_a = np.sqrt(BOLTZMANN_J_PER_K * temp * c_int) / t_read
    adc = make_adc(cfg.array, 1, False, temp, np.random.default_rng(0))
    adc.set_range(full_scale_a=adc.hi * sigma_a / 4, unit_a=sigma_a / 4, integer_units=False)
    par = readout_params(cfg.array, adc, t_read, temp)
    par[K.P_ISAT] = 1e9
    n = 40_000
    ch = {k: np.zeros(1, np.int64) for k in ("pos", "tgt", "adc")}
    ch["neg"] = -np.ones(1, np.int64)
    ch["coef"] = np.ones(1)
    reading = np.full((n, 1), 2000 * adc.step_a, np.float32)
    z = np.random.default_rng(1).standard_normal((n, 1))
    code, _ = K.readout(reading, np.zeros(1), 1, ch, adc.gain, adc.offset, par, z=z, n_out_cols=1)
    assert code[:, 0].std() == pytest.approx(4.0, rel=0.03)   # sigma = 4 LSB by construction
    off = readout_params(ideal_cfg(8, adc_bits=12).array, adc, t_read, temp)
    assert off[K.P_CONST_VAR] == 0.0                            # kT/C off: no constant variance


def test_adc_gain_error_and_its_temperature_drift_scale_the_transfer():
    cfg = ideal_cfg(8, extra=["array.adc.gain_error=0.02", "array.adc.gain_tempco_per_k=-5e-4"])
    adc = make_adc(cfg.array, 3, True, 350.0, np.random.default_rng(0))
    np.testing.assert_allclose(adc.gain, 1.02 * (1 - 5e-4 * (350.0 - cfg.array.adc.tempco_ref_k)),
                               rtol=1e-12)


@pytest.mark.parametrize("fs", [0.0, -1e-6, np.nan, np.inf])
def test_a_full_scale_that_is_not_a_positive_current_is_refused(fs):
    from norsim.errors import InputError

    adc = make_adc(ideal_cfg(8).array, 1, False, 300.0, np.random.default_rng(0))
    with pytest.raises(InputError, match="full scale"):
        adc.set_range(fs, 1e-9, True)
    adc.set_range(1e-12, 1e-9, True)  # tiny but positive: one unit per step
    assert adc.step_a == pytest.approx(1e-9)
