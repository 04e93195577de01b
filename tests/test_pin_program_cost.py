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
