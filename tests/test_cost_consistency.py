"""The seed table's cost columns and ``norsim report`` agree for the same configuration, and
both state that configuration (issue 23: 310 nJ in the table vs 166 nJ from the report came
from an analog first layer the table did not mention)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from norsim.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
FAST = ["mapping.programming=ideal", "array.rows=64", "array.cols=64",
        "mapping.calibration_images=4"]


def _seed_table():
    spec = importlib.util.spec_from_file_location("scripts.seed_table",
                                                  ROOT / "scripts" / "seed_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from norsim.mapping.random_models import random_lenet

    p = tmp_path_factory.mktemp("m") / "lenet.npz"
    random_lenet(np.random.default_rng(1)).save(p)
    return str(p)


def test_seed_table_cost_equals_norsim_report(model_path, tmp_path, capsys):
    st = _seed_table()
    cost = st.cost_per_image(model_path, "mnist", 3, FAST)
    preset, options = st.cost_options(FAST)
    assert "mapping.first_layer=analog" in options
    out = tmp_path / "r.json"
    rc = main(["report", "--model", model_path, "--data", "mnist", "--limit", "3",
               "--preset", preset, *[a for o in options for a in ("--set", o)],
               "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    rep = json.loads(out.read_text())
    assert rep["total"]["energy_per_image_j"] == pytest.approx(cost["energy_per_image_j"], rel=1e-9)
    assert rep["total"]["latency_single_image_s"] == pytest.approx(cost["latency_per_image_s"],
                                                                   rel=1e-9)
    assert rep["range"]["energy_per_image_j"] == pytest.approx(cost["energy_range_j"], rel=1e-9)
    assert rep["configuration"] == cost["configuration"] == \
        "first layer analog, last layer analog, compensation off"
    assert "configuration: first layer analog" in text
    assert "preset nor40, options" in text and "mapping.first_layer=analog" in text
    # the note printed with the table says the configuration and how to reproduce it
    note = st.cost_note([{"name": "m", "cost": cost}], FAST)
    assert "first layer analog, last layer analog, compensation off" in note
    assert "mapping.first_layer=analog" in note and "m " in note


def test_configuration_changes_the_cost_and_is_stated(model_path, tmp_path, capsys):
    """The same model on the bare preset (first layer digital) costs differently and says so."""
    out = tmp_path / "d.json"
    assert main(["report", "--model", model_path, "--data", "mnist", "--limit", "3",
                 *[a for o in FAST for a in ("--set", o)], "--json", str(out)]) == 0
    capsys.readouterr()
    dig = json.loads(out.read_text())
    assert dig["configuration"].startswith("first layer digital")
    out2 = tmp_path / "a.json"
    assert main(["report", "--model", model_path, "--data", "mnist", "--limit", "3",
                 *[a for o in FAST + ["mapping.first_layer=analog"] for a in ("--set", o)],
                 "--json", str(out2)]) == 0
    ana = json.loads(out2.read_text())
    assert ana["configuration"].startswith("first layer analog")
    assert ana["total"]["energy_per_image_j"] != pytest.approx(dig["total"]["energy_per_image_j"],
                                                               rel=0.01)


def test_compensation_is_run_and_stated(model_path, tmp_path, capsys):
    out = tmp_path / "c.json"
    sets = FAST + ["compensation.enabled=true", "compensation.activation_recalibration=false",
                   "compensation.probe_patterns=4"]
    assert main(["report", "--model", model_path, "--data", "mnist", "--limit", "2",
                 *[a for o in sets for a in ("--set", o)], "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["configuration"].endswith("compensation on")
    assert "compensation on" in capsys.readouterr().out


def test_cached_seed_table_cost_is_recomputed_when_its_configuration_changed():
    st = _seed_table()
    preset, options = st.cost_options(FAST)
    from norsim.config.presets import load_preset

    model = load_preset(preset).with_overrides(options).cost.adc_model
    fresh = {"configuration": "first layer analog, last layer analog, compensation off",
             "options": options, "adc_model": model}
    assert not st.cost_is_stale(fresh, FAST)
    assert st.cost_is_stale({**fresh, "adc_model": "walden"}, FAST)
    assert st.cost_is_stale({**fresh, "options": options[:-1]}, FAST)
    assert st.cost_is_stale({"energy_per_image_j": 3.1e-7}, FAST)
