"""Published-chip checks that are not circular (issue 26).

A figure used to fit a parameter cannot validate it. Each design of ``norsim.cost.published``
fits at most one parameter, to its *headline* figure; these tests pin that

* the *second* figure is held out: doubling the fitted parameter moves the headline about 2x
  but the second figure by under 10 %, so the second figure's agreement is a prediction;
* a held-out figure lies inside the band that the cost model's *sourced* technology spread
  gives (``norsim.cost.technology.SPREAD``: each factor cites its source, e.g. Horowitz
  ISSCC 2014 for adders and SRAM, the ADC-area spread of the converters it was fitted to),
  widened by the fit's own residual on the fitted headline -- a tolerance taken from the
  sources and the fit, not a factor chosen after the comparison;
* the one explained miss (Mythic M1076 power, vendor range 3-4 W for the whole chip) lies
  on the side its explanation states: the model covers the 76 tiles and their buffers only,
  so at either technology corner it must come out below the vendor's lower end.

Sources of the published figures (``norsim/cost/published.py``): Jin et al., 55 nm 8-Mb
embedded-NOR CIM SoC (silicon), abstract: 0.16 TOPS at 21.4 mW and 7.48 TOPS/W (whole SoC);
Mahmoodi & Strukov, DAC 2018, doi:10.1145/3195970.3195989, abstract: 39.45 TOps/mm^2
(post-layout); Zhang et al., ISCAS 2021, doi:10.1109/ISCAS51556.2021.9401600, abstract:
35.6 TOPS/W; Mythic M1076 vendor figures (electropages 2021, hyundaimib.com): 26 TOPS INT8,
3-4 W.
"""

import dataclasses

import pytest

from norsim.cost import published as pub
from norsim.cost import technology as tech_mod


def _scaled_fit(d: pub.Design, factor: float) -> pub.Design:
    """``d`` with its fitted parameter(s) multiplied by ``factor``."""
    changes, overrides = {}, dict(d.overrides)
    for name in d.fitted:
        if name in {f.name for f in dataclasses.fields(pub.Design)}:
            changes[name] = getattr(d, name) * factor
        else:
            overrides[name] = overrides[name] * factor
    return dataclasses.replace(d, overrides=overrides, **changes)


@pytest.fixture(scope="module")
def base():
    return {k: pub.predict(d) for k, d in pub.DESIGNS.items()}


@pytest.fixture(scope="module")
def corners():
    """Predictions with every sourced technology spread at its low- and high-cost end."""
    orig = tech_mod.effective_tech
    out = {}
    try:
        for c in tech_mod.CORNERS:
            pub.tech_mod.effective_tech = lambda cost, c=c: tech_mod.corner_tech(orig(cost), c)
            out[c] = {k: pub.predict(pub.DESIGNS[k]) for k in ("jin55nm", "mahmoodi2018",
                                                              "zhang2021", "mythic_m1076")}
    finally:
        pub.tech_mod.effective_tech = orig
    return out


def test_fitted_designs_exist():
    fitted = [k for k, d in pub.DESIGNS.items() if d.fitted]
    assert set(fitted) >= {"jin55nm", "mythic_m1076"}, fitted


@pytest.mark.parametrize("key", ["jin55nm", "mythic_m1076"])
def test_second_figure_is_held_out_from_the_fit(base, key):
    """The fitted parameter sets the headline (throughput ~ parallelism or 1 / read time)
    and leaves the second figure within 10 %: jin55nm's TOPS/W has no static power, so it
    does not depend on how many tiles run at once; Mythic's power is rate x energy per
    operation, and the cell read energy (most of it) grows with the read time as the rate
    falls, so it moves only through the smaller, time-independent parts."""
    d = pub.DESIGNS[key]
    p1, p2 = base[key], pub.predict(_scaled_fit(d, 2.0))
    head = p2[d.headline.metric] / p1[d.headline.metric]
    assert head == pytest.approx(2.0, rel=0.05) or head == pytest.approx(0.5, rel=0.05), head
    second = p2[d.second.metric] / p1[d.second.metric]
    assert abs(second - 1.0) < 0.10, (key, second)


def _band(corners, key, metric, widen=0.0):
    vals = [corners[c][key][metric] for c in tech_mod.CORNERS]
    return min(vals) * (1 - widen), max(vals) * (1 + widen)


def test_jin55nm_held_out_efficiency_inside_the_sourced_band(base, corners):
    """Silicon, held out from the fit: the SoC's measured 7.48 TOPS/W lies inside the
    prediction band of the sourced technology spread, widened by the fitted headline's
    residual (|0.16 TOPS predicted / published - 1|)."""
    d = pub.DESIGNS["jin55nm"]
    resid = abs(base["jin55nm"]["tops"] / d.headline.value - 1.0)
    assert resid < 0.05
    lo, hi = _band(corners, "jin55nm", "tops_per_w", resid)
    assert lo <= d.second.value <= hi, (lo, d.second.value, hi)
    # the band is a real constraint: narrower than the 25 % criterion on the low side
    assert lo > 0.5 * d.second.value


@pytest.mark.parametrize("key,metric", [("mahmoodi2018", "tops_per_mm2"),
                                        ("zhang2021", "tops_per_w")])
def test_unfitted_predictions_inside_the_sourced_band(corners, key, metric):
    """Designs with no fitted parameter: the published figure inside the sourced band
    (no widening: nothing was fitted). Mahmoodi's TOPS/W is not in this list: 1,680 TOPS/W
    lies 7 % above the low-cost corner (the cell read current and time, which dominate its
    energy, carry no sourced spread; docs/validation.md keeps it as a 25 % row)."""
    d = pub.DESIGNS[key]
    fig = d.headline if d.headline.metric == metric else d.second
    lo, hi = _band(corners, key, metric, 1e-3)
    assert lo <= fig.value <= hi, (lo, fig.value, hi)


def test_mythic_power_explained_on_the_stated_side(base, corners):
    """The vendor's 3-4 W is the whole M1076; the model covers the 76 tiles and their
    buffers, so it must come out below 3 W at both technology corners -- and not by so much
    that the tiles would be a negligible part of the chip (the frozen factor of 2 of the
    explained rows, an a-priori bound, not fitted)."""
    d = pub.DESIGNS["mythic_m1076"]
    assert "power_w" in d.explained
    for p in [base["mythic_m1076"]] + [corners[c]["mythic_m1076"] for c in tech_mod.CORNERS]:
        assert 0.5 * d.second.lo <= p["power_w"] < d.second.lo, p["power_w"]
