"""The fused readout and its NumPy twin agree on the column-noise variance path (issue 26):
summed cell-noise variances in the second half of the columns plus a constant leakage
variance ``vleak``, which sets the code spread: sigma^2 = (var + vleak) / step^2."""

from __future__ import annotations

import numpy as np
import pytest

from norsim.array import kernels as K


@pytest.mark.parametrize("with_vleak", [False, True])
def test_readout_twins_agree_with_column_and_leakage_variance(with_vleak):
    rng = np.random.default_rng(0)
    n, p = 4000, 3
    step = 1e-9
    par = np.zeros(K.N_PARAMS)
    par[K.P_STEP], par[K.P_LO], par[K.P_HI], par[K.P_ISAT] = step, 0, 4095, 1e9
    cur = np.empty((n, 2 * p))
    cur[:, :p] = 1000 * step
    var = np.array([4.0, 9.0, 1.0]) * step**2        # 2, 3, 1 LSB of cell noise
    cur[:, p:] = var
    vleak = np.array([5.0, 7.0, 0.0]) * step**2 if with_vleak else None
    ch = {"pos": np.arange(p), "neg": -np.ones(p, np.int64), "tgt": np.arange(p),
          "coef": np.ones(p), "adc": np.zeros(p, np.int64)}
    z = rng.standard_normal((n, p))
    args = (cur, np.zeros(p), 1, ch, np.ones(1), np.zeros(1), par)
    a, _ = K.readout(*args, z=z, n_out_cols=p, vleak=vleak)
    b, _ = K.readout_numpy(*args, z=z, n_out_cols=p, vleak=vleak)
    np.testing.assert_array_equal(a, b)
    want_var = var / step**2 + (0 if vleak is None else vleak / step**2)
    np.testing.assert_allclose(a.std(axis=0) ** 2, want_var + 1 / 12, rtol=0.08)


def test_kernels_read_a_column_slice_of_a_wider_batch_in_place():
    """A tile's rows of a wider input batch (a strided int64 slice) are read where they lie:
    no copy, and the same bit-planes and word-line statistics as from a contiguous copy."""
    from norsim.array.kernels import bitplanes, bitplanes_t, code_rows, wl_stats

    x = np.random.default_rng(3).integers(0, 16, size=(37, 300))
    xs = x[:, 40:296]
    assert code_rows(xs) is xs
    xc = np.ascontiguousarray(xs)
    assert not np.shares_memory(code_rows(xs.astype(np.int32)), xs)
    np.testing.assert_array_equal(bitplanes(xs, 4), bitplanes(xc, 4))
    np.testing.assert_array_equal(bitplanes_t(xs, 4), bitplanes_t(xc, 4))
    a_s, r_s = wl_stats(xs, 4)
    a_c, r_c = wl_stats(xc, 4)
    np.testing.assert_array_equal(a_s, a_c)
    assert r_s == r_c and a_s.sum() == sum(bin(int(v)).count("1") for v in xc.ravel())


@pytest.mark.parametrize("nbits", [1, 4, 8, 13])
def test_bit_planes_and_word_line_statistics_in_one_pass(nbits):
    """The bit-serial path builds the bit-planes and counts the word-line statistics (active
    rows per cycle, runs of ones: the energy model's word-line pulses and toggles) in one
    pass over the codes: the same as the two separate NumPy twins, on a column slice."""
    from norsim.array.kernels import bitplanes_numpy, bitplanes_stats, wl_stats_numpy

    x = np.random.default_rng(nbits).integers(0, 1 << nbits, size=(29, 70))[:, 3:67]
    active = np.full(29 * nbits, -1, dtype=np.int64)
    planes, runs = bitplanes_stats(x, nbits, active)
    np.testing.assert_array_equal(planes, bitplanes_numpy(x, nbits))
    a_ref, r_ref = wl_stats_numpy(x, nbits)
    np.testing.assert_array_equal(active, a_ref)
    assert runs == r_ref > 0
