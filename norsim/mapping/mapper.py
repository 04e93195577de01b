"""Tile a QuantModel's conv/linear layers onto NOR arrays.

Each conv2d/linear node becomes a weight matrix (in_features x out_features, im2col order
``weight.reshape(Cout, -1).T``) partitioned into row blocks of at most ``array.rows`` rows and
column blocks whose encoded physical columns fit ``array.cols``. Every tile is programmed
through the device layer (block erase, D2D variation, ISPP program-and-verify to the target
read current of each cell's level, optional retention bake) and becomes a
:class:`norsim.array.nor_array.NorArray`. Partial sums of row blocks are added digitally after
the ADC, so one layer's estimate is ``sum_row_blocks tile.matmul(x_block)``.

Per layer the array configuration takes the layer's own input bit width (the input tensor's
bits; signed inputs are offset by 2^(b-1) and the offset is removed digitally) and weight bit
width (widths above the preset's ``array.encoding.weight_bits`` are bit-sliced across cells
holding ``weight_bits - 1`` magnitude bits each). Zero-point weights keep their raw codes on
the array and get the format's correction term digitally.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from norsim.array import encodings as enc_mod
from norsim.array.nor_array import NorArray
from norsim.config.sim import SimConfig
from norsim.errors import ConfigError, InputError
from norsim.mapping import program_cache
from norsim.mapping.quant_model import Conv2d, Linear, QuantModel

# numpy SeedSequence sub-stream ids (spawn keys) of the mapper's draws
_STREAM_TILE = 101


@dataclass
class Tile:
    """One programmed array and where it sits in its layer's weight matrix."""

    array: NorArray | None      # the simulated array (sim back-end only; None elsewhere)
    row_start: int
    row_stop: int
    col_start: int
    col_stop: int
    program_time_s: float = 0.0
    program_energy_j: float = 0.0
    variation: object = None    # CellVariation of the programmed cells (None: nominal)
    ir_drop_error_rel: float | None = None  # surrogate vs circuit mode on sampled vectors
    ir_check: object = None     # IrCheck of the per-vector IR surrogate (ir_drop 'network')
    failed_cells: int = 0       # cells that failed verify and were not repaired
    failed_before_repair: int = 0  # cells flagged by program-and-verify before column repair
    repaired_columns: int = 0   # columns replaced by spares
    tile_id: str = ""           # the back-end's id of the tile (norsim.backend.base.tile_id)
    geometry: tuple | None = None  # (rows used, physical columns, array rows, array cols)
    failed_mask: object = None  # (rows, phys_cols) bool: cells failed and not repaired
    pulses: int = -1            # program pulses of the tile in total (-1: not counted)

    @property
    def utilisation(self) -> float:
        a = self.array
        if a is None:
            r, c, rows, cols = self.geometry
            return (r * c) / (rows * cols)
        return (a.rows_used * a.phys_cols) / (a.cfg.array.rows * a.cfg.array.cols)


@dataclass
class MappedLayer:
    """A conv/linear node and its tiles (empty when the layer runs digitally)."""

    node: Conv2d | Linear
    layer_cfg: SimConfig
    analog: bool
    in_bits: int
    in_signed: bool
    tiles: list[Tile] = field(default_factory=list)
    in_features: int = 0
    out_features: int = 0

    @property
    def name(self) -> str:
        return self.node.name

    def summary(self) -> dict:
        util = [t.utilisation for t in self.tiles]
        return {
            "layer": self.name, "op": type(self.node).__name__.lower(),
            "weight_matrix": [self.in_features, self.out_features],
            "in_bits": self.in_bits, "weight_bits": self.node.weight_bits,
            "where": "analog" if self.analog else "digital",
            "weight_scheme": self.layer_cfg.array.encoding.weight_scheme if self.analog else "-",
            "tiles": len(self.tiles),
            "utilisation": float(np.mean(util)) if util else 0.0,
            "failed_cells": int(sum(t.failed_cells for t in self.tiles)),
            "failed_cells_before_repair": int(sum(t.failed_before_repair for t in self.tiles)),
            "repaired_columns": int(sum(t.repaired_columns for t in self.tiles)),
            "ir_drop_error_rel": max((t.ir_drop_error_rel for t in self.tiles
                                      if t.ir_drop_error_rel is not None), default=None),
            "program_time_s": float(sum(t.program_time_s for t in self.tiles)),
            "program_energy_j": float(sum(t.program_energy_j for t in self.tiles)),
        }


