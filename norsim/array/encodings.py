"""Weight encodings (integer weights -> cell levels on physical columns -> conversion channels)
and input encodings (integer codes -> word-line drive).

Weight encodings return a :class:`WeightLayout`: the level of every cell (rows x physical
columns) and the conversion channels. A channel converts the current of one physical column
(``pos``), or the difference of two (``pos`` - ``neg``, analog subtraction), and its code is
added with coefficient ``coef`` to logical column ``tgt`` (``-1``: to every logical column,
used by the shared reference column of the offset encoding). With ideal cells,

    sum_h coef_h * (I_pos_h - I_neg_h) / i_unit = x @ w      (exactly, level-0 currents cancel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from norsim.array.config import EncodingConfig
from norsim.array.kernels import CODE_DTYPES
from norsim.errors import InputError


@dataclass(frozen=True)
class WeightLayout:
    levels: np.ndarray  # (rows, phys_cols) int64 cell levels 0..max_level
    max_level: int
    pos: np.ndarray  # (H,) int64
    neg: np.ndarray  # (H,) int64, -1 if none
    tgt: np.ndarray  # (H,) int64, -1 = every logical column
    coef: np.ndarray  # (H,) float64
    n_logical: int

    @property
    def phys_cols(self) -> int:
        return self.levels.shape[1]

    def channels(self) -> dict:
        return {"pos": self.pos, "neg": self.neg, "tgt": self.tgt, "coef": self.coef,
                "adc": np.zeros_like(self.pos)}


def weight_limit(enc: EncodingConfig) -> int:
    return 2 ** (enc.weight_bits - 1) - 1


def check_weights(w: np.ndarray, enc: EncodingConfig) -> np.ndarray:
    w = np.asarray(w)
    if w.ndim != 2 or w.size == 0:
        raise InputError("w_int", f"array of shape {w.shape}", "a non-empty 2-D (in_features x out_features) matrix")
    if not np.issubdtype(w.dtype, np.integer):
        if not np.all(np.isfinite(w)):
            raise InputError("w_int", w[~np.isfinite(w)].ravel()[0], "finite integer weight codes")
        if np.any(w != np.round(w)):
            raise InputError("w_int", w[w != np.round(w)].ravel()[0], "integer weight codes")
    w = w.astype(np.int64)
    lim = weight_limit(enc)
    if np.any(np.abs(w) > lim):
        raise InputError("w_int", int(w[np.abs(w) > lim].ravel()[0]),
                         f"|w| <= 2^(weight_bits-1) - 1 = {lim}")
    return w


def encode_weights(w: np.ndarray, enc: EncodingConfig) -> WeightLayout:
    """Map a signed integer weight block (rows x logical columns) to cell levels and channels."""
    w = check_weights(w, enc)
    rows, cols = w.shape
    lim = weight_limit(enc)
    analog = enc.subtraction == "analog"
    if enc.weight_scheme == "differential":
        levels = np.empty((rows, 2 * cols), dtype=np.int64)
        levels[:, 0::2] = np.maximum(w, 0)
        levels[:, 1::2] = np.maximum(-w, 0)
        return _pairs(levels, np.arange(cols), np.ones(cols), lim, analog, cols)
    if enc.weight_scheme == "offset":
        half = 2 ** (enc.weight_bits - 1)
        levels = np.empty((rows, cols + 1), dtype=np.int64)
        levels[:, :cols] = w + half
        levels[:, cols] = half
        j = np.arange(cols, dtype=np.int64)
        if analog:
            return WeightLayout(levels, 2 * half - 1, j, np.full(cols, cols), j,
                                np.ones(cols), cols)
        return WeightLayout(levels, 2 * half - 1, np.append(j, cols), np.full(cols + 1, -1),
                            np.append(j, -1), np.append(np.ones(cols), -1.0), cols)
    # bit_sliced: magnitude bits in slices, each slice a differential pair
    bpc = enc.bits_per_cell
    mag_bits = enc.weight_bits - 1
    n_sl = -(-mag_bits // bpc)
    mask = (1 << bpc) - 1
    levels = np.empty((rows, 2 * cols * n_sl), dtype=np.int64)
    pos_mag, neg_mag = np.maximum(w, 0), np.maximum(-w, 0)
    tgt, coef = [], []
    for j in range(cols):
        for s in range(n_sl):
            base = 2 * (j * n_sl + s)
            levels[:, base] = (pos_mag[:, j] >> (s * bpc)) & mask
            levels[:, base + 1] = (neg_mag[:, j] >> (s * bpc)) & mask
            tgt.append(j)
            coef.append(float(1 << (s * bpc)))
    return _pairs(levels, np.array(tgt), np.array(coef), mask, analog, cols)


def _pairs(levels, tgt, coef, max_level, analog, n_logical) -> WeightLayout:
    n_pairs = levels.shape[1] // 2
    p = 2 * np.arange(n_pairs, dtype=np.int64)
    tgt = np.asarray(tgt, dtype=np.int64)
    coef = np.asarray(coef, dtype=np.float64)
    if analog:
        return WeightLayout(levels, int(max_level), p, p + 1, tgt, coef, n_logical)
    return WeightLayout(levels, int(max_level), np.stack([p, p + 1], 1).ravel(),
                        np.full(2 * n_pairs, -1, dtype=np.int64), np.repeat(tgt, 2),
                        np.stack([coef, -coef], 1).ravel(), n_logical)


def phys_cols_needed(n_logical: int, enc: EncodingConfig) -> int:
    if enc.weight_scheme == "differential":
        return 2 * n_logical
    if enc.weight_scheme == "offset":
        return n_logical + 1
    n_sl = -(-(enc.weight_bits - 1) // enc.bits_per_cell)
    return 2 * n_logical * n_sl


def level_currents(levels: np.ndarray, lv) -> np.ndarray:
    """Target read current of each level (``device.levels``): i_off + L i_unit."""
    return lv.i_off_a + levels * lv.i_unit_a


def check_codes(x, rows: int, bits: int, name: str = "x_codes", *,
                keep_dtype: bool = False) -> np.ndarray:
    """Validate unsigned input codes (B, rows) in [0, 2^bits - 1]; 1-D means one vector.
    Returns int64 codes, or with ``keep_dtype`` integer codes in their own dtype when it is
    one of ``norsim.array.kernels.CODE_DTYPES`` (no copy)."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != rows:
        raise InputError(name, f"array of shape {np.asarray(x).shape}",
                         f"shape (batch, {rows}) (one code per used row)")
    if not np.issubdtype(x.dtype, np.integer):
        if x.dtype == bool:
            x = x.astype(np.int64)
        else:
            if not np.all(np.isfinite(x)):
                raise InputError(name, x[~np.isfinite(x)].ravel()[0], "finite integer codes (no NaN/inf)")
            if np.any(x != np.round(x)):
                raise InputError(name, x[x != np.round(x)].ravel()[0], "integer codes")
    if not (keep_dtype and x.dtype in CODE_DTYPES):
        x = x.astype(np.int64, copy=False)
    hi = (1 << bits) - 1
    if x.size == 0 or (x.min() >= 0 and x.max() <= hi):  # two reductions, no temporaries
        return x
    bad = (x < 0) | (x > hi)
    if np.any(bad):
        raise InputError(name, int(x[bad].ravel()[0]), f"codes in [0, {hi}] (input_bits = {bits})")
    return x


