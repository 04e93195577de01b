"""Configuration of the floating-gate cell and its read bias.

Defaults are the 40 nm-class values of ``docs/parameters.md`` (each with its source and
evidence tag). Device-layer modules (programming, retention, noise, variation) add their
own sections to :class:`DeviceConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

from norsim.config.base import ConfigBase, param, section


@dataclass
class CellConfig(ConfigBase):
    """EKV-style floating-gate transistor (stacked-gate or split-gate NOR cell)."""

    cell_type: str = param("split_gate", "Cell structure: 'split_gate' (select transistor in "
                           "series, digital input on the select gate) or 'stacked_gate' (input on "
                           "the control gate).", choices=("split_gate", "stacked_gate"))
    slope_factor_n: float = param(1.3, "Subthreshold slope factor n of the floating-gate "
                                  "transistor (floating-gate referred).", lo=1.0, hi=3.0)
    alpha_g: float = param(0.6, "Control-gate to floating-gate coupling ratio alpha_G.",
                           lo=0.05, hi=1.0, lo_open=True)
    dibl_eta: float = param(0.05, "Drain coupling to the floating gate (DIBL), V of "
                            "floating-gate-referred overdrive per V of V_DS.", unit="V/V", lo=0.0, hi=0.5)
    beta_a_per_v2: float = param(5.0e-4, "Transconductance factor beta = mu C_ox W/L at "
                                 "t_ref_k; specific current I_S = 2 n beta U_T^2.",
                                 unit="A/V^2", lo=0.0, hi=1.0, lo_open=True)
    t_ref_k: float = param(300.0, "Reference temperature of V_th and beta.", unit="K",
                           lo=1.0, hi=600.0)
    dvth_dt_v_per_k: float = param(-1.0e-3, "Temperature coefficient of the control-gate-"
                                   "referred threshold voltage.", unit="V/K", lo=-0.01, hi=0.01)
    mobility_exponent: float = param(1.5, "Mobility temperature exponent m: "
                                     "beta(T) = beta(T_ref) (T/T_ref)^-m.", lo=0.0, hi=3.0)
    # split-gate select transistor (ignored for stacked_gate)
    select_vth_v: float = param(0.4, "Threshold voltage of the split-gate select transistor.",
                                unit="V", lo=-1.0, hi=2.0)
    select_n: float = param(1.2, "Slope factor of the select transistor.", lo=1.0, hi=3.0)
    select_beta_a_per_v2: float = param(2.0e-3, "beta of the select transistor.",
                                        unit="A/V^2", lo=0.0, hi=1.0, lo_open=True)
    vth_erased_v: float = param(-0.5, "Control-gate-referred V_th after block erase (mean).",
                                unit="V", lo=-5.0, hi=5.0)
    vth_max_v: float = param(3.0, "Highest V_th programming may reach (fully programmed).",
                             unit="V", lo=-5.0, hi=10.0)


@dataclass
class ReadBiasConfig(ConfigBase):
    """Nominal read bias of a cell (used by verify reads and by the array)."""

    v_cg_read_v: float = param(1.0, "Control-gate voltage during a read (for split-gate "
                               "cells the fixed analog control-gate bias).", unit="V", lo=-5.0, hi=10.0)
    v_select_on_v: float = param(1.8, "Select-gate (word-line) voltage of a selected row "
                                 "(split-gate) or its 'on' level.", unit="V", lo=0.0, hi=5.0)
    v_select_off_v: float = param(0.0, "Select-gate voltage of an unselected row.",
                                  unit="V", lo=-2.0, hi=5.0)
    v_bl_read_v: float = param(0.3, "Bit-line (drain) clamp voltage during a read.",
                               unit="V", lo=0.0, hi=3.0, lo_open=True)
    v_sl_read_v: float = param(0.0, "Source-line voltage during a read.", unit="V", lo=-1.0, hi=3.0)
    temperature_k: float = param(300.0, "Operating (read) temperature.", unit="K",
                                 lo=200.0, hi=450.0)
    t_read_s: float = param(100e-9, "Read (integration) time of one MVM cycle.", unit="s",
                            lo=0.0, hi=1.0, lo_open=True)


@dataclass
class DeviceConfig(ConfigBase):
    """Everything about one NOR cell population."""

    operating_region: str = param("subthreshold", "Operating region of weight cells during a "
                                  "read: 'subthreshold' (10-100 nA per cell, exponential I-V) or "
                                  "'quasi_saturation' (wider V_th spacing).",
                                  choices=("subthreshold", "quasi_saturation"))
    cell: CellConfig = section(CellConfig, "Cell I-V parameters.")
    read: ReadBiasConfig = section(ReadBiasConfig, "Nominal read bias.")
