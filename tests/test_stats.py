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


def _chips_with_offsets(n, wrong_per_chip, seed=0):
    """Reference correct on every image; chip k wrong on ``wrong_per_chip[k]`` random images."""
    rng = np.random.default_rng(seed)
    ref = np.ones(n, dtype=bool)
    chips = np.ones((len(wrong_per_chip), n), dtype=bool)
    for k, m in enumerate(wrong_per_chip):
        chips[k, rng.choice(n, size=m, replace=False)] = False
    return ref, chips


def test_two_level_equals_conditional_when_chips_are_identical():
    from norsim.stats import paired_intervals
    ref, chips = _chips_with_offsets(300, [9])
    rng = np.random.default_rng(5)
    ref = ref & (rng.random(300) > 0.05)           # some images the reference gets wrong
    same = np.repeat(chips, 6, axis=0)
    out = paired_intervals(ref, same, np.random.default_rng(1), np.random.default_rng(2))
    assert out["two_level"] == out["conditional"]
    assert out["t_over_chips"][0] == pytest.approx(out["mean"], abs=1e-15)   # sd 0
    # the conditional interval is the paired bootstrap of one chip (same image draws)
    one = paired_intervals(ref, chips, np.random.default_rng(1), np.random.default_rng(2))
    assert one["conditional"] == out["conditional"] and one["t_over_chips"] is None


def test_t_interval_over_chips_matches_its_closed_form():
    from norsim.stats import paired_intervals
    n, wrong = 400, [4, 10, 22, 7, 15]
    ref, chips = _chips_with_offsets(n, wrong)
    out = paired_intervals(ref, chips, np.random.default_rng(0), np.random.default_rng(1))
    d = -np.array(wrong) / n
    half = st.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    assert out["per_chip"] == pytest.approx(list(d))
    assert out["mean"] == pytest.approx(d.mean())
    assert out["t_over_chips"] == pytest.approx([d.mean() - half, d.mean() + half])
    # chips that differ widen the interval that counts them as replicates
    cw = out["conditional"][1] - out["conditional"][0]
    tw = out["two_level"][1] - out["two_level"][0]
    assert tw > 1.5 * cw
    assert out["two_level"][0] < d.mean() < out["two_level"][1]


def test_two_level_interval_coverage_over_chip_populations():
    """Chips drawn from a population with a true mean drop of 2 points and a chip-to-chip sd
    of 1.5 points, 6 chips x 500 images: the t-interval over chips covers the true drop about
    95 % of the time; the two-level percentile bootstrap somewhat less (a bootstrap over 6
    chips underestimates their variance by (K-1)/K; 89 % measured), the conditional interval
    (chips held fixed) far less (65 %)."""
    from norsim.stats import paired_intervals
    rng = np.random.default_rng(11)
    n, k, true_drop, sd = 500, 6, 0.02, 0.015
    hits_two, hits_cond, hits_t = 0, 0, 0
    trials = 150
    for t in range(trials):
        ref = np.ones(n, dtype=bool)
        p_wrong = np.clip(rng.normal(true_drop, sd, size=k), 0, 1)
        chips = rng.random((k, n)) >= p_wrong[:, None]
        out = paired_intervals(ref, chips, np.random.default_rng(t), np.random.default_rng(t + 1),
                               n_boot=400)
        hits_two += out["two_level"][0] <= -true_drop <= out["two_level"][1]
        hits_cond += out["conditional"][0] <= -true_drop <= out["conditional"][1]
        hits_t += out["t_over_chips"][0] <= -true_drop <= out["t_over_chips"][1]
    assert 0.90 <= hits_t / trials <= 0.99
    assert 0.85 <= hits_two / trials <= hits_t / trials
    # (the hull of the two, over_chips, covers at least as often as the t-interval)
    assert hits_cond / trials < hits_two / trials - 0.15


def test_paired_intervals_bad_shape():
    from norsim.stats import paired_intervals
    with pytest.raises(InputError, match="chip_correct"):
        paired_intervals(np.ones(5, bool), np.ones((2, 4), bool), np.random.default_rng(0),
                         np.random.default_rng(1))


def test_t_interval_ignores_image_sampling_the_two_level_bootstrap_does_not():
    """Chips that agree (each image is hard or easy for the configuration, a little
    chip-specific noise): the t-interval over chips covers the configuration's drop on the
    image population rarely, the two-level bootstrap about 95 % of the time; the hull of the
    two (``over_chips``) covers in both regimes."""
    from norsim.stats import paired_intervals
    rng = np.random.default_rng(12)
    n, k, drop, flip_p = 500, 6, 0.01, 0.001
    truth = -(drop + flip_p * (1 - 2 * drop))
    hits = {"two_level": 0, "t_over_chips": 0, "over_chips": 0}
    trials = 150
    for t in range(trials):
        fragile = rng.random(n) < drop
        chips = np.repeat(~fragile[None, :], k, axis=0) ^ (rng.random((k, n)) < flip_p)
        out = paired_intervals(np.ones(n, bool), chips, np.random.default_rng(t),
                               np.random.default_rng(t + 1), n_boot=400)
        for key in hits:
            hits[key] += out[key][0] <= truth <= out[key][1]
    assert hits["t_over_chips"] / trials < 0.5
    assert 0.90 <= hits["two_level"] / trials <= 0.99
    assert hits["over_chips"] >= hits["two_level"]


def test_paired_bootstrap_interval_has_its_level():
    """One fixed chip against the reference on images drawn from a population where the chip
    is wrong on 3 % and right where the reference is wrong on 1 % (independently): the
    paired-bootstrap 95 % interval of the difference covers the population difference
    (-2 points) about 95 % of the time, and the McNemar p-value falls below 0.05 about as
    often as the test's power says (here: nearly always at n = 2,000)."""
    rng = np.random.default_rng(21)
    n, trials, hits, rejects = 2000, 300, 0, 0
    p_only_ref, p_only_chip = 0.03, 0.01
    truth = p_only_chip - p_only_ref
    for t in range(trials):
        u = rng.random(n)
        ref = np.ones(n, bool)
        chip = np.ones(n, bool)
        chip[u < p_only_ref] = False                                # chip wrong, ref right
        ref[(u >= p_only_ref) & (u < p_only_ref + p_only_chip)] = False   # the reverse
        res = paired_compare(ref, chip, np.random.default_rng(1000 + t), n_boot=500)
        hits += res.bootstrap_low <= truth <= res.bootstrap_high
        rejects += res.mcnemar_p < 0.05
    assert 0.92 <= hits / trials <= 0.98
    assert rejects / trials > 0.95
