"""Configuration of one NOR array and its periphery.

Sections: ``encoding`` (how integer inputs and weights become word-line drive and cell
currents), ``dac`` (word-line levels and timing), ``adc`` (converter), ``sense`` (bit-line
clamp and integrator) and ``noise`` (noise drawn per read). Every default has a row with its
source in ``docs/parameters.md``. The circuit-mode wire section is added by the circuit solver.
"""

from __future__ import annotations

from dataclasses import dataclass

from norsim.array.circuit_config import WireConfig
from norsim.config.base import ConfigBase, param, section
from norsim.errors import ConfigError


@dataclass
class EncodingConfig(ConfigBase):
    """Input and weight encodings of the array."""

    input_scheme: str = param(
        "bit_serial", "Input encoding: 'bit_serial' (one input bit per read cycle on the word "
        "lines, digital shift-add), 'pulse_width' (one cycle, word-line pulse width proportional "
        "to the code; charge = I t with word-line RC settling), 'multi_level' (one cycle, "
        "word-line/control-gate amplitude from a linear DAC; shows the cell's exponential "
        "transfer) or 'current_mirror' (one cycle, the code sets a current into a "
        "diode-programmed reference cell per row whose gate voltage drives the row: the linear "
        "subthreshold gate-coupled scheme).",
        choices=("bit_serial", "pulse_width", "multi_level", "current_mirror"))
    input_bits: int = param(4, "Bits of the unsigned input (activation) codes.", lo=1, hi=16)
    weight_scheme: str = param(
        "differential", "Weight encoding: 'differential' (a positive and a negative column per "
        "weight, levels 0..2^(b-1)-1 each), 'offset' (one column per weight holding w + 2^(b-1), "
        "one reference column per tile at level 2^(b-1)) or 'bit_sliced' (the magnitude split "
        "into slices of bits_per_cell bits, one differential column pair per slice).",
        choices=("differential", "offset", "bit_sliced"))
    weight_bits: int = param(4, "Bits of the signed weight codes: |w| <= 2^(b-1) - 1.", lo=2, hi=12)
    subtraction: str = param(
        "digital", "Where the negative (or reference) column is subtracted: 'digital' (each "
        "column converted, codes subtracted: two conversions) or 'analog' (currents subtracted "
        "before one signed conversion).", choices=("digital", "analog"))
    bits_per_cell: int = param(1, "Bits of weight magnitude stored per cell when "
                               "weight_scheme = 'bit_sliced'.", lo=1, hi=8)

    def _check_consistency(self, prefix: str) -> None:
        if self.weight_scheme == "bit_sliced" and self.bits_per_cell > self.weight_bits - 1:
            raise ConfigError(f"{prefix}bits_per_cell", self.bits_per_cell,
                              f"at most weight_bits - 1 = {self.weight_bits - 1}")


@dataclass
class DacConfig(ConfigBase):
    """Word-line drivers: levels of the amplitude DAC and word-line timing."""

    ml_span_v: float = param(0.3, "Multi-level amplitude encoding: voltage span of the DAC "
                             "levels below the nominal read level (code max -> nominal level, "
                             "code 1 -> nominal - span (1 - 1/max)).", unit="V", lo=0.0, hi=5.0,
                             lo_open=True)
    wl_tau_s: float = param(1.0e-9, "Word-line RC time constant (driver resistance x line "
                            "capacitance); sets the pulse-width settling error.", unit="s",
                            lo=0.0, hi=1.0e-3)


@dataclass
class AdcConfig(ConfigBase):
    """Column ADC (SAR), shared by ``columns_per_adc`` columns through a mux."""

    bits: int = param(6, "ADC resolution.", lo=1, hi=24)
    range_mode: str = param(
        "calibrated", "Full-scale range: 'calibrated' (a percentile of the readings of a "
        "calibration batch, set once by NorArray.calibrate) or 'physical' (the largest current "
        "the column can carry: all rows on at the top level). Never a per-batch oracle.",
        choices=("calibrated", "physical"))
    calibration_percentile: float = param(99.9, "Percentile of the calibration readings "
                                          "taken as full scale.", unit="%", lo=50.0, hi=100.0)
    step_integer_units: bool = param(True, "Round the ADC step up to a whole number of "
                                     "weight-level currents, so outputs stay integer dot "
                                     "products (the digital scale is a shift/multiply by an "
                                     "integer).")
    offset_lsb: float = param(0.0, "Systematic offset of every ADC.", unit="LSB", lo=-64.0, hi=64.0)
    offset_sigma_lsb: float = param(0.25, "Standard deviation of the per-ADC offset mismatch "
                                    "(drawn once per array).", unit="LSB", lo=0.0, hi=64.0)
    gain_error: float = param(0.0, "Systematic relative gain error of every ADC.", lo=-0.5, hi=0.5)
    gain_sigma: float = param(0.005, "Standard deviation of the per-ADC relative gain "
                              "mismatch (drawn once per array).", lo=0.0, hi=0.5)
    inl_lsb: float = param(0.25, "Peak integral non-linearity (bow shape, zero at both ends "
                           "of the range).", unit="LSB", lo=-16.0, hi=16.0)
    noise_lsb: float = param(0.1, "Input-referred rms noise of the ADC and sense chain.",
                             unit="LSB", lo=0.0, hi=64.0)
    columns_per_adc: int = param(8, "Columns multiplexed onto one ADC.", lo=1, hi=4096)
    gain_tempco_per_k: float = param(5.0e-5, "Relative ADC gain drift per kelvin away from "
                                     "tempco_ref_k (reference drift).", unit="1/K",
                                     lo=-0.01, hi=0.01)
    tempco_ref_k: float = param(300.0, "Temperature at which the ADC gain is trimmed.",
                                unit="K", lo=200.0, hi=450.0)


