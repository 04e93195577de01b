"""Bad input to the CLI fails in one line, naming option and value, before any long work."""

from __future__ import annotations

import time

import numpy as np
import pytest

from norsim.cli.main import main


def _fails_fast(capsys, *argv, needles=(), seconds=20.0):
    t0 = time.perf_counter()
    rc = main([str(a) for a in argv])
    took = time.perf_counter() - t0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, (rc, err)
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    assert took < seconds, f"took {took:.1f} s before failing"
    return lines[0]


@pytest.fixture
def a_file(tmp_path):
    f = tmp_path / "plain-file"
    f.write_text("not a folder\n")
    return f


def test_report_json_under_a_file_fails_before_the_run(capsys, a_file):
    _fails_fast(capsys, "report", "--model", "zoo:lenet-mnist-4b", "--json",
                a_file / "r.json", needles=("--json", "is a file"))


def test_report_figure_needs_png(capsys, tmp_path):
    _fails_fast(capsys, "report", "--model", "zoo:lenet-mnist-4b", "--figure",
                tmp_path / "energy", needles=("--figure", ".png"))


@pytest.mark.parametrize("cmd", [["array-sweep", "--model", "zoo:lenet-mnist-4b"],
                                 ["array-study"], ["device-study"]])
def test_output_folder_that_is_a_file_is_refused(capsys, a_file, cmd):
    _fails_fast(capsys, *cmd, "--out", a_file, needles=("--out", "it is a file"))


@pytest.mark.parametrize("rows", [512, 1_000_000])
def test_array_study_rows_beyond_the_array_are_refused_not_clamped(capsys, tmp_path, rows):
    line = _fails_fast(capsys, "array-study", "--rows", rows, "--out", tmp_path / "o",
                       needles=("--rows", str(rows), "array.rows"))
    assert "256" in line  # the preset's array.rows, named so the user knows the limit


def test_array_study_cols_beyond_the_array_are_refused(capsys, tmp_path):
    _fails_fast(capsys, "array-study", "--cols", 4000, "--out", tmp_path / "o",
                needles=("--cols", "4000", "array.cols"))


def test_plot_out_without_png_is_refused(capsys, tmp_path):
    _fails_fast(capsys, "plot", tmp_path / "missing.sqlite", "--x", "a", "--y", "b",
                "--out", tmp_path / "p14", needles=("--out", "p14", ".png"))


def test_binary_config_is_one_line(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    _fails_fast(capsys, "array-study", "--config", cfg, "--out", tmp_path / "o",
                needles=("config file", "UTF-8", "0x89"))


def test_a_layer_that_does_not_fit_fails_before_programming(capsys):
    _fails_fast(capsys, "report", "--model", "zoo:lenet-mnist-4b", "--set", "array.cols=1",
                needles=("array.cols", "conv"), seconds=10)


def test_array_sweep_checks_every_size_before_the_first(capsys, tmp_path):
    # bit-sliced 4-bit weights need 6 physical columns per output: size 4 cannot hold one
    _fails_fast(capsys, "array-sweep", "--model", "zoo:lenet-mnist-4b", "--sizes", "64,4",
                "--set", "array.encoding.weight_scheme='bit_sliced'",
                "--set", "array.encoding.bits_per_cell=1", "--out", tmp_path / "o",
                needles=("array.cols = 4",), seconds=10)


def test_check_fits_is_cheap_and_names_the_layer():
    from norsim import zoo
    from norsim.config import load_preset
    from norsim.errors import ConfigError
    from norsim.mapping.mapper import check_fits

    model = zoo.load("lenet-mnist-4b")
    plans = check_fits(model, load_preset("nor40"))
    assert sum(p.n_tiles for p in plans) >= 1
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"array.cols = 1.*layer"):
        check_fits(model, load_preset("nor40").with_overrides(["array.cols=1"]))
    assert time.perf_counter() - t0 < 2.0


def test_images_of_the_wrong_shape_are_named():
    from norsim import zoo
    from norsim.config import load_preset
    from norsim.errors import InputError
    from norsim.mapping.preflight import check_job

    model = zoo.load("lenet-mnist-4b")
    with pytest.raises(InputError, match=r"data \(test images\).*\(5, 32, 32, 3\)"):
        check_job(model, load_preset("nor40"), np.zeros((5, 32, 32, 3), np.uint8))
