"""Event counts of an array: what the cost model consumes (aggregated, never per cell)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ArrayEvents:
    """Counts accumulated over every ``matmul`` of one array (tile).

    Fields (all totals since creation or ``reset``):
      multiplies            input vectors processed
      read_cycles           array read cycles (vectors x cycles per vector)
      t_read_s              duration of one read cycle (s), to turn cycles into time
      wl_pulses             word-line on-pulses (row x cycle with the row driven)
      wl_toggles            word-line level changes (each pulse's rise and fall; a line held on
                            over consecutive bit-serial cycles does not toggle between them)
      active_rows_hist      histogram: entry n = number of cycles with n rows driven
      bitline_charge_c      per physical column: integral of its current over the read time (C)
      column_mux_switches   ADC input-mux switches (conversions beyond one per ADC per cycle)
      adc_conversions       {bits: count}
      shift_add_ops         {accumulator width in bits: count} (shift-add, subtraction, slices)
      buffer_bits           input-code bits read from and output bits written to buffers
    """

    rows: int
    phys_cols: int
    multiplies: int = 0
    read_cycles: int = 0
    t_read_s: float = 0.0
    wl_pulses: int = 0
    wl_toggles: int = 0
    active_rows_hist: np.ndarray = field(default=None)  # type: ignore[assignment]
    bitline_charge_c: np.ndarray = field(default=None)  # type: ignore[assignment]
    column_mux_switches: int = 0
    adc_conversions: dict = field(default_factory=dict)
    shift_add_ops: dict = field(default_factory=dict)
    buffer_bits: int = 0

    def __post_init__(self):
        if self.active_rows_hist is None:
            self.active_rows_hist = np.zeros(self.rows + 1, dtype=np.int64)
        if self.bitline_charge_c is None:
            self.bitline_charge_c = np.zeros(self.phys_cols)

    @property
    def mean_active_rows(self) -> float:
        n = self.active_rows_hist.sum()
        return float((self.active_rows_hist * np.arange(self.rows + 1)).sum() / n) if n else 0.0

    def add_count(self, table: dict, width: int, count: int) -> None:
        table[int(width)] = table.get(int(width), 0) + int(count)

    def reset(self) -> None:
        fresh = ArrayEvents(self.rows, self.phys_cols)
        fresh.t_read_s = self.t_read_s
        self.__dict__.update(fresh.__dict__)

    def as_dict(self) -> dict:
        return {"multiplies": self.multiplies, "read_cycles": self.read_cycles,
                "t_read_s": self.t_read_s, "wl_pulses": self.wl_pulses,
                "wl_toggles": self.wl_toggles, "mean_active_rows": self.mean_active_rows,
                "bitline_charge_c": float(self.bitline_charge_c.sum()),
                "column_mux_switches": self.column_mux_switches,
                "adc_conversions": dict(self.adc_conversions),
                "shift_add_ops": dict(self.shift_add_ops), "buffer_bits": self.buffer_bits}

