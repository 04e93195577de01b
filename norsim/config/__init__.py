"""Top-level configuration and presets."""

from norsim.config.base import ConfigBase, param, section
from norsim.config.sim import SimConfig
from norsim.config.presets import load_preset, PRESET_NAMES

__all__ = ["ConfigBase", "param", "section", "SimConfig", "load_preset", "PRESET_NAMES"]