def ideal_config(cfg: SimConfig) -> SimConfig:
    """``cfg`` with every analog non-ideality off: exact V_th placement, no variation, read
    noise, RTN, retention or ADC errors, and an ADC whose range is the physical maximum with
    enough bits to resolve every integer. The chip must then equal the integer reference."""
    return cfg.with_overrides({
        "mapping.programming": "ideal", "mapping.retention_time_s": 0.0,
        "array.adc.bits": 24, "array.adc.range_mode": "physical",
        "array.adc.offset_lsb": 0.0, "array.adc.offset_sigma_lsb": 0.0,
        "array.adc.gain_error": 0.0, "array.adc.gain_sigma": 0.0, "array.adc.inl_lsb": 0.0,
        "array.adc.noise_lsb": 0.0, "array.noise.shot_enabled": False,
        "array.noise.ktc_enabled": False, "array.noise.rtn_enabled": False,
        "device.read.temperature_k": cfg.mapping.program_temperature_k,
    })


def raw_weight_matrix(node: Conv2d | Linear) -> np.ndarray:
    """The raw weight codes as an (in_features, out_features) int64 matrix (im2col order).
    Zero points are not subtracted: arrays hold raw codes, the correction is digital."""
    return np.asarray(node.weight, dtype=np.int64).reshape(node.out_channels, -1).T


def _effective_weight_bits(node: Conv2d | Linear) -> int:
    """Zero-point weights use the full two's-complement range: one more magnitude bit."""
    return node.weight_bits + (1 if getattr(node, "weight_zero_point", None) is not None else 0)


def layer_config(cfg: SimConfig, node: Conv2d | Linear, in_bits: int) -> SimConfig:
    """The array configuration one layer runs with (its own bit widths)."""
    enc = cfg.array.encoding
    wbits = _effective_weight_bits(node)
    new_enc = dataclasses.replace(enc, input_bits=int(in_bits), weight_bits=int(wbits))
    if wbits > enc.weight_bits:
        if enc.weight_scheme == "offset":
            raise ConfigError("array.encoding.weight_scheme", enc.weight_scheme,
                              f"'differential' or 'bit_sliced' for layer {node.name!r} with "
                              f"{wbits}-bit weights (offset encoding holds at most "
                              f"{enc.weight_bits}-bit weights per cell)")
        new_enc = dataclasses.replace(new_enc, weight_scheme="bit_sliced",
                                      bits_per_cell=min(enc.weight_bits - 1, wbits - 1))
    arr = dataclasses.replace(cfg.array, encoding=new_enc)
    out = dataclasses.replace(cfg, array=arr)
    out.validate()
    return out


