"""The main job: progress without a terminal, both intervals, one-chip rows, programmed tiles
shared between the settings of one chip (bit-identical), workers that do not change results."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from norsim import zoo
from norsim.config.presets import load_preset
from norsim.mapping import mapper, program_cache
from norsim.experiments.evaluate import evaluate_jobs
from norsim.scenarios import scenarios

SMALL = {"mapping.calibration_images": 16, "compensation.recalibration_images": 16,
         "array.rows": 128, "array.cols": 128}


def _data(n=24, seed=0):
    from norsim.data import load_dataset
    test = load_dataset("mnist", "test")
    calib = load_dataset("mnist", "calib")
    return test.x[:n], test.y[:n], calib.x[:16]


def _tile_state(chip):
    return [(np.array(t.array.vth), np.array(t.array.i_on),
             t.failed_cells, t.program_time_s, t.program_energy_j) for t in chip.tiles()]


def test_program_cache_is_bit_identical_across_settings():
    """Fresh, then baked, of one seed: with the cache the baked chip programs nothing anew
    and equals the baked chip mapped on its own, V_th for V_th."""
    model = zoo.load("lenet-mnist-4b")
    cfg = load_preset("nor40").with_overrides(SMALL)
    rows = {sc.key: sc for sc in scenarios(cfg)}
    fresh = dataclasses.replace(rows["fresh"].cfg, seed=3)
    baked = dataclasses.replace(rows["baked"].cfg, seed=3)
    alone = mapper.map_model(model, baked)
    with program_cache.enabled() as st:
        mapper.map_model(model, fresh)
        misses = st["misses"]
        shared = mapper.map_model(model, baked)
        assert st["hits"] == misses > 0 and st["misses"] == misses
    assert st["hits"] == 0                  # emptied on exit
    for (a, ia, fa, ta, ea), (b, ib, fb, tb, eb) in zip(_tile_state(alone), _tile_state(shared)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ia, ib)
        assert (fa, ta, ea) == (fb, tb, eb)
    # another seed is another chip: no hit
    with program_cache.enabled() as st:
        mapper.map_model(model, fresh)
        mapper.map_model(model, dataclasses.replace(fresh, seed=4))
        assert st["hits"] == 0


def test_evaluate_jobs_results_do_not_depend_on_workers():
    model = zoo.load("lenet-mnist-4b")
    cfg = load_preset("nor40").with_overrides(SMALL)
    x, y, xc = _data()
    rows = [sc for sc in scenarios(cfg) if sc.key in ("fresh", "baked")]
    groups = [[((sc.key, s), dataclasses.replace(sc.cfg, seed=s)) for sc in rows]
              for s in (0, 1)]
    one = evaluate_jobs(model, groups, x, y, xc, workers=1)
    two = evaluate_jobs(model, groups, x, y, xc, workers=2)
    assert one.keys() == two.keys() and len(one) == 4
    for k in one:
        np.testing.assert_array_equal(one[k]["correct"], two[k]["correct"])
        assert one[k]["layers"] == two[k]["layers"]


def test_demo_shows_progress_without_a_terminal_and_both_intervals(tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "norsim.cli.main", "demo", "--limit", "20",
                        "--seeds", "2", "--workers", "1", "--out", str(out),
                        *sum((["--set", f"{k}={v}"] for k, v in SMALL.items()), [])],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    progress = [ln for ln in r.stderr.splitlines() if ln.startswith("demo: ")]
    # one line per chip run (2 chips x 3 settings + the ideal path), the last says 7/7
    runs = [ln for ln in progress if " chip runs, " in ln]
    assert len(runs) == 7 and runs[-1].startswith("demo: 7/7 chip runs")
    assert any("about" in ln and "left" in ln for ln in runs[:-1])
    assert "95% over chips" in r.stdout and "95% given these chips" in r.stdout
    assert "CPU-s" in r.stdout
    d = json.loads((out / "demo.json").read_text())
    rows = {row["setting"]: row for row in d["rows"]}
    ideal = rows["analog, ideal settings"]
    assert ideal["chips"] == 1 and ideal["chip_to_chip_std"] is None
    assert ideal["interval_95_over_chips"] is None and ideal["difference"] == 0.0
    fresh = rows["analog nor40, fresh"]
    assert fresh["chips"] == 2 and fresh["chip_to_chip_std"] is not None
    lo, hi = fresh["interval_95_over_chips"]
    assert lo <= fresh["difference"] <= hi
    for part in ("interval_95_over_chips_t", "interval_95_over_chips_two_level"):
        assert lo <= fresh[part][0] and fresh[part][1] <= hi       # the hull of the two
    assert (out / "accuracy.png").is_file()


def test_run_with_one_chip_prints_no_chip_spread(tmp_path):
    r = subprocess.run([sys.executable, "-m", "norsim.cli.main", "run", "--model",
                        "zoo:lenet-mnist-4b", "--limit", "10", "--seeds", "1",
                        *sum((["--set", f"{k}={v}"] for k, v in SMALL.items()), [])],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "no chip-to-chip spread" in r.stdout and "sd 0.00" not in r.stdout
    assert "run: 1/1 chips" in r.stderr
