"""Noise per read: the Gaussian shortcut and the exact RTN against a per-cell Monte-Carlo.

The array's readout (shot + kT/C as one Gaussian per conversion, RTN sampled exactly) is
compared with a reference that draws every cell separately (its own RTN state and its own
Gaussian shot noise), by two-sample KS and Anderson-Darling tests on 1e5 samples and by the
99.9th percentile. A moment-matched Gaussian stand-in for RTN is rejected by the same test
when few rows are active -- the test has the power to fail.
"""

import warnings

import numpy as np
import pytest
from scipy import stats

from norsim.array.nor_array import NorArray
from norsim.device.iv import BOLTZMANN_J_PER_K
from norsim.device.noise import read_noise_sigma_a

from _array_helpers import ideal_cfg

N = 100_000
NOISY = ["array.noise.shot_enabled=true", "array.noise.ktc_enabled=true",
         "array.noise.rtn_enabled=true", "device.noise.rtn_traps_per_cell=2",
         "device.noise.rtn_trap_probability=1.0",  # every trap site active (mechanics test)
         "device.noise.rtn_tau_min_s=1e-12", "device.noise.rtn_tau_max_s=2e-12",  # iid per multiply
         "device.noise.rtn_mean_v=0.003", "array.encoding.input_bits=1",
         "array.adc.step_integer_units=false",
         "array.noise.rtn_tier='exact'"]  # the exact walk is what this file tests (issue 17)


def _array(active_rows, seed=0):
    rows = max(active_rows, 4)
    cfg = ideal_cfg(rows, adc_bits=24, extra=NOISY)
    w = np.zeros((rows, 1), dtype=np.int64)
    w[:active_rows, 0] = 7
    arr = NorArray.from_weights(w, cfg, np.random.default_rng(seed), precision="float64")
    x = np.zeros((N, rows), dtype=np.int64)
    x[:, :active_rows] = 1
    return cfg, arr, x


def _reference(cfg, arr, x_row, rng, rtn_gaussian=False):
    """Per-cell Monte-Carlo of the (pos - neg) reading in output units, N samples."""
    cell = arr.cell
    dev = cfg.device
    t = dev.read.t_read_s
    ktc_var = BOLTZMANN_J_PER_K * dev.read.temperature_k * cfg.array.sense.integrator_cap_f / t**2
    tr = arr.traps
    p_occ = tr.p01 / (tr.p01 + tr.p10)  # = occupancy (the traps mix fully between multiplies)
    cols = []
    for c in (0, 1):  # positive, negative physical column
        total = np.zeros(N)
        for r in range(arr.vth.shape[0]):
            i_cell = r * arr.vth.shape[1] + c
            assert tr.row[i_cell] == r and tr.col[i_cell] == c
            f = cell.on_current if x_row[r] == 1 else cell.off_current
            occ = rng.random((N, tr.traps_per_cell)) < p_occ[i_cell]
            if rtn_gaussian:  # moment-matched Gaussian stand-in for the telegraph V_th shift
                shift = occ @ tr.amp_v[i_cell]
                i = f(arr.vth[r, c] + shift.mean() + shift.std() * rng.standard_normal(N))
            else:  # exact: the cell's current in each joint trap state, indexed per sample
                joint = occ @ (1 << np.arange(tr.traps_per_cell))
                i = f(arr.vth[r, c] + tr.joint_shifts()[i_cell])[joint]
            sigma = read_noise_sigma_a(i, cell.model, dev.noise, dev.read.temperature_k, t)
            total += i + sigma * rng.standard_normal(N)  # each cell's own white + 1/f noise
        total += np.sqrt(ktc_var) * rng.standard_normal(N)
        # the same ideal unsigned ADC: clips below zero (the nearly empty negative column)
        step, hi = arr.adc.step_a, arr.adc.hi
        cols.append(np.clip(np.floor(total / step + 0.5), 0, hi) * step)
    return (cols[0] - cols[1]) / cfg.device.levels.i_unit_a


def _q999_tolerance(a, b):
    s = np.sqrt(0.999 * 0.001 / N)
    return max(np.quantile(v, min(0.999 + 3 * s, 1)) - np.quantile(v, 0.999 - 3 * s) for v in (a, b))


@pytest.mark.parametrize("active_rows", [1, 3, 64])
def test_shortcut_and_exact_rtn_match_per_cell_monte_carlo(active_rows):
    cfg, arr, x = _array(active_rows)
    y = arr.matmul(x, np.random.default_rng(100 + active_rows))[:, 0]
    ref = _reference(cfg, arr, x[0], np.random.default_rng(200 + active_rows))
    assert stats.ks_2samp(y, ref).pvalue > 1e-3
    with warnings.catch_warnings():  # scipy warns when it caps the p-value at 0.25
        warnings.simplefilter("ignore", UserWarning)
        ad = stats.anderson_ksamp([y, ref])
    assert ad.significance_level > 2e-3  # scipy floors it at 1e-3
    assert abs(np.quantile(y, 0.999) - np.quantile(ref, 0.999)) <= _q999_tolerance(y, ref)
    assert y.std() > 0.05  # the noise is really there


def test_gaussian_rtn_stand_in_is_rejected_with_few_active_rows():
    cfg, arr, x = _array(1)
    y = arr.matmul(x, np.random.default_rng(1))[:, 0]
    fake = _reference(cfg, arr, x[0], np.random.default_rng(2), rtn_gaussian=True)
    assert stats.ks_2samp(y, fake).pvalue < 1e-6


def test_rtn_is_frozen_across_the_bit_serial_cycles_of_one_multiply():
    cfg = ideal_cfg(4, adc_bits=24, extra=["array.noise.rtn_enabled=true",
                                           "device.noise.rtn_traps_per_cell=1",
                                           "device.noise.rtn_trap_probability=1.0",
                                           "device.noise.rtn_tau_min_s=1e-12",
                                           "device.noise.rtn_tau_max_s=2e-12",
                                           "device.noise.rtn_mean_v=0.01",
                                           "array.adc.step_integer_units=false",
                                           "array.noise.rtn_tier='exact'"])
    w = np.array([[7], [0], [0], [0]])
    arr = NorArray.from_weights(w, cfg, np.random.default_rng(4), precision="float64")
    x = np.zeros((5000, 4), dtype=np.int64)
    x[:, 0] = 15  # the cell is read in all 4 cycles
    y = arr.matmul(x)[:, 0]
    # a state frozen per multiply gives two values (15 I(V_th) or 15 I(V_th + dV));
    # a state redrawn per cycle would give five (k of 4 cycles occupied, weighted 2^k)
    # (other cells' RTN -- the leaking rows, the level-0 negative cell -- blur each value by
    # ~0.01; the two states of the probed cell are ~10 apart)
    v = np.sort(y)
    clusters = 1 + int(np.sum(np.diff(v) > 1.0))
    assert clusters == 2, np.unique(np.round(y, 1))
    # both states appear with the trap's occupancy
    tr = arr.traps
    p_occ = (tr.p01 / (tr.p01 + tr.p10))[0, 0]  # cell (0, 0)
    frac_low = np.mean(y < y.mean())
    assert abs(frac_low - p_occ) < 0.03


def test_read_noise_draws_follow_the_generator():
    _, arr1, x = _array(3, seed=5)
    _, arr2, _ = _array(3, seed=5)
    _, arr3, _ = _array(3, seed=5)
    x = x[:2000]
    a = arr1.matmul(x, np.random.default_rng(9))
    b = arr2.matmul(x, np.random.default_rng(9))
    c = arr3.matmul(x, np.random.default_rng(10))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
