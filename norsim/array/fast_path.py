"""The bit-serial fast path of :class:`~norsim.array.nor_array.NorArray` (issue 17): column-major
currents, the exact RTN corrections read in place by ``readout_t``, the bounded-ratio cell
variance tier (``array.noise.cell_variance``) and per-conversion codes for tier comparisons.
A mixin: it uses the array's state (``_base``, ``_rtn``, ``_channels``, ``adc``, ...)."""

from __future__ import annotations

import numpy as np

from norsim.array import encodings as enc_mod
from norsim.array.kernels import P_CONST_VAR, P_NOISE_LSB, P_SHOT, P_STEP, bitplanes
from norsim.array.periphery import readout_params
from norsim.array.readout_t import (VARIANCE_ERROR_LIMIT_LSB, Z_MAX, readout_t,
                                    sigma_error_bound_lsb)
from norsim.errors import InputError


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
        x = np.ascontiguousarray(x, dtype=np.int64)  # once: every kernel below takes it as is
        vmode = self.variance_mode()
        j0 = self._rtn_base(x.shape[0])
        g, leak = self._base(j0, with_var=vmode == 1)
        gt = np.ascontiguousarray(g.T)
        corr = slot = None
        if self.traps.n:
            cols, corr = self._rtn(x, rng, j0)
            slot = np.full(self.phys_cols, -1, dtype=np.int64)
            slot[cols] = np.arange(cols.size)
        n_rows = x.shape[0] * self.cycles
        z, key = self._readout_draws(rng, n_rows)
        nch = self._channels["pos"].size
        chans, nb, n_out = self._channels, self.cycles, self.n_out
        if codes:  # every conversion its own output: one "cycle" per row, weight 1
            chans = dict(chans, tgt=np.arange(nch, dtype=np.int64), coef=np.ones(nch))
            nb, n_out = 1, nch
        out = np.empty((x.shape[0] * (self.cycles if codes else 1), n_out))
        charge = np.zeros(self.phys_cols)
        step = max(1, self.CHUNK_ROWS // self.cycles)
        for v0 in range(0, x.shape[0], step):
            v1 = min(v0 + step, x.shape[0])
            r0, r1 = v0 * self.cycles, v1 * self.cycles
            planes = bitplanes(x[v0:v1], self.nbits_in)
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
                              vleak=self._vleak)
            if codes:
                out[r0:r1] = o
                continue
            out[v0:v1] = o
            charge += ch
        if codes:
            return out
        self._count(x, None, charge)
        out *= self.adc.step_a / self.unit_a
        self._check_outputs(x, out)
        return out
