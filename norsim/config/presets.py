"""Named presets: TOML files in ``norsim/presets`` layered over the dataclass defaults."""

from __future__ import annotations

from importlib import resources

from norsim.config.sim import SimConfig
from norsim.errors import ConfigError

PRESET_NAMES = ("nor40",)


def preset_text(name: str) -> str:
    if name not in PRESET_NAMES:
        raise ConfigError("preset", name, "one of " + ", ".join(PRESET_NAMES))
    return resources.files("norsim.presets").joinpath(f"{name}.toml").read_text()


def load_preset(name: str = "nor40") -> SimConfig:
    """The validated configuration of a named preset."""
    return SimConfig.from_toml(preset_text(name)).validate()
