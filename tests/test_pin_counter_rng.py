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


def test_counter_hash_is_splitmix64_value_for_value():
    """_mix(seed, n) is output n + 1 of SplitMix64 seeded with ``seed`` (Steele, Lea & Flood,
    OOPSLA 2014; Vigna's splitmix64.c): the published first outputs for seed 0. Both the
    numba function and its NumPy twin, so neither can drift into 'another good stream'."""
    from norsim.device.counter_rng import _mix, _mix_np

    published = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F, 0xF88BB8A8724C81EC]
    for n, want in enumerate(published):
        assert int(_mix(np.uint64(0), np.uint64(n))) == want
    got = _mix_np(np.zeros(4, np.uint64), np.arange(4, dtype=np.uint64))
    assert [int(v) for v in got] == published


@pytest.mark.parametrize("lam", [300.5, 5000.0])
def test_transformed_rejection_draws_follow_the_poisson_law(lam):
    """PTRS (lam >= PTRS_ABOVE; Hoermann 1993): 200,000 draws in ~100 bins of about equal
    probability against scipy's Poisson law by a chi-square test; numba and NumPy twin
    equal draw for draw. The squeeze bound v_r and ln k! (a table below 4096, lgamma above:
    lam = 5000 draws k > 4096) only decide which test accepts a proposal: a wrong one biases
    the law (the squeeze region accepts without the ratio test)."""
    from scipy.stats import chisquare, poisson

    seeds = np.arange(200_000, dtype=np.uint64) * np.uint64(7919) + np.uint64(11)
    k = _draw(lam, seeds, 40)
    assert np.array_equal(k, _poisson_np(np.full(seeds.size, lam), seeds, 40))
    # ~100 bins of about equal mass (each expects >= ~1,000 draws), tails in the end bins:
    # bin i holds q[i - 1] < k <= q[i]
    q = np.unique(poisson.ppf(np.linspace(0.005, 0.995, 100), lam))
    obs = np.bincount(np.searchsorted(q, k, side="left"), minlength=q.size + 1)
    p = np.diff(np.concatenate([[0.0], poisson.cdf(q, lam), [1.0]]))
    assert p.min() * seeds.size > 500
    stat = chisquare(obs, p * seeds.size)
    assert stat.pvalue > 1e-4, (stat, obs.size)
