"""Record a run on any back-end into a replay directory (``norsim run --record DIR``).

:class:`RecordingBackend` wraps a back-end, forwards every call and keeps what the host asked
and what the chip answered; :meth:`RecordingBackend.save` writes the directory that
:class:`norsim.backend.replay.ReplayBackend` reads. The layout (format ``norsim-replay``,
version :data:`FORMAT_VERSION`) is documented in docs/chip-in-the-loop.md::

    DIR/manifest.json           format, version, chip identity, tiles (shapes, reports, counts)
    DIR/config.toml             the chip configuration of the recorded run (informational)
    DIR/tiles/<k>_<name>/       one folder per tile (the manifest maps tile id -> folder)
        weights.npy             (rows, outputs) int64   weight codes the host programmed
        vth.npy                 (rows, phys_cols) f8    achieved V_th map (read back)
        failed.npy              (rows, phys_cols) bool  defect map (when reported)
        mvm_x.npy               (N, rows) int64         every recorded input vector, in order
        mvm_y.npy               (N, outputs) f8         the chip's answer to each
        mvm_calls.npy           (K, 2) int64            [start, stop) rows of each mvm call
        probe_<j>_{x,codes,expected}.npy               test-pattern reads, in call order
        calibration.json        periphery states (ADC tables, range) in the order answered
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np

from norsim.backend.base import Backend, Calibration, MapReading, ProbeReading

FORMAT = "norsim-replay"
FORMAT_VERSION = 1


def tile_folder(index: int, tid: str) -> str:
    """The folder name of tile ``tid`` (the ``index``-th recorded)."""
    return f"{index:03d}_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", tid)


def calibration_to_json(cal: Calibration) -> dict:
    out = {}
    for f in dataclasses.fields(Calibration):
        v = getattr(cal, f.name)
        out[f.name] = v.tolist() if isinstance(v, np.ndarray) else v
    return out


class RecordingBackend(Backend):
    """Forwards to ``inner`` and records every answer for a replay directory."""

    kind = "recording"

    def __init__(self, inner: Backend, directory, config=None):
        self.inner = inner
        self.directory = Path(directory)
        self.config = config
        self.order: list[str] = []
        self.log: dict = {}

    def _t(self, tid: str) -> dict:
        t = self.log.get(tid)
        if t is None:
            self.order.append(tid)
            t = self.log[tid] = {"mvm": [], "calibrations": [], "probes": [], "retunes": []}
        return t

    # forwarded, with the answer kept ------------------------------------------------
    def info(self):
        return self.inner.info()

    def tile_ids(self):
        return self.inner.tile_ids()

    def local_tile(self, tid):
        local = getattr(self.inner, "local_tile", None)
        return None if local is None else local(tid)

    def program(self, tile_id, weights, config, stream):
        rep = self.inner.program(tile_id, weights, config, stream)
        t = self._t(tile_id)
        t["weights"] = np.array(weights, dtype=np.int64)
        t["report"] = rep
        t["input_bits"] = int(config.array.encoding.input_bits)
        if self.config is None:
            self.config = config
        return rep

    def read_map(self, tile_id, quantity="vth") -> MapReading:
        return self.inner.read_map(tile_id, quantity)

    def calibrate(self, tile_id, x, stream):
        cal = self.inner.calibrate(tile_id, x, stream)
        self._t(tile_id)["calibrations"].append(cal)
        return cal

    def calibration(self, tile_id):
        cal = self.inner.calibration(tile_id)
        self._t(tile_id)["calibrations"].append(cal)
        return cal

    def set_adc(self, tile_id, gain, offset, full_scale_a=None, per_channel=False):
        cal = self.inner.set_adc(tile_id, gain, offset, full_scale_a, per_channel)
        self._t(tile_id)["calibrations"].append(cal)
        return cal

    def set_read_voltage(self, tile_id, v_cg):
        self.inner.set_read_voltage(tile_id, v_cg)

    def mvm(self, tile_id, x, stream, purpose="run"):
        res = self.inner.mvm(tile_id, x, stream, purpose)
        self._t(tile_id)["mvm"].append((np.array(x, dtype=np.int64),
                                        np.array(res.values, dtype=np.float64)))
        return res

    def probe(self, tile_id, stream, x=None, patterns=None) -> ProbeReading:
        rd = self.inner.probe(tile_id, stream, x=x, patterns=patterns)
        self._t(tile_id)["probes"].append(rd)
        return rd

    def retune_cells(self, tile_id, rows, cols):
        rep = self.inner.retune_cells(tile_id, rows, cols)
        self._t(tile_id)["retunes"].append(dataclasses.asdict(rep))
        return rep

    def events(self, tile_id):
        return self.inner.events(tile_id)

    def reset_events(self, tile_id):
        self.inner.reset_events(tile_id)

    def release(self, stream):
        self.inner.release(stream)

    def close(self):
        self.save()
        self.inner.close()

    # the directory ------------------------------------------------------------------
    def save(self) -> Path:
        """Write the replay directory (manifest last, so a half-written one is refused)."""
        import norsim

        d = self.directory
        (d / "tiles").mkdir(parents=True, exist_ok=True)
        info = dataclasses.asdict(self.inner.info())
        tiles = {}
        for k, tid in enumerate(self.order):
            t = self.log[tid]
            if "report" not in t:
                continue
            rep = t["report"]
            folder = tile_folder(k, tid)
            td = d / "tiles" / folder
            td.mkdir(parents=True, exist_ok=True)
            np.save(td / "weights.npy", t["weights"])
            np.save(td / "vth.npy", np.asarray(rep.vth, dtype=np.float64))
            if rep.failed is not None:
                np.save(td / "failed.npy", np.asarray(rep.failed, dtype=bool))
            xs = [x for x, _ in t["mvm"]]
            ys = [y for _, y in t["mvm"]]
            n = np.cumsum([0] + [x.shape[0] for x in xs])
            np.save(td / "mvm_x.npy", np.concatenate(xs) if xs else
                    np.zeros((0, rep.rows), dtype=np.int64))
            np.save(td / "mvm_y.npy", np.concatenate(ys) if ys else
                    np.zeros((0, rep.outputs), dtype=np.float64))
            np.save(td / "mvm_calls.npy", np.stack([n[:-1], n[1:]], axis=1).astype(np.int64))
            charges = []
            for j, rd in enumerate(t["probes"]):
                np.save(td / f"probe_{j}_x.npy", np.asarray(rd.x, dtype=np.int64))
                np.save(td / f"probe_{j}_codes.npy", np.asarray(rd.codes, dtype=np.float64))
                np.save(td / f"probe_{j}_expected.npy",
                        np.asarray(rd.expected_lsb, dtype=np.float64))
                charges.append(float(rd.charge_c))
            (td / "calibration.json").write_text(json.dumps(
                [calibration_to_json(c) for c in t["calibrations"]]))
            report = {f.name: getattr(rep, f.name) for f in dataclasses.fields(rep)
                      if f.name not in ("vth", "failed")}
            tiles[tid] = {"dir": f"tiles/{folder}", "rows": rep.rows,
                          "phys_cols": rep.phys_cols, "outputs": rep.outputs,
                          "input_bits": t["input_bits"], "report": report,
                          "mvm_calls": len(xs), "mvm_vectors": int(n[-1]),
                          "probe_charges_c": charges, "retunes": t["retunes"]}
        if self.config is not None:
            (d / "config.toml").write_text(self.config.to_toml())
        manifest = {"format": FORMAT, "version": FORMAT_VERSION,
                    "recorded_by": f"norsim {norsim.__version__}", "chip": info,
                    "tiles": tiles}
        (d / "manifest.json").write_text(json.dumps(manifest, indent=1))
        return d
