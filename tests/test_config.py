import dataclasses

import pytest

from norsim.config import SimConfig, load_preset
from norsim.errors import ConfigError


def test_preset_round_trips_through_toml():
    cfg = load_preset("nor40")
    again = SimConfig.from_toml(cfg.to_toml()).validate()
    assert again == cfg


def test_preset_file_names_every_field():
    from norsim.config.presets import preset_text
    import tomllib

    data = tomllib.loads(preset_text("nor40"))
    for name, _ in SimConfig.field_docs():
        node = data
        for part in name.split("."):
            assert part in node, f"preset nor40 lacks {name}"
            node = node[part]


def test_preset_names_cell_type_and_region():
    cfg = load_preset("nor40")
    assert cfg.device.cell.cell_type in ("split_gate", "stacked_gate")
    assert cfg.device.operating_region in ("subthreshold", "quasi_saturation")


def test_every_field_has_a_docstring():
    for name, meta in SimConfig.field_docs():
        assert meta.get("doc", "").strip(), f"{name} has no docstring"


def test_unknown_key_is_rejected_with_its_name():
    with pytest.raises(ConfigError, match="device.cell.no_such_field"):
        SimConfig.from_dict({"device": {"cell": {"no_such_field": 1}}})


def test_out_of_range_names_field_value_and_range():
    cfg = load_preset("nor40").with_overrides(["device.cell.alpha_g=0.5"])
    bad = dataclasses.replace(cfg.device.cell, slope_factor_n=0.5)
    with pytest.raises(ConfigError) as exc:
        dataclasses.replace(cfg, device=dataclasses.replace(cfg.device, cell=bad)).validate()
    assert exc.value.field == "device.cell.slope_factor_n"
    assert "0.5" in str(exc.value) and "[1, 3]" in str(exc.value)


@pytest.mark.parametrize("assignment, field", [
    ("device.read.temperature_k=-5", "device.read.temperature_k"),
    ("device.cell.cell_type='planar'", "device.cell.cell_type"),
    ("device.read.v_bl_read_v=nan", "device.read.v_bl_read_v"),
    ("array.rows=1.5", "array.rows"),
    ("device.nope=1", "device.nope"),
])
def test_overrides_are_validated(assignment, field):
    with pytest.raises(ConfigError) as exc:
        load_preset().with_overrides([assignment])
    assert exc.value.field == field


def test_override_applies():
    cfg = load_preset().with_overrides(["device.read.temperature_k=358", "array.rows=128"])
    assert cfg.device.read.temperature_k == 358.0 and cfg.array.rows == 128


def test_seeded_streams_are_reproducible():
    a = load_preset().rng(1, 2).standard_normal(5)
    b = load_preset().rng(1, 2).standard_normal(5)
    c = load_preset().rng(1, 3).standard_normal(5)
    assert (a == b).all() and not (a == c).all()
