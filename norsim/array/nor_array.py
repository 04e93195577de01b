"""One NOR-flash array (tile) with its periphery, in fast mode.

Contract for the mapper (see also docs/architecture.md)::

    arr = NorArray.from_weights(w_int, cfg, rng, vth_map=None)   # one tile
    arr.calibrate(x_cal)              # only for adc.range_mode = 'calibrated'
    y = arr.matmul(x_codes, rng)      # (B, rows) unsigned codes -> (B, cols) float64
    arr.events                        # ArrayEvents, accumulated

* ``w_int``: signed integer weights (rows_used x out_features) with
  |w| <= 2^(weight_bits-1) - 1, rows_used <= array.rows, and the encoded physical columns
  (``phys_cols_needed``) <= array.cols.
* ``x_codes``: unsigned integer codes in [0, 2^input_bits - 1], shape (B, rows_used) (or one
  vector (rows_used,)).
* the result is the estimated integer dot product ``x_codes @ w_int`` in units of
  weight code x input code, float64 (integral values when ``adc.step_integer_units``). An
  ideal chip (exact V_th targets, no noise or ADC errors, enough ADC bits and an exact
  range) returns exactly ``x_codes @ w_int`` -- through the full physics: V_th -> cell I-V
  at the read bias -> Kirchhoff column sums (with the leakage of unselected rows) ->
  integrator -> ADC -> digital subtraction and shift-add.
* every call draws its read noise from the ``numpy.random.Generator`` passed (or the
  array's own stream, spawned from the construction ``rng``, when none is passed); the same
  generator state gives bit-identical output.

Fast mode: the column currents of a batch are one BLAS product of the input drive (0/1
bit-planes for bit-serial, on-fractions for pulse-width, one-hot code planes for the
amplitude encodings) with the per-cell current matrix computed once per programmed tile;
RTN corrections are added by an exact event-driven kernel; the periphery (leakage,
integrator clipping, noise, ADC, subtraction, shift-add) is one fused numba kernel.
"""

from __future__ import annotations

import warnings

import numpy as np

from norsim.array import encodings as enc_mod
from norsim.array.cells import ArrayCell
from norsim.array.events import ArrayEvents
from norsim.array.kernels import bitplanes, readout, readout_numpy, wl_stats
from norsim.array.rtn_kernels import (add_corrections, rtn_apply_numpy, rtn_corrections,
                                      rtn_majority_base, rtn_plan, rtn_prepare)
from norsim.array.noise_read import make_rtn
from norsim.array.periphery import make_adc, readout_params
from norsim.array.fast_path import BitSerialFastPath
from norsim.array.readout_t import variance_ratio
from norsim.array.kernels import P_SHOT
from norsim.errors import DegenerateResultWarning, InputError

#: a V_th map value further than this outside [vth_erased_v, vth_max_v] is not a V_th
VTH_MAP_MARGIN_V = 5.0
#: a bit line saturates when the integrator clamps more than this fraction of its readings;
#: a tile warns when more than SATURATION_WARN_COLUMNS of its bit lines saturate (one
#: defective column among a hundred is the repair's business, a shifted map is not)
SATURATION_WARN_FRACTION = 0.01
SATURATION_WARN_COLUMNS = 0.05
#: the calibrated full scale clamped to the physical one warns when more than this fraction
#: of the calibration readings lies beyond it (a few stuck-on cells are what the clamp is for)
FULL_SCALE_WARN_FRACTION = 0.05
#: input vectors of the first call compared with the exact product for degenerate outputs
OUTPUT_CHECK_VECTORS = 256


