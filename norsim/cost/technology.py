"""Technology node presets and the per-component energy, time and area formulas.

Every number of the presets is documented in ``docs/cost-model.md`` (section "Node
presets"). The 40 nm values are the ``TechConfig`` defaults; 55 nm and 28 nm change the
supply, the cell, the NeuroSim SAR coefficients and scale digital energies by C V^2.
"""

from __future__ import annotations

import dataclasses
import math

from norsim.cost import adc_survey
from norsim.cost.config import CostConfig, TechConfig
from norsim.errors import ConfigError


def _digital_scale(node_nm: float, v_dd: float) -> float:
    """C V^2 scaling of digital energies from the 40 nm / 1.1 V reference."""
    return (node_nm / 40.0) * (v_dd / 1.1) ** 2


def _node(node_nm: float, v_dd: float, cell_area_um2: float, sar_a: float, sar_b: float,
          **extra) -> TechConfig:
    base = TechConfig()
    s = _digital_scale(node_nm, v_dd)
    return dataclasses.replace(
        base, v_dd_v=v_dd, cell_area_um2=cell_area_um2, cell_pitch_m=math.sqrt(cell_area_um2) * 1e-6,
        adc_sar_a_w_per_bit=sar_a, adc_sar_b_w=sar_b,
        e_add_per_bit_j=base.e_add_per_bit_j * s, e_buffer_per_bit_j=base.e_buffer_per_bit_j * s,
        e_move_per_bit_j=base.e_move_per_bit_j * s, e_digital_mac_j=base.e_digital_mac_j * s,
        e_wl_driver_j=base.e_wl_driver_j * s, e_sense_j=base.e_sense_j * s,
        adder_area_per_bit_um2=base.adder_area_per_bit_um2 * (node_nm / 40.0) ** 2,
        sram_area_per_bit_um2=base.sram_area_per_bit_um2 * (node_nm / 40.0) ** 2,
        digital_mac_area_um2=base.digital_mac_area_um2 * (node_nm / 40.0) ** 2,
        wl_driver_area_um2=base.wl_driver_area_um2 * (node_nm / 40.0) ** 2,
        sense_area_um2=base.sense_area_um2 * (node_nm / 40.0) ** 2,
        adc_area_base_um2=base.adc_area_base_um2 * (node_nm / 40.0) ** 2,
        **extra)


#: 55 nm: 1.2 V, ESF3 cell 0.33 um^2 (Guo et al. 2017), NeuroSim 65 nm SAR coefficients
#: (the nearest NeuroSim node at or above 55 nm). 28 nm: 0.9 V, 0.05 um^2 cell (lower end
#: of the research table's range), SAR coefficients interpolated linearly in node between
#: NeuroSim's 45 nm and 22 nm sets.
_F28 = (45.0 - 28.0) / (45.0 - 22.0)
NODE_PRESETS: dict[str, TechConfig] = {
    "40nm": TechConfig(),
    "55nm": _node(55.0, 1.2, 0.33, 3.7506e-6, 25.844e-6),
    "28nm": _node(28.0, 0.9, 0.05, (2.1691 + _F28 * (0.538 - 2.1691)) * 1e-6,
                  (16.693 + _F28 * (4.3753 - 16.693)) * 1e-6),
}


def effective_tech(cost: CostConfig) -> TechConfig:
    """The node preset with every ``cost.tech`` field that differs from its 40 nm default."""
    if cost.node not in NODE_PRESETS:
        raise ConfigError("cost.node", cost.node, f"one of {sorted(NODE_PRESETS)}")
    preset = NODE_PRESETS[cost.node]
    default = TechConfig()
    changed = {f.name: getattr(cost.tech, f.name) for f in dataclasses.fields(TechConfig)
               if getattr(cost.tech, f.name) != getattr(default, f.name)}
    return dataclasses.replace(preset, **changed)


ADC_MODELS = ("survey", "survey_median", "sar_neurosim", "walden")


def adc_energy_j(bits: int, tech: TechConfig, model: str) -> float:
    """Energy of one conversion at ``bits`` resolution (``survey*``: at the conversion rate
    1 / ((bits + 1) t_bit) of :func:`adc_time_s`)."""
    if model in ("survey", "survey_median"):
        curve = "envelope" if model == "survey" else "median"
        return adc_survey.energy_j(bits, 1.0 / adc_time_s(bits, tech), curve)
    if model == "sar_neurosim":
        return (tech.adc_sar_a_w_per_bit * bits + tech.adc_sar_b_w) * (bits + 1) * tech.t_adc_per_bit_s
    if model == "walden":
        return tech.adc_walden_fom_j * 2.0 ** bits
    raise ConfigError("cost.adc_model", model, "one of " + ", ".join(ADC_MODELS))


