"""Programming cost counts the soft-program pulses (issue 26, mutation testing: a mutant that
subtracted them, ``pulses - soft``, passed every test, since the preset's soft-program
threshold leaves no erased cell below it).

The accounting (docs/physics.md, programming cost): every pulse, ISPP, tuning or soft
program, draws I_prog V_prog t_pulse from the pump at efficiency eta; each verify reads the
cell at its target current for verify_reads x verify_time; the erase costs E_erase / eta."""

import numpy as np
import pytest

from norsim.device.config import DeviceConfig
from norsim.device.iv import cell_model
from norsim.device.levels import target_current
from norsim.device.programming import program, read_bias, verify_window_s


def test_energy_counts_every_pulse_including_soft_programming():
    # soft programming applies to stacked-gate cells (over-erased cells would leak)
    dev = DeviceConfig().with_overrides(["cell.cell_type='stacked_gate'",
                                         "programming.soft_program_vth_v=1.0",
                                         "programming.retry_rounds=0"])
    m = cell_model(dev.cell, dev.read.temperature_k)
    rng = np.random.default_rng(4)
    i_t = np.exp(rng.uniform(np.log(1e-9), np.log(1e-7), 200))
    r = program(rng, m, dev, i_t)
    soft = int(np.sum(r.soft_program_pulses))
    assert soft > 0  # the raised threshold puts erased cells below it
    p = dev.programming
    e_pulse = p.program_current_a * p.program_voltage_v * p.pulse_width_s / p.pump_efficiency
    b = read_bias(dev)
    e_verify = float(np.sum(r.verifies * r.target_current_a)) * (b.v_d - b.v_s) * verify_window_s(dev)
    want = (int(np.sum(r.pulses)) + soft) * e_pulse + e_verify + p.erase_energy_j / p.pump_efficiency
    assert r.energy_j == pytest.approx(want, rel=1e-12)
    # the soft pulses are a visible share of it (the mutant's error would be 2 x that)
    assert soft * e_pulse > 1e-3 * want


def _energy_from_totals(dev, r) -> float:
    """The accounting above from the result's totals: one erase, every pulse, every verify at
    V_DS = V_BL - V_SL."""
    p, rd = dev.programming, dev.read
    e_pulse = p.program_current_a * p.program_voltage_v * p.pulse_width_s / p.pump_efficiency
    e_verify = (float(np.sum(r.verifies * r.target_current_a)) * (rd.v_bl_read_v - rd.v_sl_read_v)
                * p.verify_reads * p.verify_time_s)
    n_pulses = int(np.sum(r.pulses)) + int(np.sum(r.soft_program_pulses))
    return n_pulses * e_pulse + e_verify + p.erase_energy_j / p.pump_efficiency


def test_energy_of_retry_rounds_is_one_erase_plus_all_pulses_and_verifies():
    """Retry rounds re-program the failed cells without a new erase (issue 26: the retry's
    energy bookkeeping, sub.energy - E_erase / eta, was unpinned): the total is the
    accounting of one program run applied to the summed pulses and verifies."""
    dev = DeviceConfig().with_overrides(["programming.two_way_tuning=true",
                                         "programming.tune_max_pulses=2",
                                         "programming.tune_adaptive=true"])
    m = cell_model(dev.cell, dev.read.temperature_k)
    i_t = target_current(dev.levels, np.random.default_rng(8).integers(1, 8, 1000))
    once = program(np.random.default_rng(4), m, dev, i_t)
    assert once.n_failed > 0  # the retries have work to do
    for rounds in (1, 3):
        r = program(np.random.default_rng(4), m, dev.with_overrides(
            [f"programming.retry_rounds={rounds}"]), i_t)
        assert int(np.sum(r.pulses)) > int(np.sum(once.pulses))
        assert r.energy_j == pytest.approx(_energy_from_totals(dev, r), rel=1e-12)
    assert once.energy_j == pytest.approx(_energy_from_totals(dev, once), rel=1e-12)


def test_verify_energy_uses_the_drain_source_voltage():
    """A verify read at the target current dissipates I_target (V_BL - V_SL) over the verify
    window; with the pulses and the erase free of cost that is the whole energy (a non-zero
    source-line read bias: V_DS = 0.8 - 0.5 V)."""
    dev = DeviceConfig().with_overrides(["read.v_bl_read_v=0.8", "read.v_sl_read_v=0.5",
                                         "programming.program_current_a=0.0",
                                         "programming.erase_energy_j=0.0"])
    m = cell_model(dev.cell, dev.read.temperature_k)
    i_t = target_current(dev.levels, np.random.default_rng(2).integers(0, 8, 300))
    r = program(np.random.default_rng(3), m, dev, i_t)
    want = float(np.sum(r.verifies * i_t)) * 0.3 * verify_window_s(dev)
    assert want > 0 and r.energy_j == pytest.approx(want, rel=1e-9)
    assert r.energy_j == pytest.approx(_energy_from_totals(dev, r), rel=1e-12)
