"""Import of a measured V_th or read-current map (CSV or .npy).

A map is a 2-D grid (rows x columns of an array). Currents are inverted to V_th at the bias
and temperature they were measured at (``vth_for_current``), so a map measured at 358 K at
V_D = 0.1 V gives the reference-temperature, control-gate-referred V_th that norsim uses
everywhere. Validation: readable file, numeric, 2-D, the expected shape if given, finite
values, currents > 0 and V_th within the cell's plausible window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from norsim.device.config import CellConfig
from norsim.device.iv import cell_model, vth_for_current
from norsim.errors import FileFormatError, InputError

#: V_th values outside [vth_erased - margin, vth_max + margin] are rejected as implausible
VTH_MARGIN_V = 3.0


@dataclass(frozen=True)
class MeasurementConditions:
    """Bias and temperature a map was measured at (needed to invert currents)."""

    v_wl: float
    v_cg: float
    v_d: float
    v_s: float
    temperature_k: float

    def check(self) -> None:
        for name in ("v_wl", "v_cg", "v_d", "v_s", "temperature_k"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not np.isfinite(v):
                raise InputError(f"conditions.{name}", v, "a finite number")
        if self.temperature_k <= 0:
            raise InputError("conditions.temperature_k", self.temperature_k, "a temperature > 0 K")
        if self.v_d <= self.v_s:
            raise InputError("conditions.v_d", self.v_d, f"a drain voltage above v_s = {self.v_s}")


def read_map_file(path: str | Path) -> np.ndarray:
    """Read a numeric 2-D grid from a .npy or CSV file (comma or whitespace separated;
    lines starting with '#' are comments)."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"measured map {path}: not a readable file")
    try:
        if path.suffix.lower() == ".npy":
            from norsim.safeio import load_npy   # header checked against the file, no pickle
            data = load_npy(path, "measured map")
        else:
            text = path.read_text()
            delim = "," if "," in text else None
            data = np.loadtxt(path, delimiter=delim, comments="#", ndmin=2, dtype=np.float64)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"measured map {path}: unreadable ({exc})") from None
    data = np.asarray(data)
    if data.dtype.kind not in "fiu":
        raise FileFormatError(f"measured map {path}: dtype {data.dtype}, expected numbers")
    return data.astype(np.float64)


def _validate_grid(name: str, data: np.ndarray, shape) -> None:
    if data.ndim != 2 or data.size == 0:
        raise InputError(name, f"shape {data.shape}", "a non-empty 2-D grid (rows x columns)")
    if shape is not None and tuple(data.shape) != tuple(shape):
        raise InputError(name, f"shape {data.shape}", f"shape {tuple(shape)}")
    if not np.all(np.isfinite(data)):
        idx = np.argwhere(~np.isfinite(data))[0]
        raise InputError(f"{name}[{idx[0]}, {idx[1]}]", data[tuple(idx)], "finite values")


def vth_from_map(data, kind: str, cell: CellConfig, conditions: MeasurementConditions | None = None,
                 *, shape=None, name: str = "measured map") -> np.ndarray:
    """Validate a measured grid and return V_th (reference temperature) per cell.

    ``kind``: 'vth' (control-gate-referred V_th measured at ``conditions.temperature_k``,
    shifted to the reference temperature with dV_th/dT) or 'current' (read current in A,
    inverted at ``conditions``).
    """
    data = np.asarray(data, dtype=np.float64)
    _validate_grid(name, data, shape)
    if kind not in ("vth", "current"):
        raise InputError("kind", kind, "'vth' or 'current'")
    if conditions is None:
        if kind == "current":
            raise InputError("conditions", None, "the bias and temperature of a current map")
        vth = data
    else:
        conditions.check()
        if kind == "vth":
            vth = data - cell.dvth_dt_v_per_k * (conditions.temperature_k - cell.t_ref_k)
        else:
            if np.any(data <= 0):
                idx = np.argwhere(data <= 0)[0]
                raise InputError(f"{name}[{idx[0]}, {idx[1]}]", data[tuple(idx)], "a current > 0 A")
            model = cell_model(cell, conditions.temperature_k)
            vth = vth_for_current(model, data, conditions.v_wl, conditions.v_cg, conditions.v_d,
                                  conditions.v_s)
    lo, hi = cell.vth_erased_v - VTH_MARGIN_V, cell.vth_max_v + VTH_MARGIN_V
    bad = (vth < lo) | (vth > hi)
    if bad.any():
        idx = np.argwhere(bad)[0]
        raise InputError(f"{name}[{idx[0]}, {idx[1]}]", float(vth[tuple(idx)]),
                         f"a V_th in [{lo:g}, {hi:g}] V (the cell's window +- {VTH_MARGIN_V:g} V)")
    return vth


def load_measured_map(path: str | Path, kind: str, cell: CellConfig,
                      conditions: MeasurementConditions | None = None, *, shape=None) -> np.ndarray:
    """Read ``path`` (CSV or .npy) and return the per-cell V_th (see :func:`vth_from_map`)."""
    return vth_from_map(read_map_file(path), kind, cell, conditions, shape=shape, name=str(path))
