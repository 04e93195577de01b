"""The mapper and engine: ideal analog chip == integer reference, bit for bit."""

from pathlib import Path

import numpy as np
import pytest

from norsim.config import load_preset
from norsim.errors import ConfigError, InputError
from norsim.mapping import engine, mapper
from norsim.mapping import reference as ref
from norsim.mapping.quant_model import QuantModel
from norsim.mapping.random_models import random_lenet

GOLDEN = Path(__file__).resolve().parent / "golden"
GOLDEN_NAMES = ["golden_lenet_tiny", "golden_resnet_tiny", "golden_avgpool_mlp"]


def _run_ideal(model, images, overrides=()):
    # every layer on arrays unless a case says otherwise (the preset keeps the first digital)
    cfg = mapper.ideal_config(load_preset().with_overrides(["mapping.first_layer='analog'",
                                                            *overrides]))
    chip = mapper.map_model(model, cfg)
    engine.calibrate(chip, images[:4])
    return chip, engine.run(chip, images, batch_size=5)


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_ideal_chip_equals_golden_outputs(name):
    model = QuantModel.load(GOLDEN / f"{name}.npz")
    io = np.load(GOLDEN / f"{name}.io.npz")
    chip, run = _run_ideal(model, io["images"])
    assert np.array_equal(run.outputs, io["output"])
    for layer, st in run.layer_stats.items():
        assert st.max_abs_error == 0, layer
    assert all(layer.analog for layer in chip.layers.values())


@pytest.mark.parametrize("overrides", [
    ["array.rows=32", "array.cols=32"],                       # many tiles, row-block sums
    ["array.rows=64", "array.cols=48", "array.encoding.weight_scheme='offset'",
     "mapping.first_layer='digital'", "mapping.last_layer='digital'"],
    ["array.rows=40", "array.cols=64", "array.encoding.subtraction='analog'"],
    ["array.encoding.weight_scheme='bit_sliced'", "array.encoding.bits_per_cell=2"],
    ["device.cell.cell_type='stacked_gate'", "array.rows=128", "array.cols=128"],
])
def test_ideal_chip_equals_reference_for_layouts(overrides):
    rng = np.random.default_rng(7)
    model = random_lenet(rng, calib_n=16)
    images = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    _, run = _run_ideal(model, images, overrides)
    out_ref, _ = engine.reference_run(model, images)
    assert np.array_equal(run.outputs, out_ref)


def test_tiling_covers_the_weight_matrix_exactly_once():
    model = random_lenet(np.random.default_rng(3), calib_n=8)
    cfg = mapper.ideal_config(load_preset().with_overrides(["array.rows=64", "array.cols=32",
                                                            "mapping.first_layer='analog'"]))
    chip = mapper.map_model(model, cfg)
    for layer in chip.layers.values():
        cover = np.zeros((layer.in_features, layer.out_features), dtype=int)
        for t in layer.tiles:
            cover[t.row_start:t.row_stop, t.col_start:t.col_stop] += 1
            assert t.array.rows_used <= 64 and t.array.phys_cols <= 32
        assert (cover == 1).all(), layer.name
    fc1 = chip.layers["fc1"]
    assert len(fc1.tiles) == int(np.ceil(400 / 64) * np.ceil(120 / 16))


def test_digital_first_and_last_layers_are_reported():
    model = random_lenet(np.random.default_rng(4), calib_n=8)
    cfg = load_preset().with_overrides(["mapping.first_layer='digital'", "mapping.last_layer='digital'"])
    chip = mapper.map_model(model, mapper.ideal_config(cfg))
    where = {row["layer"]: row["where"] for row in chip.summary()}
    assert where["conv1"] == "digital" and where["fc3"] == "digital" and where["fc1"] == "analog"
    assert not chip.layers["conv1"].tiles
    cfg = load_preset().with_overrides(["mapping.first_layer='analog'", "mapping.last_layer='analog'"])
    chip = mapper.map_model(model, mapper.ideal_config(cfg))
    assert all(row["where"] == "analog" for row in chip.summary()) and chip.layers["conv1"].tiles


