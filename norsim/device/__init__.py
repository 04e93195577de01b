"""Floating-gate NOR cell and populations of them.

Modules: ``iv`` (EKV cell I-V, split- and stacked-gate), ``levels`` (weight-level target
currents), ``programming`` (erase, soft-program, ISPP program-and-verify), ``retention``,
``noise`` (white, 1/f, RTN), ``variation`` (D2D variation, stuck cells), ``measured``
(import of measured V_th / current maps).
"""

# Load the configuration package first: norsim.config imports norsim.device.config, and a
# program that imports norsim.device.<module> first would otherwise see a circular import.
import norsim.config  # noqa: F401
