"""Error budget: effect configurations, exactness when nothing is on, drops, CLI."""

import json

import numpy as np
import pytest

from norsim.cli.main import main
from norsim.config import load_preset
from norsim.experiments import budget as bud
from norsim.mapping import mapper
from norsim.mapping.random_models import random_lenet


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(21)
    model = random_lenet(rng, calib_n=8)
    images = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=6)
    return model, images, labels


def _diff(a, b, prefix=""):
    """Dotted names of the leaves that differ between two nested dicts."""
    out = set()
    for k in set(a) | set(b):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out |= _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.add(prefix + k)
    return out


def test_each_effect_restores_only_its_fields():
    full = load_preset().with_overrides({"mapping.retention_time_s": 1e6,
                                         "device.read.temperature_k": 330.0})
    ideal = mapper.ideal_config(full).to_dict()
    for name, (fields, _, _) in bud.EFFECTS.items():
        c = bud.effect_config(full, name)
        if not fields and name not in bud._SET:
            assert c is None, name
            continue
        changed = _diff(ideal, c.to_dict())
        extra = (changed - set(fields) - set(bud._NO_VARIATION) - set(bud._NO_DISTURB)
                 - set(bud._SET.get(name, {})))
        assert not extra, (name, extra)
        assert changed, name  # the effect really is switched on
    d2d = bud.effect_config(full, "d2d_variation")
    assert d2d.device.variation.vth_sigma_v == full.device.variation.vth_sigma_v > 0
    ret = bud.effect_config(full, "retention")
    assert ret.device.variation.vth_sigma_v == 0 and ret.mapping.retention_time_s == 1e6
    assert not ret.device.disturb.program_disturb and ret.device.disturb.fg_coupling_wl == 0
    cp = bud.effect_config(full, "fg_coupling")  # issue 20: each disturb alone
    assert cp.device.disturb.fg_coupling_wl == full.device.disturb.fg_coupling_wl > 0
    assert not cp.device.disturb.program_disturb and cp.device.variation.vth_sigma_v == 0
    rd = bud.effect_config(full.with_overrides({"device.disturb.read_count": 1e12}), "read_disturb")
    assert rd.device.disturb.read_count == 1e12 and rd.device.disturb.fg_coupling_bl == 0


def test_ir_drop_row_is_the_ideal_chip_with_per_vector_ir_drop():
    full = load_preset()
    c = bud.effect_config(full, "ir_drop")
    assert c.mapping.ir_drop == "network" and full.mapping.ir_drop == "none"
    assert c.array.wires == full.array.wires  # the preset's wires and straps
    assert c.array.adc.bits == mapper.ideal_config(full).array.adc.bits
    assert c.mapping.programming == "ideal" and not c.array.noise.rtn_enabled


def test_ir_drop_row_reports_its_certification(small):
    """The ir_drop row runs the per-vector IR surrogate and carries its certification
    (exact circuit solves during the run, error in ADC LSB), printed under the row."""
    model, images, labels = small
    full = load_preset().with_overrides({"array.rows": 64, "array.cols": 64,
                                         "mapping.ir_check_vectors": 2})
    rep = bud.budget(model, full, images[:3], labels[:3], images[:3], seeds=(0,),
                     effects=["ir_drop"], layer_sensitivity=False)
    ic = rep["effects"]["ir_drop"]["ir_check"]
    assert ic["n_checked"] == 2 * ic["tiles"] and 0 < ic["fraction_checked"] < 1
    assert 0 < ic["max_error_lsb"] <= 0.25 and ic["max_ir_effect_lsb"] > ic["max_error_lsb"]
    assert "IR surrogate certified on" in bud.format_report(rep)
    assert "ir_check" not in rep["effects"]["all"]  # the all-on chip runs without it


def test_budget_of_an_ideal_configuration_is_exact(small):
    model, images, labels = small
    full = mapper.ideal_config(load_preset().with_overrides({"array.rows": 128, "array.cols": 128}))
    rep = bud.budget(model, full, images, labels, images, seeds=(0,),
                     effects=["read_noise", "rtn", "adc_quantisation", "leakage"])
    for name, row in rep["effects"].items():
        if row["modelled"]:
            assert row["drop"] == 0.0, name
            assert all(v == float("inf") for v in row["snr_db"].values()), name
    assert rep["effects"]["leakage"]["modelled"] is False
    assert rep["consistency"]["sum_of_marginal_drops"] == 0.0
    analog = {n for n, layer in mapper.map_model(model, full).layers.items() if layer.analog}
    assert set(rep["layer_sensitivity"]) == analog
    assert all(r["drop"] == 0.0 for r in rep["layer_sensitivity"].values())


def test_coarse_adc_costs_accuracy_and_marginals_subtract_the_base(small):
    model, images, labels = small
    full = load_preset().with_overrides({"array.rows": 128, "array.cols": 128, "array.adc.bits": 2,
                                         "array.adc.noise_lsb": 1.0})
    rep = bud.budget(model, full, images, labels, images, seeds=(0,),
                     effects=["adc_quantisation", "adc_errors"], layer_sensitivity=False)
    q, e = rep["effects"]["adc_quantisation"], rep["effects"]["adc_errors"]
    assert min(q["snr_db"].values()) < 20  # 2-bit converter: coarse
    assert e["marginal_drop"] == pytest.approx(e["drop"] - q["drop"])
    for k in e["error_power"]:
        assert e["marginal_error_power"][k] == pytest.approx(e["error_power"][k] - q["error_power"][k])
    assert "most_sensitive_layer" not in rep


def test_budget_cli_writes_report_and_figure(small, tmp_path, capsys):
    model, _, _ = small
    path = model.save(tmp_path / "m.npz")
    out = tmp_path / "b.json"
    rc = main(["budget", "--model", str(path), "--limit", "3", "--effects", "rtn", "--no-layers",
               "--set", "array.rows=128", "--set", "array.cols=128",
               "--set", "mapping.calibration_images=3", "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    rep = json.loads(out.read_text())
    assert set(rep["effects"]) == {"rtn", "all"}
    assert rep["produced_by"] == (f"model {path}; preset nor40, options array.rows=128 "
                                  "array.cols=128 mapping.calibration_images=3")
    assert out.with_suffix(".png").stat().st_size > 1000
    cap = capsys.readouterr()
    assert "sum of marginal" in cap.out
    # no terminal: one progress line per chip run (rtn and all-on, one chip each) on stderr
    steps = [ln for ln in cap.err.splitlines() if ln.startswith("error budget: ")]
    assert [ln.split()[2] for ln in steps] == ["1/2", "2/2"]
    assert "rtn, chip seed" in steps[0] and "all, chip seed" in steps[1]


def test_budget_cli_rejects_unknown_effect(capsys):
    assert main(["budget", "--effects", "gravity"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gravity" in err[0]
