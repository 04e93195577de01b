"""``norsim device-study``: the CSVs behind the figures follow the physics they show."""

import csv
import subprocess
import sys

import numpy as np
import pytest

from norsim.cli.main import main
from norsim.config import SimConfig
from norsim.device.retention import acceleration_factor

YEARS = 10.0
BAKE_T = 358.15


def _read(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("device-study")
    rc = main(["device-study", "--out", str(out), "--cells-per-level", "300",
               "--bake-years", str(YEARS), "--bake-temperature-k", str(BAKE_T)])
    assert rc == 0
    return out


def test_outputs_exist(study):
    for name in ("iv_family.png", "iv_family.csv", "swing.csv", "levels_vth.png",
                 "levels_current.png", "level_cells.csv", "level_summary.csv", "programming.csv"):
        assert (study / name).stat().st_size > 0, name


def test_swing_ratio_follows_temperature(study):
    iv = _read(study / "iv_family.csv")
    cfg = SimConfig()
    c = cfg.device.cell
    swings = {}
    for t in (233.0, 300.0, 358.0):
        s = iv["temperature_k"] == t
        v, i = iv["v_gate_v"][s], iv["i_d_a"][s]
        assert np.all(np.diff(i) > 0)  # monotone in the gate voltage
        i_spec = 2 * c.slope_factor_n * c.beta_a_per_v2 * (t / c.t_ref_k) ** -c.mobility_exponent \
            * (1.380649e-23 * t / 1.602176634e-19) ** 2
        deep = (i > 1e-7 * i_spec) & (i < 1e-4 * i_spec)
        swings[t] = 1.0 / np.polyfit(v[deep], np.log10(i[deep]), 1)[0]
    n_t = {t: 1 + c.n_tempco_per_k * (t - c.t_ref_k) for t in swings}  # n(T) / n(T_ref)
    assert swings[358.0] / swings[233.0] == pytest.approx(358.0 * n_t[358.0] / (233.0 * n_t[233.0]), rel=0.01)
    assert swings[300.0] / swings[233.0] == pytest.approx(300.0 * n_t[300.0] / (233.0 * n_t[233.0]), rel=0.01)


def test_level_means_are_monotone(study):
    s = _read(study / "level_summary.csv")
    assert len(s["level"]) == 8
    assert np.all(np.diff(s["vth_mean_programmed_v"]) < 0)
    assert np.all(np.diff(s["i_mean_programmed_a"]) > 0)
    assert np.all(np.diff(s["target_current_a"][1:]) > 0)
    ov = s["overlap_next_programmed"][:-1]
    assert np.all((ov >= 0) & (ov <= 1))


def test_post_bake_shift_matches_retention_law(study):
    cfg = SimConfig()
    ret = cfg.device.retention
    cells = _read(study / "level_cells.csv")
    ok = cells["failed"] == 0
    shift = (cells["vth_baked_v"] - cells["vth_programmed_v"])[ok]
    # per cell: -A ln(1 + AF t / tau0) with the A the study drew (intrinsic cells)
    af = acceleration_factor(BAKE_T, ret.ea_ev, ret.t_ref_k)
    t = YEARS * 365.25 * 24 * 3600
    expect = -cells["retention_a_v"][ok] * np.log1p(af * t / ret.tau0_s)
    intrinsic = np.abs(shift - expect) < 1e-9
    assert intrinsic.mean() > 0.99  # all but the (rare) fast-leaking tail cells
    # the mean loss of each level follows the population law within its statistics
    for k in range(8):
        s = (cells["level"][ok] == k)
        vth = cells["vth_programmed_v"][ok][s]
        # charge relative to the neutral V_th (issue 16)
        a_mean = (ret.a_v_per_decade_per_v / np.log(10) * np.exp(ret.a_sigma_ln**2 / 2)
                  * (vth - ret.vth_neutral_v))
        law = -np.mean(a_mean) * np.log1p(af * t / ret.tau0_s)
        sem = np.std(shift[s]) / np.sqrt(s.sum())
        assert abs(shift[s].mean() - law) < 5 * sem + 2e-5


def test_cli_bad_input_one_line():
    for args in (["--set", "device.read.temperature_k=-1"],
                 ["--set", "device.programming.no_such_field=1"],
                 ["--cells-per-level", "0"],
                 ["--bake-temperature-k", "-3"],
                 ["--config", "/nonexistent/norsim.toml"]):
        r = subprocess.run([sys.executable, "-m", "norsim.cli.main", "device-study",
                            "--out", "/tmp/unused-norsim-ds", *args], capture_output=True, text=True)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode != 0 and len(lines) == 1, (args, r.stderr)
        assert "error" in lines[0]


def test_overlap_measure():
    from norsim.cli.device_study import _misread, _overlap

    a, b = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    assert _overlap(a, b) == 0.0
    assert _overlap(a + 10, b + 10) == 0.0            # invariant to a common shift
    assert _misread(a + 10, b + 10, 3.5) == 0.5      # a fixed threshold is not
    assert _overlap(np.array([1.0, 5.0]), np.array([2.0, 6.0])) == pytest.approx(0.25)
    same = np.arange(100.0)
    assert _overlap(same, same) == pytest.approx(0.5, abs=0.01)
