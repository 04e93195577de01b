"""Programming cost comes from the device layer, not from constants of the cost model (issue
23, point 1): the report's program energy and time are the device layer's ISPP figures of
each tile, and follow a recalibration of device.programming."""

import dataclasses

import numpy as np
import pytest

from norsim.config.presets import load_preset
from norsim.cost import model as cm
from norsim.cost.config import CostConfig, TechConfig

SMALL = {"array.rows": 8, "array.cols": 8, "array.noise.shot_enabled": False,
         "array.noise.rtn_enabled": False, "array.noise.ktc_enabled": False}


def _tile(**prog):
    from norsim.mapping import mapper

    over = {**SMALL, **{f"device.programming.{k}": v for k, v in prog.items()}}
    cfg = load_preset("nor40").with_overrides(over)
    w = np.random.default_rng(1).integers(-7, 8, size=(8, 4))
    return mapper._program_tile(w, cfg, np.random.default_rng(2))


def test_cost_config_has_no_programming_constant():
    names = {f.name for f in dataclasses.fields(TechConfig)} | {
        f.name for f in dataclasses.fields(CostConfig)}
    assert not [n for n in names if "program" in n.replace("tiles_programmed", "")
                or "erase" in n or "pump" in n]


def test_tile_program_energy_follows_the_device_layer():
    """Same seed, same pulses: the energy is affine in the program current (pulses x I V
    t_pulse / eta) and moves by exactly erase_energy / eta per block erase."""
    p = load_preset("nor40").device.programming
    e1, e2, e3 = (_tile(program_current_a=k * p.program_current_a).program_energy_j
                  for k in (1, 2, 3))
    assert e2 > e1 > 0
    assert e3 - e2 == pytest.approx(e2 - e1, rel=1e-9)
    de = 1e-6
    e_erase = _tile(erase_energy_j=p.erase_energy_j + de).program_energy_j
    n_erases = (e_erase - e1) / (de / p.pump_efficiency)
    assert n_erases >= 1 and n_erases == pytest.approx(round(n_erases), abs=1e-6)


def test_report_programming_is_the_sum_of_the_tiles():
    from norsim.mapping import engine, mapper
    from norsim.mapping.random_models import random_lenet

    cfg = load_preset("nor40").with_overrides({
        "mapping.programming": "ideal", "array.rows": 64, "array.cols": 64,
        "cost.tech.tiles_programmed_in_parallel": 2, **{k: v for k, v in SMALL.items()
                                                          if "noise" in k}})
    chip = mapper.map_model(random_lenet(np.random.default_rng(3)), cfg)
    x = np.random.default_rng(5).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    engine.calibrate(chip, x[:2])
    engine.run(chip, x[2:])
    src = _tile()
    tiles = [t for ml in chip.layers.values() if ml.analog for t in ml.tiles]
    for k, t in enumerate(tiles):
        t.program_time_s, t.program_energy_j = (k + 1) * src.program_time_s, (k + 1) * src.program_energy_j
    rep = cm.estimate(cm.collect(chip, 1), cfg.cost).as_dict()["programming"]
    n = len(tiles)
    assert rep["energy_j"] == pytest.approx(n * (n + 1) / 2 * src.program_energy_j)
    # time: per layer, the tiles' sum over the tiles programmed in parallel
    assert rep["time_s"] == pytest.approx(n * (n + 1) / 2 * src.program_time_s / 2)
