"""The ``device`` evaluator: how well programmed weight levels read back, per point.

A cheap end-to-end evaluator on the device layer (no model or data needed), so sweeps over
device, programming, retention and read-bias fields are useful before the mapper exists.
``cells_per_level`` cells are programmed to every weight level L = 0 .. levels_per_cell - 1
(target currents ``norsim.device.levels.level_currents``: ``i_off_a`` for level 0, ``L *
i_unit_a`` above), at the program temperature (``mapping.program_temperature_k`` where that
field exists, else ``device.cell.t_ref_k``), optionally baked for ``mapping.retention_time_s``
at ``mapping.retention_temperature_k``, and read at the read bias and temperature
(``device.read``). Each read current is decoded to the nearest target current, as a uniform
current-domain ADC calibrated at programming would.

Placement (option ``placement``):

* ``"ispp"`` (default): the device layer's program-and-verify simulation
  (:func:`norsim.device.programming.program`: block erase, ISPP with a physical injection
  law, verify reads with noise and RTN, optional two-way tuning) on cells with device-to-device
  variation (``device.variation``), which also sets their I-V at the read;
* ``"uniform"``: a closed-form model for quick studies and tests: ISPP with verify stops at
  the first pulse past the verify level, so the placed V_th is uniform over one staircase step
  (``device.programming.ispp_step_v``) above it (sigma = step / sqrt(12), research notes
  section 2). With ``device.programming.verify_rtn`` each of the cell's
  ``device.noise.rtn_traps_per_cell`` traps has an exponential V_th amplitude of mean
  ``device.noise.rtn_mean_v`` and is occupied with probability 1/2, independently at the
  verify read and at the final read; the placement error is amplitude x (occupied at read -
  occupied at verify). Nominal cells (no variation), no retention.

Metrics: ``level_error_rate`` (cells decoded to a wrong level; a proportion with
``level_error_rate_n`` cells), ``current_error_rms_units`` and ``current_bias_units`` (read
minus target current in units of ``i_unit_a``: RMS and mean), ``vth_placement_sigma_v``
(standard deviation of placed minus target V_th, failed cells excluded), and for ``ispp``
``program_failed_fraction`` and ``program_pulses_mean``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from norsim.config.base import ConfigBase, param

RNG_STREAM_DEVICE_EVAL = 0xD1


@dataclass
class DeviceEvalOptions(ConfigBase):
    """Options of the ``device`` evaluator (sample size and model choice, not physics)."""

    cells_per_level: int = param(1000, "Cells programmed per weight level (sample size).",
                                 lo=1, hi=10_000_000)
    placement: str = param("ispp", "Placement model: 'ispp' (the device layer's program-and-"
                           "verify simulation with D2D variation) or 'uniform' (closed form: "
                           "uniform over one ISPP step above the verify level, plus verify RTN).",
                           choices=("ispp", "uniform"))


def check_spec(spec, tasks) -> None:
    """The options, up front (every point would fail on a bad one)."""
    DeviceEvalOptions.from_dict(spec.options, "options.").validate("options.")


def _field(cfg, path: str, default):
    """A config field if this configuration has it (sections grow as layers are added)."""
    node = cfg
    for part in path.split("."):
        if not hasattr(node, part):
            return default
        node = getattr(node, part)
    return node


def _uniform_placement(rng, dev, vth_target):
    step = dev.programming.ispp_step_v
    vth = vth_target + rng.uniform(0.0, step, size=vth_target.shape)
    traps = dev.noise.rtn_traps_per_cell if dev.programming.verify_rtn else 0
    if traps and dev.noise.rtn_mean_v > 0:
        shape = vth_target.shape + (traps,)
        amp = rng.exponential(dev.noise.rtn_mean_v, size=shape)
        at_read, at_verify = rng.random(shape) < 0.5, rng.random(shape) < 0.5
        vth = vth + (amp * (at_read.astype(float) - at_verify)).sum(axis=-1)
    return vth


def _placement_sigma(dvth, failed) -> dict:
    placed = ~failed
    return {"vth_placement_sigma_v": float(np.std(dvth[placed]))} if placed.any() else {}


def evaluate(point) -> dict:
    from norsim.device.iv import cell_model
    from norsim.device.levels import level_currents, read_current, target_vth

    opts = DeviceEvalOptions.from_dict(point.options, "options.").validate("options.")
    cfg = point.config
    dev = cfg.device
    rng = cfg.rng(RNG_STREAM_DEVICE_EVAL)
    targets = level_currents(dev.levels)                          # A, levels 0..L-1
    levels = np.repeat(np.arange(targets.size), opts.cells_per_level)
    i_target = targets[levels]
    t_prog = float(_field(cfg, "mapping.program_temperature_k", dev.cell.t_ref_k))
    prog_model = cell_model(dev.cell, t_prog)
    read_model = cell_model(dev.cell, dev.read.temperature_k)
    extra: dict = {}

    if opts.placement == "uniform":
        vth_level = target_vth(prog_model, dev, targets)
        vth_target = vth_level[levels]
        vth = _uniform_placement(rng, dev, vth_target)
        failed = np.zeros(levels.shape, bool)
        sigma = _placement_sigma(vth - vth_target, failed)
        iv_read: dict = {}
    else:
        from norsim.device.programming import program
        from norsim.device.retention import bake
        from norsim.device.variation import draw_variation

        var = draw_variation(rng, levels.shape, dev.variation, dev.cell)
        # verify reads (and their noise) happen at the program temperature
        prog_dev = dataclasses.replace(dev, read=dataclasses.replace(dev.read,
                                                                     temperature_k=t_prog))
        res = program(rng, prog_model, prog_dev, i_target, variation=var)
        vth, vth_target, failed = res.vth, res.target_vth, res.failed
        sigma = _placement_sigma(vth - vth_target, failed)
        t_ret = float(_field(cfg, "mapping.retention_time_s", 0.0))
        if t_ret > 0:
            vth = bake(rng, vth, t_ret, float(_field(cfg, "mapping.retention_temperature_k",
                                                     dev.retention.t_ref_k)),
                       dev.retention, dev.cell)
        iv_read = var.iv_kwargs(read_model)
        extra = {"program_failed_fraction": float(failed.mean()),
                 "program_pulses_mean": float(res.pulses.mean())}

    i_read = read_current(read_model, dev, vth, **iv_read)
    # nearest target current (targets are increasing): midpoints as decision thresholds
    decoded = np.searchsorted(0.5 * (targets[1:] + targets[:-1]), i_read)
    wrong = decoded != levels
    err_units = (i_read - i_target) / dev.levels.i_unit_a
    return {
        "level_error_rate": float(wrong.mean()),
        "level_error_rate_n": int(wrong.size),
        "current_error_rms_units": float(np.sqrt(np.mean(err_units ** 2))),
        "current_bias_units": float(err_units.mean()),
        **sigma,
        **extra,
    }
