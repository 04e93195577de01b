"""`norsim sweep` / `norsim plot` end to end, the plot statistics, and one-line CLI errors."""

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from norsim.experiments import load_results
from norsim.experiments.plotting import aggregate, wilson_interval

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "norsim.cli.main", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def _one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def _spec(folder, axes: str, options: str = "", evaluator: str = "test", count: int = 3):
    (folder / "base.toml").write_text("seed = 0\n")
    path = folder / "spec.toml"
    path.write_text(f'[sweep]\nevaluator = "{evaluator}"\n[base]\nconfig = "base.toml"\n'
                    f"[seeds]\nroot = 5\ncount = {count}\n[axes]\n{axes}\n[options]\n{options}")
    return path


def test_wilson_interval_matches_scipy():
    from scipy.stats import binomtest

    for k, n in [(0, 10), (3, 10), (90, 100), (997, 1000), (50, 50)]:
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        lo, hi = wilson_interval(k / n, n)
        assert lo == pytest.approx(ci.low, abs=1e-12) and hi == pytest.approx(ci.high, abs=1e-12)


def test_sweep_and_plot_from_the_command_line(tmp_path):
    spec = _spec(tmp_path, '"device.read.temperature_k" = [280.0, 300.0, 320.0]\n'
                           '"array.rows" = [64, 128]\n', "n = 400\nfail_points = [5]\n")
    out = tmp_path / "res.sqlite"
    r = _cli("sweep", spec, "--out", out, "--dry-run")
    assert r.returncode == 0 and "6 grid points x 3 seeds = 18 runs; 0 already" in r.stdout
    assert not out.exists()
    r = _cli("sweep", spec, "--out", out, "--workers", "2")
    assert r.returncode == 1, r.stderr  # failed points: a non-zero exit with a summary
    assert "18 runs: 18 ran (3 failed), 0 already finished" in r.stdout
    assert "3 runs failed" in r.stderr and "  3 x " in r.stderr
    r = _cli("sweep", spec, "--out", out, "--dry-run")
    assert "18 runs; 18 already in" in r.stdout
    r = _cli("sweep", spec, "--out", out, "--workers", "2")  # resume: nothing to do
    assert "0 ran (0 failed), 18 already finished" in r.stdout
    assert r.returncode == 1 and "3 runs failed" in r.stderr  # the failed rows still count

    png = tmp_path / "acc.png"
    r = _cli("plot", out, "--x", "device.read.temperature_k", "--y", "accuracy",
             "--hue", "array.rows", "--out", png)
    assert r.returncode == 0, r.stderr
    assert png.stat().st_size > 10_000 and "3 failed runs left out" in r.stdout

    # the CSV behind the figure, recomputed independently from the DataFrame
    df = load_results(out)
    ok = df[df.status == "ok"]
    with open(png.with_suffix(".csv")) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5  # 6 curves-points minus the failed point (T=320, rows=128)
    for row in rows:
        sel = ok[(ok["array.rows"] == int(row["hue"])) &
                 (ok["device.read.temperature_k"] == float(row["x"]))]
        vals = sel.accuracy.to_numpy()
        assert float(row["mean"]) == pytest.approx(vals.mean(), rel=1e-12)
        assert float(row["sd_seeds"]) == pytest.approx(vals.std(ddof=1), rel=1e-9)
        assert int(row["n_seeds"]) == 3 and float(row["n_samples"]) == 400
        # Wilson: centre and half-width in closed form
        p, n, z = vals.mean(), 400, 1.959963984540054
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        assert float(row["sampling_lo"]) == pytest.approx(centre - half, rel=1e-12)
        assert float(row["sampling_hi"]) == pytest.approx(centre + half, rel=1e-12)


def test_plot_of_a_metric_without_sample_count_has_no_interval(tmp_path):
    spec = _spec(tmp_path, '"device.read.temperature_k" = [280.0, 300.0]\n', count=1)
    out = tmp_path / "res.sqlite"
    assert _cli("sweep", spec, "--out", out, "--workers", "1").returncode == 0
    agg = aggregate(out, "device.read.temperature_k", "value")
    (s,) = agg.series
    assert s.x == [280.0, 300.0] and s.mean == pytest.approx([3.056, 3.256])
    assert all(math.isnan(v) for v in s.sd + s.lo + s.hi)  # one seed: no band; no n: no bars


def test_example_spec_runs_with_the_device_evaluator(tmp_path):
    text = (EXAMPLES / "sweep_device.toml").read_text()
    assert "count = 3" in text and "cells_per_level = 500" in text
    spec = tmp_path / "sweep_device.toml"  # the example, lighter: 1 seed, fewer cells
    spec.write_text(text.replace("count = 3", "count = 1").replace("cells_per_level = 500",
                                                                    "cells_per_level = 50"))
    out = tmp_path / "ex.sqlite"
    r = _cli("sweep", spec, "--out", out, "--workers", "2")
    assert r.returncode == 0, r.stderr
    df = load_results(out)
    assert (df.status == "ok").all(), df.error.dropna().tolist()
    assert len(df) == 9 * 2 and {"level_error_rate", "level_error_rate_n"} <= set(df.columns)
    r = _cli("plot", out, "--x", "device.read.temperature_k", "--y", "level_error_rate",
             "--hue", "device.programming.two_way_tuning", "--out", tmp_path / "ex.png")
    assert r.returncode == 0, r.stderr


