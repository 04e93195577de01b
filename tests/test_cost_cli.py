"""``norsim report`` and ``norsim array-sweep`` end to end on a small random LeNet."""

import csv
import json
import math

import numpy as np
import pytest

from norsim.cli.main import main


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from norsim.mapping.random_models import random_lenet

    m = random_lenet(np.random.default_rng(1))
    p = tmp_path_factory.mktemp("m") / "lenet.npz"
    m.save(p)
    return str(p)


FAST = ["--set", "mapping.programming='ideal'", "--set", "array.rows=64", "--set", "array.cols=64",
        "--set", "mapping.calibration_images=4"]


def test_report_without_data_says_calibration(model_path, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["report", "--model", model_path, "--limit", "2", "--json", str(out), *FAST])
    assert rc == 0
    text = capsys.readouterr().out
    assert "calibration images (no data set given)" in text
    rep = json.loads(out.read_text())
    assert rep["images"] == 2 and rep["ops_per_mac"] == 2
    assert rep["events_from"].startswith("mnist calibration images")
    tot = rep["total"]
    assert tot["energy_per_image_j"] == pytest.approx(sum(tot["energy_by_component_j"].values()))
    assert tot["tops_per_w"] == pytest.approx(2 * tot["macs_per_image"] / tot["energy_per_image_j"] / 1e12)
    assert out.with_suffix(".png").stat().st_size > 1000


def test_report_with_data_reports_accuracy(model_path, tmp_path, capsys):
    rc = main(["report", "--model", model_path, "--data", "mnist", "--limit", "2",
               "--figure", str(tmp_path / "f.png"), *FAST])
    assert rc == 0
    text = capsys.readouterr().out
    assert "accuracy on 2 mnist test images" in text


def test_report_bad_limit_one_line_error(model_path, capsys):
    rc = main(["report", "--model", model_path, "--limit", "0"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--limit" in err[0]


def test_array_sweep_csv_and_tile_counts(model_path, tmp_path, capsys):
    out = tmp_path / "sweep"
    rc = main(["array-sweep", "--model", model_path, "--sizes", "32,64", "--limit", "3",
               "--ir-vectors", "2", "--circuit-max", "32", "--out", str(out),
               "--set", "mapping.programming='ideal'", "--set", "mapping.calibration_images=4",
               "--set", "mapping.first_layer='analog'"])
    assert rc == 0
    steps = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("array-sweep: ")]
    assert [ln.split()[1] for ln in steps] == ["1/2", "2/2"]  # a line per size, no terminal
    rows = list(csv.DictReader(open(out / "array_sweep.csv")))
    assert [int(r["size"]) for r in rows] == [32, 64]
    # tiles: per layer ceil(in / N) row blocks x ceil(out / (N // p)) column blocks, p physical
    # columns per output: 2 (differential 4-bit), 6 for the 8-bit layers (3 bit-sliced pairs)
    shapes = [(25, 6, 6), (150, 16, 2), (400, 120, 2), (120, 84, 2), (84, 10, 6)]
    for r in rows:
        n = int(r["size"])
        expect = sum(math.ceil(i / n) * math.ceil(o / (n // p)) for i, o, p in shapes)
        assert int(r["tiles"]) == expect
        assert float(r["energy_per_image_j"]) > 0 and float(r["area_mm2"]) > 0
    assert rows[0]["ir_drop_rel_circuit"] != "" and rows[1]["ir_drop_rel_circuit"] == ""
    assert float(rows[0]["ir_drop_rel_surrogate"]) >= 0
    assert (out / "array_sweep.png").stat().st_size > 1000
