"""Configuration of the floating-gate cell and its read bias.

Defaults are the 40 nm-class values of ``docs/parameters.md`` (each with its source and
evidence tag). Device-layer modules (programming, retention, noise, variation) add their
own sections to :class:`DeviceConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

from norsim.config.base import ConfigBase, param, section



def _refuse_removed(data, prefix: str, removed: dict) -> None:
    """An old configuration that sets a removed field fails naming what replaced it."""
    if isinstance(data, dict):
        from norsim.errors import ConfigError

        for key, why in removed.items():
            if key in data:
                raise ConfigError(f"{prefix}{key}", data[key], why)

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
    n_tempco_per_k: float = param(1.5e-4, "Relative temperature coefficient of the slope "
                                  "factor: n(T) = n(T_ref) (1 + n_tempco_per_k (T - T_ref)), "
                                  "for every cell (its own n from the D2D spread).", unit="1/K",
                                  lo=-0.01, hi=0.01)
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
class LevelsConfig(ConfigBase):
    """Target read currents of the weight levels stored in one cell."""

    levels_per_cell: int = param(8, "Levels stored per cell: 8 for signed 4-bit weights on "
                                 "differential pairs (|w| <= 7), 16 for offset encoding.",
                                 lo=2, hi=256)
    i_unit_a: float = param(1.0e-8, "Read current per weight unit: level L > 0 is programmed "
                            "to L * i_unit_a at the read bias.", unit="A", lo=0.0, hi=1.0e-4,
                            lo_open=True)
    i_off_a: float = param(1.0e-11, "Verify target of level 0 (weight zero, deeply "
                           "programmed off cell).", unit="A", lo=0.0, hi=1.0e-6, lo_open=True)


@dataclass
class ProgrammingConfig(ConfigBase):
    """Block erase, soft-program and ISPP program-and-verify to a target read current."""

    erase_sigma_v: float = param(0.15, "Spread (standard deviation) of V_th after block erase "
                                 "around vth_erased_v (before D2D variation).", unit="V",
                                 lo=0.0, hi=2.0)
    erase_time_s: float = param(1.0e-3, "Duration of one block erase.", unit="s", lo=0.0, hi=1.0)
    erase_energy_j: float = param(1.0e-6, "Energy of one block erase (pump output, before "
                                  "pump efficiency).", unit="J", lo=0.0, hi=1.0)
    soft_program_vth_v: float = param(0.0, "Stacked-gate only: cells erased below this V_th "
                                      "(they would leak with the word line off) are soft-"
                                      "programmed up to it.", unit="V", lo=-5.0, hi=5.0)
    soft_program_step_v: float = param(0.02, "Stacked-gate soft-program: V_th shift per "
                                       "soft-program pulse.", unit="V", lo=0.0, hi=1.0,
                                       lo_open=True)
    ispp_start_v: float = param(4.0, "Program-gate voltage of the first ISPP pulse.", unit="V",
                                lo=0.0, hi=30.0)
    ispp_step_v: float = param(0.05, "ISPP staircase step per pulse.", unit="V", lo=0.0,
                               hi=1.0, lo_open=True)
    max_pulses: int = param(200, "Pulses after which a cell that has not verified is "
                            "reported failed.", lo=1, hi=100000)
    pulse_width_s: float = param(1.0e-6, "Width of one program pulse.", unit="s", lo=0.0,
                                 hi=1.0, lo_open=True)
    verify_time_s: float = param(1.0e-6, "Duration of one verify read (incl. settling).",
                                 unit="s", lo=0.0, hi=1.0, lo_open=True)
    verify_reads: int = param(1, "Reads averaged per verify (equivalently a sense "
                              "integration verify_reads x verify_time_s long): white read "
                              "noise falls as 1/sqrt(verify_reads); each verify costs "
                              "verify_reads x verify_time_s and as many reads' energy. RTN "
                              "traps stay frozen within one verify.", lo=1, hi=4096)
    inj_rate_v_per_s: float = param(5.0e4, "Injection law: dV_th/dt when the floating-gate "
                                    "drive alpha_G (V_pgm - V_th) equals inj_offset_v.",
                                    unit="V/s", lo=0.0, hi=1.0e12, lo_open=True)
    inj_offset_v: float = param(3.0, "Injection law: floating-gate drive at which dV_th/dt = "
                                "inj_rate_v_per_s.", unit="V", lo=0.0, hi=30.0)
    inj_slope_v: float = param(0.1, "Injection law: floating-gate drive per e-fold of "
                               "injection rate.", unit="V", lo=0.0, hi=5.0, lo_open=True)
    dv_per_electron_v: float = param(2.0e-3, "V_th shift per injected electron (q / C_CG "
                                     "referred to the control gate).", unit="V", lo=0.0,
                                     hi=0.05, lo_open=True)
    verify_rtn: bool = param(True, "Verify reads see RTN in the state its traps happen to "
                             "be in (and read noise).")
    two_way_tuning: bool = param(False, "After ISPP, fine-tune each cell with small V_th-"
                                 "lowering and V_th-raising pulses towards its target current.")
    tune_step_v: float = param(5.0e-3, "Mean V_th shift of one fine-tuning pulse (either "
                               "direction).", unit="V", lo=0.0, hi=0.5, lo_open=True)
    tune_tolerance_rel: float = param(0.01, "Fine tuning stops when the verify read is within "
                                      "this relative distance of the target current.", lo=0.0,
                                      hi=1.0, lo_open=True)
    tune_tolerance_abs_a: float = param(0.0, "Absolute floor of the tuning tolerance: a cell "
                                        "is in tolerance within max(tune_tolerance_rel x target, "
                                        "this) of its target current (off cells' pA targets sit "
                                        "below a verify's shot noise).", unit="A", lo=0.0,
                                        hi=1.0e-6)
    tune_max_pulses: int = param(50, "Fine-tuning pulses per cell at most; a cell still "
                                 "outside tolerance at the final verify is flagged failed.",
                                 lo=0, hi=100000)
    tune_adaptive: bool = param(False, "Model-based tuning pulses: the mean V_th shift of a "
                                "pulse is tune_gain x the error the verify measured (capped at "
                                "tune_step_v), instead of a fixed tune_step_v.")
    retry_rounds: int = param(0, "Rounds that re-program (from where they ended, no erase) "
                              "the cells flagged failed (not stuck); cells still failing stay "
                              "flagged for column repair.", lo=0, hi=10)
    tune_gain: float = param(1.0, "Fraction of the measured V_th error a model-based tuning "
                             "pulse aims to remove.", lo=0.0, hi=2.0, lo_open=True)
    wear_drive_loss_v: float = param(0.05, "Program/erase wear of programming speed: "
                                     "floating-gate drive lost to oxide-trapped electrons at "
                                     "1e5 cycles (linear in retention.pe_cycles); it adds to "
                                     "inj_offset_v, so the injection rate falls by "
                                     "exp(-loss / inj_slope_v).", unit="V", lo=0.0, hi=5.0)
    program_current_a: float = param(5.0e-5, "Current drawn from the pump during a program "
                                     "pulse (per cell).", unit="A", lo=0.0, hi=1.0)
    program_voltage_v: float = param(4.5, "Voltage of the supply the program current is drawn "
                                     "from (drain/source-line program bias).", unit="V",
                                     lo=0.0, hi=30.0)
    pump_efficiency: float = param(0.3, "Charge-pump efficiency (energy delivered / energy "
                                   "drawn from V_dd).", lo=0.0, hi=1.0, lo_open=True)
    cells_in_parallel: int = param(32, "Cells programmed (and verified) simultaneously.",
                                   lo=1, hi=1 << 20)


# fields of RetentionConfig removed by issue 16, with what replaced them (old config files
# that still set them fail with this message instead of a bare "unknown field")
_RETENTION_REMOVED = {
    "charge_gain": "no such field (removed in issue 16): loss now scales with V_th - vth_neutral_v (signed: "
                   "cells below the neutral V_th gain V_th); set retention.vth_neutral_v",
    "a_v_per_decade": "no such field (replaced in issue 16) -- use a_v_per_decade_per_v (loss per decade per volt "
                      "of V_th above vth_neutral_v, time counted from the end of programming "
                      "with tau0_s physical); nor40 uses 3e-4 V/decade/V",
}


@dataclass
class RetentionConfig(ConfigBase):
    """Charge loss towards the neutral V_th, counted from the end of programming:
    dV_th = -A_cell (V_th - V_th,neutral) ln(1 + AF(T) t / tau0)."""

    a_v_per_decade_per_v: float = param(3.0e-4, "Median V_th change per decade of time (once "
                                        "AF t >> tau0) per volt of V_th above the neutral "
                                        "V_th: a cell 1 V above vth_neutral_v loses this much "
                                        "per decade.", unit="V/decade/V", lo=0.0, hi=1.0)
    vth_neutral_v: float = param(0.7, "Neutral (no net floating-gate charge) control-gate-"
                                 "referred V_th: cells above it lose V_th, cells below it gain, "
                                 "both towards it.", unit="V", lo=-5.0, hi=10.0)
    a_sigma_ln: float = param(0.3, "Log-normal spread (sigma of ln A) of A across cells.",
                              lo=0.0, hi=3.0)
    tau0_s: float = param(1.3e3, "Time constant tau0 of the log-time law at t_ref_k; time t "
                          "is counted from the end of programming.", unit="s", lo=0.0,
                          hi=1.0e12, lo_open=True)
    ea_ev: float = param(1.1, "Activation energy of intrinsic charge loss.", unit="eV",
                         lo=0.0, hi=5.0)
    t_ref_k: float = param(300.0, "Reference temperature of the acceleration factor "
                           "AF(T_ref) = 1.", unit="K", lo=1.0, hi=1000.0)
    pe_cycles: int = param(1000, "Program/erase cycles the population has seen.", lo=0,
                           hi=10**9)
    tail_fraction_fresh: float = param(1.0e-5, "Fraction of fast-leaking (defect) cells "
                                       "before cycling.", lo=0.0, hi=1.0)
    tail_fraction_per_cycle: float = param(1.0e-8, "Growth of the fast-leaking fraction per "
                                           "program/erase cycle.", lo=0.0, hi=1.0)
    tail_a_multiplier: float = param(10.0, "A of a fast-leaking cell relative to a normal "
                                     "one.", lo=1.0, hi=1.0e4)
    tail_ea_ev: float = param(0.6, "Activation energy of the defect-assisted (fast-leaking) "
                              "charge loss.", unit="eV", lo=0.0, hi=5.0)

    @classmethod
    def from_dict(cls, data: dict, prefix: str = ""):
        _refuse_removed(data, prefix, _RETENTION_REMOVED)
        return super().from_dict(data, prefix)


@dataclass
class NoiseConfig(ConfigBase):
    """Read noise of the cell current: white (shot/thermal), 1/f and RTN."""

    shot_thermal: bool = param(True, "Include white noise: shot noise 2 q I in weak inversion, "
                               "channel thermal noise 4 k T gamma g_m in strong inversion.")
    thermal_gamma: float = param(2.0 / 3.0, "Channel thermal-noise factor gamma (strong "
                                 "inversion, long channel).", lo=0.0, hi=5.0)
    flicker_kf: float = param(1.0e-8, "Normalised 1/f noise: S_I / I^2 = flicker_kf / f.",
                              unit="1", lo=0.0, hi=1.0)
    flicker_f_low_hz: float = param(1.0, "Lower frequency bound of the integrated 1/f noise "
                                     "(1 / observation time).", unit="Hz", lo=0.0, hi=1.0e9,
                                     lo_open=True)
    rtn_traps_per_cell: int = param(2, "Trap sites per cell (array slots): each holds an "
                                    "active two-state RTN trap with probability "
                                    "rtn_trap_probability (binomial trap count).", lo=0, hi=32)
    rtn_trap_probability: float = param(0.5, "Probability that a trap site holds an active "
                                        "trap: a fraction 1 - (1 - p)^sites of the cells shows "
                                        "RTN (the same at every level: the level raises the "
                                        "amplitude, not the trap count).", lo=0.0, hi=1.0)
    rtn_ea_capture_ev: float = param(0.4, "Activation energy of the trap capture time: "
                                     "tau_c(T) = tau_c(T_ref) exp[(E_a / k)(1/T - 1/T_ref)].",
                                     unit="eV", lo=0.0, hi=2.0)
    rtn_ea_emission_ev: float = param(0.5, "Activation energy of the trap emission time "
                                      "(as for capture); E_e != E_c moves the occupancy "
                                      "tau_e / (tau_c + tau_e) with temperature.", unit="eV",
                                      lo=0.0, hi=2.0)
    rtn_wear_gain: float = param(1.0, "Program/erase wear of RTN: the mean RTN amplitude is "
                                 "multiplied by 1 + rtn_wear_gain x pe_cycles / 1e5 "
                                 "(retention.pe_cycles; 1e5 = rated endurance).", lo=0.0, hi=100.0)
    rtn_t_ref_k: float = param(300.0, "Temperature at which rtn_tau_min_s / rtn_tau_max_s "
                               "bound the (log-uniform) time constants.", unit="K", lo=1.0,
                               hi=1000.0)
    rtn_mean_v: float = param(2.0e-3, "Mean of the exponential RTN V_th amplitude of a cell "
                              "at the erased level.", unit="V", lo=0.0, hi=0.5)
    rtn_level_gain: float = param(1.0, "Growth of the mean RTN amplitude with programmed "
                                  "level: mean = rtn_mean_v (1 + gain (V_th - vth_erased) / "
                                  "(vth_max - vth_erased)).", lo=0.0, hi=100.0)
    rtn_tau_min_s: float = param(1.0e-6, "Shortest RTN capture/emission time constant "
                                 "(log-uniform).", unit="s", lo=0.0, hi=1.0e6, lo_open=True)
    rtn_tau_max_s: float = param(1.0e2, "Longest RTN capture/emission time constant "
                                 "(log-uniform).", unit="s", lo=0.0, hi=1.0e9, lo_open=True)

    def _check_consistency(self, prefix: str) -> None:
        if self.rtn_tau_max_s < self.rtn_tau_min_s:
            from norsim.errors import ConfigError

            raise ConfigError(f"{prefix}rtn_tau_max_s", self.rtn_tau_max_s,
                              f"a value >= rtn_tau_min_s ({self.rtn_tau_min_s:g} s)")


@dataclass
class VariationConfig(ConfigBase):
    """Device-to-device variation and stuck cells."""

    vth_sigma_v: float = param(0.1, "D2D standard deviation of V_th (adds to the erase spread; "
                               "a current-verified program removes most of it).", unit="V",
                               lo=0.0, hi=2.0)
    n_sigma_rel: float = param(0.03, "D2D relative standard deviation of the slope factor n.",
                               lo=0.0, hi=0.5)
    beta_sigma_rel: float = param(0.05, "D2D sigma of ln beta (log-normal).", lo=0.0, hi=1.0)
    dibl_sigma_rel: float = param(0.1, "D2D relative standard deviation of DIBL eta.",
                                  lo=0.0, hi=1.0)
    dvth_dt_sigma_v_per_k: float = param(5.0e-5, "D2D standard deviation of the cell's V_th "
                                         "temperature coefficient around dvth_dt_v_per_k: a "
                                         "cell's V_th moves by its own (dvth_dt + delta) (T - "
                                         "T_ref) (applied in the current as the equivalent "
                                         "weak-inversion factor exp(-alpha_G delta (T - T_ref) / "
                                         "(n U_T)) on beta; exact in subthreshold).",
                                         unit="V/K", lo=0.0, hi=0.01)
    correlation_length_cells: float = param(0.0, "Spatial correlation length (Gaussian kernel "
                                            "sigma, in cell pitches) of the correlated part; 0 "
                                            "= uncorrelated.", unit="cells", lo=0.0, hi=1.0e4)
    correlated_fraction: float = param(0.5, "Fraction of each variance that is spatially "
                                       "correlated (when the correlation length is > 0).",
                                       lo=0.0, hi=1.0)
    stuck_on_fraction: float = param(1.0e-5, "Fraction of cells stuck at the erased state "
                                     "(cannot be programmed).", lo=0.0, hi=1.0)
    stuck_off_fraction: float = param(1.0e-5, "Fraction of cells stuck fully programmed "
                                      "(V_th = vth_max_v).", lo=0.0, hi=1.0)


@dataclass
class DisturbConfig(ConfigBase):
    """Disturbs (issue 20): program disturb of half-selected cells during array tuning and
    read disturb, both Fowler-Nordheim tunnelling through the tunnel oxide,
    J = A E^2 exp(-B / E), E = oxide voltage / t_ox (zero at zero stress), dV_th =
    J x tunnel area x stress time / C_CG with C_CG = q / programming.dv_per_electron_v; and
    floating-gate coupling to neighbours programmed after a cell's final verify."""

    bl_inhibit_v: float = param(1.8, "Bit-line inhibit voltage of unselected columns during a "
                                "program pulse: a cell on the pulsed word line sees the gate "
                                "stress V_pgm - bl_inhibit_v (coupled by alpha_G).", unit="V",
                                lo=0.0, hi=30.0)
    bl_stress_v: float = param(4.5, "Drain-to-gate stress of a bit-line half-selected cell "
                               "(word line off) during a pulse on its column.", unit="V",
                               lo=0.0, hi=30.0)
    bl_coupling: float = param(0.9, "Fraction of the bit-line stress across the tunnel oxide "
                               "(1 - drain coupling to the floating gate).", lo=0.0, hi=1.0)
    tunnel_oxide_nm: float = param(9.0, "Tunnel-oxide thickness.", unit="nm", lo=1.0,
                                   hi=100.0)
    tunnel_area_um2: float = param(0.01, "Tunnelling area of the floating gate.", unit="um^2",
                                   lo=0.0, hi=100.0)
    fn_a_a_per_v2: float = param(1.25e-6, "Fowler-Nordheim pre-factor A.", unit="A/V^2",
                                 lo=0.0, hi=1.0)
    fn_b_v_per_cm: float = param(2.54e8, "Fowler-Nordheim slope B.", unit="V/cm", lo=0.0,
                                 hi=1.0e10)
    program_disturb: bool = param(True, "Apply the program disturb of half-selected cells "
                                  "when the mapper programs a tile (row-major tuning order "
                                  "of tuning_order).")
    tuning_order: str = param("two_pass", "Order in which a tile's cells are programmed: "
                              "'two_pass' (ISPP of every cell, then fine tuning of every cell, "
                              "both row-major: only later tuning pulses and tuning changes "
                              "disturb a verified cell) or 'cell_by_cell' (each cell fully "
                              "programmed and tuned before the next, row-major; also what "
                              "'two_pass' becomes without programming.two_way_tuning).",
                              choices=("two_pass", "cell_by_cell"))
    fg_coupling_wl: float = param(0.005, "Floating-gate coupling ratio to a neighbour on the "
                                  "same word line (adjacent column): a cell's V_th moves by "
                                  "this times the neighbour's V_th change after the cell's "
                                  "final verify (0: off).", lo=0.0, hi=0.5)
    fg_coupling_bl: float = param(0.002, "Floating-gate coupling ratio to a neighbour on the "
                                  "same bit line (adjacent row), as fg_coupling_wl.", lo=0.0,
                                  hi=0.5)
    read_count: float = param(0.0, "Reads each cell has received before the evaluated "
                              "inference (a chip's life of inference: images x bit-serial "
                              "cycles x reuses per image); each read stresses the tunnel oxide "
                              "with the floating-gate potential of the read bias for "
                              "read.t_read_s (read disturb; 0: fresh).", lo=0.0, hi=1.0e20)


