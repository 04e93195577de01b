"""Small fixtures shared by tests/test_array_*.py (no files, no /work/shared)."""

from norsim.config import load_preset

IDEAL = [
    "array.adc.range_mode='physical'", "array.adc.offset_sigma_lsb=0.0", "array.adc.gain_sigma=0.0",
    "array.adc.inl_lsb=0.0", "array.adc.noise_lsb=0.0", "array.adc.gain_tempco_per_k=0.0",
    "array.noise.shot_enabled=false", "array.noise.ktc_enabled=false",
    "array.noise.rtn_enabled=false",
]


def ideal_cfg(rows, cols=256, adc_bits=20, extra=()):
    """nor40 with ideal periphery: no noise, no ADC errors, physical range, fine ADC."""
    return load_preset("nor40").with_overrides(
        IDEAL + [f"array.rows={rows}", f"array.cols={cols}", f"array.adc.bits={adc_bits}"] + list(extra))