def adc_energy_bounds_j(bits: int, tech: TechConfig) -> tuple[float, float]:
    """(lowest, highest) energy of one conversion over the ADC sources: the survey envelope,
    the survey median and the NeuroSim SAR model (the range ``norsim report`` prints)."""
    e = [adc_energy_j(bits, tech, m) for m in ("survey", "survey_median", "sar_neurosim")]
    return min(e), max(e)


def adc_time_s(bits: int, tech: TechConfig) -> float:
    """Duration of one SAR conversion: (bits + 1) bit cycles."""
    return (bits + 1) * tech.t_adc_per_bit_s


def adc_area_um2(bits: int, tech: TechConfig) -> float:
    return tech.adc_area_base_um2 + tech.adc_area_per_level_um2 * 2.0 ** bits


def elmore_tau_s(r_source_ohm: float, r_segment_ohm: float, c_segment_f: float, n: int) -> float:
    """Elmore delay of a line of ``n`` RC segments driven through ``r_source_ohm`` to its far
    end: R_s C_total + sum_k k R C = R_s n C + R C n (n + 1) / 2."""
    return r_source_ohm * n * c_segment_f + r_segment_ohm * c_segment_f * n * (n + 1) / 2.0


def settle_taus(bits: int) -> float:
    """Time constants to settle within half an LSB of a ``bits`` converter: ln(2^(bits+1))."""
    return (bits + 1) * math.log(2.0)


#: Spread of the component sources, as multipliers of the effective technology value:
#: field -> (at the low-cost corner, at the high-cost corner, source of the spread).
#: ``norsim report`` prints every figure between the two corners (every component at its
#: lowest / highest source at once: bounds, not a confidence interval). The ADC energy's
#: corners are the lowest / highest of the survey envelope, the survey median and the
#: NeuroSim SAR model (:func:`adc_energy_bounds_j`). Sources in docs/cost-model.md.
SPREAD: dict[str, tuple[float, float, str]] = {
    "e_sense_j": (0.5, 2.5, "[R] 5.3: 10-50 fJ per column sense at 40 nm"),
    "e_wl_driver_j": (0.5, 2.0, "[E] factor 2 either way"),
    "e_add_per_bit_j": (0.89, 1.07, "Horowitz ISSCC 2014: 32-bit add 0.1 pJ (3.1 fJ/bit) to "
                                    "8-bit add 0.03 pJ (3.75 fJ/bit)"),
    "e_buffer_per_bit_j": (0.5, 2.0, "Horowitz ISSCC 2014: 64-bit read of a 32 kB SRAM 20 pJ "
                                     "(0.31 pJ/bit, 2x); smaller buffers [E] 0.5x"),
    "e_move_per_bit_j": (0.5, 2.0, "[E] 0.5-2 mm of wire"),
    "e_digital_mac_j": (0.5, 2.3, "Horowitz ISSCC 2014: 8-bit multiply 0.2 pJ + 8-bit add "
                                  "0.03 pJ = 0.23 pJ (2.3x); 4-bit operands [E] 0.5x"),
    "c_gate_f": (0.9, 1.57, "[R] 5.3: C_WL 0.2-0.3 fF per cell, less 0.064 fF of wire"),
    "c_drain_f": (0.5, 2.0, "[E] factor 2 either way"),
    "t_adc_per_bit_s": (0.5, 2.0, "[E] factor 2 around NeuroSim's 1 ns per bit"),
    "adc_area_base_um2": (0.39, 2.55, "published compact / CIM ADCs at 8 bits scaled to 40 nm: "
                                      "Fan et al. ISCAS 2022 360 um^2 to Kull et al. ISSCC "
                                      "2013 2,340 um^2 around the fitted 920 um^2"),
    "adc_area_per_level_um2": (0.39, 2.55, "as adc_area_base_um2"),
    "sense_area_um2": (0.5, 2.0, "[E] factor 2 either way"),
    "cap_density_f_per_um2": (2.0, 0.5, "MIM 1 fF/um^2 to stacked MIM/MOM 4 fF/um^2 [E]"),
    "wl_driver_area_um2": (0.5, 2.0, "[E] factor 2 either way"),
    "adder_area_per_bit_um2": (0.5, 2.0, "[E] factor 2 either way"),
    "sram_area_per_bit_um2": (0.5, 2.0, "[E] factor 2 either way"),
    "digital_mac_area_um2": (0.5, 2.0, "[E] factor 2 either way"),
}

CORNERS = ("low", "high")


def corner_tech(tech: TechConfig, corner: str) -> TechConfig:
    """``tech`` with every :data:`SPREAD` field at its ``'low'``- or ``'high'``-cost source."""
    if corner not in CORNERS:
        raise ConfigError("corner", corner, "'low' or 'high'")
    k = 0 if corner == "low" else 1
    return dataclasses.replace(tech, **{f: getattr(tech, f) * s[k] for f, s in SPREAD.items()})
