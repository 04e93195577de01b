"""The bit-serial fast path of :class:`~norsim.array.nor_array.NorArray` (issue 17): column-major
currents, the exact RTN corrections read in place by ``readout_t``, the bounded-ratio cell
variance tier (``array.noise.cell_variance``) and per-conversion codes for tier comparisons.
A mixin: it uses the array's state (``_base``, ``_rtn``, ``_channels``, ``adc``, ...)."""

from __future__ import annotations

import numpy as np

from norsim.array import encodings as enc_mod
from norsim.array.kernels import (P_CONST_VAR, P_NOISE_LSB, P_SHOT, P_STEP, bitplanes_stats,
                                  code_rows)
from norsim.array.periphery import readout_params
from norsim.array.readout_t import (VARIANCE_ERROR_LIMIT_LSB, Z_MAX, readout_t,
                                    sigma_error_bound_lsb)
from norsim.array.rtn_kernels import rtn_corrections, rtn_majority_base, rtn_plan, rtn_prepare
from norsim.array.rtn_tier import (SHARED_KEY_XOR, approximate_tables, fast_multiplies, pair_counts,
                                   shared_split)
from norsim.errors import InputError

#: the approximate RTN tier runs only where every conversion has at least this read-noise
#: variance besides its cells' (kT/C + ADC noise; nor40: 0.0102 LSB^2): the regime its
#: equivalence was measured in. Without that dither a fast trap's two-valued current meets
#: the ADC's rounding edges, and a Gaussian of the same variance moves more codes (measured
#: with kT/C, ADC and cell noise off: recombined-output noise variance +5 % on dense inputs,
#: +23 % on sparse ones; docs/benchmarks.md "Tiers")
RTN_MIN_DITHER_LSB2 = 0.01


