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
from norsim.array.kernels import P_SHOT, bitplanes, readout
from norsim.array.periphery import readout_params
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

    def add_reads(self, arr, n_vectors: int, n_channels: int, charge_c: float) -> None:
        cyc = n_vectors * arr.cycles
        self.reads += cyc
        self.conversions += cyc * n_channels
        q = float(charge_c) * arr.t_read_s  # summed currents x read time
        self.bitline_charge_c += q
        self.energy_j += q * arr.cfg.device.read.v_bl_read_v
        self.time_s += cyc * arr.t_read_s

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
def _check_supported(arr) -> None:
    if not arr.bitserial:
        raise ConfigError("array.encoding.input_scheme", arr.scheme,
                          "'bit_serial' for on-chip compensation (test patterns are read as "
                          "bit-planes)")


def nominal_cell_currents(arr) -> np.ndarray:
    """The current each cell should conduct at its programmed level (controller knowledge)."""
    return enc_mod.level_currents(arr.layout.levels, arr.cfg.device.levels)


def probe(arr, x: np.ndarray, rng: np.random.Generator):
    """Read test patterns ``x`` (B, rows) through the tile's periphery, channel by channel.

    Returns ``(codes, expected_lsb, charge)``: the ADC code of every channel at every input
    cycle (B*cycles, H), the code an exact chip would give (nominal currents of the
    programmed levels / step, without leakage), and the bit-line charge of the reads.
    """
    _check_supported(arr)
    x = enc_mod.check_codes(x, arr.rows_used, arr.nbits_in, "probe pattern")
    cur, leak, _ = arr._readings(x, rng)
    ch = arr._channels
    h = ch["pos"].size
    chans = {"pos": ch["pos"], "neg": ch["neg"], "tgt": np.arange(h, dtype=np.int64),
             "coef": np.ones(h), "adc": ch["adc"]}
    par = readout_params(arr.cfg.array, arr.adc, arr.t_read_s, arr.temperature_k)
    par[P_SHOT] = arr._shot_ratio
    key = int(rng.integers(0, 2**63))
    codes, charge = readout(cur, leak, 1, chans, arr.adc.gain, arr.adc.offset, par, key=key,
                            n_out_cols=h, vleak=arr._vleak)
    planes = bitplanes(x, arr.nbits_in).astype(np.float64)
    e_col = planes @ nominal_cell_currents(arr)
    expected = e_col[:, ch["pos"]]
    if np.all(ch["neg"] >= 0):
        expected = expected - e_col[:, ch["neg"]]
    return codes, expected / arr.adc.step_a, float(np.sum(charge))


def _patterns(rng, n: int, rows: int, densities, xmax: int) -> np.ndarray:
    d = np.asarray(densities, dtype=np.float64)[np.arange(n) % len(densities)]
    on = rng.random((n, rows)) < d[:, None]
    on[np.arange(n), rng.integers(0, rows, n)] = True  # never an empty pattern
    return on.astype(np.int64) * xmax


def _usable_hi(arr) -> np.ndarray:
    """Per channel, the code above which a read may be clipped by the ADC or, before it, by
    the integrator (design data: C_int V_swing / t_read), with a 10% guard band."""
    s = arr.cfg.array.sense
    isat = s.integrator_cap_f * s.integrator_swing_v / arr.t_read_s
    gain = np.asarray(arr.adc.gain, dtype=np.float64)[arr._channels["adc"]]
    return 0.9 * np.minimum(arr.adc.hi, isat * gain / arr.adc.step_a)


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


def _per_channel_adc(arr) -> None:
    """Give every conversion channel its own ADC gain/offset entry (trimmable per channel)."""
    ch = arr._channels
    idx = ch["adc"]
    if idx.size and np.array_equal(idx, np.arange(idx.size)) and arr.adc.gain.size == idx.size:
        return
    arr.adc.gain = np.asarray(arr.adc.gain, dtype=np.float64)[idx].copy()
    arr.adc.offset = np.asarray(arr.adc.offset, dtype=np.float64)[idx].copy()
    ch["adc"] = np.arange(idx.size, dtype=np.int64)


# ------------------------------------------------------------- reference columns ----
def _reference_weights(rows: int, enc, k: int) -> np.ndarray:
    lim = enc_mod.weight_limit(enc)
    levels = np.maximum(1, np.rint((np.arange(k) + 1) * lim / k)).astype(np.int64)
    return np.tile(levels[None, :], (rows, 1))


