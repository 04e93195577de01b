"""On-chip calibration and compensation: reference columns, per-column gain/offset trim,
retention drift correction, adaptive read voltage, temperature tracking, refresh and
activation re-calibration. See ``norsim.compensation.core`` and docs/compensation.md."""

import norsim.config  # noqa: F401  (the config root first: it imports our section)
from norsim.compensation.config import CompensationConfig

__all__ = ["CompensationConfig", "CompensationCost", "attach_references", "compensate",
           "effective_config", "refresh_cost"]


def __getattr__(name):  # lazy: core imports the mapper, which imports the config root
    if name in ("CompensationCost", "attach_references", "compensate", "effective_config",
                "refresh_cost", "CompensationState"):
        from norsim.compensation import core

        return getattr(core, name)
    raise AttributeError(name)
