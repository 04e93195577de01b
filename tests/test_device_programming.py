"""Erase, soft-program, ISPP program-and-verify: steady state, placement, RTN, equivalence."""

import numpy as np
import pytest

from norsim.device.config import DeviceConfig
from norsim.device.iv import cell_model
from norsim.device.levels import level_currents, read_current, target_current, target_vth
from norsim.device.programming import _poisson_np, program, soft_program
from norsim.device.variation import STUCK_OFF, STUCK_ON, draw_variation
from norsim.errors import InputError

DEV = DeviceConfig()


def _dev(*overrides):
    return DEV.with_overrides(list(overrides))


def _model(dev):
    return cell_model(dev.cell, dev.read.temperature_k)


def _program(dev, i_target, seed=0, **kw):
    return program(np.random.default_rng(seed), _model(dev), dev, i_target, **kw)


def test_steady_state_shift_tends_to_step_after_transient():
    # noiseless verify (a verify read cannot resolve the femtoampere target used here)
    base = _dev("programming.verify_rtn=false", "noise.shot_thermal=false", "noise.flicker_kf=0.0")
    n = 2000
    # a target the staircase cannot reach within 60 pulses (V_th 4 V): no cell verifies
    i_t = np.full(n, float(read_current(_model(base), base, 4.0)))
    step = base.programming.ispp_step_v
    traj = [base.cell.vth_erased_v]
    for m in (1, 2, 3, 40, 50, 60):
        dev = base.with_overrides([f"programming.max_pulses={m}"])
        # V_th after m pulses traces the staircase (same seed: the same draws per pulse)
        r = _program(dev, i_t, seed=5, vth_erased=np.full(n, base.cell.vth_erased_v))
        assert np.all(r.pulses == m) and r.failed.all()
        traj.append(r.vth.mean())
    first = np.diff(traj[:4])
    assert np.all(first > 0) and np.all(first < 0.5 * step)  # transient: small early shifts
    late = np.diff(traj[4:]) / 10.0                           # per pulse over pulses 40..60
    assert np.allclose(late, step, rtol=0.05)                 # steady state: shift = step


@pytest.mark.parametrize("ov", [[], ["programming.two_way_tuning=true"],
                                ["cell.cell_type='stacked_gate'"]],
                         ids=["ispp", "two-way", "stacked"])
def test_numba_kernel_equals_numpy_reference(ov):
    dev = _dev(*ov)
    rng = np.random.default_rng(2)
    level = rng.integers(0, 8, 1500)
    i_t = target_current(dev.levels, level)
    var = draw_variation(np.random.default_rng(4), level.shape,
                         dev.variation.replace(stuck_on_fraction=0.01, stuck_off_fraction=0.01),
                         dev.cell)
    a = _program(dev, i_t, seed=9, variation=var)
    b = _program(dev, i_t, seed=9, variation=var, fast=False)
    assert np.array_equal(a.pulses, b.pulses)
    assert np.array_equal(a.verifies, b.verifies)
    assert np.array_equal(a.verified, b.verified)
    assert np.max(np.abs(a.vth - b.vth)) < 1e-12


def test_result_independent_of_thread_count():
    """Blocks of cells run in parallel, each cell on its own stream: 1 thread == all threads."""
    import numba

    i_t = target_current(DEV.levels, np.random.default_rng(3).integers(0, 8, 1200))
    full = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _program(DEV, i_t, 4)
    finally:
        numba.set_num_threads(full)
    many = _program(DEV, i_t, 4)
    assert np.array_equal(one.vth, many.vth) and np.array_equal(one.pulses, many.pulses)
    assert np.array_equal(one.verifies, many.verifies)


def test_same_seed_same_result_and_seed_matters():
    i_t = np.full(500, 3e-8)
    a, b, c = _program(DEV, i_t, 1), _program(DEV, i_t, 1), _program(DEV, i_t, 2)
    assert np.array_equal(a.vth, b.vth)
    assert not np.array_equal(a.vth, c.vth)


def _placement(dev, n=3000, seed=0):
    i_t = np.full(n, 4e-8)
    r = _program(dev, i_t, seed)
    i = read_current(_model(dev), dev, r.vth)
    return np.std(np.log(i / i_t)), r.pulses.mean(), r