def attach_references(chip) -> CompensationState:
    """Program the reference columns of every analog tile (idempotent); ``chip.compensation``."""
    from norsim.mapping.mapper import _program_tile

    state = getattr(chip, "compensation", None)
    if state is not None and state.references:
        return state
    state = state or CompensationState()
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
            w_ref = _reference_weights(tile.array.rows_used, enc, ccfg.reference_columns)
            rtile = _program_tile(w_ref, rcfg, cfg.rng(_STREAM_REF, li, ti))
            arr = rtile.array
            _check_supported(arr)
            # the reference ADC's range: the nominal current of the top reference column
            fs = float(nominal_cell_currents(arr).sum(axis=0).max())
            arr.adc.set_range(fs, arr.unit_a, rcfg.array.adc.step_integer_units)
            state.references[(layer.name, ti)] = {
                "array": arr, "program_time_s": rtile.program_time_s,
                "program_energy_j": rtile.program_energy_j}
            cost.program_time_s += rtile.program_time_s
            cost.program_energy_j += rtile.program_energy_j
            cost.extra_cells += arr.rows_used * arr.phys_cols
    cost.time_s, cost.energy_j = cost.program_time_s, cost.program_energy_j
    state.costs.append(cost)
    chip.compensation = state
    return state


def reference_gain(ref_arr, rng: np.random.Generator, n_patterns: int,
                   cost: CompensationCost | None = None) -> float:
    """Gain of the reference columns (codes / nominal codes) from patterns at several row
    densities, so a drifted (larger or smaller) current still lands inside the ADC range."""
    x = _patterns(rng, max(n_patterns, 5), ref_arr.rows_used,
                  (1.0, 0.5, 0.25, 0.125, 0.0625), ref_arr.xmax)
    codes, exp, charge = probe(ref_arr, x, rng)
    if cost is not None:
        cost.add_reads(ref_arr, x.shape[0], codes.shape[1], charge)
    pos = ref_arr._channels["coef"] > 0
    hi = _usable_hi(ref_arr)[pos][None, :]
    c, e = codes[:, pos], exp[:, pos]
    keep = c < hi
    fit = _fit(c[keep], e[keep], ref_arr.adc.lo, ref_arr.adc.hi)
    if fit is None:
        raise InputError("reference columns", "no unclipped reads",
                         "reference readings inside the ADC range at some test density")
    return fit[0]


# ------------------------------------------------------------------ read bias ----
def set_read_voltage(arr, v_cg: float) -> None:
    """Re-bias a programmed tile's control gates at ``v_cg`` (V_th map, per-cell factors,
    RTN traps and ADC draws unchanged; currents, trap deltas and noise recomputed)."""
    _check_supported(arr)
    dev = arr.cfg.device
    dev = dataclasses.replace(dev, read=dataclasses.replace(dev.read, v_cg_read_v=float(v_cg)))
    arr.cfg = dataclasses.replace(arr.cfg, device=dev)
    arr.cell = ArrayCell(dev, arr.cfg.array.sense.clamp_gain)
    arr.i_on = arr.cell.on_current(arr.vth) * arr.current_scale
    arr.i_off = arr.cell.off_current(arr.vth) * arr.current_scale
    arr._d_tab = arr._trap_deltas()
    arr._cell_noise()


def _dlni_dvcg(arr) -> float:
    """d ln I / dV_cg of the nominal cell, averaged over the conducting levels of one cell
    (design data, not the chip's state)."""
    lv = arr.cfg.device.levels
    i_lv = enc_mod.level_currents(np.arange(1, lv.levels_per_cell), lv)
    vth = arr.cell.vth_for_current(i_lv)
    h = 1e-3
    v = arr.cfg.device.read.v_cg_read_v

    def cur(vg):
        if arr.cell.split:
            return arr.cell.current(vth, v_cg=vg)
        return arr.cell.current(vth, v_wl=vg, v_cg=vg)

    return float(np.mean(np.log(cur(v + h) / cur(v - h)) / (2 * h)))


# ------------------------------------------------------------------ the steps ----
def _tiles(chip):
    for layer in chip.layers.values():
        if layer.analog:
            for ti, tile in enumerate(layer.tiles):
                yield layer, ti, tile


