"""Configuration of one NOR array and its periphery."""

from __future__ import annotations

from dataclasses import dataclass

from norsim.config.base import ConfigBase, param


@dataclass
class ArrayConfig(ConfigBase):
    """Geometry of one array (tile)."""

    rows: int = param(256, "Rows (word lines) per array.", lo=1, hi=65536)
    cols: int = param(256, "Columns (bit lines) per array.", lo=1, hi=65536)