@dataclass
class SenseConfig(ConfigBase):
    """Bit-line clamp and charge integrator in front of the ADC."""

    clamp_gain: float = param(1000.0, "Open-loop gain A of the bit-line clamp amplifier; the "
                              "bit line settles at v_bl_read_v A / (1 + A).", lo=1.0, hi=1.0e9)
    integrator_cap_f: float = param(2.0e-12, "Integration capacitor C_int; the integrator "
                                    "clips at C_int V_swing / t_read and adds kT/C noise.",
                                    unit="F", lo=0.0, hi=1.0e-9, lo_open=True)
    integrator_swing_v: float = param(1.0, "Output swing of the integrator.", unit="V",
                                      lo=0.0, hi=10.0, lo_open=True)


@dataclass
class ReadNoiseConfig(ConfigBase):
    """Which noise the array draws on every read (the noise physics is ``device.noise``)."""

    shot_enabled: bool = param(True, "Cell read noise: the white (shot in weak inversion, "
                               "channel thermal in strong) and 1/f noise of device.noise, one "
                               "Gaussian per conversion whose variance is the sum over the "
                               "column's cells.")
    ktc_enabled: bool = param(True, "kT/C noise of the integrator capacitor per conversion.")
    rtn_enabled: bool = param(True, "Random telegraph noise of the device.noise trap population, "
                              "sampled exactly as two-state Markov processes at every multiply "
                              "and frozen through its bit-serial cycles.")
    gaussian_source: str = param(
        "counter_hash", "How Gaussian read-noise draws are made: 'counter_hash' (one 64-bit key "
        "from the Generator per call, expanded in the kernel by a counter-based hash and the "
        "inverse normal CDF; fast, same numbers in the NumPy twin) or 'generator' "
        "(Generator.standard_normal arrays passed in).",
        choices=("counter_hash", "generator"))
    cell_variance: str = param(
        "bounded_ratio", "How the summed cell read-noise variance of each conversion is "
        "computed (bit-serial fast path): 'bounded_ratio' (the column's variance per unit of "
        "current times its current: no second product; used only on tiles where the "
        "worst-case error of the noise sigma, over every set of active rows, times the "
        "largest normal the counter hash draws is below 0.1 ADC LSB, else 'exact'; about "
        "half the product cost, issue 17) or 'exact' (the per-cell variance matrix summed "
        "by a second bit-plane product: the reference tier). See docs/benchmarks.md (tiers).",
        choices=("bounded_ratio", "exact"))
    rtn_tier: str = param(
        "exact", "How the bit-serial fast path samples RTN: 'exact' (every trap a two-state "
        "Markov chain walked at every multiply: the reference tier, the default because the "
        "approximate tier has not passed issue 17's network-level equivalence) or "
        "'approximate' (opt-in; traps whose "
        "correlation time is under N/16 multiplies in a batch of N, i.e. that would switch "
        "more than ~16 times in it, replaced by a Gaussian of matched mean and "
        "variance, with the share common to the cycles of one multiply that matches the "
        "recombined output's variance; slower traps walked exactly; only with gaussian_source = "
        "'counter_hash' and at least 0.01 LSB^2 of kT/C + ADC noise per conversion, else "
        "'exact'; norsim.array.rtn_tier). See docs/benchmarks.md (tiers).",
        choices=("exact", "approximate"))


@dataclass
class ArrayConfig(ConfigBase):
    """Geometry of one array (tile) and its periphery."""

    rows: int = param(256, "Rows (word lines) per array.", lo=1, hi=65536)
    cols: int = param(256, "Columns (bit lines) per array.", lo=1, hi=65536)
    encoding: EncodingConfig = section(EncodingConfig, "Input and weight encodings.")
    dac: DacConfig = section(DacConfig, "Word-line DAC levels and timing.")
    adc: AdcConfig = section(AdcConfig, "Column ADC.")
    sense: SenseConfig = section(SenseConfig, "Bit-line clamp and integrator.")
    noise: ReadNoiseConfig = section(ReadNoiseConfig, "Noise per read.")
    wires: WireConfig = section(WireConfig, "Wire, strap, driver and clamp-output resistances "
                                "(circuit mode and IR-drop surrogate).")
