"""The compensation study keeps every finished (condition, chip) pair and resumes from it."""

import numpy as np
import pytest

from norsim.compensation.experiment import PartStore


def _result(rng, n=37):
    return {"seed": 3, "off": rng.random(n) < 0.7, "on": rng.random(n) < 0.9,
            "snr_off_db": {"fc1": 12.5}, "snr_on_db": {"fc1": 20.25}, "cost": {}, "log": ["x"],
            "seconds": 1.5}


def test_part_store_round_trip_and_signature(tmp_path):
    rng = np.random.default_rng(0)
    r = _result(rng)
    store = PartStore(tmp_path, {"images": 37, "overrides": []})
    assert store.load("read_358K", 3) is None
    store.save("read_358K", 3, r)
    back = store.load("read_358K", 3)
    for mode in ("off", "on"):
        np.testing.assert_array_equal(back[mode], r[mode])
        assert back[mode].dtype == bool
    assert back["snr_on_db"] == r["snr_on_db"] and back["seed"] == 3
    # another seed, condition or setting is not a finished pair
    assert store.load("read_358K", 4) is None and store.load("read_233K", 3) is None
    assert PartStore(tmp_path, {"images": 38, "overrides": []}).load("read_358K", 3) is None


def test_summary_pairs_only_seeds_with_a_fresh_baseline():
    from norsim.compensation.experiment import summarise
    from norsim.config.presets import load_preset

    rng = np.random.default_rng(1)
    fresh = {**_result(rng), "seed": 4}
    hot = [{**_result(rng), "seed": 4}, {**_result(rng), "seed": 3}]  # seed 3 has no baseline yet
    out = summarise({"fresh_300K": [fresh], "read_358K": hot}, np.ones(37, bool),
                    load_preset("nor40"))
    assert out["read_358K"]["off"]["per_seed"] == [float(hot[0]["off"].mean())]
    assert out["read_358K"]["off"]["vs_fresh_300K"]["mean"] == pytest.approx(
        hot[0]["off"].mean() - fresh["off"].mean(), abs=1e-12)


def test_chip_replicate_interval_is_the_t_interval_of_per_chip_differences():
    from scipy import stats

    from norsim.compensation.experiment import _t_interval

    d = np.array([0.01, 0.03, -0.02, 0.00, 0.02])
    lo, hi = _t_interval(d)
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    assert (lo, hi) == pytest.approx((d.mean() - half, d.mean() + half))
    assert _t_interval(np.array([0.5])) is None
