"""Issue 16: cells out of tolerance at the end of tuning are flagged failed (kernel and NumPy
twin), averaged verify reads (white-noise variance ~ 1/N), their time and energy counted."""

import numpy as np
import pytest

from norsim.device.config import DeviceConfig
from norsim.device.iv import cell_model
from norsim.device.levels import current_per_vth, read_current, target_current
from norsim.device.noise import read_noise_sigma_a
from norsim.device.programming import program, verify_window_s

DEV = DeviceConfig().with_overrides(["programming.two_way_tuning=true"])


def _model(dev):
    return cell_model(dev.cell, dev.read.temperature_k)


def _program(dev, i_t, seed=0, **kw):
    return program(np.random.default_rng(seed), _model(dev), dev, i_t, **kw)


def _outside_final_verify(dev, res):
    """Cells whose tuning ended outside tolerance, recomputed from the noiseless final V_th
    (verify noise and RTN off, so the final verify reads the true current)."""
    m = _model(dev)
    i_now = read_current(m, dev, res.vth)
    return np.abs(i_now - res.target_current_a) > dev.programming.tune_tolerance_rel * res.target_current_a


@pytest.mark.parametrize("fast", [True, False], ids=["numba", "numpy"])
def test_tiny_pulse_budget_flags_every_cell_outside_tolerance(fast):
    # noiseless verify: the flag must equal "outside tolerance" computed from the final V_th
    dev = DEV.with_overrides(["programming.verify_rtn=false", "noise.shot_thermal=false",
                              "noise.flicker_kf=0.0", "programming.tune_max_pulses=2",
                              "programming.tune_tolerance_rel=0.002"])
    i_t = target_current(dev.levels, np.random.default_rng(1).integers(1, 8, 3000))
    res = _program(dev, i_t, seed=3, fast=fast)
    outside = _outside_final_verify(dev, res)
    assert outside.sum() > 300  # a tiny budget leaves many cells outside tolerance ...
    assert np.array_equal(res.failed, outside)  # ... and every one of them is flagged
    assert res.n_failed == int(outside.sum()) == res.report()["failed"]
    assert res.report()["failed_unconverged"] == res.n_failed
    assert np.all(res.tune_pulses[res.failed] == 2)


def test_failure_flags_kernel_equal_twin_with_noise():
    dev = DEV.with_overrides(["programming.tune_max_pulses=3"])
    i_t = target_current(dev.levels, np.random.default_rng(2).integers(0, 8, 2000))
    a = _program(dev, i_t, seed=5)
    b = _program(dev, i_t, seed=5, fast=False)
    assert a.n_failed > 0
    assert np.array_equal(a.failed, b.failed) and np.array_equal(a.verifies, b.verifies)
    assert np.array_equal(a.pulses, b.pulses) and np.max(np.abs(a.vth - b.vth)) < 1e-12


def test_larger_budget_fails_fewer_cells():
    i_t = target_current(DEV.levels, np.random.default_rng(3).integers(1, 8, 2000))
    few = _program(DEV.with_overrides(["programming.tune_max_pulses=2"]), i_t, seed=1).n_failed
    many = _program(DEV.with_overrides(["programming.tune_max_pulses=200"]), i_t, seed=1).n_failed
    assert many < few


def test_averaged_verify_white_variance_falls_as_one_over_n():
    dev = DEV.with_overrides(["noise.flicker_kf=0.0"])
    m = _model(dev)
    i = np.array([1e-8, 7e-8])
    var = []
    for n in (1, 4, 16, 64):
        d = dev.with_overrides([f"programming.verify_reads={n}"])
        var.append(read_noise_sigma_a(i, m, d.noise, 300.0, verify_window_s(d)) ** 2)
    for k, n in enumerate((1, 4, 16, 64)):
        assert np.allclose(var[k] * n, var[0], rtol=1e-12)


def test_averaged_verify_tightens_placement_empirically():
    """Monte-Carlo: the placed-current spread of a verify-limited population shrinks with N."""
    base = DEV.with_overrides(["programming.verify_rtn=false", "noise.flicker_kf=0.0",
                               "programming.dv_per_electron_v=0.0001",
                               "programming.tune_step_v=0.0002",
                               "programming.tune_tolerance_rel=0.02",
                               "programming.tune_max_pulses=400"])
    i_t = np.full(3000, 1e-8)
    sd = []
    for n in (1, 16):
        d = base.with_overrides([f"programming.verify_reads={n}"])
        r = _program(d, i_t, seed=7)
        i = read_current(_model(d), d, r.vth[~r.failed])
        sd.append(np.std(i / 1e-8))
    assert sd[1] < 0.8 * sd[0]  # truncated by the tolerance window, so less than 1/4


def test_verify_reads_counted_in_time_and_energy():
    i_t = target_current(DEV.levels, np.random.default_rng(4).integers(1, 8, 640))
    one = _program(DEV, i_t, seed=2, vth_erased=np.full(640, -0.5))
    d8 = DEV.with_overrides(["programming.verify_reads=8"])
    eight = _program(d8, i_t, seed=2, vth_erased=np.full(640, -0.5))
    p = DEV.programming
    # time: every verify of the slowest cell of a group lasts 8x longer
    grp = lambda a: a.reshape(-1, p.cells_in_parallel).max(axis=1).sum()  # noqa: E731
    t8 = (p.erase_time_s + grp(eight.pulses) * p.pulse_width_s
          + grp(eight.verifies) * 8 * p.verify_time_s)
    assert eight.program_time_s == pytest.approx(t8, rel=1e-12)
    assert eight.report()["energy_per_cell_j"] > 0


