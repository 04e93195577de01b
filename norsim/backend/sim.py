"""The ``sim`` back-end: today's simulated NOR arrays behind the seam, bit for bit.

Each tile is the mapper's :class:`~norsim.mapping.mapper.Tile` around a
:class:`~norsim.array.nor_array.NorArray`, programmed through the device layer exactly as
before the seam existed (``mapper._program_tile``). The generators of the stream keys
(:class:`~norsim.backend.base.StreamTable`) are the ones the engine, the mapper and the
compensation chain drew from directly before, consumed in the same order, so every number of a
run through this back-end equals the direct path's (tested on the demo model).

In process, the host's :class:`~norsim.mapping.mapper.Tile` objects *are* this back-end's
(``local_tile``): code that studies a simulated tile (cost model, IR checks, noise studies)
keeps reading ``tile.array``; it is ``None`` on other back-ends.
"""

from __future__ import annotations

import numpy as np

from norsim.backend import sim_ops
from norsim.backend.base import (MAP_QUANTITIES, Backend, BackendInfo, Calibration,
                                 MapReading, MvmResult, PatternSpec, ProbeReading,
                                 ProgrammingReport, RetuneReport, StreamTable)
from norsim.errors import InputError


def programming_report(tid: str, tile) -> ProgrammingReport:
    """The report of a programmed simulator tile."""
    arr = tile.array
    failed = getattr(tile, "failed_mask", None)
    return ProgrammingReport(
        tile_id=tid, rows=int(arr.rows_used), phys_cols=int(arr.phys_cols),
        outputs=int(arr.n_out), vth=np.array(arr.vth, dtype=np.float64),
        failed=None if failed is None else np.array(failed, dtype=bool),
        program_time_s=float(tile.program_time_s), program_energy_j=float(tile.program_energy_j),
        pulses=int(getattr(tile, "pulses", -1)), failed_cells=int(tile.failed_cells),
        failed_before_repair=int(tile.failed_before_repair),
        repaired_columns=int(tile.repaired_columns))


def calibration_of(tid: str, arr) -> Calibration:
    """The periphery state of a simulated tile."""
    ch = arr._channels
    adc = arr.adc
    has_range = adc.step_a is not None
    return Calibration(
        tile_id=tid, gain=np.array(adc.gain, dtype=np.float64).reshape(-1),
        offset=np.array(adc.offset, dtype=np.float64).reshape(-1),
        channel_adc=np.array(ch["adc"], dtype=np.int64), pos=np.array(ch["pos"], dtype=np.int64),
        neg=np.array(ch["neg"], dtype=np.int64),
        full_scale_a=None if adc.full_scale_a is None else float(adc.full_scale_a),
        step_a=float(adc.step_a) if has_range else None, unit_a=float(arr.unit_a),
        lo=float(adc.lo), hi=float(adc.hi),
        usable_hi=(sim_ops.usable_hi(arr) if has_range
                   else np.full(ch["pos"].size, float(adc.hi))),
        t_read_s=float(arr.t_read_s), cycles=int(arr.cycles), input_bits=int(arr.nbits_in),
        rows=int(arr.rows_used), outputs=int(arr.n_out),
        v_cg_read_v=float(arr.cfg.device.read.v_cg_read_v), bit_serial=bool(arr.bitserial))


