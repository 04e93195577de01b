"""Hardware-in-the-loop: the `accuracy` evaluator (mapper + engine) through a sweep."""

import numpy as np
import pytest

from norsim.config.sim import SimConfig
from norsim.errors import ConfigError, InputError
from norsim.experiments import sweep
from norsim.experiments.evaluators import Point


def _tiny_model(path, seed=7):
    """pool 4x4 -> flatten -> fc 49x16 -> fc 16x10: a few hundred cells, random codes."""
    from norsim.mapping.quant_model import Flatten, Input, MaxPool2d
    from norsim.mapping.random_models import RandomModelBuilder

    rng = np.random.default_rng(seed)
    inp = Input("input", shape=(1, 28, 28), bits=8, signed=False, scale=2.0 ** -8)
    b = RandomModelBuilder(rng, inp, rng.integers(0, 256, (16, 28, 28)).astype(np.uint8))
    h = b.unary(MaxPool2d("pool", ("input",), kernel=4))
    h = b.unary(Flatten("flatten", (h,)))
    h = b.matmul("fc1", h, 16, weight_bits=4, out_bits=4)
    h = b.matmul("fc2", h, 10, weight_bits=4, requantize=False)
    b.build(h, "tiny").save(path)
    return path


def test_accuracy_sweep_end_to_end(tmp_path):
    from norsim.data import load_dataset
    from norsim.experiments.accuracy_eval import evaluate
    from norsim.mapping import engine
    from norsim.mapping.quant_model import QuantModel

    _tiny_model(tmp_path / "tiny.npz")
    (tmp_path / "base.toml").write_text("[mapping]\ncalibration_images = 16\n")
    spec = tmp_path / "spec.toml"
    spec.write_text('[sweep]\nevaluator = "accuracy"\nmodel = "tiny.npz"\ndata = "mnist"\n'
                    '[base]\nconfig = "base.toml"\n[seeds]\nroot = 3\ncount = 2\n'
                    '[axes]\n"mapping.programming" = ["ideal", "ispp"]\n'
                    "[options]\nimages = 64\n")
    df = sweep(spec, tmp_path / "acc.sqlite", workers=1, progress=False)
    assert len(df) == 4 and (df.status == "ok").all(), df.error.tolist()
    assert (df.accuracy_n == 64).all() and df.accuracy.between(0, 1).all()

    # the integer reference on the same 64 test images, computed here independently
    model = QuantModel.load(tmp_path / "tiny.npz")
    test = load_dataset("mnist", "test")
    _, pred = engine.reference_run(model, test.x[:64])
    ref = float(np.mean(pred == test.y[:64]))
    assert (df.reference_accuracy == ref).all()
    np.testing.assert_allclose(df.accuracy_drop, ref - df.accuracy, atol=1e-15)

    # a row's stored configuration reproduces its accuracy in this process
    row = df[df["mapping.programming"] == "ispp"].iloc[0]
    m = evaluate(Point(row.point_index, row.replicate, {}, SimConfig.from_toml(row.config_toml),
                       row.seed, row.spawn_key, model=str(tmp_path / "tiny.npz"), data="mnist",
                       options={"images": 64}))
    assert m["accuracy"] == row.accuracy and m["mvm_snr_db_min"] == row.mvm_snr_db_min

    # a retrained model under the same file name does not mix with the old rows
    _tiny_model(tmp_path / "tiny.npz", seed=8)
    with pytest.raises(InputError, match="model_sha256"):
        sweep(spec, tmp_path / "acc.sqlite", workers=1, progress=False)


def test_accuracy_evaluator_names_a_bad_model():
    with pytest.raises(ConfigError, match="sweep.model"):
        from norsim.experiments.accuracy_eval import evaluate

        evaluate(Point(0, 0, {}, SimConfig(), 0, (0,), model="missing.npz", data="mnist"))