class NorArray(BitSerialFastPath):
    """A programmed NOR array: V_th map, weight layout, read bias and periphery."""

    __array_ufunc__ = None  # numpy defers ``x @ arr`` to NorArray.__rmatmul__

    def __init__(self, cfg, layout: enc_mod.WeightLayout, vth: np.ndarray,
                 rng: np.random.Generator, *, current_scale: np.ndarray | None = None,
                 precision: str = "float32"):
        acfg = cfg.array
        enc = acfg.encoding
        vth = np.array(vth, dtype=np.float64)
        if vth.shape != layout.levels.shape:
            raise InputError("vth_map", f"array of shape {vth.shape}",
                             f"shape {layout.levels.shape} (rows used x physical columns)")
        if not np.all(np.isfinite(vth)):
            raise InputError("vth_map", vth[~np.isfinite(vth)].ravel()[0], "finite V_th values (V)")
        c = cfg.device.cell
        lo = min(c.vth_erased_v, 0.0) - VTH_MAP_MARGIN_V
        hi = c.vth_max_v + VTH_MAP_MARGIN_V
        if vth.size and (vth.min() < lo or vth.max() > hi):
            r, k = np.unravel_index(int(np.argmax((vth < lo) | (vth > hi))), vth.shape)
            raise InputError(f"vth_map[{r}, {k}]", f"{vth[r, k]:.6g} V",
                             f"a V_th in [{lo:.3g}, {hi:.3g}] V (device.cell.vth_erased_v and "
                             f"vth_max_v widened by {VTH_MAP_MARGIN_V:g} V)")
        if precision not in ("float32", "float64"):
            raise InputError("precision", precision, "'float32' or 'float64'")
        if not isinstance(rng, np.random.Generator):
            raise InputError("rng", type(rng).__name__, "a numpy.random.Generator")
        self.cfg = cfg
        self.layout = layout
        self.rows_used, self.phys_cols = vth.shape
        self.n_out = layout.n_logical
        self.vth = vth
        self.vth.setflags(write=False)
        self.dtype = np.float32 if precision == "float32" else np.float64
        self.cell = ArrayCell(cfg.device, acfg.sense.clamp_gain)
        r = cfg.device.read
        self.t_read_s = r.t_read_s
        self.temperature_k = r.temperature_k
        self.scheme = enc.input_scheme
        self.bitserial = self.scheme == "bit_serial"
        self.nbits_in = enc.input_bits
        self.xmax = (1 << enc.input_bits) - 1
        self.cycles = self.nbits_in if self.bitserial else 1
        i_unit = cfg.device.levels.i_unit_a
        self.unit_a = i_unit if self.bitserial else i_unit / self.xmax
        self._rng = rng.spawn(1)[0]

        scale = np.ones_like(vth) if current_scale is None else self._check_scale(current_scale)
        self.current_scale = scale
        self.i_on = self.cell.on_current(vth) * scale
        self.i_off = self.cell.off_current(vth) * scale

        # input-encoding tables
        self._fractions = None
        self._tables = None
        if self.scheme == "pulse_width":
            self._fractions = enc_mod.pulse_width_fractions(
                self.cell, float(np.median(vth)), enc, acfg.dac, self.t_read_s)
        elif self.scheme in ("multi_level", "current_mirror"):
            amps = (enc_mod.multi_level_amplitudes(self.cell, enc, acfg.dac)
                    if self.scheme == "multi_level" else enc_mod.mirror_amplitudes(self.cell, enc))
            self._amplitudes = amps
            self._tables = enc_mod.level_tables(self.cell, vth, amps) * scale[None]

        # RTN traps and the current change of each trapped cell per drive index
        self.traps = make_rtn(cfg.device, vth, self.cycles * self.t_read_s, rng,
                              acfg.noise.rtn_enabled)
        self._d_tab = self._trap_deltas()
        # the walk skips traps of zero amplitude (empty trap sites, device.noise.
        # rtn_trap_probability): frozen (switching probabilities 0) they change no current,
        # so every output is bit-identical to walking them, at about half the cost
        t = self.traps
        amp0 = t.amp_v == 0
        self._p01 = np.where(amp0, 0.0, t.p01)
        self._p10 = np.where(amp0, 0.0, t.p10)
        self._rtn_order = rtn_plan(t.col, ~amp0.all(axis=1)) if t.n else None
        self._walk_plan()
        self._cell_noise()

        # ADC
        self.adc = make_adc(acfg, layout.pos.size, enc.subtraction == "analog", self.temperature_k, rng)
        self._channels = layout.channels()
        self._channels["adc"] = (np.arange(layout.pos.size) // acfg.adc.columns_per_adc).astype(np.int64)
        if acfg.adc.range_mode == "physical":
            self.adc.set_range(self.physical_full_scale(), self.unit_a, acfg.adc.step_integer_units)
        self.events = ArrayEvents(acfg.rows, self.phys_cols, t_read_s=self.t_read_s)
        self._checked_saturation = False
        self._checked_outputs = False
        self.w_int = None  # the integer weights, when built from them (degenerate-output check)

    # ------------------------------------------------------------------ construction ----
    @classmethod
    def from_weights(cls, w_int, cfg, rng: np.random.Generator, vth_map=None, *,
                     current_scale=None, precision: str = "float32") -> "NorArray":
        """Program one tile with the signed integer weights ``w_int`` (rows_used x out).

        ``vth_map`` (rows_used x physical columns): any V_th map (programmed, measured, with
        variation); default: ideal placement, each cell at the V_th giving its level's
        target current ``i_off_a + L i_unit_a`` (``device.levels``) at the nominal read bias.
        ``current_scale``: optional per-cell multiplicative current factor (e.g. beta
        variation). Physical columns are laid out as ``encodings.encode_weights`` says.
        """
        acfg = cfg.array
        layout = enc_mod.encode_weights(w_int, acfg.encoding)
        if layout.levels.shape[0] > acfg.rows:
            raise InputError("w_int", f"{layout.levels.shape[0]} rows",
                             f"at most array.rows = {acfg.rows} rows per tile")
        if layout.phys_cols > acfg.cols:
            raise InputError("w_int", f"{layout.n_logical} output columns ({layout.phys_cols} physical)",
                             f"at most array.cols = {acfg.cols} physical columns per tile with "
                             f"weight_scheme '{acfg.encoding.weight_scheme}'")
        if vth_map is None:
            cell = ArrayCell(cfg.device, acfg.sense.clamp_gain)
            targets = enc_mod.level_currents(np.arange(layout.max_level + 1), cfg.device.levels)
            vth_levels = cell.vth_for_current(targets)
            vth_map = vth_levels[layout.levels]
        arr = cls(cfg, layout, vth_map, rng, current_scale=current_scale, precision=precision)
        arr.w_int = np.asarray(w_int, dtype=np.int64)
        return arr

    def _check_scale(self, s):
        s = np.asarray(s, dtype=np.float64)
        if s.shape != self.vth.shape:
            raise InputError("current_scale", f"array of shape {s.shape}", f"shape {self.vth.shape}")
        if not np.all(np.isfinite(s)) or np.any(s < 0):
            raise InputError("current_scale", s[~(np.isfinite(s) & (s >= 0))].ravel()[0],
                             "finite factors >= 0")
        return s

    def _trap_deltas(self) -> np.ndarray:
        """(n, 2^T, drive) current change of each trapped cell per joint trap state."""
        t = self.traps
        ndrive = 2 if self.bitserial else self.xmax + 1
        if t.n == 0:
            self._d_on = self._d_off = np.zeros((0, 1))
            return np.zeros((0, 1, ndrive))
        v0 = self.vth[t.row, t.col][:, None]
        v1 = v0 + t.joint_shifts()  # (n, J)
        sc = self.current_scale[t.row, t.col][:, None]
        d_on = (self.cell.on_current(v1) - self.cell.on_current(v0)) * sc
        d_off = (self.cell.off_current(v1) - self.cell.off_current(v0)) * sc
        self._d_on, self._d_off = d_on, d_off
        if self.bitserial:
            return np.stack([d_off, d_on], -1)
        if self.scheme == "pulse_width":
            f = self._fractions[None, None, :]
            return f * d_on[..., None] + (1 - f) * d_off[..., None]
        amps = self._amplitudes
        t1 = enc_mod.level_tables(self.cell, v1, amps)  # (codes, n, J)
        t0 = enc_mod.level_tables(self.cell, v0, amps)  # (codes, n, 1)
        return np.moveaxis(t1 - t0, 0, -1) * sc[..., None]

    def _cell_noise(self) -> None:
        """Per-cell read-noise variances (device.noise) and how the column sums them."""
        self._var = None  # per-cell variance matrix (or tables) summed by BLAS
        self._vleak = None
        self._vratio = self._vbound = None
        self._vmode_cache = (None, 1)
        self._shot_ratio = 0.0
        if not self.cfg.array.noise.shot_enabled:
            return
        from norsim.device.noise import read_noise_sigma_a

        dev = self.cfg.device
        model = self.cell.model

        def var(i):
            return read_noise_sigma_a(i, model, dev.noise, self.temperature_k, self.t_read_s) ** 2

        if self._tables is not None:
            vt = var(self._tables)
            self._var = vt
            self._vleak = vt[0].sum(axis=0)
            return
        v_on, v_off = var(self.i_on), var(self.i_off)
        self._var = v_on - v_off
        self._vleak = v_off.sum(axis=0)
        # bounded-ratio variance (array.noise.cell_variance): ratio and worst-case error per
        # column, widened by what the traps' states can move the current the ratio scales
        self._vratio, bound = variance_ratio(self.i_on - self.i_off, self._var)
        t = self.traps
        if t.n:
            dmax = np.abs(self._d_on - self._d_off).max(axis=1)
            bound = bound + np.abs(self._vratio) * np.bincount(
                t.col, weights=dmax, minlength=self.phys_cols)
        self._vbound = bound
        self._vmode_cache = (None, 1)

    # ------------------------------------------------------------------ properties ----
    @property
    def shape(self) -> tuple[int, int]:
        """(rows used, logical output columns): the integer matrix this tile holds."""
        return (self.rows_used, self.n_out)

    def physical_full_scale(self) -> float:
        """Largest reading a conversion can see: all array rows on at the top level (A)."""
        lv = self.cfg.device.levels
        top = lv.i_off_a + self.layout.max_level * lv.i_unit_a
        if self.adc.signed:
            return self.cfg.array.rows * (top - lv.i_off_a)
        return self.cfg.array.rows * top

    def saturation_current(self) -> float:
        """Largest bit-line current the integrator holds over one read (A): C_int x swing /
        t_read; a larger current reads as this clamp."""
        s = self.cfg.array.sense
        return s.integrator_cap_f * s.integrator_swing_v / self.t_read_s

    def _check_saturation(self, tot: np.ndarray, where: str) -> None:
        """Warn (once per array) when bit lines saturate: ``tot`` (readings, physical
        columns) are the bit-line currents with leakage (A)."""
        self._checked_saturation = True
        if tot.size == 0:
            return
        isat = self.saturation_current()
        frac = (tot > isat).mean(axis=0)
        bad = frac > SATURATION_WARN_FRACTION
        if bad.mean() <= SATURATION_WARN_COLUMNS:
            return
        warnings.warn(
            f"{where}: {int(bad.sum())} of {tot.shape[1]} bit lines exceed the integrator's "
            f"saturation current {isat * 1e6:.4g} uA (array.sense: C_int x swing / t_read) on "
            f"up to {100 * float(frac.max()):.1f} % of readings, largest "
            f"{float(tot.max()) * 1e6:.4g} uA: a saturated bit line reads the clamp, so a "
            f"weight pair saturated on both sides reads 0; the V_th map passes more current "
            f"than the levels allow (check the map, the read bias or array.sense)",
            DegenerateResultWarning, stacklevel=3)

    def _check_outputs(self, x: np.ndarray, out: np.ndarray) -> None:
        """Warn (first call only) when the outputs are all zero or constant over the batch
        while the exact product ``x @ w_int`` is not."""
        if self._checked_outputs or self.w_int is None:
            return
        self._checked_outputs = True
        x, out = x[:OUTPUT_CHECK_VECTORS], out[:OUTPUT_CHECK_VECTORS]
        exact = x.astype(np.int64) @ self.w_int
        if exact.any() and not out.any():
            what = f"all {out.size} outputs are exactly 0 (the exact product is not)"
        elif x.shape[0] > 1 and np.ptp(exact, axis=0).any() and not np.ptp(out, axis=0).any():
            what = (f"every output column is constant over {x.shape[0]} input vectors "
                    f"(values {float(out.min()):.4g} to {float(out.max()):.4g}; the exact "
                    f"product varies over {int(exact.min())} to {int(exact.max())})")
        else:
            return
        warnings.warn(f"NorArray {self.rows_used} x {self.n_out}: {what} for varied non-zero "
                      "inputs (saturated bit lines, an ADC range far too wide, or a V_th map "
                      "that turns every cell off)", DegenerateResultWarning, stacklevel=3)

    # ------------------------------------------------------------------ the analog path ----
    def _rtn_base(self, nvec: int):
        """Joint trap state of each trapped cell folded into the current matrix for a batch
        of ``nvec`` multiplies (the one it is expected to occupy most; None without traps)."""
        t = self.traps
        return rtn_majority_base(t.state, self._p01, self._p10, nvec) if t.n else None

    def _base(self, j0=None, with_var=True, d_on=None, d_off=None):
        """Current (and, ``with_var``, cell-variance) matrix and leakage with the traps' joint
        states ``j0`` (default: the present ones) folded in (their current changes ``d_on``,
        ``d_off`` (n, J): default the exact ones; the approximate RTN tier passes its own)."""
        t = self.traps
        d_on = self._d_on if d_on is None else d_on
        d_off = self._d_off if d_off is None else d_off
        if t.n and j0 is None:
            j0 = t.joint_state()
        ii = np.arange(t.n)
        if self._tables is None:
            g = self.i_on - self.i_off
            leak_cells = self.i_off
            if t.n:
                g = g.copy()
                leak_cells = leak_cells.copy()
                g[t.row, t.col] += d_on[ii, j0] - d_off[ii, j0]
                leak_cells[t.row, t.col] += d_off[ii, j0]
            if self._var is not None and with_var:
                g = np.concatenate([g, self._var], axis=1)
            return np.ascontiguousarray(g, dtype=self.dtype), leak_cells.sum(axis=0)
        tab = self._tables
        if t.n:
            tab = tab.copy()
            for c in range(tab.shape[0]):
                tab[c][t.row, t.col] += self._d_tab[ii, j0, c]
        if self._var is not None:
            tab = np.concatenate([tab, self._var], axis=2)
        return tab, tab[0][:, :self.phys_cols].sum(axis=0)

    def _drive_product(self, x: np.ndarray, g):
        """Column currents (B*cycles, P or 2P) of codes ``x`` through the base matrix ``g``."""
        if self.bitserial:
            cur = bitplanes(x, self.nbits_in) @ g if self.dtype == np.float32 else \
                bitplanes(x, self.nbits_in).astype(self.dtype) @ g
            if self.ir_surrogate is not None:  # per-vector IR drop (mapping.ir_drop 'network')
                cur[:, :self.phys_cols] += self.ir_surrogate.delta(
                    bitplanes(x, self.nbits_in), cur[:, :self.phys_cols]).astype(cur.dtype)
        elif self.scheme == "pulse_width":
            cur = self._fractions[x].astype(self.dtype) @ g
        else:
            tab = g
            cur = np.zeros((x.shape[0], tab.shape[2]), dtype=self.dtype)
            base = tab[0]
            for c in range(1, tab.shape[0]):
                m = x == c
                if m.any():
                    cur += m.astype(self.dtype) @ (tab[c] - base).astype(self.dtype)
        return np.ascontiguousarray(cur)

    def _walk_plan(self):
        """The RTN walk's per-cell tables in walk order (rtn_prepare), rebuilt whenever the
        trap deltas are (e.g. compensation.set_read_voltage)."""
        if self._rtn_order is None:
            self._rtn_plan = None
        else:
            self._rtn_plan = rtn_prepare(self._rtn_order, self.traps.row, self._d_tab,
                                         self._p01, self._p10)
        self._walk_src = self._d_tab
        return self._rtn_plan

    def _rtn(self, x, rng, j0, reference=False, cur=None):
        """Draw the batch's RTN key and walk the traps relative to the folded joint states
        ``j0``: (columns, corrections) or, with ``reference``, the NumPy twin applied to
        ``cur`` in place (returns None)."""
        t = self.traps
        key = int(rng.integers(0, 2**63))
        args = (x, self.cycles, self.bitserial, t.row, t.col, self._d_tab, t.state, self._p01, self._p10,
                key)
        if reference:
            rtn_apply_numpy(*args, cur, base=j0)
            return None
        plan = self._rtn_plan if self._walk_src is self._d_tab else self._walk_plan()
        return rtn_corrections(*args, x.shape[0] * self.cycles, self.dtype, plan=plan,
                               base=j0)

    def _readings(self, x: np.ndarray, rng: np.random.Generator, *, reference: bool = False,
                  with_var: bool = True):
        """Column currents (B*cycles, P) without the leakage (with ``with_var``, the summed
        cell-noise variances in P more columns when they need their own product), the
        leakage (P,), and the bit-planes (None)."""
        j0 = self._rtn_base(x.shape[0])
        g, leak = self._base(j0, with_var=with_var)
        cur = self._drive_product(x, g)
        if self.traps.n:
            rc = self._rtn(x, rng, j0, reference, cur)
            if rc is not None:
                add_corrections(cur, *rc)
        return cur, leak, None

    # ------------------------------------------------------------------ public API ----
    #: calibration readings (vectors x cycles x conversions) used at most; a larger
    #: calibration batch is subsampled evenly (the percentile of ~4e6 readings is within a
    #: fraction of an ADC step of the full batch's, at a fraction of the cost)
    CALIBRATION_MAX_READINGS = 1 << 22

    def calibrate(self, x_cal, rng: np.random.Generator | None = None) -> float:
        """Set the ADC full scale from a calibration batch (percentile of its readings).

        The readings include leakage and RTN but not the per-read Gaussian noise; the same
        range is then used for every later batch (never re-fitted per batch). Batches with
        more than ``CALIBRATION_MAX_READINGS`` readings are subsampled evenly (every k-th
        vector, deterministic). Returns FS (A).
        """
        x = enc_mod.check_codes(x_cal, self.rows_used, self.nbits_in, "x_cal")
        rng = self._rng if rng is None else rng
        ch = self._channels
        per_vec = self.cycles * ch["pos"].size
        max_vec = max(1, self.CALIBRATION_MAX_READINGS // max(per_vec, 1))
        if x.shape[0] > max_vec:
            x = x[np.linspace(0, x.shape[0] - 1, max_vec).round().astype(np.int64)]
        cur, leak, _ = self._readings(x, rng, with_var=False)
        tot = cur[:, :self.phys_cols].astype(np.float64)
        tot += leak[None, :]
        reading = tot[:, ch["pos"]]
        has_neg = ch["neg"] >= 0
        if has_neg.any():
            reading -= np.where(has_neg[None, :], tot[:, np.where(has_neg, ch["neg"], 0)], 0.0)
        self._check_saturation(tot, "NorArray.calibrate")
        np.abs(reading, out=reading)
        pct = self.cfg.array.adc.calibration_percentile
        fs = float(np.percentile(reading.ravel(), pct, overwrite_input=True))
        phys = self.physical_full_scale()
        if fs > phys * (1 + 1e-9):
            over = float(np.mean(reading > phys))
            if over > FULL_SCALE_WARN_FRACTION:
                warnings.warn(
                    f"NorArray.calibrate: the calibrated ADC full scale {fs * 1e6:.4g} uA (the "
                    f"{pct:g} percentile of {reading.size} readings) exceeds the physical full "
                    f"scale {phys * 1e6:.4g} uA (array.rows = {self.cfg.array.rows} rows at the "
                    f"top level) and is clamped to it: {100 * over:.1f} % of the readings clip "
                    f"(the V_th map passes more current than the levels allow)",
                    DegenerateResultWarning, stacklevel=2)
            fs = phys
        a = self.cfg.array.adc
        self.adc.set_range(fs, self.unit_a, a.step_integer_units)
        return fs

    def matmul(self, x_codes, rng: np.random.Generator | None = None, *,
               reference: bool = False) -> np.ndarray:
        """Estimated ``x_codes @ w_int`` (B, out) float64; see the module docstring.

        ``reference=True`` runs the plain NumPy twins of the kernels (same numbers).
        """
        # the bit-serial numba path reads int32 (im2col) codes as they are; the others int64
        fast_t = self.bitserial and not reference
        x = enc_mod.check_codes(x_codes, self.rows_used, self.nbits_in, keep_dtype=fast_t)
        if self.adc.step_a is None:
            raise InputError("adc range", "not calibrated",
                             "NorArray.calibrate(x_cal) first (adc.range_mode = 'calibrated') "
                             "or adc.range_mode = 'physical'")
        rng = self._rng if rng is None else rng
        par = readout_params(self.cfg.array, self.adc, self.t_read_s, self.temperature_k)
        par[P_SHOT] = self._shot_ratio
        if reference:  # the plain NumPy twins, whole batch at once
            cur, leak, planes = self._readings(x, rng, reference=True)
            if not self._checked_saturation:
                self._check_saturation(cur[:, :self.phys_cols].astype(np.float64)
                                       + leak[None, :], "NorArray.matmul")
            z, key = self._readout_draws(rng, cur.shape[0])
            out, charge = readout_numpy(cur, leak, self.cycles, self._channels, self.adc.gain,
                                        self.adc.offset, par, key=key, z=z,
                                        n_out_cols=self.n_out, vleak=self._vleak)
            self._count(x, planes, charge)
            out = out * (self.adc.step_a / self.unit_a)
            self._check_outputs(x, out)
            return out
        if self.bitserial:
            return self._matmul_t(x, rng, par)
        # numba path, in chunks of vectors (the drive product, the RTN corrections and the
        # readout of one chunk stay in cache); the random draws are those of the whole batch
        # (RTN walked over the whole batch first, normals addressed by their global
        # counter), so the result does not depend on the chunk size
        j0 = self._rtn_base(x.shape[0])
        g, leak = self._base(j0)
        rc = self._rtn(x, rng, j0) if self.traps.n else None
        n_rows = x.shape[0] * self.cycles
        z, key = self._readout_draws(rng, n_rows)
        nch = self._channels["pos"].size
        out = np.empty((x.shape[0], self.n_out))
        charge = np.zeros(self.phys_cols)
        step = max(1, self.CHUNK_ROWS // self.cycles)
        for v0 in range(0, x.shape[0], step):
            v1 = min(v0 + step, x.shape[0])
            r0, r1 = v0 * self.cycles, v1 * self.cycles
            cur = self._drive_product(x[v0:v1], g)
            if rc is not None:
                add_corrections(cur, *rc, start=r0)
            if not self._checked_saturation:  # first chunk of the array's first call
                self._check_saturation(cur[:, :self.phys_cols].astype(np.float64)
                                       + leak[None, :], "NorArray.matmul")
            o, ch = readout(cur, leak, self.cycles, self._channels, self.adc.gain,
                            self.adc.offset, par, key=key, counter0=r0 * nch,
                            z=None if z is None else z[r0:r1], n_out_cols=self.n_out,
                            vleak=self._vleak)
            out[v0:v1] = o
            charge += ch
        self._count(x, None, charge)
        out *= self.adc.step_a / self.unit_a
        self._check_outputs(x, out)
        return out

    #: rows (vectors x cycles) of one chunk of the numba matmul paths; the bit-serial one's
    #: product ``g.T @ planes.T`` reaches the BLAS rate only for wide right-hand sides
    #: (issue 17: 4096 rows ran at about half the rate of 32768 on two threads)
    CHUNK_ROWS = 32768
    #: per-vector IR-drop surrogate (norsim.array.ir_modes.ModalIrSurrogate), set by the engine
    #: for mapping.ir_drop = 'network' (bit-serial inputs); None: fast mode's nominal bias
    ir_surrogate = None

    def _readout_draws(self, rng, n_rows):
        """(normals (n_rows, conversions) or None, counter-hash key) of one batch."""
        if self.cfg.array.noise.gaussian_source == "generator":
            return rng.standard_normal((n_rows, self._channels["pos"].size)), 0
        return None, int(rng.integers(0, 2**63))

    def analog_output(self, x_codes, rng: np.random.Generator | None = None) -> np.ndarray:
        """The same estimate before the ADC: currents combined in output units (no Gaussian
        read noise, no ADC errors; leakage and RTN included). For studies and figures."""
        x = enc_mod.check_codes(x_codes, self.rows_used, self.nbits_in)
        rng = self._rng if rng is None else rng
        cur, leak, _ = self._readings(x, rng, with_var=False)
        tot = cur[:, :self.phys_cols].astype(np.float64) + leak[None, :]
        ch = self._channels
        val = tot[:, ch["pos"]] - np.where(ch["neg"][None, :] >= 0,
                                           tot[:, np.maximum(ch["neg"], 0)], 0.0)
        b = x.shape[0]
        w = (2.0 ** np.arange(self.cycles))[None, :, None]
        acc = (val.reshape(b, self.cycles, -1) * w).sum(axis=1)
        out = np.zeros((b, self.n_out))
        for h in range(acc.shape[1]):
            t = ch["tgt"][h]
            if t >= 0:
                out[:, t] += ch["coef"][h] * acc[:, h]
            else:
                out += ch["coef"][h] * acc[:, h][:, None]
        return out / self.unit_a

    def __matmul__(self, x):
        """CrossSim style ``arr @ x``: x (rows,) -> (out,), x (rows, B) -> (out, B)."""
        x = np.asarray(x)
        if x.ndim == 1:
            return self.matmul(x[None, :])[0]
        if x.ndim != 2:
            raise InputError("x", f"array of shape {x.shape}", f"shape ({self.rows_used},) or ({self.rows_used}, B)")
        return self.matmul(x.T).T

    def __rmatmul__(self, x):
        """``x @ arr``: x (B, rows) -> (B, out)."""
        x = np.asarray(x)
        if x.ndim == 1:
            return self.matmul(x[None, :])[0]
        return self.matmul(x)

    # ------------------------------------------------------------------ events ----
    def _count(self, x: np.ndarray, planes, charge: np.ndarray, wl=None) -> None:
        """Add a batch to the event counts; ``wl``: its word-line statistics (active rows
        per cycle, runs of ones) if the caller has counted them already (bit-serial)."""
        ev = self.events
        b = x.shape[0]
        k = self.cycles
        h = self._channels["pos"].size
        ev.multiplies += b
        ev.read_cycles += b * k
        if self.bitserial:
            active, runs = wl_stats(x, self.nbits_in) if wl is None else wl
            ev.wl_toggles += 2 * runs
        else:
            active = (x > 0).sum(axis=1)
            ev.wl_toggles += 2 * int(active.sum())
        ev.wl_pulses += int(active.sum())
        ev.active_rows_hist += np.bincount(active, minlength=ev.rows + 1)[: ev.rows + 1]
        ev.bitline_charge_c += charge * self.t_read_s
        ev.add_count(ev.adc_conversions, self.adc.bits, b * k * h)
        ev.column_mux_switches += b * k * max(0, h - self.adc.n_adcs)
        acc_w = self.adc.bits + (self.nbits_in - 1 if self.bitserial else 0) + (1 if self.adc.signed else 0)
        if self.bitserial and k > 1:
            ev.add_count(ev.shift_add_ops, acc_w, b * (k - 1) * h)
        tgt = self._channels["tgt"]
        contributions = int((tgt >= 0).sum() + (tgt < 0).sum() * self.n_out)
        coef_bits = int(np.ceil(np.log2(np.abs(self._channels["coef"]).max()))) if h else 0
        out_w = acc_w + 1 + coef_bits
        if contributions > self.n_out:
            ev.add_count(ev.shift_add_ops, out_w, b * (contributions - self.n_out))
        ev.buffer_bits += b * self.rows_used * self.nbits_in + b * self.n_out * out_w
