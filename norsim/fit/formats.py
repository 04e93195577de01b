"""Measurement file formats of ``norsim fit``: named columns with SI units in the name.

A file is a table: CSV with a header line (``v_cg_V,v_d_V,temp_K,i_d_A``; lines starting with
``#`` are comments), an ``.npz`` archive of equal-length 1-D arrays named like the columns, or
an ``.npy`` structured array whose field names are the columns (no pickle, ever: read through
:mod:`norsim.safeio`). A column name is ``<quantity>_<unit>`` with the unit that norsim uses
(SI: V, A, K, s); a column in other units (``i_d_nA``) is refused with the unit it must be
converted to, never silently rescaled. The kind of measurement follows from the columns:

========== ================================================ ===========================
kind       required columns                                 optional
========== ================================================ ===========================
iv         v_cg_V, v_d_V, temp_K, i_d_A                     cell, v_s_V, v_wl_V
reads      cell, time_s, i_d_A                              temp_K
placement  cell, target_A, i_d_A                            failed
retention  cell, temp_K, time_s, vth_V                      (t = 0 row per cell)
========== ================================================ ===========================

Every error is one line naming the file, the column and the row (data rows count from 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from norsim.errors import FileFormatError

#: quantity -> its SI unit ("" for dimensionless ids and flags)
QUANTITIES = {"v_cg": "V", "v_d": "V", "v_s": "V", "v_wl": "V", "temp": "K", "i_d": "A",
              "time": "s", "vth": "V", "target": "A", "cell": "", "failed": ""}
#: kind -> (required quantities, optional quantities)
KINDS = {
    "iv": (("v_cg", "v_d", "temp", "i_d"), ("cell", "v_s", "v_wl")),
    "reads": (("cell", "time", "i_d"), ("temp",)),
    "placement": (("cell", "target", "i_d"), ("failed",)),
    "retention": (("cell", "temp", "time", "vth"), ()),
}
#: what distinguishes the kinds (checked in this order)
_MARKERS = (("v_cg", "iv"), ("target", "placement"), ("vth", "retention"), ("time", "reads"))
_POSITIVE = {"temp", "time"}      # > 0 (time >= 0)
_UNIT_HINT = {"mV": 1e-3, "uV": 1e-6, "mA": 1e-3, "uA": 1e-6, "nA": 1e-9, "pA": 1e-12,
              "C": None, "ms": 1e-3, "us": 1e-6, "h": 3600.0, "min": 60.0}


def column_name(q: str) -> str:
    """The column name of quantity ``q`` (``i_d`` -> ``i_d_A``)."""
    return f"{q}_{QUANTITIES[q]}" if QUANTITIES[q] else q


@dataclass
class Measurement:
    """One measurement file: its kind and its columns by quantity (float64, same length)."""

    path: Path
    kind: str
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def get(self, q: str, default=None):
        return self.columns.get(q, default)

    def error(self, q: str, row: int | None, what: str) -> FileFormatError:
        where = f" row {row + 1}" if row is not None else ""
        return FileFormatError(f"{self.path}: column {column_name(q)!r}{where}: {what}")


def _parse_name(path: Path, name: str) -> str:
    """Quantity of a column name, or a one-line error naming the file and the column."""
    if name in QUANTITIES and QUANTITIES[name] == "":
        return name
    for q, unit in QUANTITIES.items():
        if unit and name.startswith(q + "_"):
            got = name[len(q) + 1:]
            if got == unit:
                return q
            hint = _UNIT_HINT.get(got)
            conv = f" (multiply by {hint:g})" if hint else ""
            raise FileFormatError(f"{path}: column {name!r}: unit {got!r}, expected {unit!r} "
                                  f"(SI units: convert{conv} and name it {q}_{unit})")
    known = ", ".join(column_name(q) for q in QUANTITIES)
    raise FileFormatError(f"{path}: column {name!r}: not a known column (known: {known})")


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    from norsim.safeio import read_text

    text = read_text(path, "measurement")
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines())
             if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise FileFormatError(f"{path}: empty (expected a header line of named columns)")
    header = [h.strip() for h in lines[0][1].split(",")]
    cols: dict[str, list] = {h: [] for h in header}
    if len(cols) != len(header):
        raise FileFormatError(f"{path}: header names a column twice ({lines[0][1].strip()})")
    for row, (lineno, ln) in enumerate(lines[1:]):
        cells = [c.strip() for c in ln.split(",")]
        if len(cells) != len(header):
            raise FileFormatError(f"{path}: row {row + 1} (line {lineno}): {len(cells)} values, "
                                  f"expected {len(header)} (one per column of the header)")
        for h, c in zip(header, cells):
            try:
                cols[h].append(float(c))
            except ValueError:
                raise FileFormatError(f"{path}: column {h!r} row {row + 1} (line {lineno}): "
                                      f"{c!r} is not a number") from None
    return {h: np.asarray(v, dtype=np.float64) for h, v in cols.items()}


def _read_binary(path: Path) -> dict[str, np.ndarray]:
    from norsim.safeio import load_npy, load_npz, sniff

    kind = sniff(path)
    if kind == "npz":
        arrays = load_npz(path, "measurement")
    elif kind == "npy":
        arr = load_npy(path, "measurement")
        if arr.dtype.names is None:
            raise FileFormatError(f"{path}: a plain {arr.dtype} array of shape {arr.shape}; "
                                  "expected a structured array with named columns (or an .npz)")
        arrays = {name: np.asarray(arr[name]) for name in arr.dtype.names}
    else:
        raise FileFormatError(f"{path}: not an .npy/.npz file (a pickle or other format; "
                              "norsim never unpickles)")
    out, length = {}, None
    for name, a in arrays.items():
        if a.ndim != 1:
            raise FileFormatError(f"{path}: column {name!r}: shape {a.shape}, expected 1-D")
        if a.dtype.kind not in "fiub":
            raise FileFormatError(f"{path}: column {name!r}: dtype {a.dtype}, expected numbers")
        if length is not None and len(a) != length:
            raise FileFormatError(f"{path}: column {name!r}: {len(a)} rows, expected {length} "
                                  "(every column as long as the first)")
        length = len(a)
        out[name] = a.astype(np.float64)
    return out


def read_measurement(path: str | Path) -> Measurement:
    """Read and check one measurement file (kind inferred from its columns)."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: not a readable file")
    raw = _read_binary(path) if path.suffix.lower() in (".npy", ".npz") else _read_csv(path)
    cols = {_parse_name(path, name): a for name, a in raw.items()}
    kind = next((k for q, k in _MARKERS if q in cols), None)
    if kind is None:
        raise FileFormatError(f"{path}: columns {', '.join(raw)} match no measurement kind "
                              "(iv needs v_cg_V, placement target_A, retention vth_V, reads time_s)")
    req, opt = KINDS[kind]
    for q in req:
        if q not in cols:
            raise FileFormatError(f"{path}: column {column_name(q)!r} missing (a {kind} file "
                                  f"needs {', '.join(column_name(r) for r in req)})")
    for q in cols:
        if q not in req and q not in opt:
            raise FileFormatError(f"{path}: column {column_name(q)!r}: not part of a {kind} file "
                                  f"(columns: {', '.join(column_name(r) for r in req + opt)})")
    m = Measurement(path, kind, cols)
    if len(m) == 0:
        raise FileFormatError(f"{path}: no data rows")
    for q, a in cols.items():
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            raise m.error(q, int(bad[0]), f"{a[bad[0]]} (expected a finite number)")
        if q in ("cell", "failed"):
            bad = np.flatnonzero((a != np.round(a)) | (a < 0))
            if bad.size:
                raise m.error(q, int(bad[0]), f"{a[bad[0]]:g} (expected a whole number >= 0)")
        if q in _POSITIVE:
            bad = np.flatnonzero(a <= 0 if q == "temp" else a < 0)
            if bad.size:
                raise m.error(q, int(bad[0]), f"{a[bad[0]]:g} (expected "
                              f"{'> 0 K' if q == 'temp' else '>= 0 s'})")
    if kind in ("iv", "reads", "placement"):
        bad = np.flatnonzero(cols["i_d"] <= 0)
        if bad.size:
            raise m.error("i_d", int(bad[0]), f"{cols['i_d'][bad[0]]:g} A (expected a drain "
                          "current > 0 A; a sign convention or offset error?)")
    if kind == "placement":
        bad = np.flatnonzero(cols["target"] <= 0)
        if bad.size:
            raise m.error("target", int(bad[0]), f"{cols['target'][bad[0]]:g} A (expected > 0 A)")
    return m


def write_csv(path: str | Path, columns: dict[str, np.ndarray], comment: str = "") -> Path:
    """Write ``columns`` (keyed by quantity) as a CSV measurement file."""
    path = Path(path)
    names = list(columns)
    data = np.column_stack([np.asarray(columns[q], dtype=np.float64) for q in names])
    head = (f"# {comment}\n" if comment else "") + ",".join(column_name(q) for q in names)
    np.savetxt(path, data, delimiter=",", header=head, comments="", fmt="%.10g")
    return path


def group_rows(ids: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(id, row indices) of each distinct integer id, in order of first appearance."""
    ids = np.asarray(ids).astype(np.int64)
    uniq, first = np.unique(ids, return_index=True)
    return [(int(u), np.flatnonzero(ids == u)) for u in uniq[np.argsort(first)]]