class SimBackend(Backend):
    """Simulated tiles in this process (``--backend sim``, the default)."""

    kind = "sim"

    def __init__(self, cfg=None):
        self.cfg = cfg
        self.tiles: dict = {}
        self.configs: dict = {}
        self.streams = StreamTable(cfg)

    # ---------------------------------------------------------------- identity ----
    def info(self) -> BackendInfo:
        import norsim

        cfg = self.cfg
        return BackendInfo(
            kind="sim", chip_id=f"sim-seed{cfg.seed}" if cfg is not None else "sim",
            firmware=f"norsim {norsim.__version__}",
            temperature_k=float(cfg.device.read.temperature_k) if cfg is not None else float("nan"),
            time_since_programming_s=float(cfg.mapping.retention_time_s) if cfg is not None else 0.0)

    def tile_ids(self) -> list[str]:
        return list(self.tiles)

    def _tile(self, tid: str):
        tile = self.tiles.get(tid)
        if tile is None:
            raise InputError("tile", tid, f"a programmed tile of this chip ({len(self.tiles)} "
                             "programmed)")
        return tile

    def local_tile(self, tid: str):
        """The simulator's own Tile (shared with the host in process)."""
        return self._tile(tid)

    def adopt(self, tid: str, tile, config, stream_config=None) -> None:
        """Hold an already programmed simulator tile under ``tid`` (array-level helpers)."""
        self.tiles[tid] = tile
        self.configs[tid] = config
        if self.streams.seed_config is None:
            self.streams.seed_config = stream_config or config

    # -------------------------------------------------------------- programming ----
    def program(self, tile_id: str, weights: np.ndarray, config, stream) -> ProgrammingReport:
        from norsim.mapping.mapper import _program_tile

        if self.cfg is None:
            self.cfg = config
        if self.streams.seed_config is None:
            self.streams.seed_config = config
        tile = _program_tile(np.asarray(weights), config, self.streams.get(stream))
        tile.tile_id = tile_id
        self.tiles[tile_id] = tile
        self.configs[tile_id] = config
        self.streams.release(stream)
        return programming_report(tile_id, tile)

    def read_map(self, tile_id: str, quantity: str = "vth") -> MapReading:
        if quantity not in MAP_QUANTITIES:
            raise InputError("quantity", quantity, f"one of {MAP_QUANTITIES}")
        arr = self._tile(tile_id).array
        read = arr.cfg.device.read
        vals = arr.vth if quantity == "vth" else arr.i_on
        return MapReading(tile_id, quantity, np.array(vals, dtype=np.float64),
                          temperature_k=float(read.temperature_k),
                          v_cg_read_v=float(read.v_cg_read_v), v_bl_read_v=float(read.v_bl_read_v))

    # ---------------------------------------------------------------- periphery ----
    def calibrate(self, tile_id: str, x: np.ndarray, stream) -> Calibration:
        from norsim.mapping.ir_drop import apply_ir_drop

        tile = self._tile(tile_id)
        cfg = self.configs[tile_id]
        mcfg = cfg.mapping
        rng = self.streams.get(stream)
        if mcfg.ir_drop != "none":
            apply_ir_drop(tile, x, mcfg.ir_drop, mcfg.ir_drop_vectors, rng)
        if cfg.array.adc.range_mode == "calibrated":
            tile.array.calibrate(x, rng)
        return calibration_of(tile_id, tile.array)

    def calibration(self, tile_id: str) -> Calibration:
        return calibration_of(tile_id, self._tile(tile_id).array)

    def set_adc(self, tile_id: str, gain, offset, full_scale_a=None,
                per_channel: bool = False) -> Calibration:
        arr = self._tile(tile_id).array
        if per_channel:
            sim_ops.per_channel_adc(arr)
        arr.adc.gain = np.asarray(gain, dtype=np.float64)
        arr.adc.offset = np.asarray(offset, dtype=np.float64)
        if full_scale_a is not None:
            arr.adc.set_range(float(full_scale_a), arr.unit_a,
                              arr.cfg.array.adc.step_integer_units)
        return calibration_of(tile_id, arr)

    def set_read_voltage(self, tile_id: str, v_cg: float) -> None:
        sim_ops.set_read_voltage(self._tile(tile_id).array, v_cg)

    # ------------------------------------------------------------------- reads ----
    def mvm(self, tile_id: str, x: np.ndarray, stream, purpose: str = "run") -> MvmResult:
        tile = self._tile(tile_id)
        values = tile.array.matmul(x, self.streams.get(stream))
        if purpose == "run":
            mcfg = self.configs[tile_id].mapping
            if mcfg.ir_drop == "network":
                from norsim.mapping.ir_drop import check_ir

                check_ir(tile, x, mcfg.ir_check_vectors)
        return MvmResult(values)

    def probe(self, tile_id: str, stream, x=None, patterns: PatternSpec | None = None,
              ) -> ProbeReading:
        arr = self._tile(tile_id).array
        rng = self.streams.get(stream)
        if (x is None) == (patterns is None):
            raise InputError("probe", tile_id, "exactly one of x or patterns")
        if patterns is not None:
            sim_ops.check_supported(arr)
            code = arr.xmax if patterns.code < 0 else int(patterns.code)
            x = sim_ops.patterns(rng, int(patterns.n), arr.rows_used, patterns.densities, code)
        codes, expected, charge = sim_ops.probe(arr, x, rng)
        return ProbeReading(np.asarray(x, dtype=np.int64), codes, expected, charge)

    def retune_cells(self, tile_id: str, rows, cols) -> RetuneReport:
        t, e = sim_ops.retune_cells(self._tile(tile_id).array, rows, cols)
        return RetuneReport(int(np.asarray(rows).size), t, e)

    # ------------------------------------------------------------------ events ----
    def events(self, tile_id: str) -> dict:
        return self._tile(tile_id).array.events.as_dict()

    def reset_events(self, tile_id: str) -> None:
        self._tile(tile_id).array.events.reset()

    def release(self, stream) -> None:
        self.streams.release(stream)
