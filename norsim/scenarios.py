"""The main job's settings: one configuration read fresh, after a 10-year bake at 85 C, and
after the bake with on-chip compensation, plus the ideal analog path that must equal the
integer reference bit for bit. Used by ``norsim demo`` and :mod:`norsim.warmup`."""

from __future__ import annotations

from dataclasses import dataclass

#: 10 years in seconds (365.25-day years)
TEN_YEARS_S = 10 * 365.25 * 24 * 3600.0
#: the bake temperature of the retention row (85 C; the common automotive-grade rating)
BAKE_TEMPERATURE_K = 358.15


@dataclass(frozen=True)
class Scenario:
    """One row of the main job."""

    key: str            #: short name (JSON keys, job keys)
    label: str          #: row label in tables and figures
    cfg: object         #: the SimConfig of this row
    one_chip: bool      #: True: deterministic, one instance is enough (the ideal path)
    work: float         #: relative run time of one chip instance (progress ETAs)


def scenarios(cfg, preset_name: str = "nor40") -> list[Scenario]:
    """Ideal analog path, fresh, baked, baked + compensated, from ``cfg``."""
    from norsim.mapping.mapper import ideal_config

    fresh = cfg.with_overrides({"mapping.retention_time_s": 0.0})
    baked = cfg.with_overrides({"mapping.retention_time_s": TEN_YEARS_S,
                                "mapping.retention_temperature_k": BAKE_TEMPERATURE_K})
    compensated = baked.with_overrides({"compensation.enabled": True,
                                        "compensation.adaptive_read_voltage": True,
                                        "compensation.activation_recalibration": True})
    return [Scenario("ideal", "analog, ideal settings", ideal_config(cfg), True, 0.4),
            Scenario("fresh", f"analog {preset_name}, fresh", fresh, False, 1.0),
            Scenario("baked", f"analog {preset_name}, 10 y at 85 C", baked, False, 1.0),
            Scenario("compensated", f"analog {preset_name}, 10 y at 85 C, compensated",
                     compensated, False, 1.6)]
