"""Ranges of the cost figures over the component sources (technology.SPREAD, ADC sources)."""

import dataclasses

import numpy as np
import pytest

from norsim.config.presets import load_preset
from norsim.cost import model as cm
from norsim.cost import technology as tech_mod
from norsim.cost.config import TechConfig

QUIET = {"mapping.programming": "ideal", "array.noise.shot_enabled": False,
         "array.noise.rtn_enabled": False, "array.noise.ktc_enabled": False,
         "array.rows": 64, "array.cols": 64}


@pytest.fixture(scope="module")
def activity():
    from norsim.mapping import engine, mapper
    from norsim.mapping.random_models import random_lenet

    model = random_lenet(np.random.default_rng(3))
    cfg = load_preset("nor40").with_overrides({**QUIET, "mapping.first_layer": "digital"})
    x = np.random.default_rng(5).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    chip = mapper.map_model(model, cfg)
    engine.calibrate(chip, x[:4])
    engine.run(chip, x[4:5])
    return cm.collect(chip, 1), cfg


def test_corner_tech_applies_each_spread():
    t = TechConfig()
    lo, hi = tech_mod.corner_tech(t, "low"), tech_mod.corner_tech(t, "high")
    for f, (a, b, why) in tech_mod.SPREAD.items():
        assert getattr(lo, f) == pytest.approx(a * getattr(t, f)), f
        assert getattr(hi, f) == pytest.approx(b * getattr(t, f)), f
        assert why, f
    # every spread field exists; the low corner is the cheaper one for each figure
    names = {f.name for f in dataclasses.fields(TechConfig)}
    assert set(tech_mod.SPREAD) <= names
    for f, (a, b, _) in tech_mod.SPREAD.items():
        assert (a <= 1 <= b) or (f == "cap_density_f_per_um2" and a > 1 > b), f


def test_range_brackets_nominal_and_is_priced_at_the_corners(activity):
    act, cfg = activity
    for model in ("survey", "sar_neurosim"):
        cost = cfg.cost.replace(adc_model=model)
        rep = cm.estimate_range(act, cost)
        rng = rep.ranges()
        for k, v in rep.totals().items():
            lo, hi = rng[k]
            assert lo <= v * (1 + 1e-12) and v <= hi * (1 + 1e-12), (model, k)
        lo_rep, hi_rep = rep.bounds
        # energy and area: low corner strictly cheaper, high corner strictly dearer
        assert lo_rep.energy_per_image_j < rep.energy_per_image_j < hi_rep.energy_per_image_j
        assert lo_rep.area_mm2 < rep.area_mm2 < hi_rep.area_mm2
        assert rng["tops_per_w"] == pytest.approx(
            (rep.tops_per_w * rep.energy_per_image_j / hi_rep.energy_per_image_j,
             rep.tops_per_w * rep.energy_per_image_j / lo_rep.energy_per_image_j))


def test_corner_components_closed_form(activity):
    """The high corner's ADC energy is the survey median, its sense energy 2.5x nominal."""
    act, cfg = activity
    nom = cm.estimate(act, cfg.cost.replace(adc_model="survey_median"))
    hi = cm.estimate(act, cfg.cost, corner="high")
    e_nom, e_hi = nom.energy_by_component_j, hi.energy_by_component_j
    assert e_hi["sense"] == pytest.approx(2.5 * e_nom["sense"])
    assert e_hi["buffer"] == pytest.approx(2.0 * e_nom["buffer"])
    assert e_hi["digital_mac"] == pytest.approx(2.3 * e_nom["digital_mac"])
    # t_adc_per_bit doubles at the high corner: the median's rate term shrinks a little
    t = tech_mod.effective_tech(cfg.cost)
    conv = sum(n for la in act.layers for tl in la.tiles for n in tl.adc_conversions.values())
    bits = {b for la in act.layers for tl in la.tiles for b in tl.adc_conversions}
    assert len(bits) == 1
    b = bits.pop()
    th = tech_mod.corner_tech(t, "high")
    expect = conv * tech_mod.adc_energy_j(b, th, "survey_median") / act.images
    assert e_hi["adc"] == pytest.approx(expect, rel=1e-9)
    # cell read charge is the simulation's own: no spread
    assert e_hi["cell_read"] == pytest.approx(e_nom["cell_read"])


def test_report_prints_ranges_and_configuration(activity):
    from norsim.cost.report import format_report, format_summary

    act, cfg = activity
    rep = cm.estimate_range(act, cfg.cost)
    text = format_report(rep)
    assert "configuration: first layer digital, last layer analog, compensation off" in text
    lo, hi = rep.ranges()["energy_per_image_j"]
    from norsim.cost.report import _eng

    assert f"[{_eng(lo, 'J')} - {_eng(hi, 'J')}]" in text
    assert "not a confidence interval" in text
    assert "compensation off" in format_summary([("x", rep)])
    d = rep.as_dict()
    assert d["configuration"] == rep.configuration and d["range"]["area_mm2"][0] < d["total"]["area_mm2"]
