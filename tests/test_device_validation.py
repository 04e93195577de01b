"""Quick device validation (issue 16): every row runs, the closed-form, calibration and
statistics rows hold, and the CLI prints the table and writes one figure per row."""

import json
import subprocess
import sys

import numpy as np
import pytest

from norsim.config import load_preset
from norsim.device.validation import TOLERANCES, format_table, paper_cell, run_validation

STATUSES = {"PASS", "FAIL", "CALIB", "BOUND", "CLOSED", "INFO"}


@pytest.fixture(scope="module")
def rows():
    return run_validation(load_preset("nor40"), None, quick=True, seed=0)


def test_every_row_has_a_status_and_a_source(rows):
    assert len(rows) >= 10
    for r in rows:
        assert r.status in STATUSES and r.source and r.published and r.simulated
    text = format_table(rows)
    assert all(r.name in text for r in rows)


def test_physics_rows_hold(rows):
    by = {r.name: r for r in rows}
    assert by["subthreshold swing at 300 K"].status == "CLOSED"
    assert by["SS(85 C) / SS(27 C)"].status == "CLOSED"
    assert by["injection statistics"].status == "PASS"
    assert by["V_t loss 25 C / 90 C at 1000 h"].status == "CALIB"
    assert by["room-temperature hold, 1 day"].status == "BOUND"
    # issue 20: RTN trend (Liao 2017, built into rtn_level_gain), Markov occupancy closed form
    assert by["RTN Delta V_th vs level"].status == "CALIB"
    assert by["RTN stationary occupancy, Arrhenius times"].status == "CLOSED"
    drift = by["differential VMM drift 25-85 C"]
    assert drift.status in ("BOUND", "FAIL") and drift.values["nominal"]
    # issue 20 disturbs: closed forms, and the coupling study's two tuning orders
    for name in ("program disturb vs pulse count", "floating-gate coupling of neighbours",
                 "read disturb vs read count"):
        assert by[name].status == "CLOSED", name
    err = by["floating-gate coupling of neighbours"].values["map_error"]
    assert err["none"] < err["two_pass"] < err["cell_by_cell"]
    assert by["read disturb vs read count"].values["life_shift_v"] == 0.0  # nil at nor40's bias


def test_paper_cell_scales_area_quantities():
    cfg = load_preset("nor40")
    big = paper_cell(cfg, 1.0)
    s = cfg.cost.tech.cell_area_um2 / 1.0
    assert big.device.noise.rtn_mean_v == pytest.approx(cfg.device.noise.rtn_mean_v * s)
    assert big.device.programming.dv_per_electron_v == pytest.approx(
        cfg.device.programming.dv_per_electron_v * s)
    assert TOLERANCES["factor"] == 2.0


def test_cli_prints_table_and_writes_figures(tmp_path):
    out = tmp_path / "v"
    r = subprocess.run([sys.executable, "-m", "norsim.cli.main", "validate-device", "--quick",
                        "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode in (0, 1), r.stderr
    assert "status" in r.stdout and "tuning precision after 35 pulses" in r.stdout
    data = json.loads((out / "validation.json").read_text())
    figs = {row["figure"] for row in data["rows"]}
    assert len(figs) >= 6 and all(f.endswith(".png") for f in figs)
    assert r.returncode == int(any(row["status"] == "FAIL" for row in data["rows"]))
    assert np.isfinite(data["tolerances"]["factor"])
    # no terminal: a progress line per experiment on stderr, the last one counting all of them
    steps = [ln for ln in r.stderr.splitlines() if ln.startswith("validate-device: ")]
    assert len(steps) == 12 and steps[-1].startswith("validate-device: 12/12 experiments")


def test_figures_pass_the_figure_audit(tmp_path):
    from norsim.device import validation

    validation.FIGURE_PROBLEMS.clear()
    cfg = load_preset("nor40")
    validation.row_subthreshold_swing(cfg, tmp_path, True)
    validation.row_granularity(cfg, tmp_path, True, 0)
    validation.row_cost(cfg, tmp_path, True, 0)
    validation.row_retention(cfg, tmp_path, True, 0)
    validation.row_vmm(cfg, tmp_path, True, 0)
    assert len(validation.FIGURE_PROBLEMS) == 5
    assert not any(validation.FIGURE_PROBLEMS.values()), validation.FIGURE_PROBLEMS