def _program_cells(w_block: np.ndarray, cfg: SimConfig, rng: np.random.Generator) -> tuple:
    """ISPP program-and-verify of one tile's cells with column repair: (V_th, program time,
    energy, failed-cell mask, repaired columns, variation, cells flagged before repair,
    program pulses in total)."""
    from norsim.device.iv import cell_model
    from norsim.device.programming import program
    from norsim.device.variation import draw_variation

    mcfg = cfg.mapping
    dev = cfg.device
    enc = cfg.array.encoding
    layout = enc_mod.encode_weights(w_block, enc)
    i_target = enc_mod.level_currents(layout.levels, dev.levels)
    # program at the programming temperature, read at the operating temperature
    prog_dev = dataclasses.replace(dev, read=dataclasses.replace(
        dev.read, temperature_k=mcfg.program_temperature_k))
    prog_model = cell_model(dev.cell, mcfg.program_temperature_k)
    variation = draw_variation(rng, i_target.shape, dev.variation, dev.cell)
    result = program(rng, prog_model, prog_dev, i_target, variation=variation)
    vth = result.vth.copy()
    time_s, energy_j = float(result.program_time_s), float(result.energy_j)
    failed = result.failed.copy()
    # per-cell history for the disturbs of tuning (pulses, where each cell started and
    # where ISPP left it); repaired columns take their spare's
    hist = {k: np.array(getattr(result, k)) for k in ("pulses", "tune_pulses", "vth_erased",
                                                       "vth_ispp")}
    # column repair: a physical column with a failed cell is replaced by a spare column
    # (fresh cells, programmed the same way), as many as the tile has spares; columns with a
    # stuck cell (far from any level) first, near-miss columns after them
    failed_before = int(failed.sum())
    cand = np.flatnonzero(failed.any(axis=0))
    if result.stuck is not None and cand.size:
        stuck_col = (np.asarray(result.stuck).reshape(failed.shape)[:, cand] != 0).any(axis=0)
        cand = cand[np.argsort(~stuck_col, kind="stable")]
    bad_cols = cand[:mcfg.spare_columns]
    for col in bad_cols:
        spare_var = draw_variation(rng, (i_target.shape[0],), dev.variation, dev.cell)
        spare = program(rng, prog_model, prog_dev, i_target[:, col], variation=spare_var)
        vth[:, col] = spare.vth
        failed[:, col] = spare.failed
        for k, a in hist.items():
            a[:, col] = getattr(spare, k)
        for field_name in ("vth_offset_v", "n", "beta_factor", "dibl_eta", "stuck",
                           "dvth_dt_v_per_k"):
            if getattr(variation, field_name) is not None:
                getattr(variation, field_name)[:, col] = getattr(spare_var, field_name)
        time_s += float(spare.program_time_s)
        energy_j += float(spare.energy_j)
    # program disturb and floating-gate coupling of the cells tuned after each cell (issue
    # 20; device.disturb: program_disturb, fg_coupling_*, tuning_order). Spare columns are
    # counted in place of the columns they replace (tuned in that column's turn)
    if vth.ndim == 2:
        from norsim.device.disturb import tuning_shift

        vth = vth + tuning_shift(None, dev, vth=vth, **hist)
    return vth, time_s, energy_j, failed, bad_cols, variation, failed_before, int(
        np.sum(hist["pulses"]))


def _program_tile(w_block: np.ndarray, cfg: SimConfig, rng: np.random.Generator) -> Tile:
    """Program one tile through the device layer; returns the array (position set by caller)."""
    mcfg = cfg.mapping
    if mcfg.programming == "ideal":
        return Tile(NorArray.from_weights(w_block, cfg, rng), 0, 0, 0, 0)
    from norsim.device.iv import cell_model
    from norsim.device.retention import bake

    dev = cfg.device
    ck = program_cache.key(w_block, cfg, rng)
    programmed = program_cache.lookup(ck, rng)
    if programmed is None:
        programmed = _program_cells(w_block, cfg, rng)
        program_cache.store(ck, programmed, rng)
    vth, time_s, energy_j, failed, bad_cols, variation, failed_before, pulses = programmed
    if mcfg.retention_time_s > 0:
        vth = bake(rng, vth, mcfg.retention_time_s, mcfg.retention_temperature_k,
                   dev.retention, dev.cell)
    if dev.disturb.read_count > 0:  # read disturb of the chip's past inference (issue 20)
        from norsim.device.disturb import read_disturb

        vth = read_disturb(vth, dev.disturb.read_count, dev)
    # the array computes currents with nominal n / beta / DIBL; carry each cell's own
    # parameters as a current factor at the operating temperature and nominal read bias
    read_model = cell_model(dev.cell, dev.read.temperature_k)
    v_d = dev.read.v_bl_read_v * cfg.array.sense.clamp_gain / (1.0 + cfg.array.sense.clamp_gain)
    v_on = dev.read.v_select_on_v if dev.cell.cell_type == "split_gate" else dev.read.v_cg_read_v
    args = (v_on, dev.read.v_cg_read_v, v_d, dev.read.v_sl_read_v, vth)
    i_cell = read_model.current(*args, **variation.iv_kwargs(read_model))
    i_nominal = read_model.current(*args)
    scale = np.where(i_nominal > 0, i_cell / np.maximum(i_nominal, 1e-300), 1.0)
    arr = NorArray.from_weights(w_block, cfg, rng, vth_map=vth, current_scale=scale)
    return Tile(arr, 0, 0, 0, 0, program_time_s=time_s, program_energy_j=energy_j,
                variation=variation, failed_cells=int(failed.sum()),
                failed_before_repair=failed_before, repaired_columns=int(bad_cols.size),
                failed_mask=failed, pulses=pulses)