def test_smaller_steps_tighter_placement_more_pulses():
    s50, p50, _ = _placement(_dev("programming.ispp_step_v=0.05"))
    s20, p20, _ = _placement(_dev("programming.ispp_step_v=0.02"))
    assert s20 < 0.7 * s50
    assert p20 > 1.5 * p50


def test_ispp_placement_is_uniform_over_one_step():
    """Without noise and with fine electrons, V_th lands in [target, target + step), uniformly
    over targets spread across many steps (ISPP forgets the erased V_th in steady state)."""
    dev = _dev("programming.verify_rtn=false", "noise.shot_thermal=false",
               "noise.flicker_kf=0.0", "programming.dv_per_electron_v=1e-5")
    i_t = np.exp(np.random.default_rng(1).uniform(np.log(1e-10), np.log(7e-8), 4000))
    r = _program(dev, i_t)
    over = r.vth - r.target_vth
    step = dev.programming.ispp_step_v
    assert over.min() >= 0 and over.max() < step + 0.003  # + Poisson noise of one pulse
    assert np.std(over) == pytest.approx(step / np.sqrt(12), rel=0.1)


def test_verify_rtn_widens_the_placement_tail():
    base = ["noise.rtn_mean_v=0.01", "noise.rtn_tau_min_s=1e-4", "noise.rtn_tau_max_s=1e-2"]
    _, _, off = _placement(_dev(*base, "programming.verify_rtn=false"), n=4000)
    _, _, on = _placement(_dev(*base, "programming.verify_rtn=true"), n=4000)
    under_off = np.quantile(off.vth - off.target_vth, 0.01)
    under_on = np.quantile(on.vth - on.target_vth, 0.01)
    assert under_on < under_off - 0.005  # cells that verified on an occupied trap sit low
    assert np.mean(on.vth < on.target_vth - 0.005) > 0.01


def test_two_way_tuning_places_within_tolerance():
    dev = _dev("programming.two_way_tuning=true", "programming.tune_tolerance_rel=0.02")
    s_tuned, p_tuned, r = _placement(dev)
    s_plain, p_plain, _ = _placement(DEV)
    assert s_tuned < 0.5 * s_plain and p_tuned > p_plain
    assert np.all(r.tune_pulses <= dev.programming.tune_max_pulses)


def test_failed_cells_are_reported():
    dev = _dev("programming.max_pulses=10")
    r = _program(dev, np.full(200, 1e-11))  # level 0 needs ~55 pulses
    assert r.failed.all() and r.failed_cells.size == 200
    assert np.all(r.pulses == 10)
    var = draw_variation(np.random.default_rng(0), (400,),
                         DEV.variation.replace(stuck_on_fraction=0.05, stuck_off_fraction=0.05),
                         DEV.cell)
    r = _program(DEV, np.full(400, 3e-8), variation=var)
    stuck = var.stuck != 0
    assert stuck.any()
    assert np.array_equal(np.flatnonzero(r.failed), np.flatnonzero(stuck))
    assert np.all(r.vth[var.stuck == STUCK_OFF] == DEV.cell.vth_max_v)
    assert np.all(r.vth[var.stuck == STUCK_ON] == DEV.cell.vth_erased_v)


def test_time_and_energy_follow_pulses_parallelism_and_pump():
    i_t = np.full(256, 3e-8)
    a = _program(DEV, i_t)
    b = _program(_dev("programming.cells_in_parallel=1"), i_t)
    c = _program(_dev("programming.pump_efficiency=0.6"), i_t)
    p = DEV.programming
    serial = p.erase_time_s + b.pulses.sum() * p.pulse_width_s + b.verifies.sum() * p.verify_time_s
    assert b.program_time_s == pytest.approx(serial)
    assert a.program_time_s < b.program_time_s / 10
    e_pulse = p.program_current_a * p.program_voltage_v * p.pulse_width_s
    assert a.energy_j > a.pulses.sum() * e_pulse / p.pump_efficiency
    assert c.energy_j == pytest.approx(a.energy_j / 2, rel=0.01)


