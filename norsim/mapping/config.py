"""Configuration of how a QuantModel is placed on arrays and run."""

from __future__ import annotations

from dataclasses import dataclass

from norsim.config.base import ConfigBase, param


@dataclass
class MappingConfig(ConfigBase):
    """Mapper and engine options."""

    first_layer: str = param("analog", "Where the first conv/linear layer runs: 'analog' (on "
                             "arrays, at its own input and weight bit widths) or 'digital' "
                             "(exact integer arithmetic, reported as such).",
                             choices=("analog", "digital"))
    last_layer: str = param("analog", "Where the last conv/linear layer runs: 'analog' or "
                            "'digital'.", choices=("analog", "digital"))
    programming: str = param("ispp", "How tiles are programmed: 'ispp' (block erase, D2D "
                             "variation and ISPP program-and-verify of every cell through the "
                             "device layer) or 'ideal' (every cell exactly at its target V_th).",
                             choices=("ispp", "ideal"))
    spare_columns: int = param(4, "Spare columns per tile: a physical column holding a cell "
                               "that failed verify (stuck or out of range) is replaced by a "
                               "freshly programmed spare, up to this many per tile.", lo=0, hi=4096)
    program_temperature_k: float = param(300.0, "Temperature at which the chip is programmed "
                                         "and its ADC ranges are calibrated.", unit="K",
                                         lo=200.0, hi=450.0)
    retention_time_s: float = param(0.0, "Time since programming (retention bake) applied to "
                                    "every cell before the run.", unit="s", lo=0.0, hi=1e10)
    retention_temperature_k: float = param(358.0, "Temperature of the retention bake.",
                                           unit="K", lo=200.0, hi=600.0)
    ir_drop: str = param("none", "Wire-resistance (IR-drop) treatment: 'none' (fast mode, "
                         "nominal bias), 'surrogate' (per-cell effective current factors from "
                         "the linearised IR-drop surrogate on sampled calibration vectors), "
                         "'circuit' (the same factors from full circuit-mode solves) or "
                         "'network' (per-vector IR drop of every bit-plane in every tile by the "
                         "modal first-order surrogate, norsim.array.ir_modes, checked against "
                         "exact circuit solves of ir_check_vectors bit-planes per tile over the "
                         "run; bit-serial inputs).",
                         choices=("none", "surrogate", "circuit", "network"))
    ir_check_vectors: int = param(4, "With ir_drop = 'network': bit-plane vectors per tile "
                                  "over the run also solved exactly in circuit mode (in the "
                                  "first batch that reaches the tile: the plane of largest "
                                  "total current, then evenly spaced ones), to certify the "
                                  "surrogate's error (reported in ADC LSB with the fraction "
                                  "of vectors checked); 0 = no check.",
                                  lo=0, hi=100000)
    ir_drop_vectors: int = param(32, "Calibration input vectors (bit-planes) sampled per tile "
                                 "to derive the IR-drop factors.", lo=1, hi=100000)
    calibration_images: int = param(256, "Images of the calibration split used to set the ADC "
                                    "ranges (never evaluation images).", lo=1, hi=100000)
    batch_size: int = param(500, "Images per engine batch (bounds memory).", lo=1, hi=100000)