def adjust_read_bias(chip, state: CompensationState, rng: np.random.Generator) -> CompensationCost:
    """Word-line temperature tracking (open loop) and/or adaptive read voltage (closed loop
    on the reference columns), per tile; the tile's ADC full scale follows the current."""
    cfg = chip.cfg
    c = cfg.compensation
    cost = CompensationCost("read_bias")
    shifts = {}
    for layer, ti, tile in _tiles(chip):
        ref = state.references[(layer.name, ti)]["array"]
        v0 = cfg.device.read.v_cg_read_v
        v = v0
        if c.wl_temperature_tracking:
            v += c.wl_tempco_v_per_k * (cfg.device.read.temperature_k - cfg.mapping.program_temperature_k)
        g_before = reference_gain(ref, rng, c.probe_patterns, cost)
        if v != v0:
            set_read_voltage(ref, v)
        if c.adaptive_read_voltage:
            slope = _dlni_dvcg(ref)
            for _ in range(c.read_voltage_iterations):
                g = reference_gain(ref, rng, c.probe_patterns, cost)
                v -= np.log(g) / slope
                set_read_voltage(ref, v)
        if v != v0:
            g_after = reference_gain(ref, rng, c.probe_patterns, cost)
            set_read_voltage(tile.array, v)
            a = tile.array
            if a.adc.full_scale_a is not None:  # the range follows the reference current
                a.adc.set_range(a.adc.full_scale_a * g_after / g_before, a.unit_a,
                                a.cfg.array.adc.step_integer_units)
        shifts[f"{layer.name}/{ti}"] = float(v - v0)
    state.log["read_voltage_shift_v"] = shifts
    return cost


def screen_cells(chip, state: CompensationState, rng: np.random.Generator) -> CompensationCost:
    """Find and re-program cells that leak far more than their level allows (the
    fast-leaking retention tail): every row of a tile is read alone (all columns in
    parallel, one cycle with the input's lowest bit); a cell whose code exceeds
    ``screen_factor`` x its level's nominal code (and 3 LSB above it) is re-tuned to its target
    V_th at the present read bias (modelled as exact placement; cost: a full tuning sequence)."""
    c = chip.cfg.compensation
    cost = CompensationCost("cell_screen")
    found = 0
    for layer, ti, tile in _tiles(chip):
        arr = tile.array
        _check_supported(arr)
        n = arr.rows_used
        x = np.eye(n, dtype=np.int64)  # row r alone, input code 1: only the first cycle drives
        codes, exp, charge = probe(arr, x, rng)
        q = charge * arr.t_read_s  # one driven cycle per row is what the screen needs
        cost.reads += n
        cost.conversions += n * codes.shape[1]
        cost.bitline_charge_c += q
        cost.energy_j += q * arr.cfg.device.read.v_bl_read_v
        cost.time_s += n * arr.t_read_s
        first = codes[::arr.cycles]  # (rows, H) the cycle with the row on
        e1 = exp[::arr.cycles]
        gain = np.asarray(arr.adc.gain, dtype=np.float64)[arr._channels["adc"]]
        bad = (first > c.screen_factor * e1 * gain[None, :]) & (first > e1 * gain[None, :] + 3)
        if not bad.any():
            continue
        rows, chans = np.nonzero(bad)
        cols = arr._channels["pos"][chans]
        found += rows.size
        vth = arr.vth.copy()
        scale = arr.current_scale.copy()
        i_target = nominal_cell_currents(arr)[rows, cols]
        vth[rows, cols] = arr.cell.vth_for_current(i_target)
        scale[rows, cols] = 1.0
        arr.vth = vth
        arr.vth.setflags(write=False)
        arr.current_scale = scale
        set_read_voltage(arr, arr.cfg.device.read.v_cg_read_v)
        pg = arr.cfg.device.programming
        per_cell_t = pg.tune_max_pulses * (pg.pulse_width_s + pg.verify_reads * pg.verify_time_s)
        cost.program_time_s += rows.size * per_cell_t
        cost.program_energy_j += (rows.size * pg.tune_max_pulses * pg.pulse_width_s
                                  * pg.program_current_a * pg.program_voltage_v / pg.pump_efficiency)
    cost.time_s += cost.program_time_s
    cost.energy_j += cost.program_energy_j
    state.log["cells_reprogrammed"] = found
    return cost


