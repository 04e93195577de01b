"""norsim fit: readers' one-line errors, degeneracy detection, preset writing, CLI (issue 25).
Coverage over 20 seeds is in tests/test_fit_coverage.py."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from norsim.config.presets import load_preset
from norsim.config.sim import SimConfig
from norsim.errors import FileFormatError
from norsim.fit import synth
from norsim.fit.formats import Measurement, read_measurement, write_csv
from norsim.fit.ivfit import fit_iv
from norsim.fit.retfit import fit_retention

CFG = load_preset()
LEAKY = CFG.with_overrides({"device.retention.a_v_per_decade_per_v": 3e-3})


def _csv(tmp_path, text, name="m.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


# ------------------------------------------------------------------ readers ----------
def test_reader_accepts_documented_csv_and_infers_kind(tmp_path):
    p = _csv(tmp_path, "# comment\nv_cg_V,v_d_V,temp_K,i_d_A\n1.0,0.1,300,1e-8\n1.1,0.1,300,2e-8\n")
    m = read_measurement(p)
    assert m.kind == "iv" and len(m) == 2
    assert m.columns["i_d"][1] == 2e-8


@pytest.mark.parametrize("text, needles", [
    ("v_cg_V,v_d_V,temp_K,i_d_nA\n1,0.1,300,5\n", ["i_d_nA", "unit 'nA'", "expected 'A'", "1e-09"]),
    ("v_cg_V,v_d_V,i_d_A\n1,0.1,1e-8\n", ["'temp_K' missing"]),
    ("v_cg_V,v_d_V,temp_K,i_d_A\n1,0.1,300,1e-8\n1.1,0.1,300,nan\n", ["'i_d_A' row 2", "nan"]),
    ("v_cg_V,v_d_V,temp_K,i_d_A\n1,0.1,300,1e-8\n1.1,0.1,300\n", ["row 2 (line 3)", "3 values"]),
    ("v_cg_V,v_d_V,temp_K,i_d_A\n1,0.1,-3,1e-8\n", ["'temp_K' row 1", "> 0 K"]),
    ("v_cg_V,v_d_V,temp_K,i_d_A\n1,0.1,300,abc\n", ["'i_d_A' row 1", "'abc' is not a number"]),
    ("v_cg_V,v_d_V,temp_K,i_d_A,gain_dB\n1,0.1,300,1e-8,3\n", ["'gain_dB'", "not a known column"]),
    ("cell,temp_K,time_s,vth_V,target_A\n0,300,0,1,1e-8\n", ["placement", "'i_d_A' missing"]),
    ("cell,time_s,i_d_A\n0.5,0,1e-8\n", ["'cell' row 1", "whole number"]),
])
def test_bad_csv_is_one_line_naming_file_column_row(tmp_path, text, needles):
    p = _csv(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_measurement(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg
    for n in needles:
        assert n in msg, msg


def test_npz_inconsistent_shapes_and_pickles_are_refused(tmp_path):
    p = tmp_path / "m.npz"
    np.savez(p, v_cg_V=np.ones(3), v_d_V=np.ones(3), temp_K=np.full(3, 300.0), i_d_A=np.ones(2))
    with pytest.raises(FileFormatError, match=r"column 'i_d_A': 2 rows, expected 3"):
        read_measurement(p)
    q = tmp_path / "obj.npy"
    np.save(q, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match="pickle"):
        read_measurement(q)


def test_structured_npy_reads_like_csv(tmp_path):
    a = np.zeros(3, dtype=[("cell", "i4"), ("time_s", "f8"), ("i_d_A", "f8")])
    a["time_s"] = [0, 1, 2]
    a["i_d_A"] = [1e-8, 1.1e-8, 0.9e-8]
    np.save(tmp_path / "r.npy", a)
    m = read_measurement(tmp_path / "r.npy")
    assert m.kind == "reads" and m.columns["time"][2] == 2.0


# ------------------------------------------------------------------ degeneracies -----
def _iv(seed=0, points=15, **kw):
    cols, truth = synth.iv_sweeps(CFG, np.random.default_rng(seed), points=points, **kw)
    return fit_iv(CFG.device, Measurement("iv.csv", "iv", cols))[0], truth[0]


def test_device_to_device_spread_from_several_cells():
    from norsim.fit.population import iv_population

    cols, truth = synth.iv_sweeps(CFG, np.random.default_rng(0), cells=12, points=15)
    cells = fit_iv(CFG.device, Measurement("iv.csv", "iv", cols))
    p, _, _ = iv_population(CFG.device, cells)
    # the estimate is the spread of the cells' true values (estimation noise subtracted)
    n = np.array([t["slope_factor_n"] for t in truth])
    ln_b = np.log([t["i_s_a"] / t["slope_factor_n"] for t in truth])
    got_n = p["device.variation.n_sigma_rel"]
    assert got_n["value"] == pytest.approx(n.std(ddof=1) / n.mean(), abs=0.003)
    assert got_n["interval"][0] < CFG.device.variation.n_sigma_rel < got_n["interval"][1]
    assert p["device.variation.beta_sigma_rel"]["value"] == pytest.approx(ln_b.std(ddof=1), abs=0.005)
    # and the population mean of n carries the standard error of 12 cells
    assert p["device.cell.slope_factor_n"]["value"] == pytest.approx(n.mean(), abs=0.01)


def test_coupling_ratio_vs_slope_factor_is_reported_conditional():
    r, truth = _iv(temps_k=(300.0,))
    cond = r["outcome"].conditional
    assert cond and {"slope_factor_n", "alpha_g"} <= set(cond[0]["parameters"])
    # the exact symmetry: the undetermined direction moves n and alpha_G in proportion
    d = cond[0]["undetermined_direction"]
    ratio = d["slope_factor_n"] / d["alpha_g"]
    assert ratio == pytest.approx(r["outcome"].value("slope_factor_n") / CFG.device.cell.alpha_g,
                                  rel=0.02)


def test_vth_vs_is_degenerate_without_moderate_inversion():
    """Sweeps that stay in weak inversion fix only ln I_S - alpha V_th / (n U_T)."""
    r, truth = _iv(temps_k=(300.0,), v_cg_below=0.6, v_cg_above=-0.3)
    assert "ln_i_s" in r["degenerate_params"] and "vth_v" in r["degenerate_params"]
    combo = r["held"][0]["because"][0]["combinations"][0]
    slope = CFG.device.cell.alpha_g / (truth["slope_factor_n"] * 0.025852)
    assert {combo["a"], combo["b"]} == {"ln_i_s", "vth_v"}
    c = combo["coefficient"] if combo["a"] == "ln_i_s" else 1 / combo["coefficient"]
    assert c == pytest.approx(slope, rel=0.1)
    # a single gate bias (three drain voltages, three temperatures) cannot separate them either
    one, _ = _iv(v_cg_below=0.3, v_cg_above=-0.3, points=1, v_d=(0.1, 0.2, 0.3))
    assert {"ln_i_s", "vth_v", "slope_factor_n"} <= set(one["degenerate_params"])
    # and the full sweep separates them
    full, _ = _iv(temps_k=(300.0,))
    assert not full["held"] and "vth_v" not in full["degenerate_params"]


def _bake(seed=0, cells=16, **kw):
    cols, truth = synth.bake_logs(LEAKY, np.random.default_rng(seed), cells=cells, **kw)
    return fit_retention(LEAKY.device, Measurement("bake.csv", "retention", cols)), truth


def test_activation_energy_needs_three_temperatures():
    one, _ = _bake(temps_k=(398.0,))
    assert one["params"]["device.retention.ea_ev"]["status"] == "degenerate"
    assert any({"ea_ev", "ln_tau0_s"} <= set(d["parameters"]) for d in one["degenerate"])
    two, _ = _bake(temps_k=(358.0, 423.0))
    assert two["params"]["device.retention.ea_ev"]["status"] == "degenerate"
    assert any("ln[AF(" in d["determined"] for d in two["degenerate"])
    three, _ = _bake(cells=32)
    assert three["params"]["device.retention.ea_ev"]["status"] == "determined"


def test_one_time_decade_leaves_tau0_and_a_degenerate():
    r, _ = _bake(times_s=np.r_[0.0, np.logspace(3, 4, 5)])
    assert r["params"]["device.retention.tau0_s"]["status"] == "degenerate"
    assert r["params"]["device.retention.a_v_per_decade_per_v"]["status"] == "degenerate"


def test_white_noise_scale_sees_noise_the_model_lacks():
    from norsim.fit.noisefit import fit_reads

    def scale(cfg):
        cols, _ = synth.repeated_reads(cfg, np.random.default_rng(0), cells=256, reads=40)
        return fit_reads(CFG.device, Measurement("r.csv", "reads", cols))["checks"][
            "white_noise_scale"]

    nominal = scale(CFG)
    assert nominal["interval"][0] < 1.1 and nominal["interval"][1] > 0.95
    noisy = scale(CFG.with_overrides({"device.noise.flicker_kf": 3e-5}))  # 1/f the fit lacks
    assert noisy["interval"][0] > 2.0


# ------------------------------------------------------------------ CLI end to end ----
@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    d = tmp_path_factory.mktemp("fit")
    rng = np.random.default_rng(3)
    write_csv(d / "iv.csv", synth.iv_sweeps(CFG, rng, points=15)[0])
    write_csv(d / "reads.csv", synth.repeated_reads(CFG, rng, cells=64, reads=40)[0])
    write_csv(d / "place.csv", synth.placement_map(CFG, rng, cells=256)[0])
    write_csv(d / "bake.csv", synth.bake_logs(LEAKY, rng, cells=24)[0])
    files = [str(d / f) for f in ("iv.csv", "reads.csv", "place.csv", "bake.csv")]
    r = subprocess.run([sys.executable, "-m", "norsim.cli.main", "fit", *files, "--out",
                        str(d / "out")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return d, r.stdout


def test_fit_writes_loadable_preset_and_sidecar(fitted):
    d, stdout = fitted
    cfg = SimConfig.load(d / "out" / "fitted.toml")
    side = json.loads((d / "out" / "fit.json").read_text())
    n = side["params"]["device.cell.slope_factor_n"]
    assert cfg.device.cell.slope_factor_n == pytest.approx(n["value"])
    assert n["status"] == "conditional" and n["interval"][0] < n["value"] < n["interval"][1]
    for field, p in side["params"].items():
        if "(derived)" in field:
            continue
        section, name = field.rsplit(".", 1)
        got = getattr(eval("cfg." + section), name)  # noqa: S307 (a dotted field path)
        base = getattr(eval("CFG." + section), name)  # noqa: S307
        # a determined (or conditional) value is written; a degenerate one never is
        assert got == pytest.approx(p["value"] if p["status"] in ("determined", "conditional")
                                    else base), field
    assert side["params"]["device.retention.ea_ev"]["status"] == "determined"
    assert any("alpha_G" in c["determined"] for c in side["conditional"])
    iv = next(f for f in side["files"] if f["kind"] == "iv")
    corr = iv["cells"][0]["correlation"]
    m = np.array(corr["matrix"])
    assert np.allclose(np.diag(m), 1.0) and np.allclose(m, m.T)
    assert len(side["figures"]) == 4 and "degenerate: device.cell.slope_factor_n" in stdout


def test_fit_figures_pass_the_audit(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from norsim import figstyle
    from norsim.fit import plots

    r, _ = _iv(temps_k=(300.0,))
    r["cell"] = 0
    orig = figstyle.save
    problems = []

    def checked(fig, path, **kw):
        problems.extend(figstyle.audit(fig))
        return orig(fig, path, **kw)

    figstyle.save = checked
    try:
        plots.plot_iv(r, tmp_path / "iv.png")
        plots.plot_retention(_bake()[0], tmp_path / "bake.png")
    finally:
        figstyle.save = orig
    plt.close("all")
    assert problems == []


def test_fitted_preset_runs_through_norsim_run(fitted):
    d, _ = fitted
    r = subprocess.run([sys.executable, "-m", "norsim.cli.main", "run", "--model",
                        "zoo:lenet-mnist-4b", "--limit", "8", "--no-progress", "--config",
                        str(d / "out" / "fitted.toml")], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    assert "analog chip" in r.stdout and "%" in r.stdout


@pytest.mark.slow
def test_fitted_preset_runs_through_validate_device(fitted, tmp_path):
    d, _ = fitted
    r = subprocess.run([sys.executable, "-m", "norsim.cli.main", "validate-device", "--quick",
                        "--config", str(d / "out" / "fitted.toml"), "--out", str(tmp_path / "v")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode in (0, 1), r.stderr  # the table ran; 1 = a row FAILs against a paper
    rows = json.loads((tmp_path / "v" / "validation.json").read_text())["rows"]
    assert len(rows) >= 6


def test_plan_names_what_is_missing(fitted):
    d, _ = fitted
    r = subprocess.run([sys.executable, "-m", "norsim.cli.main", "fit", "--plan",
                        str(d / "iv.csv")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = {ln.split("  ")[0].strip(): ln for ln in r.stdout.splitlines()}
    assert "determined" in lines["device.cell.dibl_eta"]
    assert "missing" in lines["device.noise.rtn_mean_v"]
    assert "not determinable" in lines["device.cell.alpha_g"]
    assert "missing" in r.stdout.split("device.retention")[1]


def test_bad_file_fails_before_fitting_in_one_line(tmp_path):
    p = _csv(tmp_path, "v_cg_V,v_d_V,temp_K,i_d_mA\n1,0.1,300,1\n")
    r = subprocess.run([sys.executable, "-m", "norsim.cli.main", "fit", str(p)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "i_d_mA" in r.stderr and str(p) in r.stderr
