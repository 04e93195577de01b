"""Circuit mode against ngspice (skipped without ngspice unless NORSIM_REQUIRE_NGSPICE=1)."""

import json
import os
import shutil
import stat

import pytest

from norsim.array.spice import read_raw, spice_check
from norsim.cli.main import main
from norsim.config.presets import load_preset
from norsim.errors import ExternalToolError

HAVE_NGSPICE = shutil.which("ngspice") is not None
REQUIRE = os.environ.get("NORSIM_REQUIRE_NGSPICE") == "1"


def _need_ngspice():
    if HAVE_NGSPICE:
        return
    if REQUIRE:
        pytest.fail("NORSIM_REQUIRE_NGSPICE=1 but ngspice is not on PATH")
    pytest.skip("ngspice not installed (set NORSIM_REQUIRE_NGSPICE=1 to make this a failure)")


@pytest.mark.parametrize("size", [32, 64])
def test_realistic_array_matches_ngspice(size):
    _need_ngspice()
    out = spice_check(load_preset("nor40"), size, size, seed=11)
    assert out["strap_model"] == "network"
    assert out["max_column_error_rel"] <= 1e-6  # issue 19: three decades below the IR effect
    assert out["ir_delta_error_rel"] <= 1e-3
    assert out["max_node_error_v"] <= 1e-9
    # the no-IR model is far outside the bound: the check resolves the wires' effect
    assert out["ir_drop_error_rel"] > 1e3 * out["max_column_error_rel"]
    assert out["ir_drop_error_rel"] > 1e-3


def test_stress_case_ir_delta_matches_ngspice():
    _need_ngspice()
    out = spice_check(load_preset("nor40"), 32, 32, seed=12, stress=True)
    assert out["ir_drop_error_rel"] >= 0.05  # a real stress case
    assert out["ir_delta_error_rel"] <= 1e-3
    assert out["max_column_error_rel"] <= 1e-6


@pytest.mark.parametrize("over", [
    ["array.wires.strap_pitch_cols=8", "array.wires.r_strap_pitch_ohm=2.0",
     "array.wires.strap_pads='one'"],
    ["array.wires.strap_pitch_cols=16", "array.wires.r_strap_pitch_ohm=1.0",
     "array.wires.sl_pair_shared=false"],
    ["array.wires.strap_model='ideal'"]])
@pytest.mark.parametrize("stress", [False, True])
def test_strap_network_cases_match_ngspice(over, stress):
    """The ground network (shared straps, one or both pads) against the same netlist in
    ngspice: columns to 1e-6 of the largest, the IR effect to 1e-3 of itself."""
    _need_ngspice()
    out = spice_check(load_preset("nor40").with_overrides(over), 24, 40, seed=14, stress=stress)
    assert out["max_column_error_rel"] <= 1e-6
    assert out["ir_delta_error_rel"] <= 1e-3
    assert out["ir_drop_error_rel"] > 1e3 * out["max_column_error_rel"]


@pytest.mark.parametrize("over", [["device.cell.cell_type='stacked_gate'"],
                                  ["array.wires.sl_layout='cols'"],
                                  ["array.wires.sl_pair_shared=false",
                                   "array.sense.clamp_gain=10.0"]])
def test_other_cells_and_layouts_match_ngspice(over):
    _need_ngspice()
    out = spice_check(load_preset("nor40").with_overrides(over), 12, 10, seed=13, stress=True)
    assert out["max_column_error_rel"] <= 1e-6
    assert out["max_node_error_v"] <= 1e-8


def test_cli_json(capsys):
    _need_ngspice()
    assert main(["spice-check", "--rows", "8", "--cols", "6", "--seed", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"max_column_error_rel", "ir_delta_error_rel", "max_node_error_v"} <= set(out)
    assert out["rows"] == 8 and out["cols"] == 6


def test_missing_ngspice_is_one_clear_error(capsys):
    with pytest.raises(ExternalToolError, match="ngspice not found"):
        spice_check(load_preset("nor40"), 4, 4, seed=0, ngspice="no-such-ngspice-binary")
    assert main(["spice-check", "--rows", "4", "--cols", "4", "--ngspice",
                 "no-such-ngspice-binary"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ngspice not found" in err[0]


def test_failing_ngspice_is_one_clear_error(tmp_path):
    fake = tmp_path / "fake-ngspice"
    fake.write_text("#!/bin/sh\necho 'Error: simulation aborted: timestep too small' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(ExternalToolError, match="ngspice failed.*aborted"):
        spice_check(load_preset("nor40"), 4, 4, seed=0, ngspice=str(fake))


def test_read_raw_ascii_and_truncated(tmp_path):
    p = tmp_path / "a.raw"
    p.write_text("Title: t\nPlotname: Operating Point\nFlags: real\nNo. Variables: 2\n"
                 "No. Points: 1\nVariables:\n\t0\tv(a)\tvoltage\n\t1\ti(v1)\tcurrent\n"
                 "Values:\n 0\t0.3\n\t-1.5e-06\n")
    assert read_raw(p) == {"v(a)": 0.3, "i(v1)": -1.5e-06}
    q = tmp_path / "b.raw"
    q.write_text("Title: t\nNo. Variables: 2\n")
    with pytest.raises(Exception, match="header"):
        read_raw(q)


@pytest.mark.parametrize("n,scale,temp_k,cell_type", [
    (64, 50.0, 300.0, "split_gate"),          # the first diverging case
    (48, 100.0, 358.15, "split_gate"),        # envelope corner: x100 wires, hot
    (48, 100.0, 233.15, "stacked_gate")])     # envelope corner: x100 wires, cold, stacked
def test_heavy_ir_drop_converges_and_matches_ngspice(n, scale, temp_k, cell_type):
    """All rows on, stress currents (0.3-1 uA) and wires x50-x100: the fixed-point sweeps
    diverge, the Newton kernel (or, past it, the damped Newton fallbacks) converges, and
    ngspice agrees to 1e-9 of the largest column current and of the IR effect."""
    import numpy as np

    from norsim.array.circuit import CircuitSolver
    from norsim.array.spice import check_setup, run_ngspice, write_netlist
    _need_ngspice()
    cfg = load_preset("nor40").with_overrides(
        [f"device.cell.cell_type='{cell_type}'", f"device.read.temperature_k={temp_k}"])
    vth, _, wires, model = check_setup(cfg, n, n, seed=13, stress=True)
    split = cell_type == "split_gate"
    wl = np.full(n, cfg.device.read.v_select_on_v if split else cfg.device.read.v_cg_read_v)
    solver = CircuitSolver(vth, cfg, model, wires=cfg.array.wires.scaled(scale))
    res = solver.solve(wl[None, :])
    assert solver.last_stats["newton_vectors"] == 1  # not the sweeps: the Newton kernel
    spice = write_netlist(solver, wl)
    vals = run_ngspice(spice.netlist).values
    i_sp = np.array([vals[f"i({m})"] for m in spice.column_sources])
    i_ns, i_id = res.column_currents[0], res.ideal_column_currents[0]
    assert np.abs(i_sp - i_id).max() > 0.2 * np.abs(i_sp).max()     # a heavy IR effect
    assert np.abs(i_ns - i_sp).max() <= 1e-9 * np.abs(i_sp).max()
    assert np.abs((i_ns - i_id) - (i_sp - i_id)).max() <= 1e-9 * np.abs(i_sp - i_id).max()
