"""Noise-aware QAT: the device's V_th spread as a multiplicative log-normal weight noise.

In subthreshold a cell's current is ``I ~ exp(alpha_G (V_CG - V_th) / (n U_T))`` with V_th
referred to the control gate, so a V_th error of standard deviation ``sigma_Vth`` scales the
weight (current) by ``exp(z * sigma_lnw)``, ``z ~ N(0, 1)``, with

    sigma_lnw = sigma_Vth * alpha_G / (n * U_T),    U_T = k_B T / q

(research doc, section 7, rule of thumb written for FG-referred V_th, here with the
coupling ratio for CG-referred V_th). ``n``, ``alpha_G`` and ``T`` come from the preset.
"""

from __future__ import annotations

import math

from scipy.constants import Boltzmann, elementary_charge

from norsim.errors import InputError


def sigma_lnw_from_vth(sigma_vth_v: float, cfg) -> float:
    """``sigma_lnw`` for a V_th spread ``sigma_vth_v`` (V) and a :class:`SimConfig`."""
    if not (math.isfinite(sigma_vth_v) and sigma_vth_v >= 0):
        raise InputError("sigma_vth_v", sigma_vth_v, "a finite V_th spread >= 0 V")
    cell = cfg.device.cell
    u_t = Boltzmann * cfg.device.read.temperature_k / elementary_charge
    return sigma_vth_v * cell.alpha_g / (cell.slope_factor_n * u_t)


def output_noise_from_stats(layer_stats: list[dict]) -> dict[str, float]:
    """Per layer, the error's rms relative to the rms of the exact accumulator, pooled over
    chips: ``sqrt(sum error power / sum signal power)`` (= 10^(-SNR/20) of the pooled SNR).
    ``layer_stats``: one ``{layer: LayerStats}`` per simulated chip
    (:attr:`norsim.mapping.engine.ChipRun.layer_stats`). The noise-aware QAT recipe adds a
    Gaussian noise of this relative std to each layer's output (``Recipe.out_noise_rel``)."""
    if not layer_stats:
        raise InputError("layer_stats", "[]", "the statistics of at least one chip")
    out = {}
    for name in layer_stats[0]:
        sig = sum(s[name].signal_power for s in layer_stats)
        err = sum(s[name].error_power for s in layer_stats)
        if sig <= 0:
            raise InputError(f"signal power of {name}", sig, "> 0 (a layer that computed)")
        out[name] = math.sqrt(err / sig)
    return out