def test_verify_reads_validated():
    from norsim.errors import ConfigError

    with pytest.raises(ConfigError, match="verify_reads"):
        DeviceConfig().with_overrides(["programming.verify_reads=0"]).validate()


@pytest.mark.parametrize("ov", [["programming.tune_adaptive=true"],
                                ["programming.tune_adaptive=true", "programming.verify_reads=8",
                                 "programming.tune_max_pulses=4"]],
                         ids=["adaptive", "adaptive-averaged-tiny-budget"])
def test_model_based_tuning_kernel_equals_twin(ov):
    dev = DEV.with_overrides(ov)
    i_t = target_current(dev.levels, np.random.default_rng(6).integers(0, 8, 1500))
    a = _program(dev, i_t, seed=11)
    b = _program(dev, i_t, seed=11, fast=False)
    assert np.array_equal(a.failed, b.failed) and np.array_equal(a.pulses, b.pulses)
    assert np.array_equal(a.verifies, b.verifies) and np.max(np.abs(a.vth - b.vth)) < 1e-12


def test_model_based_tuning_converges_to_granularity_without_noise():
    """Noiseless verify, model-based pulses: the residual error ends within tolerance, and
    the first tuning pulse removes most of the ISPP overshoot (mean shift = gain x error)."""
    dev = DEV.with_overrides(["programming.tune_adaptive=true", "programming.verify_rtn=false",
                              "noise.shot_thermal=false", "noise.flicker_kf=0.0",
                              "programming.tune_step_v=0.05", "programming.dv_per_electron_v=0.0002"])
    i_t = np.full(2000, 3e-8)
    r = _program(dev, i_t, seed=3)
    e = read_current(_model(dev), dev, r.vth) / i_t - 1
    # the tolerance is applied in the V_th domain to first order: exp(x) - 1 vs x
    assert r.n_failed == 0 and np.all(np.abs(e) <= 1.01 * dev.programming.tune_tolerance_rel)
    one = _program(dev.with_overrides(["programming.tune_max_pulses=1",
                                       "programming.tune_tolerance_rel=1e-6"]), i_t, seed=3)
    zero = _program(dev.with_overrides(["programming.tune_max_pulses=0",
                                        "programming.tune_tolerance_rel=1e-6"]), i_t, seed=3)
    g = current_per_vth(_model(dev), dev, r.target_vth)
    err0 = np.abs(zero.vth - r.target_vth)
    err1 = np.abs(one.vth - r.target_vth)
    assert np.mean(err1) < 0.25 * np.mean(err0)
    assert g.shape == i_t.shape


def test_retry_rounds_reprogram_failed_cells_and_count_their_cost():
    dev = DEV.with_overrides(["programming.tune_max_pulses=2", "programming.tune_adaptive=true"])
    i_t = target_current(dev.levels, np.random.default_rng(8).integers(1, 8, 2000))
    once = _program(dev, i_t, seed=4)
    again = _program(dev.with_overrides(["programming.retry_rounds=3"]), i_t, seed=4)
    assert once.n_failed > 0 and again.n_failed < once.n_failed
    redo = once.failed
    assert np.all(again.pulses[redo] >= once.pulses[redo])
    assert np.array_equal(again.pulses[~redo], once.pulses[~redo])
    assert again.energy_j > once.energy_j and again.program_time_s > once.program_time_s
    # stuck cells are never retried and stay failed
    from norsim.device.variation import draw_variation

    var = draw_variation(np.random.default_rng(1), i_t.shape,
                         dev.variation.replace(stuck_on_fraction=0.01), dev.cell)
    r = _program(dev.with_overrides(["programming.retry_rounds=2"]), i_t, seed=4, variation=var)
    assert np.all(r.failed[var.stuck != 0])
    assert r.report()["failed_stuck"] == int(np.count_nonzero(var.stuck))


def test_absolute_tolerance_floor_applies_to_tiny_targets_only():
    """Noiseless: an off-level target (10 pA) with a 1 pA floor ends within 1 pA; a 70 nA
    target keeps its 1% window."""
    dev = DEV.with_overrides(["programming.verify_rtn=false", "noise.shot_thermal=false",
                              "noise.flicker_kf=0.0", "programming.tune_adaptive=true",
                              "programming.tune_tolerance_abs_a=1e-12",
                              "programming.dv_per_electron_v=0.0005"])
    i_t = np.concatenate([np.full(500, 1e-11), np.full(500, 7e-8)])
    r = _program(dev, i_t, seed=2)
    err = np.abs(read_current(_model(dev), dev, r.vth) - i_t)
    assert r.n_failed == 0
    assert np.all(err[:500] <= 1.01e-12) and np.any(err[:500] > 1e-13)  # floor used
    assert np.all(err[500:] <= 1.01 * 0.01 * 7e-8)
