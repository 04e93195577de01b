"""Published NOR-flash CIM designs: predictions within 25 % or explained (issue 23)."""

import dataclasses

import pytest

from norsim.config.presets import load_preset
from norsim.cost import published as pub


@pytest.fixture(scope="module")
def table():
    return pub.validation_table()


def test_at_least_three_designs_two_figures_each(table):
    assert len(pub.DESIGNS) >= 3
    for key in pub.DESIGNS:
        roles = {r["role"] for r in table if r["design"] == key}
        assert roles == {"headline", "second"}


@pytest.mark.parametrize("key", sorted(pub.DESIGNS))
@pytest.mark.parametrize("role", ["headline", "second"])
def test_prediction_within_25_percent_or_explained(table, key, role):
    """Every figure within 25 % of the paper, unless the design explains that figure (at
    most one per design) -- then on the side its explanation states, within a factor of 2 --
    or lists it as unreached
    (its arithmetic is tested by the design's own test below)."""
    row = next(r for r in table if r["design"] == key and r["role"] == role)
    d = pub.DESIGNS[key]
    if row["metric"] in d.unreached:
        assert not (0.75 <= row["ratio"] <= 1.25), ("reached: drop it from unreached", row)
        return
    if row["explained"]:
        # the one explained row (Mythic power) is a model covering less than the chip: it
        # must come out lower; tests/test_pin_published.py checks it at both cost corners
        assert 0.5 <= row["ratio"] < 1.0, row
    else:
        assert abs(row["ratio"] - 1.0) <= pub.TOLERANCE, row


def test_at_most_one_explained_row_and_evidence_labelled():
    assert len(pub.DESIGNS) >= 4
    for key, d in pub.DESIGNS.items():
        assert len(d.explained) + len(d.unreached) <= 1, key
        assert set(d.explained) | set(d.unreached) <= {d.headline.metric, d.second.metric}, key
        assert d.evidence, key
    non_provisional = [k for k, d in pub.DESIGNS.items() if not d.provisional]
    assert len(non_provisional) >= 3


def test_model_choices_are_the_cost_defaults_not_fits():
    """The overrides every design gets are the CostConfig / TechConfig defaults."""
    from norsim.cost.config import CostConfig

    c = CostConfig()
    assert pub._MODEL["cost.adc_model"] == c.adc_model
    assert pub._MODEL["cost.tech.adc_area_base_um2"] == c.tech.adc_area_base_um2
    assert pub._MODEL["cost.tech.adc_area_per_level_um2"] == c.tech.adc_area_per_level_um2


def _zhang(**extra):
    d = pub.DESIGNS["zhang2021"]
    return pub.predict(dataclasses.replace(d, overrides={**d.overrides, **extra}))


def test_zhang2021_efficiency_rests_on_the_readout_reading(table):
    """The TOPS/W row is a prediction under one reading of the abstract's readout (the AS-Amp
    combines a weight's columns before one conversion); the other two readings miss 25 %
    on either side, so the row is not met by the frozen defaults alone."""
    d = pub.DESIGNS["zhang2021"]
    row = next(r for r in table if r["design"] == "zhang2021" and r["metric"] == "tops_per_w")
    assert not d.fitted and abs(row["ratio"] - 1.0) <= pub.TOLERANCE
    two = _zhang(**{"array.encoding.subtraction": "digital"})["tops_per_w"] / 35.6
    one_per_product = _zhang(**{"array.encoding.input_scheme": "multi_level"})["tops_per_w"] / 35.6
    assert two < 0.75 < 1.25 < one_per_product
    # halving the conversions per MAC (the ADC is most of the energy) nearly doubles TOPS/W
    assert 1.6 < row["ratio"] / two < 2.0


def test_zhang2021_throughput_arithmetic():
    """The unreached TOPS row's arithmetic: the published peak needs 40 ns per input bit;
    nor40's read phase and its ADC sharing each take longer, so neither parameter alone can
    close the gap; with both shortened the model reaches the figure."""
    d = pub.DESIGNS["zhang2021"]
    base = _zhang()
    weights = d.active_tiles * base["macs_per_tile"]
    assert weights == 262_144
    need_per_bit = 2 * weights / (d.second.value * 1e12) / d.overrides["array.encoding.input_bits"]
    assert need_per_bit == pytest.approx(40e-9, rel=1e-3)
    bits = d.overrides["array.encoding.input_bits"]
    t_phase = _zhang(**{"array.adc.columns_per_adc": 1})["mvm_interval_s"] / bits
    t_conv = _zhang(**{"device.read.t_read_s": 1e-10})["mvm_interval_s"] / bits
    assert t_phase > need_per_bit and t_conv > need_per_bit
    assert t_conv == pytest.approx(8 * 9e-9)
    assert base["tops"] / d.second.value == pytest.approx(need_per_bit / max(t_phase, t_conv))
    both = _zhang(**{"array.adc.columns_per_adc": 4, "device.read.t_read_s": 30e-9})
    assert 1.0 <= both["tops"] / d.second.value <= 1.25
    assert "tops" in d.unreached and d.provisional


