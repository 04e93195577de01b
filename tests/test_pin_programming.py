"""ISPP and fine tuning pinned to closed forms (issue 26), not to the code's own arithmetic.

Noise off (no shot/thermal or 1/f verify noise, no RTN in the verify), every cell starting
from the same erased V_th. The injection law of docs/parameters.md in mean field: a pulse at
V_pgm,i moves z = exp(-alpha V_th / s) to z / (1 + K_i z), so 1/z adds K_i,

    V_th after n pulses = (s / alpha) ln( exp(alpha V_erased / s) + sum_{i<n} K_i ),
    K_i = (alpha r0 t_p / s) exp((alpha (V_start + i V_step) - V_0) / s),

and the staircase reaches the target V_th at a real pulse number n*; electron granularity
jitters each cell's crossing, so the mean pulse count is n* + 1/2 (a uniform fractional
part). Two-way tuning with noise off verifies every cell within its tolerance: a current
error of at most exp(tol) - 1 (the tolerance is set on the current, converted to V_th with
the local slope, in the exponential subthreshold regime).
"""

from __future__ import annotations

import numpy as np
import pytest

from norsim.device.config import DeviceConfig
from norsim.device.iv import cell_model
from norsim.device.levels import read_current, target_current, target_vth
from norsim.device.programming import program

NOISE_OFF = ["programming.verify_rtn=false", "noise.shot_thermal=false", "noise.flicker_kf=0.0"]
N = 3000


def _dev(*extra):
    return DeviceConfig().with_overrides(NOISE_OFF + list(extra))


def _staircase_crossing(dev, model, vth_target: float) -> float:
    """Real pulse number at which the mean-field staircase reaches ``vth_target``."""
    p, c = dev.programming, dev.cell
    a, s = model.fg.alpha_g, p.inj_slope_v
    v0 = p.inj_offset_v + p.wear_drive_loss_v * dev.retention.pe_cycles / 1e5
    i = np.arange(p.max_pulses + 1)
    k = (a * p.inj_rate_v_per_s * p.pulse_width_s / s) * np.exp(
        (a * (p.ispp_start_v + p.ispp_step_v * i) - v0) / s)
    v = (s / a) * np.log(np.exp(a * c.vth_erased_v / s) + np.concatenate([[0.0], np.cumsum(k)]))
    j = int(np.argmax(v >= vth_target)) - 1
    assert j >= 0, "target below the erased state"
    return j + (vth_target - v[j]) / (v[j + 1] - v[j])


@pytest.mark.parametrize("level", [1, 4, 7])
@pytest.mark.parametrize("extra", [[], ["programming.ispp_step_v=0.1"],
                                   ["programming.ispp_start_v=4.5"]],
                         ids=["preset", "step-0.1", "start-4.5"])
def test_mean_ispp_pulse_count_is_the_staircase_crossing_plus_half(level, extra):
    dev = _dev(*extra)
    model = cell_model(dev.cell, dev.read.temperature_k)
    i_t = target_current(dev.levels, np.full(N, level))
    vt = float(target_vth(model, dev, i_t[:1])[0])
    r = program(np.random.default_rng(level), model, dev, i_t,
                vth_erased=np.full(N, dev.cell.vth_erased_v))
    assert r.verified.all() and not r.failed.any()
    n_star = _staircase_crossing(dev, model, vt)
    # every cell crosses near n*: the mean lies in [n*, n* + 1] (a 10 % change of step,
    # start, slope or rate moves n* by several pulses)
    assert n_star - 0.05 <= r.pulses.mean() <= n_star + 1.05
    assert np.all(r.vth >= vt - 1e-12)  # a cell stops only once it verifies
    if not extra:
        # at the preset the jitter of one pulse (~25 electrons of 2 mV) is comparable to the
        # 50 mV step: the crossing's fraction is uniform, mean n* + 1/2 (measured offsets
        # 0.42-0.54), and the last pulse overshoots by half the steady-state shift (the step)
        assert abs(r.pulses.mean() - (n_star + 0.5)) < 0.15
        step = dev.programming.ispp_step_v
        assert abs(np.mean(r.vth - vt) - step / 2) < 0.12 * step


@pytest.mark.parametrize("tol", [0.02, 0.05])
def test_two_way_tuning_with_noise_off_places_every_cell_within_tolerance(tol):
    dev = _dev("programming.two_way_tuning=true", f"programming.tune_tolerance_rel={tol}")
    model = cell_model(dev.cell, dev.read.temperature_k)
    i_t = target_current(dev.levels, np.random.default_rng(0).integers(1, 8, N))
    r = program(np.random.default_rng(1), model, dev, i_t)
    assert not r.failed.any()
    err = np.abs(read_current(model, dev, r.vth) / i_t - 1.0)
    assert err.max() <= np.expm1(tol) * 1.002          # the tolerance is what it says ...
    assert np.mean(err <= tol) > 0.99
    assert err.max() > 0.8 * tol                       # ... and not tighter than asked
    # ISPP alone (no tuning) leaves most cells outside 2 % (the staircase step is 50 mV)
    plain = program(np.random.default_rng(1), model, _dev(), i_t)
    err_plain = np.abs(read_current(model, dev, plain.vth) / i_t - 1.0)
    assert np.mean(err_plain <= 0.02) < 0.6


@pytest.mark.parametrize("fast", [True, False], ids=["kernel", "numpy"])
def test_tuning_stops_at_its_pulse_limit_on_both_paths(fast):
    # a tolerance below one electron's step: most cells use up their 3 tuning pulses
    dev = _dev("programming.two_way_tuning=true", "programming.tune_tolerance_rel=0.001",
               "programming.tune_max_pulses=3")
    model = cell_model(dev.cell, dev.read.temperature_k)
    i_t = target_current(dev.levels, np.random.default_rng(0).integers(1, 8, 400))
    r = program(np.random.default_rng(1), model, dev, i_t, fast=fast)
    assert r.tune_pulses.max() == 3
    assert np.mean(r.tune_pulses == 3) > 0.5


@pytest.mark.parametrize("n", [255, 256, 257])
def test_cell_counts_around_one_parallel_block_equal_the_numpy_reference(n):
    # the kernel runs blocks of 256 cells: a partial last block, an exact one, one spare cell
    dev = _dev()
    model = cell_model(dev.cell, dev.read.temperature_k)
    i_t = target_current(dev.levels, np.random.default_rng(n).integers(0, 8, n))
    a = program(np.random.default_rng(2), model, dev, i_t)
    b = program(np.random.default_rng(2), model, dev, i_t, fast=False)
    np.testing.assert_array_equal(a.pulses, b.pulses)
    assert np.max(np.abs(a.vth - b.vth)) < 1e-12 and a.verified.all()