def correct_gain(chip, state: CompensationState, rng: np.random.Generator) -> CompensationCost:
    """Ratiometric (reference-column) gain per tile, then per-channel gain/offset trim."""
    c = chip.cfg.compensation
    cost = CompensationCost(f"gain_{c.gain_correction}")
    gains, fits, fallbacks, offset_only = {}, [], 0, 0
    for layer, ti, tile in _tiles(chip):
        arr = tile.array
        _check_supported(arr)
        if arr.adc.step_a is None:
            raise InputError("chip", "ADC ranges not set",
                             "norsim.mapping.engine.calibrate(chip, x_cal) before compensation")
        ref = state.references[(layer.name, ti)]["array"]
        g = reference_gain(ref, rng, c.probe_patterns, cost)
        gains[f"{layer.name}/{ti}"] = g
        _per_channel_adc(arr)
        arr.adc.gain = arr.adc.gain / g
        arr.adc.set_range(arr.adc.full_scale_a / g, arr.unit_a, arr.cfg.array.adc.step_integer_units)
        if c.gain_correction != "per_column":
            continue
        # test patterns at two densities sized so the nominal column current sits well
        # inside the range; clipped reads are discarded by the fit
        e_all = nominal_cell_currents(arr).sum(axis=0).max()
        d0 = float(np.clip(0.5 * arr.adc.full_scale_a / max(e_all, 1e-30), 1.0 / arr.rows_used, 1.0))
        x = _patterns(rng, c.probe_patterns, arr.rows_used, (d0, d0 / 3), arr.xmax)
        codes, exp, charge = probe(arr, x, rng)
        cost.add_reads(arr, x.shape[0], codes.shape[1], charge)
        gain, off = arr.adc.gain.copy(), arr.adc.offset.copy()
        hi = _usable_hi(arr)
        for h in range(codes.shape[1]):
            fit = _fit(codes[:, h], exp[:, h], arr.adc.lo, hi[h], gain_bounds=CHANNEL_GAIN_BOUNDS)
            if fit is None:
                oh = _fit_offset(codes[:, h], exp[:, h], arr.adc.lo, hi[h])
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
        arr.adc.gain, arr.adc.offset = gain, off
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
    rng = chip.cfg.rng(_STREAM_RECAL)
    cost = CompensationCost("activation_recalibration", images=int(x.shape[0]))
    before = {(ln, i): t.array.events.read_cycles
              for ln, L in chip.layers.items() for i, t in enumerate(L.tiles)}

    def hook(cols, node):
        layer = chip.layers[node.name]
        if not layer.analog:
            return ref.integer_matmul(cols, node)
        layer.acc_correction = None
        acc = engine._layer_matmul(layer, cols, rng, False).astype(np.float64)
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
    for ln, L in chip.layers.items():
        for i, t in enumerate(L.tiles):
            ev = t.array.events
            cyc = ev.read_cycles - before[(ln, i)]
            cost.reads += cyc
            cost.conversions += cyc * t.array._channels["pos"].size
            cost.time_s += cyc * t.array.t_read_s
    return cost


def compensate(chip, calib_images: np.ndarray | None = None) -> CompensationState:
    """Run the enabled compensation steps on a mapped chip whose ADC ranges are set
    (``engine.calibrate``). Returns the state (also ``chip.compensation``)."""
    cfg = chip.cfg
    c = cfg.compensation
    if not chip.calibrated:
        raise InputError("chip", "not calibrated",
                         "norsim.mapping.engine.calibrate(chip, x_cal) before compensation")
    state = attach_references(chip)
    if not c.enabled:
        return state
    rng = cfg.rng(_STREAM_PROBE)
    if c.adaptive_read_voltage or c.wl_temperature_tracking:
        state.costs.append(adjust_read_bias(chip, state, rng))
    if c.cell_screen:
        state.costs.append(screen_cells(chip, state, rng))
    if c.gain_correction != "off":
        state.costs.append(correct_gain(chip, state, rng))
    if c.activation_recalibration:
        if calib_images is None:
            raise InputError("calib_images", None, "calibration images for the activation "
                             "re-calibration")
        state.costs.append(recalibrate_activations(chip, calib_images[:c.recalibration_images]))
    return state


def prepare_chip(model, cfg: SimConfig, calib_images: np.ndarray):
    """Map (with refresh taken into account), set ADC ranges, compensate when enabled."""
    from norsim.mapping import engine, mapper

    eff, n_refresh = effective_config(cfg)
    chip = mapper.map_model(model, eff)
    chip.cfg = cfg if n_refresh == 0 else eff
    engine.calibrate(chip, calib_images[:cfg.mapping.calibration_images])
    if cfg.compensation.enabled:
        state = compensate(chip, calib_images)
        if n_refresh:
            state.costs.append(refresh_cost(chip, n_refresh))
        state.log["refreshes"] = n_refresh
    return chip
