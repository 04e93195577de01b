"""The seed table (scripts/seed_table.py): a CI-sized smoke run of the on-array sweep of
examples/seed_table.toml on the zoo LeNet (16 images, 2 chips, ideal programming for speed),
the aggregation against an independent recomputation from the results file, resuming, the
rows the GPU has still to fill, and the docs/results.md block."""

from __future__ import annotations

import importlib.util
import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FAST = ["mapping.programming=ideal", "mapping.calibration_images=32",
        "compensation.recalibration_images=16"]


def _mod():
    spec = importlib.util.spec_from_file_location("scripts.seed_table",
                                                  ROOT / "scripts" / "seed_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_spec_has_the_three_conditions_and_five_chips():
    spec = tomllib.loads((ROOT / "examples" / "seed_table.toml").read_text())
    assert spec["base"]["preset"] == "nor40" and spec["seeds"]["count"] == 5
    (fields, values), = spec["axes"].items()
    fields = fields.split(",")
    assert fields[:2] == ["mapping.retention_time_s", "compensation.enabled"]
    ten_years = 10 * 365.25 * 86400
    assert [v[0] for v in values] == [0.0, ten_years, ten_years]
    assert [v[1] for v in values] == [False, False, True]
    # every point builds and validates (nor40: 6-bit ADC, 256 x 256, bake at 85 C)
    from norsim.experiments.spec import spec_from_dict

    s = spec_from_dict(spec, base_dir=ROOT / "examples")
    tasks = s.tasks()
    assert len(tasks) == 15
    cfg = tomllib.loads(tasks[0].config_toml)
    assert cfg["array"]["rows"] == cfg["array"]["cols"] == 256
    assert cfg["array"]["adc"]["bits"] == 6
    assert cfg["mapping"]["retention_temperature_k"] == pytest.approx(358.15, abs=0.2)


def test_aggregate_mean_and_sample_sd():
    m = _mod()
    rows = [{"point_index": 0, "status": "ok", "accuracy": a, "accuracy_n": 10,
             "reference_accuracy": 0.9} for a in (0.5, 0.7, 0.9)]
    rows.append({"point_index": 1, "status": "error", "accuracy": None})
    agg = m.aggregate(rows)
    assert agg["fresh"]["mean"] == pytest.approx(0.7)
    assert agg["fresh"]["sd"] == pytest.approx(0.2)          # sqrt(((.2)^2*2)/2)
    d = agg["fresh"]["vs_int_ref"]                          # per chip -0.4, -0.2, 0.0
    assert d["mean"] == pytest.approx(-0.2)
    half = 4.302653 * 0.2 / np.sqrt(3)                       # t(0.975, 2) sd / sqrt(n)
    assert d["t95"] == pytest.approx([-0.2 - half, -0.2 + half], rel=1e-5)
    assert "-20.00 [-69.68, +29.68] pts vs int-ref" in m._cell(agg["fresh"])
    assert agg["10 y 85 C"] == {"chips": 0, "failed": 1, "first_error": None}
    assert m._cell(agg["10 y 85 C"]) == "failed (1 runs)"
    assert m._cell(agg["10 y 85 C + comp."]) == "pending"


def test_smoke_table_on_the_zoo_lenet(tmp_path, capsys):
    from norsim.experiments.results import flat_rows

    m = _mod()
    out = tmp_path / "res"
    args = ["--models", "lenet-mnist-4b", "--images", "16", "--seeds", "2",
            "--cost-images", "8", "--out-dir", str(out), "--json", str(tmp_path / "t.json")]
    for s in FAST:
        args += ["--set", s]
    assert m.main(args) == 0
    table = json.loads((tmp_path / "t.json").read_text())
    row = next(r for r in table["rows"] if r["name"] == "lenet-mnist-4b")
    db = out / "lenet-mnist-4b-n16.sqlite"
    rows, _, _ = flat_rows(db)
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows)
    # the results file is complete on its own (no write-ahead log or lock left beside it)
    assert sorted(p.name for p in out.iterdir()) == ["lenet-mnist-4b-cost.json",
                                                     "lenet-mnist-4b-n16.sqlite"]
    for i, cond in enumerate(m.CONDITIONS):
        acc = np.array([r["accuracy"] for r in rows if r["point_index"] == i])
        got = row["on_array"][cond]
        assert got["chips"] == 2 and got["images"] == 16
        assert got["mean"] == pytest.approx(acc.mean())
        assert got["sd"] == pytest.approx(acc.std(ddof=1))
        assert 0.0 <= got["mean"] <= 1.0
    comp = [r for r in rows if r["point_index"] == 2]
    assert all(json.loads(json.dumps(r.get("compensation.enabled"))) is True for r in comp)
    cost = row["cost"]
    assert cost["energy_per_image_j"] > 0 and cost["latency_per_image_s"] > 0
    assert math.isfinite(cost["energy_per_image_j"])
    # the entry's own accuracies are carried over unchanged
    from norsim import zoo

    assert row["accuracy"] == zoo.entry("lenet-mnist-4b")["accuracy"]
    # the six CIFAR-10 models still to train are listed
    gpu = [r for r in table["rows"] if r.get("status") == m.PENDING]
    assert len(gpu) == 6 and {r["seed"] for r in gpu} >= {"90.07 % float", "91.65 % float",
                                                          "93.23 % float"}
    # resuming: nothing is run again, the rows stay the same
    before = [(r["point_index"], r["replicate"], r["finished_at"]) for r in rows]
    assert m.main(args) == 0
    after = [(r["point_index"], r["replicate"], r["finished_at"]) for r in flat_rows(db)[0]]
    assert sorted(before) == sorted(after)
    md = m.format_table(table["rows"])
    assert md.count(f"{m.PENDING} |") >= 6 and "lenet-mnist-4b" in md
    assert "needs GPU" not in md
    # a failed run is loud (one line, exit 1) and a rerun runs it again
    import sqlite3

    with sqlite3.connect(db) as con:
        con.execute("UPDATE points SET status = 'error', error = 'RuntimeError: boom', "
                    "metrics = '{}' WHERE point_index = 1 AND replicate = 0")
    capsys.readouterr()
    assert m.main(args + ["--no-run"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 on-array runs failed" in err[0] and "boom" in err[0]
    assert m.main(args) == 0
    again = flat_rows(db)[0]
    assert len(again) == 6 and all(r["status"] == "ok" for r in again)


def test_doc_block_is_replaced_between_markers(tmp_path):
    m = _mod()
    doc = tmp_path / "r.md"
    doc.write_text(f"intro\n{m.BEGIN}\nold\n{m.END}\ntail\n")
    m.write_doc("| new |", doc)
    assert doc.read_text() == f"intro\n{m.BEGIN}\n| new |\n{m.END}\ntail\n"
    assert m.BEGIN in (ROOT / "docs" / "results.md").read_text()
