"""The ``replay:DIR`` back-end: recorded measurements answered again, offline.

A replay directory (layout in :mod:`norsim.backend.recorder` and docs/chip-in-the-loop.md)
holds, per tile, the weights the host programmed, the achieved V_th map, and logs of the
reads the chip answered: MVM inputs with their shift-added outputs, test-pattern probes and
periphery states. :class:`ReplayBackend` checks the whole directory when it opens it (every
file of every tile: readable, the shapes the manifest states, no NaN/inf: one-line
:class:`~norsim.errors.FileFormatError` naming file and tile) and then answers:

* ``program``: the recorded report, after checking the host asks for the recorded weights;
* ``mvm``: the recorded answer of the same input batch (the next recorded call of the tile
  first, then any recorded call with the same batch, then row by row, each vector from its
  latest recorded read);
  an input vector that was never recorded is an :class:`~norsim.errors.InputError` naming
  the tile and the vector;
* ``calibrate`` / ``calibration`` / ``set_adc``: the recorded periphery states in the order
  they were answered (the trims are already in the recorded reads); ``probe``: the recorded
  reads in order (explicit inputs must equal the recorded ones);
* stream keys are ignored (the noise is in the recording).

A recorded ``sim`` run replays to the same predictions (tested). A measured chip recorded by
a driver that writes this layout can be studied the same way.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from norsim.backend.base import (Backend, BackendInfo, Calibration, MapReading, MvmResult,
                                 ProbeReading, ProgrammingReport, RetuneReport)
from norsim.backend.recorder import FORMAT, FORMAT_VERSION
from norsim.errors import FileFormatError, InputError
from norsim.safeio import load_npy


def _digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a, dtype=np.int64)
    return hashlib.sha1(repr(a.shape).encode() + a.tobytes()).hexdigest()


class _Tile:
    """One recorded tile, loaded and checked."""

    def __init__(self, root: Path, tid: str, entry: dict):
        self.tid = tid
        where = f"manifest.json (tile {tid!r})"
        try:
            self.dir = root / entry["dir"]
            self.rows, self.phys_cols = int(entry["rows"]), int(entry["phys_cols"])
            self.outputs = int(entry["outputs"])
            self.input_bits = int(entry.get("input_bits", 0))
            report = dict(entry["report"])
            charges = [float(c) for c in entry.get("probe_charges_c", [])]
            self.retunes = list(entry.get("retunes", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise FileFormatError(f"{root / 'manifest.json'}: tile {tid!r}: entry lacks or "
                                  f"garbles {exc}") from None
        if not self.dir.is_dir():
            raise FileFormatError(f"{self.dir}: missing folder of tile {tid!r} ({where})")
        self.weights = self._load("weights.npy", (self.rows, self.outputs), np.int64)
        vth = self._load("vth.npy", (self.rows, self.phys_cols), np.float64)
        failed = None
        if (self.dir / "failed.npy").exists():
            failed = self._load("failed.npy", (self.rows, self.phys_cols), bool)
        self.report = ProgrammingReport(vth=vth, failed=failed, **report)
        self.x = self._load("mvm_x.npy", (None, self.rows), np.int64)
        self.y = self._load("mvm_y.npy", (self.x.shape[0], self.outputs), np.float64)
        calls = self._load("mvm_calls.npy", (None, 2), np.int64)
        if calls.size and (calls.min() < 0 or calls[:, 1].max() > self.x.shape[0]
                           or np.any(calls[:, 1] < calls[:, 0])):
            raise FileFormatError(f"{self.dir / 'mvm_calls.npy'}: tile {tid!r}: call ranges "
                                  f"outside the {self.x.shape[0]} recorded vectors")
        self.calls = [(int(a), int(b)) for a, b in calls]
        self.by_batch: dict = {}
        for k, (a, b) in enumerate(self.calls):
            self.by_batch.setdefault(_digest(self.x[a:b]), []).append(k)
        self.by_row: dict = {}
        for i in range(self.x.shape[0]):   # the latest occurrence wins (a run's own reads
            self.by_row[self.x[i].tobytes()] = i  # come after its calibration passes)
        self.probes = []
        for j, charge in enumerate(charges):
            px = self._load(f"probe_{j}_x.npy", (None, self.rows), np.int64)
            codes = self._load(f"probe_{j}_codes.npy", (None, None), np.float64)
            exp = self._load(f"probe_{j}_expected.npy", codes.shape, np.float64)
            self.probes.append(ProbeReading(px, codes, exp, charge))
        self.calibrations = self._calibrations()
        self.cursor = {"mvm": 0, "cal": 0, "probe": 0, "retune": 0}

    def _load(self, name: str, shape, dtype) -> np.ndarray:
        path = self.dir / name
        if not path.exists():
            raise FileFormatError(f"{path}: missing (tile {self.tid!r})")
        a = load_npy(path, f"replay tile {self.tid!r}")
        if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
            want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
            raise FileFormatError(f"{path}: tile {self.tid!r}: shape {a.shape}, expected {want}")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
            raise FileFormatError(f"{path}: tile {self.tid!r}: {bad} NaN/inf value(s)")
        if np.dtype(dtype).kind in "iu" and a.dtype.kind not in "iu":
            raise FileFormatError(f"{path}: tile {self.tid!r}: dtype {a.dtype}, expected integers")
        return a.astype(dtype, copy=False)

    def _calibrations(self) -> list:
        path = self.dir / "calibration.json"
        if not path.exists():
            return []
        try:
            items = json.loads(path.read_text())
            out = []
            for it in items:
                kw = {}
                for k, v in it.items():
                    if isinstance(v, list):
                        v = np.asarray(v, dtype=np.int64 if k in ("channel_adc", "pos", "neg")
                                       else np.float64)
                        if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
                            raise ValueError(f"NaN/inf in {k}")
                    elif isinstance(v, float) and not math.isfinite(v):
                        raise ValueError(f"NaN/inf in {k}")
                    kw[k] = v
                out.append(Calibration(**kw))
            return out
        except (ValueError, TypeError) as exc:
            raise FileFormatError(f"{path}: tile {self.tid!r}: {exc}") from None

    # answers ------------------------------------------------------------------------
    def mvm(self, x: np.ndarray, where: str) -> np.ndarray:
        k = self.cursor["mvm"]
        if k < len(self.calls):
            a, b = self.calls[k]
            if b - a == x.shape[0] and np.array_equal(self.x[a:b], x):
                self.cursor["mvm"] = k + 1
                return self.y[a:b].copy()
        hit = self.by_batch.get(_digest(x))
        if hit:
            a, b = self.calls[hit[0]]
            return self.y[a:b].copy()
        out = np.empty((x.shape[0], self.outputs))
        for i, row in enumerate(x):
            j = self.by_row.get(row.tobytes())
            if j is None:
                codes = np.array2string(row[:8], separator=",")[1:-1]
                more = ", ..." if row.size > 8 else ""
                raise InputError(f"replay input (tile {self.tid!r}, vector {i})",
                                 f"[{codes}{more}]",
                                 f"an input vector recorded in {where} "
                                 f"({self.x.shape[0]} recorded for this tile)")
            out[i] = self.y[j]
        return out

    def next_calibration(self, where: str) -> Calibration:
        if not self.calibrations:
            raise InputError(f"replay calibration (tile {self.tid!r})", "none recorded",
                             f"periphery states recorded in {where}")
        k = min(self.cursor["cal"], len(self.calibrations) - 1)
        self.cursor["cal"] += 1
        return self.calibrations[k]


class ReplayBackend(Backend):
    """Recorded answers of a chip (``--backend replay:DIR``)."""

    kind = "replay"

    def __init__(self, directory, cfg=None):
        self.root = Path(directory)
        self.cfg = cfg
        path = self.root / "manifest.json"
        if not self.root.is_dir():
            raise InputError("replay directory", str(self.root), "an existing directory "
                             "written by norsim run --record (or a driver, same layout)")
        try:
            manifest = json.loads(path.read_text())
        except OSError as exc:
            raise FileFormatError(f"{path}: not readable ({exc.strerror or exc})") from None
        except json.JSONDecodeError as exc:
            raise FileFormatError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise FileFormatError(f"{path}: format {manifest.get('format') if isinstance(manifest, dict) else None!r}, "
                                  f"expected {FORMAT!r}")
        if manifest.get("version") != FORMAT_VERSION:
            raise FileFormatError(f"{path}: version {manifest.get('version')!r}, expected "
                                  f"{FORMAT_VERSION} (this norsim reads replay format "
                                  f"{FORMAT_VERSION})")
        self.chip = dict(manifest.get("chip") or {})
        entries = manifest.get("tiles")
        if not isinstance(entries, dict) or not entries:
            raise FileFormatError(f"{path}: no tiles")
        self.tiles = {tid: _Tile(self.root, tid, e) for tid, e in entries.items()}

    def _tile(self, tid: str) -> _Tile:
        t = self.tiles.get(tid)
        if t is None:
            raise FileFormatError(f"{self.root / 'manifest.json'}: tile {tid!r} missing "
                                  f"({len(self.tiles)} tiles recorded; was the recording made "
                                  "with this model and configuration?)")
        return t

    def info(self) -> BackendInfo:
        c = self.chip
        return BackendInfo(kind="replay", chip_id=str(c.get("chip_id", "")),
                           firmware=f"replay of {c.get('kind', '?')}: {c.get('firmware', '')}",
                           temperature_k=float(c.get("temperature_k", float("nan"))),
                           time_since_programming_s=float(c.get("time_since_programming_s", 0.0)),
                           protocol=f"replay-v{FORMAT_VERSION}")

    def tile_ids(self) -> list[str]:
        return list(self.tiles)

    def program(self, tile_id, weights, config, stream) -> ProgrammingReport:
        t = self._tile(tile_id)
        w = np.asarray(weights, dtype=np.int64)
        if w.shape != t.weights.shape or not np.array_equal(w, t.weights):
            raise InputError(f"replay program (tile {tile_id!r})", f"weights {w.shape}",
                             f"the weights recorded in {t.dir / 'weights.npy'} "
                             f"{t.weights.shape} (same model and mapping)")
        return t.report

    def read_map(self, tile_id, quantity="vth") -> MapReading:
        t = self._tile(tile_id)
        if quantity != "vth":
            raise InputError("quantity", quantity, "'vth' (a replay holds the V_th maps)")
        return MapReading(tile_id, "vth", t.report.vth.copy(),
                          temperature_k=float(self.chip.get("temperature_k", float("nan"))))

    def calibrate(self, tile_id, x, stream) -> Calibration:
        t = self._tile(tile_id)
        return t.next_calibration(str(self.root))

    def calibration(self, tile_id) -> Calibration:
        return self._tile(tile_id).next_calibration(str(self.root))

    def set_adc(self, tile_id, gain, offset, full_scale_a=None, per_channel=False):
        return self._tile(tile_id).next_calibration(str(self.root))

    def set_read_voltage(self, tile_id, v_cg) -> None:
        self._tile(tile_id)

    def mvm(self, tile_id, x, stream, purpose="run") -> MvmResult:
        t = self._tile(tile_id)
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != t.rows:
            raise InputError(f"replay input (tile {tile_id!r})", x.shape,
                             f"(B, {t.rows}) input codes")
        return MvmResult(t.mvm(x.astype(np.int64, copy=False), str(self.root)))

    def probe(self, tile_id, stream, x=None, patterns=None) -> ProbeReading:
        t = self._tile(tile_id)
        j = t.cursor["probe"]
        if j >= len(t.probes):
            raise InputError(f"replay probe (tile {tile_id!r})", f"read {j + 1}",
                             f"at most the {len(t.probes)} probe reads recorded in {self.root}")
        rd = t.probes[j]
        if x is not None and not np.array_equal(np.asarray(x), rd.x):
            raise InputError(f"replay probe (tile {tile_id!r}, read {j})", "other test inputs",
                             f"the inputs recorded in {t.dir / f'probe_{j}_x.npy'}")
        t.cursor["probe"] = j + 1
        return rd

    def retune_cells(self, tile_id, rows, cols) -> RetuneReport:
        t = self._tile(tile_id)
        j = t.cursor["retune"]
        t.cursor["retune"] = j + 1
        if j < len(t.retunes):
            return RetuneReport(**t.retunes[j])
        return RetuneReport(int(np.asarray(rows).size))