# fields of DeviceConfig removed by issue 20, with what replaced them
_DEVICE_REMOVED = {
    "operating_region": "no such field (removed in issue 20: no code read it) -- the operating "
                        "region now follows from the level currents and the read bias "
                        "(norsim.device.levels.operating_region: inversion coefficient of the top "
                        "level); delete the line, or set device.levels.i_unit_a / device.read.*",
}


@dataclass
class DeviceConfig(ConfigBase):
    """Everything about one NOR cell population."""

    cell: CellConfig = section(CellConfig, "Cell I-V parameters.")
    read: ReadBiasConfig = section(ReadBiasConfig, "Nominal read bias.")
    levels: LevelsConfig = section(LevelsConfig, "Target read currents of the weight levels.")
    programming: ProgrammingConfig = section(ProgrammingConfig, "Erase and ISPP "
                                             "program-and-verify.")
    retention: RetentionConfig = section(RetentionConfig, "Charge loss over time.")
    noise: NoiseConfig = section(NoiseConfig, "Read noise of the cell current.")
    variation: VariationConfig = section(VariationConfig, "Device-to-device variation and "
                                         "stuck cells.")
    disturb: DisturbConfig = section(DisturbConfig, "Program and read disturb, floating-gate "
                                     "coupling of neighbours.")

    @property
    def operating_region(self) -> str:
        """Operating region of the top weight level at the read bias (derived, read-only):
        'subthreshold' (inversion coefficient < 0.1), 'moderate_inversion' or
        'strong_inversion' (> 10); see :func:`norsim.device.levels.operating_region`."""
        from norsim.device.levels import operating_region

        return operating_region(self)

    def _check_consistency(self, prefix: str) -> None:
        # The injection law's closed-form pulse (norsim/device/programming.py) evaluates
        # exp((alpha_G V_pgm - V_0) / s) and exp(-alpha_G V_th / s) and clips both exponents at
        # 700 (float64 overflows at 709); past the clip programming stalls without an error.
        p, c = self.programming, self.cell
        v_pgm_max = p.ispp_start_v + p.ispp_step_v * p.max_pulses
        vth_reach = max(abs(c.vth_erased_v), abs(c.vth_max_v)) + 1.0   # 1 V for variation
        s_min = max(c.alpha_g * v_pgm_max - p.inj_offset_v, c.alpha_g * vth_reach) / 700.0
        if p.inj_slope_v < s_min:
            from norsim.errors import ConfigError

            raise ConfigError(f"{prefix}programming.inj_slope_v", p.inj_slope_v,
                              f"a value >= {s_min:.3g} V for this cell and staircase (the "
                              f"injection law's exponent, up to (alpha_G x {v_pgm_max:g} V - "
                              f"inj_offset_v) / inj_slope_v, must stay <= 700)")

    @classmethod
    def from_dict(cls, data: dict, prefix: str = ""):
        _refuse_removed(data, prefix, _DEVICE_REMOVED)
        return super().from_dict(data, prefix)