# ------------------------------------------------------------------ input encodings ----
def multi_level_amplitudes(cell, enc: EncodingConfig, dac) -> np.ndarray:
    """Input-gate amplitude per code (code 0 -> row off, NaN marker) for 'multi_level'."""
    xmax = (1 << enc.input_bits) - 1
    codes = np.arange(xmax + 1)
    nominal = cell.v_cg if cell.split else cell.v_on
    amp = nominal - dac.ml_span_v * (1.0 - codes / xmax)
    amp[0] = np.nan
    return amp


def mirror_amplitudes(cell, enc: EncodingConfig) -> np.ndarray:
    """Gate amplitude per code for 'current_mirror': the row's reference cell (programmed to
    i_off + i_unit at nominal bias) carries code / max x (i_off + i_unit)."""
    xmax = (1 << enc.input_bits) - 1
    i_full = cell.device.levels.i_off_a + cell.device.levels.i_unit_a
    vth_ref = cell.vth_for_current(np.array([i_full]))[0]
    codes = np.arange(1, xmax + 1)
    amp = np.empty(xmax + 1)
    amp[0] = np.nan
    amp[1:] = cell.gate_for_current(codes / xmax * i_full, np.full(xmax, vth_ref))
    return amp


def level_tables(cell, vth: np.ndarray, amplitudes: np.ndarray) -> np.ndarray:
    """Cell current per code (codes, rows, cols); code with NaN amplitude = row off (leakage)."""
    out = np.empty((amplitudes.size,) + vth.shape)
    for c, a in enumerate(amplitudes):
        if np.isnan(a):
            out[c] = cell.off_current(vth)
        else:
            wl, cg = cell.gates_for_amplitude(a)
            out[c] = cell.current(vth, v_wl=wl, v_cg=cg)
    return out


def pulse_width_fractions(cell, vth_ref: float, enc: EncodingConfig, dac, t_read_s: float,
                          n_grid: int = 4001) -> np.ndarray:
    """Effective on-fraction of the read window per code for 'pulse_width'.

    Code x drives the word line for x t_read / max; the line rises and falls with time
    constant wl_tau_s, and the charge of a cell (V_th = vth_ref) is integrated over the rise,
    the pulse and the decay after it. Fraction = Q / (I_on t_read); ideal value x / max.
    The leakage current is subtracted from the profile so that the fraction multiplies
    (I_on - I_off) exactly.
    """
    xmax = (1 << enc.input_bits) - 1
    tau = dac.wl_tau_s
    i_on = cell.on_current(np.array([vth_ref]))[0]
    i_off = cell.off_current(np.array([vth_ref]))[0]
    fr = np.zeros(xmax + 1)
    for x in range(1, xmax + 1):
        t_pulse = x * t_read_s / xmax
        if tau == 0.0:
            fr[x] = t_pulse / t_read_s
            continue
        t = np.linspace(0.0, t_read_s + 20 * tau, n_grid)
        v_end = cell.v_off + (cell.v_on - cell.v_off) * (1 - np.exp(-t_pulse / tau))
        v = np.where(t <= t_pulse, cell.v_off + (cell.v_on - cell.v_off) * (1 - np.exp(-t / tau)),
                     cell.v_off + (v_end - cell.v_off) * np.exp(-(t - t_pulse) / tau))
        if cell.split:
            i = cell.current(np.full(t.shape, vth_ref), v_wl=v)
        else:
            i = cell.current(np.full(t.shape, vth_ref), v_wl=v, v_cg=v)
        fr[x] = np.trapezoid(i - i_off, t) / ((i_on - i_off) * t_read_s)
    return fr