def test_nonideal_chip_is_reproducible_and_seed_dependent():
    rng = np.random.default_rng(5)
    model = random_lenet(rng, calib_n=8)
    images = rng.integers(0, 256, size=(8, 28, 28), dtype=np.uint8)
    outs = []
    for seed in (11, 11, 12):
        cfg = load_preset().with_overrides([f"seed={seed}", "array.rows=128", "array.cols=128"])
        chip = mapper.map_model(model, cfg)
        engine.calibrate(chip, images[:4])
        outs.append(engine.run(chip, images).outputs)
    assert np.array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])


def test_layer_that_cannot_map_is_a_clear_error():
    model = random_lenet(np.random.default_rng(6), calib_n=8)
    cfg = load_preset().with_overrides(["array.cols=1"])
    with pytest.raises(ConfigError, match="array.cols"):
        mapper.map_model(model, cfg)


def test_offset_encoding_cannot_hold_8_bit_layers():
    model = random_lenet(np.random.default_rng(6), calib_n=8)
    cfg = load_preset().with_overrides(["array.encoding.weight_scheme='offset'",
                                        "mapping.first_layer='analog'"])
    with pytest.raises(ConfigError, match="weight_scheme"):
        mapper.map_model(model, cfg)


def test_inputs_that_do_not_match_the_model_are_rejected():
    model = random_lenet(np.random.default_rng(8), calib_n=8)
    chip = mapper.map_model(model, mapper.ideal_config(load_preset()))
    engine.calibrate(chip, np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(InputError):
        engine.run(chip, np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(InputError):
        engine.run(chip, np.zeros((2, 28, 28), np.float32) + np.nan)


def test_uncalibrated_chip_refuses_to_run():
    model = random_lenet(np.random.default_rng(9), calib_n=8)
    chip = mapper.map_model(model, mapper.ideal_config(load_preset()))
    with pytest.raises(InputError, match="calibrat"):
        engine.run(chip, np.zeros((2, 28, 28), np.uint8))


@pytest.mark.parametrize("mode", ["surrogate", "circuit"])
def test_ir_drop_lowers_currents_and_vanishes_without_wires(mode):
    rng = np.random.default_rng(21)
    model = random_lenet(rng, calib_n=8)
    images = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    base = ["array.rows=64", "array.cols=64", f"mapping.ir_drop='{mode}'",
            "mapping.ir_drop_vectors=4", "mapping.first_layer='digital'",
            "mapping.last_layer='digital'"]
    # wire resistance lowers every cell's effective current (factor < 1)
    cfg = mapper.ideal_config(load_preset().with_overrides(base + ["array.wires.r_bl_segment_ohm=50"]))
    chip = mapper.map_model(model, cfg)
    before = {id(t): t.array.current_scale.copy() for t in chip.tiles()}
    engine.calibrate(chip, images[:3])
    tile = chip.layers["fc1"].tiles[0]
    factor = tile.array.current_scale / before[id(tile)]
    assert factor.max() <= 1.0 + 1e-12 and factor.min() < 0.999
    # near-zero wires: factors ~1 and the ideal chip still equals the integer reference
    tiny = ["array.wires.r_bl_segment_ohm=1e-6", "array.wires.r_sl_segment_ohm=1e-6",
            "array.wires.r_strap_ohm=1e-6", "array.wires.r_sl_driver_ohm=1e-6",
            "array.wires.r_bl_terminal_ohm=1e-6"]
    cfg = mapper.ideal_config(load_preset().with_overrides(base + tiny))
    chip = mapper.map_model(model, cfg)
    engine.calibrate(chip, images[:3])
    out_ref, _ = engine.reference_run(model, images)
    assert np.array_equal(engine.run(chip, images).outputs, out_ref)
