"""The whole-simulation configuration: one object a run, a sweep point or a preset."""

from __future__ import annotations

from dataclasses import dataclass

from norsim.array.config import ArrayConfig
from norsim.compensation.config import CompensationConfig
from norsim.config.base import ConfigBase, param, section
from norsim.cost.config import CostConfig
from norsim.device.config import DeviceConfig
from norsim.mapping.config import MappingConfig


@dataclass
class SimConfig(ConfigBase):
    """Root configuration. Every random draw derives from ``seed``."""

    preset: str = param("nor40", "Name of the preset this configuration started from "
                        "(informational).")
    seed: int = param(0, "Root seed of every random draw (numpy SeedSequence).", lo=0, hi=2**63 - 1)
    device: DeviceConfig = section(DeviceConfig, "Floating-gate cell population.")
    array: ArrayConfig = section(ArrayConfig, "Array geometry and periphery.")
    mapping: MappingConfig = section(MappingConfig, "How a model is tiled onto arrays and run.")
    compensation: CompensationConfig = section(CompensationConfig, "On-chip calibration, "
                                               "drift and temperature compensation.")
    cost: CostConfig = section(CostConfig, "Energy, latency and area model (norsim.cost).")

    def rng(self, *stream: int):
        """A numpy Generator for a named sub-stream (e.g. rng(tile_index, purpose_id))."""
        import numpy as np

        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=tuple(stream)))