def test_bad_input_gives_one_line_errors(tmp_path):
    good = _spec(tmp_path, '"device.read.temperature_k" = [300.0]\n', count=1)
    out = tmp_path / "res.sqlite"
    assert _cli("sweep", good, "--out", out, "--workers", "1").returncode == 0

    bad = tmp_path / "bad"
    bad.mkdir()
    _one_line_error(_cli("sweep", _spec(bad, '"device.read.temprature_k" = [300.0]\n'),
                         "--out", bad / "r.sqlite"), "device.read.temprature_k",
                    "did you mean device.read.temperature_k")
    _one_line_error(_cli("sweep", _spec(bad, '"device.read.temperature_k" = [300.0, 9000.0]\n'),
                         "--out", bad / "r.sqlite"), "axes.device.read.temperature_k", "9000")
    (bad / "broken.toml").write_text("[sweep\nevaluator = 'test'\n")
    _one_line_error(_cli("sweep", bad / "broken.toml", "--out", bad / "r.sqlite"), "valid TOML")
    _one_line_error(_cli("sweep", bad / "missing.toml", "--out", bad / "r.sqlite"), "missing.toml")
    _one_line_error(_cli("sweep", good, "--out", out, "--workers", "0"), "--workers")

    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not a database at all" * 200)
    _one_line_error(_cli("sweep", good, "--out", corrupt), "corrupt.sqlite",
                    "not a norsim sweep results file")
    _one_line_error(_cli("plot", corrupt, "--x", "device.read.temperature_k", "--y", "value",
                         "--out", tmp_path / "p.png"), "not a norsim sweep results file")
    import sqlite3

    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (a)")
    con.commit()
    con.close()
    _one_line_error(_cli("plot", other, "--x", "a", "--y", "b", "--out", tmp_path / "p.png"),
                    "missing the meta/points tables")
    _one_line_error(_cli("plot", tmp_path / "nope.sqlite", "--x", "a", "--y", "b",
                         "--out", tmp_path / "p.png"), "nope.sqlite")

    _one_line_error(_cli("plot", out, "--x", "array.rows", "--y", "value", "--out",
                         tmp_path / "p.png"), "--x", "device.read.temperature_k")
    _one_line_error(_cli("plot", out, "--x", "device.read.temperature_k", "--y", "acc",
                         "--out", tmp_path / "p.png"), "--y", "accuracy")
    _one_line_error(_cli("plot", out, "--x", "device.read.temperature_k", "--y", "value",
                         "--where", "device.read.temperature_k=310", "--out", tmp_path / "p.png"),
                    "--where")


def test_plot_refuses_to_pool_over_an_unplotted_axis(tmp_path):
    spec = _spec(tmp_path, '"device.read.temperature_k" = [280.0, 300.0]\n'
                           '"array.rows" = [64, 128]\n', count=1)
    out = tmp_path / "res.sqlite"
    assert _cli("sweep", spec, "--out", out, "--workers", "1").returncode == 0
    _one_line_error(_cli("plot", out, "--x", "device.read.temperature_k", "--y", "value",
                         "--out", tmp_path / "p.png"), "array.rows", "--hue")
    r = _cli("plot", out, "--x", "device.read.temperature_k", "--y", "value",
             "--where", "array.rows=128", "--out", tmp_path / "p.png")
    assert r.returncode == 0, r.stderr
    agg = aggregate(out, "device.read.temperature_k", "value", where=["array.rows=128"])
    np.testing.assert_allclose(agg.series[0].mean, [2.8 + 0.128, 3.0 + 0.128])


def test_plot_with_a_boolean_axis_is_categorical(tmp_path):
    spec = _spec(tmp_path, '"device.programming.verify_rtn" = [true, false]\n', count=2)
    out = tmp_path / "res.sqlite"
    assert _cli("sweep", spec, "--out", out, "--workers", "1").returncode == 0
    agg = aggregate(out, "device.programming.verify_rtn", "accuracy")
    assert agg.categorical_x and agg.series[0].x == [False, True]
    r = _cli("plot", out, "--x", "device.programming.verify_rtn", "--y", "accuracy",
             "--out", tmp_path / "b.png")
    assert r.returncode == 0 and (tmp_path / "b.png").stat().st_size > 10_000, r.stderr


def _acc_spec(folder, *, model='"zoo:lenet-mnist-4b"', options="images = 4\n",
              axes='"device.read.temperature_k" = [300.0]\n'):
    path = folder / "acc.toml"
    path.write_text(f'[sweep]\nevaluator = "accuracy"\nmodel = {model}\n[base]\npreset = "nor40"\n'
                    f'[seeds]\ncount = 2\n[axes]\n{axes}[options]\n{options}')
    return path


@pytest.mark.parametrize("case", ["option", "missing model", "truncated model", "cols"])
def test_everything_every_point_needs_is_checked_before_the_first_point(tmp_path, capsys, case):
    from norsim import zoo
    from norsim.cli.main import main

    kwargs, needles = {
        "option": ({"options": "imagse = 4\n"}, ("options.imagse", "images")),
        "missing model": ({"model": '"nothere.npz"'}, ("sweep.model", "nothere.npz")),
        "truncated model": ({"model": '"cut.npz"'}, ("cut.npz",)),
        "cols": ({"axes": '"array.cols" = [256, 1]\n'}, ("array.cols", "grid point 1")),
    }[case]
    (tmp_path / "cut.npz").write_bytes(zoo.path("lenet-mnist-4b").read_bytes()[:3000])
    spec = _acc_spec(tmp_path, **kwargs)
    out = tmp_path / "r.sqlite"
    for extra in (["--dry-run"], ["--workers", "1"]):
        assert main(["sweep", str(spec), "--out", str(out), *extra]) == 2
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(lines) == 1 and all(n in lines[0] for n in needles), lines
        assert not out.exists()  # refused before the results file was created
