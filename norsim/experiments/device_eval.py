"""The ``device`` evaluator: how well programmed weight levels read back, per point.

A cheap end-to-end evaluator on the device layer (no model or data needed), so sweeps over
device and read-bias fields are useful before the mapper exists:

1. every weight level L = 1 .. levels_per_cell - 1 has the target read current
   ``L * i_unit_a`` (``device.levels``); the verify V_th giving that current at the read bias
   and the reference temperature ``device.cell.t_ref_k`` comes from
   :func:`norsim.device.iv.vth_for_current`;
2. ``cells_per_level`` cells per level are placed by program-and-verify. ISPP with verify
   stops at the first pulse that takes V_th past the verify level, so the placed V_th is
   uniform over one staircase step above it (``device.programming.ispp_step_v``; the
   research notes' sigma_place = step / sqrt(12)). With ``device.programming.verify_rtn``
   each of the cell's ``device.noise.rtn_traps_per_cell`` traps has an exponential V_th
   amplitude of mean ``device.noise.rtn_mean_v`` and is occupied with probability 1/2,
   independently at the verify read and at the final read; the placement error is the
   amplitude times (occupied at read - occupied at verify);
3. the cells are read at the configured read bias and temperature
   (``device.read.temperature_k``; V_th and mobility shift with it) and each read current is
   decoded to the nearest target current, as a uniform current-domain ADC calibrated at the
   reference temperature would.

Metrics: ``level_error_rate`` (cells decoded to a wrong level; a proportion with
``level_error_rate_n`` cells), ``current_error_rms_units`` (RMS of read minus target
current, in units of ``i_unit_a``), ``current_bias_units`` (mean of the same),
``vth_placement_sigma_v`` (standard deviation of placed V_th about the verify level).
Options (``[options]`` of the spec): ``cells_per_level`` (default 1000).

This is a deliberately small model of placement; the device layer's ISPP simulation
replaces step 2 where it is available.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from norsim.config.base import ConfigBase, param

RNG_STREAM_PLACEMENT = 0xD1


@dataclass
class DeviceEvalOptions(ConfigBase):
    """Options of the ``device`` evaluator (not physics: the physics is the point's config)."""

    cells_per_level: int = param(1000, "Cells programmed per weight level (sample size).",
                                 lo=1, hi=10_000_000)


def _field(cfg, path: str, default):
    node = cfg
    for part in path.split("."):
        if not hasattr(node, part):
            return default
        node = getattr(node, part)
    return node


def evaluate(point) -> dict:
    from norsim.device.iv import cell_model, vth_for_current

    opts = DeviceEvalOptions.from_dict(point.options, "options.").validate("options.")
    cfg = point.config
    dev = cfg.device
    read = dev.read
    levels = int(_field(dev, "levels.levels_per_cell", 8))
    i_unit = float(_field(dev, "levels.i_unit_a", 1e-8))
    step = float(_field(dev, "programming.ispp_step_v", 0.05))
    rtn_mean = float(_field(dev, "noise.rtn_mean_v", 0.0))
    traps = int(_field(dev, "noise.rtn_traps_per_cell", 0)) if bool(
        _field(dev, "programming.verify_rtn", False)) else 0
    n_cells = opts.cells_per_level
    bias = (read.v_select_on_v, read.v_cg_read_v, read.v_bl_read_v, read.v_sl_read_v)

    targets = i_unit * np.arange(1, levels)                      # A, levels 1..L-1
    prog_model = cell_model(dev.cell, dev.cell.t_ref_k)
    vth_verify = vth_for_current(prog_model, targets, *bias)     # V, one per level

    rng = cfg.rng(RNG_STREAM_PLACEMENT)
    overshoot = rng.uniform(0.0, step, size=(targets.size, n_cells))
    vth = vth_verify[:, None] + overshoot
    if traps and rtn_mean > 0:
        shape = overshoot.shape + (traps,)
        amp = rng.exponential(rtn_mean, size=shape)
        at_read, at_verify = rng.random(shape) < 0.5, rng.random(shape) < 0.5
        vth += (amp * (at_read.astype(float) - at_verify)).sum(axis=-1)

    read_model = cell_model(dev.cell, read.temperature_k)
    i_read = read_model.current(*bias, vth)
    decoded = np.clip(np.rint(i_read / i_unit), 0, levels - 1)
    wrong = decoded != np.arange(1, levels)[:, None]
    err_units = (i_read - targets[:, None]) / i_unit
    return {
        "level_error_rate": float(wrong.mean()),
        "level_error_rate_n": int(wrong.size),
        "current_error_rms_units": float(np.sqrt(np.mean(err_units ** 2))),
        "current_bias_units": float(err_units.mean()),
        "vth_placement_sigma_v": float(np.std(vth - vth_verify[:, None])),
    }
