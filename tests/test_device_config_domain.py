"""Device configurations whose physics would leave its numeric domain are refused up front."""

import dataclasses

import pytest

from norsim.config.presets import load_preset
from norsim.device.config import DeviceConfig
from norsim.errors import ConfigError


def _with_slope(device: DeviceConfig, slope_v: float) -> DeviceConfig:
    return dataclasses.replace(
        device, programming=dataclasses.replace(device.programming, inj_slope_v=slope_v))


def test_injection_slope_below_the_exponent_range_is_refused():
    """The injection law's exponent (alpha_G V_pgm,max - V_0) / s must stay <= 700: the
    bound follows the staircase, and the preset (s = 0.1 V) is far inside it."""
    dev = load_preset("nor40").device
    p, c = dev.programming, dev.cell
    v_max = p.ispp_start_v + p.ispp_step_v * p.max_pulses
    s_min = max(c.alpha_g * v_max - p.inj_offset_v,
                c.alpha_g * (max(abs(c.vth_erased_v), abs(c.vth_max_v)) + 1.0)) / 700.0
    assert 1e-3 < s_min < p.inj_slope_v
    _with_slope(dev, s_min * 1.01).validate("device.")
    with pytest.raises(ConfigError, match=r"device\.programming\.inj_slope_v") as err:
        _with_slope(dev, s_min * 0.99).validate("device.")
    assert f"{s_min:.3g}" in str(err.value)
    # a longer staircase needs a larger slope
    longer = dataclasses.replace(dev, programming=dataclasses.replace(
        p, max_pulses=p.max_pulses * 2, inj_slope_v=s_min * 1.01))
    with pytest.raises(ConfigError, match="inj_slope_v"):
        longer.validate()