def test_fits_target_the_headline_only(table):
    """A fitted parameter was fitted to the headline (which it then reproduces within 5 %);
    the second figure is a different metric and stays a prediction."""
    for key, d in pub.DESIGNS.items():
        assert d.second.metric != d.headline.metric
        head = next(r for r in table if r["design"] == key and r["role"] == "headline")
        if d.fitted:
            assert head["fitted"] and head["ratio"] == pytest.approx(1.0, abs=0.05), key
            assert all("fitted to" in why for why in d.fitted.values())
        second = next(r for r in table if r["design"] == key and r["role"] == "second")
        assert not second["fitted"]


def test_only_disclosed_fields_leave_nor40():
    """Every config field that differs from nor40 is one the design lists (disclosed or
    fitted) or one the workload turns off (noise: no effect on event counts)."""
    base = dict(load_preset("nor40").field_docs())
    nor40 = load_preset("nor40")
    for key, d in pub.DESIGNS.items():
        cfg = pub.design_config(d)
        allowed = set(d.overrides) | set(pub._QUIET) | set(pub._MODEL)
        for name in base:
            a, b = nor40, cfg
            for part in name.split("."):
                a, b = getattr(a, part), getattr(b, part)
            if a != b:
                assert name in allowed, (key, name)


def test_fitted_parameter_moves_the_headline():
    d = pub.DESIGNS["jin55nm"]
    p1 = pub.predict(d)
    p2 = pub.predict(dataclasses.replace(d, active_tiles=2 * d.active_tiles))
    assert p2["tops"] == pytest.approx(2 * p1["tops"])
    # energy efficiency does not depend on how many tiles run at once
    assert p2["tops_per_w"] == pytest.approx(p1["tops_per_w"])


def test_range_ratio():
    f = pub.Figure("power_w", 3.5, "W", "vendor claim", "3-4 W", lo=3.0, hi=4.0)
    assert f.ratio(3.2) == 1.0
    assert f.ratio(1.5) == pytest.approx(0.5)
    assert f.ratio(8.0) == pytest.approx(2.0)


def _cost_section() -> str:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "validation.md").read_text()
    return text[text.index("## Cost model vs published chips"):]


def _md_table(sec: str, header_start: str) -> list[list[str]]:
    """Body rows (cells stripped) of the markdown table whose header starts so."""
    lines = sec.splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.startswith(header_start))
    body = []
    for ln in lines[k + 2:]:
        if not ln.startswith("|"):
            break
        body.append([c.strip() for c in ln.strip().strip("|").split("|")])
    return body


def test_validation_md_cost_tables_match_the_code(table):
    """docs/validation.md's cost table (predicted ratio per row, in DESIGNS order, two rows
    per design) and its breakdown table (% of energy per block) are the code's numbers."""
    import re

    sec = _cost_section()
    main = _md_table(sec, "| design [evidence] | figure |")
    assert len(main) == len(table) == 2 * len(pub.DESIGNS)
    for cells, row in zip(main, table):
        doc_ratio = float(re.search(r"\d+\.\d+", cells[4]).group())
        assert doc_ratio == pytest.approx(row["ratio"], abs=0.006), (cells, row["ratio"])
    share = {c[0]: c[1:] for c in _md_table(sec, "| block (% of energy) |")}
    assert set(share) == set(pub.SYSTEM) - {"sourceline"}
    for k, (key, d) in enumerate(pub.DESIGNS.items()):
        e = pub.predict(d)["energy_per_mvm_j"]
        tot = sum(e.values())
        for comp, vals in share.items():
            if comp not in e:
                assert vals[k] == "--", (key, comp)
            else:
                assert float(vals[k]) == pytest.approx(100 * e[comp] / tot, abs=0.06), (key, comp)
