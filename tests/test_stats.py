import numpy as np
import pytest
from scipy import stats as st

from norsim.errors import InputError
from norsim.stats import mcnemar_exact, paired_compare, seed_spread, wilson_interval


def test_wilson_contains_p_and_shrinks_with_n():
    lo1, hi1 = wilson_interval(90, 100)
    lo2, hi2 = wilson_interval(9000, 10000)
    assert lo1 < 0.9 < hi1 and lo2 < 0.9 < hi2
    assert hi2 - lo2 < (hi1 - lo1) / 5


def test_wilson_coverage_by_simulation():
    rng = np.random.default_rng(0)
    p, n = 0.97, 500
    hits = [wilson_interval(k, n)[0] <= p <= wilson_interval(k, n)[1]
            for k in rng.binomial(n, p, size=2000)]
    assert 0.93 < np.mean(hits) < 0.97 + 0.02


def test_mcnemar_matches_binomial_test():
    for a, b in [(3, 12), (10, 10), (0, 7)]:
        assert mcnemar_exact(a, b) == pytest.approx(st.binomtest(a, a + b, 0.5).pvalue)


def test_paired_compare_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(1)
    a = rng.random(5000) < 0.9
    b = a.copy()
    flip = rng.choice(5000, 200, replace=False)
    b[flip] = False  # B loses ~3.6 points
    res = paired_compare(a, b, np.random.default_rng(2))
    assert res.difference < 0 and res.mcnemar_p < 1e-10 and res.bootstrap_high < 0
    same = paired_compare(a, a, np.random.default_rng(2))
    assert same.mcnemar_p == 1.0 and same.bootstrap_low == same.bootstrap_high == 0


def test_seed_spread_t_interval():
    v = [0.98, 0.985, 0.99, 0.975, 0.982]
    s = seed_spread(v)
    assert s["low"] < np.mean(v) < s["high"] and s["std"] == pytest.approx(np.std(v, ddof=1))


def test_bad_shapes():
    with pytest.raises(InputError):
        paired_compare(np.ones(3), np.ones(4), np.random.default_rng(0))
    with pytest.raises(InputError):
        wilson_interval(1, 0)
