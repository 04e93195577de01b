"""Technology node presets and the per-component energy, time and area formulas.

Every number of the presets is documented in ``docs/cost-model.md`` (section "Node
presets"). The 40 nm values are the ``TechConfig`` defaults; 55 nm and 28 nm change the
supply, the cell, the NeuroSim SAR coefficients and scale digital energies by C V^2.
"""

from __future__ import annotations

import dataclasses
import math

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


def adc_energy_j(bits: int, tech: TechConfig, model: str) -> float:
    """Energy of one conversion at ``bits`` resolution."""
    if model == "sar_neurosim":
        return (tech.adc_sar_a_w_per_bit * bits + tech.adc_sar_b_w) * (bits + 1) * tech.t_adc_per_bit_s
    if model == "walden":
        return tech.adc_walden_fom_j * 2.0 ** bits
    raise ConfigError("cost.adc_model", model, "'sar_neurosim' or 'walden'")


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
