"""Device noise pinned to closed forms (issue 26): the two-state Markov step of a trap, the
Arrhenius law of its time constants, and the wear growth of the RTN amplitude."""

from __future__ import annotations

import numpy as np
import pytest

from norsim.device.config import DeviceConfig
from norsim.device.noise import (K_EV_PER_K, RtnTraps, advance_rtn, rtn_time_factor,
                                 rtn_wear_factor)
from norsim.errors import InputError

N = 200_000


def _traps(occupied: bool, tau_c=2e-3, tau_e=6e-3):
    shape = (N, 1)
    return RtnTraps(np.ones(shape), np.full(shape, tau_c), np.full(shape, tau_e),
                    np.full(shape, occupied))


@pytest.mark.parametrize("start", [True, False])
@pytest.mark.parametrize("dt_over_tau", [0.1, 1.0, 5.0])
def test_markov_step_relaxes_to_equilibrium_with_the_combined_time_constant(start, dt_over_tau):
    tau_c, tau_e = 2e-3, 6e-3
    tau = tau_c * tau_e / (tau_c + tau_e)
    p = tau_e / (tau_c + tau_e)            # equilibrium occupancy
    want = p + (float(start) - p) * np.exp(-dt_over_tau)
    out = advance_rtn(_traps(start, tau_c, tau_e), np.random.default_rng(0), dt_over_tau * tau)
    frac = out.occupied.mean()
    assert abs(frac - want) < 5 * np.sqrt(want * (1 - want) / N) + 1e-9
    np.testing.assert_array_equal(out.tau_c_s, tau_c)   # the time constants are kept


def test_trap_time_constants_follow_arrhenius_and_are_longer_when_colder():
    ea, t_ref = 0.3, 300.0
    for t in (250.0, 300.0, 358.15):
        want = np.exp(ea / K_EV_PER_K * (1 / t - 1 / t_ref))
        assert rtn_time_factor(t, ea, t_ref) == pytest.approx(want, rel=1e-12)
    assert rtn_time_factor(250.0, ea, t_ref) > 1 > rtn_time_factor(358.15, ea, t_ref)
    with pytest.raises(InputError, match="temperature_k"):
        rtn_time_factor(0.0, ea, t_ref)
    assert np.isfinite(rtn_time_factor(0.5, 1e-4, t_ref))  # any T > 0 K is valid


def test_rtn_amplitude_grows_linearly_with_wear():
    noise = DeviceConfig().noise.replace(rtn_wear_gain=0.8)
    assert rtn_wear_factor(noise, 0) == 1.0
    assert rtn_wear_factor(noise, 5e4) == pytest.approx(1.4, rel=1e-12)
    assert rtn_wear_factor(noise, 1e5) == pytest.approx(1.8, rel=1e-12)
    for bad in (np.nan, -1.0, np.inf):
        with pytest.raises(InputError, match="pe_cycles"):
            rtn_wear_factor(noise, bad)