def test_soft_program_repairs_over_erased_stacked_cells():
    dev = _dev("cell.cell_type='stacked_gate'", "programming.soft_program_vth_v=0.0")
    vth = np.array([-1.0, -0.3, 0.2, 0.5])
    out, pulses = soft_program(np.random.default_rng(0), vth, dev)
    assert np.all(out[:2] >= 0.0) and np.all(pulses[:2] > 0)
    assert np.array_equal(out[2:], vth[2:]) and np.all(pulses[2:] == 0)
    same, none = soft_program(np.random.default_rng(0), vth, DEV)  # split-gate: no soft program
    assert np.array_equal(same, vth) and np.all(none == 0)


def test_level_targets_and_target_vth_order():
    cur = level_currents(DEV.levels)
    assert cur[0] == DEV.levels.i_off_a
    assert np.allclose(cur[1:], np.arange(1, 8) * DEV.levels.i_unit_a)
    vt = target_vth(_model(DEV), DEV, cur)
    assert np.all(np.diff(vt) < 0)  # more current -> lower V_th
    with pytest.raises(InputError, match="level"):
        target_current(DEV.levels, np.array([0, 8]))


def test_poisson_sampler_moments():
    """Both Poisson branches (chop-down, PTRS) have the right mean and variance."""
    seeds = np.arange(1, 200001, dtype=np.uint64) * np.uint64(2654435761)
    for lam in (0.7, 6.0, 25.0, 140.0):
        k = _poisson_np(np.full(seeds.size, lam), seeds, 16)
        assert k.mean() == pytest.approx(lam, rel=0.01)
        assert k.var() == pytest.approx(lam, rel=0.03)


def test_poisson_table_sampler_matches_pmf_and_twin():
    """The table + thinning sampler (lam < PTRS_ABOVE) and PTRS follow the Poisson pmf
    (chi-square against scipy's pmf, closed form), and the numba draw equals the NumPy twin."""
    import numba
    from scipy.stats import chi2, poisson

    from norsim.device.programming import PTRS_ABOVE, _poisson

    @numba.njit
    def draw(lam, seeds, counter):
        out = np.empty(seeds.size)
        for i in range(seeds.size):
            out[i] = _poisson(lam[i], seeds[i], np.uint64(counter))
        return out

    seeds = np.arange(1, 100001, dtype=np.uint64) * np.uint64(2654435761)
    for lam in (0.3, 1.0, 2.5, 7.7, 25.4, PTRS_ABOVE - 0.1, PTRS_ABOVE + 3.0):
        lv = np.full(seeds.size, lam)
        k = draw(lv, seeds, 16)
        assert np.array_equal(k, _poisson_np(lv, seeds, 16))
        ks = np.arange(int(lam + 10 * np.sqrt(lam) + 10))
        obs = np.bincount(k.astype(np.int64), minlength=ks.size)[:ks.size]
        exp = poisson.pmf(ks, lam) * seeds.size
        use = exp > 20
        stat = np.sum((obs[use] - exp[use]) ** 2 / exp[use])
        assert stat < chi2.ppf(1 - 1e-4, use.sum() - 1), lam
    mixed = np.random.default_rng(0).uniform(0.0, 1.5 * PTRS_ABOVE, seeds.size)
    assert np.array_equal(draw(mixed, seeds, 80), _poisson_np(mixed, seeds, 80))


def test_bad_targets_rejected():
    with pytest.raises(InputError, match="i_target"):
        _program(DEV, np.array([1e-8, np.nan]))
    with pytest.raises(InputError, match="variation"):
        var = draw_variation(np.random.default_rng(0), (3,), DEV.variation, DEV.cell)
        _program(DEV, np.full(4, 1e-8), variation=var)


def test_verify_read_noise_widens_placement():
    """A shorter verify read (wider bandwidth, more shot noise) places low currents worse."""
    base = ["programming.verify_rtn=false", "programming.ispp_step_v=0.02",
            "programming.max_pulses=400"]
    i_t = np.full(3000, 1e-11)  # level 0: ~13 % shot noise in a 1 us verify read
    quiet = _program(_dev(*base, "programming.verify_time_s=1e-4"), i_t)
    noisy = _program(_dev(*base, "programming.verify_time_s=1e-7"), i_t)
    assert not quiet.failed.any() and not noisy.failed.any()
    assert np.std(noisy.vth - noisy.target_vth) > 2 * np.std(quiet.vth - quiet.target_vth)


