"""DAC/ADC periphery: ADC range, step, per-ADC mismatch, temperature drift; sense constants.

ADC model (per conversion, in LSB):

    v    = reading * gain_a / step + offset_a + sigma * z        (z ~ N(0, 1), fresh per read)
    v   += inl_lsb * 4 u (1 - u),   u = (v - lo) / (hi - lo) clipped to [0, 1]
    code = clip(round(v), lo, hi)

with ``gain_a = (1 + gain_error + gain_sigma N_a)(1 + gain_tempco (T - T_ref))`` and
``offset_a = offset_lsb + offset_sigma N_a`` drawn once per ADC instance ``a`` (channel h
uses ADC ``h // columns_per_adc``). ``sigma^2 = var_I / step^2 + noise_lsb^2`` where var_I
holds the summed cell read-noise variances of the converted column(s) (see
``noise_read``) and the integrator's kT/C noise ``k T C_int / t_read^2``. Unsigned conversions use codes 0..2^b - 1;
signed (analog subtraction) -(2^(b-1) - 1)..2^(b-1) - 1.

The full-scale range FS is the physical maximum (all rows on at the top level) or a
percentile of a calibration batch; ``step = FS / hi``, rounded up to a whole number of
``unit`` currents when ``step_integer_units``. Readings beyond the integrator's capacity
``C_int V_swing / t_read`` clip before conversion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from norsim.array.config import ArrayConfig
from norsim.array.kernels import (N_PARAMS, P_CONST_VAR, P_HI, P_INL, P_ISAT, P_LO,
                                  P_NOISE_LSB, P_SHOT, P_STEP)
from norsim.device.iv import BOLTZMANN_J_PER_K
from norsim.errors import InputError


@dataclass
class Adc:
    bits: int
    signed: bool
    n_adcs: int
    gain: np.ndarray  # (n_adcs,)
    offset: np.ndarray  # (n_adcs,) LSB
    step_a: float | None = None  # A per LSB, None until the range is set
    full_scale_a: float | None = None

    @property
    def lo(self) -> int:
        return -(2 ** (self.bits - 1) - 1) if self.signed else 0

    @property
    def hi(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1

    def set_range(self, full_scale_a: float, unit_a: float, integer_units: bool) -> None:
        if not np.isfinite(full_scale_a) or full_scale_a <= 0:
            raise InputError("adc full scale", full_scale_a, "a finite current > 0 A (calibration "
                             "batch produced no signal?)")
        step = full_scale_a / self.hi
        if integer_units:
            step = unit_a * max(1.0, np.ceil(step / unit_a * (1 - 1e-12)))
        self.full_scale_a = float(full_scale_a)
        self.step_a = float(step)


def make_adc(acfg: ArrayConfig, n_channels: int, signed: bool, temperature_k: float,
             rng: np.random.Generator) -> Adc:
    a = acfg.adc
    n_adcs = -(-n_channels // a.columns_per_adc)
    drift = 1.0 + a.gain_tempco_per_k * (temperature_k - a.tempco_ref_k)
    gain = (1.0 + a.gain_error + a.gain_sigma * rng.standard_normal(n_adcs)) * drift
    offset = a.offset_lsb + a.offset_sigma_lsb * rng.standard_normal(n_adcs)
    return Adc(a.bits, signed, n_adcs, gain, offset)


def readout_params(acfg: ArrayConfig, adc: Adc, t_read_s: float, temperature_k: float) -> np.ndarray:
    """Parameter vector of the fused readout kernel (see kernels.P_*)."""
    par = np.zeros(N_PARAMS)
    par[P_STEP] = adc.step_a
    par[P_LO] = adc.lo
    par[P_HI] = adc.hi
    par[P_INL] = acfg.adc.inl_lsb
    n = acfg.noise
    par[P_SHOT] = 0.0  # set by the array when the cell noise is pure shot noise (var ~ I)
    par[P_CONST_VAR] = (BOLTZMANN_J_PER_K * temperature_k * acfg.sense.integrator_cap_f / t_read_s**2
                        if n.ktc_enabled else 0.0)
    par[P_NOISE_LSB] = acfg.adc.noise_lsb
    par[P_ISAT] = acfg.sense.integrator_cap_f * acfg.sense.integrator_swing_v / t_read_s
    return par