def _col_block(cfg: SimConfig) -> int:
    enc = cfg.array.encoding
    per_out = enc_mod.phys_cols_needed(1, enc)
    if enc.weight_scheme == "offset":  # one shared reference column per tile
        return cfg.array.cols - 1
    return cfg.array.cols // per_out


@dataclass
class Chip:
    """A QuantModel placed on arrays: one MappedLayer per conv/linear node."""

    model: QuantModel
    cfg: SimConfig
    layers: dict[str, MappedLayer]
    calibrated: bool = False
    backend: object = None   # the norsim.backend.Backend holding the tiles (None: a new sim)

    def __post_init__(self):
        if self.backend is None:   # tiles built by hand: a sim back-end around them
            from norsim.backend.sim import SimBackend

            self.backend = SimBackend(self.cfg)
            for layer in self.layers.values():
                for k, tile in enumerate(layer.tiles):
                    if not tile.tile_id:
                        tile.tile_id = f"{layer.name}/t{k}"
                    self.backend.adopt(tile.tile_id, tile, layer.layer_cfg, self.cfg)

    def summary(self) -> list[dict]:
        return [layer.summary() for layer in self.layers.values()]

    def tiles(self):
        for layer in self.layers.values():
            yield from layer.tiles


@dataclass
class LayerPlan:
    """Where one conv/linear node goes and how it is tiled (no programming yet)."""

    index: int
    node: Conv2d | Linear
    analog: bool
    in_bits: int
    in_signed: bool
    weights: np.ndarray          # raw weight matrix (in_features x out_features)
    layer_cfg: SimConfig
    rows: int = 0                # rows per tile
    cols: int = 0                # logical columns per tile

    @property
    def n_tiles(self) -> int:
        if not self.analog:
            return 0
        r, c = self.weights.shape
        return -(-r // self.rows) * -(-c // self.cols)


def plan_tiles(model: QuantModel, cfg: SimConfig) -> list[LayerPlan]:
    """Place and tile every conv/linear node of ``model`` and check that every layer fits the
    array (weight codes within the encoding, at least one output per tile) -- cheap: nothing
    is programmed. :func:`map_model` programs this plan."""
    cfg.validate()
    specs = model.specs()
    matmul_nodes = [nd for nd in model.order() if isinstance(nd, (Conv2d, Linear))]
    if not matmul_nodes:
        raise InputError("model", model.name, "a model with at least one conv2d/linear node")
    plans = []
    for index, node in enumerate(matmul_nodes):
        spec = specs[node.inputs[0]]
        where = "analog"
        if index == 0 and cfg.mapping.first_layer == "digital":
            where = "digital"
        if index == len(matmul_nodes) - 1 and cfg.mapping.last_layer == "digital":
            where = "digital"
        w = raw_weight_matrix(node)
        plan = LayerPlan(index, node, where == "analog", spec.bits, spec.signed, w, cfg)
        if plan.analog:
            lcfg = layer_config(cfg, node, spec.bits)
            plan.layer_cfg = lcfg
            limit = enc_mod.weight_limit(lcfg.array.encoding)
            if np.abs(w).max(initial=0) > limit:
                raise ConfigError(f"layer {node.name}", int(np.abs(w).max()),
                                  f"weight codes within +-{limit} for the array encoding "
                                  f"(raw codes of zero-point weights must fit too)")
            plan.rows, plan.cols = lcfg.array.rows, _col_block(lcfg)
            if plan.cols < 1:
                raise ConfigError("array.cols", lcfg.array.cols,
                                  f"enough columns for one output of layer {node.name!r} "
                                  f"({enc_mod.phys_cols_needed(1, lcfg.array.encoding)} physical "
                                  f"columns with weight_scheme "
                                  f"'{lcfg.array.encoding.weight_scheme}')")
        plans.append(plan)
    return plans


def check_fits(model: QuantModel, cfg: SimConfig) -> list[LayerPlan]:
    """Raise the error :func:`map_model` would raise for a layer that does not fit the array
    (``array.cols`` too small, weight codes beyond the encoding, ...), in milliseconds and
    before any programming. Returns the plan."""
    return plan_tiles(model, cfg)


def _tile_from_report(report, lcfg: SimConfig) -> Tile:
    """The host's record of a tile programmed on a back-end without a local array."""
    return Tile(None, 0, 0, 0, 0, program_time_s=report.program_time_s,
                program_energy_j=report.program_energy_j, failed_cells=report.failed_cells,
                failed_before_repair=report.failed_before_repair,
                repaired_columns=report.repaired_columns, tile_id=report.tile_id,
                geometry=(report.rows, report.phys_cols, lcfg.array.rows, lcfg.array.cols),
                failed_mask=report.failed, pulses=report.pulses)


def map_model(model: QuantModel, cfg: SimConfig, backend=None) -> Chip:
    """Tile and program every conv/linear node of ``model`` on ``backend`` (a
    :class:`norsim.backend.base.Backend`; default: a new ``sim`` back-end); draws from
    ``cfg.seed`` (stream keys ``(101, layer index, tile index)``)."""
    from norsim.backend.base import tile_id as make_tile_id
    from norsim.backend.sim import SimBackend

    if backend is None:
        backend = SimBackend(cfg)
    layers: dict[str, MappedLayer] = {}
    for plan in plan_tiles(model, cfg):  # every layer checked before the first is programmed
        node, w = plan.node, plan.weights
        layer = MappedLayer(node, plan.layer_cfg, plan.analog, plan.in_bits, plan.in_signed,
                            in_features=w.shape[0], out_features=w.shape[1])
        if plan.analog:
            rows, cols, lcfg = plan.rows, plan.cols, plan.layer_cfg
            t_index = 0
            for r0 in range(0, w.shape[0], rows):
                for c0 in range(0, w.shape[1], cols):
                    r1, c1 = min(r0 + rows, w.shape[0]), min(c0 + cols, w.shape[1])
                    tid = make_tile_id(node.name, r0 // rows, c0 // cols)
                    report = backend.program(tid, w[r0:r1, c0:c1], lcfg,
                                             (_STREAM_TILE, plan.index, t_index))
                    local = getattr(backend, "local_tile", None)  # sim: the host shares it
                    tile = local(tid) if local is not None else None
                    if tile is None:
                        tile = _tile_from_report(report, lcfg)
                    tile.row_start, tile.row_stop, tile.col_start, tile.col_stop = r0, r1, c0, c1
                    layer.tiles.append(tile)
                    t_index += 1
        layers[node.name] = layer
    return Chip(model, cfg, layers, backend=backend)
