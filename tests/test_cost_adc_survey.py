"""ADC energy from the ADC survey's Walden-FoM envelope: refit when the survey is present,
otherwise the committed constants; the quantile fit on synthetic data; ADC area sources."""

import math

import numpy as np
import pytest

from norsim.cost import adc_survey as s
from norsim.cost import technology as tech_mod
from norsim.cost.config import TechConfig
from norsim.errors import ConfigError

SURVEY = s.default_dir()


@pytest.mark.skipif(SURVEY is None, reason="ADC survey not present (../shared/data/adc-survey)")
def test_refit_reproduces_committed_constants():
    fit = s.fit(SURVEY)
    assert fit["designs"] == s.FIT["designs"]
    for curve in ("envelope", "median"):
        for k in ("fom_j", "corner_hz"):
            assert fit[curve][k] == pytest.approx(s.FIT[curve][k], rel=1e-3), (curve, k)


@pytest.mark.skipif(SURVEY is None, reason="ADC survey not present (../shared/data/adc-survey)")
def test_envelope_is_a_lower_envelope_of_the_survey():
    d = s.load(SURVEY)
    m = s.selection(d)
    fom = d["energy_j"][m] / 2.0 ** d["enob"][m]
    env = np.array([s.fom_j(f, "envelope") for f in d["f_nyq_hz"][m]])
    med = np.array([s.fom_j(f, "median") for f in d["f_nyq_hz"][m]])
    assert np.mean(fom < env) == pytest.approx(0.10, abs=0.02)
    assert np.mean(fom < med) == pytest.approx(0.50, abs=0.02)


def test_committed_constants():
    """The committed fit (docs/cost-model.md quotes it): envelope 11.2 fJ/step up to a
    20 GHz corner, median 49.3 fJ/step, 184 designs; the envelope lies below the median."""
    env, med = s.FIT["envelope"], s.FIT["median"]
    assert env["fom_j"] == pytest.approx(11.19e-15, rel=2e-3)
    assert env["corner_hz"] == pytest.approx(1.995e10, rel=2e-3)
    assert med["fom_j"] == pytest.approx(49.28e-15, rel=2e-3)
    assert med["corner_hz"] == pytest.approx(3.89e10, rel=2e-3)
    assert s.FIT["designs"] == 184
    for f in (1e6, 1e8, 1e10):
        assert s.fom_j(f, "envelope") < s.fom_j(f, "median")


def test_quantile_fit_recovers_a_synthetic_envelope():
    rng = np.random.default_rng(0)
    f = 10.0 ** rng.uniform(6, 11, 4000)
    F, fc = 5e-15, 3e9
    # log-normal spread above the curve: its 10 % quantile is the curve times 10^(0.3 z_0.1)
    fom = F * (1 + f / fc) * 10.0 ** (0.3 * rng.standard_normal(f.size))
    F10, fc10 = s.fit_quantile(f, fom, 0.10)
    z10 = -1.2815515655446004
    assert F10 == pytest.approx(F * 10 ** (0.3 * z10), rel=0.08)
    assert math.log10(fc10) == pytest.approx(math.log10(fc), abs=0.1)
    Fm, _ = s.fit_quantile(f, fom, 0.5)
    assert Fm == pytest.approx(F, rel=0.08)


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_survey_adc_energy_closed_form(bits):
    t = TechConfig()
    rate = 1.0 / ((bits + 1) * t.t_adc_per_bit_s)
    env = s.FIT["envelope"]
    expect = env["fom_j"] * (1 + rate / env["corner_hz"]) * 2 ** bits
    assert tech_mod.adc_energy_j(bits, t, "survey") == pytest.approx(expect, rel=1e-12)
    med = s.FIT["median"]
    assert tech_mod.adc_energy_j(bits, t, "survey_median") == pytest.approx(
        med["fom_j"] * (1 + rate / med["corner_hz"]) * 2 ** bits, rel=1e-12)
    lo, hi = tech_mod.adc_energy_bounds_j(bits, t)
    assert lo == min(tech_mod.adc_energy_j(bits, t, m) for m in ("survey", "survey_median", "sar_neurosim"))
    assert hi == tech_mod.adc_energy_j(bits, t, "survey_median")


def test_survey_energy_rises_with_rate_and_doubles_per_bit():
    assert s.energy_j(6, 1e9) > s.energy_j(6, 1e8)
    assert s.energy_j(7, 1e8) == pytest.approx(2 * s.energy_j(6, 1e8))
    with pytest.raises(ConfigError):
        tech_mod.adc_energy_j(6, TechConfig(), "median")


def test_adc_area_fitted_to_published_points():
    """470 + 1.76 x 2^bits um^2 passes through the 40 nm 6-bit SAR (Choo et al. ISSCC 2016,
    580 um^2) and the geometric mean of the two 8-bit converters scaled to 40 nm by node^2
    (Kull et al. ISSCC 2013, 1,500 um^2 at 32 nm; Fan et al. ISCAS 2022, 950 um^2 at 65 nm)."""
    t = TechConfig()
    assert tech_mod.adc_area_um2(6, t) == pytest.approx(580.0, rel=0.01)
    gm8 = math.sqrt(1500 * (40 / 32) ** 2 * 950 * (40 / 65) ** 2)
    assert tech_mod.adc_area_um2(8, t) == pytest.approx(gm8, rel=0.01)
    lo, hi = tech_mod.SPREAD["adc_area_base_um2"][:2]
    assert lo * gm8 == pytest.approx(950 * (40 / 65) ** 2, rel=0.02)
    assert hi * gm8 == pytest.approx(1500 * (40 / 32) ** 2, rel=0.02)