@pytest.mark.parametrize("ov", [
    # injection means above PTRS_ABOVE (PTRS in the ISPP pulses) and tuning with PTRS
    ["programming.ispp_step_v=0.2", "programming.dv_per_electron_v=0.001",
     "programming.two_way_tuning=true", "programming.tune_step_v=0.2"],
    # tuning draws past the SIMD loop's CDF entries, no RTN at verify, few pulses (fails)
    ["programming.two_way_tuning=true", "programming.tune_step_v=0.06",
     "programming.verify_rtn=false", "programming.max_pulses=48"],
    # a tuning budget that runs out, RTN with lag after ISPP
    ["programming.two_way_tuning=true", "programming.tune_max_pulses=3",
     "noise.rtn_mean_v=0.01", "noise.rtn_tau_min_s=1e-4", "noise.rtn_tau_max_s=1e-2"],
], ids=["ptrs", "long-tune-draws", "tune-budget"])
def test_simd_kernel_paths_equal_numpy_reference(ov):
    """The kernel's vector loops hand rare cases to scalar code (verify near the target,
    guide-table walks, long thinning, PTRS means, tuning draws past the compared entries,
    the tuning budget); every path gives the NumPy reference's numbers."""
    dev = _dev(*ov)
    rng = np.random.default_rng(5)
    level = rng.integers(0, 8, 1100)  # not a multiple of the kernel's block
    i_t = target_current(dev.levels, level)
    var = draw_variation(np.random.default_rng(6), level.shape,
                         dev.variation.replace(stuck_on_fraction=0.02, stuck_off_fraction=0.02),
                         dev.cell)
    a = _program(dev, i_t, seed=3, variation=var)
    b = _program(dev, i_t, seed=3, variation=var, fast=False)
    assert np.array_equal(a.pulses, b.pulses)
    assert np.array_equal(a.tune_pulses, b.tune_pulses)
    assert np.array_equal(a.verifies, b.verifies)
    assert np.array_equal(a.verified, b.verified)
    assert np.array_equal(a.vth, b.vth)


def test_few_values_matches_unique():
    from norsim.device.programming import _few_values

    rng = np.random.default_rng(0)
    vals = rng.uniform(-1, 1, 9)
    a = vals[rng.integers(0, 9, 50_000)]
    a[-1] = vals[8] + 1.0  # a value absent from the prefix the candidates come from
    uniq, inv = _few_values(a)
    u2, i2 = np.unique(a, return_inverse=True)
    assert np.array_equal(uniq, u2) and np.array_equal(inv, i2.reshape(-1))
    assert _few_values(rng.uniform(0, 1, 5000), limit=100) is None


def test_target_vth_with_variation_solves_what_the_cell_reads():
    """Per-cell n, beta, DIBL: target_vth (direct inversion) equals the nested Newton
    iteration to the solver tolerance, and its read current is the target."""
    from norsim.device.iv import vth_for_current
    from norsim.device.levels import read_bias

    dev = _dev()
    m = _model(dev)
    rng = np.random.default_rng(4)
    n = 4000
    i_t = level_currents(dev.levels)[rng.integers(0, dev.levels.levels_per_cell, n)]
    kw = draw_variation(np.random.default_rng(5), (n,), dev.variation, dev.cell).iv_kwargs(m)
    v, g = target_vth(m, dev, i_t, **kw, return_slope=True)
    b = read_bias(dev)
    v0, g0 = vth_for_current(m, i_t, b.v_wl, b.v_cg, b.v_d, b.v_s, **kw, return_slope=True,
                             newton=True)
    assert np.max(np.abs(v - v0)) <= 2e-11
    assert np.allclose(g, g0, rtol=1e-8)
    assert np.allclose(read_current(m, dev, v, **kw), i_t, rtol=1e-12)
