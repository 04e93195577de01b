"""Statistics pinned to independent references (issue 26): SciPy's own Wilson interval and
t-interval, the normal limit of the paired bootstrap, and what "resolved" means at 0."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from norsim.stats import paired_compare, paired_intervals, resolved, seed_spread, wilson_interval


@pytest.mark.parametrize("k,n", [(0, 20), (1, 29), (15, 148), (81, 263), (95, 100)])
@pytest.mark.parametrize("conf", [0.9, 0.95, 0.99])
def test_wilson_interval_equals_scipys(k, n, conf):
    want = st.binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
    assert wilson_interval(k, n, conf) == pytest.approx((want.low, want.high), abs=1e-12)


@pytest.mark.parametrize("conf", [0.8, 0.95])
def test_seed_spread_equals_scipys_t_interval(conf):
    v = np.array([0.61, 0.64, 0.59, 0.66, 0.62])
    lo, hi = st.t.interval(conf, v.size - 1, loc=v.mean(), scale=st.sem(v))
    s = seed_spread(v, conf)
    assert (s["low"], s["high"]) == pytest.approx((lo, hi), rel=1e-12)
    assert s["std"] == pytest.approx(v.std(ddof=1)) and s["n"] == 5


@pytest.mark.parametrize("conf", [0.5, 0.95])
def test_paired_bootstrap_ends_are_the_normal_quantiles_of_the_mean_difference(conf):
    # 4000 images, B better on 10 % and worse on 5 %: the bootstrap of the mean difference
    # is normal with sd = sd(d) / sqrt(n); each end sits z sd from the mean
    rng = np.random.default_rng(0)
    n = 4000
    u = rng.random(n)
    a = u >= 0.10
    b = (u < 0.10) | (u >= 0.15)
    r = paired_compare(a, b, np.random.default_rng(1), n_boot=4000, confidence=conf)
    d = b.astype(float) - a.astype(float)
    sd = d.std() / np.sqrt(n)
    z = st.norm.ppf(0.5 + conf / 2)
    assert (r.difference - r.bootstrap_low) / (z * sd) == pytest.approx(1.0, abs=0.1)
    assert (r.bootstrap_high - r.difference) / (z * sd) == pytest.approx(1.0, abs=0.1)
    # the same for paired_intervals' conditional interval (one chip)
    out = paired_intervals(a, b[None, :], np.random.default_rng(2), np.random.default_rng(3),
                           n_boot=4000, confidence=conf)
    lo, hi = out["conditional"]
    assert (out["mean"] - lo) / (z * sd) == pytest.approx(1.0, abs=0.1)
    assert (hi - out["mean"]) / (z * sd) == pytest.approx(1.0, abs=0.1)


def test_every_image_can_be_drawn_by_the_bootstrap():
    # only image 0 differs: a bootstrap that never drew it would give the interval [0, 0]
    ref = np.ones(3, bool)
    chip = ref.copy()
    chip[0] = False
    out = paired_intervals(ref, chip, np.random.default_rng(0), np.random.default_rng(1),
                           n_boot=400)
    assert out["conditional"][0] < 0
    r = paired_compare(ref, chip, np.random.default_rng(0), n_boot=400)
    assert r.bootstrap_low < 0 and r.only_a_correct == 1
    # one image is a valid (if uninformative) test set
    one = paired_intervals(ref[:1], chip[:1], np.random.default_rng(0), np.random.default_rng(1),
                           n_boot=50)
    assert one["mean"] == -1.0 and one["conditional"] == [-1.0, -1.0]


@pytest.mark.parametrize("interval,want", [((0.01, 0.2), True), ((-0.2, -0.01), True),
                                           ((-0.1, 0.1), False), ((-0.2, 0.0), False),
                                           ((0.0, 0.2), False), (None, False)])
def test_resolved_means_the_interval_excludes_zero(interval, want):
    assert resolved(interval) is want
