"""Statistics for accuracy reports: paired tests between two settings on the same images,
test-set sampling intervals, and chip-to-chip (seed) spread, kept separate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from norsim.errors import InputError


def _as_bool(name: str, a) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        raise InputError(name, a.shape, "a 1-D array of per-image correctness")
    return a.astype(bool)


def wilson_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (test-set sampling error)."""
    if total <= 0:
        raise InputError("total", total, "a positive number of images")
    z = _st.norm.ppf(0.5 + confidence / 2)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return float(centre - half), float(centre + half)


@dataclass(frozen=True)
class PairedComparison:
    """Accuracy difference B - A on the same images."""

    accuracy_a: float
    accuracy_b: float
    difference: float
    only_a_correct: int
    only_b_correct: int
    mcnemar_p: float
    bootstrap_low: float
    bootstrap_high: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * _st.binom.cdf(min(only_a, only_b), n, 0.5)))


def paired_compare(correct_a, correct_b, rng: np.random.Generator, n_boot: int = 2000,
                   confidence: float = 0.95) -> PairedComparison:
    """McNemar test and paired-bootstrap interval of accuracy(B) - accuracy(A)."""
    a = _as_bool("correct_a", correct_a)
    b = _as_bool("correct_b", correct_b)
    if a.shape != b.shape or a.size == 0:
        raise InputError("correct_b", b.shape, f"the same non-empty shape as correct_a {a.shape}")
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(b & ~a))
    diff = b.astype(np.int8) - a.astype(np.int8)
    idx = rng.integers(0, diff.size, size=(n_boot, diff.size))
    boots = diff[idx].mean(axis=1)
    lo, hi = np.quantile(boots, [(1 - confidence) / 2, (1 + confidence) / 2])
    return PairedComparison(float(a.mean()), float(b.mean()), float(diff.mean()), only_a, only_b,
                            mcnemar_exact(only_a, only_b), float(lo), float(hi))


def seed_spread(values, confidence: float = 0.95) -> dict:
    """Mean, standard deviation and t-interval of the mean over chip instances (seeds)."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size == 0:
        raise InputError("values", v.shape, "a non-empty 1-D array (one value per seed)")
    mean = float(v.mean())
    if v.size == 1:
        return {"mean": mean, "std": 0.0, "low": mean, "high": mean, "n": 1}
    std = float(v.std(ddof=1))
    half = float(_st.t.ppf(0.5 + confidence / 2, v.size - 1) * std / np.sqrt(v.size))
    return {"mean": mean, "std": std, "low": mean - half, "high": mean + half, "n": int(v.size)}


def paired_intervals(ref_correct, chip_correct, rng_images: np.random.Generator,
                     rng_chips: np.random.Generator, n_boot: int = 1000,
                     confidence: float = 0.95) -> dict:
    """Accuracy difference (chips - reference) on the same images, with its intervals.

    ``chip_correct`` is (chips, images). Three intervals of the mean difference:

    * ``conditional``: paired bootstrap over images with the simulated chips held fixed
      (what these chips do on a test set like this one);
    * ``two_level``: bootstrap over chips, then over images (the images drawn once per
      replicate and shared by the drawn chips, as the design is paired): what a new set of
      chips of this configuration would do; chips as replicates;
    * ``t_over_chips``: t-interval over the per-chip differences (chips as replicates,
      images fixed), ``None`` with one chip.

    The image draws come from ``rng_images`` in the same order for both bootstraps, so with
    identical chips the two-level interval equals the conditional one exactly.

    Neither chip-replicate interval is right alone (tests/test_stats.py measures both): the
    t-interval holds the images fixed, so where the chips agree and the images decide it
    covers far too rarely (28 % measured); the two-level percentile bootstrap runs narrow
    with few, widely spread chips (89 % with 6). ``over_chips`` is the hull of the two, the
    interval to quote for a configuration (one chip: the two-level one, which is then the
    conditional one).
    """
    ref = _as_bool("ref_correct", ref_correct)
    c = np.asarray(chip_correct)
    if c.ndim == 1:
        c = c[None, :]
    if c.ndim != 2 or c.shape[1] != ref.size or c.shape[0] < 1 or ref.size == 0:
        raise InputError("chip_correct", c.shape, f"(chips, {ref.size}) per-image correctness")
    d = c.astype(np.float64) - ref.astype(np.float64)[None, :]        # chips x images
    n_chips, n = d.shape
    q = [(1 - confidence) / 2, (1 + confidence) / 2]
    img = rng_images.integers(0, n, size=(n_boot, n))
    chips = rng_chips.integers(0, n_chips, size=(n_boot, n_chips))
    per_chip_boot = np.empty((n_boot, n_chips))
    for k in range(n_chips):                      # mean over drawn images, per chip
        per_chip_boot[:, k] = d[k][img].mean(axis=1)
    conditional = per_chip_boot.mean(axis=1)
    two_level = np.take_along_axis(per_chip_boot, chips, axis=1).mean(axis=1)
    per_chip = d.mean(axis=1)
    out = {"mean": float(d.mean()), "chips": int(n_chips), "images": int(n),
           "per_chip": per_chip.tolist(),
           "conditional": [float(v) for v in np.quantile(conditional, q)],
           "two_level": [float(v) for v in np.quantile(two_level, q)],
           "t_over_chips": None}
    out["over_chips"] = out["two_level"]
    if n_chips > 1:
        sd = float(per_chip.std(ddof=1))
        half = float(_st.t.ppf(q[1], n_chips - 1) * sd / np.sqrt(n_chips))
        out["t_over_chips"] = [float(per_chip.mean() - half), float(per_chip.mean() + half)]
        out["over_chips"] = [min(out["two_level"][0], out["t_over_chips"][0]),
                             max(out["two_level"][1], out["t_over_chips"][1])]
    return out


def resolved(interval) -> bool:
    """True when a difference interval excludes 0."""
    return interval is not None and (interval[0] > 0 or interval[1] < 0)
