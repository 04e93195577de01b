"""Configuration of the cost model: technology parameters and the model choices.

``CostConfig.tech`` holds the 40 nm-class values of every technology parameter (each with its
source in ``docs/cost-model.md`` and ``docs/parameters.md``). ``CostConfig.node`` picks a
node preset (``norsim.cost.technology.NODE_PRESETS``: 40 nm default, 55 nm, 28 nm); the
effective technology is the node preset with every ``tech`` field that differs from its 40 nm
default applied on top (so ``--set cost.tech.e_sense_j=...`` works at every node).
"""

from __future__ import annotations

from dataclasses import dataclass

from norsim.config.base import ConfigBase, param, section


@dataclass
class TechConfig(ConfigBase):
    """Technology parameters of the periphery, wires and digital logic (40 nm-class)."""

    v_dd_v: float = param(1.1, "Periphery supply voltage; the bit-line current is drawn from "
                          "it through the clamp, and digital energies are quoted at it.",
                          unit="V", lo=0.0, hi=5.0, lo_open=True)
    cell_pitch_m: float = param(0.32e-6, "Cell pitch along word and bit lines (wire length per "
                                "cell segment).", unit="m", lo=0.0, hi=1e-4, lo_open=True)
    cell_area_um2: float = param(0.1, "Area of one flash cell.", unit="um^2", lo=0.0, hi=100.0,
                                 lo_open=True)
    c_wire_f_per_m: float = param(2.0e-10, "Wire capacitance per metre of line (0.2 fF/um).",
                                  unit="F/m", lo=0.0, hi=1e-8)
    c_drain_f: float = param(0.1e-15, "Drain-junction capacitance one cell adds to its bit "
                             "line.", unit="F", lo=0.0, hi=1e-12)
    c_gate_f: float = param(0.15e-15, "Gate capacitance one cell adds to its word line.",
                            unit="F", lo=0.0, hi=1e-12)
    c_source_f: float = param(0.1e-15, "Source-junction capacitance one cell adds to its "
                              "source line.", unit="F", lo=0.0, hi=1e-12)
    r_wl_segment_ohm: float = param(5.0, "Word-line resistance per cell segment (silicided "
                                    "poly gate line).", unit="Ohm", lo=0.0, hi=1e6)
    r_wl_driver_ohm: float = param(1000.0, "Output resistance of a word-line driver.",
                                   unit="Ohm", lo=0.0, hi=1e9)
    e_wl_driver_j: float = param(10e-15, "Driver/DAC logic energy per word-line pulse "
                                 "(excluding the line's C V^2).", unit="J", lo=0.0, hi=1e-9)
    e_sense_j: float = param(20e-15, "Sense amplifier / integrator energy per conversion.",
                             unit="J", lo=0.0, hi=1e-9)
    adc_sar_a_w_per_bit: float = param(2.1691e-6, "SAR ADC power slope a in "
                                       "P = a bits + b (NeuroSim SarADC model).", unit="W",
                                       lo=0.0, hi=1.0)
    adc_sar_b_w: float = param(16.693e-6, "SAR ADC power offset b in P = a bits + b.",
                               unit="W", lo=0.0, hi=1.0)
    t_adc_per_bit_s: float = param(1e-9, "SAR conversion time per bit: a conversion takes "
                                   "(bits + 1) of these.", unit="s", lo=0.0, hi=1e-3,
                                   lo_open=True)
    adc_walden_fom_j: float = param(5e-15, "Walden figure of merit: energy per conversion "
                                    "step, E = FoM 2^bits.", unit="J", lo=0.0, hi=1e-9)
    adc_area_base_um2: float = param(470.0, "ADC area independent of resolution (comparator, "
                                     "SAR logic); with the per-level term fitted to published "
                                     "compact/CIM column ADCs scaled to 40 nm "
                                     "(docs/cost-model.md).", unit="um^2", lo=0.0, hi=1e7)
    adc_area_per_level_um2: float = param(1.76, "ADC area per quantisation level (the "
                                          "capacitor DAC grows as 2^bits).", unit="um^2",
                                          lo=0.0, hi=1e6)
    e_add_per_bit_j: float = param(3.5e-15, "Adder / accumulator energy per bit of width.",
                                   unit="J", lo=0.0, hi=1e-9)
    e_buffer_per_bit_j: float = param(0.16e-12, "SRAM buffer energy per bit read or written.",
                                      unit="J", lo=0.0, hi=1e-9)
    e_move_per_bit_j: float = param(0.1e-12, "On-chip data movement of layer outputs between "
                                    "tiles per bit.", unit="J", lo=0.0, hi=1e-9)
    e_digital_mac_j: float = param(0.1e-12, "Energy of one digital multiply-accumulate "
                                   "(<= 8-bit operands) for layers run digitally.", unit="J",
                                   lo=0.0, hi=1e-9)
    f_clk_hz: float = param(200e6, "Digital clock (digital layers, shift-add).", unit="Hz",
                            lo=0.0, hi=1e11, lo_open=True)
    digital_macs_per_cycle: int = param(64, "Parallel MAC units of the digital engine that "
                                        "runs digital layers.", lo=1, hi=1 << 24)
    wl_driver_area_um2: float = param(5.0, "Area of one word-line driver.", unit="um^2",
                                      lo=0.0, hi=1e6)
    sense_area_um2: float = param(20.0, "Area of one column's clamp and sense circuit, without "
                                  "its integration capacitor.", unit="um^2", lo=0.0, hi=1e6)
    cap_density_f_per_um2: float = param(2e-15, "MIM/MOM capacitor density (integration "
                                         "capacitor area = array.sense.integrator_cap_f / "
                                         "this).", unit="F/um^2", lo=0.0, hi=1e-12,
                                         lo_open=True)
    adder_area_per_bit_um2: float = param(5.0, "Adder/accumulator area per bit of width.",
                                          unit="um^2", lo=0.0, hi=1e5)
    sram_area_per_bit_um2: float = param(0.5, "Buffer SRAM area per bit, periphery included.",
                                         unit="um^2", lo=0.0, hi=1e4)
    digital_mac_area_um2: float = param(500.0, "Area of one digital MAC unit.", unit="um^2",
                                        lo=0.0, hi=1e7)
    adc_overlap: bool = param(True, "Conversions of one read cycle overlap the next cycle's "
                              "integration (sample-and-hold at the integrator).")
    tiles_programmed_in_parallel: int = param(1, "Tiles the programming engine writes at once "
                                              "(each tile's own cell parallelism is "
                                              "device.programming.cells_in_parallel).",
                                              lo=1, hi=1 << 20)


@dataclass
class CostConfig(ConfigBase):
    """Which technology node and ADC model the cost model uses."""

    node: str = param("40nm", "Technology node preset (norsim.cost.technology.NODE_PRESETS); "
                      "cost.tech fields that differ from their 40 nm defaults override it.",
                      choices=("40nm", "55nm", "28nm"))
    adc_model: str = param("survey", "ADC energy per conversion: 'survey' (the ADC survey's "
                           "Walden-FoM envelope vs rate, E = F (1 + f/f_c) 2^bits, "
                           "norsim.cost.adc_survey), 'survey_median' (the survey's median "
                           "curve), 'sar_neurosim' (E = (a bits + b)(bits + 1) t_bit) or "
                           "'walden' (E = FoM 2^bits).",
                           choices=("survey", "survey_median", "sar_neurosim", "walden"))
    tech: TechConfig = section(TechConfig, "Technology parameters (40 nm-class values).")
