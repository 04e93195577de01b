"""Pins of the counter-based Poisson sampler (norsim/device/counter_rng.py) at the switch
between its two methods, found by mutation testing (issue 26)."""

import numba
import numpy as np
import pytest

from norsim.device.counter_rng import PTRS_ABOVE, _PCDF, _poisson, _poisson_np


@numba.njit
def _draw(lam, seeds, counter):
    out = np.empty(seeds.size)
    for i in range(seeds.size):
        out[i] = _poisson(lam, seeds[i], np.uint64(counter))
    return out


@pytest.mark.parametrize("lam", [PTRS_ABOVE, PTRS_ABOVE - 1.0])
def test_poisson_at_the_method_switch_equals_its_twin(lam):
    """A mean of exactly PTRS_ABOVE (128: e.g. a tuning step of 64 mV at 0.5 mV per
    electron) is drawn by transformed rejection, one below by the tables, whose rows stop at
    PTRS_ABOVE - 1 (so the table path at 128 would read past them): the numba draw equals
    its NumPy twin draw for draw, and the sample mean and variance are lam's."""
    assert _PCDF.shape[0] == int(PTRS_ABOVE)
    seeds = np.arange(1, 40001, dtype=np.uint64) * np.uint64(2654435761)
    k = _draw(float(lam), seeds, 16)
    assert np.array_equal(k, _poisson_np(np.full(seeds.size, float(lam)), seeds, 16))
    se = np.sqrt(lam / seeds.size)
    assert abs(k.mean() - lam) < 5 * se
    assert k.var() == pytest.approx(lam, rel=0.05)


def test_tuning_pulse_cdf_table_is_the_poisson_cdf_and_ends_at_one():
    """poisson_cdf_table (the tuning pulses' electron counts) is Poisson(lam)'s CDF to 1e-13
    and ends at exactly 1, so that no uniform (the largest is 1 - 2**-54) lies above it and
    draws the cap of 1000 electrons (the running sum alone ended up to 4.2e-15 below 1)."""
    from scipy.stats import poisson

    from norsim.device.counter_rng import poisson_cdf_table

    k = np.arange(1001)
    for lam in (0.37, 5.0, 64.0, 99.99, 100.0, 127.3, PTRS_ABOVE):
        cdf = poisson_cdf_table(lam)
        assert cdf.shape == (1001,) and cdf[-1] == 1.0
        assert np.all(np.diff(cdf) >= 0)
        np.testing.assert_allclose(cdf, poisson.cdf(k, lam), rtol=0, atol=1e-13)
