"""On-chip calibration and compensation of a mapped chip, modelled as its controller runs it.

Everything the controller learns comes from reads through the periphery (the ADC model with
its mismatch, noise, INL and clipping), never from the simulator's true V_th drift:

* **Reference columns** (:func:`attach_references`): per tile, ``reference_columns``
  differential pairs on the tile's word lines, positive column at a ladder of levels
  (level ``round((k + 1) L_max / K)``), negative at level 0, programmed through the same
  device path as the weights (erase, D2D variation, ISPP, retention bake, operating
  temperature), read through their own ADC instances (same ADC model).
* **Ratiometric gain** (``gain_correction = 'global'``): the reference columns are read with
  test patterns; the least-squares gain ``g`` of codes against the currents their levels
  should give scales the tile's ADC reference (every channel's gain / g, full scale / g).
  It tracks retention drift and temperature alike, because it is measured at run conditions.
* **Per-column gain/offset trim** (``'per_column'``): after the ratiometric step, each
  conversion channel of the weight columns is read with random row subsets (two densities,
  clipped codes discarded) and fitted ``code = g_h E_h + o_h`` against the nominal current
  ``E_h`` of its programmed levels (the controller knows the levels it programmed); the
  channel's ADC gain and offset are trimmed to ``G / g_h`` and ``(O - o_h) / g_h``.
* **Adaptive read voltage**: per tile, Newton steps on the control-gate read voltage until the
  reference columns' gain is 1 (slope d ln I / dV_cg of the nominal cell model: design data).
* **Word-line temperature tracking**: open-loop shift ``wl_tempco_v_per_k (T - T_prog)``.
* **Activation re-calibration** (:func:`recalibrate_activations`): the digital requantisation
  affine of every analog layer is re-fitted on a calibration batch run through the chip.
* **Refresh** (:func:`effective_config`, :func:`refresh_cost`): re-programming every
  ``refresh_interval_s`` leaves only the drift since the last refresh, costs one programming
  of the chip per refresh and one P/E cycle each.

The trims are applied to the tiles' ADC gain/offset (a per-channel ADC-reference trim) and,
for the re-calibration, to ``MappedLayer.acc_correction``, which the engine applies to the
layer's integer accumulators. Each step returns a :class:`CompensationCost`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from norsim.array import encodings as enc_mod
from norsim.array.cells import ArrayCell
from norsim.backend import sim_ops
from norsim.backend.base import PatternSpec
from norsim.config.sim import SimConfig
from norsim.errors import ConfigError, InputError

# numpy SeedSequence sub-stream ids of the compensation's draws
_STREAM_REF = 401
_STREAM_PROBE = 402
_STREAM_RECAL = 403


# ------------------------------------------------------------------------------ costs ----
@dataclass
class CompensationCost:
    """What one compensation step costs, for ``norsim.cost``.

    ``reads``: array read cycles (one word-line activation of one tile); ``conversions``:
    ADC conversions (the cost model prices them); ``energy_j``: bit-line energy of the reads
    (charge x V_BL) plus programming energy; ``time_s``: read cycles x t_read plus programming
    time (tiles one after another); ``images``: calibration images run through the chip;
    ``extra_cells``: cells added to the arrays (reference columns).
    """

    name: str
    reads: int = 0
    conversions: int = 0
    bitline_charge_c: float = 0.0
    energy_j: float = 0.0
    time_s: float = 0.0
    program_time_s: float = 0.0
    program_energy_j: float = 0.0
    images: int = 0
    extra_cells: int = 0

    def add_reads(self, cal, n_vectors: int, n_channels: int, charge_c: float,
                  v_bl_v: float) -> None:
        """Reads of ``n_vectors`` test vectors on a tile with periphery state ``cal``
        (:class:`norsim.backend.base.Calibration`) at bit-line voltage ``v_bl_v``."""
        cyc = n_vectors * cal.cycles
        self.reads += cyc
        self.conversions += cyc * n_channels
        q = float(charge_c) * cal.t_read_s  # summed currents x read time
        self.bitline_charge_c += q
        self.energy_j += q * v_bl_v
        self.time_s += cyc * cal.t_read_s

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class CompensationState:
    """Reference arrays per (layer name, tile index) and what each step did and cost."""

    references: dict = field(default_factory=dict)
    costs: list = field(default_factory=list)
    log: dict = field(default_factory=dict)

    def total_cost(self) -> dict:
        keys = [f.name for f in dataclasses.fields(CompensationCost) if f.name != "name"]
        return {k: sum(getattr(c, k) for c in self.costs) for k in keys}


# ----------------------------------------------------------------------- refresh ----
def effective_config(cfg: SimConfig) -> tuple[SimConfig, int]:
    """The configuration to map with when tiles are refreshed, and the number of refreshes.

    With ``refresh_interval_s = T_r > 0`` and a retention age ``t``, the chip has been
    re-programmed ``n = floor(t / T_r)`` times: it carries ``t - n T_r`` of drift and
    ``pe_cycles + n`` program/erase cycles.
    """
    c = cfg.compensation
    t = cfg.mapping.retention_time_s
    if not (c.enabled and c.refresh_interval_s > 0 and t > 0):
        return cfg, 0
    n = int(np.floor(t / c.refresh_interval_s))
    out = cfg.with_overrides({"mapping.retention_time_s": float(t - n * c.refresh_interval_s),
                              "device.retention.pe_cycles": int(cfg.device.retention.pe_cycles + n)})
    return out, n


def refresh_cost(chip, n_refresh: int) -> CompensationCost:
    """Re-programming every tile (and its reference columns) ``n_refresh`` times."""
    cost = CompensationCost("refresh")
    t = sum(tile.program_time_s for tile in chip.tiles())
    e = sum(tile.program_energy_j for tile in chip.tiles())
    state = getattr(chip, "compensation", None)
    if state is not None:
        t += sum(r["program_time_s"] for r in state.references.values())
        e += sum(r["program_energy_j"] for r in state.references.values())
    cost.program_time_s = cost.time_s = n_refresh * t
    cost.program_energy_j = cost.energy_j = n_refresh * e
    return cost


# ------------------------------------------------------------------- probe reads ----
# array-level operations of the simulated tile (the sim back-end calls them; kept here under
# their former names for array-level studies and tests)
_check_supported = sim_ops.check_supported
nominal_cell_currents = sim_ops.nominal_cell_currents
probe = sim_ops.probe
_patterns = sim_ops.patterns
_usable_hi = sim_ops.usable_hi
_per_channel_adc = sim_ops.per_channel_adc
set_read_voltage = sim_ops.set_read_voltage

#: a per-channel trim gain outside this range (after the tile's ratiometric gain) is an
#: ill-conditioned fit, not a column: the channel gets an offset-only trim instead
CHANNEL_GAIN_BOUNDS = (0.25, 4.0)


def _fit(codes, expected, lo, hi, min_points=4, gain_bounds=None):
    """Least-squares ``code = g E + o`` over unclipped points; (g, o) or None (also when g
    falls outside ``gain_bounds``)."""
    ok = (codes > lo) & (codes < hi)
    if ok.sum() < min_points:
        return None
    e, c = expected[ok], codes[ok]
    if np.var(e) < 0.25:  # no spread to separate gain from offset
        return None
    g, o = np.polyfit(e, c, 1)
    if not np.isfinite(g) or g <= 0:
        return None
    if gain_bounds is not None and not gain_bounds[0] <= g <= gain_bounds[1]:
        return None
    return float(g), float(o)


def _fit_offset(codes, expected, lo, hi, min_points=4):
    """Offset-only trim ``code = E + o`` (median over unclipped points) for a channel whose
    expected readings have no spread to separate a gain from (e.g. the high bit-slice of
    small weights); o or None."""
    ok = (codes > lo) & (codes < hi)
    if ok.sum() < min_points:
        return None
    return float(np.median(codes[ok] - expected[ok]))


# ------------------------------------------------- what the controller knows of a tile ----
@dataclass
class TileKnowledge:
    """The controller's design data of one programmed tile: its back-end id, configuration
    and the weight layout it asked for (programmed levels, conversion channels)."""

    tile_id: str
    cfg: SimConfig
    layout: object   # norsim.array.encodings.WeightLayout

    @property
    def nominal_currents(self) -> np.ndarray:
        return enc_mod.level_currents(self.layout.levels, self.cfg.device.levels)

    @property
    def n_channels(self) -> int:
        return int(self.layout.pos.size)


def _check_scheme(cfg: SimConfig) -> None:
    scheme = cfg.array.encoding.input_scheme
    if scheme != "bit_serial":
        raise ConfigError("array.encoding.input_scheme", scheme,
                          "'bit_serial' for on-chip compensation (test patterns are read as "
                          "bit-planes)")


def _weight_tile(layer, tile) -> TileKnowledge:
    from norsim.mapping.mapper import raw_weight_matrix

    w = raw_weight_matrix(layer.node)[tile.row_start:tile.row_stop, tile.col_start:tile.col_stop]
    cfg = layer.layer_cfg
    return TileKnowledge(tile.tile_id, cfg, enc_mod.encode_weights(w, cfg.array.encoding))


# ------------------------------------------------------------- reference columns ----
def _reference_weights(rows: int, enc, k: int) -> np.ndarray:
    lim = enc_mod.weight_limit(enc)
    levels = np.maximum(1, np.rint((np.arange(k) + 1) * lim / k)).astype(np.int64)
    return np.tile(levels[None, :], (rows, 1))


def attach_references(chip) -> CompensationState:
    """Program the reference columns of every analog tile through the chip's back-end
    (idempotent; tile id ``<weight tile id>/ref``); ``chip.compensation``."""
    state = getattr(chip, "compensation", None)
    if state is not None and state.references:
        return state
    state = state or CompensationState()
    backend = chip.backend
    cfg = chip.cfg
    ccfg = cfg.compensation
    cost = CompensationCost("reference_columns")
    for li, layer in enumerate(chip.layers.values()):
        if not layer.analog:
            continue
        lcfg = layer.layer_cfg
        enc = dataclasses.replace(lcfg.array.encoding, weight_scheme="differential",
                                  weight_bits=cfg.array.encoding.weight_bits)
        rcfg = dataclasses.replace(lcfg, array=dataclasses.replace(lcfg.array, encoding=enc))
        for ti, tile in enumerate(layer.tiles):
            w_ref = _reference_weights(tile.row_stop - tile.row_start, enc,
                                       ccfg.reference_columns)
            rid = tile.tile_id + "/ref"
            report = backend.program(rid, w_ref, rcfg, (_STREAM_REF, li, ti))
            _check_scheme(rcfg)
            know = TileKnowledge(rid, rcfg, enc_mod.encode_weights(w_ref, enc))
            # the reference ADC's range: the nominal current of the top reference column
            fs = float(know.nominal_currents.sum(axis=0).max())
            cal = backend.calibration(rid)
            backend.set_adc(rid, cal.gain, cal.offset, full_scale_a=fs)
            local = getattr(backend, "local_tile", None)
            local = None if local is None else local(rid)
            state.references[(layer.name, ti)] = {
                "tile_id": rid, "knowledge": know,
                "array": None if local is None else local.array,
                "program_time_s": report.program_time_s,
                "program_energy_j": report.program_energy_j}
            cost.program_time_s += report.program_time_s
            cost.program_energy_j += report.program_energy_j
            cost.extra_cells += report.rows * report.phys_cols
    cost.time_s, cost.energy_j = cost.program_time_s, cost.program_energy_j
    state.costs.append(cost)
    chip.compensation = state
    return state


def _reference_gain(backend, know: TileKnowledge, stream, n_patterns: int,
                    cost: CompensationCost | None = None) -> float:
    """Gain of the reference columns (codes / nominal codes) from patterns at several row
    densities, so a drifted (larger or smaller) current still lands inside the ADC range."""
    rd = backend.probe(know.tile_id, stream, patterns=PatternSpec(
        max(n_patterns, 5), (1.0, 0.5, 0.25, 0.125, 0.0625)))
    cal = backend.calibration(know.tile_id)
    if cost is not None:
        cost.add_reads(cal, rd.x.shape[0], rd.codes.shape[1], rd.charge_c,
                       know.cfg.device.read.v_bl_read_v)
    pos = know.layout.coef > 0
    hi = cal.usable_hi[pos][None, :]
    c, e = rd.codes[:, pos], rd.expected_lsb[:, pos]
    keep = c < hi
    fit = _fit(c[keep], e[keep], cal.lo, cal.hi)
    if fit is None:
        raise InputError("reference columns", "no unclipped reads",
                         "reference readings inside the ADC range at some test density")
    return fit[0]


def _one_tile_backend(arr, rng: np.random.Generator):
    """A sim back-end around one simulated array whose stream ``()`` is ``rng``."""
    from norsim.backend.sim import SimBackend
    from norsim.mapping.mapper import Tile

    b = SimBackend(arr.cfg)
    b.adopt("array", Tile(arr, 0, arr.rows_used, 0, arr.n_out, tile_id="array"), arr.cfg)
    b.streams.live[()] = rng
    return b, TileKnowledge("array", arr.cfg, arr.layout)


def reference_gain(ref_arr, rng: np.random.Generator, n_patterns: int,
                   cost: CompensationCost | None = None) -> float:
    """:func:`_reference_gain` of one simulated reference array read with ``rng``."""
    backend, know = _one_tile_backend(ref_arr, rng)
    return _reference_gain(backend, know, (), n_patterns, cost)


# ------------------------------------------------------------------ read bias ----
def _dlni_dvcg_cfg(cfg: SimConfig, v: float) -> float:
    """d ln I / dV_cg at control-gate voltage ``v`` of the nominal cell of ``cfg``, averaged
    over the conducting levels of one cell (design data, not the chip's state)."""
    dev = cfg.device
    dev = dataclasses.replace(dev, read=dataclasses.replace(dev.read, v_cg_read_v=float(v)))
    cell = ArrayCell(dev, cfg.array.sense.clamp_gain)
    lv = dev.levels
    i_lv = enc_mod.level_currents(np.arange(1, lv.levels_per_cell), lv)
    vth = cell.vth_for_current(i_lv)
    h = 1e-3

    def cur(vg):
        if cell.split:
            return cell.current(vth, v_cg=vg)
        return cell.current(vth, v_wl=vg, v_cg=vg)

    return float(np.mean(np.log(cur(v + h) / cur(v - h)) / (2 * h)))


def _dlni_dvcg(arr) -> float:
    """:func:`_dlni_dvcg_cfg` at a simulated array's present read bias."""
    return _dlni_dvcg_cfg(arr.cfg, arr.cfg.device.read.v_cg_read_v)


# ------------------------------------------------------------------ the steps ----
def _tiles(chip):
    for layer in chip.layers.values():
        if layer.analog:
            for ti, tile in enumerate(layer.tiles):
                yield layer, ti, tile


def adjust_read_bias(chip, state: CompensationState, stream) -> CompensationCost:
    """Word-line temperature tracking (open loop) and/or adaptive read voltage (closed loop
    on the reference columns), per tile; the tile's ADC full scale follows the current."""
    backend = chip.backend
    cfg = chip.cfg
    c = cfg.compensation
    cost = CompensationCost("read_bias")
    shifts = {}
    for layer, ti, tile in _tiles(chip):
        ref = state.references[(layer.name, ti)]["knowledge"]
        v0 = cfg.device.read.v_cg_read_v
        v = v0
        if c.wl_temperature_tracking:
            v += c.wl_tempco_v_per_k * (cfg.device.read.temperature_k - cfg.mapping.program_temperature_k)
        g_before = _reference_gain(backend, ref, stream, c.probe_patterns, cost)
        if v != v0:
            backend.set_read_voltage(ref.tile_id, v)
        if c.adaptive_read_voltage:
            slope = _dlni_dvcg_cfg(ref.cfg, backend.calibration(ref.tile_id).v_cg_read_v)
            for _ in range(c.read_voltage_iterations):
                g = _reference_gain(backend, ref, stream, c.probe_patterns, cost)
                v -= np.log(g) / slope
                backend.set_read_voltage(ref.tile_id, v)
        if v != v0:
            g_after = _reference_gain(backend, ref, stream, c.probe_patterns, cost)
            backend.set_read_voltage(tile.tile_id, v)
            cal = backend.calibration(tile.tile_id)
            if cal.full_scale_a is not None:  # the range follows the reference current
                backend.set_adc(tile.tile_id, cal.gain, cal.offset,
                                full_scale_a=cal.full_scale_a * g_after / g_before)
        shifts[f"{layer.name}/{ti}"] = float(v - v0)
    state.log["read_voltage_shift_v"] = shifts
    return cost


def screen_cells(chip, state: CompensationState, stream) -> CompensationCost:
    """Find and re-program cells that leak far more than their level allows (the
    fast-leaking retention tail): every row of a tile is read alone (all columns in
    parallel, one cycle with the input's lowest bit); a cell whose code exceeds
    ``screen_factor`` x its level's nominal code (and 3 LSB above it) is re-tuned to its target
    V_th at the present read bias (modelled as exact placement; cost: a full tuning sequence)."""
    backend = chip.backend
    c = chip.cfg.compensation
    cost = CompensationCost("cell_screen")
    found = 0
    for layer, ti, tile in _tiles(chip):
        know = _weight_tile(layer, tile)
        _check_scheme(know.cfg)
        n = tile.row_stop - tile.row_start
        x = np.eye(n, dtype=np.int64)  # row r alone, input code 1: only the first cycle drives
        rd = backend.probe(tile.tile_id, stream, x=x)
        codes, exp = rd.codes, rd.expected_lsb
        cal = backend.calibration(tile.tile_id)
        q = rd.charge_c * cal.t_read_s  # one driven cycle per row is what the screen needs
        cost.reads += n
        cost.conversions += n * codes.shape[1]
        cost.bitline_charge_c += q
        cost.energy_j += q * know.cfg.device.read.v_bl_read_v
        cost.time_s += n * cal.t_read_s
        first = codes[::cal.cycles]  # (rows, H) the cycle with the row on
        e1 = exp[::cal.cycles]
        gain = cal.gain[cal.channel_adc]
        bad = (first > c.screen_factor * e1 * gain[None, :]) & (first > e1 * gain[None, :] + 3)
        if not bad.any():
            continue
        rows, chans = np.nonzero(bad)
        cols = know.layout.pos[chans]
        found += rows.size
        rep = backend.retune_cells(tile.tile_id, rows, cols)
        cost.program_time_s += rep.program_time_s
        cost.program_energy_j += rep.program_energy_j
    cost.time_s += cost.program_time_s
    cost.energy_j += cost.program_energy_j
    state.log["cells_reprogrammed"] = found
    return cost


def correct_gain(chip, state: CompensationState, stream) -> CompensationCost:
    """Ratiometric (reference-column) gain per tile, then per-channel gain/offset trim."""
    backend = chip.backend
    c = chip.cfg.compensation
    cost = CompensationCost(f"gain_{c.gain_correction}")
    gains, fits, fallbacks, offset_only = {}, [], 0, 0
    for layer, ti, tile in _tiles(chip):
        know = _weight_tile(layer, tile)
        _check_scheme(know.cfg)
        cal = backend.calibration(tile.tile_id)
        if cal.step_a is None:
            raise InputError("chip", "ADC ranges not set",
                             "norsim.mapping.engine.calibrate(chip, x_cal) before compensation")
        ref = state.references[(layer.name, ti)]["knowledge"]
        g = _reference_gain(backend, ref, stream, c.probe_patterns, cost)
        gains[f"{layer.name}/{ti}"] = g
        idx = cal.channel_adc  # every conversion channel gets its own trimmable ADC entry
        cal = backend.set_adc(tile.tile_id, cal.gain[idx] / g, cal.offset[idx].copy(),
                              full_scale_a=cal.full_scale_a / g, per_channel=True)
        if c.gain_correction != "per_column":
            continue
        # test patterns at two densities sized so the nominal column current sits well
        # inside the range; clipped reads are discarded by the fit
        e_all = know.nominal_currents.sum(axis=0).max()
        rows_used = tile.row_stop - tile.row_start
        d0 = float(np.clip(0.5 * cal.full_scale_a / max(e_all, 1e-30), 1.0 / rows_used, 1.0))
        rd = backend.probe(tile.tile_id, stream, patterns=PatternSpec(c.probe_patterns, (d0, d0 / 3)))
        codes, exp = rd.codes, rd.expected_lsb
        cost.add_reads(cal, rd.x.shape[0], codes.shape[1], rd.charge_c,
                       know.cfg.device.read.v_bl_read_v)
        gain, off = cal.gain.copy(), cal.offset.copy()
        hi = cal.usable_hi
        for h in range(codes.shape[1]):
            fit = _fit(codes[:, h], exp[:, h], cal.lo, hi[h], gain_bounds=CHANNEL_GAIN_BOUNDS)
            if fit is None:
                oh = _fit_offset(codes[:, h], exp[:, h], cal.lo, hi[h])
                if oh is None:
                    fallbacks += 1
                else:
                    offset_only += 1
                    off[h] = off[h] - oh
                continue
            gh, oh = fit
            fits.append(gh)
            gain[h] = gain[h] / gh
            off[h] = (off[h] - oh) / gh
        backend.set_adc(tile.tile_id, gain, off)
    state.log["reference_gain"] = gains
    if fits:
        state.log["channel_gain_quantiles"] = np.quantile(fits, [0.05, 0.5, 0.95]).tolist()
    state.log["channels_offset_only"] = offset_only
    state.log["channels_without_fit"] = fallbacks
    return cost


class AccumulatorAffine:
    """``rint(a acc + b)`` per output channel: the re-calibrated requantisation affine."""

    def __init__(self, a: np.ndarray, b: np.ndarray):
        self.a = np.asarray(a, dtype=np.float64)
        self.b = np.asarray(b, dtype=np.float64)

    def __call__(self, acc: np.ndarray) -> np.ndarray:
        return np.rint(acc * self.a[None, :] + self.b[None, :]).astype(np.int64)


def recalibrate_activations(chip, images: np.ndarray) -> CompensationCost:
    """Re-fit each analog layer's accumulator affine on a calibration batch run on the chip.

    The targets are statistics the deployer stores with the model: the per-channel mean and
    spread of the integer model's accumulators on the same calibration images. Layers are
    fitted in graph order within one pass, so each layer sees the corrected earlier layers.
    """
    from norsim.mapping import engine
    from norsim.mapping import reference as ref

    backend = chip.backend
    c = chip.cfg.compensation
    model = chip.model
    x = ref.input_codes(model, images)
    targets = {}

    def ref_hook(cols, node):
        acc = ref.integer_matmul(cols, node)
        a = acc.astype(np.float64)
        targets[node.name] = (a.mean(axis=0), a.var(axis=0))
        return acc

    ref.run_reference(model, x, matmul=ref_hook)
    stream = (_STREAM_RECAL,)
    cost = CompensationCost("activation_recalibration", images=int(x.shape[0]))
    before = {(ln, i): backend.events(t.tile_id).get("read_cycles", 0)
              for ln, L in chip.layers.items() for i, t in enumerate(L.tiles)}

    def hook(cols, node):
        layer = chip.layers[node.name]
        if not layer.analog:
            return ref.integer_matmul(cols, node)
        layer.acc_correction = None
        acc = engine._layer_matmul(layer, cols, backend, stream, False).astype(np.float64)
        mu_t, var_t = targets[node.name]
        mu_c, var_c = acc.mean(axis=0), acc.var(axis=0)
        if c.recalibration_scale == "channel":
            a = np.where(var_c > 0, np.sqrt(var_t / np.where(var_c > 0, var_c, 1.0)), 1.0)
        else:
            a = np.full(mu_c.shape, np.sqrt(var_t.sum() / var_c.sum()) if var_c.sum() > 0 else 1.0)
        b = mu_t - a * mu_c
        layer.acc_correction = AccumulatorAffine(a, b)
        return layer.acc_correction(acc)

    ref.run_reference(model, x, matmul=hook)
    backend.release(stream)
    for ln, L in chip.layers.items():
        for i, t in enumerate(L.tiles):
            cyc = backend.events(t.tile_id).get("read_cycles", 0) - before[(ln, i)]
            cal = backend.calibration(t.tile_id)
            cost.reads += cyc
            cost.conversions += cyc * cal.pos.size
            cost.time_s += cyc * cal.t_read_s
    return cost


def compensate(chip, calib_images: np.ndarray | None = None) -> CompensationState:
    """Run the enabled compensation steps on a mapped chip whose ADC ranges are set
    (``engine.calibrate``), through its back-end. Returns the state (also
    ``chip.compensation``)."""
    cfg = chip.cfg
    c = cfg.compensation
    if not chip.calibrated:
        raise InputError("chip", "not calibrated",
                         "norsim.mapping.engine.calibrate(chip, x_cal) before compensation")
    state = attach_references(chip)
    if not c.enabled:
        return state
    stream = (_STREAM_PROBE,)
    if c.adaptive_read_voltage or c.wl_temperature_tracking:
        state.costs.append(adjust_read_bias(chip, state, stream))
    if c.cell_screen:
        state.costs.append(screen_cells(chip, state, stream))
    if c.gain_correction != "off":
        state.costs.append(correct_gain(chip, state, stream))
    chip.backend.release(stream)
    if c.activation_recalibration:
        if calib_images is None:
            raise InputError("calib_images", None, "calibration images for the activation "
                             "re-calibration")
        state.costs.append(recalibrate_activations(chip, calib_images[:c.recalibration_images]))
    return state


def prepare_chip(model, cfg: SimConfig, calib_images: np.ndarray, backend=None):
    """Map (with refresh taken into account) onto ``backend`` (default: a new ``sim``
    back-end), set ADC ranges, compensate when enabled."""
    from norsim.mapping import engine, mapper

    eff, n_refresh = effective_config(cfg)
    chip = mapper.map_model(model, eff, backend=backend)
    chip.cfg = cfg if n_refresh == 0 else eff
    engine.calibrate(chip, calib_images[:cfg.mapping.calibration_images])
    if cfg.compensation.enabled:
        state = compensate(chip, calib_images)
        if n_refresh:
            state.costs.append(refresh_cost(chip, n_refresh))
        state.log["refreshes"] = n_refresh
    return chip