class BitSerialFastPath:
    """Methods of NorArray's bit-serial numba path (see the module docstring)."""

    def variance_mode(self) -> int:
        """How this tile's readout sums the cell read-noise variance (readout_t var_mode):
        0 no cell noise, 1 the exact variance product, 2 the bounded ratio (only where
        ``variance_error_bound_lsb() * Z_MAX < VARIANCE_ERROR_LIMIT_LSB``)."""
        if self._var is None:
            return 0
        nz = self.cfg.array.noise
        if (self._vratio is None or nz.cell_variance == "exact"
                or nz.gaussian_source != "counter_hash" or self.adc.step_a is None):
            return 1
        step, mode = self._vmode_cache
        if step != self.adc.step_a:
            err = self.variance_error_bound_lsb()
            mode = 2 if err * Z_MAX < VARIANCE_ERROR_LIMIT_LSB else 1
            self._vmode_cache = (self.adc.step_a, mode)
        return mode

    def rtn_mode(self) -> str:
        """How this tile's bit-serial fast path samples RTN: 'none' (no walked traps),
        'exact' (every trap walked) or 'approximate' (``array.noise.rtn_tier``: slow traps
        walked, fast ones a Gaussian of matched mean and variance, ``norsim.array.rtn_tier``;
        needs the counter-hash normals and a trap fast enough to approximate)."""
        if not self.traps.n or self._rtn_order is None:
            return "none"
        nz = self.cfg.array.noise
        if (nz.rtn_tier != "approximate" or not self.bitserial
                or nz.gaussian_source != "counter_hash"):
            return "exact"
        if self.adc.step_a is None or self._dither_lsb2() < RTN_MIN_DITHER_LSB2:
            return "exact"
        return "approximate"  # a batch too short to hold a fast trap still walks them all

    def _dither_lsb2(self) -> float:
        """The read-noise variance every conversion has whatever its cells (kT/C + ADC
        input-referred, LSB^2)."""
        par = readout_params(self.cfg.array, self.adc, self.t_read_s, self.temperature_k)
        inv = 1.0 / par[P_STEP]
        return float(par[P_CONST_VAR] * inv * inv + par[P_NOISE_LSB] ** 2)

    def _rtn_tier(self, k_mult):
        """(RtnTier tables for traps faster than ``k_mult`` multiplies, walk plan or None,
        fast-trap variance on-minus-off (rows, P), its off part per column (P,)), cached for
        the last ``k_mult`` only (a few MB per 256 x 256 tile: a network holds hundreds of
        tiles; a batch size change costs one rebuild, ~20 ms) and rebuilt whenever the trap
        deltas are."""
        cache = getattr(self, "_rtn_tier_cache", None)
        if cache is not None and cache[0] is self._d_tab and cache[1] == k_mult:
            return cache[2]
        self._rtn_tier_cache = None
        t = self.traps
        tier = approximate_tables(self._d_on, self._d_off, self._p01, self._p10, k_mult)
        plan = (rtn_prepare(rtn_plan(t.col, tier.live), t.row, tier.d_tab, tier.p01, tier.p10)
                if tier.live.any() else None)
        tier.d_tab = None  # gathered into the plan; the walk reads only the plan's copy
        w_d = np.zeros((self.rows_used, self.phys_cols))
        np.add.at(w_d, (t.row, t.col), tier.w_on - tier.w_off)
        vconst = np.bincount(t.col, weights=tier.w_off, minlength=self.phys_cols)
        out = (tier, plan, w_d.astype(np.float32), vconst)
        self._rtn_tier_cache = (self._d_tab, k_mult, out)
        return out

    def variance_error_bound_lsb(self) -> float:
        """Worst-case |sigma_ratio - sigma_exact| of one conversion (ADC LSB) of the
        bounded-ratio cell variance, over every set of active rows and trap states."""
        if self._vbound is None or self.adc.step_a is None:
            return float("inf")
        par = readout_params(self.cfg.array, self.adc, self.t_read_s, self.temperature_k)
        inv = 1.0 / par[P_STEP]
        cvar = par[P_CONST_VAR] * inv * inv + par[P_NOISE_LSB] ** 2
        return sigma_error_bound_lsb(self._vbound, self._channels, self.adc.step_a, cvar,
                                     self._vleak)

    def conversion_codes(self, x_codes, rng: np.random.Generator | None = None) -> np.ndarray:
        """The ADC code of every conversion of a bit-serial batch, (B*cycles, channels)
        (row b*cycles + k: bit k of vector b), with the draws :meth:`matmul` would make from
        the same generator state (the equivalence tests of issue 17 compare tiers on it)."""
        if not self.bitserial:
            raise InputError("array.encoding.input_scheme", self.scheme,
                             "'bit_serial' for per-conversion codes")
        x = enc_mod.check_codes(x_codes, self.rows_used, self.nbits_in)
        if self.adc.step_a is None:
            raise InputError("adc range", "not calibrated", "NorArray.calibrate(x_cal) first")
        rng = self._rng if rng is None else rng
        par = readout_params(self.cfg.array, self.adc, self.t_read_s, self.temperature_k)
        par[P_SHOT] = self._shot_ratio
        return self._matmul_t(x, rng, par, codes=True)

    def _matmul_t(self, x, rng, par, codes=False):
        """Bit-serial numba path on column-major currents (readout_t): the RTN corrections
        are read where they lie, not added by a transposed pass; the random draws are those
        of the whole batch (RTN walked over it first, normals addressed by their global
        counter), so the result does not depend on the chunk size. ``codes``: return the
        code of every conversion instead (:meth:`conversion_codes`)."""
        x = code_rows(x)  # once: every kernel below reads it in place (rows unit-stride)
        vmode = self.variance_mode()
        corr = slot = rtn = None
        k_mult = fast_multiplies(x.shape[0])
        approx = k_mult > 0 and self.rtn_mode() == "approximate"
        if approx:
            tier, plan, w_d, vconst = self._rtn_tier(k_mult)
            approx = bool(tier.fast.any())
        if approx:
            t = self.traps
            j0 = rtn_majority_base(t.state, tier.p01, tier.p10, x.shape[0])
            g, leak = self._base(j0, with_var=vmode == 1, d_on=tier.d_on, d_off=tier.d_off)
            key = int(rng.integers(0, 2**63))  # the exact walk's draw: same slow-trap paths
            if plan is not None:
                cols, corr = rtn_corrections(x, self.cycles, True, t.row, t.col, tier.d_tab,
                                             t.state, tier.p01, tier.p10, key,
                                             x.shape[0] * self.cycles, self.dtype, plan=plan,
                                             base=j0)
            ratio, rho = shared_split(pair_counts(x, self.nbits_in), x.shape[0],
                                      g[:, :self.phys_cols], w_d)
            rtn = [ratio, rho, vconst]
        else:
            j0 = self._rtn_base(x.shape[0])
            g, leak = self._base(j0, with_var=vmode == 1)
            if self.traps.n:
                cols, corr = self._rtn(x, rng, j0)
        gt = np.ascontiguousarray(g.T)
        if corr is not None:
            slot = np.full(self.phys_cols, -1, dtype=np.int64)
            slot[cols] = np.arange(cols.size)
        n_rows = x.shape[0] * self.cycles
        z, key = self._readout_draws(rng, n_rows)
        if rtn is not None:
            rtn.append(int(np.uint64(key) ^ SHARED_KEY_XOR))
        nch = self._channels["pos"].size
        chans, nb, n_out = self._channels, self.cycles, self.n_out
        if codes:  # every conversion its own output: one "cycle" per row, weight 1
            chans = dict(chans, tgt=np.arange(nch, dtype=np.int64), coef=np.ones(nch))
            nb, n_out = 1, nch
        out = np.empty((x.shape[0] * (self.cycles if codes else 1), n_out))
        charge = np.zeros(self.phys_cols)
        # the word-line statistics (energy) counted while the bit-planes are built
        active, runs = np.empty(x.shape[0] * self.cycles, dtype=np.int64), 0
        step = max(1, self.CHUNK_ROWS // self.cycles)
        for v0 in range(0, x.shape[0], step):
            v1 = min(v0 + step, x.shape[0])
            r0, r1 = v0 * self.cycles, v1 * self.cycles
            planes, n_runs = bitplanes_stats(x[v0:v1], self.nbits_in, active[r0:r1])
            runs += n_runs
            cur_t = gt @ (planes.T if self.dtype == np.float32 else planes.T.astype(self.dtype))
            if self.ir_surrogate is not None:  # per-vector IR drop (mapping.ir_drop 'network')
                self.ir_surrogate.add_t(planes, cur_t)
            if not self._checked_saturation:  # first chunk of the array's first call
                tot = cur_t[:self.phys_cols].T.astype(np.float64)
                if corr is not None:
                    tot[:, cols] += corr[:, r0:r1].T
                self._check_saturation(tot + leak[None, :], "NorArray.matmul")
            o, ch = readout_t(cur_t, leak, nb, chans, self.adc.gain,
                              self.adc.offset, par, corr=corr, slot=slot, start=r0, key=key,
                              counter0=r0 * nch, z=None if z is None else z[r0:r1],
                              n_out_cols=n_out, var_mode=vmode, vratio=self._vratio,
                              vleak=self._vleak,
                              rtn=None if rtn is None else (*rtn, v0))
            if codes:
                out[r0:r1] = o
                continue
            out[v0:v1] = o
            charge += ch
        if codes:
            return out
        self._count(x, None, charge, wl=(active, runs))
        out *= self.adc.step_a / self.unit_a
        self._check_outputs(x, out)
        return out
