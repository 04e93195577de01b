"""Configuration of on-chip calibration and compensation (``SimConfig.compensation``).

Every mechanism is optional and off unless ``enabled``; each is modelled as the chip's own
controller would run it: reference cells and test patterns read through the same periphery
(ADC with its mismatch and noise), no knowledge of the true V_th drift.
"""

from __future__ import annotations

from dataclasses import dataclass

from norsim.config.base import ConfigBase, param


@dataclass
class CompensationConfig(ConfigBase):
    """Reference columns, trims, drift and temperature compensation, refresh, re-calibration."""

    enabled: bool = param(False, "Master switch: apply the compensation steps below "
                          "(norsim.compensation.compensate) after the ADC ranges are set.")
    reference_columns: int = param(4, "Reference columns programmed per tile alongside the "
                                   "weights (a ladder of levels, each a differential pair "
                                   "whose negative column holds level 0), on the tile's word "
                                   "lines and read through the same ADC model.", lo=1, hi=64)
    gain_correction: str = param(
        "per_column", "Digital/ADC-reference trim from on-chip reads at run conditions: 'off', "
        "'global' (one ratiometric gain per tile from its reference columns: the ADC reference "
        "tracks the reference-column current) or 'per_column' (per-channel gain and offset "
        "fitted to test-pattern reads of the weight columns against the currents their "
        "programmed levels should give).", choices=("off", "global", "per_column"))
    probe_patterns: int = param(16, "Test patterns (random row subsets, each read over all "
                                "input cycles) per gain/offset fit.", lo=2, hi=4096)
    cell_screen: bool = param(True, "Read every row of each tile alone and re-program cells "
                              "that conduct far more than their level allows (fast-leaking "
                              "retention tail, e.g. a level-1 cell at 40x its current).")
    screen_factor: float = param(3.0, "A cell is re-programmed when its single-row reading "
                                 "exceeds this multiple of its level's nominal reading (and "
                                 "3 LSB above it).", lo=1.0, hi=1.0e6)
    adaptive_read_voltage: bool = param(False, "Closed loop per tile: shift the control-gate "
                                        "read voltage until the reference columns conduct "
                                        "their nominal current again.")
    read_voltage_iterations: int = param(3, "Secant/Newton steps of the adaptive read-voltage "
                                         "loop.", lo=1, hi=50)
    wl_temperature_tracking: bool = param(False, "Open loop: shift the control-gate read "
                                          "voltage by wl_tempco_v_per_k (T_read - "
                                          "T_program).")
    wl_tempco_v_per_k: float = param(-1.0e-3, "Read-voltage temperature coefficient of the "
                                     "tracking bias generator (matches the cell V_th "
                                     "coefficient so the overdrive stays constant).",
                                     unit="V/K", lo=-0.02, hi=0.02)
    activation_recalibration: bool = param(False, "Re-estimate the digital requantisation "
                                           "(folded BN) affine of every analog layer from a "
                                           "calibration batch run on the chip: match the "
                                           "per-channel mean and the layer (or channel) "
                                           "spread of the accumulators to the statistics the "
                                           "integer model gave on the same images at deploy "
                                           "time.")
    recalibration_images: int = param(128, "Calibration images used by the activation "
                                      "re-calibration.", lo=2, hi=100000)
    recalibration_scale: str = param("layer", "Granularity of the re-calibrated scale: one "
                                     "per 'layer' (robust with few images) or one per output "
                                     "'channel'. Means are always per channel.",
                                     choices=("layer", "channel"))
    refresh_interval_s: float = param(0.0, "Re-program (refresh) every tile this often; the "
                                      "chip then carries only the drift since the last "
                                      "refresh and one more P/E cycle per refresh (0 = never).",
                                      unit="s", lo=0.0, hi=1.0e10)
