"""Degenerate array results warn with numbers; impossible V_th maps are refused."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from norsim.array.nor_array import NorArray
from norsim.config import load_preset
from norsim.errors import DegenerateResultWarning, InputError


@pytest.fixture(scope="module")
def tile():
    cfg = load_preset("nor40").with_overrides(["array.rows=64", "array.cols=32",
                                               "array.noise.rtn_enabled=false"])
    rng = np.random.default_rng(3)
    w = rng.integers(-7, 8, size=(64, 8))
    x = rng.integers(0, 16, size=(32, 64))
    ideal = NorArray.from_weights(w, cfg, np.random.default_rng(1))
    return cfg, w, x, ideal.vth


def _run(cfg, w, x, vth):
    arr = NorArray.from_weights(w, cfg, np.random.default_rng(1), vth_map=vth)
    arr.calibrate(x)
    return arr.matmul(x)


def test_programmed_map_is_quiet(tile):
    cfg, w, x, vth = tile
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateResultWarning)
        y = _run(cfg, w, x, vth)
    assert np.corrcoef(y.ravel(), (x @ w).ravel())[0, 1] > 0.9


def test_a_map_that_saturates_the_bit_lines_warns_with_numbers(tile):
    cfg, w, x, vth = tile
    with pytest.warns(DegenerateResultWarning) as rec:
        _run(cfg, w, x, vth - 1.0)
    text = " ".join(str(r.message) for r in rec)
    assert "saturation current" in text and "uA" in text
    assert "16 of 16 bit lines" in text  # 8 outputs x 2 columns, every one saturated
    assert "all 256 outputs are exactly 0" in text


def test_a_full_scale_beyond_the_physical_one_warns(tile):
    cfg, w, x, vth = tile
    with pytest.warns(DegenerateResultWarning, match=r"clamped to it"):
        _run(cfg.with_overrides(["array.sense.integrator_cap_f=1e-9"]), w, x, vth - 0.2)


def test_outputs_that_ignore_the_inputs_warn(tile):
    cfg, w, x, vth = tile
    off = np.full_like(vth, 2.9)  # every cell off: nothing of w reaches the outputs
    quiet = cfg.with_overrides(["array.adc.range_mode='physical'", "array.noise.shot_enabled=false",
                                "array.noise.ktc_enabled=false", "array.adc.noise_lsb=0.0"])
    with pytest.warns(DegenerateResultWarning, match=r"outputs are exactly 0|constant"):
        _run(quiet, w, x, off)


@pytest.mark.parametrize("bad", [50.0, -20.0])
def test_a_v_th_map_outside_the_cell_window_is_refused(tile, bad):
    cfg, w, x, vth = tile
    v = vth.copy()
    v[3, 5] = bad
    with pytest.raises(InputError, match=r"vth_map\[3, 5\].*V_th in \["):
        NorArray.from_weights(w, cfg, np.random.default_rng(1), vth_map=v)
