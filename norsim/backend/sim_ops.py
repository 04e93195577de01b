"""Array-level operations of the simulated chip behind the ``sim`` back-end.

These reach into one :class:`~norsim.array.nor_array.NorArray` (its channels, ADC tables,
readings): test-pattern reads through the periphery, re-biasing the control gates, per-channel
ADC tables and the clipping limit of a channel. The compensation chain calls them only
through the back-end seam (:class:`norsim.backend.sim.SimBackend`);
``norsim.compensation.core`` re-exports them under their former names for array-level use.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from norsim.array import encodings as enc_mod
from norsim.array.cells import ArrayCell
from norsim.array.kernels import P_SHOT, bitplanes, readout
from norsim.array.periphery import readout_params
from norsim.errors import ConfigError


def check_supported(arr) -> None:
    """Compensation reads test patterns as bit-planes: bit-serial inputs only."""
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
    check_supported(arr)
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


def patterns(rng, n: int, rows: int, densities, xmax: int) -> np.ndarray:
    """``n`` random test vectors (rows on with the cycled ``densities``, at least one on),
    active rows at input code ``xmax``."""
    d = np.asarray(densities, dtype=np.float64)[np.arange(n) % len(densities)]
    on = rng.random((n, rows)) < d[:, None]
    on[np.arange(n), rng.integers(0, rows, n)] = True  # never an empty pattern
    return on.astype(np.int64) * xmax


def usable_hi(arr) -> np.ndarray:
    """Per channel, the code above which a read may be clipped by the ADC or, before it, by
    the integrator (design data: C_int V_swing / t_read), with a 10% guard band."""
    s = arr.cfg.array.sense
    isat = s.integrator_cap_f * s.integrator_swing_v / arr.t_read_s
    gain = np.asarray(arr.adc.gain, dtype=np.float64)[arr._channels["adc"]]
    return 0.9 * np.minimum(arr.adc.hi, isat * gain / arr.adc.step_a)


def per_channel_adc(arr) -> None:
    """Give every conversion channel its own ADC gain/offset entry (trimmable per channel)."""
    ch = arr._channels
    idx = ch["adc"]
    if idx.size and np.array_equal(idx, np.arange(idx.size)) and arr.adc.gain.size == idx.size:
        return
    arr.adc.gain = np.asarray(arr.adc.gain, dtype=np.float64)[idx].copy()
    arr.adc.offset = np.asarray(arr.adc.offset, dtype=np.float64)[idx].copy()
    ch["adc"] = np.arange(idx.size, dtype=np.int64)


def set_read_voltage(arr, v_cg: float) -> None:
    """Re-bias a programmed tile's control gates at ``v_cg`` (V_th map, per-cell factors,
    RTN traps and ADC draws unchanged; currents, trap deltas and noise recomputed)."""
    check_supported(arr)
    dev = arr.cfg.device
    dev = dataclasses.replace(dev, read=dataclasses.replace(dev.read, v_cg_read_v=float(v_cg)))
    arr.cfg = dataclasses.replace(arr.cfg, device=dev)
    arr.cell = ArrayCell(dev, arr.cfg.array.sense.clamp_gain)
    arr.i_on = arr.cell.on_current(arr.vth) * arr.current_scale
    arr.i_off = arr.cell.off_current(arr.vth) * arr.current_scale
    arr._d_tab = arr._trap_deltas()
    arr._cell_noise()


def retune_cells(arr, rows: np.ndarray, cols: np.ndarray) -> tuple[float, float]:
    """Re-tune cells (``rows``, ``cols``) to their target V_th at the present read bias
    (modelled as exact placement); returns the (time s, energy J) of a full tuning sequence
    per cell."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
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
    energy = (rows.size * pg.tune_max_pulses * pg.pulse_width_s * pg.program_current_a
              * pg.program_voltage_v / pg.pump_efficiency)
    return rows.size * per_cell_t, energy
