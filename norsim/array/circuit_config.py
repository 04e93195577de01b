"""Configuration of the array's DC wire network (circuit mode and its surrogate).

The default layout follows DESIGN.md "The array, physically": bit lines along columns, held
by a clamp at the row-0 edge of the array; source lines along rows, one shared by each pair
of rows, tied to the grounded source-line straps every ``strap_pitch_cols`` columns (and at
the last column). Each strap is a vertical metal line shared by every source line it taps
(``strap_model = "network"``: ``r_strap_pitch_ohm`` per source-line pitch, grounded through
``r_strap_pad_ohm`` at one or both array edges). The alternative ``sl_layout = "cols"`` runs one source line along each
column, driven from the row-0 edge like the bit line.

The clamp with finite gain is a regulated cascode: an amplifier of DC gain A
(``array.sense.clamp_gain``) drives a clamp transistor of transconductance ``clamp_gm_s``, so
the clamped node follows ``V_ref A/(1+A) - I_col / (gm (1 + A))``: a Thevenin source with
output resistance ``1 / (clamp_gm_s (1 + A))``. See docs/physics.md "Circuit mode".
"""

from __future__ import annotations

from dataclasses import dataclass

from norsim.config.base import ConfigBase, param


@dataclass
class WireConfig(ConfigBase):
    """Wire, strap, driver and clamp resistances of one array, and the circuit solver."""

    r_bl_segment_ohm: float = param(1.0, "Bit-line wire resistance per cell segment (one cell "
                                    "pitch along a column; also the segment from the array "
                                    "edge to row 0).", unit="Ohm", lo=0.0, hi=1e6, lo_open=True)
    r_sl_segment_ohm: float = param(1.0, "Source-line wire resistance per cell segment (one "
                                    "cell pitch along the source line; also the segment from a "
                                    "strap or driver to its first cell).", unit="Ohm", lo=0.0,
                                    hi=1e6, lo_open=True)
    sl_layout: str = param("rows", "Source-line direction: 'rows' (along word lines, strapped "
                           "every strap_pitch_cols columns; the default) or 'cols' (one source "
                           "line per column, driven from the row-0 edge).",
                           choices=("rows", "cols"))
    sl_pair_shared: bool = param(True, "Rows 2k and 2k+1 share one source line (layout 'rows' "
                                 "only).")
    strap_pitch_cols: int = param(32, "Columns between source-line straps (layout 'rows'); a "
                                  "strap taps columns 0, N, 2N, ... and the last column.",
                                  lo=1, hi=65536)
    r_strap_ohm: float = param(5.0, "Resistance from a strap tap of a source line to the "
                                "strap (contact and via stack); with strap_model 'ideal' the "
                                "strap is ideal ground and this includes its share of metal.",
                                unit="Ohm", lo=0.0, hi=1e9)
    strap_model: str = param("network", "Source-line straps (layout 'rows'): 'network' (each "
                             "strap is a vertical metal line with r_strap_pitch_ohm per "
                             "source-line pitch, shared by every source line it taps, grounded "
                             "through r_strap_pad_ohm at strap_pads; the default) or 'ideal' "
                             "(every tap to its own ideal ground through r_strap_ohm: the "
                             "pre-issue-19 model, optimistic).", choices=("network", "ideal"))
    r_strap_pitch_ohm: float = param(0.5, "Strap metal resistance per source-line pitch (two "
                                     "rows when sl_pair_shared, one row otherwise) along a "
                                     "vertical strap (strap_model 'network').", unit="Ohm",
                                     lo=0.0, hi=1e6, lo_open=True)
    r_strap_pad_ohm: float = param(2.0, "Resistance from each grounded end of a strap (its pad: "
                                   "via stack and share of the ground bus at the array edge) "
                                   "to the source-line supply (strap_model 'network').",
                                   unit="Ohm", lo=0.0, hi=1e9, lo_open=True)
    strap_pads: str = param("both", "Ends of each strap tied to the source-line supply "
                            "(strap_model 'network'): 'both' (row-0 and last-row edges) or "
                            "'one' (row-0 edge only).", choices=("both", "one"))
    r_sl_driver_ohm: float = param(50.0, "Output resistance of the source-line driver at the "
                                   "row-0 edge (layout 'cols' only).", unit="Ohm", lo=0.0, hi=1e9)
    r_bl_terminal_ohm: float = param(200.0, "Series resistance between a bit line and its clamp "
                                     "(column-select switch).", unit="Ohm", lo=0.0, hi=1e9)
    clamp_gm_s: float = param(1.0e-4, "Transconductance of the bit-line clamp transistor; with "
                              "the clamp amplifier's gain A (array.sense.clamp_gain) the clamped "
                              "node follows V_ref A/(1+A) - I_col / (gm (1 + A)).",
                              unit="S", lo=0.0, hi=1e6, lo_open=True)
    solver_tol_v: float = param(1.0e-11, "Circuit solver stops when no node voltage moves more "
                                "than this between iterations.", unit="V", lo=0.0, hi=1e-3,
                                lo_open=True)
    solver_max_iter: int = param(200, "Iteration limit of the circuit solver (ConvergenceError "
                                 "beyond it).", lo=1, hi=100000)
    anderson_depth: int = param(0, "History length of Anderson acceleration of the fixed-point "
                                "iteration (0 = plain fixed-point iteration).", lo=0, hi=20)

    def r_clamp_out_ohm(self, clamp_gain: float) -> float:
        """Thevenin output resistance of the finite-gain clamp, 1 / (gm (1 + A))."""
        return 1.0 / (self.clamp_gm_s * (1.0 + clamp_gain))

    def scaled(self, factor: float) -> "WireConfig":
        """Every resistance (wires, strap, driver, terminal, clamp output) times ``factor``."""
        return self.replace(r_bl_segment_ohm=self.r_bl_segment_ohm * factor,
                            r_sl_segment_ohm=self.r_sl_segment_ohm * factor,
                            r_strap_ohm=self.r_strap_ohm * factor,
                            r_strap_pitch_ohm=self.r_strap_pitch_ohm * factor,
                            r_strap_pad_ohm=self.r_strap_pad_ohm * factor,
                            r_sl_driver_ohm=self.r_sl_driver_ohm * factor,
                            r_bl_terminal_ohm=self.r_bl_terminal_ohm * factor,
                            clamp_gm_s=self.clamp_gm_s / factor)
