"""The V_th-spread chip of the noise-aware study (no torch): an unperturbed chip equals the
integer reference, and the perturbation has the requested spread and is seeded."""

import numpy as np

from norsim.config.presets import load_preset
from norsim.mapping import engine
from norsim.mapping.quant_model import Flatten, Input
from norsim.mapping.random_models import RandomModelBuilder
from norsim.mapping.reference import predict
from norsim.qat.noise_study import chip_with_vth_spread


def _model():
    """A small conv + linear model (fast to map)."""
    rng = np.random.default_rng(0)
    inp = Input("input", shape=(1, 12, 12), bits=8, signed=False, scale=1 / 255)
    imgs = rng.integers(0, 256, (32, 1, 12, 12), dtype=np.uint8)
    b = RandomModelBuilder(rng, inp, imgs, True)
    h = b.matmul("conv1", "input", 8, kernel=3, weight_bits=4, out_bits=4)
    h = b.unary(Flatten("flatten", (h,)))
    h = b.matmul("fc1", h, 6, weight_bits=4, requantize=False)
    return b.build(h)


def test_zero_spread_chip_equals_reference_and_spread_is_as_requested():
    model = _model()
    cfg = load_preset("nor40")
    rng = np.random.default_rng(1)
    c, h, w = model.input.shape
    x = rng.integers(0, 256, (12, h, w) if c == 1 else (12, h, w, c), dtype=np.uint8)
    chip0 = chip_with_vth_spread(model, cfg, 0.0, seed=3)
    engine.calibrate(chip0, x[:4])
    assert np.array_equal(engine.run(chip0, x).predictions, predict(model, x))
    sigma = 0.02
    chip = chip_with_vth_spread(model, cfg, sigma, seed=3)
    again = chip_with_vth_spread(model, cfg, sigma, seed=3)
    other = chip_with_vth_spread(model, cfg, sigma, seed=4)
    d = np.concatenate([(t.array.vth - t0.array.vth).ravel()
                        for t, t0 in zip(chip.tiles(), chip0.tiles())])
    assert d.size > 500
    assert abs(d.std() / sigma - 1) < 0.1 and abs(d.mean()) < 0.1 * sigma
    assert all(np.array_equal(a.array.vth, b.array.vth) for a, b in zip(chip.tiles(), again.tiles()))
    assert not all(np.array_equal(a.array.vth, b.array.vth) for a, b in zip(chip.tiles(), other.tiles()))
